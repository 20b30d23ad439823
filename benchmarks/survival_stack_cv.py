"""Ways to combine the survival ``auto`` members, judged by nested cross-validation on the TRAINING parts only.

For WHAS500, GBSG2, veterans and Haberman and each split seed of ``benchmarks/treatment.py`` (60/20/20, stratified
by event), the training part is cut into 5 stratified outer folds. On each outer fold's 4/5 ("fit part") every
member is fitted on each of 5 inner folds and scores the inner held-out records (out-of-fold scores: what a
combination rule may look at), then fitted on the whole fit part and scores the outer held-out 1/5 (what the rule's
weights achieve). Each member's score is kept as a percentile of its own scores on the records it was fitted on
(as ``ensemble_risk`` does) and as a z-score. The test records are never touched. Every rule turns the fit part's
out-of-fold scores into weights over members; it is judged by the mean Harrell C-index on the outer held-out folds.

Haberman (306 patients, 1958-70) has no follow-up times, only whether the patient died within 5 years: here a death
is an event at 2.5 years and a survivor is censored at 5 years, so its C-index is the AUROC of death within 5 years
(a survival table whose times carry no information: a stress test for the combination rule, not a survival task).

Member scores are cached in ``--cache`` (JSON, default ``benchmarks/.results/survival_stack_cv.json``; a data set
already there is not refitted), so rules are compared without refitting.

    MEDAI_DATA_DIR=../shared/data OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/survival_stack_cv.py \
        --data veterans,haberman --seeds 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.simplefilter("ignore")

MEMBERS = ("cox", "cox-ridge", "cox-spline", "rsf", "gbs")
# Extra members tried here only (``--extra``; cached in their own files and merged by record): boosting regularised
# for small data - additive stumps with subsampling, and componentwise (linear) boosting.
EXTRA = ("gbs-stump", "cgbs")


def extra_estimator(name: str, seed: int):
    if name == "gbs-stump":
        from sksurv.ensemble import GradientBoostingSurvivalAnalysis

        return GradientBoostingSurvivalAnalysis(n_estimators=100, learning_rate=0.1, max_depth=1, subsample=0.5,
                                                min_samples_leaf=10, random_state=seed)
    from sksurv.ensemble import ComponentwiseGradientBoostingSurvivalAnalysis

    return ComponentwiseGradientBoostingSurvivalAnalysis(n_estimators=100, learning_rate=0.1, subsample=0.5,
                                                         random_state=seed)


def load(name: str):
    """(X DataFrame, y (n, 2) time/event) of a data set."""
    import pandas as pd

    if name == "haberman":
        path = Path(os.environ.get("MEDAI_DATA_DIR", "../shared/data")) / "tabular/haberman_survival/haberman.csv"
        frame = pd.read_csv(path, header=None, names=["age", "op_year", "nodes", "status"])
        died = (frame.pop("status") == 2).to_numpy()
        return frame.astype(float), np.column_stack([np.where(died, 2.5, 5.0), died.astype(float)])
    from medai.modalities import get_modality
    from medai.road import TrainOptions
    from medai.tasks import get_task
    from medai.tasks.kinds import infer_target

    task = get_task(f"{name}-survival")
    dataset = get_modality("treatment").load_task_data(task, TrainOptions(show_progress=False))
    target = infer_target(dataset.y, dataset.target_column, kind="survival", fields=dataset.target_fields)
    return dataset.X, target.encode(dataset.y)


def member_scores(X_fit, y_fit, X_score, seed: int, timing: dict, members=MEMBERS) -> dict[str, tuple[list, list]]:
    """Per member fitted on ``X_fit``: (percentile, z-score) of its risk on ``X_score`` against its risks on the
    fit records."""
    from medai.modalities.treatment.survival import SurvivalLearner, percentile, preprocessor

    prep = preprocessor().fit(X_fit)
    Z, Z_score = (np.asarray(prep.transform(frame), dtype=float) for frame in (X_fit, X_score))
    learner = SurvivalLearner(seed=seed)
    out = {}
    for member in members:
        start = time.perf_counter()
        if member in EXTRA:
            from medai.modalities.treatment.survival import structured

            model = extra_estimator(member, seed).fit(Z, structured(y_fit))
        else:
            model = learner._fit_one(member, Z, y_fit)
        reference = np.asarray(model.predict(Z), float)
        risk = np.asarray(model.predict(Z_score), float)
        timing[member] = timing.get(member, 0.0) + time.perf_counter() - start
        z = (risk - reference.mean()) / (reference.std() + 1e-12)
        out[member] = (percentile(np.sort(reference), risk).round(6).tolist(), z.round(6).tolist())
    return out


def nested(name: str, seeds: list[int], folds: int, members=MEMBERS) -> list[dict]:
    from sklearn.model_selection import StratifiedKFold

    from medai.data.splits import train_val_test_split

    X_all, y = load(name)
    rows, timing = [], {}
    for seed in seeds:
        train = train_val_test_split(y[:, 1].astype(int), seed=seed).train
        X, y_train = X_all.iloc[train].reset_index(drop=True), y[train]
        outer = StratifiedKFold(folds, shuffle=True, random_state=1000 + seed)
        for k, (fit_rows, held_rows) in enumerate(outer.split(np.zeros(len(y_train)), y_train[:, 1].astype(int))):
            X_fit, y_fit = X.iloc[fit_rows].reset_index(drop=True), y_train[fit_rows]
            inner = StratifiedKFold(folds, shuffle=True, random_state=seed)
            oof = []
            for a, b in inner.split(np.zeros(len(y_fit)), y_fit[:, 1].astype(int)):
                oof.append({"y": y_fit[b].tolist(),
                            "scores": member_scores(X_fit.iloc[a], y_fit[a], X_fit.iloc[b], seed, timing,
                                                          members)})
            held = member_scores(X_fit, y_fit, X.iloc[held_rows], seed, timing, members)
            rows.append({"data": name, "seed": seed, "outer": k, "n_fit": len(fit_rows), "oof": oof,
                         "held": {"y": y_train[held_rows].tolist(), "scores": held}})
            print(name, seed, k, {m: round(t, 1) for m, t in timing.items()}, flush=True)
    return rows


# -- rules: out-of-fold scores of the fit part -> weights over members ------------------------------------------
def combined(fold: dict, weights: dict[str, float], scale: int = 0) -> np.ndarray:
    return sum(w * np.asarray(fold["scores"][m][scale]) for m, w in weights.items() if w > 0)


def oof_c(row: dict, weights: dict[str, float], scale: int = 0) -> float:
    """Mean over the inner folds of the Harrell C-index of the weighted score."""
    from medai.evaluation.kinds.survival import harrell

    return float(np.nanmean([harrell(np.asarray(f["y"]), combined(f, weights, scale)) for f in row["oof"]]))


def equal(members):
    return lambda row: {m: 1 / len(members) for m in members}


def c_weighted(members, power: float = 1.0):
    """Weights proportional to (out-of-fold C-index - 1/2)^power, members at or below 1/2 get none."""
    def rule(row):
        gain = {m: max(oof_c(row, {m: 1.0}) - 0.5, 0.0) ** power for m in members}
        total = sum(gain.values())
        return {m: g / total for m, g in gain.items()} if total > 0 else equal(members)(row)
    return rule


def simplex(members, step: float = 0.1, shrink: float = 0.0):
    """Stacking: the weights on a grid of the simplex with the best out-of-fold C-index (ties: nearest to equal
    weights), shrunk toward equal weights by ``shrink``."""
    n = round(1 / step)
    grid = [c for c in itertools.product(range(n + 1), repeat=len(members)) if sum(c) == n]

    def rule(row):
        best = max(grid, key=lambda c: (round(oof_c(row, dict(zip(members, np.array(c) / n, strict=True))), 9),
                                        -np.var(c)))
        return {m: (1 - shrink) * b / n + shrink / len(members) for m, b in zip(members, best, strict=True)}
    return rule


def greedy(members, steps: int = 10):
    """Caruana's ensemble selection with replacement: add the member that most raises the out-of-fold C-index."""
    def rule(row):
        counts = dict.fromkeys(members, 0)
        for _ in range(steps):
            pick = max(members, key=lambda m: round(oof_c(row, {k: v + (k == m) for k, v in counts.items()}), 9))
            counts[pick] += 1
        return {m: c / steps for m, c in counts.items()}
    return rule


def argmax(members):
    def rule(row):
        best = max(members, key=lambda m: oof_c(row, {m: 1.0}))
        return {best: 1.0}
    return rule


BASE = ("cox-ridge", "cox-spline", "rsf")
RULES = {
    "fixed ensemble ridge+spline+rsf (current)": (equal(BASE), 0),
    "same, z-score average": (equal(BASE), 1),
    "fixed ridge+rsf": (equal(("cox-ridge", "rsf")), 0),
    "fixed cox+ridge+spline+rsf": (equal(("cox", *BASE)), 0),
    "fixed ridge+spline+rsf+gbs": (equal((*BASE, "gbs")), 0),
    "C-weighted (C-1/2) ridge+spline+rsf": (c_weighted(BASE), 0),
    "C-weighted (C-1/2)^2 ridge+spline+rsf": (c_weighted(BASE, 2.0), 0),
    "C-weighted (C-1/2) all five": (c_weighted(MEMBERS), 0),
    "stacking simplex ridge+spline+rsf": (simplex(BASE), 0),
    "stacking simplex, half shrunk to equal": (simplex(BASE, shrink=0.5), 0),
    "stacking simplex all five (step 0.2)": (simplex(MEMBERS, step=0.2), 0),
    "greedy selection ridge+spline+rsf": (greedy(BASE), 0),
    "greedy selection all five": (greedy(MEMBERS), 0),
    "argmax of ridge/spline/rsf": (argmax(BASE), 0),
}
EXTRA_RULES = {
    "fixed ridge+spline+rsf+gbs-stump": (equal((*BASE, "gbs-stump")), 0),
    "fixed ridge+spline+rsf+cgbs": (equal((*BASE, "cgbs")), 0),
    "fixed ridge+rsf+gbs-stump": (equal(("cox-ridge", "rsf", "gbs-stump")), 0),
    "C-weighted (C-1/2) ridge+spline+rsf+gbs-stump": (c_weighted((*BASE, "gbs-stump")), 0),
}


def report(rows: list[dict], extra: bool = False) -> None:
    from medai.evaluation.kinds.survival import harrell

    names = list(dict.fromkeys(r["data"] for r in rows))
    rules = dict(RULES) | (EXTRA_RULES if extra else {})
    shown = MEMBERS + (EXTRA if extra else ())
    rules.update({f"always {m}": (equal((m,)), 0) for m in shown})
    print(f"nested CV on the training parts: mean held-out C-index ({len(rows)} outer folds: "
          + ", ".join(f"{n} {sum(r['data'] == n for r in rows)}" for n in names) + ")")
    print(f"{'rule':44s} " + " ".join(f"{n:>9s}" for n in names)
          + f"  mean({len(names)})  vs current (SE)   mean weights (last data set)")
    current = None
    for label, (rule, scale) in rules.items():
        per, last, folds = {}, None, {}
        for name in names:
            scores, weights = [], []
            for r in (r for r in rows if r["data"] == name):
                w = rule(r)
                weights.append([w.get(m, 0.0) for m in shown])
                scores.append(harrell(np.asarray(r["held"]["y"]), combined(r["held"], w, scale)))
            per[name], last, folds[name] = float(np.mean(scores)), np.mean(weights, axis=0), np.asarray(scores)
        current = current or folds  # the first rule is the current one: paired differences per outer fold
        gain = np.mean([np.mean(folds[n] - current[n]) for n in names])
        se = np.sqrt(sum(np.var(folds[n] - current[n], ddof=1) / len(folds[n]) for n in names)) / len(names)
        print(f"{label:44s} " + " ".join(f"{per[n]:9.4f}" for n in names) + f" {np.mean(list(per.values())):8.4f}"
              + f"  {gain:+.4f} ({se:.4f})   "
              + " ".join(f"{m}={v:.2f}" for m, v in zip(shown, last, strict=True) if v > 0), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--data", default="veterans,haberman,whas500,gbsg2")
    parser.add_argument("--cache", default=str(Path(__file__).parent / ".results" / "survival_stack_cv.json"))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--extra", action="store_true", help="also fit and report the EXTRA members")
    args = parser.parse_args()
    names = args.data.split(",")
    rows = []
    for name in names:
        parts = [("", MEMBERS)] + ([("_extra", EXTRA)] if args.extra else [])
        loaded = []
        for tag, members in parts:
            cache = Path(args.cache).with_name(Path(args.cache).stem + f"_{name}{tag}.json")
            if cache.exists():
                loaded.append(json.loads(cache.read_text()))
            elif not args.report_only:
                cache.parent.mkdir(parents=True, exist_ok=True)
                new = nested(name, [int(s) for s in args.seeds.split(",")], args.folds, members)
                tmp = cache.with_suffix(".tmp")
                tmp.write_text(json.dumps(new))
                tmp.replace(cache)
                loaded.append(new)
        if loaded:
            for extra in loaded[1:]:  # same seeds, outer folds and inner folds: merge the members' scores
                for row, more in zip(loaded[0], extra, strict=True):
                    for fold, fold_more in zip(row["oof"], more["oof"], strict=True):
                        fold["scores"].update(fold_more["scores"])
                    row["held"]["scores"].update(more["held"]["scores"])
            rows.extend(loaded[0])
    report(rows, extra=args.extra and len(loaded) > 1)


if __name__ == "__main__":
    main()
