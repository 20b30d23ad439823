"""What the text accuracy work relies on: the TF-IDF learner's tf scaling switch, the embedding cache key, and the
benchmark's fast inner-CV features being exactly the features the TF-IDF learner computes on a training fold."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from medai.modalities.text import embeddings
from medai.modalities.text.classify import TfidfClassifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

TEXTS = ["fever fever fever and cough", "chest pain and fever", "cough with chest pain pain",
         "headache and nausea", "nausea nausea after the headache", "cough and headache"] * 4
LABELS = np.array([0, 1, 1, 2, 2, 0] * 4)


def test_sublinear_switch_changes_term_weights_and_is_kept_in_params():
    raw = TfidfClassifier(word_ngrams=1, char_ngrams=0, sublinear=False).fit(TEXTS, LABELS)
    log = TfidfClassifier(word_ngrams=1, char_ngrams=0).fit(TEXTS, LABELS)
    names = list(raw.feature_names())
    fever, cough = names.index("word:fever"), names.index("word:cough")
    r, s = raw.transform(TEXTS[:1]).toarray()[0], log.transform(TEXTS[:1]).toarray()[0]
    # three "fever" and one "cough": raw tf keeps the 3:1 count, sublinear tf damps it to (1 + ln 3):1
    idf = raw.vectorizer_.transformer_list[0][1].idf_
    vocab = raw.vectorizer_.transformer_list[0][1].vocabulary_
    ratio_idf = idf[vocab["fever"]] / idf[vocab["cough"]]
    assert r[fever] / r[cough] == pytest.approx(3 * ratio_idf)
    assert s[fever] / s[cough] == pytest.approx((1 + np.log(3)) * ratio_idf)
    assert raw.get_params()["sublinear"] is False and log.predict(TEXTS).shape == (len(TEXTS),)


def test_embedding_cache_key_lets_a_caller_supply_vectors_without_the_encoder(monkeypatch):
    monkeypatch.setattr(embeddings, "_CACHE", {})
    monkeypatch.setattr(embeddings, "encoder", lambda: pytest.fail("the encoder must not be loaded"))
    vectors = np.arange(2 * 384, dtype=float).reshape(2, 384)
    for text, v in zip(TEXTS[:2], vectors, strict=True):
        embeddings._CACHE[embeddings.cache_key(text, 200)] = v
    assert np.array_equal(embeddings.embed(TEXTS[:2], 200), vectors)
    assert embeddings.cache_key(TEXTS[0], 200) != embeddings.cache_key(TEXTS[0], 100)


@pytest.mark.parametrize(("word", "char", "sublinear"), [(2, 5, True), (1, 0, True), (2, 0, False)])
def test_benchmark_fold_features_equal_the_learners_features(word, char, sublinear):
    from text import FoldTfidf

    # a word of its own in every note, one seen twice in training, "heldout" only outside the training rows
    texts = [f"{t} note{i % 12}" + (" heldout heldout" if i >= 22 else "") for i, t in enumerate(TEXTS)]
    rows = np.arange(22)
    fast = FoldTfidf(texts).features(rows, word, char, sublinear).toarray()
    learner = TfidfClassifier(word_ngrams=word, char_ngrams=char, sublinear=sublinear)
    learner.fit([texts[i] for i in rows], LABELS[rows])
    names = learner.feature_names()
    assert "word:note3" in names and "word:heldout" not in names  # min_df 2 counted on the training rows
    assert fast.shape[1] == len(names) and np.allclose(fast, learner.transform(texts).toarray())
