"""Sequence networks for stays (filled in below)."""

WEIGHTS, CONFIG = "network.safetensors", "network.json"
