"""How ``auto`` chooses its members: cross-validation inside the training molecules and greedy ensemble selection.

- :func:`inner_folds`: k folds of the *training* molecules only. ``scaffold``: Bemis-Murcko scaffold groups kept
  whole (groups shuffled by the seed, the largest first, each to the fold with the fewest molecules), so every
  validation fold holds scaffolds its training folds never saw - as the outer scaffold split does. ``random``:
  stratified (classification) or plain k-fold.
- :func:`ensemble_selection`: Caruana et al. (2004), "Ensemble selection from libraries of models": start from
  the candidate with the best out-of-fold score, then repeatedly add (with replacement) the candidate whose
  addition to the running average improves the out-of-fold score most; stop when none improves. The weights are
  how often each candidate was added.

- :func:`crossfit_gain`: whether the selected ensemble clearly beats a fixed default. On few folds the
  candidates' out-of-fold scores differ by less than their noise, and an ensemble chosen on the same out-of-fold
  outputs it is scored on looks better than it is. So the selection is cross-fitted - for each inner fold, the
  weights are chosen on the out-of-fold outputs of the *other* folds and scored on this one - and compared fold by
  fold with the default; the chosen ensemble replaces the default only when it wins on every fold.

The test molecules never enter any of these: the learner is only ever given the road's training part.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from medai.errors import MedAIError

GROUPINGS = ("scaffold", "random")
MIN_PER_FOLD = 5  # fewer validation molecules (or members of a class) per fold: no selection, a fixed ensemble


def scaffold_groups(smiles: Sequence[str]) -> np.ndarray:
    """An integer group per molecule: its Bemis-Murcko scaffold (acyclic molecules share one group)."""
    from medai.modalities.molecules.chem import scaffold

    names: dict[str, int] = {}
    return np.array([names.setdefault(scaffold(str(s)), len(names)) for s in smiles], dtype=int)


def grouped_folds(groups: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """Validation positions of ``k`` folds that keep each group whole and hold about equal numbers of molecules."""
    rng = np.random.default_rng(seed)
    labels, sizes = np.unique(groups, return_counts=True)
    order = rng.permutation(len(labels))
    order = order[np.argsort(-sizes[order], kind="stable")]  # largest groups first, ties in seeded order
    fold_of, filled = {}, np.zeros(k, dtype=int)
    for g in order:
        f = int(np.argmin(filled))
        fold_of[labels[g]], filled[f] = f, filled[f] + sizes[g]
    assigned = np.array([fold_of[g] for g in groups])
    return [np.flatnonzero(assigned == f) for f in range(k)]


def inner_folds(smiles: Sequence[str], y: np.ndarray, task: str, grouping: str, seed: int,
                k: int = 3) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """``(train, validation)`` positions of ``k`` folds of the training molecules, or ``None`` when there are
    too few molecules (or, for classification, too few of a class in some fold) to choose on."""
    if grouping not in GROUPINGS:
        raise MedAIError(f"the inner selection split must be one of {', '.join(GROUPINGS)}, got {grouping!r}")
    n = len(smiles)
    if n < k * MIN_PER_FOLD:
        return None
    if grouping == "scaffold":
        groups = scaffold_groups(smiles)
        if len(np.unique(groups)) < k:
            return None
        validation = grouped_folds(groups, k, seed)
    elif task == "regression":
        from sklearn.model_selection import KFold

        validation = [va for _, va in KFold(k, shuffle=True, random_state=seed).split(np.zeros(n))]
    else:
        from sklearn.model_selection import StratifiedKFold

        if np.bincount(np.asarray(y, dtype=int)).min(initial=n) < k:
            return None
        validation = [va for _, va in StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(n), y)]
    folds = [(np.setdiff1d(np.arange(n), va), va) for va in validation]
    for train, va in folds:
        if len(va) < MIN_PER_FOLD:
            return None
        if task != "regression":
            classes = np.unique(np.asarray(y)[va]), np.unique(np.asarray(y)[train])
            if len(classes[0]) < 2 or len(classes[1]) < 2:
                return None
    return folds


def scorer(task: str) -> tuple[str, Callable[[np.ndarray, np.ndarray], float]]:
    """The out-of-fold score the selection maximises: ROC-AUC (binary), negative log loss (multiclass),
    negative RMSE (regression)."""
    if task == "regression":
        return "neg_rmse", lambda y, s: -float(np.sqrt(np.mean((np.asarray(y, float) - s) ** 2)))
    if task == "binary":
        from sklearn.metrics import roc_auc_score

        return "roc_auc", lambda y, s: float(roc_auc_score(y, s[:, 1]))
    from sklearn.metrics import log_loss

    return "neg_log_loss", lambda y, s: -float(log_loss(y, np.clip(s, 1e-7, 1), labels=np.arange(s.shape[1])))


def ensemble_selection(oof: Sequence[np.ndarray], y: np.ndarray, score: Callable[[np.ndarray, np.ndarray], float],
                       max_steps: int = 10) -> np.ndarray:
    """Weights (summing to 1) over the candidates whose out-of-fold outputs are ``oof``."""
    if not len(oof):
        raise MedAIError("ensemble selection needs at least one candidate")
    singles = [score(y, o) for o in oof]
    best = int(np.argmax(singles))
    counts = np.zeros(len(oof), dtype=int)
    counts[best], current, current_score = 1, np.asarray(oof[best], dtype=float), singles[best]
    for step in range(1, max_steps):
        trials = [score(y, (current * step + o) / (step + 1)) for o in oof]
        pick = int(np.argmax(trials))
        if trials[pick] <= current_score + 1e-9:
            break
        counts[pick] += 1
        current, current_score = (current * step + oof[pick]) / (step + 1), trials[pick]
    return counts / counts.sum()


def fold_scores(output: np.ndarray, y: np.ndarray, score: Callable[[np.ndarray, np.ndarray], float],
                folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The score of out-of-fold ``output`` on each inner validation fold."""
    y = np.asarray(y)
    return np.array([score(y[va], np.asarray(output)[va]) for _, va in folds])


def crossfit_gain(oof: Sequence[np.ndarray], default: np.ndarray, y: np.ndarray,
                  score: Callable[[np.ndarray, np.ndarray], float],
                  folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Per inner fold: the score of the ensemble selected (:func:`ensemble_selection`) on the other folds'
    out-of-fold outputs, minus the score of the fixed ``default`` output, both on this fold."""
    y = np.asarray(y)
    gains = []
    for _, va in folds:
        rest = np.setdiff1d(np.arange(len(y)), va)
        weights = ensemble_selection([np.asarray(o)[rest] for o in oof], y[rest], score)
        chosen = np.sum([w * np.asarray(o)[va] for w, o in zip(weights, oof, strict=True) if w > 0], axis=0)
        gains.append(score(y[va], chosen) - score(y[va], np.asarray(default)[va]))
    return np.array(gains)
