"""What the service does with each prediction for monitoring, off the request path.

:meth:`Recorder.observe` is the road's ``observe`` hook (:class:`medai.road.model.Model`): it only enqueues the
batch (microseconds); a background thread summarises it against the model's reference (counts in the reference's
bins, projected representations, scores - :func:`summarize`), merges the batches of about a second per model
version into one stored batch, and every ``check_s`` re-tests the latest window of the models it saw, storing new
alerts, posting them to the webhook and updating the Prometheus gauges. Raw inputs live only in memory until their
batch is summarised. A full queue drops monitoring (never the prediction) and counts the drop.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
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


class Recorder:
    """The service's background monitoring writer (see the module docs)."""

    def __init__(self, store, *, flush_s: float = 1.0, check_s: float | None = None, max_queue: int = 2_000,
                 metrics=None, model_for=None) -> None:
        self.store = store
        self.flush_s = flush_s
        self.check_s = float(os.environ.get("MEDAI_MONITOR_CHECK_S", "60")) if check_s is None else check_s
        self.metrics = metrics
        self.model_for = model_for  # (name, version) -> loaded model, for checks of models not seen lately
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[Observation | None] = queue.Queue(maxsize=max_queue)
        self._seen: dict[tuple[str, int], Any] = {}
        self._last_check = time.monotonic()
        self._last_purge = 0.0
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="medai-monitor", daemon=True)
        self._thread.start()

    def observer(self, name: str, version: int, model, record_ids: list[Any] | None = None):
        """The ``observe`` hook for one request."""

        def observe(X, records, scores, items) -> None:
            self.submit(Observation(name, int(version), model, X, records, np.asarray(scores), items, record_ids))

        return observe

    def submit(self, obs: Observation) -> None:
        try:
            self._idle.clear()
            self._queue.put_nowait(obs)
        except queue.Full:
            self.dropped += 1
            if self.metrics is not None:
                self.metrics.monitor_dropped.inc(len(obs.items))

    def mark(self, name: str, version: int, model) -> None:
        """Have the next check test ``name`` (e.g. after outcomes arrived)."""
        self._seen[(name, int(version))] = model

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything submitted so far is stored (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and self._idle.is_set():
                return
            time.sleep(0.02)

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
        self._queue.put(None)
        self._thread.join(timeout)

    def check_now(self) -> list[dict[str, Any]]:
        """Test the latest window of every model version seen since the last check; store and send new alerts."""
        from medai.monitoring.analysis import analyse

        fresh: list[dict[str, Any]] = []
        seen, self._seen = self._seen, {}
        for (name, version), model in seen.items():
            try:
                report = analyse(self.store, name, version, model, latest_only=True)
            except Exception as exc:  # noqa: BLE001
                log.warning("monitoring check of %s failed: %s", name, type(exc).__name__)
                continue
            if self.metrics is not None:
                self.metrics.update_drift(name, version, report)
            if report["new_alerts"]:
                fresh += report["new_alerts"]
                notify(report["new_alerts"], report["settings"].get("webhook"))
        return fresh

    # -- the thread --------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=0.25)
            except queue.Empty:
                self._idle.set()
                self._periodic()
                continue
            if first is None:
                self._idle.set()
                return
            pending = [first]
            stop = False
            deadline = time.monotonic() + self.flush_s
            while time.monotonic() < deadline and sum(len(o.items) for o in pending) < 5_000:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                pending.append(item)
            self._write(pending)
            if self._queue.empty():
                self._idle.set()
            if stop:
                return
            self._periodic()

    def _write(self, observations: list[Observation]) -> None:
        groups: dict[tuple[str, int], list[Observation]] = {}
        for obs in observations:
            groups.setdefault((obs.name, obs.version), []).append(obs)
        for (name, version), group in groups.items():
            try:
                summary: dict[str, Any] = {"features": {}, "predictions": {}}
                rows: list[dict[str, Any]] = []
                for obs in combine(group):  # one vectorised pass over the requests of this flush where possible
                    keys = ([None] * len(obs.items) if obs.record_ids is None
                            else [None if rid is None else self.store.key(name, rid) for rid in obs.record_ids])
                    part, part_rows = summarize(obs, keys)
                    summary = merge_summaries(summary, part)
                    rows += part_rows
                self.store.add_batch(name, version, len(rows), summary, rows)
                self.written += len(rows)
                self._seen[(name, version)] = group[-1].model
            except Exception as exc:  # noqa: BLE001 - monitoring never takes the service down
                log.warning("monitoring batch of %s could not be stored: %s", name, type(exc).__name__)

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
