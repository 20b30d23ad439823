"""Routers of the MedAI service, one per resource; each carries its permission as a router dependency."""
