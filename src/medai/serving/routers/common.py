"""Helpers shared by the routers: request errors, tabular record validation, safe handling of uploads."""

from __future__ import annotations

import hashlib
import io
import math
import secrets
import sys
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

from medai.errors import MedAIError

DICOM_TYPES = {"application/dicom", "application/dicom+octet-stream"}
DICOM_SUFFIXES = (".dcm", ".dicom")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".npy", ".tif", ".tiff", ".bmp", ".nii", ".nii.gz")
MAX_ZIP_MEMBERS = 10_000
TEXT_KIND = "text"  # a field holding free text (a name: "text" is also a modality's name, which no route compares)


class UnsupportedMediaType(MedAIError):
    """The request's content type (or an uploaded file's type) is not one this route takes (HTTP 415)."""


class FieldErrors(MedAIError):
    """Input that failed validation; ``errors`` lists ``{"loc", "msg", "type"}`` items (HTTP 422)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{where}: {first['msg']}{more}")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------ records


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return f"text ({len(value)} characters)"
    return {"list": "a list", "dict": "an object"}.get(type(value).__name__, type(value).__name__)


def _finite_double(value: int | float) -> bool:
    if isinstance(value, int):
        return -_DOUBLE_MAX <= value <= _DOUBLE_MAX  # a JSON integer of 400 digits overflowed float()
    return math.isfinite(value)


_DOUBLE_MAX = int(sys.float_info.max)


def check_predictions(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``items`` unchanged, or :class:`FieldErrors` naming each record whose prediction came out NaN/infinite
    (inputs so extreme that the model's arithmetic overflowed) — instead of a 500 when the answer is encoded."""

    def finite(value: Any) -> bool:
        if isinstance(value, float):
            return math.isfinite(value)
        if isinstance(value, dict):
            return all(finite(v) for v in value.values())
        if isinstance(value, list | tuple):
            return all(finite(v) for v in value)
        return True

    bad = [i for i, item in enumerate(items) if not finite({k: v for k, v in item.items() if k != "contributions"})]
    if bad:
        raise FieldErrors(
            [
                {
                    "loc": ["body", "records", i],
                    "msg": f"record {i}: its values are too extreme for the model to compute a prediction "
                    "(the arithmetic overflowed); check the units and magnitudes",
                    "type": "value_error",
                }
                for i in bad[:50]
            ]
        )
    return items


def validate_records(records: list[dict[str, Any]], input_schema: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check JSON records against a records model's input fields (``numeric``, ``categorical`` or ``text``);
    :class:`FieldErrors` naming record index and column for every problem. ``null`` is a missing value (the
    model imputes it); a column absent from a record is an error. Columns the model does not use are ignored."""
    errors: list[dict[str, Any]] = []
    for i, record in enumerate(records):
        for spec in input_schema:
            name = spec["name"]
            loc = ["body", "records", i, name]
            if name not in record:
                errors.append(
                    {
                        "loc": loc,
                        "msg": f"field required (record {i} has no column {name!r})",
                        "type": "missing",
                    }
                )
                continue
            value = record[name]
            if value is None:
                continue
            if spec["kind"] == "numeric":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    # the value itself is never quoted: it may be anything a client typed, PHI included
                    errors.append(
                        {
                            "loc": loc,
                            "msg": f"expected a number for column {name!r} in record {i}, "
                            f"got {_kind_of(value)}",
                            "type": "type_error",
                        }
                    )
                elif not _finite_double(value):
                    errors.append(
                        {
                            "loc": loc,
                            "msg": f"expected a finite number within the range of a double (about ±1.8e308) "
                            f"for column {name!r} in record {i}",
                            "type": "value_error",
                        }
                    )
            elif spec["kind"] == TEXT_KIND and not isinstance(value, str):
                errors.append(
                    {
                        "loc": loc,
                        "msg": f"expected text (a string) for field {name!r} in record {i}",
                        "type": "type_error",
                    }
                )
            elif not isinstance(value, str | int | float):
                errors.append(
                    {
                        "loc": loc,
                        "msg": f"expected a category (text) for column {name!r} in record {i}",
                        "type": "type_error",
                    }
                )
        if len(errors) >= 50:
            break
    if errors:
        raise FieldErrors(errors)
    return records


# ------------------------------------------------------------------------------------------ uploads


def _looks_dicom(data: bytes) -> bool:
    return (len(data) >= 132 and data[128:132] == b"DICM") or data[:4] == b"DICM"


def deidentified_dicom_bytes(data: bytes, label: str, secret: bytes) -> bytes:
    """Parse DICOM bytes (in memory) and return the de-identified file bytes; nothing touches disk
    before this. :class:`UnsupportedMediaType` when the bytes are not DICOM."""
    import pydicom

    from medai.privacy.dicom_deid import deidentify_with_report

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from medai.data.dicom import _plausible_headless_start

            force = not _looks_dicom(data) and _plausible_headless_start(data[:8])
            ds = pydicom.dcmread(io.BytesIO(data), force=force)
            for elem in ds.iterall():
                _ = elem.value
        if len(ds) == 0 or not (ds.get("SOPClassUID") or ds.get("Modality") or _looks_dicom(data)):
            raise ValueError("no DICOM data elements")
    except Exception:
        raise UnsupportedMediaType(f"{label} is labelled or named as DICOM but is not a readable DICOM file") from None
    out, _report = deidentify_with_report(ds, secret)
    meta = getattr(out, "file_meta", None)
    if meta is not None:
        if out.get("SOPInstanceUID"):
            meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.save_as(buffer, enforce_file_format=meta is not None and "TransferSyntaxUID" in meta)
    except Exception:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            buffer = io.BytesIO()
            out.save_as(buffer)
    return buffer.getvalue()


def store_upload(
    data: bytes, filename: str | None, content_type: str | None, dest: Path, index: int, secret: bytes
) -> Path:
    """Write one uploaded file into ``dest`` under a generic name (never the client's file name, which
    may hold PHI). DICOM — by label, suffix or content — is de-identified in memory first."""
    label = f"upload {index}"
    if not data:
        raise MedAIError(f"{label}: the file is empty")
    name = (filename or "").lower()
    ctype = (content_type or "").split(";")[0].strip().lower()
    dest.mkdir(parents=True, exist_ok=True)
    if ctype in DICOM_TYPES or name.endswith(DICOM_SUFFIXES) or _looks_dicom(data):
        clean = deidentified_dicom_bytes(data, label, secret)
        path = dest / f"item-{index:05d}.dcm"
        path.write_bytes(clean)
        return path
    suffix = next((s for s in IMAGE_SUFFIXES if name.endswith(s)), None)
    if suffix is None and ctype.startswith("image/"):
        suffix = "." + ctype.split("/", 1)[1].replace("jpeg", "jpg")
    if suffix is None:
        raise UnsupportedMediaType(
            f"{label}: unsupported file type {ctype or 'unknown'!s}; expected DICOM (.dcm) "
            f"or an image ({', '.join(IMAGE_SUFFIXES)})"
        )
    sniff_image(data, suffix, label)
    path = dest / f"item-{index:05d}{suffix}"
    path.write_bytes(data)
    return path


def sniff_image(data: bytes, suffix: str, label: str) -> None:
    """Refuse an upload whose bytes are not the image format its name says, from its header only (nothing is
    decoded here): :class:`UnsupportedMediaType` naming the upload."""
    ok = True
    if suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"):
        from PIL import Image

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(io.BytesIO(data)) as img:
                    ok = img.format in ("PNG", "JPEG", "TIFF", "BMP", "MPO")
        except Exception:  # noqa: BLE001 - any failure to read the header: not that image
            ok = False
    elif suffix == ".npy":
        ok = data[:6] == b"\x93NUMPY"
    elif suffix == ".nii":
        ok = (len(data) >= 348 and data[344:348] in (b"n+1\0", b"ni1\0")) or data[4:8] == b"n+2\0"
    elif suffix == ".nii.gz":
        ok = data[:2] == b"\x1f\x8b"
    if not ok:
        raise UnsupportedMediaType(f"{label}: the file is not the {suffix} image its name says")


def store_zip(data: bytes, dest: Path, secret: bytes, max_total_bytes: int) -> list[Path]:
    """Unpack a zip of images/DICOM files into ``dest`` (generic names, DICOM de-identified in memory,
    no paths from the archive are used). Zip bombs are refused on the bytes actually inflated, not on what
    the archive's headers claim: each member is read in chunks and stops at its declared size (a member
    that inflates further is refused), and the running total is capped at ``max_total_bytes``. Members are
    named by their position in errors (their names may hold PHI)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError):
        raise UnsupportedMediaType("the uploaded file is not a readable zip archive") from None
    members = [m for m in infos if not m.is_dir() and not Path(m.filename).name.startswith(".")]
    if not members:
        raise MedAIError("the zip archive holds no files")
    if len(members) > MAX_ZIP_MEMBERS:
        raise MedAIError(f"the zip archive holds {len(members)} files; at most {MAX_ZIP_MEMBERS} are allowed")
    if sum(m.file_size for m in members) > max_total_bytes:
        raise MedAIError(f"the zip archive unpacks to more than {max_total_bytes} bytes")
    paths = []
    total = 0
    for i, member in enumerate(members):
        label = f"zip member {i + 1}"
        if member.flag_bits & 0x1:
            raise MedAIError(f"{label} is encrypted; send an archive without a password")
        chunks, size = [], 0
        try:
            with archive.open(member) as handle:
                while block := handle.read(1 << 20):
                    size += len(block)
                    total += len(block)
                    if size > member.file_size or total > max_total_bytes:
                        raise MedAIError(
                            f"{label} inflates past its declared size or the archive past {max_total_bytes} "
                            "bytes (a zip bomb?)"
                        )
                    chunks.append(block)
        except MedAIError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError):
            raise MedAIError(f"{label} is corrupt or uses an unsupported compression method") from None
        paths.append(store_upload(b"".join(chunks), member.filename, None, dest, i, secret))
    return paths


def random_id() -> str:
    return secrets.token_hex(12)
