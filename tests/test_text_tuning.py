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


def test_propagate_mentions_short_forms_and_repeats():
    from medai.modalities.text.ner import propagate_mentions

    text = "Duchenne muscular dystrophy (DMD) is rare. DMD boys and Duchenne muscular dystrophy carriers; dmd."
    first = (0, len("Duchenne muscular dystrophy"), "Disease")
    spans = propagate_mentions(text, [first])
    found = [(text[a:b], label) for a, b, label in spans]
    assert found == [("Duchenne muscular dystrophy", "Disease"), ("DMD", "Disease"), ("DMD", "Disease"),
                     ("Duchenne muscular dystrophy", "Disease")]  # case-sensitive: "dmd" is left alone
    # a span already found is neither duplicated nor overlapped
    inner = (text.index("muscular", 40), text.index("muscular", 40) + len("muscular dystrophy"), "Other")
    again = propagate_mentions(text, [first, inner])
    assert inner in again and not any(a < inner[1] and b > inner[0] and (a, b, c) != inner for a, b, c in again)
    assert propagate_mentions("", []) == []
    # a short form followed by ";" or "," (a list of synonyms in the brackets) is defined too; "(see ...)" is not
    sjs = "Schwartz-Jampel syndrome (SJS; chondrodystrophic myotonia) is rare. SJS type 2 differs. Gout (see X)."
    found = [(sjs[a:b], label) for a, b, label in propagate_mentions(sjs, [(0, 24, "Disease"), (88, 92, "D")])]
    assert found == [("Schwartz-Jampel syndrome", "Disease"), ("SJS", "Disease"), ("SJS", "Disease"),
                     ("Gout", "D")]
    assert [sjs[a:b] for a, b, _ in propagate_mentions(sjs.replace("(SJS;", "(SJS,"), [(0, 24, "Disease")])] \
        == ["Schwartz-Jampel syndrome", "SJS", "SJS"]
    # lone numbers and lower-case single words do not spread; several words do
    note = "Edad 45 años, mujer. Dosis 45 mg; una mujer de 45 años."
    age, sex = (5, 12, "EDAD"), (14, 19, "SEXO")
    assert note[age[0]:age[1]] == "45 años" and note[sex[0]:sex[1]] == "mujer"
    found = [(note[a:b], label) for a, b, label in propagate_mentions(note, [age, sex])]
    assert found == [("45 años", "EDAD"), ("mujer", "SEXO"), ("45 años", "EDAD")]
    assert propagate_mentions(note, [(5, 7, "N")]) == [(5, 7, "N")]


def test_lexicon_tags_longest_match_and_round_trips():
    from medai.modalities.text.ner import Lexicon
    from medai.modalities.text.tokens import tokenize

    tokens = tokenize("Breast cancer and cancer of the breast; breast cancer.")
    tags = ["B-D", "I-D", "O", "B-D", "O", "O", "O", "O", "O", "O", "O"]
    lexicon = Lexicon.from_sequences([(tokens, tags)])
    assert lexicon.entries == {("breast", "cancer"): "D", ("cancer",): "D"}
    words = ["a", "breast", "cancer", "cancer", "breast"]
    assert lexicon.tags(words) == ["O", "B-D", "I-D", "B-D", "O"]
    assert Lexicon.from_json(lexicon.to_json()).tags(words) == lexicon.tags(words)
    assert Lexicon({}).tags(words) == ["O"] * 5


def test_crf_with_lexicon_and_propagation_learns_saves_and_reloads(tmp_path):
    from medai.modalities.text import TextModality
    from medai.modalities.text.ner import CRFTagger

    names = ["cystic fibrosis", "breast cancer", "asthma", "gout", "psoriasis", "anaemia"]
    texts = [f"The patient had {names[i % 6]} ({'ABC'[i % 3]}X). Tests for {names[(i + 1) % 6]} were done."
             for i in range(30)]
    spans = [[(t.index(names[i % 6]), t.index(names[i % 6]) + len(names[i % 6]), "Disease"),
              (t.rindex(names[(i + 1) % 6]), t.rindex(names[(i + 1) % 6]) + len(names[(i + 1) % 6]), "Disease")]
             for i, t in enumerate(texts)]
    model = CRFTagger(lexicon=True, propagate=True, max_iterations=50).fit(texts, spans)
    assert model.lexicon_.entries[("cystic", "fibrosis")] == "Disease"
    modality = TextModality()
    files = modality.save_learner(model)
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    loaded = modality.load_learner(tmp_path, {})
    new = ["Known gout here. Then psoriasis again, psoriasis."]
    assert loaded.predict(new) == model.predict(new)
    found = {(s["text"], s["label"]) for s in loaded.predict(new)[0]}
    assert ("gout", "Disease") in found and ("psoriasis", "Disease") in found
    assert loaded.lexicon_.entries == model.lexicon_.entries and loaded.propagate


def test_bioes_marks_single_and_last_tokens_and_reads_back_to_the_same_spans():
    from medai.modalities.text.ner import to_bioes
    from medai.modalities.text.tokens import bio_to_spans, spans_to_bio, tokenize

    text = "Billing address: Ana Dias\n    31401 Slowicza 10 Apt. 360"
    tokens = tokenize(text)
    spans = [(17, 25, "PERSON"), (30, 35, "ADDR"), (36, 47, "ADDR"), (48, 56, "ADDR")]
    tags, notes = spans_to_bio(tokens, spans)
    bioes = to_bioes(tags)
    assert not notes
    assert bioes[tags.index("B-PERSON"):tags.index("B-PERSON") + 2] == ["B-PERSON", "E-PERSON"]
    number = [t.text for t in tokens].index("31401")
    assert bioes[number:number + 3] == ["S-ADDR", "B-ADDR", "E-ADDR"]  # adjacent mentions of one type
    assert bio_to_spans(tokens, bioes) == bio_to_spans(tokens, tags) == sorted(spans)


def test_layout_features_say_where_lines_break_and_what_the_line_above_holds():
    from medai.modalities.text.ner import sequence_features
    from medai.modalities.text.tokens import tokenize

    text = "Billing address: Ana Dias\n    31401 Slowicza 10"
    tokens = tokenize(text)
    plain = sequence_features(tokens, text)
    feats = sequence_features(tokens, text, layout=True)
    words = [t.text for t in tokens]
    dias, number = words.index("Dias"), words.index("31401")
    assert "line_end" in feats[dias] and "line_end" not in feats[dias - 1] and "line_end+1" in feats[dias - 1]
    assert "l-1=billing" in feats[number] and "indented" in feats[number] and "indented" not in feats[0]
    assert "line_start-1" in feats[number + 1] and "seg0=billing" in feats[-1]
    assert all(not any(f.startswith(("l-1=", "seg0=")) or f == "line_end" for f in row) for row in plain)


def test_crf_bioes_with_layout_separates_adjacent_mentions_and_reloads(tmp_path):
    from medai.modalities.text import TextModality
    from medai.modalities.text.ner import CRFTagger

    rng = np.random.default_rng(0)
    firsts, lasts = ["Ana", "Luis", "Marta", "Jon", "Eva", "Pablo"], ["Dias", "Ruiz", "Soto", "Vega", "Gil", "Mora"]
    streets = ["Slowicza", "Puruntie", "Allika", "Mellemvej", "Harjukuja", "Pagari"]
    texts, spans = [], []
    for _ in range(40):
        name = f"{rng.choice(firsts)} {rng.choice(lasts)}"
        number, street = str(rng.integers(100, 99999)), f"{rng.choice(streets)} {rng.integers(1, 99)}"
        text = f"Billing address: {name}\n    {number} {street}\n   Town"
        a = text.index(name)
        b = text.index(number, a + len(name))
        c = text.index(street, b)
        texts.append(text)
        spans.append([(a, a + len(name), "PERSON"), (b, b + len(number), "ADDR"), (c, c + len(street), "ADDR")])
    model = CRFTagger(scheme="bioes", max_iterations=60).fit(texts[:30], spans[:30])
    assert model.layout_  # "auto": the training documents have three lines each
    predicted = [[(s["start"], s["end"], s["label"]) for s in doc] for doc in model.predict(texts[30:])]
    assert sum(p == sorted(g) for p, g in zip(predicted, spans[30:], strict=True)) >= 8
    modality = TextModality()
    for name, data in modality.save_learner(model).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    loaded = modality.load_learner(tmp_path, {})
    assert loaded.scheme == "bioes" and loaded.layout_ and loaded.predict(texts[30:]) == model.predict(texts[30:])
    flat = [t.replace("\n", " ") for t in texts[:30]]
    assert not CRFTagger(max_iterations=5).fit(flat, spans[:30]).layout_  # one-paragraph texts: no layout
    with pytest.raises(Exception, match="bio or bioes"):
        CRFTagger(scheme="bilou").fit(texts[:5], spans[:5])
