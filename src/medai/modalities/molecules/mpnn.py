"""chemprop 2.x's directed message-passing network (D-MPNN) behind the scikit-learn estimator interface.

The network, its training loop (lightning) and its featurisation are chemprop's; this wrapper only turns our
targets into chemprop datapoints, keeps the weights of the epoch with the lowest validation loss (chemprop's
own rule) when validation molecules are given, and stores the weights as safetensors with a JSON config - never
a pickled checkpoint. ``descriptors=True`` adds RDKit 2D descriptors as extra molecule features (chemprop's
``x_d``). They are scaled as descriptastorus' ``rdkit_2d_normalized`` (what chemprop 1 recommended) scales them:
each descriptor through its cumulative distribution, here the empirical one of the training molecules (101
quantiles, kept with the weights), so every value lies in [0, 1] whatever its range (``descriptor_scaling="cdf"``,
the default); ``"log"`` compresses by ``sign(x) log(1 + |x|)`` instead (models saved before the option). Either
is then standardised inside the model.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from medai.errors import MedAIError
from medai.modalities.molecules.learners import DomainMixin

WEIGHTS, CONFIG = "weights.safetensors", "chemprop.json"


SCALINGS = ("cdf", "log")
N_QUANTILES = 101


def _compress(D: np.ndarray) -> np.ndarray:
    return np.sign(D) * np.log1p(np.abs(D))


def fit_quantiles(D: np.ndarray) -> np.ndarray:
    """``(N_QUANTILES, n_descriptors)``: each descriptor's empirical quantiles (NaN already filled)."""
    return np.quantile(D, np.linspace(0, 1, N_QUANTILES), axis=0)


def cdf(D: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Each column through its empirical CDF (linear between quantiles; ties take the middle of their range),
    clipped to [0, 1] beyond the training range."""
    levels = np.linspace(0, 1, len(quantiles))
    out = np.empty_like(D, dtype=float)
    for j in range(D.shape[1]):
        q = quantiles[:, j]
        out[:, j] = 0.5 * (np.interp(D[:, j], q, levels) - np.interp(-D[:, j], -q[::-1], -levels[::-1]))
    return out


class ChempropLearner(DomainMixin, BaseEstimator):
    """chemprop D-MPNN. ``task``: binary, multiclass, multilabel or regression (the road's kinds)."""

    watches_validation = True  # keeps the epoch with the lowest validation loss

    def __init__(self, task: str = "binary", n_classes: int = 2, epochs: int = 50, batch_size: int = 64,
                 hidden_size: int = 300, depth: int = 3, ffn_hidden: int = 300, ffn_layers: int = 1,
                 dropout: float = 0.0, descriptors: bool = False, seed: int = 0, threads: int = 2,
                 progress: bool = False, descriptor_scaling: str = "cdf"):
        self.task = task
        self.n_classes = n_classes
        self.epochs = epochs
        self.batch_size = batch_size
        self.hidden_size = hidden_size
        self.depth = depth
        self.ffn_hidden = ffn_hidden
        self.ffn_layers = ffn_layers
        self.dropout = dropout
        self.descriptors = descriptors
        self.seed = seed
        self.threads = threads
        self.progress = progress
        self.descriptor_scaling = descriptor_scaling

    # -- data ------------------------------------------------------------------------------------------------
    def _targets(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        return y if y.ndim == 2 else y.reshape(-1, 1)

    def _descriptors(self, X) -> np.ndarray | None:
        if not self.descriptors:
            return None
        from medai.modalities.molecules.features import Featurizer

        D = Featurizer(("rdkit2d",)).transform(X).astype(float)
        if self.descriptor_scaling == "log":
            D = _compress(D)
        missing = np.isnan(D)
        D[missing] = np.take(self.descriptor_fill_, np.nonzero(missing)[1])
        return cdf(D, self.descriptor_quantiles_) if self.descriptor_scaling == "cdf" else D

    def _dataset(self, X, y=None):
        from chemprop import data

        from medai.modalities.molecules.chem import mols

        D = self._descriptors(X)
        Y = self._targets(y) if y is not None else None
        points = [data.MoleculeDatapoint(mol, None if Y is None else Y[i], x_d=None if D is None else D[i])
                  for i, mol in enumerate(mols(X))]
        return data.MoleculeDataset(points)

    # -- network ---------------------------------------------------------------------------------------------
    def _network(self, y_mean=None, y_scale=None, d_mean=None, d_scale=None):
        from chemprop import models
        from chemprop import nn as cnn

        n_tasks, n_xd = int(self.n_tasks_), int(self.n_descriptors_)
        mp = cnn.BondMessagePassing(d_h=int(self.hidden_size), depth=int(self.depth), dropout=float(self.dropout))
        common = dict(input_dim=mp.output_dim + n_xd, hidden_dim=int(self.ffn_hidden), n_layers=int(self.ffn_layers),
                      dropout=float(self.dropout))
        if self.task == "regression":
            unscale = cnn.UnscaleTransform(np.zeros(n_tasks) if y_mean is None else y_mean,
                                           np.ones(n_tasks) if y_scale is None else y_scale)
            predictor = cnn.RegressionFFN(n_tasks=n_tasks, output_transform=unscale, **common)
        elif self.task == "multiclass":
            predictor = cnn.MulticlassClassificationFFN(n_classes=int(self.n_classes), n_tasks=1, **common)
        else:
            predictor = cnn.BinaryClassificationFFN(n_tasks=n_tasks, **common)
        x_d = None
        if n_xd:
            x_d = cnn.ScaleTransform(np.zeros(n_xd) if d_mean is None else d_mean,
                                     np.ones(n_xd) if d_scale is None else d_scale)
        return models.MPNN(mp, cnn.NormAggregation(), predictor, batch_norm=False, X_d_transform=x_d)

    def fit(self, X, y, X_val=None, y_val=None):
        import logging
        import warnings

        import torch
        from chemprop import data
        from lightning import pytorch as pl

        for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
            logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module="lightning")
        warnings.filterwarnings("ignore", message=".*(LeafSpec|num_workers|does not have many workers).*")
        torch.set_num_threads(max(1, int(self.threads)))
        pl.seed_everything(int(self.seed), workers=True, verbose=False)
        Y = self._targets(y)
        self.n_tasks_ = 1 if self.task == "multiclass" else Y.shape[1]
        self.descriptor_fill_, self.descriptor_quantiles_ = np.zeros(0), np.zeros((0, 0))
        self.n_descriptors_ = 0
        if self.descriptor_scaling not in SCALINGS:
            raise MedAIError(f"descriptor_scaling must be one of {', '.join(SCALINGS)}, "
                             f"got {self.descriptor_scaling!r}")
        if self.descriptors:
            from medai.modalities.molecules.features import Featurizer

            raw = Featurizer(("rdkit2d",)).transform(X).astype(float)
            raw = _compress(raw) if self.descriptor_scaling == "log" else raw
            with warnings.catch_warnings():  # a descriptor undefined for every training molecule: filled with 0
                warnings.simplefilter("ignore", RuntimeWarning)
                self.descriptor_fill_ = np.nan_to_num(np.nanmedian(raw, axis=0))
            if self.descriptor_scaling == "cdf":
                missing = np.isnan(raw)
                raw[missing] = np.take(self.descriptor_fill_, np.nonzero(missing)[1])
                self.descriptor_quantiles_ = fit_quantiles(raw)
            self.n_descriptors_ = raw.shape[1]
        train = self._dataset(X, Y)
        y_mean = y_scale = d_mean = d_scale = None
        if self.task == "regression":
            scaler = train.normalize_targets()
            y_mean, y_scale = scaler.mean_, scaler.scale_
        if self.n_descriptors_:
            scaler = train.normalize_inputs("X_d")
            d_mean, d_scale = scaler.mean_, np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
        network = self._network(y_mean, y_scale, d_mean, d_scale)
        loaders = [data.build_dataloader(train, batch_size=int(self.batch_size), num_workers=0, seed=int(self.seed))]
        best = _BestWeights()
        if X_val is not None and len(X_val):
            val = self._dataset(X_val, y_val)
            if self.task == "regression":
                val.normalize_targets(scaler=_scaler(y_mean, y_scale))
            if self.n_descriptors_:
                val.normalize_inputs("X_d", _scaler(d_mean, d_scale))
            loaders.append(data.build_dataloader(val, batch_size=int(self.batch_size), num_workers=0, shuffle=False,
                                      drop_last=False))
        trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=bool(self.progress),
                             enable_model_summary=False, accelerator="cpu", devices=1, max_epochs=int(self.epochs),
                             callbacks=[best] if len(loaders) > 1 else [], num_sanity_val_steps=0)
        trainer.fit(network, *loaders)
        if best.state is not None:
            network.load_state_dict(best.state)
        self.best_epoch_ = best.epoch if best.state is not None else int(self.epochs) - 1
        self.network_ = network.eval()
        self.fit_domain(X)
        return self

    # -- outputs ---------------------------------------------------------------------------------------------
    def _raw(self, X) -> np.ndarray:
        import torch
        from chemprop import data

        dataset = self._dataset(X)
        loader = data.build_dataloader(dataset, batch_size=256, num_workers=0, shuffle=False,
                                      drop_last=False)
        self.network_.eval()
        outputs = []
        with torch.inference_mode():
            for batch in loader:
                bmg, V_d, X_d, *_ = batch
                outputs.append(self.network_(bmg, V_d, X_d).numpy())
        return np.concatenate(outputs) if outputs else np.zeros((0, self.n_tasks_))

    def predict_proba(self, X) -> np.ndarray:
        out = self._raw(X)
        if self.task == "multiclass":
            return out.reshape(len(out), -1)
        if self.task == "multilabel":
            return out.reshape(len(out), -1)
        p = out.reshape(-1)
        return np.column_stack([1 - p, p])

    def predict(self, X) -> np.ndarray:
        if self.task == "regression":
            return self._raw(X).reshape(-1)
        proba = self.predict_proba(X)
        return (proba >= 0.5).astype(int) if self.task == "multilabel" else proba.argmax(axis=1)

    def atom_weights(self, smiles: str, output: int = 0) -> np.ndarray:
        """Gradient x input of one output with respect to each atom's features (per-atom attribution)."""
        import torch
        from chemprop.data import BatchMolGraph
        from chemprop.featurizers import SimpleMoleculeMolGraphFeaturizer

        from medai.modalities.molecules.chem import mols

        mol = mols([smiles])[0]
        bmg = BatchMolGraph([SimpleMoleculeMolGraphFeaturizer()(mol)])
        bmg.V.requires_grad_(True)
        D = self._descriptors([smiles])
        X_d = None if D is None else torch.tensor(D, dtype=torch.float32)
        self.network_.eval()
        out = self.network_(bmg, None, X_d).reshape(-1)
        out[min(output, out.numel() - 1)].backward()
        return (bmg.V.grad * bmg.V).sum(dim=1).detach().numpy()

    def embed(self, X) -> np.ndarray:
        """Ten physico-chemical descriptors (for the conformal difficulty estimate)."""
        from medai.modalities.molecules.learners import compact_descriptors

        return compact_descriptors(X)

    # -- storing ---------------------------------------------------------------------------------------------
    def to_files(self) -> dict[str, bytes]:
        import torch
        from safetensors.torch import save

        tensors = {f"network.{k}": v.detach().contiguous() for k, v in self.network_.state_dict().items()}
        tensors["domain"] = torch.from_numpy(np.ascontiguousarray(self.domain_))
        tensors["descriptor_fill"] = torch.from_numpy(np.asarray(self.descriptor_fill_, dtype=np.float64))
        tensors["descriptor_quantiles"] = torch.from_numpy(np.ascontiguousarray(self.descriptor_quantiles_,
                                                                                dtype=np.float64))
        config = {"params": self.get_params(), "n_tasks": int(self.n_tasks_), "best_epoch": int(self.best_epoch_),
                  "n_descriptors": int(self.n_descriptors_)}
        return {WEIGHTS: save(tensors), CONFIG: json.dumps(config, indent=1).encode()}

    @classmethod
    def from_files(cls, weights: bytes, config: bytes) -> ChempropLearner:
        from safetensors.torch import load

        settings: dict[str, Any] = json.loads(config)
        settings["params"].setdefault("descriptor_scaling", "log")  # saved before descriptors were CDF-scaled
        learner = cls(**{k: v for k, v in settings["params"].items() if k in cls._get_param_names()})
        learner.n_tasks_, learner.best_epoch_ = settings["n_tasks"], settings["best_epoch"]
        learner.n_descriptors_ = settings["n_descriptors"]
        tensors = load(weights)
        learner.domain_ = tensors.pop("domain").numpy()
        learner.descriptor_fill_ = tensors.pop("descriptor_fill").numpy()
        quantiles = tensors.pop("descriptor_quantiles", None)
        learner.descriptor_quantiles_ = np.zeros((0, 0)) if quantiles is None else quantiles.numpy()
        network = learner._network()
        network.load_state_dict({k.removeprefix("network."): v for k, v in tensors.items()})
        learner.network_ = network.eval()
        return learner


def _scaler(mean, scale):
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler()
    scaler.mean_, scaler.scale_ = np.asarray(mean), np.asarray(scale)
    return scaler


def _best_weights_callback():
    from lightning import pytorch as pl

    class BestWeights(pl.Callback):
        """Keeps the weights of the epoch with the lowest validation loss (chemprop's checkpoint rule)."""

        def __init__(self) -> None:
            self.best, self.state, self.epoch = float("inf"), None, -1

        def on_validation_epoch_end(self, trainer, module) -> None:
            loss = trainer.callback_metrics.get("val_loss")
            if loss is not None and float(loss) < self.best:
                self.best, self.epoch = float(loss), trainer.current_epoch
                self.state = copy.deepcopy(module.state_dict())

    return BestWeights()


def _BestWeights():  # noqa: N802 - a factory: lightning is imported only when chemprop trains
    return _best_weights_callback()
