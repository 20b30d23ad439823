"""Reaching a Ray cluster: ``--ray ADDRESS`` (or ``MEDAI_RAY_ADDRESS``) on every heavy command.

``ADDRESS`` is ``host:port`` of a running head (``ray start --head --port 6380``), ``auto`` (the cluster this
machine belongs to) or ``local`` (a private single-machine Ray started for this command and stopped after it).
:class:`LocalCluster` starts a real head and extra worker processes as separate ``ray start`` processes,
for tests and benchmarks, and stops exactly those processes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medai.errors import MedAIError

ENV_ADDRESS = "MEDAI_RAY_ADDRESS"
QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}


def require_ray():
    try:
        import ray
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise MedAIError("--ray needs Ray: install MedAI with the scale extra (pip install 'medai[scale]')") from None
    return ray


def resolve_address(address: str | None) -> str | None:
    """The cluster to use: the option, else ``MEDAI_RAY_ADDRESS``, else none (run here, in order)."""
    address = address if address not in (None, "") else os.environ.get(ENV_ADDRESS) or None
    if address is None:
        return None
    address = address.strip()
    if address in ("auto", "local") or address.startswith("ray://"):
        return address
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MedAIError(f"--ray: expected HOST:PORT of a Ray head (e.g. 127.0.0.1:6380), 'auto' or 'local', "
                         f"got {address!r}")
    return address


def connect(address: str, *, num_cpus: int | None = None):
    """Connect this process to the cluster at ``address`` (see the module doc); returns the ``ray`` module."""
    ray = require_ray()
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if ray.is_initialized():
        return ray
    attempts = 3 if address == "local" else 1  # a private Ray on a loaded machine may miss Ray's 30 s start-up
    for attempt in range(1, attempts + 1):
        try:
            if address == "local":
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            return ray
        except Exception as exc:  # Ray raises bare Exception when a node misses its start-up window
            ray.shutdown()
            if attempt == attempts:
                what = "start a private Ray here" if address == "local" else f"reach the Ray cluster at {address!r}"
                raise MedAIError(f"cannot {what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__} "
                                 "(start one with `ray start --head --port 6380`, or check --ray / "
                                 "MEDAI_RAY_ADDRESS)") from None
    return ray


@contextmanager
def ray_session(address: str | None) -> Iterator[object | None]:
    """Inside the block, independent work runs as Ray tasks on ``address`` (nothing changes when ``None``)."""
    address = resolve_address(address)
    if address is None:
        yield None
        return
    from medai.parallel import using
    from medai.scale.executor import RayExecutor

    ray = require_ray()
    owned = not ray.is_initialized()  # a connection made here is closed here; one made by the caller stays
    connect(address)
    try:
        with using(RayExecutor()) as executor:
            yield executor
    finally:
        if owned:
            ray.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalCluster:
    """A real Ray cluster on this machine: a head and ``workers`` extra worker nodes, each its own
    ``ray start --block`` process on loopback (dashboard off, usage stats off, never Redis's port 6379).
    :meth:`stop` ends exactly the processes it started (``ray stop`` would end every Ray on the machine)."""

    def __init__(self, head_cpus: int = 1, workers: int = 1, worker_cpus: int = 1,
                 object_store_mb: int = 100, port: int | None = None):
        self.head_cpus, self.workers, self.worker_cpus = head_cpus, workers, worker_cpus
        self.object_store = object_store_mb * 1024 * 1024
        self.port = port or free_port()
        if self.port == 6379:
            raise MedAIError("port 6379 belongs to Redis: give the Ray head another port")
        self.address = f"127.0.0.1:{self.port}"
        self.temp_dir = Path(tempfile.mkdtemp(prefix="medai-ray-"))
        self.processes: list[subprocess.Popen] = []

    def _ray(self, *args: str, log: str) -> subprocess.Popen:
        ray_bin = Path(sys.executable).with_name("ray")
        # Ray runs its workers at nice 15 by default; on a shared machine that starves them of any CPU (the
        # command's own niceness still applies to them).
        env = {**os.environ, **QUIET_ENV, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled"),
               "RAY_worker_niceness": os.environ.get("RAY_worker_niceness", "0")}
        handle = open(self.temp_dir / log, "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen([str(ray_bin), "start", "--block", *args], stdout=handle,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.processes.append(process)
        return process

    def start(self, timeout: float = 180, attempts: int = 3) -> LocalCluster:
        """Start the head, then the workers; a node that fails to come up is started again (Ray gives a node
        30 s to register, which a loaded machine can miss)."""
        common = ["--object-store-memory", str(self.object_store), "--node-ip-address", "127.0.0.1",
                  "--disable-usage-stats"]
        head = ["--head", "--port", str(self.port), "--num-cpus", str(self.head_cpus), "--include-dashboard=false",
                "--temp-dir", str(self.temp_dir), "--ray-client-server-port", str(free_port()), *common]
        self._start_node(head, "head.log", timeout, attempts)
        for k in range(self.workers):
            self._start_node(["--address", self.address, "--num-cpus", str(self.worker_cpus), *common],
                             f"worker{k}.log", timeout, attempts)
        return self

    def _start_node(self, args: list[str], log: str, timeout: float, attempts: int) -> None:
        for attempt in range(1, attempts + 1):
            process = self._ray(*args, log=log)
            state, text = self._wait_until_started(process, log, timeout)
            if state == "started":
                return
            self.processes.remove(process)
            _signal_group(process, signal.SIGKILL)
            process.wait(10)
            if attempt == attempts:
                self.stop()
                raise MedAIError(f"the local Ray cluster's node ({log}) did not start after {attempts} attempts: "
                                 f"{text.strip().splitlines()[-1] if text.strip() else state}")

    def _wait_until_started(self, process: subprocess.Popen, log: str, timeout: float) -> tuple[str, str]:
        """Until the node's ``ray start`` says the runtime started (it prints that once it is registered)."""
        deadline = time.monotonic() + timeout
        path = self.temp_dir / log
        while time.monotonic() < deadline:
            text = path.read_text(errors="replace") if path.is_file() else ""
            if "Ray runtime started" in text:
                return "started", text
            if process.poll() is not None:
                return "exited", text[-2000:]
            time.sleep(0.2)
        return "timed out", ""

    def add_worker_node(self, timeout: float = 180, attempts: int = 3) -> None:
        """Start one more worker node (e.g. after :meth:`kill_worker_node`)."""
        common = ["--object-store-memory", str(self.object_store), "--node-ip-address", "127.0.0.1",
                  "--disable-usage-stats"]
        self._start_node(["--address", self.address, "--num-cpus", str(self.worker_cpus), *common],
                         f"worker{len(self.processes)}.log", timeout, attempts)

    def kill_worker_node(self, index: int = 0) -> None:
        """End one worker node (its whole process group) at once, as a crash would."""
        process = self.processes.pop(1 + index)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)

    def stop(self, grace: float = 10) -> None:
        """End every process of the nodes this object started (their process groups), workers first."""
        for process in reversed(self.processes):
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in reversed(self.processes):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process, signal.SIGKILL)  # what is left of the group (workers of the raylet)
            process.wait(10)
        self.processes.clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
