"""Commands and command paths that run on a Ray cluster (``medai[scale]``): ``medai predict --ray`` (batch
inference with Ray Data) and ``medai tune``; registered on the main app by :func:`register`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from medai.console import err
from medai.errors import MedAIError

RayAddress = Annotated[str | None, typer.Option(
    "--ray", metavar="ADDR", envvar="MEDAI_RAY_ADDRESS", show_envvar=True,
    help="Run the heavy work on a Ray cluster: HOST:PORT of its head, 'auto' or 'local' (needs medai[scale]).")]


def predict_on_cluster(model_ref: str, input_path: Path | None, output: Path | None, address: str, batch_size: int,
                       explain: bool | None, top_k: int, out_of_range: str) -> None:
    from medai.cli import model_dir
    from medai.scale.batch import output_format, predict_batches
    from medai.scale.cluster import ray_session

    if input_path is None:
        raise MedAIError("--ray batch inference needs INPUT: a CSV/Parquet table, a folder of tables or of files")
    if output is None:
        raise MedAIError("--ray batch inference writes its predictions to a file: give -o OUT.parquet or OUT.csv")
    if out_of_range not in ("flag", "refuse"):
        raise MedAIError(f"--out-of-range must be flag or refuse, got {out_of_range!r}")
    output_format(output)
    directory, manifest = model_dir(model_ref)
    started = time.perf_counter()
    with ray_session(address):
        result = predict_batches(directory, manifest, Path(input_path), Path(output), batch_size=batch_size,
                                 explain=bool(explain), top_k=top_k, refuse_outside=out_of_range == "refuse")
    seconds = time.perf_counter() - started
    err.print(f"{result.rows} predictions written to {result.output} ({result.batches} batches on "
              f"{result.workers} workers, {result.rows / max(seconds, 1e-9):,.0f} records/s)", markup=False,
              highlight=False)


def register(app) -> None:
    """Add ``medai tune`` to ``app``."""
    from medai.cli import print_metrics, with_modality_options

    @app.command()
    @with_modality_options("train")
    def tune(
        task: Annotated[str | None, typer.Argument(help="A built-in task (see `medai tasks`).")] = None,
        data: Annotated[Path | None, typer.Option("--data", help="Your own data (a table, a folder, ...).")] = None,
        target: Annotated[str | None, typer.Option(help="Target column of --data.")] = None,
        kind: Annotated[str | None, typer.Option(help="binary, multiclass, multilabel or regression.")] = None,
        modality: Annotated[str | None, typer.Option(help="The modality that reads --data.")] = None,
        positive_label: Annotated[str | None, typer.Option(help="Value of the target that means 'positive'.")
                                  ] = None,
        learner: Annotated[str | None, typer.Option(help="The learner whose declared search space is searched.")
                           ] = None,
        trials: Annotated[int, typer.Option(help="Configurations tried (the learner's default is the first).")] = 16,
        objective: Annotated[str, typer.Option(help="val: validation score; cv: mean over folds of the training "
                                                    "records.")] = "val",
        folds: Annotated[int, typer.Option(help="Folds of the cv objective.")] = 3,
        seed: Annotated[int, typer.Option(help="Seed for the split, the search and the models.")] = 0,
        cv: Annotated[str | None, typer.Option(help="CV of the final model 'FOLDSxREPEATS' or 'none'.")] = None,
        out_dir: Annotated[Path | None, typer.Option("--out", help="Artifact directory of the tuned model.")] = None,
        name: Annotated[str | None, typer.Option(help="Registry name (default: the task name).")] = None,
        register: Annotated[bool, typer.Option(help="Register the tuned model.")] = True,
        storage: Annotated[Path | None, typer.Option(help="Where Ray Tune keeps trial results (shared storage on "
                                                          "a multi-machine cluster).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the tuning summary and metrics as JSON.")
                           ] = False,
        ray: RayAddress = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Search a learner's hyper-parameters with Ray Tune (ASHA), then train and package the best through the
        normal road. Without --ray it runs on a private Ray on this machine."""
        from medai.console import out, print_json
        from medai.road import TrainOptions
        from medai.scale.cluster import ray_session, resolve_address
        from medai.scale.tune import tune_and_train

        def say(message: str) -> None:
            err.print(message, markup=False, highlight=False)

        options = TrainOptions(learner=learner, kind=kind, target=target, positive_label=positive_label,
                               modality=modality, seed=seed, cv="task" if cv is None else cv,
                               show_progress=False, extra=extra or {}, say=say)
        with ray_session(resolve_address(ray) or "local"):
            outcome = tune_and_train(task, data, options, out_dir, trials=trials, objective=objective, folds=folds,
                                     storage=storage, say=say)
        result = outcome.train
        record = None
        if register:
            from medai.registry import Registry

            record = Registry().register(result.out, name=name)
        if as_json:
            return print_json({"tuning": result.metrics.get("tuning"), "test": result.metrics["test"]})
        tuning = result.metrics["tuning"]
        default = tuning["default_validation_score"]
        out.print(f"best of {tuning['trials']} trials ({tuning['stopped_early']} stopped early): validation "
                  f"{tuning['metric']} {tuning['best_validation_score']:.4f}"
                  + (f" vs default {default:.4f}" if default is not None else "") + f"; {tuning['best']}")
        print_metrics(result.metrics, title=f"{result.task.name} (tuned): test set (95% bootstrap CI)")
        where = f"; registered as {record.ref}" if record else ""
        out.print(f"model written to {result.out}{where}")
