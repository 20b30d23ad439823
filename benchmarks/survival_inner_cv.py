"""How the survival ``auto`` ensemble was chosen: inner 5-fold cross-validation on the TRAINING parts only.

For each of WHAS500, GBSG2 and veterans and each split seed of ``benchmarks/treatment.py`` (60/20/20, stratified
by event), the training part is cut into 5 stratified folds; every candidate member is fitted on 4 and scores the
5th; each way of combining members is then scored by the mean Harrell C-index over the folds. The test records
are never touched. Combinations:

- ``curve``: minus the restricted mean survival of the members' average curve (the previous ``auto``);
- ``percentile``: the mean of each member's own risk score as a percentile of its scores on the fold's training
  records (the current ``auto``);
- ``z``: the mean of the members' risk scores standardised with their training-record mean and deviation.

    MEDAI_DATA_DIR=../shared/data nice -n 10 .venv/bin/python benchmarks/survival_inner_cv.py [--seeds 0,1,2,3,4]
"""

from __future__ import annotations

import argparse
import os
import warnings

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.simplefilter("ignore")

MEMBERS = ("cox", "cox-ridge", "cox-spline", "rsf", "gbs")
SETS = (("cox", "rsf", "gbs"), ("cox-ridge", "rsf", "gbs"), ("cox-ridge", "rsf"), ("cox-spline", "rsf"),
        ("cox-ridge", "cox-spline", "rsf"), ("cox-ridge", "cox-spline", "rsf", "gbs"),
        ("cox", "cox-ridge", "cox-spline", "rsf", "gbs"))


def folds_of(name: str, seeds: list[int], n_folds: int):
    """(fold training y, fold test y, {member: (train scores, test scores, test curve score)}) per inner fold."""
    from sklearn.model_selection import StratifiedKFold

    from medai.data.splits import train_val_test_split
    from medai.modalities import get_modality
    from medai.modalities.treatment.survival import SurvivalLearner, _curves, preprocessor
    from medai.road import TrainOptions
    from medai.tasks import get_task
    from medai.tasks.kinds import infer_target

    task = get_task(f"{name}-survival")
    dataset = get_modality("treatment").load_task_data(task, TrainOptions(show_progress=False))
    target = infer_target(dataset.y, dataset.target_column, kind="survival", fields=dataset.target_fields)
    y = target.encode(dataset.y)
    for seed in seeds:
        train = train_val_test_split(y[:, 1].astype(int), seed=seed).train
        X, y_train = dataset.X.iloc[train].reset_index(drop=True), y[train]
        inner = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
        for fit_rows, score_rows in inner.split(np.zeros(len(y_train)), y_train[:, 1].astype(int)):
            prep = preprocessor().fit(X.iloc[fit_rows])
            Z_fit = np.asarray(prep.transform(X.iloc[fit_rows]), dtype=float)
            Z_score = np.asarray(prep.transform(X.iloc[score_rows]), dtype=float)
            y_fit = y_train[fit_rows]
            times = np.unique(y_fit[y_fit[:, 1] == 1, 0])
            widths = np.diff(np.concatenate([[0.0], times]))
            learner = SurvivalLearner(seed=seed)
            scores = {}
            for member in MEMBERS:
                model = learner._fit_one(member, Z_fit, y_fit)
                curve = _curves(model, Z_score, times)
                rmst = (np.column_stack([np.ones(len(Z_score)), curve[:, :-1]]) * widths).sum(axis=1)
                scores[member] = (np.asarray(model.predict(Z_fit), float), np.asarray(model.predict(Z_score), float),
                                  -rmst)
            yield y_fit, y_train[score_rows], scores


def combine(scores: dict, members, how: str) -> np.ndarray:
    from medai.modalities.treatment.survival import percentile

    if how == "curve":
        return np.mean([scores[m][2] for m in members], axis=0)
    if how == "percentile":
        return np.mean([percentile(np.sort(scores[m][0]), scores[m][1]) for m in members], axis=0)
    return np.mean([(scores[m][1] - scores[m][0].mean()) / (scores[m][0].std() + 1e-12) for m in members], axis=0)


def main() -> None:
    from medai.evaluation.kinds.survival import harrell

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--data", default="whas500,gbsg2,veterans")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.data.split(",")
    rules = [((m,), "percentile") for m in MEMBERS] + [(s, how) for s in SETS for how in ("curve", "percentile", "z")]
    table = {rule: {} for rule in rules}
    for name in names:
        per_fold = {rule: [] for rule in rules}
        for _, y_score, scores in folds_of(name, seeds, args.folds):
            for rule in rules:
                per_fold[rule].append(harrell(y_score, combine(scores, *rule)))
        for rule in rules:
            table[rule][name] = float(np.mean(per_fold[rule]))
    print(f"inner {args.folds}-fold CV C-index on the training parts, seeds {args.seeds}")
    print(f"{'members [combination]':50s} " + " ".join(f"{n:>9s}" for n in names) + "      mean")
    for (members, how), row in sorted(table.items(), key=lambda kv: -np.mean(list(kv[1].values()))):
        label = "+".join(members) + ("" if len(members) == 1 else f" [{how}]")
        print(f"{label:50s} " + " ".join(f"{row[n]:9.4f}" for n in names) + f" {np.mean(list(row.values())):9.4f}")


if __name__ == "__main__":
    main()
