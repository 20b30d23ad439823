"""Shared pieces of the service benchmarks (fuzzing, load, crash safety): a MEDAI_HOME with a trained model,
a real `medai serve` process on loopback, its memory, and clean shutdown. Every loop here is bounded."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PY = sys.executable
BIN = Path(PY).parent
ROOT = Path(__file__).resolve().parents[1]


def offline_env(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MEDAI_HOME=str(home),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        RAY_USAGE_STATS_ENABLED="0",
        TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS="",
        MPLBACKEND="Agg",
    )
    shared = ROOT.parent / "shared" / "data"
    if "MEDAI_DATA_DIR" not in env and shared.is_dir():
        env["MEDAI_DATA_DIR"] = str(shared)
    env.pop("MEDAI_DATABASE_URL", None)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_wdbc(home: Path) -> Path:
    """A breast-cancer (WDBC) tabular model registered as ``wdbc`` in ``home`` (about 3 s)."""
    out = home / "artifacts" / "wdbc"
    code = (
        "from medai.road import TrainOptions, train_task\n"
        "from medai.registry import Registry\n"
        f"train_task('breast-cancer-wdbc', {str(out)!r}, "
        "TrainOptions(seed=0, cv=None, n_boot=50, show_progress=False))\n"
        f"Registry().register({str(out)!r}, name='wdbc')\n"
    )
    subprocess.run([PY, "-c", code], env=offline_env(home), check=True)
    return out


def create_key(home: Path, role: str, env: dict[str, str] | None = None) -> str:
    code = (
        "from medai.serving.keys import KeyStore\n"
        f"print(KeyStore().create('bench-{role}', {role!r})[1])\n"
    )
    out = subprocess.run([PY, "-c", code], env=env or offline_env(home), check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def wdbc_rows(n: int = 1) -> list[dict[str, float]]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"]).head(n)
    return [{k: float(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


class Server:
    """``medai serve`` as a child process (its own process group) on a free loopback port."""

    def __init__(self, home: Path, workers: int = 1, env: dict[str, str] | None = None, log: Path | None = None):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log or home / f"server-{self.port}.log"
        cmd = [str(BIN / "medai"), "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--workers", str(workers), "--log-level", "warning"]
        self._out = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd, env=env or offline_env(home), stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_up(self, timeout: float = 120.0) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not answer within {timeout} s; see {self.log}")

    def pids(self) -> list[int]:
        """The server process and its worker processes."""
        out = subprocess.run(["pgrep", "-g", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()] or [self.proc.pid]

    def rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def kill(self) -> None:
        """SIGKILL the whole process group (the server and its workers), at once."""
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self._out.close()

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self._out.close()
