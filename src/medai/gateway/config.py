"""The gateway's settings, checked once with clear errors (the CLI and tests build them the same way)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from medai import config as medai_config
from medai.errors import MedAIError

_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE: 16 chars, default repertoire, no backslash


def check_ae_title(value: str, what: str = "AE title") -> str:
    title = (value or "").strip()
    if not title or not _AE_RE.match(title):
        raise MedAIError(f"{what} {value!r}: expected 1-16 printable ASCII characters without a backslash")
    return title


@dataclass(frozen=True)
class Destination:
    """Where results go: a DICOM node (C-STORE) or a DICOMweb base URL (STOW-RS)."""

    ae_title: str | None = None
    host: str | None = None
    port: int | None = None
    url: str | None = None

    @classmethod
    def parse(cls, value: str) -> Destination:
        """``AE@host:port`` (C-STORE) or ``http(s)://.../dicom-web`` (STOW-RS)."""
        value = (value or "").strip()
        if value.startswith(("http://", "https://")):
            return cls(url=value.rstrip("/"))
        match = re.match(r"^(?P<ae>[^@]+)@(?P<host>[^:]+):(?P<port>\d{1,5})$", value)
        if not match or not 0 < int(match["port"]) < 65536:
            raise MedAIError(f"--send-to {value!r}: expected AE@HOST:PORT (C-STORE) or an http(s) DICOMweb URL")
        return cls(ae_title=check_ae_title(match["ae"], "--send-to AE title"), host=match["host"],
                   port=int(match["port"]))

    def describe(self) -> str:
        return self.url if self.url else f"{self.ae_title}@{self.host}:{self.port}"


@dataclass
class GatewayConfig:
    ae_title: str = "MEDAI"
    host: str = "127.0.0.1"
    port: int = 11112
    allowed_aes: tuple[str, ...] = ()
    send_to: Destination | None = None
    rules: Path | None = None
    home: Path = field(default_factory=lambda: medai_config.home() / "gateway")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None  # clients must then present a certificate signed by it
    settle_s: float = 5.0  # a series with no new instance for this long (and no open association) is complete
    retention_hours: float = 0.0  # encrypted originals kept this long after their series is done
    max_pending: int = 2000  # instances waiting: past this, C-STORE answers "out of resources" (A700)
    max_attempts: int = 5
    retry_s: float = 2.0
    lease_s: float = 60.0
    batch_size: int = 64  # images per inference call
    fhir_dir: Path | None = None
    worker_id: str | None = None
    listen: bool = True  # False in DICOMweb pull mode: no Storage SCP

    def __post_init__(self) -> None:
        self.ae_title = check_ae_title(self.ae_title)
        if self.listen and not self.allowed_aes:
            raise MedAIError("name at least one calling AE title allowed to send (--allow-ae)")
        self.allowed_aes = tuple(check_ae_title(a, "--allow-ae") for a in self.allowed_aes)
        if not 0 <= int(self.port) < 65536:
            raise MedAIError(f"--port {self.port}: expected 0-65535")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise MedAIError("TLS needs both --tls-cert and --tls-key")
        for name in ("tls_cert", "tls_key", "tls_ca", "rules"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise MedAIError(f"--{name.replace('_', '-')} {path}: file not found")
        if self.retention_hours < 0 or self.settle_s < 0 or self.max_pending < 1:
            raise MedAIError("--retention-hours and --settle must be >= 0, --max-pending >= 1")
        self.home = Path(self.home)
        if self.worker_id is None:
            import socket

            self.worker_id = f"{socket.gethostname()}:{self.ae_title}:{self.port}"[:64]
