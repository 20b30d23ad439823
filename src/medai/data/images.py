"""Image data in the forms users have it: files, class folders, CSV listings, MedMNIST ``.npz``.

Readers
-------
* :func:`load_image` — one file to a float32 array: PNG/JPEG/BMP/TIFF (Pillow), DICOM (via
  :mod:`medai.data.dicom`, Modality-LUT values, no window), NIfTI ``.nii``/``.nii.gz`` (nibabel,
  reoriented to the closest canonical RAS orientation), ``.npy`` (no pickles).
* :func:`scan_image_folder` — ``root/<class>/**/<image>``, one sub-folder per class.
* :func:`read_image_csv` — a CSV with a path column (relative to the CSV) and a label column.
* :func:`load_medmnist_npz` — a MedMNIST ``.npz`` with validated keys and shapes.

Array layout returned by :func:`load_image`
-------------------------------------------
* grey 2D ``(H, W)``; colour 2D ``(H, W, C)`` with ``C`` = 3 (RGB), 4 (RGBA) or 2 (grey + alpha), kept
  as stored so that :func:`prepare_images` can refuse what it cannot convert;
* 3D ``(D, H, W)`` (NIfTI volumes, multi-frame DICOM, multi-page TIFF, 3D ``.npy``).

Preparation (:func:`prepare_images`)
------------------------------------
Turns a list of arrays into one float32 batch ``(N, C, H, W)`` or ``(N, C, D, H, W)`` in ``[0, 1]``.

* Layout: ``(H, W)``; ``(H, W, C)`` or ``(C, H, W)`` with ``C <= 4``; ``(D, H, W)``;
  ``(D, H, W, C)`` or ``(C, D, H, W)`` with ``C <= 4``. With ``spatial_dims=None`` the kind (2D/3D) is
  inferred per image and a set mixing 2D and 3D is refused.
* Channels: 1 → 3 replicates the grey image; 3 → 1 uses ITU-R BT.601 luma
  (0.299 R + 0.587 G + 0.114 B); 2- and 4-channel images (alpha present) are refused — drop or
  composite the alpha channel first.
* Scaling: ``"auto"`` (default) divides ``uint8`` by 255 and maps ``bool`` to 0/1, and min-max scales
  every other dtype per image (over all channels together); ``"minmax"`` always min-max;
  ``"dtype"`` maps the integer dtype's full range to ``[0, 1]`` and clips floats to ``[0, 1]``.
  A constant image becomes all zeros under min-max.
* Resizing: :func:`skimage.transform.resize`, linear, anti-aliased when shrinking.
* Every spatial side must be at least :data:`MIN_IMAGE_SIZE` (8) pixels; non-finite values are refused.
"""

from __future__ import annotations

import csv
import os
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from medai import budget
from medai.errors import MedAIError, NotFoundError

__all__ = [
    "IMAGE_EXTENSIONS",
    "MIN_IMAGE_SIZE",
    "ImageListing",
    "load_image",
    "load_images",
    "load_images_bounded",
    "load_medmnist_npz",
    "prepare_images",
    "read_image_csv",
    "scan_image_folder",
]

MIN_IMAGE_SIZE = 8
"""Smallest accepted side (pixels or slices) of an image, before resizing."""

PIL_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DICOM_EXTENSIONS = (".dcm", ".dicom")
NIFTI_EXTENSIONS = (".nii", ".nii.gz")
IMAGE_EXTENSIONS = PIL_EXTENSIONS + DICOM_EXTENSIONS + NIFTI_EXTENSIONS + (".npy",)

MEDMNIST_SPLITS = ("train", "val", "test")

Scaling = Literal["auto", "minmax", "dtype"]


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else type(exc).__name__
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(NIFTI_EXTENSIONS):
        return "nifti"
    suffix = path.suffix.lower()
    if suffix in PIL_EXTENSIONS:
        return "pil"
    if suffix in DICOM_EXTENSIONS:
        return "dicom"
    if suffix == ".npy":
        return "npy"
    return None


def _is_image_file(path: Path) -> bool:
    if path.name.startswith("."):
        return False
    if _kind(path) is not None:
        return True
    if path.suffix == "":
        from medai.data.dicom import is_dicom

        return is_dicom(path)
    return False


# ---------------------------------------------------------------------------------------------------
# One file
# ---------------------------------------------------------------------------------------------------


def load_image(
    path: str | os.PathLike,
    *,
    target: Sequence[int] | None = None,
    label: str | None = None,
) -> np.ndarray:
    """Read one image file into a float32 array (see the module docs for shapes).

    ``target``: the spatial size the caller will resize to ((H, W) or (D, H, W)); when given, an image much
    larger than it is reduced while it is read (JPEG decoded at a reduced scale, other raster images box-
    reduced right after decoding, large volumes and arrays read with a stride) to no less than twice the
    target on every side, so memory and time follow what the model needs, not what the file claims.
    ``label``: how to name the file in errors (default its path; the service passes a neutral name so
    that no server path reaches a client).

    Under a :mod:`medai.budget` the size each file declares in its header is checked against the budget's
    per-file and total pixel limits *before* anything is decoded.

    Raises :class:`NotFoundError` for a missing file and :class:`MedAIError` (naming the file) for an
    unsupported format, a corrupt or truncated file, a DICOM object without pixel data, a pickled or
    non-numeric ``.npy``, or an image over the budget.
    """
    p = Path(path)
    name = label or str(p)
    try:
        arr = _load_any(p, target)
    except MedAIError as exc:
        if label is None or str(p) not in str(exc):
            raise
        raise type(exc)(str(exc).replace(str(p), label)) from None
    if arr.size == 0:
        raise MedAIError(f"{name}: image is empty (shape {arr.shape})")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _load_any(p: Path, target: Sequence[int] | None) -> np.ndarray:
    if not p.exists():
        raise NotFoundError(f"{p}: image file not found")
    if p.is_dir():
        raise MedAIError(f"{p}: is a folder; expected an image file")
    kind = _kind(p)
    if kind is None:
        from medai.data.dicom import is_dicom

        if is_dicom(p):
            kind = "dicom"
        else:
            raise MedAIError(
                f"{p}: unsupported image format; expected one of {', '.join(IMAGE_EXTENSIONS)} or DICOM"
            )
    if kind == "dicom":
        return _load_dicom(p)
    if kind == "nifti":
        return _load_nifti(p, target)
    if kind == "npy":
        return _load_npy(p, target)
    return _load_pil(p, target)


def _strides(shape: Sequence[int], target: Sequence[int] | None) -> tuple[int, ...] | None:
    """Per-axis steps that keep every spatial side at least twice ``target`` (None when none helps)."""
    if target is None or len(shape) < len(target):
        return None
    spatial = shape[: len(target)]
    steps = tuple(max(1, int(side) // (2 * int(t))) for side, t in zip(spatial, target, strict=True))
    return steps if any(s > 1 for s in steps) else None


def _load_dicom(path: Path) -> np.ndarray:
    from medai.data.dicom import _decode_image, _read

    ds = _read(path)
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
        values = int(ds.Rows) * int(ds.Columns) * max(frames, 1) * int(ds.get("SamplesPerPixel") or 1)
    except (AttributeError, TypeError, ValueError):
        values = 0  # no image attributes: _decode_image names what is missing
    budget.charge_pixels(values, str(path), volume=frames > 1)
    return _decode_image(ds, path, None).pixels


def _load_pil(path: Path, target: Sequence[int] | None = None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                n_frames = int(getattr(img, "n_frames", 1) or 1)
                # from the header, before anything is decoded
                budget.charge_pixels(width * height * n_frames, str(path), volume=n_frames > 1)
                size2d = tuple(target[-2:]) if target is not None else None  # (H, W)
                if size2d is not None and img.format == "JPEG" and n_frames == 1:
                    img.draft(img.mode, (2 * size2d[1], 2 * size2d[0]))  # decode at 1/2, 1/4 or 1/8 scale
                frames = []
                for i in range(n_frames):
                    budget.check()
                    img.seek(i)
                    img.load()
                    frame = img
                    factor = 1
                    if size2d is not None:
                        factor = max(1, min(frame.size[1] // (2 * size2d[0]), frame.size[0] // (2 * size2d[1])))
                    if factor > 1:
                        try:
                            frame = frame.reduce(factor)  # box filter: cheap, and the resize that follows
                        except (ValueError, NotImplementedError):  # anti-aliases the rest of the way
                            frame = img
                    frames.append(_pil_to_array(frame))
    except UnidentifiedImageError:
        raise MedAIError(f"{path}: not a readable image (unknown or corrupt {path.suffix} file)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MedAIError(f"{path}: image is too large to decode safely ({_one_line(exc)})") from None
    except MedAIError:
        raise
    except Exception as exc:  # OSError "image file is truncated", SyntaxError, zlib errors, ...
        raise MedAIError(f"{path}: corrupt or truncated image ({_one_line(exc)})") from None
    if len(frames) == 1:
        return frames[0]
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise MedAIError(f"{path}: multi-page image with pages of different sizes {sorted(shapes)}")
    return np.stack(frames, axis=0)


def _pil_to_array(img) -> np.ndarray:
    mode = img.mode
    if mode == "1":
        img = img.convert("L")
    elif mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        img = img.convert("RGB")
    elif mode.startswith("I;16"):
        return np.asarray(img, dtype=np.uint16).astype(np.float32)
    return np.asarray(img).astype(np.float32)


_READ_FULL_BELOW = 16_000_000
"""Arrays and volumes with fewer values than this are read whole; larger ones with a stride (``target`` given)."""


def _load_npy(path: Path, target: Sequence[int] | None = None) -> np.ndarray:
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _fortran, dtype = read_header(handle)
    except Exception as exc:
        raise MedAIError(f"{path}: corrupt or truncated .npy file ({_one_line(exc)})") from None
    if dtype.hasobject:
        raise MedAIError(f"{path}: .npy holds Python objects (pickle); expected a numeric array")
    if dtype.kind not in "biuf":
        raise MedAIError(f"{path}: .npy holds {dtype}; expected a numeric array")
    values = int(np.prod(shape, dtype=np.int64)) if shape else 1
    budget.charge_pixels(values, str(path), volume=sum(1 for side in shape if side > 4) >= 3)
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r")
        steps = _strides(arr.shape, target) if values > _READ_FULL_BELOW else None
        if steps is not None:
            arr = arr[tuple(slice(None, None, s) for s in steps)]
        arr = np.array(arr, dtype=np.float32)
    except Exception as exc:
        raise MedAIError(f"{path}: corrupt or truncated .npy file ({_one_line(exc)})") from None
    return arr


def _load_nifti(path: Path, target: Sequence[int] | None = None) -> np.ndarray:
    import nibabel as nib
    from nibabel.orientations import apply_orientation, io_orientation

    try:
        img = nib.load(str(path))
        shape = tuple(int(s) for s in img.shape)
    except Exception as exc:  # ImageFileError, EOFError, zlib.error, ...
        raise MedAIError(f"{path}: corrupt or truncated NIfTI file ({_one_line(exc)})") from None
    values = int(np.prod(shape, dtype=np.int64)) if shape else 0
    # from the header, before a single voxel is read
    budget.charge_pixels(values, str(path), volume=sum(1 for side in shape if side > 1) >= 3)
    try:
        # (X, Y, Z) in the file; a target (D, H, W) = (Z, Y, X) after the transpose below
        steps = None
        if target is not None and values > _READ_FULL_BELOW and len(shape) >= len(target):
            steps = _strides(shape[: len(target)], tuple(reversed(target)))
        if steps is not None:
            index = tuple(slice(None, None, s) for s in steps)
            data = np.asarray(img.dataobj[index], dtype=np.float32)
        else:
            data = np.asarray(img.get_fdata(dtype=np.float32))
        ornt = io_orientation(img.affine)  # to the closest canonical (RAS) orientation, as nib.as_closest_canonical
        if data.ndim >= len(ornt):
            data = apply_orientation(data, ornt)
        elif data.ndim == 2:
            data = apply_orientation(data[..., None], ornt)
            data = data.reshape([side for side in data.shape if side != 1] or data.shape[:2])
    except MedAIError:
        raise
    except Exception as exc:
        raise MedAIError(f"{path}: corrupt or truncated NIfTI file ({_one_line(exc)})") from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        return data.T  # (X, Y) -> (H=Y, W=X)
    if data.ndim == 3:
        return np.transpose(data, (2, 1, 0))  # (X, Y, Z) -> (D=Z, H=Y, W=X)
    raise MedAIError(f"{path}: NIfTI image of shape {data.shape} (time series?); expected a 2D or 3D image")


# ---------------------------------------------------------------------------------------------------
# Preparation into a batch
# ---------------------------------------------------------------------------------------------------


def _layout(a: np.ndarray, spatial_dims: int | None, name: str) -> tuple[np.ndarray, int]:
    """Return (channels-last array, spatial dims)."""
    nd = a.ndim
    if nd == 2:
        if spatial_dims == 3:
            raise MedAIError(f"{name}: is 2D (shape {a.shape}) but 3D images were expected")
        return a[..., None], 2
    if nd == 3:
        if spatial_dims == 3:
            return a[..., None], 3
        if a.shape[-1] <= 4:
            return a, 2
        if a.shape[0] <= 4:
            return np.moveaxis(a, 0, -1), 2
        if spatial_dims == 2:
            raise MedAIError(f"{name}: is 3D (shape {a.shape}) but 2D images were expected")
        return a[..., None], 3
    if nd == 4:
        if spatial_dims == 2:
            raise MedAIError(f"{name}: is 3D with channels (shape {a.shape}) but 2D images were expected")
        if a.shape[-1] <= 4:
            return a, 3
        if a.shape[0] <= 4:
            return np.moveaxis(a, 0, -1), 3
    raise MedAIError(
        f"{name}: array of shape {a.shape} is not an image; expected (H, W), (H, W, C), (D, H, W) "
        "or (D, H, W, C) with C <= 4"
    )


def _scale(a: np.ndarray, scaling: str, name: str) -> np.ndarray:
    dtype = a.dtype
    if scaling not in ("auto", "minmax", "dtype"):
        raise MedAIError(f"scaling must be 'auto', 'minmax' or 'dtype'; got {scaling!r}")
    if dtype == np.bool_:
        return a.astype(np.float32)
    if scaling == "dtype" or (scaling == "auto" and dtype == np.uint8):
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            return ((a.astype(np.float64) - info.min) / float(info.max - info.min)).astype(np.float32)
        return np.clip(a, 0.0, 1.0).astype(np.float32)
    x = a.astype(np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.float32)
    return ((x - lo) / (hi - lo)).astype(np.float32)


def _convert_channels(a: np.ndarray, channels: int, name: str) -> np.ndarray:
    c = a.shape[-1]
    if c == 2:
        raise MedAIError(
            f"{name}: has 2 channels (grey + alpha?); expected 1 (grey) or 3 (RGB) — drop the alpha channel"
        )
    if c == 4:
        raise MedAIError(
            f"{name}: has 4 channels (RGBA?) but {'grey' if channels == 1 else 'RGB'} was expected; "
            "convert it to RGB or grey first"
        )
    if c == channels:
        return a
    if c == 1 and channels == 3:
        return np.repeat(a, 3, axis=-1)
    if c == 3 and channels == 1:
        weights = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
        return (a @ weights)[..., None].astype(np.float32)
    raise MedAIError(f"{name}: has {c} channels; expected 1 (grey) or 3 (RGB)")


def _target_size(image_size, spatial_dims: int) -> tuple[int, ...] | None:
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)):
        size = (int(image_size),) * spatial_dims
    else:
        size = tuple(int(s) for s in image_size)
        if len(size) != spatial_dims:
            raise MedAIError(
                f"image_size {tuple(image_size)} has {len(size)} entries; expected {spatial_dims} "
                f"for {spatial_dims}D images"
            )
    if any(s < 1 for s in size):
        raise MedAIError(f"image_size must be positive; got {image_size}")
    return size


def prepare_images(
    images: Sequence[np.ndarray],
    image_size: int | Sequence[int] | None,
    channels: int = 1,
    spatial_dims: int | None = None,
    *,
    scaling: Scaling = "auto",
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """Turn arrays into one float32 batch in ``[0, 1]``.

    Parameters
    ----------
    images:
        Arrays as returned by :func:`load_image` (or raw arrays, e.g. MedMNIST ``uint8``).
    image_size:
        Target spatial size: an int (square/cube) or one int per spatial axis; ``None`` keeps the sizes,
        which must then be equal.
    channels:
        1 (grey) or 3 (RGB); conversion rules in the module docs.
    spatial_dims:
        2 or 3; ``None`` infers it and refuses a mix of 2D and 3D images.
    scaling:
        ``"auto"``, ``"minmax"`` or ``"dtype"`` (module docs).
    names:
        How to name each image in error messages (e.g. its file path); defaults to ``image #i``.

    Returns
    -------
    numpy.ndarray
        float32, ``(N, C, H, W)`` for 2D or ``(N, C, D, H, W)`` for 3D.
    """
    if channels not in (1, 3):
        raise MedAIError(f"channels must be 1 (grey) or 3 (RGB); got {channels}")
    if spatial_dims not in (None, 2, 3):
        raise MedAIError(f"spatial_dims must be 2, 3 or None; got {spatial_dims}")
    images = list(images)
    if not images:
        raise MedAIError("no images to prepare; expected at least one image")
    if names is not None and len(names) != len(images):
        raise MedAIError(f"names has {len(names)} entries for {len(images)} images")
    labels = [str(n) for n in names] if names is not None else [f"image #{i}" for i in range(len(images))]

    laid_out = []
    first_dims: tuple[int, str, tuple] | None = None
    for img, name in zip(images, labels, strict=True):
        a = np.asarray(img)
        if a.dtype.kind not in "biuf":
            raise MedAIError(f"{name}: pixel type {a.dtype} is not numeric; expected an image array")
        if a.size == 0:
            raise MedAIError(f"{name}: image is empty (shape {a.shape})")
        a, dims = _layout(a, spatial_dims, name)
        if first_dims is None:
            first_dims = (dims, name, a.shape)
        elif dims != first_dims[0]:
            raise MedAIError(
                f"mixed 2D and 3D inputs: {name} is {dims}D (shape {a.shape}) but {first_dims[1]} is "
                f"{first_dims[0]}D; expected all images of one kind"
            )
        spatial = a.shape[:-1]
        if min(spatial) < MIN_IMAGE_SIZE:
            raise MedAIError(
                f"{name}: image is {'x'.join(map(str, spatial))} px; every side must be at least "
                f"{MIN_IMAGE_SIZE} px"
            )
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise MedAIError(f"{name}: image holds NaN or infinite values; expected finite numbers")
        laid_out.append((a, name))

    dims = first_dims[0]
    target = _target_size(image_size, dims)
    if target is None:
        shapes = {a.shape[:-1] for a, _ in laid_out}
        if len(shapes) > 1:
            raise MedAIError(
                f"images differ in size ({len(shapes)} sizes, e.g. {sorted(shapes)[:3]}); pass image_size"
            )

    from skimage.transform import resize

    out = []
    for a, name in laid_out:
        c = a.shape[-1]
        if c in (2, 4):
            _convert_channels(a, channels, name)  # raises with the explanation
        x = _scale(a, scaling, name)
        x = _convert_channels(x, channels, name)
        if target is not None and tuple(x.shape[:-1]) != target:
            shrink = any(t < s for t, s in zip(target, x.shape[:-1], strict=True))
            x = resize(
                x,
                (*target, x.shape[-1]),
                order=1,
                mode="edge",
                anti_aliasing=shrink,
                preserve_range=True,
            )
        x = np.clip(x, 0.0, 1.0).astype(np.float32)
        out.append(np.moveaxis(x, -1, 0))
    return np.ascontiguousarray(np.stack(out, axis=0), dtype=np.float32)


def load_images(
    paths: Sequence[str | os.PathLike],
    image_size: int | Sequence[int] | None,
    channels: int = 1,
    spatial_dims: int | None = None,
    *,
    scaling: Scaling = "auto",
) -> np.ndarray:
    """:func:`load_image` every path, then :func:`prepare_images` with the paths as names."""
    arrays = [load_image(p) for p in paths]
    return prepare_images(
        arrays, image_size, channels, spatial_dims, scaling=scaling, names=[str(p) for p in paths]
    )


def load_images_bounded(
    paths: Sequence[str | os.PathLike],
    image_size: int | Sequence[int],
    channels: int = 1,
    spatial_dims: int | None = None,
    *,
    scaling: Scaling = "auto",
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """:func:`load_images` for untrusted files, one at a time: each file is checked against the current
    :mod:`medai.budget` from its header, decoded at reduced size when it is much larger than ``image_size``
    (see :func:`load_image`), prepared to the model's input, and let go before the next one is read — so at
    most one decoded image is held at full size, whatever the number of files. ``names`` label the files
    in errors (default: their paths). Stops between files when the budget runs out or is cancelled."""
    paths = list(paths)
    if not paths:
        raise MedAIError("no images to prepare; expected at least one image")
    labels = [str(n) for n in names] if names is not None else [str(p) for p in paths]
    if len(labels) != len(paths):
        raise MedAIError(f"names has {len(labels)} entries for {len(paths)} images")
    batch = []
    first: tuple[int, str] | None = None
    for path, label in zip(paths, labels, strict=True):
        budget.check()
        arr = load_image(path, target=_hint(image_size, spatial_dims), label=label)
        x = prepare_images([arr], image_size, channels, spatial_dims, scaling=scaling, names=[label])
        del arr
        if first is None:
            first = (x.ndim, label)
        elif x.ndim != first[0]:
            raise MedAIError(
                f"mixed 2D and 3D inputs: {label} is {x.ndim - 2}D but {first[1]} is {first[0] - 2}D; "
                "expected all images of one kind"
            )
        batch.append(x[0])
    return np.ascontiguousarray(np.stack(batch, axis=0), dtype=np.float32)


def _hint(image_size, spatial_dims: int | None) -> tuple[int, ...] | None:
    """The spatial target for reduced decoding: (H, W) for 2D, (D, H, W) for 3D; None when unknown."""
    if image_size is None:
        return None
    if isinstance(image_size, int | np.integer):
        dims = spatial_dims or 2
        return (int(image_size),) * dims
    return tuple(int(s) for s in image_size)


# ---------------------------------------------------------------------------------------------------
# Listings: class folders and CSV
# ---------------------------------------------------------------------------------------------------


@dataclass
class ImageListing:
    """Image files with integer labels; ``labels[i]`` indexes ``classes``."""

    paths: list[Path]
    labels: np.ndarray | None
    classes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def class_counts(self) -> dict[str, int]:
        if self.labels is None:
            return {}
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts, strict=True)}


def scan_image_folder(root: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> ImageListing:
    """List ``root/<class>/**/<image>``: one sub-folder per class, classes sorted by name.

    Image files are recognised by extension (``extensions``) or, without an extension, by the DICOM
    marker. Hidden files and folders are skipped.

    Raises :class:`MedAIError` for a missing or empty folder, images lying in ``root`` itself, a class
    folder without images, or fewer than two classes.
    """
    root = Path(root)
    if not root.exists():
        raise NotFoundError(f"{root}: image folder not found")
    if not root.is_dir():
        raise MedAIError(f"{root}: not a folder; expected a folder with one sub-folder per class")
    exts = tuple(e.lower() for e in extensions)

    def wanted(p: Path) -> bool:
        if p.name.startswith(".") or not p.is_file():
            return False
        name = p.name.lower()
        if name.endswith(exts):
            return True
        return p.suffix == "" and _is_image_file(p)

    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        loose = [p for p in root.iterdir() if wanted(p)]
        if loose:
            raise MedAIError(f"{root}: images lie directly in the folder; expected one sub-folder per class")
        raise MedAIError(f"{root}: folder is empty; expected one sub-folder of images per class")
    paths: list[Path] = []
    labels: list[int] = []
    classes = [d.name for d in class_dirs]
    for index, d in enumerate(class_dirs):
        files = sorted(
            p
            for p in d.rglob("*")
            if wanted(p) and not any(part.startswith(".") for part in p.relative_to(d).parts)
        )
        if not files:
            raise MedAIError(
                f"{d}: class folder '{d.name}' has no images; expected files ending in {', '.join(exts)}"
            )
        paths.extend(files)
        labels.extend([index] * len(files))
    if len(classes) < 2:
        raise MedAIError(f"{root}: only one class ('{classes[0]}'); expected at least two class sub-folders")
    return ImageListing(paths=paths, labels=np.asarray(labels, dtype=np.int64), classes=classes)


def _class_order(values: list[str]) -> list[str]:
    uniq = set(values)
    try:
        return sorted(uniq, key=float)
    except ValueError:
        return sorted(uniq)


def read_image_csv(
    csv_path: str | os.PathLike,
    path_column: str = "path",
    label_column: str | None = "label",
) -> ImageListing:
    """Read a CSV listing images: ``path_column`` (relative to the CSV's folder, or absolute) and
    ``label_column`` (class names or numbers; ``None`` for an unlabelled listing).

    Classes are the distinct labels, sorted numerically when they are all numbers, else by name.
    Row numbers in errors count the header as row 1.

    Raises :class:`MedAIError` for a missing/empty CSV, a missing column, an empty path or label, a
    missing image file (named with its row), or fewer than two classes.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise NotFoundError(f"{csv_path}: CSV file not found")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fieldnames = reader.fieldnames
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise MedAIError(f"{csv_path}: unreadable CSV ({_one_line(exc)}); expected UTF-8 text") from exc
    if not fieldnames:
        raise MedAIError(f"{csv_path}: CSV is empty; expected a header with '{path_column}'")
    fieldnames = [f.strip() if f else f for f in fieldnames]
    needed = [path_column] + ([label_column] if label_column is not None else [])
    for col in needed:
        if col not in fieldnames:
            raise MedAIError(
                f"{csv_path}: no column '{col}'; columns are {', '.join(str(f) for f in fieldnames)}"
            )
    if not rows:
        raise MedAIError(f"{csv_path}: CSV has a header but no rows; expected one row per image")
    base = csv_path.parent
    paths: list[Path] = []
    raw_labels: list[str] = []
    missing: list[tuple[int, str]] = []
    for i, row in enumerate(rows, start=2):
        row = {(k.strip() if isinstance(k, str) else k): v for k, v in row.items()}
        value = (row.get(path_column) or "").strip()
        if not value:
            raise MedAIError(f"{csv_path}: row {i}: empty '{path_column}'; expected an image path")
        p = Path(value)
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            missing.append((i, value))
        paths.append(p)
        if label_column is not None:
            label = (row.get(label_column) or "").strip()
            if not label:
                raise MedAIError(f"{csv_path}: row {i}: empty '{label_column}'; expected a class label")
            raw_labels.append(label)
    if missing:
        row_no, value = missing[0]
        more = f" (and {len(missing) - 1} more rows)" if len(missing) > 1 else ""
        raise NotFoundError(f"{csv_path}: row {row_no}: image file '{value}' not found{more}")
    if label_column is None:
        return ImageListing(paths=paths, labels=None, classes=[])
    classes = _class_order(raw_labels)
    if len(classes) < 2:
        raise MedAIError(
            f"{csv_path}: only one class ('{classes[0]}') in '{label_column}'; expected at least two"
        )
    index = {c: k for k, c in enumerate(classes)}
    labels = np.asarray([index[v] for v in raw_labels], dtype=np.int64)
    return ImageListing(paths=paths, labels=labels, classes=classes)


# ---------------------------------------------------------------------------------------------------
# MedMNIST
# ---------------------------------------------------------------------------------------------------


def load_medmnist_npz(
    path: str | os.PathLike, splits: Sequence[str] = MEDMNIST_SPLITS
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read a MedMNIST ``.npz`` into ``{split: (images uint8, labels int64)}``.

    Images are ``(N, H, W)`` (2D grey), ``(N, H, W, 3)`` (2D RGB) or ``(N, D, H, W)`` (3D), uint8.
    Labels ``(N, 1)`` are returned 1-D ``(N,)``; multi-label files (``(N, K)``, K > 1, e.g.
    ChestMNIST) keep their 2-D shape.

    Raises :class:`MedAIError` naming the file for a missing/corrupt archive, missing keys
    (``<split>_images``/``<split>_labels``), pickled arrays, wrong dtypes or shapes, a different number of
    images and labels, or negative labels.
    """
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"{p}: MedMNIST file not found")
    result: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with np.load(p, allow_pickle=False) as npz:
            keys = set(npz.files)
            wanted = [f"{s}_{part}" for s in splits for part in ("images", "labels")]
            absent = [k for k in wanted if k not in keys]
            if absent:
                raise MedAIError(
                    f"{p}: missing key(s) {', '.join(absent)}; a MedMNIST file holds "
                    f"{', '.join(wanted)} (found {', '.join(sorted(keys)) or 'none'})"
                )
            for split in splits:
                images = npz[f"{split}_images"]
                labels = npz[f"{split}_labels"]
                result[split] = _check_medmnist_split(p, split, images, labels)
    except MedAIError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        text = str(exc).lower()
        if "pickle" in text:
            raise MedAIError(f"{p}: holds pickled objects; expected plain numeric arrays") from exc
        raise MedAIError(f"{p}: corrupt or truncated .npz file ({_one_line(exc)})") from exc
    except Exception as exc:
        raise MedAIError(f"{p}: corrupt or truncated .npz file ({_one_line(exc)})") from exc
    shapes = {result[s][0].shape[1:] for s in result}
    if len(shapes) > 1:
        raise MedAIError(f"{p}: splits have different image shapes {sorted(shapes)}; expected one shape")
    return result


def _check_medmnist_split(p: Path, split: str, images: np.ndarray, labels: np.ndarray):
    if images.dtype != np.uint8:
        if images.dtype.kind in "iu" and images.size and images.min() >= 0 and images.max() <= 255:
            images = images.astype(np.uint8)
        else:
            raise MedAIError(f"{p}: {split}_images has dtype {images.dtype}; expected uint8 0-255")
    if images.ndim not in (3, 4) or images.shape[0] == 0:
        raise MedAIError(
            f"{p}: {split}_images has shape {images.shape}; expected (N, H, W), (N, H, W, 3) or (N, D, H, W)"
        )
    if labels.dtype.kind not in "iub":
        raise MedAIError(f"{p}: {split}_labels has dtype {labels.dtype}; expected integers")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim not in (1, 2):
        raise MedAIError(f"{p}: {split}_labels has shape {labels.shape}; expected (N, 1) or (N,)")
    if labels.shape[0] != images.shape[0]:
        raise MedAIError(
            f"{p}: {split} has {images.shape[0]} images but {labels.shape[0]} labels; expected equal counts"
        )
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise MedAIError(f"{p}: {split}_labels has negative values; expected class indices >= 0")
    return np.ascontiguousarray(images), np.ascontiguousarray(labels)
