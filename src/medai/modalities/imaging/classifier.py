"""``ImageClassifier``: a scikit-learn style learner for 2D/3D medical image classification.

    clf = ImageClassifier(**RECIPES["pneumoniamnist"])
    clf.fit(X_train, y_train, X_val=X_val, y_val=y_val)       # X: float32 (N, C, H, W) in [0, 1]
    proba = clf.predict_proba(X_test)                         # (N, n_classes), rows sum to 1
    clf.save("model_dir"); clf2 = ImageClassifier.load("model_dir")

Training: AdamW, linear warm-up then cosine decay (per step), cross-entropy weighted for class imbalance,
augmentation on the fly, early stopping on validation AUROC (macro one-vs-rest for multiclass) restoring
the best weights, per-epoch checkpoints that a later ``fit(..., resume=True)`` continues from. Every epoch
re-seeds torch from ``(seed, epoch)``, so an interrupted and resumed run gives the same weights as an
uninterrupted one. Nothing is pickled: weights are safetensors, everything else JSON.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from medai.errors import MedAIError
from medai.fsutil import atomic_write_bytes, atomic_write_text

FORMAT = "medai.image-classifier"
FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "network.json"
CHECKPOINT_FILE = "checkpoint.safetensors"

# Measured recipes; keys are MedMNIST data set names. Test-split results on the 2-core CPU machine, official
# splits, early stopping on the validation split, accuracy = argmax (MedMNIST protocol); benchmarks/imaging.py:
# - pneumoniamnist (28 px), one small CNN: seeds 0/1/2 AUROC 0.9818/0.9879/0.9860 (mean 0.985), ACC
#   0.9375/0.9503/0.9183 (mean 0.935), ~6 min a seed on an idle machine (2 threads); re-run on another machine
#   with one thread and the other core busy: AUROC 0.981, ACC 0.929 (mean), 9-10 min a seed.
# - breastmnist (28 px): single small CNNs (seeds 0-2, one thread) reach AUROC 0.905-0.915 and ACC 0.84-0.87
#   on average whatever the variant (weight average, no class weights, mixup, last instead of best epoch,
#   width 48); a ResNet-18 alone 0.905/0.872 (seed 0); their 3-network ensembles 0.915-0.926 AUROC but ACC
#   0.846-0.878. Ensembles mixing both kinds err differently: seeds 0/1/2 AUROC 0.9225/0.9340/0.9171 (mean
#   0.925), ACC 0.891/0.891/0.878 (mean 0.887); re-run on another machine: AUROC 0.929, ACC 0.878 on each seed.
# - adrenalmnist3d (28^3): one 3D small CNN, seeds 0/1/2 mean AUROC 0.857; an ensemble of three: AUROC
#   0.873/0.875/0.880 (mean 0.876), ~18 min a seed with one thread and the other core busy; re-run on another
#   machine: mean AUROC 0.868.
RECIPES: dict[str, dict[str, Any]] = {
    "pneumoniamnist": dict(
        network="small-cnn",
        spatial_dims=2,
        width=32,
        epochs=30,
        batch_size=128,
        lr=2e-3,
        weight_decay=5e-4,
        warmup_epochs=1,
        augment=True,
        hflip=False,
        tta=False,
        class_weight="balanced",
        patience=10,
    ),
    "breastmnist": dict(
        network="small-cnn",
        spatial_dims=2,
        width=32,
        epochs=100,
        batch_size=32,
        lr=1e-3,
        weight_decay=5e-4,
        warmup_epochs=1,
        augment=True,
        hflip=True,
        tta=True,
        class_weight="balanced",
        patience=30,
        ema_decay=0.99,
        n_members=4,
        member_params=[{}, {"network": "resnet18", "stem": "medium", "epochs": 60, "patience": 20}],
    ),
    "adrenalmnist3d": dict(
        network="small-cnn",
        spatial_dims=3,
        width=16,
        epochs=40,
        batch_size=32,
        lr=2e-3,
        weight_decay=5e-4,
        warmup_epochs=1,
        augment=True,
        hflip=False,
        tta=False,
        class_weight="balanced",
        patience=15,
        n_members=3,
    ),
}


def _torch():
    import torch

    return torch


def _seed_everything(seed: int) -> None:
    torch = _torch()
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _auroc(y: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    present = np.unique(y)
    if len(present) < proba.shape[1]:  # AUROC over the classes present in the validation set
        p = proba[:, present]
        p = p / p.sum(axis=1, keepdims=True)
        if len(present) == 2:
            return float(roc_auc_score(y == present[1], p[:, 1]))
        return float(roc_auc_score(np.searchsorted(present, y), p, multi_class="ovr", average="macro"))
    return float(roc_auc_score(y, proba, multi_class="ovr", average="macro"))


class _WeightAverage:
    """Exponential moving average of a network's parameters and buffers, kept in a copy of the network.

    The decay ramps up as ``min(decay, (1 + t) / (10 + t))`` over the first steps ``t`` so the average is not
    dominated by the random initial weights.
    """

    def __init__(self, net, decay: float) -> None:
        import copy

        self.decay = decay
        self.steps = 0
        self.network = copy.deepcopy(net)
        for p in self.network.parameters():
            p.requires_grad_(False)

    def update(self, net) -> None:
        torch = _torch()
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        self.steps += 1
        with torch.no_grad():
            for avg, cur in zip(self.network.state_dict().values(), net.state_dict().values(), strict=True):
                if avg.dtype.is_floating_point:
                    avg.lerp_(cur, 1.0 - d)
                else:
                    avg.copy_(cur)


class ImageClassifier(ClassifierMixin, BaseEstimator):
    """Deep image classifier for 2D ``(N, C, H, W)`` or 3D ``(N, C, D, H, W)`` float32 inputs in [0, 1].

    Args:
        network: ``"small-cnn"``, ``"resnet18"``, ``"resnet50"`` or ``"densenet121"``
            (see :func:`medai.modalities.imaging.networks.build_network`).
        spatial_dims: 2 or 3.
        epochs: maximum number of epochs.
        batch_size: training and inference batch size.
        lr: peak learning rate of AdamW (reached after the warm-up).
        weight_decay: AdamW weight decay.
        warmup_epochs: epochs of linear learning-rate warm-up; cosine decay to 0 after it.
        augment: augment training batches (small affine, intensity jitter; see ``augment.py``).
        hflip: also flip left/right when augmenting and in test-time augmentation (off by default: it
            swaps anatomy such as the side of the heart).
        tta: average predictions over the image and small shifts (and its flip when ``hflip``).
        class_weight: ``"balanced"`` (weights ``n / (k * n_c)``), ``None``, or a dict ``{class: weight}``.
        patience: stop after this many epochs without a better validation AUROC (``None``: never stop).
        keep: ``"best"`` keeps the weights of the epoch with the best validation AUROC (early stopping);
            ``"last"`` trains the whole schedule and keeps the final weights (the average with ``ema_decay``),
            using validation data only to report: with a small validation set the "best" epoch is often
            chosen by noise.
        seed: seed of torch, numpy and python's ``random``.
        num_threads: torch CPU threads during fit/predict (``None``: leave torch's setting).
        pretrained_weights: path of a local ``.safetensors`` / ``.pt`` state dict for the network.
        progress: show a tqdm bar (loss and validation AUROC per epoch).
        stem: ResNet stem (``"auto"``, ``"standard"``, ``"medium"``, ``"small"``).
        width: base width of ``small-cnn``.
        dropout: dropout before the head of ``small-cnn``.
        label_smoothing: cross-entropy label smoothing.
        aug_strength: scale of the augmentation ranges.
        ema_decay: keep an exponential moving average of the weights with this decay per step (e.g.
            ``0.99``); validation, early stopping and the saved model then use the averaged weights, which
            are smoother than the last step's and less at the mercy of a small validation set. ``None``: off.
        mixup: mixup's Beta(alpha, alpha) parameter: each training batch is blended with a shuffled copy of
            itself, images and labels alike, with weight ``lambda ~ Beta(alpha, alpha)`` (0: off). A regulariser
            for small data sets.
        n_members: train this many networks (member ``m`` with seed ``seed + 1000 * m``, each with its own
            early stopping, and with ``member_params[m % len(member_params)]`` overriding its parameters) and
            predict with the mean of their probabilities: a deep ensemble, which ranks
            better than any one member on small data sets. The fitted ``network_`` is a
            :class:`~medai.modalities.imaging.networks.MemberAverage`, so export and Grad-CAM work unchanged.
        member_params: optional list of parameter overrides, one dict per member kind, cycled over the members:
            ``[{}, {"network": "resnet18", "stem": "medium"}]`` alternates this classifier's network with a
            ResNet-18, an ensemble whose members err differently.

    Fitted attributes: ``classes_``, ``n_features_in_`` (channels), ``input_shape_`` ``(C, *spatial)``,
    ``network_`` (the torch module, best weights loaded), ``history_`` (one dict per epoch; with
    ``n_members > 1`` the members' epochs one after another, each tagged with ``member``), ``best_epoch_``
    (a list, one per member, for an ensemble), ``best_score_`` (validation AUROC of the model as fitted,
    ``None`` without validation data), ``members_`` (per member: seed, best epoch, validation AUROC).
    """

    supports_data_parallel = True  # medai.scale.distributed may train it on several workers (Ray Train)
    watches_validation = True  # keeps the epoch with the best validation AUROC (the road calibrates elsewhere)

    def fit_data_parallel(self, X, y, X_val=None, y_val=None, *, rank: int, world_size: int,
                          checkpoint_dir: str | Path | None = None, resume: bool = False) -> ImageClassifier:
        """One worker's part of data-parallel training (``torch.distributed`` already initialised, e.g. by Ray
        Train): this worker trains on its shard of the training records, with ``batch_size / world_size`` per
        step so that the global batch stays ``batch_size``; gradients are averaged over the workers after every
        backward pass and batch-norm statistics before every validation, so every worker holds the same weights
        and takes the same early-stopping decisions. Only rank 0 writes checkpoints."""
        X, y = np.asarray(X), np.asarray(y)
        order = np.random.default_rng(int(self.seed)).permutation(len(X))
        per_worker = len(X) // world_size
        shard = np.sort(order[rank * per_worker:(rank + 1) * per_worker])
        local = clone(self).set_params(batch_size=max(2, int(self.batch_size) // world_size))
        local._data_parallel = (rank, world_size)
        local._fit_network(X[shard], y[shard], X_val, y_val, checkpoint_dir if rank == 0 else None, resume)
        for name in ("network_", "classes_", "n_features_in_", "input_shape_", "history_", "best_score_",
                     "best_epoch_"):
            setattr(self, name, getattr(local, name))
        self.members_ = [self._summary()]
        self.training_ = {"workers": world_size, "records_per_worker": per_worker,
                          "batch_per_worker": local.batch_size}
        return self

    def _average_over_workers(self, tensors) -> None:
        import torch.distributed as dist

        world = self._data_parallel[1]
        for tensor in tensors:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
            tensor.div_(world)

    def search_space(self) -> dict:
        """What ``medai tune`` may change (constructor arguments)."""
        from medai.tuning import Float

        return {"lr": Float(1e-4, 3e-3, log=True), "weight_decay": Float(1e-6, 1e-2, log=True),
                "dropout": Float(0.0, 0.5), "label_smoothing": Float(0.0, 0.2), "aug_strength": Float(0.3, 1.5)}

    def __init__(
        self,
        network: str = "resnet18",
        spatial_dims: int = 2,
        epochs: int = 20,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_epochs: int = 1,
        augment: bool = True,
        hflip: bool = False,
        tta: bool = False,
        class_weight: str | dict | None = "balanced",
        patience: int | None = 5,
        keep: str = "best",
        seed: int = 0,
        num_threads: int | None = None,
        pretrained_weights: str | None = None,
        progress: bool = True,
        stem: str = "auto",
        width: int = 32,
        dropout: float = 0.2,
        label_smoothing: float = 0.0,
        aug_strength: float = 1.0,
        ema_decay: float | None = None,
        mixup: float = 0.0,
        n_members: int = 1,
        member_params: list[dict[str, Any]] | None = None,
    ) -> None:
        self.network = network
        self.spatial_dims = spatial_dims
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.augment = augment
        self.hflip = hflip
        self.tta = tta
        self.class_weight = class_weight
        self.patience = patience
        self.keep = keep
        self.seed = seed
        self.num_threads = num_threads
        self.pretrained_weights = pretrained_weights
        self.progress = progress
        self.stem = stem
        self.width = width
        self.dropout = dropout
        self.label_smoothing = label_smoothing
        self.aug_strength = aug_strength
        self.ema_decay = ema_decay
        self.mixup = mixup
        self.n_members = n_members
        self.member_params = member_params

    # ------------------------------------------------------------------ validation
    def _check_X(self, X: Any, name: str = "X", fitted: bool = False) -> np.ndarray:
        if not isinstance(X, np.ndarray):
            try:
                X = np.asarray(X)
            except Exception as exc:  # noqa: BLE001
                raise MedAIError(f"{name} must be a numpy array, got {type(X).__name__}") from exc
        want = self.spatial_dims + 2
        layout = "(N, C, H, W)" if self.spatial_dims == 2 else "(N, C, D, H, W)"
        if X.ndim != want:
            hint = " (add a channel axis: X[:, None])" if X.ndim == want - 1 else ""
            raise MedAIError(
                f"{name} has {X.ndim} dimensions {tuple(X.shape)}; expected {want} dimensions {layout} for "
                f"spatial_dims={self.spatial_dims}{hint}"
            )
        if X.shape[0] == 0:
            raise MedAIError(f"{name} is empty; expected at least one image")
        if not np.issubdtype(X.dtype, np.floating):
            raise MedAIError(
                f"{name} has dtype {X.dtype}; expected float32 values in [0, 1] (for uint8 images use X / 255)"
            )
        X = np.ascontiguousarray(X, dtype=np.float32)
        if not np.isfinite(X).all():
            bad = int((~np.isfinite(X)).reshape(len(X), -1).any(axis=1).argmax())
            raise MedAIError(f"{name} contains NaN or infinite values (first in image {bad}); expected finite values")
        lo, hi = float(X.min()), float(X.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise MedAIError(
                f"{name} values range over [{lo:.4g}, {hi:.4g}]; expected [0, 1] (for uint8 images use X / 255)"
            )
        if fitted:
            if X.shape[1] != self.input_shape_[0]:
                raise MedAIError(
                    f"{name} has {X.shape[1]} channel(s); the model was fitted on "
                    f"{self.input_shape_[0]} channel(s) "
                    f"(expected shape (N, {', '.join(map(str, self.input_shape_))}))"
                )
        return X

    def _check_y(self, y: Any, n: int, name: str = "y") -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise MedAIError(f"{name} has shape {tuple(y.shape)}; expected one label per image, shape ({n},)")
        if len(y) != n:
            raise MedAIError(f"{name} has {len(y)} labels but there are {n} images; expected the same number")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise MedAIError(f"{name} contains NaN labels; expected a class label for every image")
        return y

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise MedAIError("this ImageClassifier is not fitted yet; call fit(X, y) or ImageClassifier.load(dir)")

    # ------------------------------------------------------------------ building blocks
    def _build(self, in_channels: int, n_classes: int):
        from medai.modalities.imaging.networks import MemberAverage, build_network

        if int(self.n_members) > 1:
            return MemberAverage([self._member(m)._build(in_channels, n_classes) for m in range(int(self.n_members))])
        net = build_network(
            self.network,
            self.spatial_dims,
            in_channels,
            n_classes,
            stem=self.stem,
            width=self.width,
            dropout=self.dropout,
        )
        if getattr(self, "_data_parallel", None):  # average every gradient over the workers as it is computed
            for parameter in net.parameters():
                parameter.register_hook(lambda grad: self._averaged(grad))
        return net

    def _averaged(self, grad):
        grad = grad.clone()
        self._average_over_workers([grad])
        return grad

    def _member(self, m: int) -> ImageClassifier:
        """Unfitted single-network classifier for ensemble member ``m``."""
        kinds = self.member_params or [{}]
        overrides = dict(kinds[m % len(kinds)])
        unknown = set(overrides) - set(self.get_params())
        reserved = set(overrides) & {"n_members", "member_params", "seed"}
        bad = sorted(unknown | reserved)
        if bad:
            raise MedAIError(f"member_params may not set {bad}; expected parameters of ImageClassifier other than "
                             "n_members, member_params and seed")
        return clone(self).set_params(n_members=1, member_params=None, seed=int(self.seed) + 1000 * m, **overrides)

    def _summary(self) -> dict[str, Any]:
        """What ``members_`` records of one fitted network."""
        return {"seed": int(self.seed), "network": self.network, "best_epoch": self.best_epoch_,
                "val_auroc": self.best_score_}

    def _lr_at(self, step: int, steps_per_epoch: int) -> float:
        warm = max(0, int(self.warmup_epochs)) * steps_per_epoch
        total = max(1, int(self.epochs) * steps_per_epoch)
        if warm and step < warm:
            return self.lr * (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return self.lr * 0.5 * (1 + math.cos(math.pi * progress))

    def _class_weights(self, y_idx: np.ndarray, k: int):
        torch = _torch()
        cw = self.class_weight
        if cw is None:
            return None
        if cw == "balanced":
            counts = np.bincount(y_idx, minlength=k).astype(np.float64)
            return torch.tensor(len(y_idx) / (k * counts), dtype=torch.float32)
        if isinstance(cw, dict):
            unknown = [c for c in cw if c not in set(self.classes_.tolist())]
            if unknown:
                raise MedAIError(f"class_weight names unknown classes {unknown}; classes are {self.classes_.tolist()}")
            return torch.tensor([float(cw.get(c, 1.0)) for c in self.classes_.tolist()], dtype=torch.float32)
        raise MedAIError(f"class_weight must be 'balanced', None or a dict, got {cw!r}")

    def _tta_views(self, x):
        torch = _torch()
        views = [x]
        if self.hflip:
            views.append(torch.flip(x, dims=(-1,)))
        pad = [1, 1, 1, 1] + ([0, 0] if x.dim() == 5 else [])
        p = torch.nn.functional.pad(x, pad, mode="replicate")
        h, w = x.shape[-2], x.shape[-1]
        for dy, dx in ((0, 0), (2, 2), (0, 2), (2, 0)):
            views.append(p[..., dy : dy + h, dx : dx + w])
        return views

    def _forward_proba(self, X: np.ndarray, tta: bool | None = None, net=None) -> np.ndarray:
        torch = _torch()
        tta = self.tta if tta is None else tta
        net = self.network_ if net is None else net
        if getattr(self, "_data_parallel", None):  # the same batch-norm statistics on every worker
            with torch.no_grad():
                self._average_over_workers([b for b in net.buffers() if b.dtype.is_floating_point])
        net.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(X), int(self.batch_size)):
                xb = torch.from_numpy(X[i : i + int(self.batch_size)])
                views = self._tta_views(xb) if tta else [xb]
                p = sum(torch.softmax(net(v), dim=1) for v in views) / len(views)
                out.append(p.numpy())
        return np.concatenate(out).astype(np.float64)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
    ) -> ImageClassifier:
        """Train on ``X`` (float32 ``(N, C, H, W)`` / ``(N, C, D, H, W)`` in [0, 1]) and labels ``y``
        ``(N,)``.

        With ``X_val``/``y_val`` the validation AUROC is measured after every epoch; the weights of the best
        epoch are restored at the end and training stops after ``patience`` epochs without improvement.
        With ``checkpoint_dir`` a checkpoint is written (atomically) after every epoch; ``resume=True``
        continues from it (it must come from the same hyper-parameters and data shape). An ensemble keeps one
        checkpoint per member in ``checkpoint_dir/member-<m>``.
        """
        if int(self.n_members) < 1:
            raise MedAIError(f"n_members must be >= 1, got {self.n_members!r}")
        if int(self.n_members) == 1:
            self._fit_network(X, y, X_val, y_val, checkpoint_dir, resume)
            self.members_ = [self._summary()]
            return self
        return self._fit_ensemble(X, y, X_val, y_val, checkpoint_dir, resume)

    def _fit_ensemble(self, X, y, X_val, y_val, checkpoint_dir, resume) -> ImageClassifier:
        from medai.modalities.imaging.networks import MemberAverage

        members = [self._member(m) for m in range(int(self.n_members))]  # bad member_params fail before training
        self.history_ = []
        for m, member in enumerate(members):
            member_dir = Path(checkpoint_dir) / f"member-{m}" if checkpoint_dir is not None else None
            member._fit_network(X, y, X_val, y_val, member_dir, resume)
            self.history_ += [{"member": m, **record} for record in member.history_]
        self.members_ = [member._summary() for member in members]
        self.classes_, self.n_features_in_ = member.classes_, member.n_features_in_
        self.input_shape_ = member.input_shape_
        self.network_ = MemberAverage([member.network_ for member in members]).eval()
        self.best_epoch_ = [m["best_epoch"] for m in self.members_]
        self.best_score_ = None
        if X_val is not None:
            X_val = self._check_X(X_val, "X_val")
            yv_idx = np.searchsorted(self.classes_, self._check_y(y_val, len(X_val), "y_val"))
            self.best_score_ = _auroc(yv_idx, self._forward_proba(X_val, tta=False))
        return self

    def _fit_network(self, X, y, X_val, y_val, checkpoint_dir, resume) -> None:
        torch = _torch()
        from medai.modalities.imaging.augment import default_augmentation

        X = self._check_X(X)
        y = self._check_y(y, len(X))
        classes = np.unique(y)
        if len(classes) < 2:
            raise MedAIError(f"y holds only one class ({classes[0]!r}); expected at least two classes to learn")
        if (X_val is None) != (y_val is None):
            raise MedAIError("give both X_val and y_val, or neither")
        if int(self.epochs) < 1:
            raise MedAIError(f"epochs must be >= 1, got {self.epochs!r}")
        if int(self.batch_size) < 2:
            raise MedAIError(f"batch_size must be >= 2, got {self.batch_size!r}")
        if self.keep not in ("best", "last"):
            raise MedAIError(f"keep must be 'best' or 'last', got {self.keep!r}")
        if float(self.mixup) < 0:
            raise MedAIError(f"mixup must be >= 0 (0 turns it off), got {self.mixup!r}")
        if self.ema_decay is not None and not 0.0 < float(self.ema_decay) < 1.0:
            raise MedAIError(f"ema_decay must lie strictly between 0 and 1 (or be None), got {self.ema_decay!r}")
        self.classes_ = classes
        y_idx = np.searchsorted(classes, y).astype(np.int64)
        if X_val is not None:
            X_val = self._check_X(X_val, "X_val")
            if X_val.shape[1:] != X.shape[1:]:
                raise MedAIError(
                    f"X_val has image shape {tuple(X_val.shape[1:])}; expected the shape of X, {tuple(X.shape[1:])}"
                )
            y_val = self._check_y(y_val, len(X_val), "y_val")
            unknown = sorted(set(np.unique(y_val).tolist()) - set(classes.tolist()))
            if unknown:
                raise MedAIError(
                    f"y_val holds classes {unknown} not present in y; expected a subset of {classes.tolist()}"
                )
            yv_idx = np.searchsorted(classes, y_val)
            if len(np.unique(yv_idx)) < 2:
                raise MedAIError("y_val holds only one class; AUROC needs at least two classes in the validation set")
        self.n_features_in_ = int(X.shape[1])
        self.input_shape_ = tuple(int(s) for s in X.shape[1:])
        k = len(classes)

        old_threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        try:
            _seed_everything(int(self.seed))
            net = self._build(X.shape[1], k)
            if self.pretrained_weights:
                from medai.modalities.imaging.networks import load_pretrained

                load_pretrained(net, self.pretrained_weights)
            self.network_ = net
            ema = _WeightAverage(net, float(self.ema_decay)) if self.ema_decay is not None else None
            scored = ema.network if ema is not None else net  # the weights validated, kept and saved
            opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            loss_fn = torch.nn.CrossEntropyLoss(
                weight=self._class_weights(y_idx, k), label_smoothing=float(self.label_smoothing)
            )
            aug = default_augmentation(self.spatial_dims, hflip=self.hflip, strength=self.aug_strength)
            n = len(X)
            bs = int(self.batch_size)
            drop_last = n % bs == 1  # a batch of one breaks batch norm
            steps_per_epoch = n // bs if drop_last else math.ceil(n / bs)
            X_t = torch.from_numpy(X)
            y_t = torch.from_numpy(y_idx)

            self.history_: list[dict[str, Any]] = []
            best_state = None
            self.best_score_: float | None = None
            self.best_epoch_: int | None = None
            bad_epochs = 0
            start_epoch = 0
            ckpt = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir is not None else None
            if resume:
                if ckpt is None:
                    raise MedAIError("resume=True needs checkpoint_dir")
                if ckpt.exists():
                    state = self._read_checkpoint(ckpt, opt, ema)
                    best_state = state["best_state"]
                    self.history_ = state["history"]
                    self.best_score_, self.best_epoch_ = state["best_score"], state["best_epoch"]
                    bad_epochs, start_epoch = state["bad_epochs"], state["epoch"] + 1

            from tqdm.auto import tqdm

            bar = tqdm(
                range(start_epoch, int(self.epochs)),
                desc=f"{self.network} fit (seed {self.seed})",
                unit="epoch",
                disable=not self.progress,
                initial=start_epoch,
                total=int(self.epochs),
            )
            for epoch in bar:
                if self.keep == "best" and self.patience is not None and bad_epochs >= int(self.patience):
                    break
                t0 = time.perf_counter()
                epoch_seed = int(self.seed) * 100_003 + epoch
                _seed_everything(epoch_seed)
                gen = torch.Generator().manual_seed(epoch_seed)
                perm = torch.randperm(n, generator=gen)
                mix_rng = np.random.default_rng(epoch_seed)
                net.train()
                total_loss, seen = 0.0, 0
                for b in range(steps_per_epoch):
                    idx = perm[b * bs : (b + 1) * bs]
                    xb, yb = X_t[idx], y_t[idx]
                    if self.augment:
                        xb = aug(xb, gen)
                    for group in opt.param_groups:
                        group["lr"] = self._lr_at(epoch * steps_per_epoch + b, steps_per_epoch)
                    opt.zero_grad(set_to_none=True)
                    if float(self.mixup) > 0:
                        lam = float(mix_rng.beta(float(self.mixup), float(self.mixup)))
                        partner = torch.randperm(len(idx), generator=gen)
                        out = net(lam * xb + (1 - lam) * xb[partner])
                        loss = lam * loss_fn(out, yb) + (1 - lam) * loss_fn(out, yb[partner])
                    else:
                        loss = loss_fn(net(xb), yb)
                    loss.backward()
                    opt.step()
                    if ema is not None:
                        ema.update(net)
                    total_loss += float(loss.detach()) * len(idx)
                    seen += len(idx)
                record: dict[str, Any] = {
                    "epoch": epoch + 1,
                    "train_loss": total_loss / max(seen, 1),
                    "lr": opt.param_groups[0]["lr"],
                }
                if X_val is not None:
                    proba = self._forward_proba(X_val, tta=False, net=scored)
                    record["val_loss"] = float(
                        -np.mean(np.log(np.clip(proba[np.arange(len(yv_idx)), yv_idx], 1e-12, None)))
                    )
                    record["val_auroc"] = _auroc(yv_idx, proba)
                    record["val_accuracy"] = float(np.mean(proba.argmax(1) == yv_idx))
                    if self.keep == "last":
                        self.best_score_, self.best_epoch_ = record["val_auroc"], epoch + 1
                    elif self.best_score_ is None or record["val_auroc"] > self.best_score_ + 1e-6:
                        self.best_score_, self.best_epoch_ = record["val_auroc"], epoch + 1
                        best_state = {k_: v.detach().clone() for k_, v in scored.state_dict().items()}
                        bad_epochs = 0
                    else:
                        bad_epochs += 1
                record["seconds"] = time.perf_counter() - t0
                self.history_.append(record)
                bar.set_postfix({k_: round(v, 4) for k_, v in record.items() if k_ in ("train_loss", "val_auroc")})
                if ckpt is not None:
                    self._write_checkpoint(ckpt, epoch, opt, best_state, bad_epochs, ema)
                self._end_of_epoch(epoch)
            bar.close()
            if best_state is not None:
                net.load_state_dict(best_state)
            else:  # no validation data, or keep="last": the final (averaged) weights
                if ema is not None:
                    net.load_state_dict(ema.network.state_dict())
                self.best_epoch_ = len(self.history_)
            net.eval()
        finally:
            if self.num_threads:
                torch.set_num_threads(old_threads)

    def _end_of_epoch(self, epoch: int) -> None:
        """Hook called after every epoch (and its checkpoint); subclasses may override it. Reports the epoch's
        record to a tuner when one listens (``medai tune`` stops poor trials early on ``val_auroc``)."""
        from medai.tuning import report_progress

        if self.history_:
            report_progress(self.history_[-1])

    # ------------------------------------------------------------------ checkpoints
    def _ckpt_params(self) -> dict[str, Any]:
        keep = (
            "network",
            "spatial_dims",
            "epochs",
            "batch_size",
            "lr",
            "weight_decay",
            "warmup_epochs",
            "augment",
            "hflip",
            "class_weight",
            "seed",
            "stem",
            "width",
            "dropout",
            "label_smoothing",
            "aug_strength",
            "ema_decay",
            "mixup",
            "keep",
        )
        return {k: self.get_params()[k] for k in keep}

    def _write_checkpoint(self, path: Path, epoch: int, opt, best_state, bad_epochs: int, ema=None) -> None:
        from safetensors.torch import save

        tensors = {f"model/{k}": v.detach().contiguous() for k, v in self.network_.state_dict().items()}
        if ema is not None:
            tensors.update({f"ema/{k}": v.detach().contiguous() for k, v in ema.network.state_dict().items()})
        if best_state is not None:
            tensors.update({f"best/{k}": v.contiguous() for k, v in best_state.items()})
        for idx, st in opt.state_dict()["state"].items():
            for name, value in st.items():
                t = value if hasattr(value, "detach") else _torch().tensor(value)
                tensors[f"optim/{idx}/{name}"] = t.detach().contiguous()
        meta = {
            "epoch": epoch,
            "bad_epochs": bad_epochs,
            "best_score": self.best_score_,
            "best_epoch": self.best_epoch_,
            "history": self.history_,
            "params": self._ckpt_params(),
            "ema_steps": ema.steps if ema is not None else None,
            "classes": self.classes_.tolist(),
            "input_shape": list(self.input_shape_),
        }
        atomic_write_bytes(path, save(tensors, metadata={"medai": json.dumps(meta, default=str)}))

    def _read_checkpoint(self, path: Path, opt, ema=None) -> dict[str, Any]:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads(f.metadata()["medai"])
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # noqa: BLE001
            raise MedAIError(f"checkpoint {str(path)!r} could not be read: {exc}") from exc
        if meta["params"] != json.loads(json.dumps(self._ckpt_params(), default=str)):
            diff = {
                k: (v, self._ckpt_params().get(k)) for k, v in meta["params"].items() if self._ckpt_params().get(k) != v
            }
            raise MedAIError(
                f"checkpoint {str(path)!r} was written with other hyper-parameters {diff} (checkpoint, now); "
                "expected the same ones to resume, or use resume=False"
            )
        if meta["classes"] != self.classes_.tolist() or tuple(meta["input_shape"]) != self.input_shape_:
            raise MedAIError(
                f"checkpoint {str(path)!r} was written for classes {meta['classes']} and input shape "
                f"{meta['input_shape']}; expected {self.classes_.tolist()} and {list(self.input_shape_)}"
            )
        self.network_.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
        if ema is not None:
            ema.network.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema/")})
            ema.steps = int(meta["ema_steps"])
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best/")} or None
        opt_state = opt.state_dict()
        state: dict[int, dict[str, Any]] = {}
        for k, v in tensors.items():
            if k.startswith("optim/"):
                _, idx, name = k.split("/", 2)
                state.setdefault(int(idx), {})[name] = v
        opt_state["state"] = state
        opt.load_state_dict(opt_state)
        return {
            "best_state": best,
            "history": meta["history"],
            "best_score": meta["best_score"],
            "best_epoch": meta["best_epoch"],
            "bad_epochs": meta["bad_epochs"],
            "epoch": meta["epoch"],
        }

    # ------------------------------------------------------------------ predict
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, n_classes)`` (softmax; averaged over TTA views when ``tta``)."""
        self._check_fitted()
        torch = _torch()
        X = self._check_X(X, fitted=True)
        old = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        try:
            return self._forward_proba(X)
        finally:
            if self.num_threads:
                torch.set_num_threads(old)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable class label per image, ``(N,)``, taken from ``classes_``."""
        self._check_fitted()
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write ``weights.safetensors`` and ``network.json`` to ``directory`` (atomically, file by file)."""
        self._check_fitted()
        from safetensors.torch import save

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.network_.state_dict().items()}
        atomic_write_bytes(directory / WEIGHTS_FILE, save(state))
        classes = self.classes_.tolist()
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "network": self.network,
            "spatial_dims": int(self.spatial_dims),
            "in_channels": int(self.input_shape_[0]),
            "num_classes": len(classes),
            "classes": classes,
            "classes_dtype": str(self.classes_.dtype),
            "input_shape": list(self.input_shape_),
            "params": json.loads(json.dumps(self.get_params(), default=str)),
            "best_epoch": self.best_epoch_,
            "best_score": self.best_score_,
            "history": self.history_,
            "members": getattr(self, "members_", None),
        }
        atomic_write_text(directory / CONFIG_FILE, json.dumps(config, indent=2, default=str))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> ImageClassifier:
        """Restore a classifier written by :meth:`save` (no pickle is read)."""
        directory = Path(directory)
        cfg_path, w_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise MedAIError(f"{str(p)!r} does not exist; expected a directory written by ImageClassifier.save")
        try:
            config = json.loads(cfg_path.read_text("utf-8"))
        except json.JSONDecodeError as exc:
            raise MedAIError(f"{str(cfg_path)!r} is not valid JSON: {exc}") from exc
        if config.get("format") != FORMAT:
            raise MedAIError(f"{str(cfg_path)!r} has format {config.get('format')!r}; expected {FORMAT!r}")
        params = dict(config.get("params", {}))
        valid = cls().get_params()
        params = {k: v for k, v in params.items() if k in valid}
        params["network"], params["spatial_dims"] = config["network"], config["spatial_dims"]
        params["pretrained_weights"] = None
        clf = cls(**params)
        clf.classes_ = np.asarray(config["classes"], dtype=config.get("classes_dtype") or None)
        clf.input_shape_ = tuple(config["input_shape"])
        clf.n_features_in_ = int(config["in_channels"])
        clf.history_ = config.get("history", [])
        clf.best_epoch_, clf.best_score_ = config.get("best_epoch"), config.get("best_score")
        clf.members_ = config.get("members") or [clf._summary()]
        net = clf._build(int(config["in_channels"]), int(config["num_classes"]))
        from medai.modalities.imaging.networks import load_pretrained

        load_pretrained(net, w_path)
        net.eval()
        clf.network_ = net
        return clf
