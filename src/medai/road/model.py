"""A trained model as the CLI, the service and jobs use it, whatever its modality and kind of target:
predictions with the decision rule, conformal sets or intervals, explanations, and evaluation on new data.

Loading verifies every file against the artifact's manifest (and the registry's copy of it) first.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medai.data.dataset import Inputs
from medai.errors import IntegrityError, MedAIError
from medai.evaluation.conformal import Conformal
from medai.evaluation.kinds import evaluator_for
from medai.models.artifact import read_model_json, verify_artifact
from medai.tasks.kinds import TargetSpec

FORMAT = "medai-model/2"
# called with (inputs as the learner takes them or None, the JSON records or None, scores, items) after a prediction:
# how the service's monitoring sees what was predicted without a second pass over the inputs
Observer = Callable[[Any, "list[dict[str, Any]] | None", np.ndarray, list[dict[str, Any]]], None]
DIFFICULTY_FILE = "conformal_difficulty.skops"


class Model:
    def __init__(self, modality, learner, meta: dict[str, Any], difficulty=None, monitoring=None):
        self.modality = modality
        self.learner = learner
        self.meta = meta
        self.target = TargetSpec.from_json(meta["target"])
        self.evaluator = evaluator_for(self.target.kind)
        self.decision: dict[str, Any] = meta["decision"]
        self.input_schema = meta["input_schema"]
        self.input_contract: str = meta.get("input_contract", modality.input_contract)
        self.conformal = Conformal.from_json(meta.get("conformal"))
        self.difficulty = difficulty
        self.cache: dict[str, Any] = {}  # a modality's per-model state (e.g. a compiled fast path)
        self.monitoring: dict[str, Any] | None = monitoring  # the training reference of drift (monitoring.json)

    # -- what it is --------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def family(self) -> str:
        return self.modality.name

    @property
    def kind(self) -> str:
        return self.target.kind

    @property
    def threshold(self) -> float | None:
        return self.decision.get("threshold")

    @property
    def fast_records(self) -> bool:
        """Whether the modality scores JSON records on a fast path (the service then answers inline)."""
        from medai.modalities.base import Modality

        return type(self.modality).records_scores is not Modality.records_scores

    @property
    def input_fields(self) -> list[dict[str, Any]]:
        """The named fields of one JSON record (records contract)."""
        return self.input_schema.get("fields", []) if isinstance(self.input_schema, dict) else []

    # -- predicting --------------------------------------------------------------------------------------
    def scores(self, X) -> np.ndarray:
        return self.evaluator.scores(self.learner, X, self.target)

    def sigma(self, X) -> np.ndarray | None:
        """The conformal difficulty estimate of each record (normalized regression intervals only)."""
        if self.conformal is None or self.conformal.mode != "normalized":
            return None
        return difficulty_sigma(self.difficulty, self.modality.embed(self.learner, X))

    def uncertainty(self, s, X=None) -> dict[str, np.ndarray] | None:
        if self.conformal is None:
            return None
        return self.conformal.predict(s, positive_index=self.target.positive_index,
                                      sigma=self.sigma(X) if self.conformal.mode == "normalized" else None)

    def items(self, s, X=None) -> list[dict[str, Any]]:
        """One JSON-able prediction per record: the kind's output plus the conformal set or interval."""
        items = self.evaluator.items(s, self.decision, self.target)
        sets = self.uncertainty(s, X)
        if sets is None:
            return items
        for i, item in enumerate(items):
            item["coverage"] = self.conformal.coverage
            if "low" in sets:
                item["interval"] = {"low": float(sets["low"][i]), "high": float(sets["high"][i])}
            elif sets["sets"].ndim == 3:  # multilabel: per label, absent / present
                present = [c for j, c in enumerate(self.target.classes) if sets["sets"][i, j, 1]]
                unsure = [c for j, c in enumerate(self.target.classes) if sets["sets"][i, j].sum() != 1]
                item.update(prediction_set=present, uncertain_labels=unsure, uncertain=bool(unsure))
            else:
                members = [c for k, c in enumerate(self.target.classes) if sets["sets"][i, k]]
                item.update(prediction_set=members, uncertain=len(members) != 1)
        return items

    def predict(self, X, explain: bool = False, top_k: int = 3, refuse_outside: bool = False,
                observe: Observer | None = None) -> list[dict[str, Any]]:
        extras = self.extras(X, refuse=refuse_outside)
        s = self.scores(X)
        items = self._finish(self.items(s, X), X, extras, explain, top_k)
        if observe is not None:
            observe(X, None, s, items)
        return items

    def extras(self, X, records=None, refuse: bool = False) -> dict[str, list[Any]]:
        """The modality's per-record fields (``record_extras``). A modality flags the records it cannot vouch
        for in ``outside_training_data`` (and says why in ``out_of_range``); with ``refuse`` they are an error
        naming the records and fields, never their values."""
        extras = (self.modality.record_extras(self, X) if X is not None
                  else self.modality.record_extras(self, None, records=records))
        flags = extras.get("outside_training_data") or []
        if refuse and any(flags):
            rows = [i for i, flag in enumerate(flags) if flag]
            reasons = extras.get("out_of_range") or [[] for _ in flags]
            detail = "; ".join(f"record {i}: {', '.join(reasons[i]) or 'outside'}" for i in rows[:5])
            raise MedAIError(f"{len(rows)} record(s) lie outside the model's training data ({detail}); refused "
                             "(ask for flagged predictions instead to get them with a warning)")
        return extras

    def predict_records(self, records: list[dict[str, Any]], explain: bool = False, top_k: int = 5,
                        refuse_outside: bool = False, observe: Observer | None = None) -> list[dict]:
        """The service's path for validated JSON records (a modality may offer a faster scorer)."""
        s = self.modality.records_scores(self, records)
        needs_inputs = s is None or explain or (self.conformal is not None and self.conformal.mode == "normalized")
        X = self.modality.inputs_from_records(records, self) if needs_inputs else None
        extras = self.extras(X, records, refuse=refuse_outside)
        s = self.scores(X) if s is None else s
        items = self._finish(self.items(s, X), X, extras, explain, top_k)
        if observe is not None:
            observe(X, records, s, items)
        return items

    def predict_table(self, frame: pd.DataFrame, explain: bool = False, top_k: int = 3,
                      refuse_outside: bool = False) -> pd.DataFrame:
        """Predictions for a DataFrame of records (the Python API of records models)."""
        return self.frame(self.modality.inputs_from_frame(frame, self, "table"), explain=explain, top_k=top_k,
                          refuse_outside=refuse_outside)

    def predict_files(self, paths: list[Path], explain: bool = False, refuse_outside: bool = False,
                      observe: Observer | None = None) -> list[dict]:
        X = self.modality.inputs_from_files([Path(p) for p in paths], self)
        items = self.predict(X, explain, refuse_outside=refuse_outside, observe=observe)
        for item, path in zip(items, paths, strict=True):
            item["file"] = Path(path).name
        return items

    def _finish(self, items, X, extras: dict[str, list[Any]], explain: bool, top_k: int) -> list[dict[str, Any]]:
        for name, values in extras.items():
            for item, value in zip(items, values, strict=True):
                item[name] = value
        if explain:
            for item, explanation in zip(items, self.modality.explain(self, X, top_k), strict=True):
                item.update(explanation_json(explanation))
        for i, item in enumerate(items):
            item["index"] = i
        return items

    def frame(self, inputs: Inputs, explain: bool = False, top_k: int = 3, refuse_outside: bool = False,
              observe: Observer | None = None) -> pd.DataFrame:
        """Predictions as a table (one row per record): ``medai predict`` and batch jobs write it as CSV."""
        extras = self.extras(inputs.X, refuse=refuse_outside)
        s = self.scores(inputs.X)
        if observe is not None:
            observe(inputs.X, None, s, self.items(s, inputs.X))
        out = pd.DataFrame(index=range(len(inputs)))
        if inputs.ids is not None:
            out[inputs.id_name] = list(inputs.ids)
        for name, values in self.evaluator.columns(s, self.decision, self.target).items():
            out[name] = list(values)
        sets = self.uncertainty(s, inputs.X)
        if sets is not None:
            items = self.items(s, inputs.X)
            if "low" in sets:
                out["interval_low"], out["interval_high"] = sets["low"], sets["high"]
            else:
                out["prediction_set"] = [";".join(item["prediction_set"]) for item in items]
                out["uncertain"] = [item["uncertain"] for item in items]
        for name, values in extras.items():
            out[name] = [";".join(map(str, v)) if isinstance(v, list | tuple) else v for v in values]
        if explain:
            out["explanation"] = [e.get("summary", "") for e in self.modality.explain(self, inputs.X, top_k)]
        return out

    # -- evaluating --------------------------------------------------------------------------------------
    def evaluate(self, inputs: Inputs, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
        """Metrics with 95% CIs on labelled records, at the model's own decision rule (and conformal coverage)."""
        encoded = self.target.encode(inputs.y, "the evaluation data")
        y = self.evaluator.outcome(encoded, self.target)
        if self.evaluator.stratify and len(np.unique(self.evaluator.strata(y))) < 2:
            raise MedAIError(f"the evaluation data has a single class of {self.target.column!r}; it needs both")
        s = self.scores(inputs.X)
        result: dict[str, Any] = {
            "model": self.name, "kind": self.kind, "n": int(len(inputs)), "notes": inputs.notes,
            "decision": self.decision,
            "test": self.evaluator.evaluate(y, s, self.decision, n_boot=n_boot, seed=seed),
        }
        result.update(self.evaluator.details(y, s, self.decision, self.target, n_boot=n_boot, seed=seed))
        result.update(self.modality.evaluation_extras(self, inputs, y, s))
        matrix = self.evaluator.confusion(y, s, self.decision, self.target)
        if matrix is not None:
            result["confusion_matrix"] = matrix
        if self.conformal is not None:
            result["conformal"] = self.conformal.evaluate(encoded, s, positive_index=self.target.positive_index,
                                                          sigma=self.sigma(inputs.X), n_boot=n_boot, seed=seed)
        return result


def explanation_json(explanation: dict[str, Any]) -> dict[str, Any]:
    """A modality's explanation as JSON: picture bytes become ``explanation_png_base64``."""
    out = {k: v for k, v in explanation.items() if k != "image_png"}
    if explanation.get("image_png") is not None:
        out["explanation_png_base64"] = base64.b64encode(explanation["image_png"]).decode("ascii")
    return out


def difficulty_sigma(difficulty, Z: np.ndarray) -> np.ndarray:
    return np.exp(difficulty.predict(Z)) + 1e-9


def load_model(directory: str | Path, expected_manifest: dict[str, str] | None = None) -> Model:
    """A trained model from its artifact directory, after checking every file's checksum."""
    from medai.modalities import get_modality
    from medai.modalities.skops_io import loads

    directory = Path(directory)
    verify_artifact(directory, expected_manifest)
    meta = read_model_json(directory, verify=False)
    if meta.get("format") != FORMAT:
        raise IntegrityError(f"{directory} holds a model in format {meta.get('format')!r}, from a MedAI before the "
                             f"one road ({FORMAT}); retrain it with this version")
    modality = get_modality(meta.get("modality", ""))
    learner = modality.load_learner(directory, meta)
    difficulty = None
    if (directory / DIFFICULTY_FILE).is_file():
        difficulty = loads((directory / DIFFICULTY_FILE).read_bytes(), DIFFICULTY_FILE)
    from medai.monitoring.reference import REFERENCE_FILE

    monitoring = None
    if (directory / REFERENCE_FILE).is_file():
        import json

        monitoring = json.loads((directory / REFERENCE_FILE).read_text())
    return Model(modality, learner, meta, difficulty, monitoring)
