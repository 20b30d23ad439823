"""The imaging model family: load an image classifier from its artifact and predict on image files.

An imaging artifact holds ``weights.safetensors`` + ``network.json`` (written by
:meth:`ImageClassifier.save`) next to the common ``model.json``. ``model.json`` carries the preprocessing
(image size, channels, 2D/3D), the class names, the positive class and the decision threshold.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medai.errors import MedAIError
from medai.models import base


class ImagingModel:
    family = "imaging"

    def __init__(self, classifier, meta: dict[str, Any]):
        self.classifier = classifier
        self.meta = meta
        pre = meta["preprocessing"]
        self.image_size = pre["image_size"]
        self.channels = int(pre["channels"])
        self.spatial_dims = int(pre["spatial_dims"])
        self.class_names: list[str] = list(meta["classes"])
        self.positive_index: int | None = meta.get("positive_index")
        self.threshold = (
            float(meta["decision"]["threshold"]) if meta["decision"].get("threshold") is not None else None
        )

    @property
    def input_schema(self) -> dict[str, Any]:
        return {
            "kind": "image",
            "spatial_dims": self.spatial_dims,
            "channels": self.channels,
            "image_size": self.image_size,
            "formats": ["png", "jpeg", "dicom", "nifti", "npy"],
        }

    # -- inputs -----------------------------------------------------------------------------------------
    def prepare(self, images: list[np.ndarray], names: list[str] | None = None) -> np.ndarray:
        from medai.data.images import prepare_images

        return prepare_images(
            images, self.image_size, channels=self.channels, spatial_dims=self.spatial_dims, names=names
        )

    def load_files(self, paths: list[Path]) -> np.ndarray:
        from medai.data.images import load_image

        if not paths:
            raise MedAIError("no image files to predict")
        images = [load_image(p) for p in paths]
        return self.prepare(images, [Path(p).name for p in paths])

    # -- outputs ----------------------------------------------------------------------------------------
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.classifier.predict_proba(X)

    def labels(self, proba: np.ndarray) -> list[str]:
        if self.positive_index is not None and proba.shape[1] == 2 and self.threshold is not None:
            positive = proba[:, self.positive_index] >= self.threshold
            negative = 1 - self.positive_index
            return [
                self.class_names[self.positive_index] if p else self.class_names[negative] for p in positive
            ]
        return [self.class_names[i] for i in proba.argmax(axis=1)]

    def gradcam_png(self, x: np.ndarray) -> bytes:
        """Grad-CAM of the predicted class overlaid on the image (middle slice for 3D), as PNG bytes."""
        from PIL import Image

        from medai.explain.gradcam import gradcam, overlay

        heat = gradcam(self.classifier, x[None])[0]
        image = x.mean(axis=0)
        if self.spatial_dims == 3:
            middle = image.shape[0] // 2
            image, heat = image[middle], heat[middle]
        rgb = overlay(image, heat)
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="PNG")
        return buffer.getvalue()

    def predict_images(self, X: np.ndarray, names: list[str], explain: bool = False) -> list[dict[str, Any]]:
        proba = self.predict_proba(X)
        labels = self.labels(proba)
        out = []
        for i, name in enumerate(names):
            row: dict[str, Any] = {
                "file": name,
                "label": labels[i],
                "probabilities": {c: float(p) for c, p in zip(self.class_names, proba[i], strict=True)},
            }
            if self.positive_index is not None and proba.shape[1] == 2:
                row["probability"] = float(proba[i, self.positive_index])
            if explain:
                row["gradcam_png_base64"] = base64.b64encode(self.gradcam_png(X[i])).decode("ascii")
            out.append(row)
        return out

    def predict_files(self, paths: list[Path], explain: bool = False) -> list[dict[str, Any]]:
        paths = [Path(p) for p in paths]
        return self.predict_images(self.load_files(paths), [p.name for p in paths], explain)

    def predict_frame(self, frame: pd.DataFrame, explain: bool = False, top_k: int = 3) -> pd.DataFrame:
        raise MedAIError(f"model {self.meta.get('name')!r} reads images, not table records; send image files")


def load_imaging(directory: Path, meta: dict[str, Any]) -> ImagingModel:
    from medai.models.imaging.classifier import ImageClassifier

    classifier = ImageClassifier.load(directory)
    classifier.progress = False
    return ImagingModel(classifier, meta)


base.register_family("imaging", load_imaging)
