"""Image-classification networks (2D and 3D) and loading of local pretrained weights.

``build_network(name, spatial_dims, in_channels, num_classes)`` returns a ``torch.nn.Module`` that maps
``(N, C, H, W)`` (or ``(N, C, D, H, W)``) float tensors to ``(N, num_classes)`` logits.

Names:

- ``"small-cnn"``: a compact residual CNN written for small inputs (MedMNIST 28 px / 64 px). In 2D it keeps
  full resolution in its first stage and halves it twice, so a 28 px image ends at 7 px (0.3 M parameters at
  width 32, ~6x faster to train than a full-resolution ResNet-18). In 3D its stem has stride 2 by default
  (``stem="small"`` keeps full resolution).
- ``"resnet18"``, ``"resnet50"``, ``"densenet121"``: MONAI's networks (``monai.networks.nets``).

The ``stem`` option of the ResNets decides how fast resolution is lost:

- ``"standard"``: 7x7 stride-2 convolution + max-pool (ImageNet); a 28 px image is 7 px after the stem and
  1 px at the end: fast but throws most detail away.
- ``"small"``: 3x3 stride-1 convolution, no max-pool (CIFAR-style); keeps full resolution, ~8x slower.
- ``"medium"``: 3x3 stride-1 convolution followed by the max-pool (a 2x reduction), ~4x cheaper than
  ``"small"``.
- ``"auto"`` (default): ``"small"`` for the ResNets, as the networks are meant for MedMNIST-sized inputs; use
  ``"standard"`` for images of 128 px and more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from medai.errors import MedAIError

NETWORKS = ("small-cnn", "resnet18", "resnet50", "densenet121")
STEMS = ("auto", "standard", "medium", "small")


def _conv(dims: int):
    return nn.Conv2d if dims == 2 else nn.Conv3d


def _bn(dims: int):
    return nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d


class _ResBlock(nn.Module):
    """Pre-activation-free basic residual block: conv-bn-relu-conv-bn + shortcut, then relu."""

    def __init__(self, dims: int, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        conv, bn = _conv(dims), _bn(dims)
        self.conv1 = conv(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = bn(cout)
        self.conv2 = conv(cout, cout, 3, padding=1, bias=False)
        self.bn2 = bn(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(conv(cin, cout, 1, stride=stride, bias=False), bn(cout))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class SmallCNN(nn.Module):
    """Compact residual CNN for small 2D/3D medical images.

    Stem 3x3 conv (``width`` channels) at full resolution, then three stages of one residual block each with
    ``width, 2*width, 4*width`` channels and strides ``1, 2, 2``, global average pooling, dropout, linear
    head.
    The last stage (``features.stage3``) is the Grad-CAM target layer.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        num_classes: int,
        width: int = 32,
        dropout: float = 0.2,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        conv, bn = _conv(spatial_dims), _bn(spatial_dims)
        pool = nn.AdaptiveAvgPool2d(1) if spatial_dims == 2 else nn.AdaptiveAvgPool3d(1)
        self.features = nn.Sequential()
        self.features.add_module(
            "stem",
            nn.Sequential(
                conv(in_channels, width, 3, stride=stem_stride, padding=1, bias=False),
                bn(width),
                nn.ReLU(inplace=True),
            ),
        )
        self.features.add_module("stage1", _ResBlock(spatial_dims, width, width, 1))
        self.features.add_module("stage2", _ResBlock(spatial_dims, width, 2 * width, 2))
        self.features.add_module("stage3", _ResBlock(spatial_dims, 2 * width, 4 * width, 2))
        self.pool = pool
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.fc(self.dropout(x))


def build_network(
    name: str,
    spatial_dims: int,
    in_channels: int,
    num_classes: int,
    *,
    stem: str = "auto",
    width: int = 32,
    dropout: float = 0.2,
) -> nn.Module:
    """Build an image-classification network returning ``(N, num_classes)`` logits.

    Args:
        name: one of ``"small-cnn"``, ``"resnet18"``, ``"resnet50"``, ``"densenet121"``.
        spatial_dims: 2 for ``(N, C, H, W)`` inputs, 3 for ``(N, C, D, H, W)``.
        in_channels: number of image channels ``C`` (1 for grey-scale, 3 for RGB).
        num_classes: number of output logits (2 for a binary task).
        stem: ResNet stem, see the module docstring (ignored by the other networks).
        width: base channel count of ``small-cnn``.
        dropout: dropout before the head of ``small-cnn``.
    """
    if name not in NETWORKS:
        raise MedAIError(f"unknown network {name!r}; expected one of {', '.join(NETWORKS)}")
    if spatial_dims not in (2, 3):
        raise MedAIError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    if int(in_channels) < 1:
        raise MedAIError(f"in_channels must be >= 1, got {in_channels!r}")
    if int(num_classes) < 2:
        raise MedAIError(f"num_classes must be >= 2, got {num_classes!r}")
    if stem not in STEMS:
        raise MedAIError(f"unknown stem {stem!r}; expected one of {', '.join(STEMS)}")
    if name == "small-cnn":
        # "auto": full resolution in 2D; in 3D a stride-2 stem (full-resolution 28^3 is ~30x slower).
        if stem == "auto":
            stride = 1 if spatial_dims == 2 else 2
        else:
            stride = 1 if stem == "small" else 2
        return SmallCNN(spatial_dims, in_channels, num_classes, width=width, dropout=dropout, stem_stride=stride)

    from monai.networks import nets

    if name == "densenet121":
        return nets.DenseNet121(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=num_classes)
    stem = "small" if stem == "auto" else stem
    kwargs: dict[str, Any] = {
        "standard": dict(conv1_t_size=7, conv1_t_stride=2, no_max_pool=False),
        "medium": dict(conv1_t_size=3, conv1_t_stride=1, no_max_pool=False),
        "small": dict(conv1_t_size=3, conv1_t_stride=1, no_max_pool=True),
    }[stem]
    factory = nets.resnet18 if name == "resnet18" else nets.resnet50
    return factory(spatial_dims=spatial_dims, n_input_channels=in_channels, num_classes=num_classes, **kwargs)


class MemberAverage(nn.Module):
    """An ensemble of networks trained apart: returns ``log(mean_m softmax(member_m(x)))``.

    These outputs act as logits: their softmax is exactly the members' mean probability, so prediction,
    ONNX export and Grad-CAM treat the ensemble like any single network. Member ``m`` is ``members.m``.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise MedAIError("an ensemble needs at least one member network")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(x), dim=1) for m in self.members]).mean(dim=0)
        return torch.log(probs.clamp_min(1e-12))


def gradcam_layer(name: str) -> str:
    """Name of the module Grad-CAM should hook for a network built by :func:`build_network`."""
    return {
        "small-cnn": "features.stage3",
        "resnet18": "layer4",
        "resnet50": "layer4",
        "densenet121": "class_layers.relu",
    }[name]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a torch state dict from a local ``.safetensors`` or ``.pt``/``.pth`` file (no code runs on
    load)."""
    path = Path(path)
    if not path.is_file():
        raise MedAIError(f"pretrained weights file {str(path)!r} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        elif path.suffix in (".pt", ".pth", ".bin"):
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        else:
            raise MedAIError(
                f"pretrained weights file {str(path)!r}: unknown suffix {path.suffix!r}; "
                "expected .safetensors, .pt or .pth"
            )
    except MedAIError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise MedAIError(f"pretrained weights file {str(path)!r} could not be read: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MedAIError(f"pretrained weights file {str(path)!r} does not hold a state dict of tensors")
    # Weights saved from DataParallel / torch.compile carry a prefix.
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_pretrained(module: nn.Module, path: str | Path, *, skip_mismatched_head: bool = False) -> nn.Module:
    """Load a local state dict into ``module``; every key and shape must match.

    With ``skip_mismatched_head=True`` tensors whose shape differs (typically the last linear layer when
    the number of classes differs) are left at their initial values; all other keys must still match.
    Raises :class:`MedAIError` naming the missing, unexpected and mis-shaped keys.
    """
    state = read_state_dict(path)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = sorted(
        f"{k} (file {tuple(state[k].shape)}, network {tuple(own[k].shape)})"
        for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape)
    )
    if skip_mismatched_head and shape and not missing and not unexpected:
        state = {k: v for k, v in state.items() if tuple(own[k].shape) == tuple(v.shape)}
        shape = []
        missing = []
    if missing or unexpected or shape:

        def fmt(items: list[str]) -> str:
            return ", ".join(items[:5]) + (f" ... (+{len(items) - 5} more)" if len(items) > 5 else "")

        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {fmt(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {fmt(unexpected)}")
        if shape:
            parts.append(f"{len(shape)} shape mismatch(es): {fmt(shape)}")
        raise MedAIError(
            f"pretrained weights {str(path)!r} do not fit the network: "
            + "; ".join(parts)
            + ". Expected a state dict saved from the same network name, spatial_dims, in_channels and "
            "num_classes."
        )
    module.load_state_dict(state, strict=not skip_mismatched_head)
    return module
