"""Registry commands of the CLI (``medai models ...``) and ``medai demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from medai.console import ci, err, fmt, out, print_json
from medai.errors import MedAIError

DEMO_TASKS = ("breast-cancer-wdbc", "heart-disease-cleveland", "diabetes-pima")


def headline(metrics: dict, kind: str) -> tuple[str, dict | None]:
    from medai.tasks.task import HEADLINE_METRICS

    name = HEADLINE_METRICS.get(kind, "auroc")
    return name, (metrics.get("test") or {}).get(name)


def register(app: typer.Typer) -> None:
    models_app = typer.Typer(help="The registry of trained models.", invoke_without_command=True)
    app.add_typer(models_app, name="models")

    @models_app.callback()
    def models_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """List registered models (all versions)."""
        if ctx.invoked_subcommand is not None:
            return
        from medai.registry import Registry

        records = Registry().list_models()
        if as_json:
            return print_json([r.to_json() for r in records])
        table = Table(title="Registered models")
        for column in ("name", "version", "stage", "task", "kind", "modality", "learner", "test headline (95% CI)",
                       "created"):
            table.add_column(column)
        for r in records:
            metric, entry = headline(r.metrics, r.kind)
            table.add_row(r.name, str(r.version), r.stage, r.task, r.kind, r.modality, r.learner,
                          f"{metric} {ci(entry)}", r.created_at.strftime("%Y-%m-%d %H:%M"))
        out.print(table)

    @models_app.command("show")
    def models_show(ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION")],
                    as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """Details of one registered model version."""
        from medai.cli import print_metrics
        from medai.registry import Registry

        record = Registry().resolve(ref)
        if as_json:
            return print_json(record.to_json())
        out.print(f"[bold]{record.ref}[/bold]  stage={record.stage}  task={record.task} ({record.kind}, "
                  f"{record.modality})  learner={record.learner}")
        out.print(f"artifact {record.artifact_path}\ndata fingerprint {record.data_fingerprint}\n"
                  f"created {record.created_at.isoformat()}")
        print_metrics(record.metrics, title="test metrics (95% CI)")

    @models_app.command("promote")
    def models_promote(ref: Annotated[str, typer.Argument(help="NAME:VERSION")],
                       stage: Annotated[str, typer.Option(help="staging, production or retired")] = "production",
                       ) -> None:
        """Move a model version to a stage (one production version per name)."""
        from medai.registry import Registry, parse_ref

        name, version = parse_ref(ref)
        if version is None:
            raise MedAIError("promote needs NAME:VERSION")
        record = Registry().set_stage(name, version, stage)
        out.print(f"{record.ref} is now {record.stage}")

    @app.command()
    def demo(
        out_dir: Annotated[Path, typer.Option("--out", help="Where the artifacts go.")] = Path("runs/demo"),
        seed: int = 0,
    ) -> None:
        """Train, evaluate and register the built-in disease-risk tasks; print the results table."""
        from medai.data.registry import get_dataset
        from medai.registry import Registry
        from medai.road import TrainOptions, train_task
        from medai.tasks import get_task

        registry = Registry()
        table = Table(title="MedAI demo: disease risk from patient records (test set, 95% CI)")
        for column in ("task", "learner", "test AUROC", "CV AUROC (mean ± sd)", "sensitivity", "specificity",
                       "ECE", "registered"):
            table.add_column(column)
        for name in DEMO_TASKS:
            task = get_task(name)
            if get_dataset(task.dataset).availability() in ("missing",):
                err.print(f"skipping {name}: its data is not available here (set MEDAI_DATA_DIR)")
                continue
            with err.status(f"training {name}..."):
                try:
                    result = train_task(name, out_dir / name, TrainOptions(seed=seed, show_progress=False))
                except MedAIError as exc:
                    err.print(f"skipping {name}: {exc}")
                    continue
            record = registry.register(out_dir / name)
            m = result.metrics
            cv = m["cv"].get("auroc")
            table.add_row(name, m["learner"], ci(m["test"]["auroc"]),
                          f"{cv['mean']:.3f} ± {cv['std']:.3f}" if cv else "-",
                          ci(m["test"]["sensitivity"]), ci(m["test"]["specificity"]),
                          fmt(m["test"]["ece"]["value"]), record.ref)
        out.print(table)
        out.print(f"reports: {out_dir}/<task>/report.html   registry: `medai models`")
