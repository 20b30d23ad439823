"""Outcomes of care from tables of patient records: time-to-event (``survival``: ``--time/--event``) and the
effect of treatments (``treatment-effect``: ``--treatment/--outcome``), with per-patient recommendations
(``medai recommend``).

The records are tables like the tabular modality's (the same schema, types and range checks); what differs
is the target, which spans columns with roles. The modality claims a table only when those roles are given.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medai.data.dataset import Dataset, Inputs
from medai.data.tables import read_table, table_format
from medai.errors import MedAIError
from medai.modalities import RECORDS, CliOption, Modality, register_modality
from medai.modalities.tabular.schema import TabularSchema, coerce_features, data_fingerprint, infer_schema, row_keys

ROLE_OPTIONS = ("time", "event", "treatment", "outcome")
LIMITATIONS = {
    "survival": [
        "Trained on retrospective data from one source; prospective validation has not been done.",
        "Censoring is assumed independent of the outcome given the features (non-informative censoring).",
        "Survival curves are carried flat beyond the last event time seen in training.",
        "Feature contributions explain the risk score of the model, not causes: they are associations.",
    ],
    "treatment-effect": [
        "Effects are causal only under no unmeasured confounding, overlap (every patient could have received every "
        "arm) and consistency; on observational data these are assumptions no metric can check.",
        "Recommendations hold for patients like those in the training data (inside the overlap region).",
    ],
}


def _split_list(value) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def _numbers(value, flag: str) -> list[float] | None:
    if not value:
        return None
    try:
        return [float(v) for v in _split_list(value)]
    except ValueError:
        raise MedAIError(f"{flag} takes numbers separated by commas, got {value!r}") from None


def roles_from_options(extra: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The kind of target and its column roles from the command-line options."""
    given = {k for k in ROLE_OPTIONS if extra.get(k)}
    survival, effect = given & {"time", "event"}, given & {"treatment", "outcome"}
    if survival and effect:
        raise MedAIError("give either --time/--event (survival) or --treatment/--outcome (treatment effect), not both")
    if survival:
        if survival != {"time", "event"}:
            raise MedAIError("a survival target needs both --time COLUMN (follow-up time) and --event COLUMN "
                             "(1 = event, 0 = censored)")
        return "survival", {"time": extra["time"], "event": extra["event"], "event_value": extra.get("event_value"),
                            "horizons": _numbers(extra.get("horizons"), "--horizons"),
                            "time_unit": extra.get("time_unit")}
    if effect:
        if effect != {"treatment", "outcome"}:
            raise MedAIError("a treatment effect needs both --treatment COLUMN (the arm received) and --outcome "
                             "COLUMN (what was observed)")
        return "treatment-effect", {"treatment": extra["treatment"], "outcome": extra["outcome"],
                                    "true_effect": extra.get("true_effect"), "reference": extra.get("reference_arm"),
                                    "higher_is_better": not extra.get("lower_is_better", False)}
    raise MedAIError("the treatment modality needs --time/--event (survival) or --treatment/--outcome")


@contextmanager
def _deep_recursion(limit: int = 20000):
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def target_columns(kind: str, fields: dict[str, Any]) -> list[str]:
    roles = ("time", "event") if kind == "survival" else ("treatment", "outcome", "true_effect")
    return [fields[r] for r in roles if fields.get(r)]


class TreatmentModality(Modality):
    name = "treatment"
    description = ("Tables of patient records with a time-to-event target (--time/--event) or a treatment and its "
                   "outcome (--treatment/--outcome)")
    input_contract = RECORDS
    reads = "tables of patient records with follow-up times or treatments"
    default_learner = "auto"
    explain_in_tables = False
    cli_options = (
        CliOption("--time", "Survival: the follow-up time column (time to the event or to censoring)."),
        CliOption("--event", "Survival: the event column (1/true = the event happened, 0/false = censored)."),
        CliOption("--event-value", "Survival: the value of --event that means the event, when not 1/true."),
        CliOption("--horizons", "Survival: times to report risk, AUC and calibration at, comma-separated (in the "
                                "units of --time)."),
        CliOption("--time-unit", "Survival: the unit of --time (days, months, years) for the report."),
        CliOption("--treatment", "Treatment effect: the column of the arm each patient received."),
        CliOption("--outcome", "Treatment effect: the outcome column."),
        CliOption("--true-effect", "Treatment effect: the true individual effect (semi-synthetic data), for PEHE."),
        CliOption("--reference-arm", "Treatment effect: the arm effects are measured against (default: the first)."),
        CliOption("--lower-is-better", "Treatment effect: a lower outcome is better (e.g. an event).",
                  is_flag=True, default=False),
        CliOption("--outcome-model", "Treatment effect: the outcome model of the meta-learners: ridge, poly, kernel, "
                                     "gbm or auto (chosen per arm by cross-validation)."),
        CliOption("--drop", "Columns that are not features (other outcomes, counterfactuals), comma-separated.",
                  multiple=True),
    )

    # -- reading -------------------------------------------------------------------------------------------
    def claims(self, path: Path, options) -> int:
        given = any((options.extra or {}).get(k) for k in ROLE_OPTIONS)
        return 3 if given and path.is_file() and table_format(path) else 0

    def read_training_data(self, path: Path, options) -> Dataset:
        kind, fields = roles_from_options(options.extra)
        drop = _split_list(options.extra.get("drop"))
        return self.dataset(read_table(path), kind, fields, options, source=str(path), drop=drop)

    def load_task_data(self, task, options) -> Dataset:
        from medai.data.registry import get_dataset

        spec = get_dataset(task.dataset)
        fields = dict(task.options["roles"])
        if options.extra.get("horizons"):
            fields["horizons"] = _numbers(options.extra["horizons"], "--horizons")
        return self.dataset(spec.load(), task.kind, fields, options, source=spec.name, license=spec.license,
                            citation=spec.citation, categorical=list(task.categorical),
                            subgroups=list(task.subgroups), drop=list(task.options.get("drop", ())))

    def dataset(self, frame: pd.DataFrame, kind: str, fields: dict[str, Any], options, *, source: str,
                license: str = "user data", citation: str = "", categorical: list[str] | None = None,
                subgroups: list[str] | None = None, drop: list[str] | None = None) -> Dataset:
        from medai.evaluation.subgroups import find_subgroup_columns

        targets = target_columns(kind, fields)
        absent = [c for c in [*targets, *(drop or [])] if c not in frame.columns]
        if absent:
            raise MedAIError(f"column {absent[0]!r} is not in {source}; columns are: {list(frame.columns)}")
        if len(set(targets)) != len(targets):
            raise MedAIError(f"the target roles name the same column twice: {targets}")
        frame = frame.reset_index(drop=True)
        schema = infer_schema(frame, [*targets, *(drop or [])], id_column=options.id_column,
                              group_column=options.group_column, categorical=categorical, source=source)
        notes = [f"Column {column!r} was not used: {reason}." for column, reason in schema.dropped.items()]
        if drop:
            notes.append(f"Not used as features (--drop): {', '.join(drop)}.")
        X = coerce_features(frame, schema, source)
        missing_rate = float(X.isna().to_numpy().mean())
        if missing_rate:
            notes.append(f"{missing_rate:.1%} of feature values are missing; imputed inside the training folds.")
        group = options.group_column
        return Dataset(X=X, y=frame[targets], target_column=",".join(targets), input_schema=schema.to_json(),
                       source=source, license=license, citation=citation, fingerprint=data_fingerprint(frame),
                       groups=frame[group].to_numpy() if group else None, group_column=group,
                       record_keys=row_keys(X), notes=notes,
                       subgroup_frame=frame[find_subgroup_columns(list(frame.columns), tuple(subgroups or ()))],
                       target_kind=kind, target_fields={k: v for k, v in fields.items() if v is not None})

    def read_inputs(self, path: Path, model, labelled: bool = False, options: dict | None = None) -> Inputs:
        return self.inputs_from_frame(read_table(path), model, str(path), labelled)

    def inputs_from_frame(self, frame: pd.DataFrame, model, source: str = "table", labelled: bool = False) -> Inputs:
        schema = TabularSchema.from_json(model.input_schema)
        y = None
        if labelled:
            targets = target_columns(model.kind, model.target.fields)
            absent = [t for t in targets if t not in frame.columns]
            if absent:
                raise MedAIError(f"{source} has no column {absent[0]!r} to evaluate against")
            y = frame[targets].reset_index(drop=True)
        if len(frame) == 0:
            raise MedAIError(f"{source} has no records")
        ids = frame[schema.id_column].tolist() if schema.id_column and schema.id_column in frame.columns else None
        return Inputs(coerce_features(frame.reset_index(drop=True), schema, source), ids, schema.id_column or "id", y)

    def inputs_from_records(self, records, model) -> pd.DataFrame:
        return coerce_features(pd.DataFrame.from_records(records), TabularSchema.from_json(model.input_schema),
                               "records")

    # -- learning ------------------------------------------------------------------------------------------
    def learners(self, kind: str) -> tuple[str, ...]:
        from medai.modalities.treatment.survival import SURVIVAL_LEARNERS

        if kind == "survival":
            return (*SURVIVAL_LEARNERS, "auto")
        if kind == "treatment-effect":
            from medai.modalities.treatment.effects import EFFECT_LEARNERS

            return (*EFFECT_LEARNERS, "auto")
        return ()

    def make_learner(self, name: str, target, options, task, dataset):
        if target.kind == "survival":
            from medai.modalities.treatment.survival import SurvivalLearner

            return SurvivalLearner(learner=name or "auto", seed=options.seed)
        if target.kind == "treatment-effect":
            from medai.modalities.treatment.effects import EffectLearner

            return EffectLearner(learner=name or "auto", base=options.extra.get("outcome_model") or "auto",
                                 n_arms=len(target.classes), seed=options.seed,
                                 higher_is_better=bool(target.fields.get("higher_is_better", True)))
        raise MedAIError(f"the treatment modality learns survival and treatment-effect targets, not {target.kind}; "
                         "give --time/--event or --treatment/--outcome")

    def fit(self, learner, X, y, X_val=None, y_val=None):
        """Survival learners fit on the training records; treatment-effect learners also take the validation
        records, which choose their policy's default arm (never the effect models)."""
        from medai.modalities.treatment.effects import EffectLearner

        if isinstance(learner, EffectLearner):
            return learner.fit(X, y, X_val, y_val)
        return learner.fit(X, y)

    def describe_learner(self, learner, name: str) -> dict[str, Any]:
        params = {k: v for k, v in learner.get_params().items()}
        training = {"auto_selection": learner.selection_scores_} if learner.selection_scores_ else {}
        if getattr(learner, "selection_se_", None):
            training["auto_selection_se"] = learner.selection_se_
        if getattr(learner, "arm_values_", None):
            training["policy_default_arm"] = {"arm": int(learner.default_arm_), **learner.arm_values_}
        return {"name": learner.chosen_learner_, "hyperparameters": params, "training": training}

    def save_learner(self, learner) -> dict[str, bytes]:
        from medai.modalities.treatment.persist import savable

        with _deep_recursion(), savable(learner):  # skops walks forests' trees recursively
            return super().save_learner(learner)

    def load_learner(self, directory: Path, meta: dict[str, Any]):
        from medai.modalities.treatment.persist import restore

        with _deep_recursion():
            return restore(super().load_learner(directory, meta))

    def trusted_modules(self) -> tuple[str, ...]:
        return ("medai.modalities.treatment.", "sksurv.", "econml.", "lightgbm.")

    def embed(self, learner, X) -> np.ndarray:
        return learner.transform(X)

    def record_extras(self, model, X, records=None) -> dict[str, list]:
        from medai.modalities.tabular.schema import range_extras

        return range_extras(model, X, records)

    # -- explaining ----------------------------------------------------------------------------------------
    def explain(self, model, X, top_k: int = 5) -> list[dict[str, Any]]:
        from medai.modalities.treatment import reporting

        return reporting.explain(model, X, top_k)

    def report_extras(self, model, X_test, y_test) -> dict[str, Any]:
        from medai.modalities.treatment import reporting

        extras = reporting.report_extras(model, X_test, y_test)
        extras["limitations"] = [*LIMITATIONS[model.kind], *extras.get("limitations", [])]
        return extras

    def register_cli(self, app) -> None:
        from medai.modalities.treatment.cli import register

        register(app)


register_modality(TreatmentModality())

from medai.modalities.treatment import tasks  # noqa: E402,F401  (registers the built-in tasks)
