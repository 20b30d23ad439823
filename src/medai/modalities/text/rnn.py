"""A bidirectional GRU with additive attention over word embeddings learnt from the training texts (the seeds'
recurrent network), trained with AdamW; the epoch with the best validation loss is kept.

Documents longer than ``max_length`` words are cut into chunks; a document's probabilities are the mean of its
chunks' probabilities. Multilabel targets use one sigmoid per label (unknown labels are masked out of the loss).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from medai.road.common import progress

WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)
PAD, UNK = 0, 1


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def build_network(vocab_size: int, embed_dim: int, hidden: int, outputs: int, dropout: float):
    import torch
    from torch import nn

    class AttentionGRU(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
            self.gru = nn.GRU(embed_dim, hidden, batch_first=True, bidirectional=True)
            self.score = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
            self.drop = nn.Dropout(dropout)
            self.out = nn.Linear(2 * hidden, outputs)

        def forward(self, ids):  # ids: (batch, length) int64, 0 = padding
            mask = ids != PAD
            states, _ = self.gru(self.drop(self.embed(ids)))
            scores = self.score(states).squeeze(-1).masked_fill(~mask, -1e4)
            weights = torch.softmax(scores, dim=1)
            pooled = (weights.unsqueeze(-1) * states).sum(dim=1)
            return self.out(self.drop(pooled))

    return AttentionGRU()


class AttentionRNNClassifier(BaseEstimator, ClassifierMixin):
    learner_name = "rnn"

    def __init__(self, embed_dim: int = 128, hidden: int = 96, dropout: float = 0.3, epochs: int = 12,
                 batch_size: int = 32, lr: float = 2e-3, max_length: int = 400, max_vocab: int = 40_000,
                 min_freq: int = 2, seed: int = 0, progress: bool = False):
        self.embed_dim = embed_dim
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.max_length = max_length
        self.max_vocab = max_vocab
        self.min_freq = min_freq
        self.seed = seed
        self.progress = progress

    # -- encoding ----------------------------------------------------------------------------------------
    def _chunks(self, texts) -> tuple[list[list[int]], np.ndarray]:
        ids, owner = [], []
        for i, text in enumerate(texts):
            tokens = [self.vocab_.get(w, UNK) for w in words(text)] or [UNK]
            for a in range(0, len(tokens), self.max_length):
                ids.append(tokens[a:a + self.max_length])
                owner.append(i)
        return ids, np.asarray(owner)

    @staticmethod
    def _batch(seqs):
        import torch

        width = max(len(s) for s in seqs)
        out = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            out[i, :len(s)] = torch.tensor(s)
        return out

    # -- fitting -----------------------------------------------------------------------------------------
    def fit(self, X, y, X_val=None, y_val=None):
        import torch

        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        texts = list(X)
        counts = Counter(w for t in texts for w in words(t))
        kept = [w for w, c in counts.most_common(self.max_vocab) if c >= self.min_freq]
        self.vocab_ = {w: i + 2 for i, w in enumerate(kept)}
        y = np.asarray(y)
        self.multilabel_ = y.ndim == 2
        self.n_outputs_ = y.shape[1] if self.multilabel_ else int(y.max()) + 1
        self.network_ = build_network(len(self.vocab_) + 2, self.embed_dim, self.hidden, self.n_outputs_,
                                      self.dropout)
        optimizer = torch.optim.AdamW(self.network_.parameters(), lr=self.lr, weight_decay=1e-4)
        seqs, owner = self._chunks(texts)
        targets = y[owner]
        val = None
        if X_val is not None and y_val is not None and len(X_val):
            val = (list(X_val), np.asarray(y_val))
        best, best_state, history = np.inf, None, []
        for epoch in progress(range(self.epochs), total=self.epochs, desc="rnn", enabled=self.progress):
            self.network_.train()
            order = rng.permutation(len(seqs))
            total = 0.0
            for a in range(0, len(order), self.batch_size):
                idx = order[a:a + self.batch_size]
                logits = self.network_(self._batch([seqs[i] for i in idx]))
                loss = self._loss(logits, targets[idx])
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.network_.parameters(), 5.0)
                optimizer.step()
                total += float(loss.detach()) * len(idx)
            record = {"epoch": epoch + 1, "train_loss": round(total / len(order), 5)}
            if val is not None:
                vseqs, vowner = self._chunks(val[0])
                with torch.no_grad():
                    self.network_.eval()
                    vloss = float(self._loss(self._logits(vseqs), val[1][vowner]))
                record["val_loss"] = round(vloss, 5)
                if vloss < best:
                    best = vloss
                    best_state = {k: v.clone() for k, v in self.network_.state_dict().items()}
            history.append(record)
        if best_state is not None:
            self.network_.load_state_dict(best_state)
        self.network_.eval()
        self.training_ = {"history": history, "best_val_loss": None if best == np.inf else round(best, 5)}
        return self

    def _loss(self, logits, y):
        import torch
        from torch.nn import functional as F

        if self.multilabel_:
            target = torch.tensor(np.nan_to_num(y, nan=0.0), dtype=torch.float32)
            known = torch.tensor(~np.isnan(y), dtype=torch.float32)
            return (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * known).sum() / known.sum()
        return F.cross_entropy(logits, torch.tensor(y.astype(int)))

    def _logits(self, seqs):
        import torch

        outs = []
        with torch.no_grad():
            order = np.argsort([len(s) for s in seqs])
            for a in range(0, len(order), 64):
                idx = order[a:a + 64]
                outs.append((idx, self.network_(self._batch([seqs[i] for i in idx]))))
        logits = torch.zeros((len(seqs), self.n_outputs_))
        for idx, out in outs:
            logits[torch.as_tensor(idx)] = out
        return logits

    def predict_proba(self, X) -> np.ndarray:
        import torch

        self.network_.eval()
        texts = list(X)
        seqs, owner = self._chunks(texts)
        logits = self._logits(seqs)
        chunk_p = (torch.sigmoid(logits) if self.multilabel_ else torch.softmax(logits, dim=1)).numpy()
        out = np.zeros((len(texts), self.n_outputs_))
        np.add.at(out, owner, chunk_p)
        return out / np.bincount(owner, minlength=len(texts))[:, None]

    def predict(self, X):
        p = self.predict_proba(X)
        return (p >= 0.5).astype(int) if self.multilabel_ else p.argmax(axis=1)

    # -- saving ------------------------------------------------------------------------------------------
    def save(self, folder) -> None:
        from medai.modalities.text.persist import save_arrays

        arrays = {k: v.detach().numpy() for k, v in self.network_.state_dict().items()}
        save_arrays(folder, arrays, {"learner": "rnn", "params": {k: v for k, v in self.get_params().items()},
                                     "vocab": list(self.vocab_), "multilabel": self.multilabel_,
                                     "n_outputs": self.n_outputs_, "training": self.training_})

    @classmethod
    def load(cls, folder, meta):
        import torch

        from medai.modalities.text.persist import load_arrays

        learner = cls(**{**meta["params"], "progress": False})
        learner.vocab_ = {w: i + 2 for i, w in enumerate(meta["vocab"])}
        learner.multilabel_, learner.n_outputs_ = meta["multilabel"], meta["n_outputs"]
        learner.training_ = meta.get("training", {})
        learner.network_ = build_network(len(learner.vocab_) + 2, learner.embed_dim, learner.hidden,
                                         learner.n_outputs_, learner.dropout)
        learner.network_.load_state_dict({k: torch.from_numpy(v) for k, v in load_arrays(folder).items()})
        learner.network_.eval()
        return learner
