"""How the survival ``auto`` selection rule was chosen: nested cross-validation on the TRAINING parts only.

For each of WHAS500, GBSG2 and veterans and each split seed of ``benchmarks/treatment.py`` (60/20/20, stratified
by event), the training part is cut into 5 stratified outer folds. On each outer fold's 4/5 every candidate
(cox, cox-ridge, cox-spline, rsf and their percentile ensemble) gets its 5-fold inner cross-validated Harrell
C-index (per inner fold, what a selection rule sees), and is then fitted on the whole 4/5 and scored on the
held-out 1/5 (what the rule's choice achieves). The test records are never touched. Each rule is judged by the
mean held-out C-index of the candidate it picks. Fold scores are cached in ``--cache`` (JSON, default
``benchmarks/.results/survival_rule_cv.json``; a data set already there is not refitted) so rules can be compared
without refitting.

    MEDAI_DATA_DIR=../shared/data nice -n 10 .venv/bin/python benchmarks/survival_rule_cv.py [--seeds 0,1,2,3,4]
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.simplefilter("ignore")

MEMBERS = ("cox", "cox-ridge", "cox-spline", "rsf")
CANDIDATES = (*MEMBERS, "ensemble")


def candidate_scores(X, y, X_score, y_score, seed: int) -> dict[str, float]:
    """Harrell C-index on the scored records of each candidate fitted on ``X, y``."""
    from medai.evaluation.kinds.survival import harrell
    from medai.modalities.treatment.survival import (
        ENSEMBLE_MEMBERS,
        SurvivalLearner,
        ensemble_risk,
        member_references,
        preprocessor,
    )

    prep = preprocessor().fit(X)
    Z, Z_score = (np.asarray(prep.transform(frame), dtype=float) for frame in (X, X_score))
    learner = SurvivalLearner(seed=seed)
    models = {member: learner._fit_one(member, Z, y) for member in MEMBERS}
    out = {m: harrell(y_score, np.asarray(models[m].predict(Z_score), float)) for m in MEMBERS}
    members = [models[m] for m in ENSEMBLE_MEMBERS]
    out["ensemble"] = harrell(y_score, ensemble_risk(members, member_references(members, Z), Z_score))
    return out


def nested(name: str, seeds: list[int], folds: int) -> list[dict]:
    from sklearn.model_selection import StratifiedKFold

    from medai.data.splits import train_val_test_split
    from medai.modalities import get_modality
    from medai.road import TrainOptions
    from medai.tasks import get_task
    from medai.tasks.kinds import infer_target

    task = get_task(f"{name}-survival")
    dataset = get_modality("treatment").load_task_data(task, TrainOptions(show_progress=False))
    target = infer_target(dataset.y, dataset.target_column, kind="survival", fields=dataset.target_fields)
    y = target.encode(dataset.y)
    rows = []
    for seed in seeds:
        train = train_val_test_split(y[:, 1].astype(int), seed=seed).train
        X, y_train = dataset.X.iloc[train].reset_index(drop=True), y[train]
        outer = StratifiedKFold(folds, shuffle=True, random_state=1000 + seed)
        for k, (fit_rows, held_rows) in enumerate(outer.split(np.zeros(len(y_train)), y_train[:, 1].astype(int))):
            X_fit, y_fit = X.iloc[fit_rows].reset_index(drop=True), y_train[fit_rows]
            inner = StratifiedKFold(folds, shuffle=True, random_state=seed)
            inner_scores = [candidate_scores(X_fit.iloc[a], y_fit[a], X_fit.iloc[b], y_fit[b], seed)
                            for a, b in inner.split(np.zeros(len(y_fit)), y_fit[:, 1].astype(int))]
            held = candidate_scores(X_fit, y_fit, X.iloc[held_rows], y_train[held_rows], seed)
            rows.append({"data": name, "seed": seed, "outer": k, "n_fit": len(fit_rows),
                         "inner": {c: [s[c] for s in inner_scores] for c in CANDIDATES}, "held": held})
            print(name, seed, k, {c: round(v, 3) for c, v in held.items()}, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--data", default="whas500,gbsg2,veterans")
    parser.add_argument("--cache", default=str(Path(__file__).parent / ".results" / "survival_rule_cv.json"))
    args = parser.parse_args()
    cache = Path(args.cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(cache.read_text()) if cache.exists() else []
    done = {r["data"] for r in rows}
    for name in args.data.split(","):
        if name not in done:
            rows.extend(nested(name, [int(s) for s in args.seeds.split(",")], args.folds))
            cache.write_text(json.dumps(rows))
    report(rows)


def paired_one_se(fold_scores: dict, order) -> str:
    """A ladder variant: step from the simplest candidate to the next more complex one while the complex one's
    mean fold-by-fold gain is more than one standard error of that gain."""
    current = order[0]
    for name in order[1:]:
        gain = np.asarray(fold_scores[name], float) - np.asarray(fold_scores[current], float)
        gain = gain[np.isfinite(gain)]
        if len(gain) > 1 and gain.mean() > gain.std(ddof=1) / np.sqrt(len(gain)):
            current = name
    return current


def report(rows: list[dict]) -> None:
    from medai.modalities.treatment.survival import one_se_choice

    ladders = {"fixed ensemble": None,
               "argmax of all": ("ensemble", "rsf", "cox-spline", "cox-ridge", "cox"),
               "1-SE cox-ridge < ensemble": ("cox-ridge", "ensemble"),
               "1-SE cox < ensemble": ("cox", "ensemble"),
               "1-SE cox-ridge < spline < rsf < ensemble": ("cox-ridge", "cox-spline", "rsf", "ensemble"),
               "1-SE cox < cox-ridge < spline < rsf < ens.": ("cox", "cox-ridge", "cox-spline", "rsf", "ensemble"),
               "paired 1-SE cox-ridge < ensemble": ("cox-ridge", "ensemble"),
               "paired 1-SE cox < ensemble": ("cox", "ensemble"),
               "paired 1-SE cox-ridge < spline < rsf < ens.": ("cox-ridge", "cox-spline", "rsf", "ensemble")}
    names = sorted({r["data"] for r in rows}, key=lambda n: [r["data"] for r in rows].index(n))
    print(f"nested CV on the training parts: mean held-out C-index of the picked candidate ({len(rows)} outer folds)")
    print(f"{'rule':44s} " + " ".join(f"{n:>9s}" for n in names) + "      mean   picks")
    for label, ladder in ladders.items():
        per, picks = {}, {}
        for name in names:
            scores = []
            for r in (r for r in rows if r["data"] == name):
                if ladder is None:
                    pick = "ensemble"
                elif label.startswith("argmax"):
                    pick = max(ladder, key=lambda c: np.mean(r["inner"][c]))
                elif label.startswith("paired"):
                    pick = paired_one_se(r["inner"], ladder)
                else:
                    pick = one_se_choice({c: r["inner"][c] for c in ladder}, ladder)
                picks[pick] = picks.get(pick, 0) + 1
                scores.append(r["held"][pick])
            per[name] = float(np.mean(scores))
        print(f"{label:44s} " + " ".join(f"{per[n]:9.4f}" for n in names) + f" {np.mean(list(per.values())):9.4f}   "
              + ", ".join(f"{k} {v}" for k, v in sorted(picks.items())))
    for c in CANDIDATES:
        per = {n: float(np.mean([r["held"][c] for r in rows if r["data"] == n])) for n in names}
        print(f"{'always ' + c:44s} " + " ".join(f"{per[n]:9.4f}" for n in names)
              + f" {np.mean(list(per.values())):9.4f}")


if __name__ == "__main__":
    main()
