"""The DICOM network side: the Storage SCP that receives (C-ECHO, C-STORE) and the senders that store results
(C-STORE SCU, STOW-RS). Every association, refused association and received instance is audited."""

from __future__ import annotations

import hashlib
import io
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any

from medai.errors import MedAIError
from medai.gateway.config import Destination, GatewayConfig

log = logging.getLogger(__name__)

SUCCESS, OUT_OF_RESOURCES, DOES_NOT_MATCH, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xA900, 0xC000
OK_STATUSES = {0x0000, 0xB000, 0xB006, 0xB007}


def transfer_syntaxes() -> list[str]:
    """What the SCP accepts: uncompressed, deflate, RLE, JPEG baseline and JPEG 2000 (all decodable here)."""
    from pydicom import uid

    return [uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian, uid.DeflatedExplicitVRLittleEndian,
            uid.ExplicitVRBigEndian, uid.RLELossless, uid.JPEGBaseline8Bit, uid.JPEG2000Lossless, uid.JPEG2000]


def uid_sha(uid: str) -> str:
    """Audit rows name an instance by the sha256 of its UID, never the UID itself."""
    return hashlib.sha256(str(uid).encode()).hexdigest()


def is_image_class(sop_class: str) -> bool:
    from pydicom.uid import UID

    name = UID(sop_class).name if sop_class else ""
    return "Image Storage" in name or "Volume Storage" in name


def _peer(assoc) -> str:
    requestor = assoc.requestor
    return f"{requestor.ae_title}@{requestor.address}:{requestor.port}"


def server_ssl_context(config: GatewayConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
        if config.tls_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(str(config.tls_ca))
    except (ssl.SSLError, OSError) as exc:
        raise MedAIError(f"TLS: cannot load the certificate, key or CA ({exc})") from None
    return context


class StorageSCP:
    """Receives instances into the encrypted spool and the queue; answers A700 when the queue is full."""

    def __init__(self, config: GatewayConfig, store, spool, audit, on_closed: Callable[[], None] | None = None):
        self.config, self.store, self.spool, self.audit = config, store, spool, audit
        self.on_closed = on_closed or (lambda: None)
        self._series: dict[int, set[str]] = {}
        self._lock = threading.Lock()
        self.server = None

    def start(self) -> None:
        from pynetdicom import AE, evt
        from pynetdicom.presentation import AllStoragePresentationContexts
        from pynetdicom.sop_class import Verification

        ae = AE(ae_title=self.config.ae_title)
        ae.require_calling_aet = list(self.config.allowed_aes)
        ae.require_called_aet = True
        ae.maximum_associations = 16
        ae.add_supported_context(Verification)
        syntaxes = transfer_syntaxes()
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, syntaxes)
        handlers = [(evt.EVT_C_STORE, self._store), (evt.EVT_C_ECHO, self._echo), (evt.EVT_ACCEPTED, self._accepted),
                    (evt.EVT_REJECTED, self._rejected), (evt.EVT_RELEASED, self._released),
                    (evt.EVT_ABORTED, self._aborted)]
        try:
            self.server = ae.start_server((self.config.host, int(self.config.port)), block=False,
                                          evt_handlers=handlers, ssl_context=server_ssl_context(self.config))
        except OSError as exc:
            raise MedAIError(f"cannot listen on {self.config.host}:{self.config.port} ({exc})") from None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    def receiving(self) -> set[str]:
        """Series that live associations are sending: not complete, however slow the sender."""
        with self._lock:
            return set().union(*self._series.values()) if self._series else set()

    # -- events ------------------------------------------------------------------------------------------
    def _audit(self, action: str, assoc, **fields: Any) -> None:
        try:
            self.audit.record(action, role="dicom", client=_peer(assoc), **fields)
        except Exception:  # noqa: BLE001 - an audit failure is logged loudly; the DICOM answer still goes out
            log.exception("audit write failed for %s", action)

    def _accepted(self, event) -> None:
        rejected = [f"{c.abstract_syntax.name} ({', '.join(str(t) for t in c.transfer_syntax)})"
                    for c in event.assoc.rejected_contexts]
        self._audit("gateway.association", event.assoc, method="A-ASSOC", route="dicom:association",
                    detail={"called": self.config.ae_title, "rejected_contexts": rejected[:10]} if rejected
                    else {"called": self.config.ae_title})

    def _rejected(self, event) -> None:
        calling = event.assoc.requestor.ae_title
        reason = ("calling AE title not allowed" if calling not in self.config.allowed_aes
                  else "called AE title not ours")
        log.warning("association from %s refused: %s", _peer(event.assoc), reason)
        self._audit("gateway.association", event.assoc, method="A-ASSOC", route="dicom:association",
                    outcome="denied", detail={"reason": reason})

    def _released(self, event) -> None:
        with self._lock:
            series = self._series.pop(id(event.assoc), set())
        if series:
            self.store.close(series)
            self.on_closed()

    def _aborted(self, event) -> None:
        with self._lock:
            self._series.pop(id(event.assoc), None)  # left open: complete once nothing new comes (settle)

    def _echo(self, event) -> int:
        self._audit("gateway.echo", event.assoc, method="C-ECHO", route="dicom:echo")
        return SUCCESS

    def _store(self, event) -> int:
        assoc = event.assoc
        calling = assoc.requestor.ae_title
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            sop, study, series = (str(ds.get(k, "") or "") for k in ("SOPInstanceUID", "StudyInstanceUID",
                                                                      "SeriesInstanceUID"))
            sop_class = str(ds.get("SOPClassUID", "") or "")
            has_pixels = "PixelData" in ds
        except Exception as exc:  # noqa: BLE001 - an undecodable data set is answered, audited and reported
            self._audit("gateway.receive", assoc, method="C-STORE", route="dicom:store", outcome="rejected",
                        status_code=CANNOT_UNDERSTAND, detail={"reason": f"unreadable data set ({type(exc).__name__})"})
            return CANNOT_UNDERSTAND
        fields = dict(method="C-STORE", route="dicom:store", input_sha256=uid_sha(sop) if sop else None)
        if not (sop and study and series):
            reason = "SOP Instance, Study or Series Instance UID missing"
            self._audit("gateway.receive", assoc, outcome="rejected", status_code=CANNOT_UNDERSTAND,
                        detail={"reason": reason}, **fields)
            return CANNOT_UNDERSTAND
        if self.store.known(sop):
            self._audit("gateway.receive", assoc, outcome="duplicate", status_code=SUCCESS, **fields)
            return SUCCESS
        if not has_pixels:
            if is_image_class(sop_class):
                reason = "image without pixel data"
                self.store.record_refused(sop, study, series, calling, "rejected", reason)
                self._audit("gateway.receive", assoc, outcome="rejected", status_code=DOES_NOT_MATCH,
                            detail={"reason": reason}, **fields)
                return DOES_NOT_MATCH
            self.store.record_refused(sop, study, series, calling, "ignored", "not an image (no pixel data)")
            self._audit("gateway.receive", assoc, outcome="ignored", status_code=SUCCESS,
                        detail={"reason": "not an image"}, **fields)
            return SUCCESS
        if self.store.pending() >= self.config.max_pending:
            self._audit("gateway.receive", assoc, outcome="busy", status_code=OUT_OF_RESOURCES, **fields)
            return OUT_OF_RESOURCES
        name = self.spool.put(sop, event.encoded_dataset(include_meta=True))
        new = self.store.intake(sop, study, series, name, calling)
        with self._lock:
            self._series.setdefault(id(assoc), set()).add(series)
        self._audit("gateway.receive", assoc, outcome="ok" if new else "duplicate", status_code=SUCCESS, **fields)
        return SUCCESS


def intake_dataset(ds, store, spool, audit, source: str) -> str:
    """Queue one instance fetched over DICOMweb (pull mode): the same checks and spool as a C-STORE."""
    from pydicom.filewriter import dcmwrite

    sop, study, series = (str(ds.get(k, "") or "") for k in ("SOPInstanceUID", "StudyInstanceUID",
                                                              "SeriesInstanceUID"))
    fields = dict(role="dicom", client=source[:200], method="WADO-RS", route="dicomweb:retrieve",
                  input_sha256=uid_sha(sop) if sop else None)
    if not (sop and study and series):
        audit.record("gateway.receive", outcome="rejected", detail={"reason": "UIDs missing"}, **fields)
        return "rejected"
    if store.known(sop):
        return "duplicate"
    if "PixelData" not in ds:
        status = "rejected" if is_image_class(str(ds.get("SOPClassUID", ""))) else "ignored"
        store.record_refused(sop, study, series, None, status, "no pixel data")
        audit.record("gateway.receive", outcome=status, detail={"reason": "no pixel data"}, **fields)
        return status
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    store.intake(sop, study, series, spool.put(sop, buffer.getvalue()), None)
    audit.record("gateway.receive", **fields)
    return "ok"


# -- sending ---------------------------------------------------------------------------------------------


def send(datasets: list, destination: Destination, ae_title: str, ssl_context: ssl.SSLContext | None = None) -> None:
    """Store result objects at the destination; raises :class:`MedAIError` naming what failed."""
    if destination.url:
        return _stow(datasets, destination.url)
    from pynetdicom import AE

    ae = AE(ae_title=ae_title)
    for uid in sorted({str(ds.SOPClassUID) for ds in datasets}):
        ae.add_requested_context(uid, [str(datasets[0].file_meta.TransferSyntaxUID)])
    tls = (ssl_context, destination.host) if ssl_context is not None else None
    assoc = ae.associate(destination.host, int(destination.port), ae_title=destination.ae_title, tls_args=tls)
    if not assoc.is_established:
        raise MedAIError(f"cannot associate with {destination.describe()} (refused or unreachable)")
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            code = int(getattr(status, "Status", -1)) if status else -1
            if code not in OK_STATUSES:
                raise MedAIError(f"{destination.describe()} refused a result (C-STORE status 0x{max(code, 0):04X})")
    finally:
        if assoc.is_established:
            assoc.release()


def _stow(datasets: list, url: str) -> None:
    from dicomweb_client.api import DICOMwebClient

    try:
        DICOMwebClient(url=url).store_instances(datasets=datasets)
    except Exception as exc:  # noqa: BLE001 - requests/HTTP errors become one clear line
        raise MedAIError(f"STOW-RS to {url} failed ({type(exc).__name__}: {str(exc)[:200]})") from None
