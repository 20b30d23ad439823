"""Denoisers: classical (nl_means, tv) and DnCNN improve PSNR on noisy images; DnCNN save/load."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skimage")

from medai.errors import MedAIError  # noqa: E402
from medai.modalities.imaging.denoise import (  # noqa: E402
    ClassicalDenoiser,
    DnCNNDenoiser,
    add_gaussian_noise,
    psnr,
    ssim,
)

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def images():
    from conftest import require_data

    d = np.load(require_data("imaging/medmnist/pneumoniamnist.npz"))
    train = d["train_images"][:384].astype(np.float32) / 255
    test = d["test_images"][:32].astype(np.float32) / 255
    return train, test, add_gaussian_noise(test, 0.1, seed=1)


@pytest.mark.parametrize("method", ["nl_means", "tv"])
def test_classical_improves_psnr(images, method):
    _, clean, noisy = images
    out = ClassicalDenoiser(method=method).fit().transform(noisy)
    assert out.shape == noisy.shape and 0 <= out.min() and out.max() <= 1
    assert psnr(clean, out) > psnr(clean, noisy) + 1.0
    assert ssim(clean, out) > ssim(clean, noisy)


def test_dncnn_fit_transform_save_load(images, tmp_path):
    train, clean, noisy = images
    den = DnCNNDenoiser(
        sigma=0.1, depth=5, features=16, epochs=3, batch_size=32, lr=2e-3, progress=False, num_threads=2
    ).fit(train)
    out = den.transform(noisy)
    assert out.shape == noisy.shape
    assert psnr(clean, out) > psnr(clean, noisy) + 1.0
    den.save(tmp_path / "d")
    back = DnCNNDenoiser.load(tmp_path / "d")
    np.testing.assert_array_equal(back.transform(noisy), out)
    single = den.transform(noisy[0])
    assert single.shape == noisy[0].shape


def test_errors():
    with pytest.raises(MedAIError, match="method"):
        ClassicalDenoiser(method="median").transform(np.zeros((4, 4), np.float32))
    with pytest.raises(MedAIError, match="not fitted"):
        DnCNNDenoiser().transform(np.zeros((1, 8, 8), np.float32))
    with pytest.raises(MedAIError, match="dtype"):
        DnCNNDenoiser().fit(np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(MedAIError, match="NaN"):
        psnr(np.zeros((2, 8, 8), np.float32), np.full((2, 8, 8), np.nan, np.float32))
    with pytest.raises(MedAIError, match="same shape"):
        psnr(np.zeros((2, 8, 8), np.float32), np.zeros((2, 8, 9), np.float32))
