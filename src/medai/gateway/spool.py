"""Received instances at rest: encrypted (AES-256-GCM), written atomically, deleted after the admin's retention.

The key is ``MEDAI_GATEWAY_KEY`` (32 bytes, base64) when set; otherwise a key file ``spool.key`` (mode 0600) made
once in the gateway's folder. Keep the key elsewhere than the spool in production (the environment variable).
Each file is ``nonce (12 bytes) || ciphertext+tag``; the file name is bound into the tag, so a file renamed onto
another instance's name does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path

from medai.errors import IntegrityError, MedAIError
from medai.fsutil import atomic_write_bytes

KEY_ENV = "MEDAI_GATEWAY_KEY"


def load_key(folder: Path) -> bytes:
    value = os.environ.get(KEY_ENV)
    if value:
        try:
            key = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise MedAIError(f"{KEY_ENV}: expected 32 bytes in base64 (e.g. `openssl rand -base64 32`)")
        return key
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spool.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(os.urandom(32))
            handle.flush()
            os.fsync(handle.fileno())
    key = path.read_bytes()
    if len(key) != 32:
        raise MedAIError(f"{path}: expected a 32-byte key; delete it only if the spool is empty")
    return key


class Spool:
    """Encrypted files under ``folder`` named by a hash of their key (never by a UID)."""

    def __init__(self, folder: Path, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._aead = AESGCM(key)
        self._name_key = hmac.new(key, b"medai-gateway-spool-names", hashlib.sha256).digest()
        self.secret = hmac.new(key, b"medai-gateway-deid", hashlib.sha256).digest()  # keys the de-id UID map

    def name(self, key: str, kind: str = "dcm") -> str:
        return hmac.new(self._name_key, f"{kind}/{key}".encode(), hashlib.sha256).hexdigest()[:40] + f".{kind}"

    def put(self, key: str, data: bytes, kind: str = "dcm") -> str:
        name = self.name(key, kind)
        nonce = os.urandom(12)
        atomic_write_bytes(self.folder / name, nonce + self._aead.encrypt(nonce, data, name.encode()))
        return name

    def get(self, name: str) -> bytes:
        from cryptography.exceptions import InvalidTag

        path = self.folder / name
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise MedAIError(f"spool file {name} is missing (deleted after its retention?)") from None
        try:
            return self._aead.decrypt(blob[:12], blob[12:], name.encode())
        except InvalidTag:
            raise IntegrityError(f"spool file {name} does not decrypt: altered, or another key") from None

    def seal(self, data: bytes, context: str) -> str:
        """Encrypt a small blob to keep in the database (base64), bound to ``context``."""
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, data, context.encode())).decode("ascii")

    def unseal(self, blob: str, context: str) -> bytes:
        from cryptography.exceptions import InvalidTag

        raw = base64.b64decode(blob)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], context.encode())
        except InvalidTag:
            raise IntegrityError("a sealed value does not decrypt: altered, or another key") from None

    def delete(self, name: str) -> None:
        (self.folder / name).unlink(missing_ok=True)
