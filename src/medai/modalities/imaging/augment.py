"""Batch augmentation for 2D/3D images as small composable callables.

Every transform takes a float batch ``(N, C, *spatial)`` (a ``torch.Tensor`` or a ``numpy`` array, values
in [0, 1]) and a ``torch.Generator`` and returns a batch of the same type and shape. Randomness comes only
from the generator, so a seeded generator gives the same augmented batch every time.

    aug = Compose([RandomFlip(axes=(-1,)), RandomAffine(degrees=10, translate=0.1, scale=0.1),
                   IntensityJitter(brightness=0.1, contrast=0.1)])
    batch = aug(batch, generator)

Left/right flips change anatomy (heart side in a chest X-ray), so no flip is on by default:
:func:`default_augmentation` takes ``hflip`` as an explicit flag.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

Batch = torch.Tensor | np.ndarray


def _as_tensor(x: Batch) -> tuple[torch.Tensor, bool]:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), True
    return x, False


def _back(x: torch.Tensor, was_numpy: bool) -> Batch:
    return x.numpy() if was_numpy else x


def _rand(n: int, generator: torch.Generator | None, *shape: int) -> torch.Tensor:
    return torch.rand((n, *shape), generator=generator)


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Batch, generator: torch.Generator | None = None) -> Batch:
        for t in self.transforms:
            x = t(x, generator)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class RandomFlip:
    """Flip each image along each of ``axes`` (negative spatial axes, ``-1`` = width) with probability
    ``p``."""

    def __init__(self, axes: Sequence[int] = (-1,), p: float = 0.5) -> None:
        self.axes = tuple(axes)
        self.p = p

    def __call__(self, x: Batch, generator: torch.Generator | None = None) -> Batch:
        t, was_np = _as_tensor(x)
        for ax in self.axes:
            mask = (_rand(t.shape[0], generator) < self.p).view((-1,) + (1,) * (t.dim() - 1))
            t = torch.where(mask, torch.flip(t, dims=(ax,)), t)
        return _back(t, was_np)

    def __repr__(self) -> str:
        return f"RandomFlip(axes={self.axes}, p={self.p})"


class RandomAffine:
    """Random rotation (degrees, in-plane for 2D, about all three axes for 3D), translation (fraction of the
    size) and isotropic scaling, applied with probability ``p`` per image; bilinear, border padding."""

    def __init__(self, degrees: float = 10.0, translate: float = 0.1, scale: float = 0.1, p: float = 0.8) -> None:
        self.degrees, self.translate, self.scale, self.p = degrees, translate, scale, p

    def __call__(self, x: Batch, generator: torch.Generator | None = None) -> Batch:
        t, was_np = _as_tensor(x)
        n, dims = t.shape[0], t.dim() - 2
        on = (_rand(n, generator) < self.p).float()
        ang = (_rand(n, generator, 3) * 2 - 1) * math.radians(self.degrees) * on[:, None]
        shift = (_rand(n, generator, dims) * 2 - 1) * 2 * self.translate * on[:, None]  # grid is [-1, 1]
        zoom = 1 + (_rand(n, generator) * 2 - 1) * self.scale * on
        if dims == 2:
            c, s = torch.cos(ang[:, 0]), torch.sin(ang[:, 0])
            rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
        else:
            rot = torch.eye(3).repeat(n, 1, 1)
            for axis in range(3):
                c, s = torch.cos(ang[:, axis]), torch.sin(ang[:, axis])
                i, j = [a for a in range(3) if a != axis]
                r = torch.eye(3).repeat(n, 1, 1)
                r[:, i, i], r[:, i, j], r[:, j, i], r[:, j, j] = c, -s, s, c
                rot = rot @ r
        theta = torch.cat([rot / zoom[:, None, None], shift[:, :, None]], dim=2).to(t.dtype)
        grid = F.affine_grid(theta, list(t.shape), align_corners=False)
        out = F.grid_sample(t, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return _back(out, was_np)

    def __repr__(self) -> str:
        return f"RandomAffine(degrees={self.degrees}, translate={self.translate}, scale={self.scale}, p={self.p})"


class IntensityJitter:
    """Per-image brightness shift, contrast scaling about the image mean, and gamma, then clip to [0, 1]."""

    def __init__(self, brightness: float = 0.1, contrast: float = 0.1, gamma: float = 0.0, p: float = 0.8) -> None:
        self.brightness, self.contrast, self.gamma, self.p = brightness, contrast, gamma, p

    def __call__(self, x: Batch, generator: torch.Generator | None = None) -> Batch:
        t, was_np = _as_tensor(x)
        n, dims = t.shape[0], t.dim() - 1
        view = (n,) + (1,) * dims
        on = (_rand(n, generator) < self.p).float()
        b = ((_rand(n, generator) * 2 - 1) * self.brightness * on).view(view)
        c = (1 + (_rand(n, generator) * 2 - 1) * self.contrast * on).view(view)
        g = torch.exp((_rand(n, generator) * 2 - 1) * self.gamma * on).view(view)
        mean = t.mean(dim=tuple(range(1, t.dim())), keepdim=True)
        out = t.clamp(0, 1) ** g
        out = ((out - mean) * c + mean + b).clamp(0, 1)
        return _back(out, was_np)

    def __repr__(self) -> str:
        return f"IntensityJitter(brightness={self.brightness}, contrast={self.contrast}, gamma={self.gamma})"


def default_augmentation(spatial_dims: int, *, hflip: bool = False, strength: float = 1.0) -> Compose:
    """The classifier's training augmentation: optional left/right flip, small affine, intensity jitter.

    ``hflip`` flips the last axis (width); for 3D volumes no other axis is flipped either. ``strength``
    scales all ranges (0 turns augmentation into the identity).
    """
    transforms: list[Callable] = []
    if hflip:
        transforms.append(RandomFlip(axes=(-1,)))
    transforms.append(RandomAffine(degrees=10 * strength, translate=0.08 * strength, scale=0.1 * strength))
    transforms.append(IntensityJitter(brightness=0.1 * strength, contrast=0.15 * strength, gamma=0.15 * strength))
    return Compose(transforms)
