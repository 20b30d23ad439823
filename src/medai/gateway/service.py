"""The gateway as one object: store, encrypted spool, router, audit, Storage SCP and worker, started and stopped
together (``medai gateway`` runs it in the foreground; tests and benchmarks run it in-process)."""

from __future__ import annotations

import logging
import signal
import threading

from medai.gateway.config import GatewayConfig
from medai.gateway.routing import Router

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, config: GatewayConfig, router: Router, database_url: str | None = None) -> None:
        from medai.gateway.network import StorageSCP
        from medai.gateway.spool import Spool, load_key
        from medai.gateway.store import GatewayStore
        from medai.gateway.worker import Processor, WorkerThread
        from medai.privacy.audit import AuditLog

        self.config = config
        router.check_models()  # every model the rules name exists and takes images, before anything listens
        self.store = GatewayStore(database_url, lease_s=config.lease_s, max_attempts=config.max_attempts)
        self.spool = Spool(config.home / "spool", load_key(config.home))
        self.audit = AuditLog(database_url)
        self.processor = Processor(config, self.store, self.spool, router, self.audit)
        self.worker = WorkerThread(self.processor, receiving=lambda: self.scp.receiving() if self.scp else set())
        self.scp = StorageSCP(config, self.store, self.spool, self.audit, on_closed=self.worker.wake) \
            if config.listen else None

    def start(self) -> Gateway:
        requeued = self.store.requeue_own(self.config.worker_id)
        touched = self.store.touch_open()  # senders get settle_s after a restart to resume their series
        if requeued or touched:
            log.info("resuming: %d batch(es) re-queued, %d still receiving", requeued, touched)
        if self.scp is not None:
            self.scp.start()
        self.worker.start()
        self.audit.record("gateway.start", role="dicom", route="gateway", detail={
            "ae_title": self.config.ae_title, "port": self.scp.port if self.scp else None,
            "allowed": list(self.config.allowed_aes), "tls": self.config.tls_cert is not None,
            "requeued": requeued})
        return self

    @property
    def port(self) -> int | None:
        return self.scp.port if self.scp else None

    def stop(self) -> None:
        if self.scp is not None:
            self.scp.stop()
        self.worker.stop()
        self.audit.record("gateway.stop", role="dicom", route="gateway")

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def run_forever(self, announce=None) -> None:
        """Until SIGINT/SIGTERM: received instances stay queued and resume at the next start."""
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        if announce is not None:
            announce()
        try:
            done.wait()
        finally:
            self.stop()
