# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""`medai serve` as a real uvicorn process on loopback: the typed client end to end, audit flushed on exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from test_service_support import wdbc_artifact, wdbc_rows  # noqa: F401

from medai.client import Client, ServiceError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_medai_serve_on_loopback(wdbc_artifact, wdbc_rows, medai_home):
    from medai.privacy.audit import AuditLog
    from medai.registry import Registry
    from medai.serving.keys import KeyStore

    Registry().register(wdbc_artifact, name="wdbc")
    _, key = KeyStore().create("live", "clinician")
    port = _free_port()
    medai = Path(sys.executable).parent / "medai"
    proc = subprocess.Popen(
        [str(medai), "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        client = Client(f"http://127.0.0.1:{port}", key=key, timeout=30)
        deadline = time.monotonic() + 60
        while True:
            try:
                assert client.health()["status"] == "ok"
                break
            except Exception:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        result = client.predict("wdbc", wdbc_rows[:2])
        assert [p["index"] for p in result["predictions"]] == [0, 1]
        try:
            Client(f"http://127.0.0.1:{port}", key=None).models()
            raise AssertionError("expected 401")
        except ServiceError as exc:
            assert exc.status_code == 401
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode in (0, -signal.SIGTERM), output  # uvicorn re-raises SIGTERM after a clean shutdown
    assert "Traceback" not in output
    rows = list(AuditLog().export())
    assert [r["action"] for r in rows if r["outcome"] == "ok"] == ["predict"]
    assert any(r["status_code"] == 401 for r in rows)
    assert AuditLog().verify().ok
