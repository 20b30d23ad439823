"""The text modality's own commands: ``medai deid text|table|dicom`` and ``medai kb build|query``."""

from __future__ import annotations


def register(app) -> None:
    from medai.modalities.text.cli_deid import deid_app
    from medai.modalities.text.cli_kb import kb_app

    app.add_typer(deid_app, name="deid")
    app.add_typer(kb_app, name="kb")
