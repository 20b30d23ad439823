"""Service commands of the CLI (serve, keys, audit); registered on the main app by :func:`register`."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from medai.cli_scale import RayAddress
from medai.errors import MedAIError


def register(app: typer.Typer) -> None:
    """Add the service commands to ``app``."""
    keys_app = typer.Typer(help="API keys of the model service (stored as salted hashes).", no_args_is_help=True)
    audit_app = typer.Typer(help="The tamper-evident audit log of the model service.", no_args_is_help=True)
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")

    @app.command()
    def serve(
        host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port")] = 8000,
        workers: Annotated[int, typer.Option(help="worker processes (set MEDAI_REDIS_URL to share rate limits)")] = 1,
        ssl_certfile: Annotated[str | None, typer.Option(help="TLS certificate (PEM)")] = None,
        ssl_keyfile: Annotated[str | None, typer.Option(help="TLS private key (PEM)")] = None,
        log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
        ray: RayAddress = None,
        replicas: Annotated[int, typer.Option(help="with --ray: Ray Serve replicas of the service")] = 2,
    ) -> None:
        """Start the authenticated, audited model service (REST API under /v1); with --ray, as Ray Serve
        replicas on the cluster behind the same authentication, roles, rate limits and audit chain."""
        import uvicorn

        from medai.scale.cluster import ray_session, resolve_address

        if resolve_address(ray) is not None:
            if ssl_certfile:
                raise MedAIError("--ray serves plain HTTP through Ray Serve's proxy; put TLS in front of it (a "
                                 "load balancer or reverse proxy) rather than --ssl-certfile")
            from medai.scale.serve import serve_forever

            with ray_session(ray):
                serve_forever(replicas, host, port, say=lambda m: typer.echo(m, err=True))
            return

        if workers < 1:
            raise MedAIError(f"--workers: expected at least 1, got {workers}")
        if bool(ssl_certfile) != bool(ssl_keyfile):
            raise MedAIError("TLS needs both --ssl-certfile and --ssl-keyfile")
        if host not in ("127.0.0.1", "localhost", "::1") and not ssl_certfile:
            typer.echo(f"warning: serving on {host} without TLS; API keys travel in clear text", err=True)
        uvicorn.run(
            "medai.serving.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            log_level=log_level,
            access_log=False,
            server_header=False,
        )

    @keys_app.command("create")
    def keys_create(
        role: Annotated[str, typer.Option(help="viewer | clinician | admin")],
        name: Annotated[str, typer.Option(help="who or what uses the key")],
        expires_days: Annotated[float | None, typer.Option(help="days until the key expires")] = None,
    ) -> None:
        """Create an API key; it is printed once, as the last word of the last line."""
        from medai.serving.keys import KeyStore

        record, key = KeyStore().create(name, role, expires_days)
        expiry = record.expires_at.isoformat() if record.expires_at else "never"
        typer.echo(f"created key {record.key_id} (role {record.role}, name {record.name!r}, expires {expiry})")
        typer.echo("store it now; it cannot be shown again")
        typer.echo(f"key: {key}")

    @keys_app.command("list")
    def keys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """List API keys (ids, names, roles, state; never secrets)."""
        from medai.serving.keys import KeyStore

        rows = []
        for r in KeyStore().list():
            state = "revoked" if r.revoked else ("expired" if r.expired() else "active")
            rows.append(
                {
                    "key_id": r.key_id,
                    "name": r.name,
                    "role": r.role,
                    "state": state,
                    "created_at": r.created_at.isoformat(),
                    "expires_at": r.expires_at.isoformat() if r.expires_at else None,
                    "last_used_at": r.last_used_at.isoformat() if r.last_used_at else None,
                }
            )
        if as_json:
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title="API keys")
        for column in ("key_id", "name", "role", "state", "created_at", "expires_at", "last_used_at"):
            table.add_column(column)
        for row in rows:
            table.add_row(
                *(
                    str(row[c] or "")
                    for c in ("key_id", "name", "role", "state", "created_at", "expires_at", "last_used_at")
                )
            )
        Console().print(table)

    @keys_app.command("revoke")
    def keys_revoke(
        key_id: Annotated[str, typer.Argument(help="the key's id (from `medai keys list`)")],
    ) -> None:
        """Revoke an API key (takes effect at once here, within seconds in running servers)."""
        from medai.privacy.audit import AuditLog
        from medai.serving.keys import KeyStore

        record = KeyStore().revoke(key_id)
        AuditLog().record("cli_revoke_key", route="cli keys revoke", outcome="ok", detail={"revoked_key_id": key_id})
        typer.echo(f"revoked key {record.key_id} ({record.name}, role {record.role})")

    @audit_app.command("verify")
    def audit_verify() -> None:
        """Check the audit log's hash chain; exit 0 when intact, 1 naming the first bad record."""
        from medai.privacy.audit import AuditLog

        result = AuditLog().verify()
        if result.ok:
            typer.echo(f"audit log intact: {result.checked} records checked")
            return
        typer.echo(
            f"audit log TAMPERED: first bad record seq {result.first_bad_seq}: {result.reason} "
            f"({result.checked} records verified before it)",
            err=True,
        )
        # SystemExit, not typer.Exit: cli.main runs click with standalone_mode=False, which turns
        # typer.Exit into a return value and would lose the exit code
        raise SystemExit(1)

    @audit_app.command("export")
    def audit_export(
        since: Annotated[str | None, typer.Option(help="ISO date/time (UTC when no zone given)")] = None,
    ) -> None:
        """Print audit records as JSON lines (oldest first), each with its hashes for offline checking."""
        from medai.privacy.audit import AuditLog

        start = None
        if since:
            try:
                start = datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError:
                raise MedAIError(
                    f"--since: expected an ISO date/time such as 2026-01-31T12:00:00, got {since!r}"
                ) from None
            if start.tzinfo is None:
                start = start.replace(tzinfo=UTC)
        for row in AuditLog().export(since=start):
            sys.stdout.write(json.dumps(row, sort_keys=True, default=str) + "\n")
