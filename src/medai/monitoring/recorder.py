"""What the service does with each prediction for monitoring, off the request path.

:meth:`Recorder.observer` gives the road's ``observe`` hook (:class:`medai.road.model.Model`): it only enqueues the
batch (microseconds). A separate monitoring process (:class:`Recorder`) summarises the batches against the model's
reference (counts in the reference's bins, projected representations, scores - :func:`summarize`), merges those of
about a second per model version into one stored batch, and every ``check_s`` re-tests the latest window of the
models it saw, storing new alerts, posting them to the webhook and reporting the drift figures back for the
Prometheus gauges. Raw inputs live only in memory until their batch is summarised. A full queue drops monitoring
(never the prediction) and counts the drop.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import pandas as pd

from medai.monitoring.reference import feature_frame, prediction_frame, project, representation, summarize_columns

log = logging.getLogger("medai.monitoring")


@dataclass
class Observation:
    name: str
    version: int
    model: Any
    X: Any
    records: list[dict[str, Any]] | None
    scores: np.ndarray
    items: list[dict[str, Any]]
    record_ids: list[Any] | None
    ts: Any = None


def _answer(item: dict[str, Any]) -> Any:
    if "interval" in item:
        return [item["interval"]["low"], item["interval"]["high"]]
    if "prediction_set" in item:
        return list(item["prediction_set"])
    return None


def _score(row) -> Any:
    row = np.asarray(row, dtype=float)
    return float(row) if row.ndim == 0 else [float(v) for v in row.ravel()]


def summarize(obs: Observation, keys: list[str | None]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The stored summary of one observed batch (counts per reference bin) and its per-record rows."""
    model = obs.model
    reference = model.monitoring or {}
    X = obs.X
    if X is None and obs.records is not None and (reference.get("features") or reference.get("embedding")):
        X = model.modality.inputs_from_records(obs.records, model)
    summary = {"features": summarize_columns(reference.get("features") or [], feature_frame(X)),
               "predictions": summarize_columns(reference.get("predictions") or [],
                                                prediction_frame(obs.scores, model.target))}
    embeddings = [None] * len(obs.items)
    spec = reference.get("embedding")
    if spec is not None and X is not None:
        try:
            Z = representation(model.modality, model.learner, X)
            if Z is not None:
                embeddings = np.round(project(spec, Z, model.cache), 5).tolist()
        except Exception as exc:  # noqa: BLE001 - monitoring never breaks on one odd batch
            log.warning("no representation for %s: %s", obs.name, type(exc).__name__)
    scores = np.asarray(obs.scores)
    rows = [{"record_key": keys[i], "score": _score(scores[i]), "answer": _answer(item), "embedding": embeddings[i]}
            for i, item in enumerate(obs.items)]
    return summary, rows


def combine(group: list[Observation]) -> list[Observation]:
    """The observations of one model version as one, when their inputs concatenate (JSON records, tables, arrays
    of the same shape), so a second of single-record requests is summarised in one pass; else unchanged."""
    if len(group) < 2:
        return group
    first = group[0]
    records = X = None
    try:
        if all(o.X is None and o.records is not None for o in group):
            records = [r for o in group for r in o.records]
        elif all(isinstance(o.X, pd.DataFrame) for o in group):
            X = pd.concat([o.X for o in group], ignore_index=True)
        elif all(isinstance(o.X, np.ndarray) for o in group) and len({o.X.shape[1:] for o in group}) == 1:
            X = np.concatenate([o.X for o in group])
        else:
            return group
        scores = np.concatenate([np.asarray(o.scores) for o in group])
    except ValueError:
        return group
    ids = None
    if any(o.record_ids is not None for o in group):
        ids = [rid for o in group for rid in (o.record_ids or [None] * len(o.items))]
    return [Observation(first.name, first.version, first.model, X, records, scores,
                        [item for o in group for item in o.items], ids)]


def merge_summaries(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {group: {name: {"c": dict(v["c"]), "m": v["m"]} for name, v in a.get(group, {}).items()}
           for group in ("features", "predictions")}
    for group in ("features", "predictions"):
        for name, value in b.get(group, {}).items():
            slot = out[group].setdefault(name, {"c": {}, "m": 0})
            for bin_, count in value["c"].items():
                slot["c"][bin_] = slot["c"].get(bin_, 0) + count
            slot["m"] += value["m"]
    return out


def record(store, obs: Observation) -> int:
    """Summarise and store one batch now (the replay tool and tests; the service goes through :class:`Recorder`)."""
    keys = [None if obs.record_ids is None else store.key(obs.name, rid) for rid in (obs.record_ids or
                                                                                      [None] * len(obs.items))]
    summary, rows = summarize(obs, keys)
    return store.add_batch(obs.name, obs.version, len(obs.items), summary, rows, ts=obs.ts)


@dataclass(frozen=True)
class ModelRef:
    """Where a separate monitoring process loads a served model from: its artifact and registered manifest."""

    artifact_path: str
    manifest: Any = None

    def load(self):
        from medai.road.model import load_model

        return load_model(self.artifact_path, expected_manifest=self.manifest)


def _slim(item: dict[str, Any]) -> dict[str, Any]:
    """What monitoring keeps of one answered item (its conformal answer), so explanations never cross over."""
    return {key: item[key] for key in ("interval", "prediction_set") if key in item}


def _in_memory(store) -> bool:
    url = store.engine.url
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


class Recorder:
    """The service's monitoring writer (see the module docs).

    The summaries run in a separate process (a ``forkserver`` child that loads each served model from its
    artifact) so that their CPU never competes with the request path for the interpreter lock: under load they
    cost about 45 ms per second in one burst, and every request in flight waited for it. A database that lives in
    this process's memory cannot be shared, so there (and with ``process=False``) the same writer runs in a
    thread. The protocol is the same either way: observations and commands go in, acknowledgements come back."""

    def __init__(self, store, *, flush_s: float = 1.0, check_s: float | None = None, max_queue: int = 2_000,
                 metrics=None, process: bool | None = None) -> None:
        self.store = store
        self.flush_s = flush_s
        self.check_s = float(os.environ.get("MEDAI_MONITOR_CHECK_S", "60")) if check_s is None else check_s
        self.metrics = metrics
        self.process = (not _in_memory(store)) if process is None else process
        self.max_queue = max_queue
        self.dropped = 0
        self.written = 0
        self._inbox = self._outbox = self._worker = self._listener = self._sender = None
        self._start_lock = threading.Lock()
        self._replies: dict[int, Any] = {}
        self._waiting: dict[int, threading.Event] = {}
        self._tokens = 0

    @property
    def pid(self) -> int | None:
        """The monitoring process's id (None before the first observation, or when the writer is a thread)."""
        return self._worker.pid if self.process and self._worker is not None else None

    # -- the request path ---------------------------------------------------------------------------------
    def observer(self, record, model, record_ids: list[Any] | None = None):
        """The ``observe`` hook for one request to ``record``'s model."""
        name, version = record.name, int(record.version)
        source = ModelRef(str(record.artifact_path), record.manifest) if self.process else model

        def observe(X, records, scores, items) -> None:
            self.submit(Observation(name, version, source, X, records, np.asarray(scores),
                                    [_slim(item) for item in items], record_ids))

        return observe

    def submit(self, obs: Observation) -> None:
        self._start()
        try:
            self._inbox.put_nowait(obs)
        except queue.Full:
            self.dropped += 1
            if self.metrics is not None:
                self.metrics.monitor_dropped.inc(len(obs.items))

    def mark(self, record, model) -> None:
        """Have the next check test ``record``'s model (e.g. after outcomes arrived)."""
        source = ModelRef(str(record.artifact_path), record.manifest) if self.process else model
        self._start()
        self._inbox.put(("mark", record.name, int(record.version), source))

    # -- commands that wait --------------------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted so far is stored (tests, reports, shutdown); False on timeout."""
        if self._inbox is None:
            return True
        return self._ask("flush", timeout) is not None

    def check_now(self, timeout: float = 120.0) -> list[dict[str, Any]]:
        """Test the latest window of every model version seen since the last check; store and send new alerts.
        Returns the new alerts."""
        self._start()
        return self._ask("check", timeout) or []

    def close(self, timeout: float = 30.0) -> None:
        if self._inbox is None:
            return
        self.flush(timeout)
        self._inbox.put(None)
        if self.process:  # the process ends when its input does; its output pipe then ends the listener
            self._sender.join(timeout)
            try:
                self._worker.wait(timeout)
            except subprocess.TimeoutExpired:
                self._worker.kill()
                self._worker.wait(5)
        else:
            self._worker.join(timeout)
            self._outbox.put(None)
        self._listener.join(5)
        self._inbox = None

    def _ask(self, command: str, timeout: float):
        with self._start_lock:
            self._tokens += 1
            token = self._tokens
            done = self._waiting[token] = threading.Event()
        self._inbox.put((command, token))
        done.wait(timeout)
        with self._start_lock:
            self._waiting.pop(token, None)
            return self._replies.pop(token, None)

    # -- the writer and what it reports back ---------------------------------------------------------------
    def _start(self) -> None:
        if self._inbox is not None:
            return
        with self._start_lock:
            if self._inbox is not None:
                return
            args = dict(flush_s=self.flush_s, check_s=self.check_s)
            inbox = queue.Queue(self.max_queue)
            if self.process:
                worker, to_child, outbox = self._spawn(args)
                self._sender = threading.Thread(target=_send_all, args=(inbox, to_child), daemon=True,
                                                name="medai-monitor-sender")
                self._sender.start()
            else:
                outbox = queue.Queue()
                worker = threading.Thread(target=_Writer(self.store, outbox, **args).run, args=(inbox,),
                                          name="medai-monitor", daemon=True)
                worker.start()
            self._listener = threading.Thread(target=self._listen, args=(outbox,), name="medai-monitor-replies",
                                              daemon=True)
            self._listener.start()
            self._worker, self._outbox, self._inbox = worker, outbox, inbox

    def _spawn(self, args: dict[str, Any]):
        """Start ``python -m medai.monitoring.recorder`` with a pipe each way. A fresh interpreter (no fork of a
        threaded server, no re-import of the caller's main module); it inherits this process's environment, and
        the end of its input pipe - this process exiting or being killed - ends it."""
        down_read, down_write = os.pipe()
        up_read, up_write = os.pipe()
        try:
            child = subprocess.Popen([sys.executable, "-m", "medai.monitoring.recorder", str(down_read),
                                      str(up_write)], pass_fds=(down_read, up_write), stdin=subprocess.DEVNULL)
        finally:
            os.close(down_read)
            os.close(up_write)
        to_child, from_child = Connection(down_write, readable=False), Connection(up_read, writable=False)
        to_child.send({"url": self.store.engine.url.render_as_string(hide_password=False),
                       "secret": self.store.secret, **args})
        return child, to_child, _Pipe(from_child)

    def _listen(self, outbox) -> None:
        while True:
            try:
                message = outbox.get()
            except (EOFError, OSError):  # the monitoring process is gone
                message = None
            if message is None:
                self._release()
                return
            kind = message[0]
            if kind == "written":
                self.written += message[1]
            elif kind == "drift" and self.metrics is not None:
                self.metrics.update_drift(*message[1:])
            elif kind == "reply":
                with self._start_lock:
                    if message[1] in self._waiting:
                        self._replies[message[1]] = message[2]
                        self._waiting[message[1]].set()

    def _release(self) -> None:
        """Wake every caller waiting for a reply that will not come."""
        with self._start_lock:
            for done in self._waiting.values():
                done.set()


class _Pipe:
    """One end of a pipe between the service and its monitoring process, read and written like a queue."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def get(self, timeout: float | None = None):
        if timeout is not None and not self.connection.poll(timeout):
            raise queue.Empty
        try:
            return self.connection.recv()
        except (EOFError, OSError):
            return None  # the other side is gone: stop

    def put(self, message) -> None:
        self.connection.send(message)


def _send_all(inbox: queue.Queue, connection: Connection) -> None:
    """The service's sender thread: pickling and writing happen here, never on a request."""
    while True:
        message = inbox.get()
        try:
            connection.send(message)
        except OSError:
            log.warning("the monitoring process is gone; monitoring stops until the service restarts")
            return
        if message is None:
            connection.close()
            return


def _main(argv: list[str]) -> None:
    """The monitoring process (see :meth:`Recorder._spawn`)."""
    from medai.monitoring.store import MonitorStore

    inbox = _Pipe(Connection(int(argv[0]), writable=False))
    outbox = _Pipe(Connection(int(argv[1]), readable=False))
    setup = inbox.get()
    if setup is None:
        return
    store = MonitorStore(setup.pop("url"), secret=setup.pop("secret"))
    _skip_fsync(store.engine)
    _Writer(store, outbox, **setup).run(inbox)


def _skip_fsync(engine) -> None:
    """Monitoring summaries are not the audit trail: on SQLite this process commits without waiting for the disk
    (WAL with ``synchronous=NORMAL``: never corrupt, at worst the last summaries lost at a power cut), so it holds
    the database's write turn, which every audit append of the service queues on, for a fraction of the time."""
    if engine.dialect.name != "sqlite":
        return
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _normal(dbapi_connection, _record) -> None:
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    engine.dispose()  # connections opened before the listener are closed


class _Writer:
    """Summarises the observations of about ``flush_s`` per model version into one stored batch, and every
    ``check_s`` re-tests the latest window of the models it saw (new alerts stored and sent to the webhook, drift
    figures reported back for the Prometheus gauges)."""

    def __init__(self, store, outbox, *, flush_s: float, check_s: float) -> None:
        self.store = store
        self.outbox = outbox
        self.flush_s = flush_s
        self.check_s = check_s
        self._models: dict[tuple[str, int], Any] = {}
        self._seen: dict[tuple[str, int], Any] = {}
        self._last_check = time.monotonic()
        self._last_purge = 0.0

    def model(self, name: str, version: int, source) -> Any:
        if not isinstance(source, ModelRef):
            return source
        key = (name, version)
        if key not in self._models:
            self._models[key] = source.load()
        return self._models[key]

    def run(self, inbox) -> None:
        pending: list[Observation] = []
        deadline = 0.0
        while True:
            wait = max(0.0, deadline - time.monotonic()) if pending else 0.25
            try:
                message = inbox.get(timeout=wait)
            except queue.Empty:
                message = ()
            if isinstance(message, Observation):
                if not pending:
                    deadline = time.monotonic() + self.flush_s
                pending.append(message)
                if time.monotonic() < deadline and sum(len(o.items) for o in pending) < 5_000:
                    continue
            if pending:
                self._write(pending)
                pending = []
            if message is None:
                return
            if message and message[0] == "mark":
                self._seen[(message[1], message[2])] = message[3]
            elif message and message[0] == "flush":
                self.outbox.put(("reply", message[1], True))
            elif message and message[0] == "check":
                self.outbox.put(("reply", message[1], self.check_now()))
            self._periodic()

    def _write(self, observations: list[Observation]) -> None:
        groups: dict[tuple[str, int], list[Observation]] = {}
        for obs in observations:
            groups.setdefault((obs.name, obs.version), []).append(obs)
        for (name, version), group in groups.items():
            try:
                model = self.model(name, version, group[-1].model)
                summary: dict[str, Any] = {"features": {}, "predictions": {}}
                rows: list[dict[str, Any]] = []
                for obs in combine(group):  # one vectorised pass over the requests of this flush where possible
                    obs.model = model
                    keys = ([None] * len(obs.items) if obs.record_ids is None
                            else [None if rid is None else self.store.key(name, rid) for rid in obs.record_ids])
                    part, part_rows = summarize(obs, keys)
                    summary = merge_summaries(summary, part)
                    rows += part_rows
                self.store.add_batch(name, version, len(rows), summary, rows)
                self.outbox.put(("written", len(rows)))
                self._seen[(name, version)] = group[-1].model
            except Exception as exc:  # noqa: BLE001 - monitoring never takes the service down
                log.warning("monitoring batch of %s could not be stored: %s", name, type(exc).__name__)

    def check_now(self) -> list[dict[str, Any]]:
        from medai.monitoring.analysis import analyse

        fresh: list[dict[str, Any]] = []
        seen, self._seen = self._seen, {}
        for (name, version), source in seen.items():
            try:
                report = analyse(self.store, name, version, self.model(name, version, source), latest_only=True)
            except Exception as exc:  # noqa: BLE001
                log.warning("monitoring check of %s failed: %s", name, type(exc).__name__)
                continue
            self.outbox.put(("drift", name, version, {"drift": report["drift"][-1:],
                                                      "status": {"current_alerts": report.get("status", {}).get(
                                                          "current_alerts", [])}}))
            if report["new_alerts"]:
                fresh += report["new_alerts"]
                notify(report["new_alerts"], report["settings"].get("webhook"))
        return fresh

    def _periodic(self) -> None:
        now = time.monotonic()
        if self._seen and now - self._last_check >= self.check_s:
            self._last_check = now
            self.check_now()
        if now - self._last_purge >= 3600:
            self._last_purge = now
            try:
                self.store.purge()
            except Exception as exc:  # noqa: BLE001
                log.warning("monitoring purge failed: %s", type(exc).__name__)


def notify(alerts: list[dict[str, Any]], webhook: str | None = None, timeout: float = 5.0) -> bool:
    """POST new alerts as JSON to the model's webhook (or ``MEDAI_MONITOR_WEBHOOK``); False when none is set or the
    post failed (logged without the URL's query, which may hold a token)."""
    url = webhook or os.environ.get("MEDAI_MONITOR_WEBHOOK")
    if not url or not alerts:
        return False
    import httpx

    body = {"source": "medai", "alerts": [{k: a[k] for k in ("model", "version", "category", "subject", "value",
                                                             "message")} for a in alerts]}
    try:
        response = httpx.post(url, json=body, timeout=timeout)
        response.raise_for_status()
        return True
    except Exception as exc:  # noqa: BLE001
        log.warning("alert webhook %s failed: %s", url.split("?")[0], type(exc).__name__)
        return False


if __name__ == "__main__":
    from medai.monitoring import recorder

    recorder._main(sys.argv[1:])
