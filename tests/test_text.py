"""The text modality on the road: reading (tables, class folders, BRAT, CoNLL, PubTator) with offset checks,
document classification and entity recognition trained, evaluated, predicted and explained from the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_cli import run
from text_fixtures import notes_table, write_brat, write_conll, write_pubtator

from medai.errors import MedAIError
from medai.modalities.text.corpora import read_corpus
from medai.modalities.text.evaluator import span_scores
from medai.modalities.text.tokens import bio_to_spans, repair_bio, tokenize


def test_tokens_keep_offsets_and_bio_round_trips():
    text = "Dr. Ana Lopez vio al paciente el 03/04/2020."
    tokens = tokenize(text)
    assert all(text[t.start:t.end] == t.text for t in tokens)
    spans = [(4, 13, "NAME"), (33, 43, "DATE")]
    from medai.modalities.text.tokens import spans_to_bio

    tags, notes = spans_to_bio(tokens, spans)
    assert notes == [] and bio_to_spans(tokens, tags) == spans
    assert repair_bio(["O", "I-X", "I-X", "I-Y"]) == (["O", "B-X", "I-X", "B-Y"], 2)


def test_segments_do_not_break_after_a_short_capitalised_abbreviation():
    from medai.modalities.text.tokens import segments

    text = "Vive en Avda. Gaspar Aguilar, 90. Ctra. Madrid 12. El paciente vino. UCI. Tras el alta."
    tokens = tokenize(text)
    pieces = [text[tokens[a].start:tokens[b - 1].end] for a, b in segments(tokens, text, 150)]
    assert pieces == ["Vive en Avda. Gaspar Aguilar, 90.", "Ctra. Madrid 12.", "El paciente vino.", "UCI.",
                      "Tras el alta."]


def test_strict_span_scores_equal_seqeval():
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    rng = np.random.default_rng(0)
    gold_tags, pred_tags, gold, pred = [], [], [], []
    for _ in range(40):
        tokens = tokenize(" ".join(f"w{i}" for i in range(12)))
        g = [str(x) for x in rng.choice(["O", "B-A", "I-A", "B-B", "I-B"], size=12)]
        p = [t if rng.random() < 0.7 else str(rng.choice(["O", "B-A", "I-B"])) for t in g]
        g, p = repair_bio(g)[0], repair_bio(p)[0]
        gold_tags.append(g)
        pred_tags.append(p)
        gold.append(bio_to_spans(tokens, g))
        pred.append([{"start": s, "end": e, "label": label} for s, e, label in bio_to_spans(tokens, p)])
    micro = span_scores(gold, pred, n_boot=20)["micro"]
    for ours, theirs in ((micro["precision"], precision_score), (micro["recall"], recall_score),
                         (micro["f1"], f1_score)):
        assert ours["value"] == pytest.approx(theirs(gold_tags, pred_tags, mode="strict", scheme=IOB2), abs=1e-6)
        assert ours["ci_low"] <= ours["value"] <= ours["ci_high"]


def test_brat_offsets_are_checked_and_problems_reported_per_document(tmp_path):
    write_brat(tmp_path, 3)
    (tmp_path / "doc001.ann").write_text("T1\tNOMBRE 11 2000\tAna\nT2\tNOMBRE 0 4\tPaci\nT3\tX 0 2\tPa\n")
    corpus = read_corpus(tmp_path)
    assert corpus.format == "brat" and len(corpus.documents) == 3
    problems = corpus.problems["doc001"]
    assert any("beyond the text" in p for p in problems) and any("overlapping" in p for p in problems)
    assert [s.key() for s in corpus.documents[1].spans] == [(0, 4, "NOMBRE")]
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9 con leche")
    with pytest.raises(MedAIError, match="not UTF-8"):
        read_corpus(tmp_path)


def test_conll_and_pubtator_readers(tmp_path):
    write_conll(tmp_path / "train.tsv", 5)
    corpus = read_corpus(tmp_path / "train.tsv")
    assert corpus.format == "conll" and len(corpus.documents) == 5
    doc = corpus.documents[0]
    assert all(doc.text[s.start:s.end] == s.text for s in doc.spans) and doc.spans[0].label == "Disease"
    (tmp_path / "broken.tsv").write_text("Patients\tO\nwith\tO\nasthma\tI-Disease\n")
    broken = read_corpus(tmp_path / "broken.tsv")
    assert "read as B-" in broken.report()[0] and broken.documents[0].spans[0].text == "asthma"
    write_pubtator(tmp_path / "corpus.txt", 4)
    pub = read_corpus(tmp_path / "corpus.txt")
    assert pub.format == "pubtator" and pub.documents[0].spans[0].concept
    assert pub.problems == {}


def test_document_classifier_walks_the_road(tmp_path, capsys):
    notes_table(tmp_path / "notes.csv")
    code, stdout, err = run(["train", "--data", tmp_path / "notes.csv", "--target", "label", "--positive-label",
                             "cardiac", "--id-column", "note_id", "--out", tmp_path / "m", "--json"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["kind"] == "binary" and metrics["test"]["auroc"]["value"] > 0.9
    assert json.loads((tmp_path / "m/model.json").read_text())["modality"] == "text"
    new = pd.read_csv(tmp_path / "notes.csv").drop(columns="label").head(4)
    new.to_csv(tmp_path / "new.csv", index=False)
    code, stdout, err = run(["predict", tmp_path / "m", tmp_path / "new.csv", "--json"], capsys)
    assert code == 0, err
    items = json.loads(stdout)
    assert [i["note_id"] for i in items] == ["n0", "n1", "n2", "n3"] and "probability" in items[0]
    code, stdout, err = run(["explain", tmp_path / "m", tmp_path / "new.csv", "--json"], capsys)
    assert code == 0, err
    first = json.loads(stdout)[0]
    assert first["highlights"] and "<mark" in first["html"] and first["contributions"][0]["feature"]
    code, stdout, err = run(["evaluate", tmp_path / "m", "--data", tmp_path / "notes.csv", "--json"], capsys)
    assert code == 0 and json.loads(stdout)["test"]["auroc"]["value"] > 0.9, err


def test_a_table_of_one_free_text_column_goes_to_the_text_modality(tmp_path):
    from medai.modalities import modality_for_data
    from medai.modalities.tabular.schema import infer_schema
    from medai.road import TrainOptions

    notes_table(tmp_path / "notes.csv")
    frame = pd.read_csv(tmp_path / "notes.csv").drop(columns="note_id")
    frame.to_csv(tmp_path / "plain.csv", index=False)
    assert modality_for_data(tmp_path / "plain.csv", TrainOptions(target="label")).name == "text"
    frame["age"] = np.arange(len(frame))
    schema = infer_schema(frame, ["label"])
    assert "--modality text" in schema.dropped["note"]


def test_entity_model_from_brat_with_val_data_and_evaluate_contract(tmp_path, capsys):
    write_brat(tmp_path / "train", 60, seed=1)
    write_brat(tmp_path / "dev", 20, seed=2)
    code, stdout, err = run(["train", "--data", tmp_path / "train", "--kind", "entities", "--val-data",
                             tmp_path / "dev", "--seed", "0", "--out", tmp_path / "ner", "--json"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["kind"] == "entities" and metrics["test"]["f1"]["value"] > 0.9
    assert metrics["split"]["sizes"] == {"train": 60, "val": 20, "test": 20}
    code, stdout, err = run(["evaluate", tmp_path / "ner", "--data", tmp_path / "dev", "--json"], capsys)
    assert code == 0, err
    result = json.loads(stdout)
    for name in ("precision", "recall", "f1"):
        assert set(result["test"][name]) == {"value", "ci_low", "ci_high"}
    assert set(result["per_type"]) == {"NOMBRE", "TERRITORIO", "FECHAS"}
    (tmp_path / "new.txt").write_text("Paciente: Elena Navarro.\nVive en Toledo. Ingreso el 02/03/2011 por fiebre.")
    code, stdout, err = run(["predict", tmp_path / "ner", tmp_path / "new.txt", "--json"], capsys)
    assert code == 0, err
    entities = json.loads(stdout)[0]["entities"]
    assert {(e["label"], e["text"]) for e in entities} >= {("NOMBRE", "Elena Navarro"), ("FECHAS", "02/03/2011")}

    from fastapi.testclient import TestClient

    from medai.modalities.text.deid.detect import Detector
    from medai.registry import Registry
    from medai.serving.app import Settings, create_app

    Registry().register(tmp_path / "ner", name="ner")
    app = create_app(Settings(job_worker=False, rate_limit=100_000))
    with TestClient(app, raise_server_exceptions=False) as http:
        _, key = app.state.medai.keys.create("c", "clinician")
        headers = {"Authorization": f"Bearer {key}"}
        text = "Paciente: Luis Ruiz.\nVive en Bilbao. Ingreso el 09/10/2012 por tos persistente."
        answer = http.post("/v1/models/ner/predict?explain=true", json={"records": [{"text": text}]}, headers=headers)
        assert answer.status_code == 200, answer.text
        item = answer.json()["predictions"][0]
        assert ("NOMBRE", "Luis Ruiz") in {(e["label"], e["text"]) for e in item["entities"]}
        assert item["highlights"] and answer.json()["kind"] == "entities"
        bad = http.post("/v1/models/ner/predict", json={"records": [{"note": text}]}, headers=headers)
        assert bad.status_code == 422 and "text" in bad.json()["detail"]
    found = Detector(model=tmp_path / "ner", use_spacy=False).analyze([text])[0]
    assert any(f.source == "model" and f.detail == "NOMBRE" and text[f.start:f.end] == "Luis Ruiz" for f in found)


def test_conll_and_pubtator_train_end_to_end(tmp_path, capsys):
    write_conll(tmp_path / "train.conll", 40)
    code, stdout, err = run(["train", "--data", tmp_path / "train.conll", "--out", tmp_path / "c", "--json"], capsys)
    assert code == 0 and json.loads(stdout)["kind"] == "entities", err
    write_pubtator(tmp_path / "pub.txt", 40)
    code, stdout, err = run(["train", "--data", tmp_path / "pub.txt", "--kind", "entities", "--one-type", "Disease",
                             "--out", tmp_path / "p", "--json"], capsys)
    assert code == 0 and json.loads(stdout)["test"]["f1"]["value"] > 0.8, err


@pytest.mark.parametrize("problem", ["empty", "utf8", "huge", "beyond", "nodata"])
def test_bad_text_input_is_one_clear_error_and_nothing_written(tmp_path, capsys, problem):
    if problem in ("beyond",):
        write_brat(tmp_path / "data", 12)
        for ann in (tmp_path / "data").glob("*.ann"):
            ann.write_text("T1\tNOMBRE 5000 5004\tAna\n")
        args = ["--data", tmp_path / "data", "--kind", "entities"]
        expected = "no document has an entity span"
    elif problem == "nodata":
        args = ["--data", tmp_path / "absent.csv", "--target", "label", "--modality", "text"]
        expected = "does not exist"
    else:
        notes_table(tmp_path / "notes.csv", 30)
        frame = pd.read_csv(tmp_path / "notes.csv")
        if problem == "empty":
            frame.loc[3, "note"] = "   "
            expected = "record 4 has an empty text"
        elif problem == "huge":
            frame.loc[2, "note"] = "word " * 1_200_000
            expected = "more than 5 MB"
        frame.to_csv(tmp_path / "notes.csv", index=False)
        if problem == "utf8":
            (tmp_path / "notes.csv").write_bytes((tmp_path / "notes.csv").read_bytes().replace(b"patient", b"pat\xe9",
                                                                                                1))
            expected = "could not read"
        args = ["--data", tmp_path / "notes.csv", "--target", "label", "--modality", "text"]
    code, _, err = run(["train", *args, "--out", tmp_path / "out"], capsys)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_learner_does_not_fit_kind_and_pretrained_needs_folder(tmp_path, capsys):
    notes_table(tmp_path / "notes.csv", 40)
    base = ["train", "--data", tmp_path / "notes.csv", "--target", "label", "--positive-label", "cardiac",
            "--id-column", "note_id", "--out", tmp_path / "o"]
    code, _, err = run([*base, "--learner", "crf"], capsys)
    assert code == 2 and "does not fit" in err, err
    code, _, err = run([*base, "--learner", "transformer", "--pretrained", tmp_path / "nope"], capsys)
    assert code == 2 and "not a Hugging Face model folder" in err, err
    assert not (tmp_path / "o").exists()


def test_multilabel_notes(tmp_path, capsys):
    notes_table(tmp_path / "notes.csv", 120)
    frame = pd.read_csv(tmp_path / "notes.csv")
    frame["labels"] = [f"{label};urgent" if i % 3 == 0 else label for i, label in enumerate(frame["label"])]
    frame.drop(columns="label").to_csv(tmp_path / "multi.csv", index=False)
    code, stdout, err = run(["train", "--data", tmp_path / "multi.csv", "--target", "labels", "--id-column",
                             "note_id", "--out", tmp_path / "ml", "--json"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["kind"] == "multilabel" and metrics["target"]["classes"] == ["cardiac", "neuro", "urgent"]
    code, stdout, err = run(["predict", tmp_path / "ml", tmp_path / "multi.csv", "--json"], capsys)
    assert code == 0 and "labels" in json.loads(stdout)[0], err
