"""Grad-CAM heatmaps for image classifiers (via ``monai.visualize.GradCAM``) and RGB overlays.

    heat = gradcam(clf, X[:4])                 # (4, H, W) in [0, 1]  (or (4, D, H, W) for 3D)
    rgb = overlay(X[0, 0], heat[0])            # (H, W, 3) uint8, jet colormap blended on the image

The target layer is chosen per network (the last convolutional stage: ``layer4`` of the ResNets,
``class_layers.relu`` of DenseNet-121, ``features.stage3`` of small-cnn); for any other module the last
``Conv2d``/``Conv3d`` is used. For an ensemble (:class:`~medai.modalities.imaging.networks.MemberAverage`) the map
is the mean of the members' maps, each taken through the ensemble's output at that member's layer.
"""

from __future__ import annotations

import copy

import numpy as np

from medai.errors import MedAIError


def _target_layer(network, network_name: str | None) -> str:
    import torch

    if network_name is not None:
        from medai.modalities.imaging.networks import gradcam_layer

        try:
            name = gradcam_layer(network_name)
            if name in dict(network.named_modules()):
                return name
        except KeyError:
            pass
    last = None
    for name, module in network.named_modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Conv3d)):
            last = name
    if last is None:
        raise MedAIError("the network has no Conv2d/Conv3d layer; Grad-CAM needs a convolutional network")
    return last


def gradcam(model, X: np.ndarray, target_class=None, layer: str | None = None) -> np.ndarray:
    """Grad-CAM heatmaps for a batch.

    Args:
        model: a fitted :class:`~medai.models.imaging.ImageClassifier` or a ``torch.nn.Module``.
        X: float32 ``(N, C, H, W)`` or ``(N, C, D, H, W)`` in [0, 1].
        target_class: class label (from ``classes_``) or index to explain; ``None`` explains each image's
            predicted class.
        layer: module name to hook; ``None`` chooses the last convolutional stage.

    Returns:
        ``(N, *spatial)`` float32 heatmaps, each scaled to [0, 1] (all zeros where the map is flat).
    """
    import torch
    from monai.visualize import GradCAM

    network_name = None
    classes = None
    if isinstance(model, torch.nn.Module):
        network = model
    else:
        if not hasattr(model, "network_"):
            raise MedAIError("the classifier is not fitted; Grad-CAM needs a fitted ImageClassifier")
        X = model._check_X(X, fitted=True)
        network, network_name, classes = model.network_, model.network, model.classes_
    X = np.asarray(X, dtype=np.float32)
    if X.ndim not in (4, 5):
        raise MedAIError(f"X has shape {tuple(X.shape)}; expected (N, C, H, W) or (N, C, D, H, W)")
    class_idx = None
    if target_class is not None:
        if classes is not None and target_class in set(classes.tolist()):
            class_idx = int(np.searchsorted(classes, target_class))
        elif isinstance(target_class, (int, np.integer)):
            class_idx = int(target_class)
        else:
            raise MedAIError(f"target_class {target_class!r} is not a class of the model")
    from medai.modalities.imaging.networks import MemberAverage

    if layer is not None:
        layers = [layer]
    elif isinstance(network, MemberAverage):
        names = [m["network"] for m in getattr(model, "members_", [])]
        if len(names) != len(network.members):  # a bare module: no per-member network names
            names = [network_name] * len(network.members)
        pairs = enumerate(zip(network.members, names, strict=True))
        layers = [f"members.{i}.{_target_layer(member, name)}" for i, (member, name) in pairs]
    else:
        layers = [_target_layer(network, network_name)]
    modules = dict(network.named_modules())
    for name in layers:
        if name not in modules:
            raise MedAIError(f"layer {name!r} is not a module of the network")
    # MONAI's GradCAM leaves hooks on the module and turns in-place activations off: work on a copy so the
    # caller's network (and a later ONNX export or prediction) is untouched.
    x = torch.from_numpy(np.ascontiguousarray(X))
    maps = 0.0
    for name in layers:
        cam = GradCAM(nn_module=copy.deepcopy(network).eval(), target_layers=name)
        maps = maps + cam(x, class_idx=class_idx).detach().float().numpy()[:, 0]
    maps = maps / len(layers)
    flat = maps.reshape(len(maps), -1)
    lo = flat.min(axis=1).reshape((-1,) + (1,) * (maps.ndim - 1))
    hi = flat.max(axis=1).reshape((-1,) + (1,) * (maps.ndim - 1))
    span = hi - lo
    out = np.where(span > 1e-12, (maps - lo) / np.where(span > 1e-12, span, 1.0), 0.0)
    return np.nan_to_num(out).astype(np.float32)


def _jet(v: np.ndarray) -> np.ndarray:
    """Jet colormap: [0, 1] -> RGB in [0, 1] (piecewise linear, like matplotlib's ``jet``)."""
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return np.stack([r, g, b], axis=-1)


def overlay(image_2d: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Blend a jet-coloured ``heatmap`` (H, W) in [0, 1] onto a grey ``image_2d`` (H, W) (values in [0, 1],
    or uint8) and return an ``(H, W, 3)`` uint8 RGB array. A heatmap of another size is resized."""
    image = np.asarray(image_2d)
    if image.ndim == 3 and image.shape[0] in (1, 3):
        image = image.mean(axis=0)
    if image.ndim != 2:
        raise MedAIError(f"image_2d has shape {tuple(image.shape)}; expected (H, W)")
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.ndim != 2:
        raise MedAIError(f"heatmap has shape {tuple(heat.shape)}; expected (H, W)")
    if not 0 <= alpha <= 1:
        raise MedAIError(f"alpha must be in [0, 1], got {alpha}")
    img = image.astype(np.float64)
    if image.dtype == np.uint8 or img.max() > 1.0 + 1e-6:
        img = img / 255.0
    if heat.shape != img.shape:
        from skimage.transform import resize

        heat = resize(heat, img.shape, order=1, preserve_range=True, anti_aliasing=False)
    heat = np.clip(np.nan_to_num(heat), 0, 1)
    grey = np.repeat(np.clip(img, 0, 1)[..., None], 3, axis=-1)
    rgb = (1 - alpha) * grey + alpha * _jet(heat)
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
