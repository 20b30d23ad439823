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

import json
import sys

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


def rf_oof(F, y, folds, seed=0):
    from medai.modalities.molecules.learners import forest

    out = np.zeros(len(y))
    for train, val in folds:
        out[val] = forest("binary", seed, 500, 2).fit(F[train], y[train]).predict_proba(F[val])[:, 1]
    return out


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
    from medai.modalities.molecules.features import Featurizer
    from medai.modalities.molecules.kernels import MinMaxSVC
    from medai.modalities.molecules.learners import forest
    from medai.modalities.molecules.selection import inner_folds

    X, y = load(name, label)
    print(name, label or "", len(X), "training molecules,", f"{y.mean():.3f} positive, trees {trees}", flush=True)
    folds = inner_folds(X, y, "binary", "scaffold", 0, 5)
    F = np.nan_to_num(Featurizer(("morgan", "rdkit2d", "maccs")).transform(X))
    results: dict = {}
    svm = np.zeros(len(y))
    for train, val in folds:
        svm[val] = MinMaxSVC(C=3.0).fit(F[train][:, :2048], y[train]).predict_proba(F[val][:, :2048])[:, 1]
    report("svm_C3.0", svm, y, folds, results)
    views = {"rf_morgan": F[:, :2048], "rf_morgan_desc": F[:, :F.shape[1] - 167], "rf_desc_maccs": F[:, 2048:]}
    oofs = []
    for view, V in views.items():
        out = np.zeros(len(y))
        for train, val in folds:
            out[val] = forest("binary", 0, trees, 1).fit(V[train], y[train]).predict_proba(V[val])[:, 1]
        oofs.append(out)
        report(view, out, y, folds, results)
    default = np.mean(oofs, axis=0)
    report("DEFAULT(3rf)", default, y, folds, results)
    four = (3 * default + svm) / 4
    report("4way(3rf+svm_C3.0)", four, y, folds, results)
    gains = [roc_auc_score(y[val], four[val]) - roc_auc_score(y[val], default[val]) for _, val in folds]
    print("   gain per fold vs default", np.round(gains, 4), flush=True)
    print(json.dumps(results))


def main() -> None:
    from medai.modalities.molecules.features import Featurizer
    from medai.modalities.molecules.kernels import minmax_kernel
    from medai.modalities.molecules.selection import inner_folds

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    name, label = args[0], (args[1] if len(args) > 1 and not args[1].isdigit() else None)
    if "--default-check" in sys.argv:
        trees = int(sys.argv[sys.argv.index("--trees") + 1]) if "--trees" in sys.argv else 500
        default_check(name, label, trees)
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
    descriptors = np.nan_to_num(Featurizer(("rdkit2d",)).transform(X))
    views = {"rf_morgan": morgan, "rf_desc_maccs": np.nan_to_num(Featurizer(("rdkit2d", "maccs")).transform(X)),
             "rf_morgan_desc": np.hstack([morgan, descriptors])}
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
