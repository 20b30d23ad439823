"""Split conformal prediction for every kind of target, on crepes (Boström's conformal library).

Fitted on a calibration set the model never trained on (the road's validation split, or the part of it held out from
early stopping when the learner watches the validation records), it turns scores into
prediction *sets* (classifiers) or *intervals* (regression) that contain the true value with probability at
least the nominal coverage, for exchangeable data:

- classification: non-conformity ``1 - p(true class)`` (the LAC/hinge score); ``standard`` is marginal
  coverage, ``class-conditional`` (Mondrian by class: one quantile per class, from that class's calibration
  records) holds the coverage within every class - what a rare positive class needs, and what stays valid when
  the class balance of new records differs from the calibration records' (label shift). ``auto`` (the default)
  is class-conditional when every class has enough calibration records (``ceil(coverage / (1 - coverage))``,
  9 at 90%), else standard. A class is in a record's set when its conformal p-value exceeds ``1 - coverage``.
- multilabel: each label is a binary problem of its own (label-wise coverage).
- regression: non-conformity ``|y - y_hat|``, or ``|y - y_hat| / sigma`` (``normalized``) with ``sigma`` a
  difficulty estimate learned from the training residuals; ``auto`` keeps the normalized intervals only when
  they are narrower on held-out halves of the calibration set.

What is stored is the calibration scores (numbers, no records), so a loaded model rebuilds the calibrator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medai.errors import MedAIError
from medai.evaluation.bootstrap import bootstrap_metrics

MODES = ("standard", "class-conditional", "normalized", "auto", "none")


def check_coverage(coverage: float) -> float:
    if not isinstance(coverage, int | float) or not 0 < float(coverage) < 1:
        raise MedAIError(f"--coverage must lie strictly between 0 and 1 (e.g. 0.9), got {coverage!r}")
    return float(coverage)


def class_probabilities(kind: str, s: np.ndarray, positive_index: int | None) -> np.ndarray:
    """Binary positive-class scores -> ``(n, 2)`` in class order; multiclass scores as they are."""
    s = np.asarray(s, dtype=float)
    if kind == "binary":
        out = np.empty((len(s), 2))
        out[:, positive_index], out[:, 1 - positive_index] = s, 1.0 - s
        return out
    return s


def _sets(scores: list[float], alphas: np.ndarray, coverage: float) -> np.ndarray:
    """Membership of each candidate (columns of ``alphas``) at ``coverage``, from calibration ``scores``."""
    from crepes import ConformalClassifier

    if len(scores) == 0:  # nothing to calibrate on: every candidate stays possible
        return np.ones(alphas.shape, dtype=bool)
    n = len(scores)
    p = ConformalClassifier().fit(np.asarray(scores, dtype=float)).predict_p(alphas, smoothing=False)
    # p = (#{calibration scores >= alpha} + 1) / (n + 1); the textbook set keeps p > 1 - coverage (Vovk), i.e.
    # alpha <= the ceil((n + 1) * coverage)-th smallest score. crepes' predict_set keeps p >= 1 - coverage, one
    # rank wider whenever (n + 1) * (1 - coverage) is a whole number. Compared as counts, with a tolerance for
    # 1 - coverage not being exact in floating point (1 - 0.8 = 0.19999999999999996).
    return np.rint(p * (n + 1)) > (1 - coverage) * (n + 1) + 1e-9


@dataclass
class Conformal:
    kind: str
    coverage: float
    mode: str
    scores: dict[str, list[float]] = field(default_factory=dict)  # calibration scores per stratum
    classes: list[str] = field(default_factory=list)
    choice: str = ""  # why this mode (said in the report)

    # -- fitting -----------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, kind: str, y, s, *, coverage: float, mode: str, classes: list[str],
            positive_index: int | None = None, sigma=None) -> Conformal:
        coverage = check_coverage(coverage)
        if mode not in MODES or mode == "none":
            raise MedAIError(f"--conformal must be one of {', '.join(MODES)}, got {mode!r}")
        y = np.asarray(y)
        if kind == "regression":
            return cls._fit_regression(y, s, coverage, mode, sigma)
        if mode == "normalized":
            raise MedAIError("--conformal normalized applies to regression; use standard or class-conditional")
        mode, choice = _classifier_mode(kind, y, mode, classes, coverage)
        conditional = mode == "class-conditional"
        scores: dict[str, list[float]] = {}
        if kind == "multilabel":
            s = np.asarray(s, dtype=float)
            for j, name in enumerate(classes):
                known = ~np.isnan(y[:, j])
                yj, pj = y[known, j].astype(int), s[known, j]
                alphas = np.where(yj == 1, 1 - pj, pj)
                if conditional:
                    scores.update({f"{name}={value}": alphas[yj == value].tolist() for value in (0, 1)})
                else:
                    scores[name] = alphas.tolist()
        else:
            proba = class_probabilities(kind, s, positive_index)
            alphas = 1.0 - proba[np.arange(len(y)), y.astype(int)]
            if conditional:
                scores = {c: alphas[y == k].tolist() for k, c in enumerate(classes)}
            else:
                scores = {"all": alphas.tolist()}
        _check_size(len(y), coverage)
        return cls(kind, coverage, mode, scores, list(classes), choice)

    @classmethod
    def _fit_regression(cls, y, pred, coverage, mode, sigma) -> Conformal:
        if mode == "class-conditional":
            raise MedAIError("--conformal class-conditional applies to classifiers; regression uses standard or "
                             "normalized intervals")
        residuals = np.abs(np.asarray(y, float) - np.asarray(pred, float))
        if mode in ("normalized", "auto") and sigma is None:
            if mode == "normalized":
                raise MedAIError("normalized intervals need a difficulty estimate, which this modality cannot give")
            mode, choice = "standard", "standard: no difficulty estimate for this modality"
        elif mode == "auto":
            mode, choice = _narrower(residuals, np.asarray(sigma, float), coverage)
        else:
            choice = "set with --conformal"
        normalized = residuals / np.asarray(sigma, float) if mode == "normalized" else residuals
        _check_size(len(residuals), coverage)
        return cls("regression", coverage, mode, {"all": normalized.tolist()}, [], choice)

    # -- predicting --------------------------------------------------------------------------------------
    def predict(self, s, *, positive_index: int | None = None, sigma=None) -> dict[str, np.ndarray]:
        """``{"sets": (n, k) bool}`` for classifiers (``(n, L, 2)`` for multilabel: label absent/present),
        ``{"low", "high"}`` for regression."""
        if self.kind == "regression":
            from crepes import ConformalRegressor

            pred = np.asarray(s, dtype=float)
            if self.mode == "normalized" and sigma is None:
                raise MedAIError("this model's intervals need its difficulty estimate")
            scale = np.asarray(sigma, float) if self.mode == "normalized" else np.ones(len(pred))
            scores = np.asarray(self.scores["all"], dtype=float)
            regressor = ConformalRegressor().fit(scores, sigmas=np.ones(len(scores)))
            interval = regressor.predict_int(pred, sigmas=scale, confidence=self.coverage)
            return {"low": interval[:, 0], "high": interval[:, 1]}
        if self.kind == "multilabel":
            s = np.asarray(s, dtype=float)
            sets = np.zeros((len(s), len(self.classes), 2), dtype=bool)
            for j, name in enumerate(self.classes):
                alphas = np.column_stack([s[:, j], 1 - s[:, j]])  # candidate "absent", "present"
                for value in (0, 1):
                    key = f"{name}={value}" if self.mode == "class-conditional" else name
                    sets[:, j, value] = _sets(self.scores[key], alphas[:, [value]], self.coverage)[:, 0]
            return {"sets": sets}
        alphas = 1.0 - class_probabilities(self.kind, s, positive_index)
        if self.mode == "class-conditional":
            sets = np.column_stack([_sets(self.scores[c], alphas[:, [k]], self.coverage)[:, 0]
                                    for k, c in enumerate(self.classes)])
        else:
            sets = _sets(self.scores["all"], alphas, self.coverage)
        return {"sets": sets}

    # -- measuring ---------------------------------------------------------------------------------------
    def evaluate(self, y, s, *, positive_index=None, sigma=None, n_boot: int = 1000, seed: int = 0) -> dict:
        """Empirical coverage on labelled data with a bootstrap CI, and the average set size / width."""
        y = np.asarray(y)
        out = self.predict(s, positive_index=positive_index, sigma=sigma)
        if self.kind == "regression":
            covered = ((out["low"] <= y) & (y <= out["high"])).astype(float)
            size, size_name = out["high"] - out["low"], "mean_interval_width"
        elif self.kind == "multilabel":
            known = ~np.isnan(y)
            hits = np.take_along_axis(out["sets"], np.nan_to_num(y).astype(int)[..., None], axis=2)[..., 0]
            covered = np.where(known, hits, np.nan)
            covered = np.nanmean(covered, axis=1)
            size, size_name = out["sets"].sum(axis=2).mean(axis=1), "mean_set_size"
        else:
            covered = out["sets"][np.arange(len(y)), y.astype(int)].astype(float)
            size, size_name = out["sets"].sum(axis=1).astype(float), "mean_set_size"
        keep = np.isfinite(covered)
        covered, size = covered[keep], size[keep]
        ci = bootstrap_metrics(lambda i: {"coverage": float(np.mean(covered[i])), size_name: float(np.mean(size[i]))},
                               np.zeros(len(covered)), n_boot=n_boot, seed=seed)
        result: dict[str, Any] = {"nominal": self.coverage, "mode": self.mode, "choice": self.choice,
                                  "coverage": ci["coverage"], size_name: ci[size_name], "n": int(len(covered))}
        if self.kind in ("binary", "multiclass"):
            sizes = out["sets"].sum(axis=1)
            result["singletons"] = round(float(np.mean(sizes == 1)), 6)
            result["empty"] = round(float(np.mean(sizes == 0)), 6)
            result["per_class"] = {c: (round(float(np.mean(covered[y[keep] == k])), 6) if np.any(y[keep] == k)
                                       else None) for k, c in enumerate(self.classes)}
        return result

    # -- storing -----------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "coverage": self.coverage, "mode": self.mode, "scores": self.scores,
                "classes": self.classes, "choice": self.choice}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Conformal | None:
        if not data:
            return None
        return cls(data["kind"], float(data["coverage"]), data["mode"], {k: list(v) for k, v in data["scores"].items()},
                   list(data.get("classes", [])), data.get("choice", ""))


def _classifier_mode(kind: str, y: np.ndarray, mode: str, classes: list[str], coverage: float) -> tuple[str, str]:
    """The mode a classifier's sets use, and why. ``auto`` is class-conditional for binary and multiclass targets
    when every class has enough calibration records for its own quantile, else standard (marginal)."""
    if kind == "multilabel":
        return ("standard", "standard: label-wise coverage") if mode == "auto" else (mode, "set with --conformal")
    counts = {c: int(np.sum(y == k)) for k, c in enumerate(classes)}
    short = {c: n for c, n in counts.items() if not enough_records(n, coverage)}
    if mode == "class-conditional" and short:
        need = min_records(coverage)
        raise MedAIError(f"class-conditional conformal sets need at least {need} calibration records of every "
                         f"class at {coverage:.0%} coverage; "
                         + ", ".join(f"{c!r} has {n}" for c, n in short.items())
                         + " (more data, a lower --coverage, or --conformal standard)")
    if mode != "auto":
        return mode, "set with --conformal"
    if short:
        return "standard", ("standard (marginal): too few calibration records of "
                            + ", ".join(f"{c!r} ({n})" for c, n in short.items()) + " for a quantile per class")
    return "class-conditional", ("class-conditional (auto): the coverage holds within every class, so a rare class "
                                 "keeps it and a change in class balance does not break it")


def enough_records(n: int, coverage: float) -> bool:
    """A finite interval (a set smaller than every class) needs ceil((n + 1) * coverage) <= n."""
    return bool(np.ceil((n + 1) * coverage) <= n)


def min_records(coverage: float) -> int:
    """The fewest calibration records that give a finite quantile at ``coverage`` (9 at 90%)."""
    n = max(1, int(coverage / (1 - coverage)) - 1)
    while not enough_records(n, coverage):
        n += 1
    return n


def _check_size(n: int, coverage: float) -> None:
    if not enough_records(n, coverage):
        need = min_records(coverage)
        raise MedAIError(f"{n} calibration record(s) are too few for {coverage:.0%} conformal coverage; it needs at "
                         f"least {need} (more data, a lower --coverage, or --conformal none)")


def _narrower(residuals: np.ndarray, sigma: np.ndarray, coverage: float) -> tuple[str, str]:
    """Standard or normalized: whichever gives the narrower mean interval on held-out halves (cross-fitted)."""
    n = len(residuals)
    if n < 40:
        return "standard", "standard: too few calibration records to compare with normalized intervals"
    order = np.random.default_rng(0).permutation(n)
    halves = (order[: n // 2], order[n // 2:])
    widths = {"standard": 0.0, "normalized": 0.0}
    for fit, held in (halves, halves[::-1]):
        for name, ratio, scale in (("standard", residuals, np.ones(n)), ("normalized", residuals / sigma, sigma)):
            q = _quantile(ratio[fit], coverage)
            widths[name] += float(np.mean(2 * q * scale[held])) / 2
    mode = "normalized" if widths["normalized"] < widths["standard"] else "standard"
    return mode, (f"{mode}: mean width on held-out calibration halves {widths[mode]:.4g} vs "
                  f"{widths['standard' if mode == 'normalized' else 'normalized']:.4g}")


def _quantile(scores: np.ndarray, coverage: float) -> float:
    """The textbook split-conformal quantile: the ceil((n + 1) * coverage)-th smallest score."""
    n = len(scores)
    rank = int(np.ceil((n + 1) * coverage))
    return float(np.sort(scores)[rank - 1]) if rank <= n else float("inf")


def fit_difficulty(Z: np.ndarray, residuals: np.ndarray, seed: int = 0):
    """A model of how hard each record is: gradient boosting on the log absolute training residuals.

    Training residuals understate the error of a flexible learner, but only their *relative* size matters:
    the conformal calibration on held-out data keeps the coverage valid whatever the estimate.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor

    target = np.log(np.abs(np.asarray(residuals, dtype=float)) + 1e-6 * (np.std(residuals) + 1e-12))
    return HistGradientBoostingRegressor(max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=10,
                                         random_state=seed).fit(Z, target)
