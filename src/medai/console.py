"""The consoles and small formatters every command shares (the CLI and modalities' own commands)."""

from __future__ import annotations

import json
import sys

from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def ci(entry: dict | None) -> str:
    """``value (low-high)`` of a ``{"value", "ci_low", "ci_high"}`` entry."""
    if not entry or entry.get("value") is None:
        return "n/a"
    if entry.get("ci_low") is None:
        return fmt(entry["value"])
    return f"{fmt(entry['value'])} ({fmt(entry['ci_low'])}-{fmt(entry['ci_high'])})"


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
