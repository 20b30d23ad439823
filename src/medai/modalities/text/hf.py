"""Fine-tuning any local Hugging Face model folder (``--pretrained PATH``): sequence classification for documents
(binary, multiclass, multilabel; long documents in overlapping chunks, probabilities averaged over chunks) and
token classification for entities (BIO tags on each word's first sub-word).

Nothing is downloaded: the folder must hold the config, the weights and the tokenizer. The fine-tuned model is
saved with ``save_pretrained`` (safetensors), so loading it runs no code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from medai.errors import MedAIError
from medai.modalities.text.ner import EntityTagger
from medai.road.common import progress


def _load(pretrained: str, head: str, **kwargs):
    try:
        from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer
    except ImportError as exc:
        raise MedAIError(f"the transformer learner needs {exc.name} (pip install 'medai[text]')") from None
    auto = AutoModelForSequenceClassification if head == "sequence" else AutoModelForTokenClassification
    try:
        tokenizer = AutoTokenizer.from_pretrained(pretrained, local_files_only=True)
        model = auto.from_pretrained(pretrained, local_files_only=True, ignore_mismatched_sizes=True, **kwargs)
    except (OSError, ValueError) as exc:
        raise MedAIError(f"cannot load a Hugging Face model from {pretrained}: {str(exc).splitlines()[0][:200]}") \
            from None
    return tokenizer, model


class _Trainer:
    """The loop both heads share: AdamW with linear decay, the best validation epoch kept."""

    def _train(self, model, batches, val_batches, loss_of):
        import torch

        torch.manual_seed(self.seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=0.01)
        steps = max(1, self.epochs * len(batches))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / steps))
        rng = np.random.default_rng(self.seed)
        best, best_state, history = np.inf, None, []
        for epoch in progress(range(self.epochs), total=self.epochs, desc="fine-tune", enabled=self.progress):
            model.train()
            total = 0.0
            for i in rng.permutation(len(batches)):
                loss = loss_of(model, batches[i])
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                total += float(loss.detach())
            record = {"epoch": epoch + 1, "train_loss": round(total / max(len(batches), 1), 5)}
            if val_batches:
                model.eval()
                with torch.no_grad():
                    val = float(np.mean([float(loss_of(model, b)) for b in val_batches]))
                record["val_loss"] = round(val, 5)
                if val < best:
                    best, best_state = val, {k: v.clone() for k, v in model.state_dict().items()}
            history.append(record)
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        self.training_ = {"history": history}


class TransformerClassifier(_Trainer, BaseEstimator, ClassifierMixin):
    learner_name = "transformer"

    def __init__(self, pretrained: str = "", epochs: int = 3, lr: float = 5e-5, batch_size: int = 16,
                 max_length: int = 256, stride: int = 32, seed: int = 0, progress: bool = False):
        self.pretrained = pretrained
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.max_length = max_length
        self.stride = stride
        self.seed = seed
        self.progress = progress

    def _encode(self, texts):
        enc = self.tokenizer_(list(texts), truncation=True, max_length=self.max_length, stride=self.stride,
                              return_overflowing_tokens=True, padding=False)
        return enc["input_ids"], np.asarray(enc["overflow_to_sample_mapping"])

    def _pad(self, ids):
        import torch

        width = max(len(x) for x in ids)
        pad = self.tokenizer_.pad_token_id or 0
        tensor = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, x in enumerate(ids):
            tensor[i, :len(x)], mask[i, :len(x)] = torch.tensor(x), 1
        return tensor, mask

    def _batches(self, texts, y):
        ids, owner = self._encode(texts)
        order = np.argsort([len(x) for x in ids])
        return [(self._pad([ids[i] for i in order[a:a + self.batch_size]]), y[owner[order[a:a + self.batch_size]]])
                for a in range(0, len(order), self.batch_size)]

    def _loss(self, model, batch):
        import torch
        from torch.nn import functional as F

        (ids, mask), y = batch
        logits = model(input_ids=ids, attention_mask=mask).logits
        if self.multilabel_:
            known = torch.tensor(~np.isnan(y), dtype=torch.float32)
            target = torch.tensor(np.nan_to_num(y), dtype=torch.float32)
            return (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * known).sum() / known.sum()
        return F.cross_entropy(logits, torch.tensor(y.astype(int)))

    def fit(self, X, y, X_val=None, y_val=None):
        y = np.asarray(y)
        self.multilabel_ = y.ndim == 2
        self.n_outputs_ = y.shape[1] if self.multilabel_ else int(y.max()) + 1
        self.tokenizer_, self.model_ = _load(self.pretrained, "sequence", num_labels=self.n_outputs_)
        val = self._batches(list(X_val), np.asarray(y_val)) if X_val is not None and len(X_val) else []
        self._train(self.model_, self._batches(list(X), y), val, self._loss)
        return self

    def predict_proba(self, X) -> np.ndarray:
        import torch

        texts = list(X)
        ids, owner = self._encode(texts)
        probs = np.zeros((len(ids), self.n_outputs_))
        with torch.no_grad():
            for a in range(0, len(ids), 32):
                tensor, mask = self._pad(ids[a:a + 32])
                logits = self.model_(input_ids=tensor, attention_mask=mask).logits
                probs[a:a + 32] = (torch.sigmoid(logits) if self.multilabel_ else torch.softmax(logits, 1)).numpy()
        out = np.zeros((len(texts), self.n_outputs_))
        np.add.at(out, owner, probs)
        return out / np.bincount(owner, minlength=len(texts))[:, None]

    def predict(self, X):
        p = self.predict_proba(X)
        return (p >= 0.5).astype(int) if self.multilabel_ else p.argmax(1)

    def save(self, folder) -> None:
        self.model_.save_pretrained(folder, safe_serialization=True)
        self.tokenizer_.save_pretrained(folder)
        params = {k: v for k, v in self.get_params().items() if k != "progress"}
        (Path(folder) / "learner.json").write_text(json.dumps({
            "learner": "transformer", "task": "sequence", "params": params, "multilabel": self.multilabel_,
            "n_outputs": self.n_outputs_, "training": getattr(self, "training_", {})}))


class TransformerTagger(_Trainer, EntityTagger):
    learner_name = "transformer"
    max_segment = 100  # words per segment, so that a segment's sub-words fit in max_length

    def __init__(self, pretrained: str = "", epochs: int = 3, lr: float = 5e-5, batch_size: int = 16,
                 max_length: int = 256, seed: int = 0, progress: bool = False):
        self.pretrained = pretrained
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.max_length = max_length
        self.seed = seed
        self.progress = progress

    def _features(self, sequences, with_tags: bool):
        words = [[t.text for t in tokens] for _, tokens, _, _ in sequences]
        enc = self.tokenizer_(words, is_split_into_words=True, truncation=True, max_length=self.max_length)
        items = []
        for i, (_, _, tags, _) in enumerate(sequences):
            word_ids = enc.word_ids(i)
            first = [j for j, w in enumerate(word_ids) if w is not None and (j == 0 or word_ids[j - 1] != w)]
            labels = None
            if with_tags:
                labels = [-100] * len(word_ids)
                for j in first:
                    labels[j] = self.tag_index_[tags[word_ids[j]]]
            items.append((enc["input_ids"][i], labels, first, [word_ids[j] for j in first]))
        return items

    def _pad(self, items):
        import torch

        width = max(len(x[0]) for x in items)
        ids = torch.full((len(items), width), self.tokenizer_.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        labels = torch.full((len(items), width), -100, dtype=torch.long)
        for i, (x, lab, _, _) in enumerate(items):
            ids[i, :len(x)], mask[i, :len(x)] = torch.tensor(x), 1
            if lab is not None:
                labels[i, :len(lab)] = torch.tensor(lab)
        return ids, mask, labels

    def _loss(self, model, batch):
        ids, mask, labels = batch
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss

    def _fit_sequences(self, sequences, val) -> None:
        self.tags_ = ["O", *[f"{p}-{label}" for label in self.labels_ for p in ("B", "I")]]
        self.tag_index_ = {t: i for i, t in enumerate(self.tags_)}
        self.tokenizer_, self.model_ = _load(self.pretrained, "tokens", num_labels=len(self.tags_),
                                             id2label=dict(enumerate(self.tags_)), label2id=self.tag_index_)
        train = self._features(sequences, True)
        batches = [self._pad(train[a:a + self.batch_size]) for a in range(0, len(train), self.batch_size)]
        val_items = self._features(val, True) if val else []
        val_batches = [self._pad(val_items[a:a + 32]) for a in range(0, len(val_items), 32)]
        self._train(self.model_, batches, val_batches, self._loss)

    def _predict_sequences(self, sequences) -> list[list[str]]:
        import torch

        items = self._features(sequences, False)
        out = []
        with torch.no_grad():
            for a in range(0, len(items), 32):
                chunk = items[a:a + 32]
                ids, mask, _ = self._pad(chunk)
                best = self.model_(input_ids=ids, attention_mask=mask).logits.argmax(-1).numpy()
                for row, (_, _, first, words) in enumerate(chunk):
                    tags = ["O"] * len(sequences[a + row][1])
                    for j, w in zip(first, words, strict=True):
                        tags[w] = self.tags_[int(best[row, j])]
                    out.append(tags)
        return out

    def save(self, folder) -> None:
        self.model_.save_pretrained(folder, safe_serialization=True)
        self.tokenizer_.save_pretrained(folder)
        params = {k: v for k, v in self.get_params().items() if k != "progress"}
        (Path(folder) / "learner.json").write_text(json.dumps({
            "learner": "transformer", "task": "tokens", "params": params, "labels": self.labels_, "tags": self.tags_,
            "training": getattr(self, "training_", {})}))


def TransformerLearner(pretrained: str, task: str, **kwargs):  # noqa: N802 - a factory named like the classes
    """The fine-tuning learner for documents (``task="sequence"``) or entities (``task="tokens"``)."""
    kwargs.pop("stride", None) if task == "tokens" else None
    return (TransformerTagger if task == "tokens" else TransformerClassifier)(pretrained=pretrained, **kwargs)


def load_transformer(folder: Path, meta: dict):
    folder = Path(folder)
    if meta["task"] == "tokens":
        learner = TransformerTagger(**{**meta["params"], "pretrained": str(folder)})
        learner.labels_, learner.tags_ = meta["labels"], meta["tags"]
        learner.tag_index_ = {t: i for i, t in enumerate(learner.tags_)}
        learner.tokenizer_, learner.model_ = _load(str(folder), "tokens")
    else:
        learner = TransformerClassifier(**{**meta["params"], "pretrained": str(folder)})
        learner.multilabel_, learner.n_outputs_ = meta["multilabel"], meta["n_outputs"]
        learner.tokenizer_, learner.model_ = _load(str(folder), "sequence")
    learner.model_.eval()
    learner.training_ = meta.get("training", {})
    return learner
