"""``medai stream replay MODEL STAYS``: replay stays hour by hour through a model, as if their data were arriving,
and write the risk trajectories (one row per stay and hour) with the alerts (upward crossings of the model's
threshold); with ``--labels``, also the early-warning figures (discrimination by hours seen, alert sensitivity,
PPV, alerts per patient-day, lead time)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

stream_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Score stays as their data arrives (replay, risk trajectories, alerts).")


@stream_app.command("replay")
def replay(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="Model directory or registered NAME[:VERSION].")],
    stays: Annotated[Path, typer.Argument(metavar="STAYS", help="Stays: challenge folder/.tar.gz or long table.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Trajectories CSV to write.")] = Path("trajectories.csv"),
    step: Annotated[float, typer.Option(help="Hours between two scorings.")] = 1.0,
    labels: Annotated[Path | None, typer.Option(help="Outcomes, for the early-warning figures.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Replay STAYS hour by hour through MODEL; write risk trajectories and alerts."""
    from medai.cli import load
    from medai.console import out as console
    from medai.console import print_json
    from medai.errors import MedAIError
    from medai.fsutil import atomic_write_bytes
    from medai.modalities.longitudinal.stream import replay_frame

    if step <= 0:
        raise MedAIError(f"--step must be a positive number of hours, got {step}")
    loaded = load(model)
    if loaded.modality.name != "longitudinal":
        raise MedAIError(f"{model} is a {loaded.family} model; stream replay needs a longitudinal model")
    options = {"labels": str(labels)} if labels else {}
    inputs = loaded.modality.read_inputs(stays, loaded, labelled=labels is not None, options=options)
    frame, summary = replay_frame(loaded, inputs, step)
    atomic_write_bytes(out, frame.to_csv(index=False).encode())
    summary["trajectories"] = str(out)
    if as_json:
        return print_json(summary)
    console.print(f"{summary['stays']} stays replayed every {step:g} h: {summary['alerts']} alert(s) at threshold "
                  f"{summary['threshold']:.4f}; trajectories written to {out}")
    warning = summary.get("early_warning")
    if warning:
        for row in warning["by_hours"]:
            console.print(f"  {row['hours']:>4g} h seen: AUROC {row['auroc']['value']:.3f}, "
                          f"AUPRC {row['auprc']['value']:.3f}")
