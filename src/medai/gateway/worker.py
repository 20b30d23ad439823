"""Processing one batch (the instances of a series that arrived together): route it, run the model on
de-identified copies (2D per instance, 3D per volume), build the SR and the Grad-CAM captures, store them at the
destination, and say so in the audit log. Results already recorded by an earlier attempt are never recomputed,
and result objects already stored are not sent again."""

from __future__ import annotations

import base64
import io
import logging
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from medai.errors import MedAIError
from medai.fsutil import atomic_write_text
from medai.gateway import results
from medai.gateway.network import send, uid_sha
from medai.gateway.routing import series_attributes

log = logging.getLogger(__name__)


def _read(data: bytes):
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data))


def _deid_file(ds, secret: bytes, folder: Path, index: int) -> Path:
    from medai.privacy.dicom_deid import deidentify_with_report

    clean, _ = deidentify_with_report(ds, secret)
    path = folder / f"{index:06d}.dcm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean.save_as(path, enforce_file_format=True)
    return path


class Processor:
    def __init__(self, config, store, spool, router, audit) -> None:
        self.config, self.store, self.spool, self.router, self.audit = config, store, spool, router, audit
        self._models: dict[str, Any] = {}
        (config.home / "tmp").mkdir(parents=True, exist_ok=True)

    def model(self, ref: str):
        """The loaded model a rule names (resolved each time, so a newly promoted version is picked up)."""
        from medai.registry import Registry

        registry = Registry()
        record = registry.resolve(ref)
        key = f"{record.name}:{record.version}"
        if key not in self._models:
            model = registry.load(record.name, record.version)
            model.registered_name = record.name  # results name the model as the registry does
            self._models[key] = (model, str(record.version))
        return self._models[key]

    def run_one(self) -> str | None:
        batch = self.store.claim(self.config.worker_id)
        if batch is None:
            return None
        stop = threading.Event()

        def keep_lease() -> None:
            while not stop.wait(self.store.lease.total_seconds() / 3):
                try:
                    self.store.renew(batch.id, self.config.worker_id)
                except Exception:  # noqa: BLE001
                    log.warning("batch %s: lease renewal failed", batch.id)

        threading.Thread(target=keep_lease, daemon=True).start()
        try:
            self.process(batch)
        except Exception as exc:  # noqa: BLE001 - a batch failure must never stop the queue
            error = str(exc) if isinstance(exc, MedAIError) else f"internal error ({type(exc).__name__}: {exc})"
            if not isinstance(exc, MedAIError):
                log.exception("batch %s failed", batch.id)
            state = self.store.retry(batch, error[:1000], self.config.retry_s)
            self.audit.record("gateway.batch", role="dicom", route="gateway:batch", outcome=f"error:{state}",
                              detail={"batch": batch.id, "error": error[:300]})
        finally:
            stop.set()
        return batch.id

    # -- one batch ---------------------------------------------------------------------------------------
    def process(self, batch) -> None:
        rows = [r for r in self.store.instances(batch.id) if r.status in ("received", "done")]
        if not rows or any(r.spool is None for r in rows):
            self.store.finish(batch.id, "failed", "the originals are no longer kept (retention over)") if rows \
                else self.store.finish(batch.id, "done", outputs={"note": "nothing to process"})
            return
        clock = time.perf_counter()
        sources = {r.sop_uid: _read(self.spool.get(r.spool)) for r in rows}
        seconds = {"read": time.perf_counter() - clock}
        decision = self.router.route(series_attributes(list(sources.values())))
        if not decision.fits:
            self.store.finish(batch.id, "unfit", decision.reason)
            self.audit.record("gateway.route", role="dicom", route="gateway:route", outcome="unfit",
                              detail={"batch": batch.id, "instances": len(rows), "reason": decision.reason[:500]})
            log.warning("series of batch %s: %s", batch.id, decision.reason)
            return
        model, version = self.model(decision.model)
        name = model.registered_name
        self.store.set_batch(batch.id, model=f"{name}:{version}")
        dims = int(model.input_schema.get("spatial_dims", 2))
        todo = [r for r in rows if r.status == "received"]
        clock = time.perf_counter()
        if todo:
            with tempfile.TemporaryDirectory(dir=self.config.home / "tmp") as tmp:  # de-identified copies
                if dims == 3:
                    self._infer_volume(model, version, rows, sources, Path(tmp))
                else:
                    self._infer_images(model, version, todo, sources, Path(tmp))
        seconds["infer"] = time.perf_counter() - clock
        findings = self._findings(batch.id, dims, sources)
        if not findings:
            self.store.finish(batch.id, "failed", "no instance of the series could be read")
            return
        outputs = self._deliver(batch, name, version, model.target.classes, findings, seconds)
        outputs["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
        self.store.finish(batch.id, "done", outputs=outputs)
        log.info("batch %s: %d finding(s) in %s s", batch.id, len(findings), outputs["seconds"])
        self.purge()

    def _infer_images(self, model, version: str, todo, sources, tmp: Path) -> None:
        for start in range(0, len(todo), self.config.batch_size):
            chunk, inputs = [], []
            for i, row in enumerate(todo[start:start + self.config.batch_size]):
                try:
                    path = _deid_file(sources[row.sop_uid], self.spool.secret, tmp, start + i)
                    inputs.append(model.modality.inputs_from_files([path], model))
                    chunk.append(row)
                except Exception as exc:  # noqa: BLE001 - one bad instance is reported; the others go on
                    self._fail_instance(row, model, version, exc)
                finally:
                    for leftover in tmp.iterdir():
                        leftover.unlink()  # the de-identified copy lives only until its pixels are read
            if chunk:
                items = model.predict(np.concatenate(inputs), explain=True)
                self._record(chunk, items, model, version)

    def _infer_volume(self, model, version: str, rows, sources, tmp: Path) -> None:
        from medai.data.dicom import read_dicom_series

        try:
            for i, row in enumerate(rows):
                _deid_file(sources[row.sop_uid], self.spool.secret, tmp, i)
            volume, _ = read_dicom_series(tmp)
            for leftover in tmp.iterdir():
                leftover.unlink()
            np.save(tmp / "volume.npy", volume)
            X = model.modality.inputs_from_files([tmp / "volume.npy"], model)
        except Exception as exc:  # noqa: BLE001
            for row in rows:
                self._fail_instance(row, model, version, exc)
            return
        item = model.predict(X, explain=True)[0]
        self._record(rows, [item] * len(rows), model, version, volume=True)

    def _fail_instance(self, row, model, version, exc: Exception) -> None:
        reason = str(exc) if isinstance(exc, MedAIError) else f"{type(exc).__name__}: {exc}"
        reason = f"cannot read the image ({reason[:300]})"
        self.store.set_instance(row.sop_uid, "failed", error=reason)
        self.audit.record("gateway.inference", role="dicom", route="gateway:inference", model=model.registered_name,
                          model_version=version, input_sha256=uid_sha(row.sop_uid), outcome="failed",
                          detail={"reason": reason[:300]})
        log.warning("instance failed: %s", reason)

    def _record(self, rows, items, model, version, volume: bool = False) -> None:
        events, done = [], []
        for row, item in zip(rows, items, strict=True):
            png = item.pop("explanation_png_base64", None)
            result = {k: v for k, v in item.items() if k in ("label", "probabilities", "probability",
                                                              "prediction_set", "uncertain", "coverage")}
            result["volume"] = volume
            if png:  # the Grad-CAM shows the image: kept encrypted, like the original
                result["cam"] = self.spool.seal(base64.b64decode(png), row.sop_uid)
            done.append((row.sop_uid, result))
            events.append(dict(action="gateway.inference", role="dicom", route="gateway:inference",
                               model=model.registered_name, model_version=version, input_sha256=uid_sha(row.sop_uid),
                               detail={"dims": 3 if volume else 2, "uncertain": bool(item.get("uncertain"))}))
        self.store.set_results(done)  # one transaction for the chunk
        self.audit.record_many(events)

    def _findings(self, batch_id: str, dims: int, sources) -> list[results.Finding]:
        done = [r for r in self.store.instances(batch_id) if r.status == "done"]
        if not done:
            return []
        if dims == 3:
            ordered = sorted((sources[r.sop_uid] for r in done), key=lambda d: int(d.get("InstanceNumber", 0) or 0))
            return [results.Finding(ordered, done[0].result, self._cam(done[0]))]  # a volume's picture
        return [results.Finding([sources[r.sop_uid]], r.result, self._cam(r)) for r in done]

    def _cam(self, row) -> bytes | None:
        sealed = (row.result or {}).get("cam")
        return self.spool.unseal(sealed, row.sop_uid) if sealed else None

    def _deliver(self, batch, model_name: str, version: str, classes, findings, seconds) -> dict[str, Any]:
        """The SR first (what is read), then the captures; FHIR last. Objects already stored are skipped."""
        clock = time.perf_counter()
        sr = results.build_sr(batch.id, model_name, version, list(classes), findings)
        seconds["build"] = time.perf_counter() - clock
        clock = time.perf_counter()
        self._send(batch.id, [sr], "sr", model_name, version)
        seconds["send"] = time.perf_counter() - clock
        clock = time.perf_counter()
        captures = [results.build_sc(batch.id, model_name, version, f, i + 1)
                    for i, f in enumerate(findings) if f.cam_png]
        seconds["build"] += time.perf_counter() - clock
        clock = time.perf_counter()
        self._send(batch.id, captures, "sc", model_name, version)
        if self.config.fhir_dir is not None:
            import json

            self.config.fhir_dir.mkdir(parents=True, exist_ok=True)
            bundle = results.fhir_bundle(batch.id, model_name, version, findings)
            atomic_write_text(self.config.fhir_dir / f"{batch.id}.json", json.dumps(bundle, indent=1))
        seconds["send"] += time.perf_counter() - clock
        destination = self.config.send_to
        return {"sr": str(sr.SOPInstanceUID), "captures": [str(c.SOPInstanceUID) for c in captures],
                "findings": len(findings), "sent_to": destination.describe() if destination else None}

    def _send(self, batch_id: str, objects: list, kind: str, model_name: str, version: str) -> None:
        destination = self.config.send_to
        sent = self.store.sent_among([str(ds.SOPInstanceUID) for ds in objects])
        waiting = [ds for ds in objects if str(ds.SOPInstanceUID) not in sent]
        if not waiting or destination is None:
            return
        send(waiting, destination, self.config.ae_title)
        uids = [str(ds.SOPInstanceUID) for ds in waiting]
        self.store.record_sent(uids, batch_id, kind, destination.describe())
        self.audit.record_many([dict(action="gateway.send", role="dicom", route="gateway:send",
                                     method="STOW-RS" if destination.url else "C-STORE", model=model_name,
                                     model_version=version, input_sha256=uid_sha(uid),
                                     client=destination.describe()[:200], detail={"kind": kind}) for uid in uids])

    def purge(self) -> int:
        """Delete encrypted originals whose series is finished and whose retention is over."""
        expired = self.store.expired_spool(self.config.retention_hours)
        for _sop_uid, name in expired:
            self.spool.delete(name)
        return len(expired)


class WorkerThread:
    """Runs batches one at a time; settles open batches; wakes at once when an association closes."""

    def __init__(self, processor: Processor, poll_s: float = 0.5, receiving=lambda: set()) -> None:
        self.processor, self.poll_s, self.receiving = processor, poll_s, receiving
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="medai-gateway-worker")

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        last_purge = 0.0
        while not self._stop.is_set():
            ran = None
            try:
                self.processor.store.settle(self.processor.config.settle_s, self.receiving())
                ran = self.processor.run_one()
                if time.monotonic() - last_purge > 60:
                    self.processor.purge()
                    last_purge = time.monotonic()
            except Exception:  # noqa: BLE001 - e.g. the database is briefly unreachable
                log.exception("gateway worker: could not claim a batch")
            if ran is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()
