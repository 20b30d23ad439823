"""Image denoising: classical filters (scikit-image) and a small learned DnCNN, plus PSNR/SSIM.

Images are float arrays in [0, 1], either one image ``(H, W)``, a batch ``(N, H, W)`` or a batch with
channels ``(N, C, H, W)``; ``transform`` returns the same shape.

    den = DnCNNDenoiser(sigma=0.1, epochs=10).fit(clean_train)       # learns from clean images only
    restored = den.transform(noisy)
    psnr(clean, restored), ssim(clean, restored)

``ClassicalDenoiser(method="nl_means")`` uses ``denoise_nl_means`` with the noise level from
:func:`estimate_noise_sigma` (scikit-image's ``estimate_sigma`` when PyWavelets is installed) or a given
``sigma``; ``method="tv"`` uses ``denoise_tv_chambolle``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from medai.errors import MedAIError

METHODS = ("nl_means", "tv")


def _as_batch(images: Any, name: str = "images") -> tuple[np.ndarray, tuple[int, ...]]:
    """Return ``(N, C, H, W)`` float32 and the original shape."""
    x = np.asarray(images)
    if not np.issubdtype(x.dtype, np.floating):
        raise MedAIError(f"{name} has dtype {x.dtype}; expected float values in [0, 1] (for uint8 use / 255)")
    if x.ndim == 2:
        b = x[None, None]
    elif x.ndim == 3:
        b = x[:, None]
    elif x.ndim == 4:
        b = x
    else:
        raise MedAIError(f"{name} has shape {tuple(x.shape)}; expected (H, W), (N, H, W) or (N, C, H, W)")
    if b.size == 0:
        raise MedAIError(f"{name} is empty")
    if not np.isfinite(b).all():
        raise MedAIError(f"{name} contains NaN or infinite values; expected finite values in [0, 1]")
    return np.ascontiguousarray(b, dtype=np.float32), x.shape


def add_gaussian_noise(images: np.ndarray, sigma: float, seed: int = 0, clip: bool = False) -> np.ndarray:
    """``images + N(0, sigma^2)`` (seeded); clipped to [0, 1] when ``clip``."""
    rng = np.random.default_rng(seed)
    out = np.asarray(images, dtype=np.float32) + rng.normal(0, sigma, np.shape(images)).astype(np.float32)
    return np.clip(out, 0, 1) if clip else out


def psnr(clean: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float:
    """Mean peak signal-to-noise ratio (dB) over the images of a batch (``skimage.metrics``)."""
    from skimage.metrics import peak_signal_noise_ratio

    a, _ = _as_batch(clean, "clean")
    b, _ = _as_batch(test, "test")
    if a.shape != b.shape:
        raise MedAIError(f"clean has shape {a.shape} and test {b.shape}; expected the same shape")
    return float(np.mean([peak_signal_noise_ratio(x, y, data_range=data_range) for x, y in zip(a, b, strict=True)]))


def ssim(clean: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float:
    """Mean structural similarity over the images (and channels) of a batch (``skimage.metrics``)."""
    from skimage.metrics import structural_similarity

    a, _ = _as_batch(clean, "clean")
    b, _ = _as_batch(test, "test")
    if a.shape != b.shape:
        raise MedAIError(f"clean has shape {a.shape} and test {b.shape}; expected the same shape")
    win = min(7, *a.shape[-2:])
    win -= 1 - win % 2
    return float(
        np.mean(
            [
                structural_similarity(x[c], y[c], data_range=data_range, win_size=win)
                for x, y in zip(a, b, strict=True)
                for c in range(a.shape[1])
            ]
        )
    )


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Gaussian noise standard deviation of one 2D image (Donoho's wavelet MAD estimator).

    Uses ``skimage.restoration.estimate_sigma`` when PyWavelets is installed; otherwise the same estimator
    on the finest Haar diagonal sub-band, ``median(|HH|) / 0.6745``, computed with numpy.
    """
    img = np.asarray(image, dtype=np.float64)
    try:
        import pywt  # noqa: F401
        from skimage.restoration import estimate_sigma
    except ImportError:
        h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
        a, b = img[0:h:2, 0:w:2], img[0:h:2, 1:w:2]
        c, d = img[1:h:2, 0:w:2], img[1:h:2, 1:w:2]
        hh = (a - b - c + d) / 2.0
        return float(np.median(np.abs(hh)) / 0.6745)
    return float(estimate_sigma(img))


class ClassicalDenoiser:
    """Non-learned denoiser from scikit-image.

    Args:
        method: ``"nl_means"`` (non-local means) or ``"tv"`` (total variation, Chambolle).
        sigma: noise standard deviation; ``None`` estimates it per image with ``estimate_sigma``.
        h: nl_means filter strength as a multiple of sigma.
        patch_size, patch_distance: nl_means patch and search-window sizes.
        weight: tv denoising weight; ``None`` uses ``tv_factor * sigma``.
        tv_factor: see ``weight``.
    """

    def __init__(
        self,
        method: str = "nl_means",
        sigma: float | None = None,
        h: float = 0.8,
        patch_size: int = 5,
        patch_distance: int = 6,
        weight: float | None = None,
        tv_factor: float = 1.0,
    ) -> None:
        self.method = method
        self.sigma = sigma
        self.h = h
        self.patch_size = patch_size
        self.patch_distance = patch_distance
        self.weight = weight
        self.tv_factor = tv_factor

    def fit(self, clean_images: Any = None) -> ClassicalDenoiser:
        """Nothing to learn; checks the parameters and returns ``self``."""
        if self.method not in METHODS:
            raise MedAIError(f"unknown denoising method {self.method!r}; expected one of {', '.join(METHODS)}")
        return self

    def _sigma(self, img: np.ndarray) -> float:
        if self.sigma is not None:
            return float(self.sigma)
        return estimate_noise_sigma(img)

    def transform(self, noisy: np.ndarray) -> np.ndarray:
        """Denoise each image (and channel) independently; returns the input's shape, clipped to [0, 1]."""
        from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

        self.fit()
        x, shape = _as_batch(noisy, "noisy")
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            for c in range(x.shape[1]):
                img = x[i, c].astype(np.float64)
                s = self._sigma(img)
                if self.method == "nl_means":
                    out[i, c] = denoise_nl_means(
                        img,
                        h=self.h * s,
                        sigma=s,
                        patch_size=self.patch_size,
                        patch_distance=self.patch_distance,
                        fast_mode=True,
                    )
                else:
                    w = self.weight if self.weight is not None else self.tv_factor * s
                    out[i, c] = denoise_tv_chambolle(img, weight=max(w, 1e-6))
        return np.clip(out, 0, 1).reshape(shape)


def _build_dncnn(channels: int, depth: int, features: int):
    import torch
    from torch import nn

    class DnCNN(nn.Module):
        """DnCNN (Zhang et al. 2017): conv-relu, (depth-2) x conv-bn-relu, conv; predicts the noise."""

        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = [nn.Conv2d(channels, features, 3, padding=1), nn.ReLU(inplace=True)]
            for _ in range(depth - 2):
                layers += [
                    nn.Conv2d(features, features, 3, padding=1, bias=False),
                    nn.BatchNorm2d(features),
                    nn.ReLU(inplace=True),
                ]
            layers.append(nn.Conv2d(features, channels, 3, padding=1))
            self.body = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x - self.body(x)

    return DnCNN()


class DnCNNDenoiser:
    """Learned residual denoiser, trained on clean images with synthetic Gaussian noise.

    Args:
        sigma: training noise level, a float or a ``(low, high)`` range drawn per image (blind denoising).
        depth, features: DnCNN depth (conv layers) and width.
        epochs, batch_size, lr: Adam with cosine decay.
        seed: seed of the noise, shuffling and initial weights.
        num_threads: torch CPU threads during fit/transform (``None``: leave torch's setting).
        progress: show a tqdm bar.

    Fitted attributes: ``network_``, ``channels_``, ``history_``.
    """

    def __init__(
        self,
        sigma: float | tuple[float, float] = 0.1,
        depth: int = 8,
        features: int = 32,
        epochs: int = 10,
        batch_size: int = 64,
        lr: float = 1e-3,
        seed: int = 0,
        num_threads: int | None = None,
        progress: bool = True,
    ) -> None:
        self.sigma = sigma
        self.depth = depth
        self.features = features
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.num_threads = num_threads
        self.progress = progress

    def _sigma_range(self) -> tuple[float, float]:
        s = self.sigma
        lo, hi = (float(s), float(s)) if np.isscalar(s) else (float(s[0]), float(s[1]))
        if lo < 0 or hi < lo:
            raise MedAIError(f"sigma must be >= 0 or a (low, high) range with low <= high, got {s!r}")
        return lo, hi

    def fit(self, clean_images: np.ndarray) -> DnCNNDenoiser:
        """Learn to remove Gaussian noise of level ``sigma`` from images like ``clean_images`` (in [0, 1])."""
        import random

        import torch
        from tqdm.auto import tqdm

        x, _ = _as_batch(clean_images, "clean_images")
        if x.shape[0] < 2:
            raise MedAIError("clean_images needs at least 2 images to train a denoiser")
        lo, hi = self._sigma_range()
        old = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        try:
            random.seed(self.seed)
            np.random.seed(self.seed)
            torch.manual_seed(self.seed)
            gen = torch.Generator().manual_seed(self.seed)
            net = _build_dncnn(x.shape[1], int(self.depth), int(self.features))
            opt = torch.optim.Adam(net.parameters(), lr=self.lr)
            data = torch.from_numpy(x)
            n, bs = len(data), int(self.batch_size)
            steps = n // bs if n % bs == 1 else math.ceil(n / bs)
            total = steps * int(self.epochs)
            self.history_: list[dict[str, float]] = []
            bar = tqdm(range(int(self.epochs)), desc="DnCNN fit", unit="epoch", disable=not self.progress)
            step = 0
            for epoch in bar:
                t0 = time.perf_counter()
                net.train()
                perm = torch.randperm(n, generator=gen)
                run = 0.0
                for b in range(steps):
                    clean = data[perm[b * bs : (b + 1) * bs]]
                    # random flips/transposes multiply the data (denoising is orientation-free)
                    if torch.rand(1, generator=gen) < 0.5:
                        clean = torch.flip(clean, dims=(-1,))
                    if torch.rand(1, generator=gen) < 0.5:
                        clean = clean.transpose(-1, -2)
                    s = lo + (hi - lo) * torch.rand((len(clean), 1, 1, 1), generator=gen)
                    noisy = clean + s * torch.randn(clean.shape, generator=gen)
                    for g in opt.param_groups:
                        g["lr"] = self.lr * 0.5 * (1 + math.cos(math.pi * step / total))
                    opt.zero_grad(set_to_none=True)
                    loss = torch.nn.functional.mse_loss(net(noisy), clean)
                    loss.backward()
                    opt.step()
                    run += float(loss.detach()) * len(clean)
                    step += 1
                rec = {"epoch": epoch + 1, "train_mse": run / n, "seconds": time.perf_counter() - t0}
                self.history_.append(rec)
                bar.set_postfix(mse=f"{rec['train_mse']:.5f}")
            net.eval()
            self.network_ = net
            self.channels_ = int(x.shape[1])
        finally:
            if self.num_threads:
                torch.set_num_threads(old)
        return self

    def transform(self, noisy: np.ndarray) -> np.ndarray:
        """Denoise images of the fitted channel count; returns the input's shape, clipped to [0, 1]."""
        import torch

        if not hasattr(self, "network_"):
            raise MedAIError("this DnCNNDenoiser is not fitted yet; call fit(clean_images) or DnCNNDenoiser.load")
        x, shape = _as_batch(noisy, "noisy")
        if x.shape[1] != self.channels_:
            raise MedAIError(f"noisy has {x.shape[1]} channel(s); the denoiser was fitted on {self.channels_}")
        old = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        try:
            with torch.no_grad():
                out = np.concatenate(
                    [self.network_(torch.from_numpy(x[i : i + 256])).numpy() for i in range(0, len(x), 256)]
                )
        finally:
            if self.num_threads:
                torch.set_num_threads(old)
        return np.clip(out, 0, 1).reshape(shape)

    def save(self, directory: str | Path) -> Path:
        """Write ``weights.safetensors`` and ``denoiser.json`` (no pickle)."""
        from safetensors.torch import save

        from medai.fsutil import atomic_write_bytes, atomic_write_text

        if not hasattr(self, "network_"):
            raise MedAIError("this DnCNNDenoiser is not fitted yet; nothing to save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.network_.state_dict().items()}
        atomic_write_bytes(directory / "weights.safetensors", save(state))
        sigma = list(self.sigma) if not np.isscalar(self.sigma) else self.sigma
        cfg = {
            "format": "medai.dncnn-denoiser",
            "format_version": 1,
            "channels": self.channels_,
            "params": {
                "sigma": sigma,
                "depth": self.depth,
                "features": self.features,
                "epochs": self.epochs,
                "batch_size": self.batch_size,
                "lr": self.lr,
                "seed": self.seed,
            },
            "history": self.history_,
        }
        atomic_write_text(directory / "denoiser.json", json.dumps(cfg, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> DnCNNDenoiser:
        """Restore a denoiser written by :meth:`save`."""
        from safetensors.torch import load_file

        directory = Path(directory)
        cfg_path, w_path = directory / "denoiser.json", directory / "weights.safetensors"
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise MedAIError(f"{str(p)!r} does not exist; expected a directory written by DnCNNDenoiser.save")
        cfg = json.loads(cfg_path.read_text("utf-8"))
        if cfg.get("format") != "medai.dncnn-denoiser":
            raise MedAIError(f"{str(cfg_path)!r} has format {cfg.get('format')!r}; expected 'medai.dncnn-denoiser'")
        params = dict(cfg["params"])
        if isinstance(params["sigma"], list):
            params["sigma"] = tuple(params["sigma"])
        den = cls(**params, progress=False)
        net = _build_dncnn(int(cfg["channels"]), int(params["depth"]), int(params["features"]))
        try:
            net.load_state_dict(load_file(str(w_path)))
        except RuntimeError as exc:
            raise MedAIError(f"{str(w_path)!r} does not fit the DnCNN in {str(cfg_path)!r}: {exc}") from exc
        net.eval()
        den.network_, den.channels_, den.history_ = net, int(cfg["channels"]), cfg.get("history", [])
        return den
