"""``medai monitor``: the monitoring report, late outcomes from a file, per-model thresholds, the replay tool and
the retention purge. Everything reads and writes the same database as the service (``MEDAI_DATABASE_URL``)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated

import typer

from medai.errors import MedAIError


def _registered(ref: str):
    from medai.registry import Registry
    from medai.road import load_model

    try:
        record = Registry().resolve(ref)
    except MedAIError:
        raise MedAIError(f"{ref!r} is not a registered model (NAME[:VERSION]); monitoring follows registered "
                         "models (medai models)") from None
    return record, load_model(record.artifact_path, expected_manifest=record.manifest)


def print_report(report: dict, plots_dir: Path | None = None) -> None:
    from rich.table import Table

    from medai.console import fmt, out

    counts = report["counts"]
    out.print(f"[bold]{report['model']}[/] v{report['version']} ({report['kind']}): {counts['served']} records "
              f"served, {counts['with_outcome']} with an outcome")
    if report["reference"] is None:
        out.print("no training reference in this artifact (trained before monitoring): retrain to measure drift")
    if report["drift"]:
        window = report["drift"][-1]
        table = Table(title=f"Drift, latest window ({window['n']} records; BH at "
                            f"{report['settings']['fdr']}, PSI floor {report['settings']['psi_min']})")
        for column in ("group", "column", "test", "statistic", "PSI", "p", "p (BH)", "drift"):
            table.add_column(column)
        tests = sorted(window["tests"], key=lambda t: (not t["drift"], -(t["psi"] or 0)))
        for t in tests[:15]:
            table.add_row(t["group"], t["name"], t["test"], fmt(t["statistic"]), fmt(t["psi"]), fmt(t["p"], 4),
                          fmt(t["p_adjusted"], 4), "[red]yes[/]" if t["drift"] else "no")
        out.print(table)
        out.print(f"windows tested: {len(report['drift'])}; drifted in the latest: "
                  f"{', '.join(window['drifted']) or 'none'}")
    else:
        out.print(f"no drift window yet (needs {report['settings']['min_window']} served records)")
    if report["performance"]:
        window = report["performance"][-1]
        table = Table(title=f"Performance on the latest {window['n']} outcomes vs validated (test split)")
        for column in ("metric", "now", "95% CI", "validated", "validated CI"):
            table.add_column(column)
        for metric, value in window["metrics"].items():
            if not isinstance(value, dict) or "value" not in value:
                continue
            ref = report["validated"]["test"].get(metric) or {}
            table.add_row(metric, fmt(value["value"]), f"[{fmt(value['ci_low'])}, {fmt(value['ci_high'])}]",
                          fmt(ref.get("value")), f"[{fmt(ref.get('ci_low'))}, {fmt(ref.get('ci_high'))}]")
        if window.get("coverage"):
            c = window["coverage"]
            table.add_row("conformal coverage", fmt(c["value"]), f"[{fmt(c['ci_low'])}, {fmt(c['ci_high'])}]",
                          f"nominal {fmt(c['nominal'])}", "")
        out.print(table)
    for message in report["status"]["current_alerts"]:
        out.print(f"[red]alert[/]: {message}")
    if not report["status"]["current_alerts"]:
        out.print("no alert on the latest windows")
    if plots_dir is not None:
        from medai.monitoring.plots import report_plots

        plots_dir.mkdir(parents=True, exist_ok=True)
        for name, data in report_plots(report).items():
            (plots_dir / f"{name}.png").write_bytes(base64.b64decode(data))
            out.print(f"plot written: {plots_dir / (name + '.png')}")


def register(app: typer.Typer) -> None:
    monitor = typer.Typer(help="Drift and performance monitoring of served models.", no_args_is_help=True)
    app.add_typer(monitor, name="monitor")

    @monitor.command("report")
    def report_command(
        model: Annotated[str, typer.Argument(help="registered model NAME[:VERSION]")],
        as_json: Annotated[bool, typer.Option("--json", help="the whole report as JSON")] = False,
        plots: Annotated[Path | None, typer.Option(help="write drift.png and performance.png here")] = None,
    ) -> None:
        """Drift of the served records against the training reference, performance from late outcomes, alerts."""
        from medai.monitoring.analysis import analyse
        from medai.monitoring.recorder import notify
        from medai.monitoring.store import MonitorStore

        record, loaded = _registered(model)
        store = MonitorStore()
        result = analyse(store, record.name, record.version, loaded)
        notify(result["new_alerts"], result["settings"].get("webhook"))
        if as_json:
            from medai.console import print_json

            print_json(result)
            return
        print_report(result, plots)

    @monitor.command("outcomes")
    def outcomes_command(
        file: Annotated[Path, typer.Argument(help="a table (CSV, Parquet, ...) of record ids and outcomes")],
        model: Annotated[str, typer.Option(help="registered model NAME the predictions were made with")],
        id_column: Annotated[str, typer.Option(help="column of the record ids sent with predictions")] = "record_id",
        outcome_column: Annotated[str, typer.Option(help="column of the observed outcomes")] = "outcome",
    ) -> None:
        """Join outcomes that arrived late to the predictions made for the same record ids."""
        import numpy as np

        from medai.console import out
        from medai.data.tables import read_table
        from medai.monitoring.store import MonitorStore, check_record_ids

        record, loaded = _registered(model)
        if not file.is_file():
            raise MedAIError(f"{file}: no such file")
        frame = read_table(file)
        for column in (id_column, outcome_column):
            if column not in frame.columns:
                raise MedAIError(f"{file.name}: no column {column!r}; columns are {list(frame.columns)} "
                                 "(name them with --id-column / --outcome-column)")
        frame = frame[[id_column, outcome_column]]
        known = frame[outcome_column].notna()
        if not known.any():
            raise MedAIError(f"{file.name}: column {outcome_column!r} has no values")
        frame = frame.loc[known].reset_index(drop=True)
        ids = [str(v) for v in frame[id_column]]
        check_record_ids(ids, len(frame), f"{file.name}: column {id_column!r}")
        values = np.asarray(frame[outcome_column].to_numpy(), dtype=object)
        loaded.target.encode(values, f"{file.name}: column {outcome_column!r}")
        plain = [v.item() if hasattr(v, "item") else v for v in values]
        counts = MonitorStore().add_outcomes(record.name, list(zip(ids, plain, strict=True)))
        out.print(f"{counts['received']} outcomes read, {counts['matched']} joined to predictions of "
                  f"{record.name}, {counts['unmatched']} ids without a stored prediction")

    @monitor.command("settings")
    def settings_command(
        model: Annotated[str, typer.Argument(help="registered model NAME")],
        set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE (window, step, min_window, fdr, "
                                                       "psi_min, outcome_window, min_outcomes, floor.METRIC, "
                                                       "webhook, history); repeatable")] = None,
    ) -> None:
        """Show or change a model's monitoring thresholds."""
        from medai.console import print_json
        from medai.monitoring.store import MonitorSettings, MonitorStore

        record, _ = _registered(model)
        store = MonitorStore()
        current = store.settings(record.name).to_json()
        for item in set_ or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise MedAIError(f"--set {item!r}: expected KEY=VALUE")
            key = key.strip()
            if key.startswith("floor."):
                current["floors"][key[6:]] = _number(key, value)
            elif key == "webhook":
                current["webhook"] = value or None
            elif key in current:
                current[key] = _number(key, value, whole=key not in ("fdr", "psi_min"))
            else:
                raise MedAIError(f"--set {key!r}: unknown setting; settings are {', '.join(sorted(current))}")
        settings = MonitorSettings.from_json(current)
        if set_:
            store.put_settings(record.name, settings)
        print_json(settings.to_json())

    @monitor.command("simulate")
    def simulate_command(
        model: Annotated[str, typer.Argument(help="registered model NAME[:VERSION]")],
        data: Annotated[Path, typer.Option(help="labelled records to replay (any input the model reads)")],
        shift: Annotated[list[str] | None, typer.Option(help="COLUMN*F, COLUMN+D, noise=SD, scale=F, "
                                                        "prevalence=P; repeatable")] = None,
        shift_at: Annotated[float, typer.Option(help="share of the replay before the shift starts")] = 0.5,
        batch: Annotated[int, typer.Option(help="records per replayed request")] = 50,
        outcomes: Annotated[bool, typer.Option(help="send the labels as late outcomes")] = True,
        seed: Annotated[int, typer.Option(help="shuffle and noise seed")] = 0,
        as_json: Annotated[bool, typer.Option("--json")] = False,
        plots: Annotated[Path | None, typer.Option(help="write drift.png and performance.png here")] = None,
    ) -> None:
        """Replay a data set through a model with an injected shift, then show the monitoring report."""
        from medai.console import out, print_json
        from medai.monitoring.analysis import analyse
        from medai.monitoring.simulate import parse_shift, simulate
        from medai.monitoring.store import MonitorStore

        shifts = [parse_shift(s) for s in shift or []]
        record, loaded = _registered(model)
        if not data.exists():
            raise MedAIError(f"{data}: no such file or folder")
        try:
            inputs = loaded.modality.read_inputs(data, loaded, labelled=True)
        except MedAIError:
            if any(s.kind == "prevalence" for s in shifts) or outcomes:
                raise
            inputs = loaded.modality.read_inputs(data, loaded, labelled=False)
        store = MonitorStore()
        replay = simulate(store, record.name, record.version, loaded, inputs, shifts, shift_at=shift_at, batch=batch,
                          outcomes=outcomes, seed=seed, run=f"sim{seed}")
        result = analyse(store, record.name, record.version, loaded)
        if as_json:
            print_json({"replay": replay, "report": result})
            return
        sent = replay["outcomes"]
        out.print(f"replayed {replay['replayed']} records in batches of {batch}; shift "
                  f"{', '.join(replay['shifts']) or 'none'} from record {replay['shifted_from']}"
                  + (f"; {sent['matched']} outcomes joined" if sent else ""))
        print_report(result, plots)

    @monitor.command("purge")
    def purge_command(
        days: Annotated[float | None, typer.Option(help="keep this many days (default MEDAI_MONITOR_RETENTION_DAYS "
                                                        "or 90)")] = None,
    ) -> None:
        """Delete monitoring rows older than the retention (the service does it hourly)."""
        from medai.console import out
        from medai.monitoring.store import MonitorStore

        if days is not None and not days > 0:
            raise MedAIError(f"--days must be positive, got {days}")
        counts = MonitorStore().purge(days)
        out.print(f"deleted {counts['batches']} batch summaries and {counts['predictions']} prediction rows")


def _number(key: str, value: str, whole: bool = False):
    try:
        number = float(value)
    except ValueError:
        raise MedAIError(f"--set {key}: expected a number, got {value!r}") from None
    if whole:
        if not number.is_integer():
            raise MedAIError(f"--set {key}: expected a whole number, got {value!r}")
        return int(number)
    return number

