"""``medai recommend``: per patient, the arm the learned policy gives (the best arm on average unless another is
confidently better for this patient) and how sure the model is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medai.errors import MedAIError

RECOMMENDATION_COLUMNS = ("recommended_arm", "expected_benefit", "benefit_low", "benefit_high", "confident", "reason")


def recommendations(model, path: Path):
    """The recommendation table of the patients in ``path`` (a treatment-effect model)."""
    if model.kind != "treatment-effect":
        raise MedAIError(f"model {model.name!r} predicts a {model.kind} target; recommend needs a treatment-effect "
                         "model (trained with --treatment/--outcome)")
    inputs = model.modality.read_inputs(Path(path), model, labelled=False)
    frame = model.frame(inputs)
    first = [c for c in frame.columns if c not in RECOMMENDATION_COLUMNS][:1] if inputs.ids is not None else []
    rest = [c for c in frame.columns if c not in (*first, *RECOMMENDATION_COLUMNS)]
    return frame[[*first, *RECOMMENDATION_COLUMNS, *rest]]


def register(app: typer.Typer) -> None:
    @app.command()
    def recommend(
        model: Annotated[str, typer.Argument(metavar="MODEL", help="A treatment-effect model (directory or "
                                                                   "NAME[:VERSION]).")],
        patients: Annotated[Path, typer.Argument(help="Patients to recommend for (a table of their features).")],
        output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the recommendations as CSV.")] = None,
    ) -> None:
        """Recommend an arm per patient: the arm with the best average outcome (chosen on validation records)
        unless another arm is confidently better for this patient, the benefit over the reference arm with its
        95% interval, and "no confident recommendation" when the interval includes no benefit or the patient
        lies outside the overlap of the training data."""
        import sys

        from medai.cli import load
        from medai.console import err
        from medai.fsutil import atomic_write_text

        table = recommendations(load(model), patients)
        if output is None:
            sys.stdout.write(table.to_csv(index=False))
            return
        atomic_write_text(output, table.to_csv(index=False))
        confident = int(table["confident"].sum())
        err.print(f"{len(table)} recommendations written to {output} ({confident} confident, "
                  f"{len(table) - confident} without a confident recommendation)")
