"""The model registry."""

from medai.registry.store import ModelRecord, Registry, parse_ref

__all__ = ["ModelRecord", "Registry", "parse_ref"]
