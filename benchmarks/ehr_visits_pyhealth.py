"""PyHealth 1.1.3's side of the visit-history benchmark; runs in PyHealth's OWN virtual environment
(``python3 -m venv /work/pyhealth-venv && /work/pyhealth-venv/bin/pip install pyhealth==1.1.3 torch==2.13.0
'pandas<3'``), never in MedAI's. It imports nothing from MedAI.

    PYHEALTH_PYTHON benchmarks/ehr_visits_pyhealth.py counts --root DEMO_DIR
        -> JSON: sample counts and label counts of PyHealth's MIMIC-IV task functions on the demo
    PYHEALTH_PYTHON benchmarks/ehr_visits_pyhealth.py train --root DEMO_DIR --task NAME --splits SPLITS.json
        --out SCORES.json [--epochs 30]
        -> JSON: per seed and model (RNN, Transformer), the test visit ids and PyHealth's probabilities

The demo's hosp tables are un-gzipped into a temporary folder (PyHealth 1.1.3 reads ``.csv`` only); no code
mapping (its mapping tables download at run time, which cannot work offline). PyHealth's cache goes to a
temporary HOME.

PyHealth 1.1.3 has no next-visit diagnosis task function; ``next_diagnoses_fn`` below follows its mortality
function (every visit with a next one, codes in all three tables) with the next visit's diagnosis codes as the
labels (visits whose next visit has none are left out) - the definition MedAI's ``mimic4demo-next-diagnoses`` uses.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path


def sample_digest(rows) -> str:
    """sha256 (16 hex digits) of the sorted ``visit_id|patient_id|label`` lines (multilabel: sorted codes,
    ';'-joined): the same samples with the same labels give the same digest (MedAI's test computes it too)."""
    import hashlib

    lines = sorted(f"{v}|{p}|{';'.join(sorted(label)) if isinstance(label, list) else label}" for v, p, label in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


TABLES = ("patients", "admissions", "diagnoses_icd", "procedures_icd", "prescriptions")


def next_diagnoses_fn(patient):
    samples = []
    for i in range(len(patient) - 1):
        visit, next_visit = patient[i], patient[i + 1]
        conditions = visit.get_code_list(table="diagnoses_icd")
        procedures = visit.get_code_list(table="procedures_icd")
        drugs = visit.get_code_list(table="prescriptions")
        if len(conditions) * len(procedures) * len(drugs) == 0:
            continue
        label = next_visit.get_code_list(table="diagnoses_icd")
        if not label:
            continue
        samples.append({"visit_id": visit.visit_id, "patient_id": patient.patient_id, "conditions": [conditions],
                        "procedures": [procedures], "drugs": [drugs], "label": label})
    return samples


def task_functions():
    from functools import partial

    from pyhealth.tasks import (
        length_of_stay_prediction_mimic4_fn,
        mortality_prediction_mimic4_fn,
        readmission_prediction_mimic4_fn,
    )

    readmission_30 = partial(readmission_prediction_mimic4_fn, time_window=30)
    return {"mimic4demo-mortality": (mortality_prediction_mimic4_fn, "binary"),
            "readmission-15d (PyHealth's default time_window)": (readmission_prediction_mimic4_fn, "binary"),
            "mimic4demo-readmission": (readmission_30, "binary"),
            "mimic4demo-los": (length_of_stay_prediction_mimic4_fn, "multiclass"),
            "mimic4demo-next-diagnoses": (next_diagnoses_fn, "multilabel")}


def load_dataset(root: Path, work: Path):
    hosp = work / "hosp"
    hosp.mkdir()
    for name in TABLES:
        with gzip.open(root / "hosp" / f"{name}.csv.gz", "rb") as src, open(hosp / f"{name}.csv", "wb") as dst:
            shutil.copyfileobj(src, dst)
    os.environ["HOME"] = str(work)  # PyHealth caches under ~/.cache/pyhealth
    from pyhealth.datasets import MIMIC4Dataset

    return MIMIC4Dataset(root=str(hosp), tables=["diagnoses_icd", "procedures_icd", "prescriptions"],
                         code_mapping={}, refresh_cache=True)


def counts(dataset) -> dict:
    out = {}
    for name, (fn, kind) in task_functions().items():
        samples = dataset.set_task(fn, task_name=name).samples
        labels = Counter(str(s["label"]) for s in samples) if kind != "multilabel" else \
            Counter(code for s in samples for code in s["label"])
        digest = sample_digest((s["visit_id"], s["patient_id"], s["label"]) for s in samples)
        if kind == "multilabel":
            labels = {"distinct_codes": len(labels), "codes_in_10_or_more": sum(v >= 10 for v in labels.values())}
        out[name] = {"samples": len(samples), "digest": digest,
                     "patients": len({s["patient_id"] for s in samples}), "labels": dict(sorted(labels.items()))}
    return out


def train(dataset, task: str, splits: dict, epochs: int) -> dict:
    import numpy as np
    import torch
    from pyhealth.datasets import get_dataloader
    from pyhealth.models import RNN, Transformer
    from pyhealth.trainer import Trainer
    from torch.utils.data import Subset

    fn, kind = task_functions()[task]
    samples = dataset.set_task(fn, task_name=task)
    position = {s["visit_id"]: i for i, s in enumerate(samples.samples)}
    out = {}
    for seed, parts in splits.items():
        index = {name: [position[v] for v in ids] for name, ids in parts.items()}
        out[seed] = {}
        for model_name, model_class in (("RNN", RNN), ("Transformer", Transformer)):
            torch.manual_seed(int(seed))
            np.random.seed(int(seed))
            loaders = {name: get_dataloader(Subset(samples, idx), batch_size=32, shuffle=name == "train")
                       for name, idx in index.items()}
            model = model_class(dataset=samples, feature_keys=["conditions", "procedures", "drugs"],
                                label_key="label", mode=kind)
            val_labels = {samples.samples[i]["label"] for i in index["val"]} if kind == "binary" else set()
            monitor = ("roc_auc", "max") if len(val_labels) == 2 else ("loss", "min")
            with tempfile.TemporaryDirectory() as logs:
                trainer = Trainer(model=model, metrics=["roc_auc"] if monitor[0] == "roc_auc" else None,
                                  device="cpu", output_path=logs, exp_name="run")
                trainer.train(train_dataloader=loaders["train"], val_dataloader=loaders["val"], epochs=epochs,
                              monitor=monitor[0], monitor_criterion=monitor[1])
                _, y_prob, _ = trainer.inference(loaders["test"])
            columns = [str(t) for t in model.label_tokenizer.convert_indices_to_tokens(
                list(range(model.label_tokenizer.get_vocabulary_size())))]
            out[seed][model_name] = {"ids": parts["test"], "proba": np.asarray(y_prob).tolist(),
                                     "columns": columns if kind != "binary" else ["1"], "monitor": monitor[0]}
            print(f"{task} seed {seed} {model_name} done", file=sys.stderr, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("counts", "train"))
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--task")
    parser.add_argument("--splits", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    import logging

    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory() as work:
        dataset = load_dataset(args.root, Path(work))
        if args.command == "counts":
            result = counts(dataset)
        else:
            result = train(dataset, args.task, json.loads(args.splits.read_text()), args.epochs)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
