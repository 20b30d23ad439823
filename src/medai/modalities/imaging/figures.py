"""Image explanations as pictures: one Grad-CAM overlay, a grid of test examples, a row of Grad-CAM examples."""

from __future__ import annotations

import io

import numpy as np

from medai.evaluation.plots import png_bytes, pyplot


def gradcam_png(classifier, x: np.ndarray, spatial_dims: int) -> bytes:
    """Grad-CAM of the predicted class overlaid on the image (middle slice for 3D), as PNG bytes."""
    from PIL import Image

    from medai.modalities.imaging.gradcam import gradcam, overlay

    heat = gradcam(classifier, x[None])[0]
    image = x.mean(axis=0)
    if spatial_dims == 3:
        middle = image.shape[0] // 2
        image, heat = image[middle], heat[middle]
    buffer = io.BytesIO()
    Image.fromarray(overlay(image, heat)).save(buffer, format="PNG")
    return buffer.getvalue()


def gradcam_pngs(classifier, X: np.ndarray, spatial_dims: int, chunk: int = 32) -> list[bytes]:
    """:func:`gradcam_png` for a batch: the maps of ``chunk`` images at a time (one network copy, one backward
    pass each), the same pictures as one image at a time."""
    from PIL import Image

    from medai.modalities.imaging.gradcam import gradcam, overlay

    pictures = []
    for start in range(0, len(X), chunk):
        heats = gradcam(classifier, X[start:start + chunk])
        for x, heat in zip(X[start:start + chunk], heats, strict=True):
            image = x.mean(axis=0)
            if spatial_dims == 3:
                middle = image.shape[0] // 2
                image, heat = image[middle], heat[middle]
            buffer = io.BytesIO()
            Image.fromarray(overlay(image, heat)).save(buffer, format="PNG")
            pictures.append(buffer.getvalue())
    return pictures


def examples_png(X: np.ndarray, y: np.ndarray, proba: np.ndarray, classes: list[str], n: int = 12) -> bytes:
    plt = pyplot()
    n = min(n, len(X))
    cols = min(6, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.9 * rows), dpi=110, squeeze=False)
    rng = np.random.default_rng(0)
    for ax, i in zip(axes.ravel(), rng.choice(len(X), n, replace=False), strict=False):
        image = X[i].mean(axis=0)
        image = image[image.shape[0] // 2] if image.ndim == 3 else image
        pred = int(proba[i].argmax())
        ax.imshow(image, cmap="gray")
        ok = pred == y[i]
        ax.set_title(f"{classes[y[i]][:10]}\npred {classes[pred][:10]} {proba[i, pred]:.2f}", fontsize=7,
                     color="darkgreen" if ok else "crimson")
    for ax in axes.ravel():
        ax.axis("off")
    return png_bytes(fig)


def gradcam_grid_png(classifier, X: np.ndarray, indices: list[int], spatial_dims: int) -> bytes:
    from PIL import Image

    plt = pyplot()
    fig, axes = plt.subplots(1, len(indices), figsize=(2.0 * len(indices), 2.2), dpi=110, squeeze=False)
    for ax, i in zip(axes.ravel(), indices, strict=True):
        ax.imshow(np.asarray(Image.open(io.BytesIO(gradcam_png(classifier, X[i], spatial_dims)))))
        ax.axis("off")
        ax.set_title(f"test #{i}", fontsize=7)
    return png_bytes(fig)
