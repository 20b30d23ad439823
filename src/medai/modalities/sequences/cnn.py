"""A 1-D convolutional network on one-hot sequences (PyTorch), as a scikit-learn style classifier.

Input: one channel per symbol of the alphabet (ambiguity codes: their own channel, or, with ``expand``, an equal
share of the letters they stand for), padded with zeros to ``length`` or cut to its centre ``length`` positions.
Network: a convolution of width 9, two dilated residual convolutions (dilation 2 and 4), local max pooling
(at most 16 pooled positions, so the position of a motif still counts), dropout and two linear layers. Trained
with AdamW and early stopping on validation loss (the road's validation records, or 10% of the training records
held out when none are given). For DNA, reverse-complement augmentation trains on both strands and averages
both at prediction.

Weights are stored as safetensors with a JSON config (no pickle).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from medai.modalities.sequences.alphabet import Alphabet

WEIGHTS, CONFIG = "cnn.safetensors", "cnn.json"
COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A", "R": "Y", "Y": "R", "S": "S", "W": "W", "K": "M", "M": "K",
              "B": "V", "V": "B", "D": "H", "H": "D", "N": "N"}


def one_hot(sequences, alphabet: Alphabet, length: int) -> np.ndarray:
    """``(n, symbols, length)`` float32: padded with zeros at the end, or cut to the centre ``length``."""
    symbols = alphabet.symbols
    index = {s: i for i, s in enumerate(symbols)}
    shares = {code: [index[b] for b in bases] for code, bases in alphabet.codes.items()}
    out = np.zeros((len(sequences), len(symbols), length), dtype=np.float32)
    for n, sequence in enumerate(sequences):
        if len(sequence) > length:
            start = (len(sequence) - length) // 2
            sequence = sequence[start:start + length]
        for i, character in enumerate(sequence):
            if character in index:
                out[n, index[character], i] = 1.0
            elif character in shares:
                out[n, shares[character], i] = 1.0 / len(shares[character])
    return out


def reverse_complement(sequence: str) -> str:
    return "".join(COMPLEMENT.get(c, c) for c in reversed(sequence))


def pool_size(length: int) -> int:
    """Local max-pooling width: keeps at most 16 pooled positions, so where a motif lies still counts."""
    return max(2, -(-length // 16))


def _network(channels_in: int, n_classes: int, width: int, dropout: float, length: int):
    import torch
    from torch import nn

    class Residual(nn.Module):
        def __init__(self, dilation: int):
            super().__init__()
            self.conv = nn.Conv1d(width, width, 5, padding=2 * dilation, dilation=dilation)
            self.norm = nn.BatchNorm1d(width)

        def forward(self, x):
            return x + torch.relu(self.norm(self.conv(x)))

    pool = pool_size(length)
    pooled = -(-length // pool)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv1d(channels_in, width, 9, padding=4), nn.BatchNorm1d(width), nn.ReLU())
            self.blocks = nn.Sequential(Residual(2), Residual(4))
            self.pool = nn.MaxPool1d(pool, ceil_mode=True)
            self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(width * pooled, 64), nn.ReLU(),
                                      nn.Dropout(dropout), nn.Linear(64, n_classes))

        def forward(self, x):
            return self.head(self.pool(self.blocks(self.stem(x))))

    return Net()


class SequenceCNN(ClassifierMixin, BaseEstimator):
    watches_validation = True

    def __init__(self, alphabet: str = "dna", ambiguity: str = "keep", length: int = 100, width: int = 64,
                 dropout: float = 0.3, epochs: int = 30, batch_size: int = 64, lr: float = 2e-3,
                 weight_decay: float = 1e-3, patience: int = 6, reverse_complement: bool = False, seed: int = 0,
                 progress: bool = False):
        self.alphabet = alphabet
        self.ambiguity = ambiguity
        self.length = length
        self.width = width
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.reverse_complement = reverse_complement
        self.seed = seed
        self.progress = progress

    @property
    def alphabet_(self) -> Alphabet:
        return Alphabet(self.alphabet, self.ambiguity)

    def _encode(self, X, both_strands: bool = False) -> np.ndarray:
        X = list(X)
        if both_strands:
            X = X + [reverse_complement(s) for s in X]
        return one_hot(X, self.alphabet_, int(self.length))

    def _build(self, n_classes: int):
        self.n_classes_ = n_classes
        self.net_ = _network(len(self.alphabet_.symbols), n_classes, int(self.width), float(self.dropout),
                             int(self.length))
        return self.net_

    def fit(self, X, y, X_val=None, y_val=None):
        import torch

        X, y = list(X), np.asarray(y).astype(int)
        torch.manual_seed(int(self.seed))
        rng = np.random.default_rng(int(self.seed))
        self.classes_ = np.unique(y)
        if X_val is None or len(X_val) == 0:
            from sklearn.model_selection import train_test_split

            stratify = y if np.bincount(y)[self.classes_].min() >= 2 else None
            train, val = train_test_split(np.arange(len(y)), test_size=0.1, random_state=int(self.seed),
                                          stratify=stratify)
            X_val, y_val = [X[i] for i in val], y[val]
            X, y = [X[i] for i in train], y[train]
        rc = bool(self.reverse_complement)
        inputs = torch.from_numpy(self._encode(X, rc))
        targets = torch.from_numpy(np.concatenate([y, y]) if rc else y)
        val_inputs = torch.from_numpy(self._encode(X_val))
        val_targets = torch.from_numpy(np.asarray(y_val).astype(int))
        net = self._build(int(max(y.max(), np.max(y_val))) + 1)
        optimiser = torch.optim.AdamW(net.parameters(), lr=float(self.lr), weight_decay=float(self.weight_decay))
        loss_fn = torch.nn.CrossEntropyLoss()
        best, best_state, waited, self.history_ = np.inf, None, 0, []
        for epoch in range(int(self.epochs)):
            net.train()
            order = torch.from_numpy(rng.permutation(len(inputs)))
            total = 0.0
            for start in range(0, len(order), int(self.batch_size)):
                batch = order[start:start + int(self.batch_size)]
                if len(batch) < 2:
                    continue
                optimiser.zero_grad()
                loss = loss_fn(net(inputs[batch]), targets[batch])
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
            net.eval()
            with torch.no_grad():
                val_loss = float(loss_fn(net(val_inputs), val_targets))
            self.history_.append({"epoch": epoch + 1, "train_loss": total / len(inputs), "val_loss": val_loss})
            if self.progress and sys.stderr.isatty():
                print(f"epoch {epoch + 1}: train loss {total / len(inputs):.4f}, val loss {val_loss:.4f}",
                      file=sys.stderr)
            if val_loss < best - 1e-4:
                best, waited, self.best_epoch_ = val_loss, 0, epoch + 1
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                waited += 1
                if waited >= int(self.patience):
                    break
        net.load_state_dict(best_state)
        net.eval()
        return self

    def _logits(self, encoded: np.ndarray) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for start in range(0, len(encoded), 512):
                out.append(self.net_(torch.from_numpy(encoded[start:start + 512])).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.n_classes_))

    def predict_proba(self, X) -> np.ndarray:
        from scipy.special import softmax

        X = list(X)
        proba = softmax(self._logits(self._encode(X)), axis=1)
        if self.reverse_complement:
            proba = (proba + softmax(self._logits(self._encode([reverse_complement(s) for s in X])), axis=1)) / 2
        return proba

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)

    def gradient_saliency(self, sequence: str, output: int) -> np.ndarray:
        """Gradient x input of the class probability, summed over the symbol channels, per position of the
        sequence (positions cut away by the centre crop get 0)."""
        import torch

        x = torch.from_numpy(self._encode([sequence])).requires_grad_(True)
        proba = torch.softmax(self.net_(x), dim=1)[0, output]
        proba.backward()
        values = (x.grad * x).sum(dim=1)[0].detach().numpy().astype(float)
        out = np.zeros(len(sequence))
        length = int(self.length)
        if len(sequence) > length:
            start = (len(sequence) - length) // 2
            out[start:start + length] = values
        else:
            out[:] = values[:len(sequence)]
        return out

    def describe(self) -> str:
        strands = ", both strands" if self.reverse_complement else ""
        return f"1-D CNN on one-hot {self.alphabet.upper()} (length {self.length}{strands})"

    # -- storage ---------------------------------------------------------------------------------------------
    def to_files(self) -> dict[str, bytes]:
        from safetensors.torch import save

        config: dict[str, Any] = {"params": self.get_params(), "n_classes": int(self.n_classes_),
                                  "classes": [int(c) for c in self.classes_], "best_epoch": int(self.best_epoch_)}
        config["params"]["progress"] = False
        return {WEIGHTS: save({k: v.contiguous() for k, v in self.net_.state_dict().items()}),
                CONFIG: json.dumps(config, sort_keys=True).encode()}

    @classmethod
    def from_files(cls, weights: bytes, config: bytes) -> SequenceCNN:
        from safetensors.torch import load

        settings = json.loads(config)
        learner = cls(**settings["params"])
        learner.classes_ = np.asarray(settings["classes"])
        learner.best_epoch_ = settings["best_epoch"]
        learner._build(int(settings["n_classes"]))
        learner.net_.load_state_dict(load(weights))
        learner.net_.eval()
        return learner
