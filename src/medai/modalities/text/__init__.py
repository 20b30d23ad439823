"""The text modality: clinical notes and abstracts - document classification (TF-IDF, a recurrent network with
attention, frozen MiniLM sentence embeddings, fine-tuned local Hugging Face models), entity recognition (CRF,
BiLSTM-CRF, transformer token classification) into the ``entities`` kind of target, and de-identification.

Torch, transformers, spaCy, Presidio and CRFsuite are imported only inside the methods that need them.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from medai.errors import IntegrityError, MedAIError
from medai.modalities import RECORDS, CliOption, Modality, register_modality
from medai.modalities.text import evaluator as _evaluator  # noqa: F401  (registers the ``entities`` kind)
from medai.modalities.text import reading
from medai.modalities.text.corpora import detect_format

CLASSIFIERS = ("tfidf", "rnn", "minilm", "ensemble", "transformer")
TAGGERS = ("crf", "bilstm-crf", "transformer")
NET_FILES = ("weights.safetensors", "network.json")
_TRAIN_EVAL = ("train", "evaluate", "predict", "explain")


class TextModality(Modality):
    name = "text"
    description = "Clinical text: notes (CSV/Parquet/JSONL text column, class folders) and BRAT/CoNLL/PubTator corpora"
    input_contract = RECORDS
    reads = "free-text notes"
    default_learner = "auto"
    cli_options = (
        CliOption("--text-column", "Text data: the column holding the notes (default: the one free-text column).",
                  commands=_TRAIN_EVAL),
        CliOption("--format", "Text corpora: brat, conll or pubtator (default: detected).", commands=_TRAIN_EVAL),
        CliOption("--one-type", "Text corpora: merge every entity type into this one (e.g. Disease).",
                  commands=_TRAIN_EVAL),
        CliOption("--val-data", "Text data: validation documents (a fixed split instead of a random one)."),
        CliOption("--test-data", "Text data: test documents (with --val-data)."),
        CliOption("--pretrained", "Text: a local Hugging Face model folder to fine-tune (learner transformer)."),
        CliOption("--epochs", "Text networks: training epochs.", int),
        CliOption("--max-length", "Text networks: tokens per chunk (longer documents are chunked).", int),
        CliOption("--crf-clusters", "Text entities, learner crf: k-means sizes of the MiniLM word-cluster features, "
                  "e.g. 64,512; none turns them off.", commands=("train",)),
        CliOption("--crf-case-copies", "Text entities, learner crf: train on a lower-cased copy of every document "
                  "too (names and places written without capitals).", is_flag=True, commands=("train",)),
    )

    # -- reading -----------------------------------------------------------------------------------------
    def claims(self, path: Path, options) -> int:
        extra = options.extra
        if extra.get("format") or extra.get("text_column") or detect_format(path):
            return 2
        if path.is_dir():
            return 2 if reading.class_folders(path) else 0
        from medai.data.tables import read_table, table_format

        if not (path.is_file() and table_format(path)):
            return 0
        try:
            frame = read_table(path)
        except MedAIError:
            return 0
        skip = {*(t.strip() for t in str(options.target or "").split(",")), options.id_column, options.group_column}
        features = [c for c in frame.columns if c not in skip]
        return 2 if len(features) == 1 and reading.looks_like_free_text(frame[features[0]]) else 0

    def read_training_data(self, path: Path, options):
        return reading.read_dataset(Path(path), options)

    def read_inputs(self, path: Path, model, labelled: bool = False, options: dict | None = None):
        return reading.read_inputs(Path(path), model, labelled, options or {})

    def inputs_from_frame(self, frame, model, source: str = "table", labelled: bool = False):
        return reading.inputs_from_frame(frame, model, source, labelled)

    def inputs_from_records(self, records, model) -> list[str]:
        return reading.check_texts([r.get(reading.TEXT_FIELD) for r in records], "records")

    def records_column(self, series) -> str | None:
        return "free text" if reading.looks_like_free_text(series) else None

    # -- learning ----------------------------------------------------------------------------------------
    def learners(self, kind: str) -> tuple[str, ...]:
        return TAGGERS if kind == reading.ENTITY_TARGET else CLASSIFIERS

    def make_learner(self, name: str, target, options, task, dataset):
        entities = target.kind == reading.ENTITY_TARGET
        name = ("crf" if entities else "tfidf") if name in (None, "auto") else name
        known = self.learners(target.kind)
        if name not in known:
            raise MedAIError(f"learner {name!r} does not fit a {target.kind} target; choose one of {', '.join(known)}")
        extra, seed = options.extra, options.seed
        epochs, max_length = extra.get("epochs"), extra.get("max_length")
        pretrained = extra.get("pretrained")
        if name == "transformer" and not pretrained:
            raise MedAIError("learner transformer fine-tunes a local Hugging Face model: give --pretrained FOLDER")
        if pretrained and name != "transformer":
            raise MedAIError("--pretrained goes with --learner transformer")
        if name == "crf":
            from medai.modalities.text.ner import CRFTagger

            settings = {"case_copies": True} if extra.get("crf_case_copies") else {}
            if extra.get("crf_clusters") is not None:
                settings["clusters"] = cluster_sizes(extra["crf_clusters"])
            return CRFTagger(**settings)
        if name == "tfidf":
            from medai.modalities.text.classify import TfidfClassifier

            return TfidfClassifier(seed=seed)
        settings = {k: v for k, v in (("epochs", epochs), ("max_length", max_length)) if v is not None}
        if name == "bilstm-crf":
            from medai.modalities.text.bilstm_crf import BiLSTMCRFTagger

            return BiLSTMCRFTagger(seed=seed, progress=options.show_progress, **settings)
        if name == "rnn":
            from medai.modalities.text.rnn import AttentionRNNClassifier

            return AttentionRNNClassifier(seed=seed, progress=options.show_progress, **settings)
        if name == "ensemble":
            from medai.modalities.text.ensemble import EnsembleClassifier

            return EnsembleClassifier(seed=seed, **({"max_length": max_length} if max_length else {}))
        if name == "minilm":
            from medai.modalities.text.embeddings import SentenceEmbeddingClassifier

            return SentenceEmbeddingClassifier(seed=seed, **({"max_length": max_length} if max_length else {}))
        from medai.modalities.text.hf import TransformerLearner

        folder = Path(pretrained)
        if not folder.is_dir() or not (folder / "config.json").is_file():
            raise MedAIError(f"--pretrained {folder} is not a Hugging Face model folder (no config.json)")
        return TransformerLearner(pretrained=str(folder.resolve()), task="tokens" if entities else "sequence",
                                  seed=seed, progress=options.show_progress, **settings)

    def fit(self, learner, X, y, X_val=None, y_val=None):
        return learner.fit(X, y, X_val, y_val)

    def describe_learner(self, learner, name: str) -> dict[str, Any]:
        params = {k: (v if isinstance(v, int | float | str | bool | type(None)) else str(v))
                  for k, v in learner.get_params().items()}
        training = {k: v for k, v in getattr(learner, "training_", {}).items()}
        return {"name": getattr(learner, "learner_name", None) or _learner_name(learner, name),
                "hyperparameters": params, "training": training}

    def save_learner(self, learner) -> dict[str, bytes]:
        if hasattr(learner, "save"):
            with tempfile.TemporaryDirectory() as tmp:
                learner.save(tmp)
                return {f"text/{p.name}": p.read_bytes() for p in sorted(Path(tmp).iterdir()) if p.is_file()}
        if type(learner).__name__ == "CRFTagger":
            params = learner.get_params()
            lexicon = getattr(learner, "lexicon_", None)
            meta = {"learner": "crf", "params": params, "labels": learner.labels_,
                    "layout": bool(getattr(learner, "layout_", False)),
                    "lexicon": lexicon.to_json() if lexicon is not None else None}
            files = {"text/crf.crfsuite": learner.model_bytes_, "text/crf.json": json.dumps(meta).encode()}
            clusters = getattr(learner, "clusters_", None)
            if clusters is not None:  # the k-means centroids of the embedding-cluster features
                from safetensors.numpy import save

                files["text/crf-clusters.safetensors"] = save(clusters.to_arrays())
            return files
        return super().save_learner(learner)

    def load_learner(self, directory: Path, meta: dict[str, Any]):
        folder = Path(directory) / "text"
        if (folder / "crf.json").is_file():
            from medai.modalities.text.ner import CRFTagger, Lexicon

            saved = json.loads((folder / "crf.json").read_text())
            # models saved before the BIOES scheme and the layout features were added used neither
            learner = CRFTagger(**{"scheme": "bio", "layout": False, **saved["params"]})
            learner.labels_ = saved["labels"]
            learner.layout_ = bool(saved.get("layout", False))
            learner.lexicon_ = Lexicon.from_json(saved["lexicon"]) if saved.get("lexicon") else None
            learner.model_bytes_ = (folder / "crf.crfsuite").read_bytes()
            learner.clusters_ = None
            if learner.clusters:
                from safetensors.numpy import load

                from medai.modalities.text.token_clusters import TokenClusters

                path = folder / "crf-clusters.safetensors"
                if not path.is_file():
                    raise IntegrityError(f"{path} is missing: the CRF uses embedding clusters")
                learner.clusters_ = TokenClusters.from_arrays(load(path.read_bytes()))
            return learner
        if (folder / "learner.json").is_file():
            from medai.modalities.text.persist import load_saved

            return load_saved(folder)
        return super().load_learner(directory, meta)

    # -- explaining --------------------------------------------------------------------------------------
    def explain(self, model, X, top_k: int = 5) -> list[dict[str, Any]]:
        from medai.modalities.text.explain import explain_texts

        return explain_texts(model, list(X), top_k)

    def report_extras(self, model, X_test, y_test) -> dict[str, Any]:
        limitations = ["Text models learn the wording of their training documents; notes written elsewhere "
                       "(another hospital, language or template) may be read less well."]
        if model.kind == reading.ENTITY_TARGET:
            limitations.append("Entity spans are scored strictly: a span one character off counts as a miss and "
                               "a false alarm.")
        return {"limitations": limitations}

    def export(self, model, fmt: str, destination: Path) -> str:
        from medai.modalities.text.onnx_export import export_onnx

        if fmt != "onnx":
            raise MedAIError(f"text models export to onnx, not {fmt!r}")
        return export_onnx(model, Path(destination))

    def register_cli(self, app) -> None:
        from medai.modalities.text.cli import register

        register(app)

    def routers(self) -> list:
        from medai.modalities.text.service import router

        return [router]


def _learner_name(learner, name: str) -> str:
    return {"TfidfClassifier": "tfidf", "CRFTagger": "crf"}.get(type(learner).__name__, name)


register_modality(TextModality())


def cluster_sizes(value: str) -> tuple[int, ...]:
    """``--crf-clusters``: comma-separated k-means sizes of 2 or more, or ``none`` (no cluster features)."""
    text = str(value).strip().lower()
    if text in ("none", "0", ""):
        return ()
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 2:
        raise MedAIError(f"--crf-clusters {value!r}: give k-means sizes of 2 or more, e.g. 64,512, or none")
    return sizes
