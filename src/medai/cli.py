"""The ``medai`` command line: a thin shell over the road (:mod:`medai.road`) for every modality.

Modalities add their own options to ``train``/``predict``/``evaluate``/``explain`` (declared as
:class:`~medai.modalities.CliOption`) and their own commands; nothing here names a modality. Bad input ends
with one line on stderr and exit code 2; a usage error shows the usage line and exits 2; results print as
rich tables, or as JSON with ``--json``.
"""

from __future__ import annotations

import functools
import inspect
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from medai.cli_scale import RayAddress
from medai.console import ci, err, fmt, out, print_json
from medai.errors import MedAIError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="MedAI: train, evaluate, explain and serve clinical prediction models.")

ModelRef = Annotated[str, typer.Argument(metavar="MODEL", help="Model directory or registered NAME[:VERSION].")]


def distributed_training(cluster, workers: int | None):
    """Data-parallel fitting of torch learners on the cluster (``--train-workers``); nothing otherwise."""
    import contextlib

    if workers is None:
        return contextlib.nullcontext()
    if cluster is None:
        raise MedAIError("--train-workers needs a Ray cluster: add --ray ADDR (or set MEDAI_RAY_ADDRESS)")
    from medai.parallel import training_with
    from medai.scale.distributed import RayTrainer

    return training_with(RayTrainer(workers))


def ray_session(address: str | None):
    """The block's independent work (CV folds, bootstrap replicates) runs on the Ray cluster at ``address``."""
    from medai.scale.cluster import ray_session as session

    return session(address)


def with_modality_options(command: str):
    """Give a command every option the modalities declare for it; their values arrive as ``extra``."""

    def decorate(func):
        from medai.modalities import list_modalities

        options = {}
        for modality in list_modalities():
            for option in modality.cli_options:
                if command in option.commands:
                    options.setdefault(option.dest, option)
        signature = inspect.signature(func, eval_str=True)  # typer reads the typer.Option inside Annotated
        base = [p for p in signature.parameters.values() if p.name != "extra"]
        added = [inspect.Parameter(dest, inspect.Parameter.KEYWORD_ONLY, default=option.default,
                                   annotation=Annotated[_option_type(option), typer.Option(option.flag,
                                                                                           help=option.help)])
                 for dest, option in options.items()]

        @functools.wraps(func)
        def wrapper(**kwargs):
            extra = {dest: kwargs.pop(dest) for dest in options}
            return func(**kwargs, extra={k: v for k, v in extra.items() if v not in (None, [], ())})

        wrapper.__signature__ = signature.replace(parameters=base + added)
        wrapper.__annotations__ = {p.name: p.annotation for p in base + added}
        return wrapper

    return decorate


def _option_type(option):
    if option.is_flag:
        return bool
    kind = option.type
    return list[kind] | None if option.multiple else kind | None


def model_dir(ref: str) -> tuple[Path, dict | None]:
    """A model argument is a directory, or a registry reference NAME[:VERSION]."""
    path = Path(ref)
    if path.is_dir():
        return path, None
    from medai.registry import Registry

    try:
        record = Registry().resolve(ref)
    except MedAIError:
        raise MedAIError(f"{ref!r} is neither a model directory nor a registered model (NAME[:VERSION])") from None
    return Path(record.artifact_path), record.manifest


def load(ref: str):
    from medai.road import load_model

    return load_model(*model_dir(ref))


def read_unlabelled(loaded, input_path: Path | None, extra: dict):
    """What to predict or explain: INPUT, or records the modality takes from its own options."""
    if input_path is not None:
        return loaded.modality.read_inputs(Path(input_path), loaded, labelled=False, options=extra)
    inputs = loaded.modality.inputs_from_options(loaded, extra)
    if inputs is None:
        raise MedAIError("missing INPUT: records or files in the model's input format")
    return inputs


# -- catalog --------------------------------------------------------------------------------------------

@app.command()
def datasets(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the built-in datasets and whether each is available here."""
    from medai.data.registry import list_datasets

    rows = [{"name": d.name, "modality": d.modality, "availability": d.availability(), "license": d.license,
             "description": d.description} for d in list_datasets()]
    _table_or_json(rows, ("name", "modality", "availability", "license", "description"), "Datasets", as_json)


@app.command()
def tasks(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the built-in tasks."""
    from medai.tasks import list_tasks

    if as_json:
        return print_json([t.to_json() for t in list_tasks()])
    rows = [{"name": t.name, "modality": t.modality, "kind": t.kind, "target": t.target, "CV": t.split.cv or "-",
             "description": t.description} for t in list_tasks()]
    _table_or_json(rows, ("name", "modality", "kind", "target", "CV", "description"), "Tasks", False)


@app.command()
def modalities(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the modalities: what data each reads, its input contract and its learners."""
    from medai.modalities import list_modalities

    rows = [{"name": m.name, "input": m.input_contract, "learners": ", ".join(m.learners("binary")) or "-",
             "description": m.description} for m in list_modalities()]
    _table_or_json(rows, ("name", "input", "learners", "description"), "Modalities", as_json)


def _table_or_json(rows: list[dict], columns: tuple[str, ...], title: str, as_json: bool) -> None:
    if as_json:
        return print_json(rows)
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(row[c]) for c in columns))
    out.print(table)


# -- the road -------------------------------------------------------------------------------------------

@app.command()
@with_modality_options("train")
def train(
    task: Annotated[str | None, typer.Argument(help="A built-in task (see `medai tasks`).")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Your own data (a table, a folder, ...).")] = None,
    target: Annotated[str | None, typer.Option(help="Target column of --data (several, comma-separated: "
                                                     "multilabel).")] = None,
    kind: Annotated[str | None, typer.Option(help="binary, multiclass, multilabel or regression (default: "
                                                   "inferred from the target).")] = None,
    modality: Annotated[str | None, typer.Option(help="The modality that reads --data (see `medai "
                                                       "modalities`).")] = None,
    positive_label: Annotated[str | None, typer.Option(help="Value of the target that means 'positive'.")] = None,
    id_column: Annotated[str | None, typer.Option(help="Record identifier column (not a feature).")] = None,
    group_column: Annotated[str | None, typer.Option(help="Patient column: one split per patient.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Artifact directory (default runs/<task>).")] = None,
    learner: Annotated[str | None, typer.Option(help="A learner of the modality (see `medai modalities`).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for splits, models and bootstrap.")] = 0,
    cv: Annotated[str | None, typer.Option(help="Repeated CV 'FOLDSxREPEATS' (e.g. 5x5) or 'none'.")] = None,
    threshold: Annotated[str | None, typer.Option(help="youden, sensitivity:0.9 or fixed:0.5")] = None,
    coverage: Annotated[float, typer.Option(help="Nominal coverage of the conformal sets/intervals.")] = 0.9,
    conformal: Annotated[str, typer.Option(help=(
        "auto (class-conditional sets when every class has enough calibration records, else standard; regression: "
        "normalized when narrower), standard, class-conditional, normalized or none."))] = "auto",
    name: Annotated[str | None, typer.Option(help="Registry name (default: the task name).")] = None,
    register: Annotated[bool, typer.Option(help="Register the model in the registry.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics.json.")] = False,
    ray: RayAddress = None,
    train_workers: Annotated[int | None, typer.Option(help="With --ray: train a torch learner data-parallel on N "
                                                           "Ray Train workers (gloo, CPU).")] = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Train, evaluate and package a model for a built-in task or your own data."""
    from medai.road import TrainOptions, train_data, train_task

    if (task is None) == (data is None):
        raise MedAIError("give either a TASK name or --data FILE --target COLUMN")
    options = TrainOptions(learner=learner, kind=kind, target=target, positive_label=positive_label,
                           id_column=id_column, group_column=group_column, modality=modality, seed=seed,
                           cv="task" if cv is None else cv, threshold=threshold, coverage=coverage,
                           conformal=conformal, show_progress=not as_json, extra=extra or {},
                           say=lambda message: err.print(message, markup=False, highlight=False))
    with ray_session(ray) as cluster, distributed_training(cluster, train_workers):
        result = train_data(data, out_dir, options) if data is not None else train_task(task, out_dir, options)
    record = None
    if register:
        from medai.registry import Registry

        record = Registry().register(result.out, name=name)
    if as_json:
        return print_json(result.metrics)
    print_metrics(result.metrics, title=f"{result.task.name}: test set (95% bootstrap CI)")
    where = f"; registered as {record.ref}" if record else ""
    out.print(f"model written to {result.out}{where}")


def print_metrics(metrics: dict, title: str) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value (95% CI)", justify="right")
    for key, entry in metrics["test"].items():
        table.add_row(key, ci(entry))
    out.print(table)
    decision = metrics.get("decision") or {}
    if decision:
        threshold = decision.get("threshold")
        out.print(f"decision: {decision['description']}" + (f"; threshold {threshold:.4f}" if threshold is not None
                                                              else ""))
    conformal = metrics.get("conformal") or {}
    if conformal:
        size = conformal.get("mean_set_size") or conformal.get("mean_interval_width")
        what = "mean set size" if "mean_set_size" in conformal else "mean interval width"
        out.print(f"conformal {conformal['mode']} at {conformal['nominal']:.0%}: test coverage "
                  f"{ci(conformal['coverage'])}, {what} {ci(size)}")
    if metrics.get("cv"):
        cv = Table(title="cross-validation")
        for column in ("metric", "mean", "sd", "95% CI"):
            cv.add_column(column, justify="right")
        for key, entry in metrics["cv"].items():
            cv.add_row(key, fmt(entry["mean"]), fmt(entry["std"]), f"{fmt(entry['ci_low'])}-{fmt(entry['ci_high'])}")
        out.print(cv)


@app.command()
@with_modality_options("evaluate")
def evaluate(
    model: ModelRef,
    data: Annotated[Path, typer.Option("--data", help="Labelled data in the model's input format.")],
    seed: int = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    ray: RayAddress = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Evaluate a trained model on labelled data, at the model's own decision rule."""
    loaded = load(model)
    inputs = loaded.modality.read_inputs(Path(data), loaded, labelled=True, options=extra or {})
    with ray_session(ray):
        result = loaded.evaluate(inputs, seed=seed)
    result["data"] = str(data)
    if as_json:
        return print_json(result)
    print_metrics(result, title=f"{result['model']} on {data} (n={result['n']})")


@app.command()
@with_modality_options("predict")
def predict(
    model: ModelRef,
    input_path: Annotated[Path | None, typer.Argument(metavar="[INPUT]", help="Records or files in the model's input "
                                                      "format (or the modality's own options, e.g. --smiles).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write predictions as CSV.")] = None,
    top_k: Annotated[int, typer.Option(help="Top contributions per record in the explanation.")] = 3,
    explain: Annotated[bool | None, typer.Option("--explain/--no-explain", help="Add a one-line explanation "
                                                 "(default: where the modality's explanation is cheap).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the predictions as JSON.")] = False,
    out_of_range: Annotated[str, typer.Option(help="Records outside the training data or physiological limits: "
                                                   "flag (a column says so) or refuse.")] = "flag",
    ray: RayAddress = None,
    batch_size: Annotated[int, typer.Option(help="Records per batch with --ray.")] = 4096,
    extra: dict[str, Any] | None = None,
) -> None:
    """Predict each record: label or value, probabilities, the conformal set or interval, an explanation.

    With --ray, INPUT (a CSV/Parquet table or a folder of them, or a folder of files) streams through the
    cluster in batches and the predictions are written to --output (.parquet or .csv)."""
    from medai.scale.cluster import resolve_address

    if resolve_address(ray) is not None:
        from medai.cli_scale import predict_on_cluster

        return predict_on_cluster(model, input_path, output, ray, batch_size, explain, top_k, out_of_range)
    loaded = load(model)
    inputs = read_unlabelled(loaded, input_path, extra or {})
    explain = loaded.modality.explain_in_tables if explain is None else explain
    if out_of_range not in ("flag", "refuse"):
        raise MedAIError(f"--out-of-range must be flag or refuse, got {out_of_range!r}")
    refuse = out_of_range == "refuse"
    if as_json:
        items = loaded.predict(inputs.X, explain=explain, top_k=top_k, refuse_outside=refuse)
        for item, record_id in zip(items, inputs.ids or [None] * len(items), strict=True):
            item.pop("explanation_png_base64", None)
            if record_id is not None:
                item[inputs.id_name] = record_id
        return print_json(items)
    frame = loaded.frame(inputs, explain=explain, top_k=top_k, refuse_outside=refuse)
    if output is None:
        sys.stdout.write(frame.to_csv(index=False))
        return None
    from medai.fsutil import atomic_write_text

    atomic_write_text(output, frame.to_csv(index=False))
    err.print(f"{len(frame)} predictions written to {output}")


@app.command()
@with_modality_options("explain")
def explain(
    model: ModelRef,
    input_path: Annotated[Path | None, typer.Argument(metavar="[INPUT]", help="Records or files in the model's input "
                                                      "format (or the modality's own options, e.g. --smiles).")] = None,
    top_k: Annotated[int, typer.Option(help="Contributions shown per record.")] = 5,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Explanation picture (PNG); a folder when "
                                                "several records have pictures.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    extra: dict[str, Any] | None = None,
) -> None:
    """Why the model predicted what it did, record by record (contributions, or a picture such as Grad-CAM)."""
    from medai.cli_explain import show_explanations

    loaded = load(model)
    inputs = read_unlabelled(loaded, input_path, extra or {})
    show_explanations(loaded, inputs, top_k, output, as_json)


@app.command()
def export(
    model: ModelRef,
    export_format: Annotated[str, typer.Option("--format", help="Export format of the modality (e.g. onnx).")] = "onnx",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output file (default MODEL.FORMAT).")] = None,
) -> None:
    """Export a model to a portable format and check its outputs against the original."""
    loaded = load(model)
    destination = output or Path(f"{loaded.name}.{export_format}")
    detail = loaded.modality.export(loaded, export_format, destination)
    out.print(f"{export_format} model written to {destination} ({detail})")


from medai.cli_models import register as _register_model_commands  # noqa: E402
from medai.cli_scale import register as _register_scale_commands  # noqa: E402
from medai.cli_service import register as _register_service_commands  # noqa: E402
from medai.monitoring.cli import register as _register_monitor_commands  # noqa: E402

_register_model_commands(app)
_register_service_commands(app)
_register_monitor_commands(app)
_register_scale_commands(app)


def _register_modality_commands() -> None:
    from medai.modalities import list_modalities

    for modality in list_modalities():
        modality.register_cli(app)


_register_modality_commands()


def _usage_error(exc: Exception) -> bool:
    import click
    from typer._click import exceptions as typer_click

    return isinstance(exc, click.ClickException | typer_click.ClickException)


def main() -> None:
    try:
        code = app(prog_name="medai", standalone_mode=False)  # returns typer.Exit's code instead of exiting
    except MedAIError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        raise SystemExit(130) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:
        if _usage_error(exc):  # unknown option or command, missing argument: usage line, exit 2
            exc.show()
            raise SystemExit(exc.exit_code) from None
        if isinstance(exc, PermissionError | IsADirectoryError | NotADirectoryError):
            err.print(f"error: {exc}", markup=False, highlight=False)
            raise SystemExit(2) from None
        raise
    if isinstance(code, int) and code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
