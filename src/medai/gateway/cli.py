"""``medai gateway``: the Storage SCP in the foreground, and ``route`` (dry run), ``pull`` (DICOMweb) and
``status``. Registered by the imaging modality's ``register_cli``."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from medai.console import out, print_json
from medai.errors import MedAIError

gateway_app = typer.Typer(help="MedAI in the DICOM network: receive studies, run image models, send SR + overlays.",
                          invoke_without_command=True)

Rules = Annotated[Path | None, typer.Option("--rules", help="Routing rules (TOML): which model each series gets.")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Without --rules: one model for every image series.")]
SendTo = Annotated[str | None, typer.Option("--send-to", help="Results to AE@HOST:PORT (C-STORE) or a DICOMweb URL "
                                                              "(STOW-RS).")]


def _router(rules: Path | None, model: str | None):
    from medai.gateway.routing import Router

    if rules is not None and model is not None:
        raise MedAIError("give --rules or --model, not both")
    if rules is None and model is None:
        raise MedAIError("name the model(s) to run: --rules RULES.toml or --model NAME[:VERSION]")
    return Router.load(rules) if rules is not None else Router.single(model)


def _config(**kwargs):
    from medai.gateway.config import Destination, GatewayConfig

    send_to = kwargs.pop("send_to")
    return GatewayConfig(send_to=Destination.parse(send_to) if send_to else None, **kwargs)


@gateway_app.callback()
def gateway(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="DICOM port to listen on.")] = 11112,
    ae_title: Annotated[str, typer.Option("--ae-title", help="MedAI's AE title.")] = "MEDAI",
    allow_ae: Annotated[list[str] | None, typer.Option("--allow-ae", help="A calling AE title allowed to send "
                                                                          "(repeat); others are refused.")] = None,
    send_to: SendTo = None,
    rules: Rules = None,
    model: ModelOpt = None,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM) for DICOM over TLS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    tls_ca: Annotated[Path | None, typer.Option(help="CA (PEM) that client certificates must chain to.")] = None,
    settle: Annotated[float, typer.Option(help="Seconds without new instances after which a series whose "
                                               "association was aborted counts as complete.")] = 5.0,
    retention_hours: Annotated[float, typer.Option(help="Hours encrypted originals are kept after their series "
                                                        "is done (0: deleted at once).")] = 0.0,
    max_pending: Annotated[int, typer.Option(help="Queued instances past which C-STORE answers 'out of "
                                                  "resources' (back-pressure).")] = 2000,
    fhir_dir: Annotated[Path | None, typer.Option(help="Also write a FHIR DiagnosticReport + RiskAssessment "
                                                       "bundle per series here.")] = None,
) -> None:
    """Run the DICOM Storage SCP in the foreground (C-ECHO, C-STORE) until Ctrl-C or SIGTERM."""
    if ctx.invoked_subcommand is not None:
        return
    from medai.gateway.service import Gateway

    config = _config(host=host, port=port, ae_title=ae_title, allowed_aes=tuple(allow_ae or ()), send_to=send_to,
                     rules=rules, tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca, settle_s=settle,
                     retention_hours=retention_hours, max_pending=max_pending, fhir_dir=fhir_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gateway = Gateway(config, _router(rules, model))
    gateway.run_forever(lambda: out.print(
        f"MedAI gateway {config.ae_title} listening on {host}:{gateway.port}{' (TLS)' if tls_cert else ''}; "
        f"calling AE titles allowed: {', '.join(config.allowed_aes)}; results to "
        f"{config.send_to.describe() if config.send_to else 'nowhere (no --send-to)'}"))


@gateway_app.command("route")
def route(
    source: Annotated[Path, typer.Argument(help="A DICOM file or a folder of them (a study).")],
    rules: Rules = None,
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Dry run: which model each series would get, and why a series gets none."""
    from medai.gateway.routing import dry_run

    rows = dry_run(source, _router(rules, model))
    if as_json:
        return print_json(rows)
    table = Table(title=f"Routing of {source}")
    for column in ("series", "modality", "body part", "images", "size", "model", "why"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["series"][-24:], row.get("modality", ""), row.get("body_part", ""), str(row["instances"]),
                      row.get("size", ""), row["model"] or "[red]none[/red]", row["reason"])
    out.print(table)


@gateway_app.command("pull")
def pull(
    url: Annotated[str, typer.Option("--url", help="The PACS's DICOMweb base URL (QIDO-RS, WADO-RS).")],
    rules: Rules = None,
    model: ModelOpt = None,
    send_to: SendTo = None,
    since: Annotated[str | None, typer.Option(help="Only studies from this date on (YYYYMMDD).")] = None,
    poll: Annotated[float, typer.Option(help="Seconds between searches.")] = 30.0,
    once: Annotated[bool, typer.Option("--once", help="One search, process what it found, then exit.")] = False,
    fhir_dir: Annotated[Path | None, typer.Option(help="FHIR bundle per series here.")] = None,
) -> None:
    """Pull new studies from a PACS over DICOMweb; results go back by STOW-RS (default: the same URL)."""
    import socket

    from medai.gateway.pull import pull_once
    from medai.gateway.service import Gateway

    config = _config(listen=False, send_to=send_to or url, fhir_dir=fhir_dir,
                     worker_id=f"{socket.gethostname()}:pull"[:64])
    gateway = Gateway(config, _router(rules, model))
    gateway.store.requeue_own(config.worker_id)
    while True:
        counts = pull_once(url, gateway.store, gateway.spool, gateway.audit, study_date=since)
        out.print(f"pulled: {counts}")
        while gateway.processor.run_one() is not None:
            pass
        if once:
            break
        time.sleep(poll)


@gateway_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The queue: batches and instances by state, and the instances that were refused, unfit or failed."""
    from medai.gateway.store import GatewayStore

    summary = GatewayStore().summary()
    if as_json:
        return print_json(summary)
    out.print(f"batches: {summary['batches']}  instances: {summary['instances']}  "
              f"results sent: {summary['results_sent']}")
    if summary["problems"]:
        table = Table(title="Instances not processed")
        for column in ("SOP Instance UID", "status", "reason"):
            table.add_column(column)
        for problem in summary["problems"]:
            table.add_row(problem["sop_instance_uid"], problem["status"], problem["reason"] or "")
        out.print(table)
