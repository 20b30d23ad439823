"""The sequences modality: DNA, RNA and protein sequence classification.

Reading: FASTA/FASTQ (Biopython; labels from the headers by a pattern or from a label table keyed by record id)
and tables with a sequence column; the alphabet is detected and stated, IUPAC ambiguity codes kept as symbols or
expanded, soft-masking read as upper case, invalid records reported one by one. Learners: k-mer features (spectrum
or positional, k chosen by inner CV) with a calibrated linear SVM (the seeds' k-mer SVM), logistic regression or
LightGBM; a 1-D CNN on one-hot sequences. Explanations: in-silico mutagenesis (any model), gradients (the CNN),
top k-mers, and a motif logo from the most salient windows.

Biopython and torch are imported inside the methods that need them (``pip install 'medai[genomics]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medai.data.dataset import Dataset, Inputs
from medai.errors import MedAIError
from medai.modalities import RECORDS, CliOption, Modality, register_modality
from medai.modalities.base import json_params

KMER_LEARNERS = ("svm", "logistic", "gbm")
LEARNERS = (*KMER_LEARNERS, "wd-svm", "cnn", "ensemble", "auto")
ALIASES = {"kmer-svm": "svm", "linear-svm": "svm", "lr": "logistic", "logreg": "logistic", "lightgbm": "gbm",
           "boosting": "gbm", "conv": "cnn", "1d-cnn": "cnn",
           "svm+cnn": "ensemble", "wd": "wd-svm", "weighted-degree": "wd-svm", "wdsvm": "wd-svm"}
_TRAIN, _READ = ("train",), ("train", "predict", "evaluate", "explain")


def learner_name(name: str | None) -> str:
    name = ALIASES.get(name or "auto", name or "auto")
    if name not in LEARNERS:
        raise MedAIError(f"unknown learner {name!r} for sequences; choose one of {', '.join(LEARNERS)}")
    return "svm" if name == "auto" else name


def accuracy_extras(y, s, target) -> dict[str, float]:
    """The accuracy at the most probable class, beside the kind's CV metrics (binary targets: the multiclass
    evaluator already reports it)."""
    if target.kind != "binary":
        return {}
    return {"accuracy": float(np.mean((np.asarray(s) >= 0.5) == (np.asarray(y) == 1)))}


def check_options(options) -> None:
    """Misspelt options are refused before any sequence is read."""
    from medai.modalities.sequences.learners import parse_k_range

    learner_name(options.learner)
    extra = options.extra or {}
    choices = {"features": ("auto", "spectrum", "positional"), "ambiguity": ("keep", "expand"),
               "invalid": ("drop", "error"), "alphabet": ("dna", "rna", "protein")}
    for key, allowed in choices.items():
        value = extra.get(key)
        if value is not None and str(value).lower() not in allowed:
            raise MedAIError(f"--{key} must be {' or '.join(a for a in allowed if a != 'auto')} for sequences, "
                             f"got {value!r}")
    if extra.get("k") is not None:
        parse_k_range(extra["k"])
    from medai.modalities.sequences.wdkernel import parse_grid

    for key, low in (("wd_degree", 1), ("wd_shift", 0)):
        if extra.get(key) is not None:
            parse_grid(extra[key], "--" + key.replace("_", "-"), low)
    if extra.get("reverse_complement") and str(extra.get("alphabet") or "dna").lower() != "dna":
        raise MedAIError("--reverse-complement applies to DNA sequences")


class SequencesModality(Modality):
    name = "sequences"
    description = "DNA, RNA or protein sequences (FASTA/FASTQ, or a table with a sequence column): classification"
    input_contract = RECORDS
    reads = "DNA, RNA or protein sequences"
    default_learner = "svm"
    explain_in_tables = False  # a saliency map is a picture: `medai explain` draws it
    cli_options = (
        CliOption("--sequence-column", "Sequences: the table column holding the sequences (default: found by "
                  "name or content).", commands=_READ),
        CliOption("--sequence", "Sequences: a sequence to predict or explain (repeatable) instead of INPUT.",
                  multiple=True, commands=("predict", "explain")),
        CliOption("--labels", "Sequences: a table of labels keyed by FASTA record id (--target names the label "
                  "column, --id-column the id column).", commands=("train", "evaluate")),
        CliOption("--label-pattern", "Sequences: a regular expression whose group captures the label from each FASTA "
                  "header (default: label=X or class=X).", commands=("train", "evaluate")),
        CliOption("--alphabet", "Sequences: dna, rna or protein (default: detected).", commands=_TRAIN),
        CliOption("--ambiguity", "Sequences: keep IUPAC ambiguity codes as symbols (keep, default) or count them as "
                  "shares of the letters they stand for (expand).", commands=_TRAIN),
        CliOption("--invalid", "Sequences: records with characters outside the alphabet are left out and reported "
                  "(drop, default) or refuse the file (error).", commands=_TRAIN),
        CliOption("--k", "Sequences: longest k-mer, or a range for the inner CV to choose from (default 1-6).",
                  commands=_TRAIN),
        CliOption("--features", "Sequences: spectrum or positional k-mers (default: positional for aligned "
                  "sequences of one length).", commands=_TRAIN),
        CliOption("--wd-degree", "Sequences (wd-svm): longest k-mer of the weighted-degree kernel, or a list like "
                  "8,16 for the inner CV to choose from (default 8,16).", commands=_TRAIN),
        CliOption("--wd-shift", "Sequences (wd-svm): largest shift of the weighted-degree kernel, or a list like "
                  "0,1,2 for the inner CV to choose from (default 0,1,2).", commands=_TRAIN),
        CliOption("--epochs", "Sequences (CNN): maximum training epochs.", int, commands=_TRAIN),
        CliOption("--reverse-complement", "Sequences (CNN, DNA): train on reverse complements too and average "
                  "both strands at prediction.", is_flag=True, commands=_TRAIN),
    )

    # -- reading -----------------------------------------------------------------------------------------
    def claims(self, path: Path, options) -> int:
        from medai.modalities.sequences.reading import claims_file

        return claims_file(Path(path), options)

    def read_training_data(self, path: Path, options) -> Dataset:
        from medai.modalities.sequences.reading import read_user_data

        check_options(options)
        return read_user_data(Path(path), options)

    def load_task_data(self, task, options) -> Dataset:
        from medai.data.registry import get_dataset
        from medai.modalities.sequences.reading import dataset_from_frame

        check_options(options)
        spec = get_dataset(task.dataset)
        frame = spec.load()
        if task.options.get("id_column") and not options.id_column:
            from dataclasses import replace

            options = replace(options, id_column=task.options["id_column"])
        return dataset_from_frame(frame, options, spec.name, target=task.target,
                                  sequence_column=task.options.get("sequence_column"), license=spec.license,
                                  citation=spec.citation)

    def read_inputs(self, path: Path, model, labelled: bool = False, options: dict | None = None) -> Inputs:
        from medai.modalities.sequences.reading import read_inputs

        return read_inputs(Path(path), model, labelled, options or {})

    def inputs_from_options(self, model, options: dict) -> Inputs | None:
        if not options.get("sequence"):
            return None
        from medai.modalities.sequences.reading import checked

        values = list(options["sequence"])
        ids = [f"sequence {i + 1}" for i in range(len(values))]
        return Inputs(checked(ids, values, model, "--sequence"), ids, "sequence")

    def inputs_from_frame(self, frame, model, source: str = "table", labelled: bool = False) -> Inputs:
        from medai.modalities.sequences.reading import inputs_from_frame

        return inputs_from_frame(frame, model, source, labelled)

    def inputs_from_records(self, records: list[dict[str, Any]], model) -> np.ndarray:
        from medai.modalities.sequences.reading import SEQUENCE_FIELD, checked

        values = [record.get(SEQUENCE_FIELD) for record in records]
        return checked([f"{i}" for i in range(len(values))], values, model, "records")

    def records_column(self, series) -> str | None:
        from medai.modalities.sequences.reading import looks_like_sequences

        return "DNA/RNA/protein sequences" if series.dtype == object and looks_like_sequences(series) else None

    # -- learning ----------------------------------------------------------------------------------------
    def learners(self, kind: str) -> tuple[str, ...]:
        return LEARNERS if kind in ("binary", "multiclass") else ()

    def make_learner(self, name: str, target, options, task, dataset):
        name = learner_name(name)
        if target.kind not in ("binary", "multiclass"):
            raise MedAIError(f"sequence models classify (binary or multiclass targets); {target.column!r} is "
                             f"{target.kind}")
        extra, settings = options.extra, dataset.options
        if name == "ensemble":
            from medai.modalities.sequences.ensemble import SequenceEnsemble

            return SequenceEnsemble(kmer=self.make_learner("svm", target, options, task, dataset),
                                    cnn=self.make_learner("cnn", target, options, task, dataset))
        if name == "wd-svm":
            from medai.modalities.sequences.wdkernel import DEGREES, SHIFTS, WDKernelSVM

            lengths = settings["lengths"]
            if lengths["min"] != lengths["max"]:
                raise MedAIError("the weighted-degree kernel (learner wd-svm) compares aligned sequences of one "
                                 f"length; these vary ({lengths['min']}-{lengths['max']}): use learner svm "
                                 "(spectrum k-mers) or cnn")
            return WDKernelSVM(degree=str(extra.get("wd_degree") or DEGREES),
                               shift=str(extra.get("wd_shift") or SHIFTS),
                               alphabet=settings["alphabet"], ambiguity=settings["ambiguity"], seed=options.seed)
        if name == "cnn":
            from medai.modalities.sequences.cnn import SequenceCNN

            rc = bool(extra.get("reverse_complement"))
            if rc and settings["alphabet"] != "dna":
                raise MedAIError("--reverse-complement applies to DNA sequences")
            lengths = settings["lengths"]
            return SequenceCNN(alphabet=settings["alphabet"], ambiguity=settings["ambiguity"],
                               length=int(lengths["max"] if lengths["max"] == lengths["min"] else lengths["p95"]),
                               epochs=int(extra.get("epochs") or 30), reverse_complement=rc, seed=options.seed,
                               progress=options.show_progress)
        from medai.modalities.sequences.learners import KmerClassifier, parse_k_range

        features = (extra.get("features") or "auto").lower()
        if features not in ("auto", "spectrum", "positional"):
            raise MedAIError(f"--features must be spectrum or positional for sequences, got {features!r}")
        if features == "positional" and settings["lengths"]["min"] != settings["lengths"]["max"]:
            raise MedAIError("positional k-mers need aligned sequences of one length; these vary "
                             f"({settings['lengths']['min']}-{settings['lengths']['max']}): use --features spectrum")
        k_range = str(extra.get("k") or "1-6")
        ks = parse_k_range(k_range)
        return KmerClassifier(model=name, features=features, k=ks[0] if len(ks) == 1 else None, k_range=k_range,
                              alphabet=settings["alphabet"], ambiguity=settings["ambiguity"], seed=options.seed)

    def describe_learner(self, learner, name: str) -> dict[str, Any]:
        params = json_params(learner.get_params())
        training = {}
        member = getattr(learner, "kmer_member", learner)
        if hasattr(learner, "kmer_member"):
            training = {"k": int(member.k_), "features": member.features_, "C": float(member.C_),
                        "cnn_best_epoch": int(learner.cnn_.best_epoch_)}
        elif hasattr(learner, "degree_"):
            training = {"degree": int(learner.degree_), "shift": int(learner.shift_), "C": float(learner.C_),
                        "inner_cv": learner.search_}
        elif hasattr(learner, "k_"):
            training = {"k": int(learner.k_), "features": learner.features_, "C": float(learner.C_),
                        "inner_cv": learner.search_}
        elif hasattr(learner, "best_epoch_"):
            training = {"best_epoch": int(learner.best_epoch_), "length": int(learner.length)}
        return {"name": learner.describe(), "hyperparameters": params, "training": training}

    def save_learner(self, learner) -> dict[str, bytes]:
        if hasattr(learner, "to_files"):
            return learner.to_files()
        return super().save_learner(learner)

    def load_learner(self, directory: Path, meta: dict[str, Any]):
        from medai.modalities.sequences.cnn import CONFIG, WEIGHTS
        from medai.modalities.sequences.ensemble import MARKER, SequenceEnsemble

        if (directory / MARKER).is_file():
            return SequenceEnsemble.from_files(directory, self.trusted_modules())

        if (directory / WEIGHTS).is_file():
            from medai.modalities.sequences.cnn import SequenceCNN

            return SequenceCNN.from_files((directory / WEIGHTS).read_bytes(), (directory / CONFIG).read_bytes())
        return super().load_learner(directory, meta)

    def trusted_modules(self) -> tuple[str, ...]:
        return ("medai.modalities.sequences.",)

    def cv_fold_extras(self, y, s, target) -> dict[str, float]:
        return accuracy_extras(y, s, target)

    # -- explaining ----------------------------------------------------------------------------------------
    def explain(self, model, X, top_k: int = 5) -> list[dict[str, Any]]:
        from medai.modalities.sequences.report import explain_sequences

        return explain_sequences(model, X, top_k)

    def report_extras(self, model, X_test, y_test) -> dict[str, Any]:
        from medai.modalities.sequences.report import report_extras

        return report_extras(model, X_test, y_test)


register_modality(SequencesModality())

from medai.modalities.sequences import tasks  # noqa: E402,F401  (registers the built-in tasks)
from medai.modalities.sequences.omics import OmicsModality, register_tasks  # noqa: E402

register_modality(OmicsModality())
register_tasks()
