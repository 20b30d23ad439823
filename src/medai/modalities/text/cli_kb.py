"""``medai kb build CORPUS`` / ``medai kb query CONCEPT|TEXT``."""

from __future__ import annotations

import typer

kb_app = typer.Typer(help="Knowledge base of entity mentions linked to concepts.", no_args_is_help=True)
