"""The ``medai`` command line: a thin shell over the Python API.

Bad input ends with one line on stderr and exit code 2; results print as rich tables, or as JSON with
``--json``.
"""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from medai.errors import MedAIError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="MedAI: train, evaluate, explain and serve clinical prediction models.")
models_app = typer.Typer(help="The registry of trained models.", invoke_without_command=True)
app.add_typer(models_app, name="models")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(entry: dict | None) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    if entry.get("ci_low") is None:
        return _fmt(entry["value"])
    return f"{_fmt(entry['value'])} ({_fmt(entry['ci_low'])}-{_fmt(entry['ci_high'])})"


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _model_dir(ref: str) -> tuple[Path, dict | None]:
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


# -- catalog --------------------------------------------------------------------------------------------

@app.command()
def datasets(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the built-in datasets and whether each is available here."""
    from medai.data.registry import list_datasets

    rows = [{"name": d.name, "modality": d.modality, "availability": d.availability(), "license": d.license,
             "description": d.description} for d in list_datasets()]
    if as_json:
        return _print_json(rows)
    table = Table(title="Datasets")
    for column in ("name", "modality", "availability", "license", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(row[c] for c in ("name", "modality", "availability", "license", "description")))
    out.print(table)


@app.command()
def tasks(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the built-in tasks."""
    from medai.tasks import list_tasks

    rows = [t.to_json() for t in list_tasks()]
    if as_json:
        return _print_json(rows)
    table = Table(title="Tasks")
    for column in ("name", "modality", "kind", "target", "CV", "description"):
        table.add_column(column, overflow="fold")
    for t in list_tasks():
        table.add_row(t.name, t.modality, t.kind, t.target, t.split.cv or "-", t.description)
    out.print(table)


# -- training -------------------------------------------------------------------------------------------

@app.command()
def train(
    task: Annotated[str | None, typer.Argument(help="A built-in task (see `medai tasks`).")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Your own CSV/Parquet file (instead of a task).")] = None,
    target: Annotated[str | None, typer.Option(help="Target column of --data.")] = None,
    positive_label: Annotated[str | None, typer.Option(help="Value of the target that means 'positive'.")] = None,
    id_column: Annotated[str | None, typer.Option(help="Record identifier column (not a feature).")] = None,
    group_column: Annotated[str | None, typer.Option(help="Patient column: one split per patient.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Artifact directory (default runs/<task>).")] = None,
    learner: Annotated[str | None, typer.Option(help="logistic, random-forest, lightgbm or auto.")] = None,
    calibration: Annotated[str | None, typer.Option(help="isotonic or sigmoid probability calibration.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for splits, models and bootstrap.")] = 0,
    cv: Annotated[str | None, typer.Option(help="Repeated CV 'FOLDSxREPEATS' (e.g. 5x5) or 'none'.")] = None,
    threshold: Annotated[str | None, typer.Option(help="youden, sensitivity:0.9 or fixed:0.5")] = None,
    model: Annotated[str | None, typer.Option(help="Image network: small-cnn, resnet18/50, densenet121.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Image models: maximum training epochs.")] = None,
    image_size: Annotated[int | None, typer.Option(help="Image models: side length images are resized to.")] = None,
    members: Annotated[int | None, typer.Option(help="Image models: networks in the ensemble.")] = None,
    image_column: Annotated[str | None, typer.Option(help="--data CSV of image paths: the path column.")] = None,
    name: Annotated[str | None, typer.Option(help="Registry name (default: the task name).")] = None,
    register: Annotated[bool, typer.Option(help="Register the model in the registry.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics.json.")] = False,
) -> None:
    """Train, evaluate and package a model for a built-in task or your own file."""
    from medai.data.tabular import read_table
    from medai.tasks import get_task
    from medai.workflows.tabular import TrainOptions, custom_task, load_task_frame, train_tabular

    if (task is None) == (data is None):
        raise MedAIError("give either a TASK name or --data FILE --target COLUMN")
    arguments = dict(locals())
    destination = out_dir
    if data is not None and (data.is_dir() or data.suffix.lower() == ".npz" or image_column):
        from medai.workflows.dispatch import train_images, user_image_task

        the_task, image_data = user_image_task(data, arguments)
        destination = out_dir or Path("runs") / the_task.name
        result = train_images(the_task, destination, arguments, data=image_data)
    elif data is not None:
        if not target:
            raise MedAIError("--data needs --target COLUMN (the column to predict)")
        frame = read_table(data)
        the_task = custom_task(data, target, positive_label)
        info = {"dataset": str(data), "license": "user data", "citation": ""}
        result = None
    else:
        the_task = get_task(task)
        result = None
        if the_task.modality == "imaging":
            from medai.workflows.dispatch import train_images

            destination = out_dir or Path("runs") / the_task.name
            result = train_images(the_task, destination, arguments)
        elif the_task.modality != "tabular":
            raise MedAIError(f"task {task!r} is a {the_task.modality} task, which cannot be trained here yet")
        else:
            frame, info = load_task_frame(the_task)
    if result is None:
        options = TrainOptions(learner=learner, calibration=None if calibration in (None, "none") else calibration,
                               seed=seed, cv="task" if cv is None else cv, threshold=threshold,
                               show_progress=not as_json)
        destination = out_dir or Path("runs") / the_task.name
        with err.status(f"training {the_task.name}...") if not as_json else nullcontext():
            result = train_tabular(frame, the_task, destination, options, data_info=info,
                                   id_column=id_column, group_column=group_column)
    record = None
    if register:
        from medai.registry import Registry

        record = Registry().register(destination, name=name)
    if as_json:
        return _print_json(result.metrics)
    _print_metrics(result.metrics, title=f"{the_task.name}: test set (95% bootstrap CI)")
    where = f"; registered as {record.ref}" if record else ""
    out.print(f"model written to {destination}{where}")


def _print_metrics(metrics: dict, title: str) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value (95% CI)", justify="right")
    for key, entry in metrics["test"].items():
        table.add_row(key, _ci(entry))
    out.print(table)
    decision = metrics.get("decision") or {}
    if decision:
        out.print(f"threshold {decision['threshold']:.4f} ({decision['description']})")
    if metrics.get("cv"):
        cv = Table(title="cross-validation")
        for column in ("metric", "mean", "sd", "95% CI"):
            cv.add_column(column, justify="right")
        for key, entry in metrics["cv"].items():
            ci = f"{_fmt(entry['ci_low'])}-{_fmt(entry['ci_high'])}"
            cv.add_row(key, _fmt(entry["mean"]), _fmt(entry["std"]), ci)
        out.print(cv)


@app.command()
def evaluate(
    model: Annotated[str, typer.Argument(help="Model directory or registered NAME[:VERSION].")],
    data: Annotated[Path, typer.Option("--data", help="Labelled CSV/Parquet file.")],
    seed: int = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Evaluate a trained model on a labelled file, at the model's threshold."""
    from medai.workflows.tabular import evaluate_file

    directory, _ = _model_dir(model)
    result = evaluate_file(directory, data, seed=seed)
    if as_json:
        return _print_json(result)
    _print_metrics({"test": result["test"]}, title=f"{result['model']} on {data} (n={result['n']})")
    out.print(f"threshold {result['threshold']:.4f}")


@app.command()
def predict(
    model: Annotated[str, typer.Argument(help="Model directory or registered NAME[:VERSION].")],
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="CSV/Parquet of records (or images).")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write predictions as CSV.")] = None,
    top_k: Annotated[int, typer.Option(help="Top contributing features per record.")] = 3,
    explain: Annotated[bool, typer.Option(help="Add top feature contributions.")] = True,
) -> None:
    """Predict risk for each record: probability, label at the model's threshold, top contributions."""
    from medai.models.loading import load_model

    directory, manifest = _model_dir(model)
    loaded = load_model(directory, manifest)
    if loaded.family != "tabular":
        from medai.workflows.dispatch import predict_images

        return predict_images(loaded, input_path, output)
    from medai.workflows.tabular import predict_file

    result = predict_file(directory, input_path, output, top_k=top_k, explain=explain)
    if output is None:
        sys.stdout.write(result.to_csv(index=False))
    else:
        err.print(f"{len(result)} predictions written to {output}")


@app.command()
def explain(
    model: Annotated[str, typer.Argument(help="Model directory or registered NAME[:VERSION].")],
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="CSV/Parquet of records (or an image).")],
    top_k: Annotated[int, typer.Option(help="Features shown per record.")] = 5,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Heatmap PNG (image models).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show which features pushed each record's risk up or down (SHAP, in log-odds)."""
    from medai.models.loading import load_model

    directory, manifest = _model_dir(model)
    loaded = load_model(directory, manifest)
    if loaded.family != "tabular":
        from medai.workflows.dispatch import explain_image

        result = explain_image(loaded, input_path, output)
        if as_json:
            return _print_json(result)
        out.print(f"{result['file']}: {result['label']} -> Grad-CAM heatmap written to {result['heatmap']}")
        return None
    from medai.workflows.tabular import explain_file

    rows = explain_file(directory, input_path, top_k=top_k)
    if as_json:
        return _print_json(rows)
    for row in rows:
        label = f"row {row['row']}" + (f" (id {row['id']})" if row["id"] is not None else "")
        table = Table(title=f"{label}: risk {row['probability']:.3f} -> {row['label']}")
        table.add_column("feature")
        table.add_column("value", justify="right")
        table.add_column("contribution (log-odds)", justify="right")
        for c in row["contributions"]:
            table.add_row(c["feature"], str(c["value"]), f"{c['contribution']:+.3f}")
        out.print(table)


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="Image model directory or registered NAME[:VERSION].")],
    onnx: Annotated[bool, typer.Option("--onnx", help="Export to ONNX (the only format today).")] = True,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output file (default MODEL.onnx).")] = None,
) -> None:
    """Export an image model to ONNX and check its outputs against torch (max difference <= 1e-4)."""
    import numpy as np

    from medai.models.imaging.onnx_runtime import OnnxImageClassifier, export_onnx
    from medai.models.loading import load_model

    if not onnx:
        raise MedAIError("only --onnx export is available")
    directory, manifest = _model_dir(model)
    loaded = load_model(directory, manifest)
    if loaded.family != "imaging":
        raise MedAIError(f"export --onnx takes an image model; {model!r} is a {loaded.family} model")
    destination = output or Path(f"{loaded.meta['name']}.onnx")
    export_onnx(loaded.classifier, destination)
    probe = np.random.default_rng(0).random((4, *loaded.classifier.input_shape_), dtype=np.float32)
    difference = float(np.abs(OnnxImageClassifier(destination).predict_proba(probe)
                              - loaded.classifier.predict_proba(probe)).max())
    if difference > 1e-4:
        destination.unlink(missing_ok=True)
        raise MedAIError(f"ONNX outputs differ from torch by {difference:.2e} (> 1e-4); export refused")
    out.print(f"ONNX model written to {destination} (max |onnx - torch| = {difference:.1e})")


enhance_app = typer.Typer(help="Image enhancement: denoising.", no_args_is_help=True)
app.add_typer(enhance_app, name="enhance")


@enhance_app.command("train")
def enhance_train(
    dataset: Annotated[str, typer.Option(help="Imaging dataset to learn from.")] = "pneumoniamnist",
    out_dir: Annotated[Path, typer.Option("--out", help="Where the denoiser artifact goes.")] = Path("runs/denoiser"),
    sigma: Annotated[float, typer.Option(help="Gaussian noise level (images in [0, 1]).")] = 0.1,
    epochs: int = 10,
    seed: int = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Train a DnCNN denoiser; print PSNR/SSIM on held-out test images against the noisy input and classical filters."""
    from medai.workflows.enhance import train_denoiser

    metrics = train_denoiser(dataset, out_dir, sigma=sigma, epochs=epochs, seed=seed, progress=not as_json)
    if as_json:
        return _print_json(metrics)
    table = Table(title=f"Denoising {dataset} test images, sigma={sigma} (n={metrics['n_test_images']})")
    for column in ("method", "PSNR (dB)", "gain (dB)", "SSIM"):
        table.add_column(column)
    for name, entry in metrics["results"].items():
        table.add_row(name, f"{entry['psnr']:.2f}", f"{entry['psnr_gain_db']:+.2f}", f"{entry['ssim']:.3f}")
    out.print(table)
    out.print(f"denoiser written to {out_dir}")


@enhance_app.command("apply")
def enhance_apply(
    input_path: Annotated[Path, typer.Argument(metavar="IMAGE", help="PNG/JPEG/DICOM/NIfTI slice to denoise.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Denoised PNG.")],
    method: Annotated[str, typer.Option(help="nl-means, tv, or a trained denoiser directory.")] = "nl-means",
) -> None:
    """Denoise one image."""
    from medai.workflows.enhance import enhance_file

    result = enhance_file(input_path, output, method)
    out.print(f"{result['input']} -> {result['output']} ({method})")


# -- registry -------------------------------------------------------------------------------------------

@models_app.callback()
def models_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List registered models (all versions)."""
    if ctx.invoked_subcommand is not None:
        return
    from medai.registry import Registry

    records = Registry().list_models()
    if as_json:
        return _print_json([r.to_json() for r in records])
    table = Table(title="Registered models")
    for column in ("name", "version", "stage", "task", "learner", "test AUROC", "created"):
        table.add_column(column)
    for r in records:
        auc = r.metrics.get("test", {}).get("auroc") or r.metrics.get("test", {}).get("auroc_macro")
        table.add_row(r.name, str(r.version), r.stage, r.task, r.learner, _ci(auc),
                      r.created_at.strftime("%Y-%m-%d %H:%M"))
    out.print(table)


@models_app.command("show")
def models_show(ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION")],
                as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Details of one registered model version."""
    from medai.registry import Registry

    record = Registry().resolve(ref)
    if as_json:
        return _print_json(record.to_json())
    out.print(f"[bold]{record.ref}[/bold]  stage={record.stage}  task={record.task} ({record.kind}, "
              f"{record.modality})  learner={record.learner}")
    out.print(f"artifact {record.artifact_path}\ndata fingerprint {record.data_fingerprint}\n"
              f"created {record.created_at.isoformat()}")
    _print_metrics(record.metrics, title="test metrics (95% CI)")


@models_app.command("promote")
def models_promote(ref: Annotated[str, typer.Argument(help="NAME:VERSION")],
                   stage: Annotated[str, typer.Option(help="staging, production or retired")] = "production") -> None:
    """Move a model version to a stage (one production version per name)."""
    from medai.registry import Registry, parse_ref

    name, version = parse_ref(ref)
    if version is None:
        raise MedAIError("promote needs NAME:VERSION")
    record = Registry().set_stage(name, version, stage)
    out.print(f"{record.ref} is now {record.stage}")


# -- demo -----------------------------------------------------------------------------------------------

@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where the artifacts go.")] = Path("runs/demo"),
    seed: int = 0,
) -> None:
    """Train, evaluate and register the built-in disease-risk tasks; print the results table."""
    from medai.data.registry import get_dataset
    from medai.registry import Registry
    from medai.tasks import get_task
    from medai.workflows.tabular import TrainOptions, train_task_by_name

    registry = Registry()
    table = Table(title="MedAI demo: disease risk from patient records (test set, 95% CI)")
    for column in ("task", "learner", "test AUROC", "CV AUROC (mean ± sd)", "sensitivity", "specificity",
                   "ECE", "registered"):
        table.add_column(column)
    for name in ("breast-cancer-wdbc", "heart-disease-cleveland", "diabetes-pima"):
        task = get_task(name)
        if get_dataset(task.dataset).availability() in ("missing",):
            err.print(f"skipping {name}: its data is not available here (set MEDAI_DATA_DIR)")
            continue
        with err.status(f"training {name}..."):
            try:
                result = train_task_by_name(name, out_dir / name, TrainOptions(seed=seed, show_progress=False))
            except MedAIError as exc:
                err.print(f"skipping {name}: {exc}")
                continue
        record = registry.register(out_dir / name)
        m = result.metrics
        cv = m["cv"].get("auroc")
        table.add_row(name, m["learner"], _ci(m["test"]["auroc"]),
                      f"{cv['mean']:.3f} ± {cv['std']:.3f}" if cv else "-",
                      _ci(m["test"]["sensitivity"]), _ci(m["test"]["specificity"]),
                      _fmt(m["test"]["ece"]["value"]), record.ref)
    out.print(table)
    out.print(f"reports: {out_dir}/<task>/report.html   registry: `medai models`")


from medai.cli_service import register as _register_service_commands  # noqa: E402

_register_service_commands(app)


def main() -> None:
    try:
        code = app(standalone_mode=False)  # returns typer.Exit's code instead of exiting
    except MedAIError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        raise SystemExit(130) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
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
