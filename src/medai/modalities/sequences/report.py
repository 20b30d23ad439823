"""Per-record explanations and the report's pictures and tables for sequence models."""

from __future__ import annotations

from typing import Any

import numpy as np

from medai.modalities.sequences.explain import (
    explained_class,
    kmer_table,
    motif_png,
    mutagenesis,
    position_weight_matrix,
    saliency_from_delta,
    saliency_png,
    salient_window,
)
from medai.modalities.sequences.reading import model_alphabet

MOTIF_WIDTH = 10
MOTIF_RECORDS = 25  # records per class whose salient windows make the class's motif


def saliency_of(model, sequence: str, output: int) -> dict[str, Any]:
    """Mutagenesis (any model) and, for a network, gradient x input, of one sequence."""
    alphabet = model_alphabet(model)
    delta, p = mutagenesis(model.learner.predict_proba, sequence, alphabet, output)
    saliency = saliency_from_delta(delta, sequence, alphabet)
    out = {"delta": delta, "ism": saliency, "probability": p, "saliency": saliency, "method": "in-silico mutagenesis"}
    if hasattr(model.learner, "gradient_saliency"):
        out["gradient"] = model.learner.gradient_saliency(sequence, output)
        out["saliency"], out["method"] = out["gradient"], "gradient x input"
    return out


def _kmer_contributions(learner, sequence: str, output: int, top: int) -> list[dict[str, Any]]:
    learner = getattr(learner, "kmer_member", learner)
    if not hasattr(learner, "weights") or learner.model == "gbm":
        return []
    weights, _ = learner.weights()
    row = learner.features_of([sequence]).tocsr()
    names = learner.vectorizer_.get_feature_names_out()
    contributions = row.data * weights[output if weights.shape[0] > 1 else 0, row.indices]
    order = np.argsort(-contributions)[:top]
    return [{"kmer": str(names[row.indices[j]]), "contribution": round(float(contributions[j]), 5)} for j in order]


def explain_sequences(model, X, top_k: int = 5) -> list[dict[str, Any]]:
    alphabet = model_alphabet(model)
    proba = model.learner.predict_proba(list(X))
    explanations = []
    for sequence, row in zip(X, proba, strict=True):
        output, what = explained_class(model, row)
        result = saliency_of(model, sequence, output)
        saliency = result["saliency"]
        top = np.argsort(-saliency)[:top_k]
        contributions = [{"feature": f"position {i + 1}", "value": sequence[i], "contribution": float(saliency[i])}
                         for i in top]
        kmers = _kmer_contributions(model.learner, sequence, output, top_k)
        summary = "most salient: " + ", ".join(f"{sequence[i]}{i + 1}" for i in top)
        if kmers:
            summary += "; k-mers: " + ", ".join(k["kmer"] for k in kmers[:3])
        title = f"{result['method']}: {what} = {result['probability']:.3f}"
        explanations.append({
            "summary": summary, "explains": what, "method": result["method"], "contributions": contributions,
            "saliency": [round(float(v), 5) for v in saliency],
            "mutagenesis": {"letters": alphabet.letters, "delta": np.round(result["delta"], 5).tolist()},
            "top_kmers": kmers,
            "image_png": saliency_png(sequence, saliency, result["delta"], alphabet, title),
        })
    return explanations


def class_saliency(model, X, y, per_class: int = MOTIF_RECORDS) -> dict[int, dict[str, Any]]:
    """For each class: mean saliency by position and the PWM of the most salient windows, over correctly
    predicted test records of that class (the most confident first)."""
    alphabet = model_alphabet(model)
    X, y = list(X), np.asarray(y).astype(int)
    proba = model.learner.predict_proba(X)
    out = {}
    for cls in np.unique(y):
        right = np.flatnonzero((y == cls) & (proba.argmax(axis=1) == cls))
        chosen = right[np.argsort(-proba[right, cls])][:per_class]
        if len(chosen) < 3:
            continue
        maps = [saliency_of(model, X[i], int(cls))["ism"] for i in chosen]
        width = min(MOTIF_WIDTH, min(len(X[i]) for i in chosen))
        same_length = len({len(X[i]) for i in chosen}) == 1
        if same_length:  # aligned sequences: one window, where the class's mean saliency peaks
            starts = [salient_window(np.mean(maps, axis=0), width)] * len(chosen)
        else:  # each sequence's own most salient window
            starts = [salient_window(m, width) for m in maps]
        windows = [X[i][start:start + width] for i, start in zip(chosen, starts, strict=True)]
        out[int(cls)] = {"records": len(chosen), "windows": windows, "starts": starts,
                         "pwm": position_weight_matrix(windows, alphabet),
                         "mean": np.mean(maps, axis=0) if same_length else None}
    return out


def _profile_png(profiles: dict[str, np.ndarray]) -> bytes:
    from medai.evaluation.plots import png_bytes, pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    for name, values in profiles.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=name, linewidth=1.2)
    ax.axhline(0, color="#999999", linewidth=0.5)
    ax.set_xlabel("position")
    ax.set_ylabel("mean saliency (mutagenesis)")
    ax.legend(fontsize=8)
    ax.set_title("Where the model looks: mean saliency of correctly predicted test sequences", fontsize=9)
    return png_bytes(fig)


def report_extras(model, X_test, y_test) -> dict[str, Any]:
    alphabet = model_alphabet(model)
    classes = list(model.target.classes)
    plots, tables, metrics = {}, [], {}
    table = kmer_table(getattr(model.learner, "kmer_member", model.learner), classes)
    if table:
        tables.append(table)
    if len(X_test) and max(len(s) for s in X_test) <= 2000:
        found = class_saliency(model, X_test, y_test)
        profiles = {classes[c]: v["mean"] for c, v in found.items() if v["mean"] is not None}
        if profiles:
            plots["saliency_profile"] = _profile_png(profiles)
        summary = {}
        for cls, value in found.items():
            name = classes[cls]
            start = int(np.bincount(value["starts"]).argmax()) + 1
            consensus = "".join(alphabet.letters[j] for j in value["pwm"].argmax(axis=1))
            plots[f"motif_{name}"] = motif_png(value["pwm"], alphabet, f"Motif of class {name!r}: most salient "
                                               f"{len(value['pwm'])}-letter windows of {value['records']} test "
                                               "sequences")
            summary[name] = {"consensus": consensus, "window_start": start, "records": value["records"]}
            if value["mean"] is not None:
                summary[name]["top_positions"] = [int(i) + 1 for i in np.argsort(-value["mean"])[:5]]
        if summary:
            metrics["motifs"] = summary
            tables.append({"title": "Motifs from the most salient windows (in-silico mutagenesis)",
                           "note": "consensus: the most frequent letter at each position of the windows",
                           "header": ["class", "consensus", "window start", "top positions", "records"],
                           "rows": [[n, v["consensus"], v["window_start"],
                                     ", ".join(map(str, v.get("top_positions", []))), v["records"]]
                                    for n, v in summary.items()]})
    schema = model.input_schema
    limitations = [f"Alphabet {schema.get('alphabet', '?').upper()}; ambiguity codes: {schema.get('ambiguity')}. "
                   "Sequences with other characters are refused at prediction time."]
    if getattr(model.learner, "features_", None) == "spectrum":
        limitations.append("k-mer spectrum features ignore where a k-mer occurs in the sequence.")
    return {"plots": plots, "tables": tables, "metrics": metrics, "limitations": limitations}
