"""``medai deid text|table|dicom``."""

from __future__ import annotations

import typer

deid_app = typer.Typer(help="De-identification of notes, tables and DICOM files.", no_args_is_help=True)
