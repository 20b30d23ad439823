"""A GRU or a Transformer over visit sequences (PyTorch, small enough for a CPU).

Each visit is the mean of the embeddings of its codes (``domain:code`` tokens, one vocabulary for the three
domains, learned from the training samples; unseen codes are skipped); the sequence of visits (oldest first,
the index visit last) goes through a GRU, or a Transformer encoder with learned position embeddings and a
padding mask; the last visit's output gives the logits. Cross-entropy for classes, binary cross-entropy per label
(unknown labels masked) for multilabel. Early stopping on the validation records (AUROC; macro AUROC for
multilabel; log-likelihood for multiclass). Weights in safetensors with a JSON config: nothing runs code on load.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from medai.errors import MedAIError
from medai.modalities.longitudinal.histories import VisitHistories
from medai.modalities.longitudinal.networks import BestWeights, validation_score
from medai.modalities.longitudinal.visit_learners import check_histories, check_kind

WEIGHTS, CONFIG = "visit_network.safetensors", "visit_network.json"
ARCHITECTURES = ("gru", "transformer")
MAX_VISITS = 64  # the latest visits kept per sample


def _build(architecture: str, vocabulary: int, dim: int, n_out: int, dropout: float):
    import torch
    from torch import nn

    class VisitModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.codes = nn.EmbeddingBag(vocabulary + 1, dim, mode="mean", padding_idx=0)
            if architecture == "gru":
                self.encoder = nn.GRU(dim, dim, batch_first=True)
            else:
                self.position = nn.Embedding(MAX_VISITS, dim)
                layer = nn.TransformerEncoderLayer(dim, 4, 2 * dim, dropout=dropout, batch_first=True)
                self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(dim, n_out)

        def forward(self, tokens, offsets, lengths):
            visits = self.codes(tokens, offsets)  # (sum of visits, dim)
            B, T = len(lengths), int(lengths.max())
            steps = torch.arange(T)[None, :] < lengths[:, None]  # (B, T) real visits, left-aligned
            x = visits.new_zeros(B, T, visits.shape[1])
            x[steps] = visits
            if architecture == "gru":
                packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
                _, h = self.encoder(packed)
                last = h[-1]
            else:
                out = self.encoder(x + self.position(torch.arange(T))[None], src_key_padding_mask=~steps)
                last = out[torch.arange(B), lengths - 1]
            return self.head(self.drop(last))

    if architecture not in ARCHITECTURES:
        raise MedAIError(f"unknown visit network {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    return VisitModel()


class VisitNetwork(BaseEstimator):
    """GRU or Transformer over the visits of each sample's history (``history=False``: the index visit only)."""

    def __init__(self, architecture: str = "gru", kind: str = "binary", n_outputs: int = 2, dim: int = 64,
                 epochs: int = 40, batch_size: int = 32, learning_rate: float = 2e-3, dropout: float = 0.3,
                 patience: int = 8, history: bool = True, seed: int = 0, threads: int = 1, progress: bool = False):
        self.architecture = architecture
        self.kind = kind
        self.n_outputs = n_outputs
        self.dim = dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.dropout = dropout
        self.patience = patience
        self.history = history
        self.seed = seed
        self.threads = threads
        self.progress = progress

    def describe(self) -> str:
        name = {"gru": "GRU", "transformer": "Transformer"}.get(self.architecture, self.architecture)
        return f"{name} over visit sequences of codes (dim {self.dim})"

    # -- data -------------------------------------------------------------------------------------------------
    def _encode(self, X: VisitHistories) -> list[list[list[int]]]:
        histories = X.tokens()
        if not self.history:
            histories = [h[-1:] for h in histories]
        return [[[self.vocabulary_[t] for t in visit if t in self.vocabulary_] or [0] for visit in h[-MAX_VISITS:]]
                for h in histories]

    @staticmethod
    def _batch(encoded: list[list[list[int]]], index: np.ndarray):
        import torch

        visits = [v for i in index for v in encoded[i]]
        lengths = torch.tensor([len(encoded[i]) for i in index], dtype=torch.long)
        offsets = torch.tensor(np.concatenate([[0], np.cumsum([len(v) for v in visits])[:-1]]), dtype=torch.long)
        tokens = torch.tensor([t for v in visits for t in v], dtype=torch.long)
        return tokens, offsets, lengths

    # -- fitting ----------------------------------------------------------------------------------------------
    def fit(self, X, y, X_val=None, y_val=None):
        import torch

        check_kind(self.kind)
        X = check_histories(X, "training data")
        torch.manual_seed(int(self.seed))
        torch.set_num_threads(int(self.threads))
        tokens = sorted({t for h in X.tokens() for v in h for t in v})
        self.vocabulary_ = {t: j + 1 for j, t in enumerate(tokens)}  # 0 pads an empty visit
        self.classes_ = np.arange(int(self.n_outputs))
        y = np.asarray(y, dtype=float if self.kind == "multilabel" else np.int64)
        encoded = self._encode(X)
        val = None
        if X_val is not None and len(X_val):
            val = (self._encode(check_histories(X_val, "validation data")),
                   np.asarray(y_val, dtype=float if self.kind == "multilabel" else np.int64))
        self.network_ = _build(self.architecture, len(self.vocabulary_), int(self.dim), int(self.n_outputs),
                               float(self.dropout))
        optimiser = torch.optim.AdamW(self.network_.parameters(), lr=float(self.learning_rate), weight_decay=1e-3)
        rng = np.random.default_rng(int(self.seed))
        stopper = BestWeights(self.patience)
        from medai.road.common import progress

        for epoch in progress(range(int(self.epochs)), total=int(self.epochs), desc=f"visit {self.architecture}",
                              enabled=bool(self.progress)):
            self.network_.train()
            order = rng.permutation(len(y))
            total = 0.0
            for start in range(0, len(order), int(self.batch_size)):
                index = order[start:start + int(self.batch_size)]
                loss = self._loss(self.network_(*self._batch(encoded, index)), y[index])
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.network_.parameters(), 1.0)
                optimiser.step()
                total += float(loss.detach()) * len(index)
            score = self._score(self._proba(val[0]), val[1]) if val is not None else -total
            if stopper.update(self.network_, score, epoch + 1):
                break
        stopper.restore(self.network_)
        self.best_epoch_ = stopper.epoch
        return self

    def _loss(self, logits, y: np.ndarray):
        import torch
        import torch.nn.functional as F

        if self.kind == "multilabel":
            target = torch.from_numpy(np.nan_to_num(y, nan=0.0)).float()
            known = torch.from_numpy(~np.isnan(y)).float()
            loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            return (loss * known).sum() / known.sum().clamp(min=1.0)
        return F.cross_entropy(logits, torch.from_numpy(y))

    def _score(self, proba: np.ndarray, y: np.ndarray) -> float:
        from medai.evaluation.metrics import auroc

        if self.kind == "multilabel":
            values = [auroc(y[m, j].astype(int), proba[m, j]) for j in range(y.shape[1])
                      for m in [~np.isnan(y[:, j])] if len(np.unique(y[m, j])) == 2]
            return float(np.mean(values)) if values else -float(np.nanmean((proba - np.nan_to_num(y)) ** 2))
        return validation_score(proba, y, binary=self.kind == "binary")

    # -- predicting -------------------------------------------------------------------------------------------
    def _proba(self, encoded) -> np.ndarray:
        import torch

        self.network_.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(encoded), 256):
                index = np.arange(start, min(start + 256, len(encoded)))
                logits = self.network_(*self._batch(encoded, index))
                out.append((torch.sigmoid(logits) if self.kind == "multilabel" else torch.softmax(logits, 1)).numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, int(self.n_outputs)))

    def predict_proba(self, X) -> np.ndarray:
        import torch

        torch.set_num_threads(int(self.threads))
        return self._proba(self._encode(check_histories(X)))

    def predict(self, X) -> np.ndarray:
        p = self.predict_proba(X)
        return (p >= 0.5).astype(int) if self.kind == "multilabel" else p.argmax(axis=1)

    # -- files ------------------------------------------------------------------------------------------------
    def to_files(self) -> dict[str, bytes]:
        from safetensors.torch import save

        state = {k: v.contiguous() for k, v in self.network_.state_dict().items()}
        config: dict[str, Any] = {"params": self.get_params(), "vocabulary": list(self.vocabulary_),
                                  "best_epoch": self.best_epoch_}
        return {WEIGHTS: save(state), CONFIG: json.dumps(config).encode()}

    @classmethod
    def from_files(cls, weights: bytes, config_bytes: bytes) -> VisitNetwork:
        from safetensors.torch import load

        config = json.loads(config_bytes)
        learner = cls(**config["params"])
        learner.vocabulary_ = {t: j + 1 for j, t in enumerate(config["vocabulary"])}
        learner.best_epoch_ = int(config["best_epoch"])
        learner.classes_ = np.arange(int(learner.n_outputs))
        learner.network_ = _build(learner.architecture, len(learner.vocabulary_), int(learner.dim),
                                  int(learner.n_outputs), float(learner.dropout))
        learner.network_.load_state_dict(load(weights))
        learner.network_.eval()
        return learner
