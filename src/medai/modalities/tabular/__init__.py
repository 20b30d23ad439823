"""The tabular modality: disease risk and other outcomes from tables of patient records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medai.data.dataset import Dataset, Inputs
from medai.data.tables import read_table, table_format
from medai.errors import MedAIError
from medai.evaluation import plots
from medai.evaluation.subgroups import find_subgroup_columns
from medai.modalities import RECORDS, CliOption, Modality, register_modality
from medai.modalities.base import labelled_records
from medai.modalities.tabular.schema import (
    TabularSchema,
    coerce_features,
    data_fingerprint,
    infer_schema,
    row_keys,
)

LIMITATIONS = [
    "Trained on retrospective data from one source; prospective validation has not been done.",
    "Feature contributions (SHAP) explain the model, not the biology: they are associations.",
]


def target_columns(target: str | None) -> list[str]:
    if not target:
        raise MedAIError("--data needs --target COLUMN (the column to predict; several columns, comma-separated, "
                         "make a multilabel target)")
    return [t.strip() for t in str(target).split(",") if t.strip()]


class TabularModality(Modality):
    name = "tabular"
    description = "Tables of patient records (CSV, Parquet, Excel, ARFF, SAS, SPSS, Stata)"
    input_contract = RECORDS
    reads = "tables of patient records"
    cli_options = (
        CliOption("--calibration", "Tabular classifiers: isotonic or sigmoid probability calibration."),
    )

    # -- reading -----------------------------------------------------------------------------------------
    def claims(self, path: Path, options) -> int:
        return 1 if path.is_file() and table_format(path) else 0

    def read_training_data(self, path: Path, options) -> Dataset:
        frame = read_table(path)
        return self.dataset(frame, target_columns(options.target), options, source=str(path))

    def load_task_data(self, task, options) -> Dataset:
        from medai.data.registry import get_dataset

        spec = get_dataset(task.dataset)
        return self.dataset(spec.load(), target_columns(task.target), options, source=spec.name, license=spec.license,
                            citation=spec.citation, categorical=list(task.categorical), subgroups=list(task.subgroups),
                            limits=task.options.get("limits"))

    def dataset(self, frame: pd.DataFrame, targets: list[str], options, *, source: str, license: str = "user data",
                citation: str = "", categorical: list[str] | None = None,
                subgroups: list[str] | None = None, limits: dict | None = None) -> Dataset:
        missing = [t for t in targets if t not in frame.columns]
        if missing:
            raise MedAIError(f"target column {missing[0]!r} is not in {source}; columns are: {list(frame.columns)}")
        labelled = frame[targets].notna().any(axis=1) if len(targets) > 1 else frame[targets[0]].notna()
        notes = []
        if not labelled.all():
            notes.append(f"{int((~labelled).sum())} record(s) without a value of {', '.join(targets)} were left out.")
        frame = frame.loc[labelled].reset_index(drop=True)
        if frame.empty:
            raise MedAIError(f"{source} has no records with a value of {', '.join(targets)}")
        schema = infer_schema(frame, targets, id_column=options.id_column, group_column=options.group_column,
                              categorical=categorical, limits=limits, source=source)
        notes += [f"Column {column!r} was not used: {reason}." for column, reason in schema.dropped.items()]
        X = coerce_features(frame, schema, source)
        missing_rate = float(X.isna().to_numpy().mean())
        if missing_rate:
            notes.append(f"{missing_rate:.1%} of feature values are missing; imputed inside the training folds.")
        group = options.group_column
        return Dataset(
            X=X, y=frame[targets] if len(targets) > 1 else frame[targets[0]], target_column=",".join(targets),
            input_schema=schema.to_json(), source=source, license=license, citation=citation,
            fingerprint=data_fingerprint(frame), groups=frame[group].to_numpy() if group else None, group_column=group,
            record_keys=row_keys(X), notes=notes,
            subgroup_frame=frame[find_subgroup_columns(list(frame.columns), tuple(subgroups or ()))],
        )

    def read_inputs(self, path: Path, model, labelled: bool = False, options: dict | None = None) -> Inputs:
        frame = read_table(path)
        return self.inputs_from_frame(frame, model, str(path), labelled)

    def inputs_from_frame(self, frame: pd.DataFrame, model, source: str, labelled: bool = False) -> Inputs:
        schema = TabularSchema.from_json(model.input_schema)
        notes, y = [], None
        if labelled:
            frame, y, notes = labelled_records(frame, model, source)
        if len(frame) == 0:
            raise MedAIError(f"{source} has no records to predict")
        ids = frame[schema.id_column].tolist() if schema.id_column and schema.id_column in frame.columns else None
        return Inputs(coerce_features(frame, schema, source), ids, schema.id_column or "id", y, notes)

    def inputs_from_records(self, records, model) -> pd.DataFrame:
        return coerce_features(pd.DataFrame.from_records(records), TabularSchema.from_json(model.input_schema),
                               "records")

    def records_column(self, series) -> str | None:
        return None

    # -- learning ----------------------------------------------------------------------------------------
    def learners(self, kind: str) -> tuple[str, ...]:
        from medai.modalities.tabular.learners import CLASSIFIERS, REGRESSORS

        return (*(REGRESSORS if kind == "regression" else CLASSIFIERS), "auto")

    def make_learner(self, name: str, target, options, task, dataset):
        from medai.modalities.tabular import learners

        calibration = options.extra.get("calibration")
        calibration = None if calibration in (None, "none") else calibration
        if target.kind == "regression":
            if calibration:
                raise MedAIError("--calibration applies to classifiers, not to a regression target")
            return learners.TabularRegressor(learner=name, seed=options.seed)
        if target.kind == "multilabel":
            return learners.TabularMultilabel(learner=name, calibration=calibration, seed=options.seed)
        return learners.TabularClassifier(learner=name, calibration=calibration, seed=options.seed,
                                          n_classes=len(target.classes))

    def describe_learner(self, learner, name: str) -> dict[str, Any]:
        estimators = getattr(learner, "estimators_", [learner])
        return {"name": learner.chosen_learner_,
                "hyperparameters": {**learner.get_params(),
                                    "estimator": estimators[0].pipeline_.named_steps["model"].get_params()},
                "training": {}}

    def trusted_modules(self) -> tuple[str, ...]:
        return ("medai.modalities.tabular.",)

    def check_data(self, dataset: Dataset, target, y) -> list[str]:
        from medai.modalities.tabular.leakage import leakage_warnings

        return leakage_warnings(dataset.X, y, target.kind)

    def embed(self, learner, X) -> np.ndarray:
        return learner.transform(X)

    def record_extras(self, model, X, records=None) -> dict[str, list]:
        from medai.modalities.tabular.schema import range_extras

        return range_extras(model, X, records)

    def records_scores(self, model, records) -> np.ndarray | None:
        from medai.modalities.tabular.compiled import compile_learner, typed_arrays

        if "compiled" not in model.cache:
            model.cache["compiled"] = compile_learner(model.learner)
        compiled = model.cache["compiled"]
        return None if compiled is None else compiled.scores(*typed_arrays(compiled, records))

    # -- explaining --------------------------------------------------------------------------------------
    def _shap(self, learner, X, target, s) -> tuple[np.ndarray, list[str]]:
        """SHAP values per record of the output each record's explanation is about, and what that is."""
        if target.kind == "binary":
            return learner.shap_values(X), [f"log-odds of {target.positive_label!r}"] * len(X)
        if target.kind == "regression":
            return learner.shap_values(X), [f"predicted {target.column}"] * len(X)
        outputs = np.asarray(s).argmax(axis=1)
        values = np.zeros((len(X), X.shape[1]))
        for k in np.unique(outputs):
            rows = outputs == k
            values[rows] = learner.shap_values(X.loc[rows], output=int(k))
        noun = "label" if target.kind == "multilabel" else "class"
        return values, [f"score of {noun} {target.classes[k]!r}" for k in outputs]

    def explain(self, model, X, top_k: int = 5) -> list[dict[str, Any]]:
        values, about = self._shap(model.learner, X, model.target, model.scores(X))
        names = list(X.columns)
        out = []
        for i in range(len(X)):
            order = np.argsort(-np.abs(values[i]))[:top_k]
            contributions = [{"feature": names[j], "value": _jsonable(X.iloc[i, j]),
                              "contribution": float(values[i, j])} for j in order]
            out.append({"contributions": contributions, "explains": about[i],
                        "summary": "; ".join(f"{c['feature']}={c['contribution']:+.3f}" for c in contributions)})
        return out

    def report_extras(self, model, X_test, y_test) -> dict[str, Any]:
        target, learner = model.target, model.learner
        if target.kind in ("binary", "regression"):
            importance = np.abs(learner.shap_values(X_test)).mean(axis=0)
        else:
            count = len(target.classes)
            importance = np.mean([np.abs(learner.shap_values(X_test, output=k)).mean(axis=0) for k in range(count)],
                                 axis=0)
        names = list(X_test.columns)
        feature_importance = {name: round(float(v), 6) for name, v in zip(names, importance, strict=True)}
        metrics: dict[str, Any] = {"feature_importance": feature_importance}
        if learner.selection_scores_:
            metrics["auto_selection"] = {k: round(v, 6) for k, v in learner.selection_scores_.items()}
        return {"plots": {"shap_importance": plots.importance_png(names, list(importance))}, "metrics": metrics,
                "limitations": LIMITATIONS}


def _jsonable(value):
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    return value


register_modality(TabularModality())

from medai.modalities.tabular import tasks  # noqa: E402,F401  (registers the built-in tasks)
