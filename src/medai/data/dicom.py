"""DICOM reading: one image, a series, or a DICOMDIR, into float32 numpy arrays.

The pixel pipeline follows DICOM PS3.3 C.11 (the grayscale display pipeline):

1. decode the stored values (any transfer syntax a pydicom decoder handles here: native little/big
   endian, deflate, RLE Lossless, JPEG 2000 through pylibjpeg-openjpeg; YBR colour is converted to RGB,
   PALETTE COLOR is expanded to RGB);
2. the **Modality LUT** (Rescale Slope/Intercept or a Modality LUT Sequence, via
   :func:`pydicom.pixels.apply_modality_lut`; for RT Dose also *Dose Grid Scaling*; for enhanced
   multi-frame objects the Pixel Value Transformation in the functional groups) — CT values come out in
   Hounsfield units;
3. optionally the **VOI** window: the file's own Window Center/Width (or VOI LUT Sequence), or one the
   caller chooses; windowed output lies in ``[0, 1]``;
4. **MONOCHROME1** inversion, so that the returned pixels always read as MONOCHROME2 (higher = brighter).

Shapes of :attr:`DicomImage.pixels` (always ``float32``):

* ``(H, W)`` — single-frame grey;
* ``(F, H, W)`` — multi-frame grey (RT Dose grid, enhanced CT/MR, ...);
* ``(H, W, 3)`` / ``(F, H, W, 3)`` — colour, as RGB (values 0..2**bits-1, not windowed).

Objects without pixels (RT Plan, RT Structure Set, SR, waveforms, ...) are refused with a
:class:`~medai.errors.MedAIError` naming the file and its SOP class; so are files that are not DICOM or
that are truncated or corrupt. No patient-identifying attribute is copied into :attr:`DicomImage.meta`.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medai.errors import MedAIError, NotFoundError

__all__ = [
    "DicomImage",
    "apply_window",
    "read_dicom_files",
    "DicomSeriesInfo",
    "Window",
    "is_dicom",
    "list_dicom_series",
    "read_dicom",
    "read_dicom_header",
    "read_dicom_series",
]

Window = None | Literal["file"] | tuple[float, float]

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

# SOP classes that never carry an image, for a clearer refusal message.
_NON_IMAGE_HINTS = {
    "RTPLAN": "RT plan",
    "RTSTRUCT": "RT structure set",
    "RTRECORD": "RT treatment record",
    "SR": "structured report",
    "KO": "key object selection",
    "PR": "presentation state",
    "ECG": "waveform",
    "HD": "waveform",
    "AU": "audio waveform",
    "DOC": "encapsulated document",
    "REG": "registration",
}


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else type(exc).__name__
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------------
# Detection and header reading
# ---------------------------------------------------------------------------------------------------


def _plausible_headless_start(head: bytes) -> bool:
    """Whether the first bytes look like a DICOM data element (file written without the preamble)."""
    if len(head) < 8:
        return False
    for fmt in ("<HH", ">HH"):
        group, elem = struct.unpack(fmt, head[:4])
        if group in (0x0002, 0x0004, 0x0008) and elem < 0x1000:
            return True
    return False


def is_dicom(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM file.

    True when the 128-byte preamble is followed by ``DICM``; otherwise (files written without the
    Part 10 header, such as old implicit-VR exports) a forced parse of the header must give a dataset
    with a SOP Class UID or a Modality. Never raises.
    """
    p = Path(path)
    try:
        if not p.is_file():
            return False
        with open(p, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    if len(head) == 132 and head[128:132] == b"DICM":
        return True
    if head[:4] == b"DICM":  # some writers drop the preamble but keep the marker
        return True
    if not _plausible_headless_start(head):
        return False
    try:
        import pydicom

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(p, force=True, stop_before_pixels=True)
            return bool(ds.get("SOPClassUID") or ds.get("Modality"))
    except Exception:
        return False


def _read(path: str | os.PathLike, *, stop_before_pixels: bool = False):
    """Read a dataset; every failure becomes a MedAIError naming the file."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"{p}: file not found; expected a DICOM file")
    if p.is_dir():
        raise MedAIError(f"{p}: is a folder; expected a DICOM file (use read_dicom_series for a folder)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(p, stop_before_pixels=stop_before_pixels)
            except InvalidDicomError:
                if not is_dicom(p):
                    raise MedAIError(
                        f"{p}: not a DICOM file (no 'DICM' marker and no readable DICOM header)"
                    ) from None
                ds = pydicom.dcmread(p, force=True, stop_before_pixels=stop_before_pixels)
            # touch the values now so that a corrupt element fails here, not later
            for elem in ds.iterall():
                _ = elem.value
    except MedAIError:
        raise
    except Exception as exc:
        raise MedAIError(f"{p}: corrupt or truncated DICOM file ({_one_line(exc)})") from exc
    if len(ds) == 0:
        raise MedAIError(f"{p}: corrupt or truncated DICOM file (no data elements after the header)")
    return ds


def read_dicom_header(path: str | os.PathLike):
    """The dataset of ``path`` without its pixel data (a :class:`pydicom.Dataset`).

    Raises :class:`MedAIError` for a missing, non-DICOM or corrupt file.
    """
    return _read(path, stop_before_pixels=True)


def _sop_class_name(ds) -> str:
    uid = ds.get("SOPClassUID")
    if uid is None:
        return "unknown SOP class"
    try:
        name = uid.name
    except Exception:
        name = str(uid)
    return str(name or uid)


def _has_pixels(ds) -> bool:
    return any(kw in ds for kw in _PIXEL_KEYWORDS)


def _require_image(ds, path: Path) -> None:
    if _has_pixels(ds):
        return
    modality = str(ds.get("Modality", "") or "unknown")
    sop = _sop_class_name(ds)
    hint = _NON_IMAGE_HINTS.get(modality.upper())
    if hint is not None or "Image" not in sop:
        what = hint or "non-image object"
        raise MedAIError(
            f"{path}: DICOM {sop} (modality {modality}) is not an image ({what}, no PixelData); "
            "expected a DICOM image"
        )
    raise MedAIError(
        f"{path}: DICOM {sop} (modality {modality}) has no pixel data; the file is truncated or corrupt"
    )


# ---------------------------------------------------------------------------------------------------
# Pixel pipeline
# ---------------------------------------------------------------------------------------------------


@dataclass
class DicomImage:
    """Decoded pixels of one DICOM object plus a little non-identifying metadata.

    Attributes
    ----------
    pixels:
        float32; ``(H, W)``, ``(F, H, W)``, ``(H, W, 3)`` or ``(F, H, W, 3)`` (see module docs).
        Grey pixels are Modality-LUT output (e.g. Hounsfield units) unless a window was applied, in
        which case they lie in ``[0, 1]``; MONOCHROME1 is already inverted.
    modality:
        (0008,0060) Modality, e.g. ``"CT"``; ``""`` when absent.
    photometric:
        The file's (0028,0004) Photometric Interpretation (e.g. ``"MONOCHROME1"``, ``"YBR_FULL"``);
        the returned pixels are always MONOCHROME2-like or RGB.
    spacing:
        In-plane pixel spacing ``(row, column)`` in mm from Pixel Spacing (or Imager Pixel Spacing),
        ``None`` when unknown.
    frames:
        Number of frames.
    meta:
        Non-identifying facts: SOP class, transfer syntax, rows/columns, bits, rescale, units, window
        applied, whether inverted, slice thickness/spacing, orientation and position.
    """

    pixels: np.ndarray
    modality: str
    photometric: str
    spacing: tuple[float, float] | None
    frames: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_color(self) -> bool:
        return (
            self.pixels.ndim >= 3 and self.pixels.shape[-1] == 3 and self.meta.get("samples_per_pixel") == 3
        )


def _floats(value, n: int | None = None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        seq = list(value) if not isinstance(value, (str, bytes)) and hasattr(value, "__iter__") else [value]
        out = tuple(float(v) for v in seq)
    except (TypeError, ValueError):
        return None
    if n is not None and len(out) < n:
        return None
    return out[:n] if n is not None else out


def _first_float(value) -> float | None:
    vals = _floats(value)
    return vals[0] if vals else None


def _functional_item(ds, seq_keyword: str, frame: int | None):
    """The first item of ``seq_keyword`` in the per-frame (if given) or shared functional groups."""
    groups = []
    if frame is not None and ds.get("PerFrameFunctionalGroupsSequence"):
        pf = ds.PerFrameFunctionalGroupsSequence
        if frame < len(pf):
            groups.append(pf[frame])
    if ds.get("SharedFunctionalGroupsSequence"):
        groups.append(ds.SharedFunctionalGroupsSequence[0])
    for grp in groups:
        seq = grp.get(seq_keyword)
        if seq:
            return seq[0]
    return None


def _modality_lut(arr: np.ndarray, ds, frames: int) -> tuple[np.ndarray, dict[str, Any]]:
    from pydicom.pixels import apply_modality_lut

    info: dict[str, Any] = {}
    if "RescaleSlope" in ds or "RescaleIntercept" in ds or ds.get("ModalityLUTSequence"):
        out = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
        info["rescale_slope"] = _first_float(ds.get("RescaleSlope", 1.0))
        info["rescale_intercept"] = _first_float(ds.get("RescaleIntercept", 0.0))
        if ds.get("RescaleType"):
            info["units"] = str(ds.RescaleType)
    elif _functional_item(ds, "PixelValueTransformationSequence", 0) is not None:
        # Enhanced multi-frame: rescale may differ frame by frame.
        out = arr.astype(np.float64)
        slopes, intercepts = [], []
        for i in range(frames):
            item = _functional_item(ds, "PixelValueTransformationSequence", i)
            slope = _first_float(item.get("RescaleSlope", 1.0)) if item is not None else 1.0
            inter = _first_float(item.get("RescaleIntercept", 0.0)) if item is not None else 0.0
            slopes.append(slope if slope is not None else 1.0)
            intercepts.append(inter if inter is not None else 0.0)
        if frames > 1:
            out = out * np.asarray(slopes).reshape(-1, *([1] * (out.ndim - 1)))
            out = out + np.asarray(intercepts).reshape(-1, *([1] * (out.ndim - 1)))
        else:
            out = out * slopes[0] + intercepts[0]
        info["rescale_slope"] = slopes[0]
        info["rescale_intercept"] = intercepts[0]
        item = _functional_item(ds, "PixelValueTransformationSequence", 0)
        if item is not None and item.get("RescaleType"):
            info["units"] = str(item.RescaleType)
    else:
        out = arr.astype(np.float64)
    if str(ds.get("Modality", "")).upper() == "RTDOSE" and ds.get("DoseGridScaling") is not None:
        scale = _first_float(ds.DoseGridScaling)
        if scale:
            out = out * scale
            info["dose_grid_scaling"] = scale
            info["units"] = str(ds.get("DoseUnits", "GY"))
    if "units" not in info and str(ds.get("Modality", "")).upper() == "CT" and "rescale_slope" in info:
        info["units"] = "HU"
    return out, info


def _file_window(ds) -> tuple[float, float, str] | None:
    center = _first_float(ds.get("WindowCenter"))
    width = _first_float(ds.get("WindowWidth"))
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if center is None or width is None:
        item = _functional_item(ds, "FrameVOILUTSequence", 0)
        if item is not None:
            center = _first_float(item.get("WindowCenter"))
            width = _first_float(item.get("WindowWidth"))
            function = str(item.get("VOILUTFunction", function) or function).upper()
    if center is None or width is None:
        return None
    return center, width, function


def apply_window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """VOI windowing (PS3.3 C.11.2.1.2) of Modality-LUT values into ``[0, 1]`` (float32).

    ``function`` is ``LINEAR`` (default), ``LINEAR_EXACT`` or ``SIGMOID``.
    """
    x = np.asarray(values, dtype=np.float64)
    function = function.upper()
    if function == "SIGMOID":
        if width <= 0:
            raise MedAIError(f"window width must be > 0 for SIGMOID, got {width}")
        out = 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    elif function == "LINEAR_EXACT":
        if width <= 0:
            raise MedAIError(f"window width must be > 0, got {width}")
        out = (x - center) / width + 0.5
    else:
        if width < 1:
            raise MedAIError(f"window width must be >= 1 for a LINEAR window, got {width}")
        if width == 1:
            out = (x > center - 0.5).astype(np.float64)
        else:
            out = (x - (center - 0.5)) / (width - 1) + 0.5
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _stored_range(ds) -> tuple[float, float] | None:
    bits = ds.get("BitsStored")
    if not bits:
        return None
    bits = int(bits)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _decode(ds, path: Path) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(ds.pixel_array)
    except Exception as exc:
        tsyntax = "unknown transfer syntax"
        meta = getattr(ds, "file_meta", None)
        if meta is not None and meta.get("TransferSyntaxUID"):
            tsyntax = f"{meta.TransferSyntaxUID.name}"
        reason = _one_line(exc)
        if isinstance(exc, (NotImplementedError, RuntimeError)) and (
            "plugin" in reason.lower() or "decod" in reason.lower()
        ):
            raise MedAIError(
                f"{path}: cannot decode pixel data in {tsyntax}; install a decoder for it ({reason})"
            ) from exc
        raise MedAIError(f"{path}: corrupt or truncated pixel data ({tsyntax}): {reason}") from exc


def _decode_image(ds, path: Path, window: Window) -> DicomImage:
    from pydicom.pixels import apply_color_lut

    _require_image(ds, path)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2") or "MONOCHROME2").upper()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    arr = _decode(ds, path)
    meta: dict[str, Any] = {
        "sop_class_uid": str(ds.get("SOPClassUID", "")),
        "sop_class": _sop_class_name(ds),
        "rows": int(ds.get("Rows", 0) or 0),
        "columns": int(ds.get("Columns", 0) or 0),
        "samples_per_pixel": samples,
        "bits_allocated": int(ds.get("BitsAllocated", 0) or 0),
        "bits_stored": int(ds.get("BitsStored", 0) or 0),
        "stored_dtype": str(arr.dtype),
    }
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None and file_meta.get("TransferSyntaxUID"):
        meta["transfer_syntax"] = str(file_meta.TransferSyntaxUID.name)
    if photometric == "PALETTE COLOR":
        try:
            arr = np.asarray(apply_color_lut(arr, ds))
        except Exception as exc:
            raise MedAIError(f"{path}: unreadable palette colour lookup table ({_one_line(exc)})") from exc
        samples = 3
        meta["samples_per_pixel"] = 3
    if samples == 3:
        # pydicom's decoders already convert YBR_* to RGB; colour is not windowed.
        if window is not None:
            raise MedAIError(
                f"{path}: windowing applies to monochrome images; this one is colour ({photometric})"
            )
        pixels = arr.astype(np.float32)
        meta["color_space"] = "RGB"
    elif samples != 1:
        raise MedAIError(f"{path}: {samples} samples per pixel; expected 1 (grey) or 3 (colour)")
    else:
        values, info = _modality_lut(arr, ds, frames)
        meta.update(info)
        meta["window"] = None
        inverted = photometric == "MONOCHROME1"
        if window is not None:
            if isinstance(window, str):
                if window != "file":
                    raise MedAIError(f"window must be None, 'file' or (center, width); got {window!r}")
                found = _file_window(ds)
                if found is None:
                    if ds.get("VOILUTSequence"):
                        values = _voi_lut_sequence(values, ds, path)
                        meta["window"] = "VOILUTSequence"
                    else:
                        raise MedAIError(
                            f"{path}: has no Window Center/Width or VOI LUT; pass window=(center, width)"
                        )
                else:
                    center, width, function = found
                    values = apply_window(values, center, width, function)
                    meta["window"] = (center, width)
                    meta["voi_lut_function"] = function
            else:
                try:
                    center, width = (float(v) for v in window)
                except (TypeError, ValueError):
                    raise MedAIError(
                        f"window must be None, 'file' or (center, width); got {window!r}"
                    ) from None
                values = apply_window(values, center, width)
                meta["window"] = (center, width)
            if inverted:
                values = 1.0 - values
        elif inverted:
            # Invert over the full range the Modality LUT can produce, so the result does not depend
            # on the content of this one image.
            lo_hi = _stored_range(ds)
            slope = meta.get("rescale_slope", 1.0) or 1.0
            inter = meta.get("rescale_intercept", 0.0) or 0.0
            if lo_hi is not None and not ds.get("ModalityLUTSequence"):
                a, b = lo_hi[0] * slope + inter, lo_hi[1] * slope + inter
            else:
                a, b = float(values.min()), float(values.max())
            values = (a + b) - values
        meta["inverted"] = inverted
        pixels = np.asarray(values, dtype=np.float32)

    spacing = _floats(ds.get("PixelSpacing"), 2) or _floats(ds.get("ImagerPixelSpacing"), 2)
    if spacing is None:
        item = _functional_item(ds, "PixelMeasuresSequence", 0)
        if item is not None:
            spacing = _floats(item.get("PixelSpacing"), 2)
            thick = _first_float(item.get("SliceThickness"))
            if thick is not None:
                meta["slice_thickness"] = thick
            between = _first_float(item.get("SpacingBetweenSlices"))
            if between is not None:
                meta["slice_spacing"] = between
    if ds.get("SliceThickness") not in (None, ""):
        meta["slice_thickness"] = _first_float(ds.SliceThickness)
    if ds.get("SpacingBetweenSlices") not in (None, ""):
        meta["slice_spacing"] = _first_float(ds.SpacingBetweenSlices)
    offsets = _floats(ds.get("GridFrameOffsetVector"))
    if offsets and len(offsets) > 1:
        meta["slice_spacing"] = float(np.median(np.abs(np.diff(offsets))))
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    if orientation is not None:
        meta["image_orientation"] = orientation
    position = _floats(ds.get("ImagePositionPatient"), 3)
    if position is not None:
        meta["image_position"] = position
    modality = str(ds.get("Modality", "") or "")
    if frames == 1 and pixels.ndim == (3 if samples == 3 else 2) + 1 and pixels.shape[0] == 1:
        pixels = pixels[0]
    return DicomImage(
        pixels=np.ascontiguousarray(pixels, dtype=np.float32),
        modality=modality,
        photometric=photometric,
        spacing=(spacing[0], spacing[1]) if spacing else None,
        frames=frames,
        meta=meta,
    )


def _voi_lut_sequence(values: np.ndarray, ds, path: Path) -> np.ndarray:
    from pydicom.pixels import apply_voi_lut

    try:
        item = ds.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2]) or 16
        out = np.asarray(apply_voi_lut(values.astype(np.int64), ds, prefer_lut=True), dtype=np.float64)
    except Exception as exc:
        raise MedAIError(f"{path}: unreadable VOI LUT Sequence ({_one_line(exc)})") from exc
    return np.clip(out / float(2**bits - 1), 0.0, 1.0).astype(np.float32)


def read_dicom(path: str | os.PathLike, window: Window = None) -> DicomImage:
    """Read one DICOM image file.

    Parameters
    ----------
    path:
        A DICOM Part 10 file (or a headerless dataset that a forced parse reads).
    window:
        ``None`` — no VOI: pixels are Modality-LUT values (CT in HU, RT dose in Gy);
        ``"file"`` — the file's Window Center/Width (first pair; VOI LUT Function honoured) or its
        VOI LUT Sequence, into ``[0, 1]``; error if the file has none;
        ``(center, width)`` — that LINEAR window, into ``[0, 1]``.

    Raises
    ------
    MedAIError
        Missing file, not DICOM, truncated/corrupt, no pixel data (RT plan/struct, SR, waveform, ...),
        a transfer syntax no installed decoder handles, or a window on a colour image.
    """
    p = Path(path)
    ds = _read(p)
    return _decode_image(ds, p, window)


# ---------------------------------------------------------------------------------------------------
# Series and DICOMDIR
# ---------------------------------------------------------------------------------------------------


@dataclass
class DicomSeriesInfo:
    """One series found under a folder or DICOMDIR (no patient-identifying fields)."""

    series_uid: str
    modality: str
    files: list[Path]
    rows: int
    columns: int

    @property
    def n_files(self) -> int:
        return len(self.files)


def _candidate_files(source: Path) -> tuple[list[Path], str]:
    if not source.exists():
        raise NotFoundError(f"{source}: not found; expected a folder of DICOM files or a DICOMDIR")
    dicomdir = None
    if source.is_file():
        if source.name.upper() == "DICOMDIR" or _looks_like_dicomdir(source):
            dicomdir = source
        else:
            return [source], "files"
    elif (source / "DICOMDIR").is_file():
        dicomdir = source / "DICOMDIR"
    if dicomdir is not None:
        return _dicomdir_files(dicomdir), "DICOMDIR"
    files = sorted(
        p
        for p in source.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.parts[len(source.parts) :])
    )
    return [p for p in files if p.suffix.lower() not in {".txt", ".md", ".json", ".csv"}], "folder"


def _looks_like_dicomdir(path: Path) -> bool:
    try:
        ds = _read(path, stop_before_pixels=True)
    except MedAIError:
        return False
    return "DirectoryRecordSequence" in ds


def _dicomdir_files(path: Path) -> list[Path]:
    from pydicom.fileset import FileSet

    ds = _read(path, stop_before_pixels=True)
    if "DirectoryRecordSequence" not in ds:
        raise MedAIError(f"{path}: not a DICOMDIR (no Directory Record Sequence)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fs = FileSet(ds)
            files = [Path(inst.path) for inst in fs]
    except Exception as exc:
        raise MedAIError(f"{path}: unreadable DICOMDIR ({_one_line(exc)})") from exc
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise NotFoundError(f"{path}: DICOMDIR references {len(missing)} missing file(s), e.g. {missing[0]}")
    return files


def _scan_series(source: Path) -> tuple[dict[str, DicomSeriesInfo], dict[Path, Any]]:
    files, kind = _candidate_files(source)
    series: dict[str, DicomSeriesInfo] = {}
    headers: dict[Path, Any] = {}
    for f in files:
        if kind == "folder" and not is_dicom(f):
            continue  # stray non-DICOM files in a folder are ignored
        ds = _read(f, stop_before_pixels=True)
        if "DirectoryRecordSequence" in ds:
            continue
        # stop_before_pixels drops PixelData; decide image-ness from Rows/Columns instead
        if not (ds.get("Rows") and ds.get("Columns")):
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        info = series.get(uid)
        if info is None:
            info = series[uid] = DicomSeriesInfo(
                series_uid=uid,
                modality=str(ds.get("Modality", "") or ""),
                files=[],
                rows=int(ds.Rows),
                columns=int(ds.Columns),
            )
        info.files.append(f)
        headers[f] = ds
    return series, headers


def list_dicom_series(source: str | os.PathLike) -> list[DicomSeriesInfo]:
    """The image series under a folder (searched recursively) or a DICOMDIR, largest first."""
    series, _ = _scan_series(Path(source))
    return sorted(series.values(), key=lambda s: (-s.n_files, s.series_uid))


def _sort_slices(files: list[Path], headers: dict[Path, Any]) -> tuple[list[Path], str, list[float] | None]:
    """Order slices along the slice normal; fall back to Instance Number, then file name."""
    orients = [_floats(headers[f].get("ImageOrientationPatient"), 6) for f in files]
    positions = [_floats(headers[f].get("ImagePositionPatient"), 3) for f in files]
    if len(files) > 1 and all(o is not None for o in orients) and all(p is not None for p in positions):
        ref = np.asarray(orients[0])
        if all(np.allclose(np.asarray(o), ref, atol=1e-3) for o in orients):
            normal = np.cross(ref[:3], ref[3:])
            dist = [float(np.dot(normal, np.asarray(p))) for p in positions]
            order = sorted(range(len(files)), key=lambda i: (dist[i], str(files[i])))
            if len({round(d, 4) for d in dist}) == len(dist):
                return [files[i] for i in order], "ImagePositionPatient", [dist[i] for i in order]
    numbers = [headers[f].get("InstanceNumber") for f in files]
    if all(n not in (None, "") for n in numbers):
        order = sorted(range(len(files)), key=lambda i: (int(numbers[i]), str(files[i])))
        return [files[i] for i in order], "InstanceNumber", None
    return sorted(files, key=str), "filename", None


def read_dicom_series(
    source: str | os.PathLike,
    *,
    series_uid: str | None = None,
    window: Window = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read one series into a volume.

    Parameters
    ----------
    source:
        A folder (searched recursively; non-DICOM and non-image files are skipped), a folder holding a
        ``DICOMDIR``, or a ``DICOMDIR`` file (read with :class:`pydicom.fileset.FileSet`).
    series_uid:
        The Series Instance UID to read; required when ``source`` holds more than one image series.
    window:
        As in :func:`read_dicom`; with ``"file"`` the first slice's window is used for every slice so
        the volume has one intensity scale.

    Returns
    -------
    (volume, meta)
        ``volume`` float32 ``(D, H, W)``, slices ordered by position along the slice normal
        (``ImagePositionPatient`` · normal of ``ImageOrientationPatient``) when every slice has the
        same orientation and a distinct position; otherwise by Instance Number; otherwise by file name.
        A series that is one multi-frame file gives its frames. ``meta`` holds ``series_uid``,
        ``modality``, ``n_slices``, ``sorted_by``, ``spacing`` ``(dz, dy, dx)`` in mm (entries
        ``None`` when unknown), ``slice_positions`` and ``files`` in volume order.
    """
    src = Path(source)
    series, headers = _scan_series(src)
    if not series:
        raise MedAIError(f"{src}: no DICOM image files found; expected DICOM images or a DICOMDIR")
    if series_uid is not None:
        if series_uid not in series:
            raise NotFoundError(
                f"{src}: no series with SeriesInstanceUID {series_uid}; found {len(series)} series"
            )
        info = series[series_uid]
    elif len(series) > 1:
        listing = "; ".join(
            f"{s.series_uid} ({s.modality}, {s.n_files} file(s))" for s in _by_size(series)[:5]
        )
        more = "" if len(series) <= 5 else f"; and {len(series) - 5} more"
        raise MedAIError(
            f"{src}: holds {len(series)} image series; choose one with series_uid=...: {listing}{more}"
        )
    else:
        info = next(iter(series.values()))

    files, sorted_by, positions = _sort_slices(info.files, headers)
    if window == "file":
        first = _read(files[0])
        found = _file_window(first)
        if found is None:
            raise MedAIError(f"{files[0]}: has no Window Center/Width; pass window=(center, width)")
        window = (found[0], found[1])

    slices = []
    spacing_xy = None
    thickness = None
    for f in files:
        img = read_dicom(f, window=window)
        if img.meta.get("samples_per_pixel") == 3:
            raise MedAIError(f"{f}: colour image in a series; expected monochrome slices for a volume")
        if spacing_xy is None:
            spacing_xy = img.spacing
            thickness = img.meta.get("slice_spacing") or img.meta.get("slice_thickness")
        slices.append(img.pixels)
    if len(slices) == 1 and slices[0].ndim == 3:
        volume = slices[0]
        sorted_by = "frames"
    else:
        shapes = {s.shape for s in slices}
        if len(shapes) > 1 or any(s.ndim != 2 for s in slices):
            raise MedAIError(
                f"{src}: slices of series {info.series_uid} differ in shape ({sorted(shapes)}); "
                "expected one (rows, columns) for every slice"
            )
        volume = np.stack(slices, axis=0)
    dz = None
    if positions is not None and len(positions) > 1:
        dz = float(np.median(np.diff(positions)))
    elif thickness:
        dz = float(thickness)
    meta = {
        "series_uid": info.series_uid,
        "modality": info.modality,
        "n_slices": int(volume.shape[0]),
        "sorted_by": sorted_by,
        "spacing": (dz, *(spacing_xy if spacing_xy else (None, None))),
        "slice_positions": positions,
        "files": [str(f) for f in files],
        "window": window if not isinstance(window, str) else None,
    }
    return np.ascontiguousarray(volume, dtype=np.float32), meta


def _by_size(series: dict[str, DicomSeriesInfo]) -> list[DicomSeriesInfo]:
    return sorted(series.values(), key=lambda s: (-s.n_files, s.series_uid))


def read_dicom_files(paths: Sequence[str | os.PathLike], window: Window = None) -> list[DicomImage]:
    """Read several single DICOM files (convenience for callers that already chose the files)."""
    return [read_dicom(p, window=window) for p in paths]
