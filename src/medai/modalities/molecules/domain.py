"""Applicability domain: how similar a molecule is to the nearest training molecule (Tanimoto on ECFP4 bits,
2048), and whether that is above the model's threshold.

The artifact keeps only the training molecules' packed fingerprint bits (``domain_`` of the learner), never
their SMILES. The report shows the similarity of the test molecules to the training set and how the model does
inside and outside its domain.
"""

from __future__ import annotations

from typing import Any

import numpy as np

THRESHOLD = 0.35  # ECFP4 Tanimoto; below it the nearest training molecule is structurally distant


def with_threshold(dataset, options):
    threshold = options.extra.get("domain_threshold")
    threshold = THRESHOLD if threshold is None else float(threshold)
    if not 0.0 < threshold <= 1.0:
        from medai.errors import MedAIError

        raise MedAIError(f"--domain-threshold must be a Tanimoto similarity in (0, 1], got {threshold}")
    dataset.input_schema["domain"] = {
        "measure": "Tanimoto similarity to the nearest training molecule, Morgan radius 2 (ECFP4), 2048 bits",
        "threshold": threshold,
        "stored": "packed Morgan bits of the training molecules (no SMILES)"}
    return dataset


def threshold_of(model) -> float:
    return float(model.input_schema.get("domain", {}).get("threshold", THRESHOLD))


def similarity(model, X) -> np.ndarray:
    from medai.modalities.molecules.chem import fingerprints, nearest_similarity, unpack

    if "domain_fps" not in model.cache:
        model.cache["domain_fps"] = unpack(model.learner.domain_)
    return nearest_similarity(fingerprints(list(X)), model.cache["domain_fps"])


def record_extras(model, X) -> dict[str, list[Any]]:
    nearest = similarity(model, X)
    return {"in_domain": [bool(v >= threshold_of(model)) for v in nearest],
            "nearest_train_similarity": [round(float(v), 4) for v in nearest]}


def _headline(model, y, s) -> float | None:
    evaluator = model.evaluator
    if len(y) < 10 or (evaluator.stratify and len(np.unique(y)) < 2):
        return None
    value = evaluator.point_metrics(y, s, model.decision).get(evaluator.headline)
    return None if value is None or not np.isfinite(value) else float(value)


def report(model, X_test, y_test) -> dict[str, Any]:
    nearest = similarity(model, X_test)
    threshold = threshold_of(model)
    inside = nearest >= threshold
    y = model.evaluator.outcome(y_test, model.target)
    s = model.scores(X_test)
    headline = model.evaluator.headline
    rows = []
    everything = np.ones_like(inside)
    for label, mask in (("in domain", inside), ("outside domain", ~inside), ("all test molecules", everything)):
        rows.append([label, int(mask.sum()), _headline(model, y[mask], s[mask]) if mask.any() else None])
    quantiles = {f"q{int(q * 100)}": round(float(np.quantile(nearest, q)), 4) for q in (0.1, 0.25, 0.5, 0.75, 0.9)}
    metrics = {"applicability_domain": {
        "threshold": threshold, "fraction_in_domain": round(float(inside.mean()), 4),
        "nearest_train_similarity": {**quantiles, "mean": round(float(nearest.mean()), 4)},
        "identical_fingerprint_in_train": int(np.sum(nearest >= 0.9999)),
        f"{headline}_in_domain": rows[0][2], f"{headline}_outside_domain": rows[1][2]}}
    table = {
        "title": "Applicability domain: test molecules by similarity to the nearest training molecule",
        "note": (f"Tanimoto on ECFP4 bits; in domain when >= {threshold:.2f}. Median nearest-train similarity of the "
                 f"test molecules {quantiles['q50']:.2f} (10th-90th percentile {quantiles['q10']:.2f}-"
                 f"{quantiles['q90']:.2f}); {int(np.sum(nearest >= 0.9999))} test molecule(s) have a training "
                 "molecule with the identical fingerprint."),
        "header": ["test molecules", "n", headline], "rows": rows}
    return {"plots": {"applicability_domain": _histogram(nearest, threshold)}, "metrics": metrics,
            "tables": [table], "limitations": [
                "Trained on one public benchmark set or the user's assay; activity cliffs and new chemical series "
                "are where such models fail - check the applicability flag of every prediction.",
                "Atom maps show which atoms move the model's output, not a mechanism."]}


def _histogram(nearest: np.ndarray, threshold: float) -> bytes:
    from medai.evaluation.plots import _figure, png_bytes

    fig, ax = _figure(4.6, 3.4)
    ax.hist(nearest, bins=np.linspace(0, 1, 26), color="#4477aa")
    ax.axvline(threshold, color="#cc3311", ls="--", lw=1.5, label=f"domain threshold {threshold:.2f}")
    ax.set_xlabel("Tanimoto similarity to nearest training molecule")
    ax.set_ylabel("test molecules")
    ax.legend(frameon=False)
    return png_bytes(fig)
