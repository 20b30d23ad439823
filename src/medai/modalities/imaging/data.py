"""Reading images for the road: built-in MedMNIST tasks (official splits), a user's class folders, a CSV of
image paths and labels, or a MedMNIST-style ``.npz``; and the files or folders to predict."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from medai.data.dataset import Dataset, Inputs
from medai.errors import MedAIError, NotFoundError

SPLITS = ("train", "val", "test")


def image_hashes(X: np.ndarray) -> np.ndarray:
    return np.asarray([hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest() for x in X])


def preprocessing(first, spatial_dims: int, image_size) -> dict[str, Any]:
    channels = 3 if (spatial_dims == 2 and np.ndim(first) == 3 and np.shape(first)[-1] == 3) else 1
    return {"image_size": image_size, "channels": channels, "spatial_dims": spatial_dims}


def input_schema(pre: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "image", **pre, "formats": ["png", "jpeg", "dicom", "nifti", "npy"]}


def image_dataset(images: list, labels: np.ndarray, classes: list[str], spatial_dims: int, image_size, *, source: str,
             official: dict[str, np.ndarray] | None, license: str = "user data", citation: str = "") -> Dataset:
    from medai.data.images import prepare_images

    pre = preprocessing(images[0], spatial_dims, image_size)
    X = prepare_images(images, image_size, channels=pre["channels"], spatial_dims=spatial_dims)
    keys = image_hashes(X)
    train = official["train"] if official else np.arange(len(X))
    fingerprint = hashlib.sha256("".join(sorted(set(keys[train]))).encode()).hexdigest()
    return Dataset(X=X, y=np.asarray(classes, dtype=object)[np.asarray(labels, dtype=int)], target_column="label",
                   input_schema=input_schema(pre), source=source, license=license, citation=citation,
                   fingerprint=fingerprint, official_split=official, record_keys=keys, classes=list(classes),
                   options=pre)


def _official(splits: dict[str, tuple]) -> tuple[list, np.ndarray, dict[str, np.ndarray]]:
    images, labels, parts, start = [], [], {}, 0
    for name in SPLITS:
        x, y = splits[name]
        if np.ndim(y) > 1 and np.shape(y)[1] > 1:
            raise MedAIError("multi-label image data (several labels per image) is not supported by image models yet")
        images.extend(list(x))
        labels.append(np.asarray(y).reshape(-1))
        parts[name] = np.arange(start, start + len(x))
        start += len(x)
    return images, np.concatenate(labels).astype(int), parts


def spatial_dims_of(first) -> int:
    return 3 if (getattr(first, "ndim", 0) == 3 and first.shape[-1] not in (3,)) else 2


def task_dataset(task, image_size) -> Dataset:
    from medai.data.registry import get_dataset

    spec = get_dataset(task.dataset)
    images, labels, parts = _official(spec.load())
    classes = list(spec.extra.get("classes") or [str(c) for c in np.unique(labels[parts["train"]])])
    spatial_dims = int(task.options.get("spatial_dims", 2))
    size = image_size or task.options.get("image_size", 28)
    return image_dataset(images, labels, classes, spatial_dims, size, source=spec.name, official=parts,
                    license=spec.license, citation=spec.citation)


def user_dataset(path: Path, image_size, path_column: str | None, label_column: str | None) -> Dataset:
    """A class-per-folder directory, a CSV of ``path,label``, or a MedMNIST-style ``.npz`` (its own splits)."""
    from medai.data.images import load_image, load_medmnist_npz, read_image_csv, scan_image_folder

    path = Path(path)
    if path.suffix.lower() == ".npz":
        images, labels, parts = _official(load_medmnist_npz(path))
        classes = [str(c) for c in np.unique(labels)]
        dims = spatial_dims_of(np.asarray(images[0]))
        return image_dataset(images, np.searchsorted(np.unique(labels), labels), classes, dims,
                        image_size or (28 if dims == 3 else 64), source=str(path), official=parts)
    listing = scan_image_folder(path) if path.is_dir() else read_image_csv(path, path_column or "path",
                                                                           label_column or "label")
    images = [load_image(p) for p in listing.paths]
    dims = spatial_dims_of(images[0])
    return image_dataset(images, listing.labels, [str(c) for c in listing.classes], dims,
                    image_size or (28 if dims == 3 else 64), source=str(path), official=None)


def image_files(path: Path) -> list[Path]:
    from medai.data.images import IMAGE_EXTENSIONS

    if not path.exists():
        raise NotFoundError(f"{path} does not exist")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and (
        p.suffix.lower() in IMAGE_EXTENSIONS or "".join(p.suffixes[-2:]).lower() == ".nii.gz"))
    if not files:
        raise MedAIError(f"folder {path} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def load_files(paths: list[Path], pre: dict[str, Any]) -> np.ndarray:
    from medai.data.images import load_images_bounded

    if not paths:
        raise MedAIError("no image files to predict")
    # one file at a time, decoded at reduced size, within the caller's medai.budget (issue 9, finding 1)
    return load_images_bounded(paths, pre["image_size"], channels=int(pre["channels"]),
                               spatial_dims=int(pre["spatial_dims"]), names=[Path(p).name for p in paths])


def read_inputs(path: Path, pre: dict[str, Any], labelled: bool, classes: list[str]) -> Inputs:
    """Unlabelled: an image or a folder of images. Labelled: class folders, a CSV of paths and labels, or the
    test split of a MedMNIST ``.npz``."""
    from medai.data.images import load_medmnist_npz, prepare_images, read_image_csv, scan_image_folder

    path = Path(path)
    if not labelled:
        files = image_files(path)
        return Inputs(load_files(files, pre), [p.name for p in files], "file")
    if path.suffix.lower() == ".npz":
        x, y = load_medmnist_npz(path, splits=("test",))["test"]
        X = prepare_images(list(x), pre["image_size"], channels=int(pre["channels"]),
                           spatial_dims=int(pre["spatial_dims"]))
        codes = np.asarray(y).reshape(-1).astype(int)
        if codes.min() < 0 or codes.max() >= len(classes):
            raise MedAIError(f"{path}: labels {sorted(set(codes.tolist()))[:10]} do not index the model's classes "
                             f"{classes}")
        return Inputs(X, [f"test #{i}" for i in range(len(X))], "image", np.asarray(classes, dtype=object)[codes])
    listing = scan_image_folder(path) if path.is_dir() else read_image_csv(path)
    labels = np.asarray(listing.classes, dtype=object)[listing.labels]
    return Inputs(load_files(listing.paths, pre), [p.name for p in listing.paths], "file", labels)
