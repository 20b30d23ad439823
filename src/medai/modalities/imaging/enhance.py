"""Image enhancement (denoising): train a learned denoiser, compare it with classical filters by
PSNR/SSIM on held-out images, and apply any method to a user's image.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from medai.data.registry import get_dataset
from medai.errors import MedAIError
from medai.models.artifact import dumps, verify_artifact, write_artifact

CLASSICAL = {"nl-means": "nl_means", "tv": "tv"}


def _images_01(images: np.ndarray) -> np.ndarray:
    return (np.asarray(images, dtype=np.float32) / 255.0)[:, None]


def evaluate_denoisers(clean: np.ndarray, sigma: float, denoisers: dict[str, Any], seed: int = 0) -> dict[str, dict]:
    """Mean PSNR (dB) and SSIM over ``clean`` images (N, 1, H, W) with Gaussian noise of ``sigma`` added."""
    from medai.modalities.imaging.denoise import add_gaussian_noise, psnr, ssim

    noisy = add_gaussian_noise(clean, sigma, seed=seed)
    outputs = {"noisy input": noisy, **{name: d.transform(noisy) for name, d in denoisers.items()}}
    table = {}
    for name, out in outputs.items():
        table[name] = {
            "psnr": round(float(np.mean([psnr(clean[i, 0], out[i, 0]) for i in range(len(clean))])), 4),
            "ssim": round(float(np.mean([ssim(clean[i, 0], out[i, 0]) for i in range(len(clean))])), 4),
        }
    base = table["noisy input"]["psnr"]
    for entry in table.values():
        entry["psnr_gain_db"] = round(entry["psnr"] - base, 4)
    return table


def train_denoiser(dataset: str, out: Path, sigma: float = 0.1, epochs: int = 10, seed: int = 0,
                   max_train: int | None = None, max_test: int | None = None, progress: bool = True) -> dict:
    """Train a DnCNN on a dataset's training images and evaluate it with the classical filters on its test split."""
    from medai.modalities.imaging.denoise import ClassicalDenoiser, DnCNNDenoiser

    spec = get_dataset(dataset)
    if spec.modality != "imaging":
        raise MedAIError(f"dataset {dataset!r} holds {spec.modality} data; enhance needs images")
    splits = spec.load()
    train = _images_01(splits["train"][0][:max_train])
    test = _images_01(splits["test"][0][:max_test])
    if train.ndim != 4:
        raise MedAIError(f"dataset {dataset!r} is not 2D; the denoisers work on 2D images")
    denoiser = DnCNNDenoiser(sigma=sigma, epochs=epochs, seed=seed, progress=progress).fit(train)
    table = evaluate_denoisers(test, sigma, {
        "nl-means": ClassicalDenoiser("nl_means", sigma=sigma),
        "tv": ClassicalDenoiser("tv", sigma=sigma),
        "dncnn (learned)": denoiser,
    }, seed=seed + 1)
    metrics = {"dataset": dataset, "sigma": sigma, "n_test_images": int(len(test)), "results": table}
    with tempfile.TemporaryDirectory() as tmp:
        denoiser.save(tmp)
        files = {name: (Path(tmp) / name).read_bytes() for name in ("weights.safetensors", "denoiser.json")}
    model_json = {"format": "medai-model/1", "family": "denoiser", "dataset": dataset, "sigma": sigma,
                  "epochs": epochs, "seed": seed}
    write_artifact(out, {"model.json": dumps(model_json), "metrics.json": dumps(metrics), **files})
    return metrics


def load_denoiser(method: str):
    """``nl-means``, ``tv``, or the directory of a trained DnCNN artifact (checksums verified)."""
    from medai.modalities.imaging.denoise import ClassicalDenoiser, DnCNNDenoiser

    if method in CLASSICAL:
        return ClassicalDenoiser(CLASSICAL[method])
    directory = Path(method)
    if not directory.is_dir():
        raise MedAIError(f"--method must be nl-means, tv or a trained denoiser directory, got {method!r}")
    verify_artifact(directory)
    if json.loads((directory / "model.json").read_text()).get("family") != "denoiser":
        raise MedAIError(f"{directory} is not a denoiser artifact")
    return DnCNNDenoiser.load(directory)


def enhance_file(source: Path, output: Path, method: str) -> dict:
    from PIL import Image

    from medai.data.images import load_image
    from medai.fsutil import atomic_write_bytes

    image = load_image(source)
    if image.ndim != 2:
        image = image.mean(axis=-1) if image.ndim == 3 and image.shape[-1] in (3, 4) else None
        if image is None:
            raise MedAIError(f"{source}: enhance takes a 2D grey image")
    low, high = float(np.min(image)), float(np.max(image))
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    result = load_denoiser(method).transform(scaled[None, None].astype(np.float32))[0, 0]
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.round(result * 255).astype(np.uint8)).save(buffer, format="PNG")
    atomic_write_bytes(output, buffer.getvalue())
    return {"input": str(source), "output": str(output), "method": method}
