"""Molecules: candidates for ``auto`` compared by cross-validation inside the TRAINING molecules only.

For a built-in binary task on the deterministic scaffold split, the training part (never validation or test) is
cut into the same 5 scaffold-grouped folds ``auto`` uses (``selection.inner_folds``, seed 0), and out-of-fold
ROC-AUC (mean over folds, per fold, pooled) is printed for: MinMax-kernel SVMs (scikit-learn SVC on the
precomputed kernel, decision values) on Morgan counts (radius 2 and 3), feature-Morgan (FCFP-like), atom-pair and
topological-torsion counts (2048 folded) at several C; combined kernels; random forests (500 trees) on the
three views of ``auto``'s default and their mean (the default); logistic regression on log counts; and the
default's mean with an SVM (rank-averaged out of fold). Used to decide, without the test molecules, whether the
SVM should join ``auto``'s default (see README, molecules notes).

    python benchmarks/molecules_inner_cv.py bbbp      # or bace; tox21 NR-AhR (one assay, scaffold split)
    python benchmarks/molecules_inner_cv.py bbbp --default-check [--trees 500]

``--default-check`` compares only what ``auto`` would average: the default's three forests (``--trees`` each),
the ``svm`` learner itself (MinMaxSVC, C = 3, Platt probabilities) and the probability mean of the four against
the default, fold by fold.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy import sparse
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score


def load(name: str, label: str | None = None, split: str = "scaffold"):
    from medai.modalities import get_modality
    from medai.road import TrainOptions
    from medai.tasks import get_task
    from medai.tasks.kinds import infer_target

    task, modality = get_task(name), get_modality("molecules")
    options = TrainOptions(seed=0, learner="auto", cv="none", n_boot=10, show_progress=False, extra={"split": split})
    dataset = modality.load_task_data(task, options)
    target = infer_target(dataset.y, dataset.target_column, kind=task.kind, positive_label=task.positive_label)
    train = dataset.official_split["train"]
    X, y = np.asarray(dataset.X)[train], np.asarray(target.encode(dataset.y))[train]
    if label is not None:  # one assay of a multi-task set: its molecules with a known label
        from medai.modalities.molecules.tasks import TOX21_TASKS

        yj = y[:, TOX21_TASKS.index(label)]
        known = ~np.isnan(yj)
        X, y = X[known], yj[known].astype(int)
    return list(X), y


def count_fingerprints(kind: str, smiles, radius: int = 2, n_bits: int = 2048):
    from rdkit.Chem import rdFingerprintGenerator as gen

    from medai.modalities.molecules.chem import mols

    if kind == "morgan":
        generator = gen.GetMorganGenerator(radius=radius, fpSize=n_bits)
    elif kind == "fmorgan":
        generator = gen.GetMorganGenerator(radius=radius, fpSize=n_bits,
                                           atomInvariantsGenerator=gen.GetMorganFeatureAtomInvGen())
    elif kind == "ap":
        generator = gen.GetAtomPairGenerator(fpSize=n_bits)
    else:
        generator = gen.GetTopologicalTorsionGenerator(fpSize=n_bits)
    rows = [generator.GetCountFingerprintAsNumPy(m) for m in mols(smiles)]
    return sparse.csr_matrix(np.array(rows, dtype=np.float32))


def svm_oof(K, y, folds, C):
    from sklearn.svm import SVC

    out = np.zeros(len(y))
    for train, val in folds:
        model = SVC(kernel="precomputed", C=C).fit(K[np.ix_(train, train)], y[train])
        out[val] = model.decision_function(K[np.ix_(val, train)])
    return out


def rf_oof(F, y, folds, seed=0, trees=500, n_jobs=2):
    from medai.modalities.molecules.learners import forest

    out = np.zeros(len(y))
    for train, val in folds:
        out[val] = forest("binary", seed, trees, n_jobs).fit(F[train], y[train]).predict_proba(F[val])[:, 1]
    return out


def views_of(X) -> dict[str, np.ndarray]:
    """The three views of ``auto``'s default forests."""
    from medai.modalities.molecules.features import Featurizer

    return {name: np.nan_to_num(Featurizer(kinds).transform(X))
            for name, kinds in (("rf_morgan", ("morgan",)), ("rf_morgan_desc", ("morgan", "rdkit2d")),
                                ("rf_desc_maccs", ("rdkit2d", "maccs")))}


def lr_oof(F, y, folds, C):
    from sklearn.linear_model import LogisticRegression

    out, G = np.zeros(len(y)), np.log1p(F)
    for train, val in folds:
        out[val] = LogisticRegression(C=C, max_iter=2000).fit(G[train], y[train]).decision_function(G[val])
    return out


def report(name, oof, y, folds, results):
    per = [roc_auc_score(y[val], oof[val]) for _, val in folds]
    results[name] = {"mean_fold": round(float(np.mean(per)), 4), "folds": [round(float(p), 4) for p in per],
                     "pooled": round(float(roc_auc_score(y, oof)), 4)}
    print(f"{name:34s} mean-fold {np.mean(per):.4f} pooled {roc_auc_score(y, oof):.4f} folds {np.round(per, 3)}",
          flush=True)


def default_check(name: str, label: str | None, trees: int) -> None:
    from medai.modalities.molecules.kernels import MinMaxSVC
    from medai.modalities.molecules.selection import inner_folds

    X, y = load(name, label)
    print(name, label or "", len(X), "training molecules,", f"{y.mean():.3f} positive, trees {trees}", flush=True)
    folds = inner_folds(X, y, "binary", "scaffold", 0, 5)
    views = views_of(X)
    results: dict = {}
    svm, morgan = np.zeros(len(y)), views["rf_morgan"]
    for train, val in folds:
        svm[val] = MinMaxSVC(C=3.0).fit(morgan[train], y[train]).predict_proba(morgan[val])[:, 1]
    report("svm_C3.0", svm, y, folds, results)
    oofs = []
    for view, V in views.items():
        oofs.append(rf_oof(V, y, folds, trees=trees, n_jobs=1))
        report(view, oofs[-1], y, folds, results)
    default = np.mean(oofs, axis=0)
    report("DEFAULT(3rf)", default, y, folds, results)
    four = (3 * default + svm) / 4
    report("4way(3rf+svm_C3.0)", four, y, folds, results)
    gains = [roc_auc_score(y[val], four[val]) - roc_auc_score(y[val], default[val]) for _, val in folds]
    print("   gain per fold vs default", np.round(gains, 4), flush=True)
    print(json.dumps(results))


def main() -> None:
    from medai.modalities.molecules.kernels import minmax_kernel
    from medai.modalities.molecules.selection import inner_folds

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("task", help="a built-in binary task: bbbp, bace or tox21")
    parser.add_argument("label", nargs="?", help="one assay of a multi-task set (tox21: e.g. NR-AhR)")
    parser.add_argument("--default-check", action="store_true", help="only the default against the four-way mean")
    parser.add_argument("--trees", type=int, default=500, help="trees per forest for --default-check")
    args = parser.parse_args()
    name, label = args.task, args.label
    if args.default_check:
        default_check(name, label, args.trees)
        return
    X, y = load(name, label)
    print(name, label or "", len(X), "training molecules,", f"{y.mean():.3f} positive", flush=True)
    folds = inner_folds(X, y, "binary", "scaffold", 0, 5)
    results: dict = {}
    fps = {kind: count_fingerprints(kind, X) for kind in ("morgan", "fmorgan", "ap", "tt")}
    fps["morgan3"] = count_fingerprints("morgan", X, radius=3)
    kernels = {kind: minmax_kernel(A.toarray(), A.toarray()) for kind, A in fps.items()}
    oofs = {}
    for kind, K in kernels.items():
        for C in (0.3, 1.0, 3.0, 10.0, 30.0):
            oofs[f"svm_{kind}_C{C}"] = svm_oof(K, y, folds, C)
            report(f"svm_{kind}_C{C}", oofs[f"svm_{kind}_C{C}"], y, folds, results)
    oofs["svm_morgan+ap"] = svm_oof((kernels["morgan"] + kernels["ap"]) / 2, y, folds, 1.0)
    report("svm_morgan+ap_C1", oofs["svm_morgan+ap"], y, folds, results)
    oofs["svm_all4"] = svm_oof(sum(kernels[k] for k in ("morgan", "fmorgan", "ap", "tt")) / 4, y, folds, 1.0)
    report("svm_all4_C1", oofs["svm_all4"], y, folds, results)
    morgan = fps["morgan"].toarray()
    views = views_of(X)
    for view, F in views.items():
        oofs[view] = rf_oof(F, y, folds)
        report(view, oofs[view], y, folds, results)
    default = np.mean([oofs[view] for view in views], axis=0)
    report("DEFAULT(3rf)", default, y, folds, results)
    for C in (0.03, 0.1, 0.3):
        report(f"lr_morgan_C{C}", lr_oof(morgan, y, folds, C), y, folds, results)

    def rank(v):
        return rankdata(v) / len(v)

    for key in ("svm_morgan_C1.0", "svm_morgan_C3.0", "svm_ap_C1.0", "svm_all4"):
        report(f"default+{key}(rank)", (rank(default) + rank(oofs[key])) / 2, y, folds, results)
        report(f"3rf+{key} 4-way(rank)", (3 * rank(default) + rank(oofs[key])) / 4, y, folds, results)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
