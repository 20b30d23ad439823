"""ONNX export parity with torch, and Grad-CAM heatmaps / overlays."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")
pytest.importorskip("onnxruntime")

from medai.errors import MedAIError  # noqa: E402
from medai.modalities.imaging.classifier import ImageClassifier  # noqa: E402
from medai.modalities.imaging.gradcam import gradcam, overlay  # noqa: E402
from medai.modalities.imaging.networks import build_network  # noqa: E402
from medai.modalities.imaging.onnx_runtime import OnnxImageClassifier, export_onnx  # noqa: E402

torch.set_num_threads(2)


def toy(n=48, size=16, dims=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 0.3, (n, 1) + (size,) * dims).astype(np.float32)
    y = np.arange(n) % 2
    sl = tuple(slice(size // 4, size // 2) for _ in range(dims))
    X[(y == 1,) + (0,) + sl] += 0.6 if dims == 2 else 0.0
    if dims == 3:
        for i in np.where(y == 1)[0]:
            X[(i, 0) + sl] += 0.6
    return X, y


@pytest.fixture(scope="module")
def fitted():
    X, y = toy()
    clf = ImageClassifier(network="small-cnn", width=8, epochs=2, batch_size=16, progress=False, num_threads=2).fit(
        X, y
    )
    return clf, X


def test_onnx_parity_and_dynamic_batch(fitted, tmp_path):
    clf, X = fitted
    path = export_onnx(clf, tmp_path / "model.onnx")
    onx = OnnxImageClassifier(path)
    for n in (1, 7, len(X)):
        np.testing.assert_allclose(onx.predict_proba(X[:n]), clf.predict_proba(X[:n]), atol=1e-4)
    np.testing.assert_array_equal(onx.predict(X), clf.predict(X))
    assert list(onx.classes_) == list(clf.classes_)
    with pytest.raises(MedAIError, match="expected"):
        onx.predict_proba(X[:, 0])


def test_onnx_resnet18_parity(tmp_path):
    X, y = toy(n=8)
    clf = ImageClassifier(
        network="resnet18", stem="standard", epochs=1, batch_size=4, progress=False, num_threads=2
    ).fit(X, y)
    onx = OnnxImageClassifier(export_onnx(clf, tmp_path / "r.onnx"))
    np.testing.assert_allclose(onx.predict_proba(X), clf.predict_proba(X), atol=1e-4)


def test_onnx_missing_file(tmp_path):
    with pytest.raises(MedAIError, match="does not exist"):
        OnnxImageClassifier(tmp_path / "nope.onnx")


def test_gradcam_shape_range_and_sensitivity(fitted):
    clf, X = fitted
    heat = gradcam(clf, X[:4])
    assert heat.shape == (4, 16, 16) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0 and heat.max() > 0.5
    # a different image gives a different map
    other = gradcam(clf, np.ascontiguousarray(X[:4, :, ::-1, ::-1]))
    assert not np.allclose(heat, other)
    # the fitted network is left as it was (MONAI's hooks go on a copy)
    assert not clf.network_.features.stage3._forward_hooks
    assert not clf.network_.features.stage3._backward_hooks
    explicit = gradcam(clf, X[:2], target_class=1)
    assert explicit.shape == (2, 16, 16)
    with pytest.raises(MedAIError, match="target_class"):
        gradcam(clf, X[:2], target_class="tumour")


@pytest.mark.parametrize("name", ["resnet18", "densenet121"])
def test_gradcam_monai_networks_pick_a_layer(name):
    net = build_network(name, 2, 1, 2)
    heat = gradcam(net, np.random.default_rng(0).uniform(0, 1, (2, 1, 32, 32)).astype(np.float32))
    assert heat.shape == (2, 32, 32) and 0 <= heat.min() and heat.max() <= 1


def test_gradcam_3d():
    X, y = toy(n=16, size=12, dims=3)
    clf = ImageClassifier(
        network="small-cnn", spatial_dims=3, width=4, epochs=1, batch_size=8, progress=False, num_threads=2
    ).fit(X, y)
    heat = gradcam(clf, X[:2])
    assert heat.shape == (2, 12, 12, 12) and 0 <= heat.min() and heat.max() <= 1


def test_overlay(fitted):
    clf, X = fitted
    heat = gradcam(clf, X[:1])[0]
    rgb = overlay(X[0, 0], heat)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    # hot regions are redder than cold ones
    hot, cold = np.unravel_index(heat.argmax(), heat.shape), np.unravel_index(heat.argmin(), heat.shape)
    assert int(rgb[hot][0]) - int(rgb[hot][2]) > int(rgb[cold][0]) - int(rgb[cold][2])
    assert overlay((X[0, 0] * 255).astype(np.uint8), heat[:8, :8]).shape == (16, 16, 3)
    with pytest.raises(MedAIError, match="heatmap"):
        overlay(X[0, 0], heat[None, None])
