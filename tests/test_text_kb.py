"""Entity linking, negation and the knowledge base (medai kb build/query) in the project database."""

from __future__ import annotations

import json

from test_cli import run
from text_fixtures import write_pubtator

from medai.modalities.text.linking import ConceptLinker, evaluate_linking, negated


def test_linker_exact_then_nearest_name():
    linker = ConceptLinker(use_embeddings=False).fit(["Cystic fibrosis", "breast cancers", "breast cancer"],
                                                     ["D003550", "D001943", "D001943"])
    assert [c for c, _, _ in linker.predict(["cystic  fibrosis", "Breast cancer", "gout"])] == ["D003550", "D001943",
                                                                                                 None]


def test_negation_marks_mentions_in_scope():
    text = "The patient denies chest pain. She has diabetes."
    flags = negated(text, [(19, 29, "PROBLEM"), (39, 47, "PROBLEM")])
    assert flags == [True, False]


def test_kb_build_and_query_from_a_pubtator_corpus(tmp_path, capsys):
    write_pubtator(tmp_path / "corpus.txt", 6)
    code, stdout, err = run(["kb", "build", tmp_path / "corpus.txt", "--name", "ncbi", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["mentions"] == 12 and summary["linked"] == 12 and summary["negated"] >= 1
    code, stdout, err = run(["kb", "query", "D003550", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(stdout)
    assert rows and all(r["concept"] == "D003550" and r["mention"] == "cystic fibrosis" for r in rows)
    assert any(r["negated"] for r in rows) and any(not r["negated"] for r in rows)  # "No sign of ..." is negated
    code, stdout, err = run(["kb", "query", "asthma", "--json"], capsys)
    assert code == 0 and all("asthma" in r["mention"] for r in json.loads(stdout)), err
    code, _, err = run(["kb", "build", tmp_path / "nothing", "--name", "x"], capsys)
    assert code == 2 and "does not exist" in err


def test_linking_scores_with_gold_mentions(tmp_path):
    write_pubtator(tmp_path / "train.txt", 20, seed=1)
    write_pubtator(tmp_path / "dev.txt", 10, seed=2)
    result = evaluate_linking(tmp_path / "train.txt", tmp_path / "dev.txt")
    assert result["f1"] == 1.0 and result["documents"] == 10
