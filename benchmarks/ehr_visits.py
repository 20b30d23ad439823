"""Visit histories on the MIMIC-IV demo: PyHealth 1.1.3's four MIMIC-IV tasks, ours vs PyHealth's RNN and
Transformer on the IDENTICAL patient-level splits, over many seeds, with a paired comparison.

Protocol, per task and seed: MedAI's road split (``train_val_test_split``: 60/20/20 train/validation/test, every
sample of one patient on one side, stratified by class for binary and multiclass) of the task's samples; every
model trains on the training samples and stops early / keeps its best epoch on the validation samples; the test
AUROC is computed here for all models alike (binary: AUROC; LOS: macro one-vs-rest AUROC over the classes with
both values in the test split; next diagnoses: macro AUROC over the diagnosis codes present in 10 or more
samples' next visits that have both values in the test split). PyHealth runs in its own venv
(``benchmarks/ehr_visits_pyhealth.py``, via subprocess) on the same visit ids per split; its samples hold the
index visit only (``[conditions]`` etc.), so "ours, index visit" rows are the same-input comparison and "ours,
history" rows add the patient's earlier visits (in time order, never a later one).

Paired comparison: per seed, AUROC(ours) - AUROC(PyHealth) for the declared pairs (GRU vs RNN, Transformer vs
Transformer, bag of codes vs RNN); mean difference with a t-interval over seeds and the Wilcoxon signed-rank
p-value. 100 patients (about 20 in each test split) cannot rank models: the intervals say how little is known.

    nice -n 10 python benchmarks/ehr_visits.py [--seeds 20] [--epochs 30] [--tasks ...]
        [--pyhealth-python /work/pyhealth-venv/bin/python | --no-pyhealth] [--readme]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_table import update_readme  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("mimic4demo-mortality", "mimic4demo-readmission", "mimic4demo-los", "mimic4demo-next-diagnoses")
OURS = {  # row name -> (learner, history)
    "ours: bag of codes + LR (history)": ("bag-of-codes", True),
    "ours: bag of codes + LR (index visit)": ("bag-of-codes", False),
    "ours: visit GRU (history)": ("gru", True),
    "ours: visit GRU (index visit)": ("gru", False),
    "ours: visit Transformer (history)": ("transformer", True),
}
PAIRS = [("ours: visit GRU (index visit)", "PyHealth RNN"), ("ours: visit GRU (history)", "PyHealth RNN"),
         ("ours: visit Transformer (history)", "PyHealth Transformer"),
         ("ours: bag of codes + LR (history)", "PyHealth RNN")]


def demo_root() -> Path:
    return Path(os.environ["MEDAI_DATA_DIR"]) / "ehr" / "mimic-iv-clinical-database-demo-2.2"


def load(task_name: str):
    from medai.modalities import get_modality
    from medai.road.options import TrainOptions
    from medai.tasks import get_task

    task = get_task(task_name)
    dataset = get_modality("longitudinal").load_task_data(task, TrainOptions())
    if task.kind == "multilabel":
        y = dataset.y.to_numpy(dtype=float)
        columns = list(dataset.y.columns)
    else:
        y = dataset.y.astype(int).to_numpy()
        columns = dataset.classes
    return task, dataset, y, columns


def splits(task, dataset, y, seeds: int) -> dict[str, dict[str, np.ndarray]]:
    from medai.data.splits import train_val_test_split

    stratify = task.kind != "multilabel"
    out = {}
    for seed in range(seeds):
        s = train_val_test_split(y if stratify else np.zeros(len(y)), dataset.groups, val_size=0.2, test_size=0.2,
                                 seed=seed, stratify=stratify)
        out[str(seed)] = {"train": s.train, "val": s.val, "test": s.test}
    return out


def auroc_of(kind: str, y: np.ndarray, p: np.ndarray) -> float:
    from medai.evaluation.metrics import auroc

    if kind == "binary":
        return float(auroc(y, p[:, 1] if p.ndim == 2 else p))
    if kind == "multiclass":
        y = np.eye(p.shape[1])[y]
    values = [auroc(y[:, j].astype(int), p[:, j]) for j in range(y.shape[1]) if len(np.unique(y[:, j])) == 2]
    return float(np.mean(values)) if values else float("nan")


def run_ours(task, dataset, y, parts, epochs: int) -> dict[str, dict[str, float]]:
    from medai.modalities.longitudinal.visit_learners import BagOfCodes
    from medai.modalities.longitudinal.visit_networks import VisitNetwork

    n_out = y.shape[1] if task.kind == "multilabel" else max(2, len(dataset.classes))
    scores: dict[str, dict[str, float]] = {name: {} for name in OURS}
    for seed, part in parts.items():
        X = {k: dataset.X.take(v) for k, v in part.items()}
        for name, (learner, history) in OURS.items():
            if learner == "bag-of-codes":
                model = BagOfCodes(kind=task.kind, n_outputs=n_out, history=history, seed=int(seed))
            else:
                model = VisitNetwork(learner, kind=task.kind, n_outputs=n_out, history=history, epochs=epochs,
                                     seed=int(seed))
            model.fit(X["train"], y[part["train"]], X["val"], y[part["val"]])
            scores[name][seed] = auroc_of(task.kind, y[part["test"]], model.predict_proba(X["test"]))
        print(f"{task.name} seed {seed}: " + ", ".join(f"{k.split(': ')[1]} {v[seed]:.3f}"
                                                        for k, v in scores.items()), flush=True)
    return scores


def run_pyhealth(python: str, task, dataset, y, columns, parts, epochs: int, work: Path) -> dict[str, dict]:
    ids = dataset.X.ids
    split_file = work / f"{task.name}.splits.json"
    split_file.write_text(json.dumps({seed: {k: [str(ids[i]) for i in v] for k, v in part.items()}
                                      for seed, part in parts.items()}))
    out = work / f"{task.name}.pyhealth.json"
    started = time.time()
    subprocess.run([python, str(ROOT / "benchmarks" / "ehr_visits_pyhealth.py"), "train", "--root", str(demo_root()),
                    "--task", task.name, "--splits", str(split_file), "--out", str(out), "--epochs", str(epochs)],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"{task.name}: PyHealth {len(parts)} seeds in {time.time() - started:.0f} s", flush=True)
    result = json.loads(out.read_text())
    scores: dict[str, dict[str, float]] = {"PyHealth RNN": {}, "PyHealth Transformer": {}}
    for seed, part in parts.items():
        for model, got in result[seed].items():
            assert got["ids"] == [str(ids[i]) for i in part["test"]], "PyHealth scored other samples"
            p = np.asarray(got["proba"], dtype=float)
            if task.kind == "binary":
                p = p.reshape(-1)
            else:
                where = {c: j for j, c in enumerate(got["columns"])}
                p = np.column_stack([p[:, where[c]] if c in where else np.zeros(len(p)) for c in columns])
            scores[f"PyHealth {model}"][seed] = auroc_of(task.kind, y[part["test"]], p)
    return scores


def paired(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    from scipy import stats

    seeds = [s for s in a if s in b and np.isfinite(a[s]) and np.isfinite(b[s])]
    d = np.array([a[s] - b[s] for s in seeds])
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    p = stats.wilcoxon(d).pvalue if len(d) > 1 and np.any(d != 0) else float("nan")
    return {"mean": float(d.mean()), "low": float(d.mean() - half), "high": float(d.mean() + half),
            "p": float(p), "wins": int((d > 0).sum()), "n": len(d)}


def render(results: dict, args) -> str:
    lines = [f"MIMIC-IV demo, PyHealth 1.1.3's MIMIC-IV task definitions (samples identical to PyHealth's): test "
             f"AUROC over {args.seeds} seeds of patient-level 60/20/20 splits (mean +- SD; networks at most "
             f"{args.epochs} epochs, best validation epoch). **100 patients (about 20 per test split) cannot rank "
             "models**: the seed-to-seed spread and the paired intervals below are the honest reading.", "",
             "| model | " + " | ".join(t.removeprefix("mimic4demo-") for t in results) + " |",
             "|---|" + "---|" * len(results)]
    models = list(dict.fromkeys(m for r in results.values() for m in r["scores"]))
    for model in models:
        cells = []
        for r in results.values():
            v = np.array([x for x in r["scores"].get(model, {}).values() if np.isfinite(x)])
            cells.append(f"{v.mean():.3f} +- {v.std(ddof=1):.3f}" if len(v) > 1 else "-")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "Paired differences (ours - PyHealth) per seed: mean [95% t-interval], seeds won, Wilcoxon p.", "",
              "| pair | " + " | ".join(t.removeprefix("mimic4demo-") for t in results) + " |",
              "|---|" + "---|" * len(results)]
    for a, b in PAIRS:
        cells = []
        for r in results.values():
            c = r["paired"].get(f"{a} vs {b}")
            cells.append(f"{c['mean']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}], {c['wins']}/{c['n']}, "
                         f"p={c['p']:.2f}" if c else "-")
        lines.append(f"| {a.removeprefix('ours: ')} vs {b} | " + " | ".join(cells) + " |")
    sizes = ", ".join(f"{t.removeprefix('mimic4demo-')} {r['samples']} samples / {r['patients']} patients"
                      for t, r in results.items())
    times = "; ".join(f"{t.removeprefix('mimic4demo-')}: ours {r['seconds']['ours']:.0f}, PyHealth "
                      f"{r['seconds'].get('pyhealth', 0):.0f}" for t, r in results.items())
    lines += ["", f"Samples: {sizes}. Wall times (s, all seeds, shared machine): {times}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--pyhealth-python",
                        default=os.environ.get("PYHEALTH_PYTHON", "/work/pyhealth-venv/bin/python"))
    parser.add_argument("--no-pyhealth", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ehr_visits")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    parser.add_argument("--combine", type=Path, nargs="+", help="only render: results.json files of earlier runs "
                        "(e.g. one process per task)")
    args = parser.parse_args()
    os.environ.setdefault("MEDAI_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for path in args.combine or []:
        results.update(json.loads(path.read_text()))
    for name in [] if args.combine else args.tasks.split(","):
        task, dataset, y, columns = load(name)
        parts = splits(task, dataset, y, args.seeds)
        started = time.time()
        scores = run_ours(task, dataset, y, parts, args.epochs)
        seconds = {"ours": time.time() - started}
        if not args.no_pyhealth:
            started = time.time()
            scores.update(run_pyhealth(args.pyhealth_python, task, dataset, y, columns, parts, args.epochs, args.out))
            seconds["pyhealth"] = time.time() - started
        pairs = {f"{a} vs {b}": paired(scores[a], scores[b]) for a, b in PAIRS if a in scores and b in scores}
        results[name] = {"scores": scores, "paired": pairs, "seconds": seconds, "samples": len(dataset),
                         "patients": len(set(dataset.groups))}
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
    markdown = render(results, args)
    print(markdown)
    if args.readme:
        print("README updated" if update_readme("ehr-visits", markdown) else "README has no results:ehr-visits markers")


if __name__ == "__main__":
    main()
