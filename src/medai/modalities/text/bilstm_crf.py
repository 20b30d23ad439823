"""A BiLSTM-CRF tagger with character features (Lample et al. 2016): each word is its embedding (learnt from
the training texts, lower-cased) joined with a character CNN's max-pooled filters and a case feature; a
bidirectional LSTM reads the segment; a CRF layer scores tag transitions (forward algorithm for the loss,
Viterbi for decoding). The epoch with the best validation loss is kept.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from medai.modalities.text.ner import EntityTagger
from medai.road.common import progress

PAD, UNK = 0, 1


def _case(word: str) -> int:
    return 1 if word.isupper() else 2 if word[:1].isupper() else 3 if word.isdigit() else 4 if word.islower() else 5


def build_network(words: int, chars: int, tags: int, word_dim: int, char_dim: int, filters: int, hidden: int,
                  dropout: float):
    import torch
    from torch import nn

    class BiLSTMCRF(nn.Module):
        def __init__(self):
            super().__init__()
            self.word = nn.Embedding(words, word_dim, padding_idx=PAD)
            self.char = nn.Embedding(chars, char_dim, padding_idx=PAD)
            self.case = nn.Embedding(6, 4)
            self.conv = nn.Conv1d(char_dim, filters, kernel_size=3, padding=1)
            self.lstm = nn.LSTM(word_dim + filters + 4, hidden, batch_first=True, bidirectional=True)
            self.drop = nn.Dropout(dropout)
            self.emit = nn.Linear(2 * hidden, tags)
            self.transitions = nn.Parameter(torch.zeros(tags, tags))  # [from, to]
            self.start = nn.Parameter(torch.zeros(tags))
            self.end = nn.Parameter(torch.zeros(tags))

        def emissions(self, w, c, k):  # w, k: (B, T); c: (B, T, L)
            b, t, length = c.shape
            ch = self.char(c.view(b * t, length)).transpose(1, 2)
            ch = torch.relu(self.conv(ch)).max(dim=2).values.view(b, t, -1)
            x = self.drop(torch.cat([self.word(w), ch, self.case(k)], dim=-1))
            return self.emit(self.drop(self.lstm(x)[0]))

        def nll(self, e, tags, mask):  # mean negative log-likelihood of the gold tag paths
            b, t, n = e.shape
            score = self.start[tags[:, 0]] + e[:, 0].gather(1, tags[:, :1]).squeeze(1)
            alpha = self.start + e[:, 0]
            for i in range(1, t):
                m = mask[:, i]
                step = self.transitions[tags[:, i - 1], tags[:, i]] + e[:, i].gather(1, tags[:, i:i + 1]).squeeze(1)
                score = score + step * m
                nxt = torch.logsumexp(alpha.unsqueeze(2) + self.transitions + e[:, i].unsqueeze(1), dim=1)
                alpha = torch.where(m.unsqueeze(1) > 0, nxt, alpha)
            last = tags.gather(1, (mask.sum(1).long() - 1).unsqueeze(1)).squeeze(1)
            score = score + self.end[last]
            return (torch.logsumexp(alpha + self.end, dim=1) - score).mean()

        def decode(self, e, mask) -> list[list[int]]:
            b, t, n = e.shape
            best = self.start + e[:, 0]
            back = []
            for i in range(1, t):
                total = best.unsqueeze(2) + self.transitions + e[:, i].unsqueeze(1)
                value, index = total.max(dim=1)
                m = mask[:, i].unsqueeze(1) > 0
                best = torch.where(m, value, best)
                back.append(torch.where(m, index, torch.arange(n).expand(b, n)))
            best = best + self.end
            paths = []
            lengths = mask.sum(1).long().tolist()
            for row in range(b):
                tag = int(best[row].argmax())
                path = [tag]
                for pointers in reversed(back[:lengths[row] - 1]):
                    tag = int(pointers[row, tag])
                    path.append(tag)
                paths.append(path[::-1])
            return paths

    return BiLSTMCRF()


class BiLSTMCRFTagger(EntityTagger):
    learner_name = "bilstm-crf"

    def __init__(self, word_dim: int = 100, char_dim: int = 30, filters: int = 50, hidden: int = 128,
                 dropout: float = 0.4, epochs: int = 20, batch_size: int = 16, lr: float = 2e-3, max_length: int = 150,
                 min_freq: int = 1, seed: int = 0, progress: bool = False):
        self.word_dim = word_dim
        self.char_dim = char_dim
        self.filters = filters
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.max_length = max_length
        self.min_freq = min_freq
        self.seed = seed
        self.progress = progress

    @property
    def max_segment(self) -> int:  # noqa: D401 - tokens per sequence the network reads
        return self.max_length

    def _tensors(self, sequences, with_tags: bool):
        import torch

        b, t = len(sequences), max(len(s[1]) for s in sequences)
        length = min(20, max(len(tok.text) for s in sequences for tok in s[1]))
        w = torch.zeros((b, t), dtype=torch.long)
        k = torch.zeros((b, t), dtype=torch.long)
        c = torch.zeros((b, t, length), dtype=torch.long)
        y = torch.zeros((b, t), dtype=torch.long)
        mask = torch.zeros((b, t))
        for i, (_, tokens, tags, _) in enumerate(sequences):
            for j, token in enumerate(tokens):
                w[i, j] = self.words_.get(token.text.lower(), UNK)
                k[i, j] = _case(token.text)
                for n, ch in enumerate(token.text[:length]):
                    c[i, j, n] = self.chars_.get(ch, UNK)
                if with_tags:
                    y[i, j] = self.tag_index_[tags[j]]
                mask[i, j] = 1
        return w, c, k, y, mask

    def _fit_sequences(self, sequences, val) -> None:
        import torch

        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        counts = Counter(t.text.lower() for _, tokens, _, _ in sequences for t in tokens)
        self.words_ = {w: i + 2 for i, w in enumerate(w for w, n in counts.most_common() if n >= self.min_freq)}
        chars = Counter(ch for _, tokens, _, _ in sequences for t in tokens for ch in t.text)
        self.chars_ = {ch: i + 2 for i, ch in enumerate(chars)}
        self.tags_ = ["O", *[f"{p}-{label}" for label in self.labels_ for p in ("B", "I")]]
        self.tag_index_ = {t: i for i, t in enumerate(self.tags_)}
        self.network_ = self._network()
        optimizer = torch.optim.Adam(self.network_.parameters(), lr=self.lr)
        sequences = [s for s in sequences if s[1]]
        val = [s for s in (val or []) if s[1]]
        best, best_state, history = np.inf, None, []
        for epoch in progress(range(self.epochs), total=self.epochs, desc="bilstm-crf", enabled=self.progress):
            self.network_.train()
            order = rng.permutation(len(sequences))
            total = 0.0
            for a in range(0, len(order), self.batch_size):
                w, c, k, y, mask = self._tensors([sequences[i] for i in order[a:a + self.batch_size]], True)
                loss = self.network_.nll(self.network_.emissions(w, c, k), y, mask)
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.network_.parameters(), 5.0)
                optimizer.step()
                total += float(loss.detach())
            record = {"epoch": epoch + 1, "train_loss": round(total / max(1, len(order) // self.batch_size), 5)}
            if val:
                self.network_.eval()
                with torch.no_grad():
                    losses = []
                    for a in range(0, len(val), 64):
                        w, c, k, y, mask = self._tensors(val[a:a + 64], True)
                        losses.append(float(self.network_.nll(self.network_.emissions(w, c, k), y, mask)))
                record["val_loss"] = round(float(np.mean(losses)), 5)
                if record["val_loss"] < best:
                    best = record["val_loss"]
                    best_state = {k: v.clone() for k, v in self.network_.state_dict().items()}
            history.append(record)
        if best_state is not None:
            self.network_.load_state_dict(best_state)
        self.network_.eval()
        self.training_ = {"history": history}

    def _network(self):
        return build_network(len(self.words_) + 2, len(self.chars_) + 2, len(self.tags_), self.word_dim,
                             self.char_dim, self.filters, self.hidden, self.dropout)

    def _predict_sequences(self, sequences) -> list[list[str]]:
        import torch

        out: list = [None] * len(sequences)
        order = np.argsort([len(s[1]) for s in sequences])
        with torch.no_grad():
            for a in range(0, len(order), 64):
                idx = order[a:a + 64]
                batch = [sequences[i] for i in idx]
                if not any(s[1] for s in batch):
                    for i in idx:
                        out[i] = []
                    continue
                w, c, k, _, mask = self._tensors(batch, False)
                for i, path in zip(idx, self.network_.decode(self.network_.emissions(w, c, k), mask), strict=True):
                    out[i] = [self.tags_[t] for t in path][:len(sequences[i][1])]
        return out

    def save(self, folder) -> None:
        from medai.modalities.text.persist import save_arrays

        params = {k: v for k, v in self.get_params().items() if k != "progress"}
        save_arrays(folder, {k: v.detach().numpy() for k, v in self.network_.state_dict().items()},
                    {"learner": "bilstm-crf", "params": params, "words": list(self.words_), "chars": list(self.chars_),
                     "labels": self.labels_, "training": getattr(self, "training_", {})})

    @classmethod
    def load(cls, folder, meta):
        import torch

        from medai.modalities.text.persist import load_arrays

        learner = cls(**meta["params"])
        learner.words_ = {w: i + 2 for i, w in enumerate(meta["words"])}
        learner.chars_ = {ch: i + 2 for i, ch in enumerate(meta["chars"])}
        learner.labels_ = meta["labels"]
        learner.tags_ = ["O", *[f"{p}-{label}" for label in learner.labels_ for p in ("B", "I")]]
        learner.tag_index_ = {t: i for i, t in enumerate(learner.tags_)}
        learner.network_ = learner._network()
        learner.network_.load_state_dict({k: torch.from_numpy(v) for k, v in load_arrays(folder).items()})
        learner.network_.eval()
        learner.training_ = meta.get("training", {})
        return learner
