"""The longitudinal modality: irregular multivariate time series of ICU stays or patient histories.

Reads the PhysioNet 2012 challenge layout (a folder or ``.tar.gz`` of per-stay files) and long tables (CSV/Parquet:
``id, time, variable|code, value``, which covers MEDS event tables) with a labels file (``--labels``); learns with
summary features + LightGBM (``lightgbm``, the default), a GRU-D-style recurrent network (``grud``), a causal
Transformer over hourly observations (``transformer``) or the mean of LightGBM and GRU-D (``ensemble``).
Visit histories (admissions with their diagnosis, procedure and drug codes: PyHealth's MIMIC-IV tasks, see
:mod:`visit_data`) are learned by a bag of codes + logistic regression (``bag-of-codes``) or a GRU/Transformer over
the visits (``visit-gru``, ``visit-transformer``), for binary, multiclass and multilabel targets. A model
scores a stay at any hour from the data seen so far (:meth:`Stays.until`), which gives the early-warning
evaluation (discrimination by hours of data seen, alerts and lead time), ``medai stream replay`` and the service's
streams.

polars reads and summarises (lazy scans of only the needed columns, one group-by for the features): columnar and
multi-threaded, with no server, and it reads Parquet and gzip CSV alike; torch is imported only by the networks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medai.data.dataset import Dataset, Inputs
from medai.errors import MedAIError
from medai.modalities import FILES, CliOption, Modality, register_modality

LEARNERS = ("lightgbm", "grud", "transformer", "ensemble", "auto")
VISIT_LEARNERS = ("bag-of-codes", "visit-gru", "visit-transformer")  # over visit histories (visit tasks)
ALIASES = {"gbm": "lightgbm", "gru-d": "grud", "attention": "transformer", "lgbm": "lightgbm",
           "lightgbm+grud": "ensemble", "bag": "bag-of-codes", "logistic": "bag-of-codes"}
# on visit histories, the time-series names mean the visit learners
VISIT_ALIASES = {"auto": "bag-of-codes", "gru": "visit-gru", "grud": "visit-gru", "transformer": "visit-transformer"}
_TRAIN, _READ = ("train",), ("train", "predict", "evaluate", "explain")


def _hash_ids(ids) -> np.ndarray:
    return np.array([int(hashlib.sha1(str(i).encode()).hexdigest()[:15], 16) for i in ids], dtype=np.int64)


class LongitudinalModality(Modality):
    name = "longitudinal"
    description = "Irregular time series of stays (PhysioNet 2012 layout, long/MEDS tables): risk as data arrives"
    input_contract = FILES
    reads = "time series of stays"
    default_learner = "auto"
    explain_in_tables = False
    cli_options = (
        CliOption("--labels", "Longitudinal: the labels file (one row per stay: id, outcome columns).",
                  commands=_READ),
        CliOption("--window-hours", "Longitudinal: observation window (hours since the index time) to use.", float,
                  commands=_READ),
        CliOption("--epochs", "Longitudinal networks (and other modalities): maximum training epochs.", int,
                  commands=_TRAIN),
    )

    # -- reading -----------------------------------------------------------------------------------------
    def claims(self, path: Path, options) -> int:
        from medai.modalities.longitudinal.reading import TABLE_SUFFIXES, challenge_layout, long_table_columns

        path = Path(path)
        if challenge_layout(path):
            return 2
        if path.is_file() and path.name.lower().endswith(TABLE_SUFFIXES) and long_table_columns(path):
            return 2 if options.extra.get("labels") else 1
        return 0

    def _read(self, path: Path, options: dict):
        from medai.modalities.longitudinal.reading import read_stays

        window = options.get("window_hours")
        if window is not None and window <= 0:
            raise MedAIError(f"--window-hours must be positive, got {window}")
        return read_stays(Path(path), window)

    def read_training_data(self, path: Path, options) -> Dataset:
        from medai.modalities.longitudinal.reading import read_labels

        self._check_learner(options.learner)
        labels = options.extra.get("labels")
        if not labels:
            raise MedAIError(f"{path} holds observations only: give the outcomes with --labels FILE (one row per "
                             "stay: its id and the outcome column named by --target)")
        read = self._read(path, options.extra)
        y, target, table = read_labels(Path(labels), options.target, read.stays.ids, read.id_column)
        return self.dataset(read, y, target, table, source=str(path), labels=str(labels),
                            group_column=options.group_column)

    def load_task_data(self, task, options) -> Dataset:
        from medai.modalities.longitudinal.tasks import load_task_data

        self._check_learner(options.learner)
        return load_task_data(self, task, options)

    def dataset(self, read, y: pd.Series, target: str, table: pd.DataFrame, *, source: str, labels: str,
                group_column: str | None = None, license: str = "user data", citation: str = "",
                official_split: dict[str, np.ndarray] | None = None, split_protocol: str | None = None,
                subgroups: pd.DataFrame | None = None) -> Dataset:
        stays, notes = read.stays, list(read.notes)
        known = y.notna().to_numpy()
        if not known.any():
            raise MedAIError(f"no stay of {source} has a label in {labels} (ids like {stays.ids[0]!r} expected "
                             f"in its id column)")
        if not known.all():
            notes.append(f"{int((~known).sum())} stay(s) without a label in {Path(labels).name} left out")
        keep = np.flatnonzero(known)
        stays = stays.take(keep)
        groups = stays.ids.astype(object)
        group_name = "stay"
        if group_column:
            if group_column not in table.columns:
                raise MedAIError(f"--group-column {group_column!r} is not in {labels}; columns: {list(table.columns)}")
            groups = table[group_column].reindex(pd.Index(stays.ids)).astype(str).to_numpy(dtype=object)
            group_name = group_column
        if official_split is not None:
            position = {old: new for new, old in enumerate(keep)}
            official_split = {k: np.array([position[i] for i in v if i in position]) for k, v in official_split.items()}
        schema = {"variables": list(stays.variables), "id_column": read.id_column,
                  "window_hours": read.window_hours,
                  "layout": "stays: PhysioNet 2012 per-stay files (folder or .tar.gz) or a long table "
                            "(id, time, variable, value)"}
        return Dataset(X=stays, y=y.iloc[keep].reset_index(drop=True), target_column=target, input_schema=schema,
                       source=source, license=license, citation=citation, fingerprint=_fingerprint(stays),
                       groups=groups, group_column=group_name, official_split=official_split,
                       split_protocol=split_protocol, record_keys=_hash_ids(stays.ids),
                       subgroup_frame=None if subgroups is None else subgroups.iloc[keep].reset_index(drop=True),
                       notes=notes, options={"labels_table": table})

    def read_inputs(self, path: Path, model, labelled: bool = False, options: dict | None = None) -> Inputs:
        from medai.modalities.longitudinal.reading import read_labels

        options = options or {}
        if model.input_schema.get("visit_task"):
            raise MedAIError(f"model {model.name!r} learned visit histories of the built-in task "
                             f"{model.input_schema['visit_task']!r}; it scores the samples that task builds "
                             "(Python API: medai.modalities.longitudinal.visit_data), not files of stays")
        if "window_hours" not in options and model.input_schema.get("window_hours"):
            options = {**options, "window_hours": model.input_schema["window_hours"]}
        read = self._read(path, options)
        stays, notes = self._align(read.stays, model, read.notes)
        y = None
        if labelled:
            if not options.get("labels"):
                raise MedAIError("evaluating stays needs their outcomes: --labels FILE")
            y, _, table = read_labels(Path(options["labels"]), model.target.column, stays.ids, read.id_column)
            known = y.notna().to_numpy()
            if not known.all():
                notes.append(f"{int((~known).sum())} stay(s) without a label left out")
            stays, y = stays.take(np.flatnonzero(known)), y[known].reset_index(drop=True)
            model.cache["labels_table"] = table
        return Inputs(stays, [str(i) for i in stays.ids], read.id_column, y, notes)

    def _align(self, stays, model, notes: list[str]):
        stays, unknown = stays.with_variables(tuple(model.input_schema["variables"]))
        notes = list(notes)
        if unknown:
            notes.append(f"{len(unknown)} variable(s) the model does not know left out: {', '.join(unknown[:10])}")
        return stays, notes

    def inputs_from_files(self, paths: list[Path], model):
        from medai.modalities.longitudinal.stays import concat

        window = model.input_schema.get("window_hours")
        parts = [self._align(self._read(p, {"window_hours": window}).stays, model, [])[0] for p in paths]
        return concat(parts)

    # -- learning ----------------------------------------------------------------------------------------
    @staticmethod
    def _check_learner(name: str | None) -> None:
        name = ALIASES.get(name or "auto", name or "auto")
        if name not in LEARNERS + VISIT_LEARNERS + tuple(VISIT_ALIASES):
            raise MedAIError(f"unknown learner {name!r} for longitudinal data; choose one of "
                             f"{', '.join(LEARNERS + VISIT_LEARNERS)}")

    def learners(self, kind: str) -> tuple[str, ...]:
        if kind == "multilabel":
            return VISIT_LEARNERS
        return LEARNERS + VISIT_LEARNERS if kind in ("binary", "multiclass") else \
            ("lightgbm", "auto") if kind == "regression" else ()

    def make_learner(self, name: str, target, options, task, dataset):
        from medai.modalities.longitudinal.histories import VisitHistories

        name = ALIASES.get(name, name)
        self._check_learner(name)
        extra = options.extra
        if isinstance(getattr(dataset, "X", None), VisitHistories):  # no dataset: a learner for stays
            return self._visit_learner(VISIT_ALIASES.get(name, name), target, options)
        if name in VISIT_LEARNERS:
            raise MedAIError(f"learner {name!r} learns from visit histories (the mimic4demo visit tasks); "
                             f"time series of stays take {', '.join(LEARNERS)}")
        if name in ("grud", "transformer", "ensemble"):
            from medai.modalities.longitudinal.networks import SequenceNetwork

            if target.kind not in ("binary", "multiclass"):
                raise MedAIError(f"the {name} network predicts classes; a {target.kind} target needs lightgbm")
            if name == "ensemble":
                from medai.modalities.longitudinal.ensemble import AveragedLearners

                return AveragedLearners(n_classes=max(2, len(target.classes)),
                                        epochs=int(extra.get("epochs") or 30), seed=options.seed,
                                        progress=options.show_progress)
            return SequenceNetwork(architecture=name, n_classes=max(2, len(target.classes)),
                                   epochs=int(extra.get("epochs") or 30), seed=options.seed,
                                   progress=options.show_progress)
        from medai.modalities.longitudinal.learners import SummaryBoosting

        return SummaryBoosting(task=target.kind, seed=options.seed)

    @staticmethod
    def _visit_learner(name: str, target, options):
        from medai.modalities.longitudinal.visit_learners import BagOfCodes, check_kind

        if name not in VISIT_LEARNERS:
            raise MedAIError(f"learner {name!r} does not take visit histories; choose one of "
                             f"{', '.join(VISIT_LEARNERS)}")
        check_kind(target.kind)
        n_outputs = max(2, len(target.classes))
        if name == "bag-of-codes":
            return BagOfCodes(kind=target.kind, n_outputs=n_outputs, seed=options.seed)
        from medai.modalities.longitudinal.visit_networks import VisitNetwork

        return VisitNetwork(architecture=name.removeprefix("visit-"), kind=target.kind, n_outputs=n_outputs,
                            epochs=int(options.extra.get("epochs") or 40), seed=options.seed,
                            progress=options.show_progress)

    def fit(self, learner, X, y, X_val=None, y_val=None):
        return learner.fit(X, y, X_val, y_val)

    def describe_learner(self, learner, name: str) -> dict[str, Any]:
        from medai.modalities.base import json_params

        params = json_params(learner.get_params())
        if hasattr(learner, "vocabulary_"):  # visit learners
            training = {"codes": len(learner.vocabulary_)}
            if hasattr(learner, "best_epoch_"):
                training["best_epoch"] = int(learner.best_epoch_)
            return {"name": learner.describe(), "hyperparameters": params, "training": training}
        if hasattr(learner, "boosting_"):
            return {"name": learner.describe(), "hyperparameters": params,
                    "training": {"trees": int(learner.best_iteration_), "best_epoch": int(learner.best_epoch_)}}
        if hasattr(learner, "booster_"):
            extended = getattr(learner, "summaries", "basic") == "extended"
            return {"name": "LightGBM on summary features (last/min/max/mean/slope/count per variable"
                            + (", derived variables, SAPS-I)" if extended else ")"),
                    "hyperparameters": params, "training": {"trees": int(learner.best_iteration_)}}
        return {"name": learner.describe(), "hyperparameters": params,
                "training": {"best_epoch": int(learner.best_epoch_)}}

    def save_learner(self, learner) -> dict[str, bytes]:
        return learner.to_files()  # LightGBM's text model or safetensors, each with a JSON config

    def load_learner(self, directory: Path, meta: dict[str, Any]):
        from medai.modalities.longitudinal.ensemble import ENSEMBLE, AveragedLearners
        from medai.modalities.longitudinal.learners import BOOSTER, STATE, SummaryBoosting
        from medai.modalities.longitudinal.networks import CONFIG, WEIGHTS
        from medai.modalities.longitudinal.visit_learners import BAG, BagOfCodes
        from medai.modalities.longitudinal.visit_networks import CONFIG as VISIT_CONFIG
        from medai.modalities.longitudinal.visit_networks import WEIGHTS as VISIT_WEIGHTS

        if (directory / BAG).is_file():
            return BagOfCodes.from_files((directory / BAG).read_bytes())
        if (directory / VISIT_WEIGHTS).is_file():
            from medai.modalities.longitudinal.visit_networks import VisitNetwork

            return VisitNetwork.from_files((directory / VISIT_WEIGHTS).read_bytes(),
                                           (directory / VISIT_CONFIG).read_bytes())
        if (directory / ENSEMBLE).is_file():
            return AveragedLearners.from_files({name: (directory / name).read_bytes()
                                                for name in (ENSEMBLE, BOOSTER, STATE, WEIGHTS, CONFIG)})
        if (directory / WEIGHTS).is_file():
            from medai.modalities.longitudinal.networks import SequenceNetwork

            return SequenceNetwork.from_files((directory / WEIGHTS).read_bytes(), (directory / CONFIG).read_bytes())
        if (directory / BOOSTER).is_file():
            return SummaryBoosting.from_files((directory / BOOSTER).read_bytes(), (directory / STATE).read_bytes())
        raise MedAIError(f"{directory} holds no longitudinal model weights ({WEIGHTS} or {BOOSTER})")

    # -- explaining, reporting ---------------------------------------------------------------------------
    def explain(self, model, X, top_k: int = 5) -> list[dict[str, Any]]:
        from medai.modalities.longitudinal.explain import explain_stays
        from medai.modalities.longitudinal.histories import VisitHistories

        if isinstance(X, VisitHistories):
            from medai.modalities.longitudinal.visit_explain import explain_visits

            return explain_visits(model, X, top_k)

        return explain_stays(model, X, top_k)

    def report_extras(self, model, X_test, y_test) -> dict[str, Any]:
        from medai.modalities.longitudinal.histories import VisitHistories
        from medai.modalities.longitudinal.report import report_extras

        if isinstance(X_test, VisitHistories):  # no hours to replay: the kind's metrics are the report
            return {"limitations": ["The MIMIC-IV demo has 100 patients: its test split (about 20 patients) "
                                    "cannot rank models or validate one."]}

        return report_extras(model, X_test, y_test)

    def evaluation_extras(self, model, inputs, y, scores) -> dict[str, Any]:
        from medai.modalities.longitudinal.report import evaluation_extras

        return evaluation_extras(model, inputs, y, scores)

    def routers(self) -> list:
        from medai.modalities.longitudinal.streams import router

        return [router]

    def register_cli(self, app) -> None:
        from medai.modalities.longitudinal.cli import stream_app

        app.add_typer(stream_app, name="stream")


def _fingerprint(stays) -> str:
    digest = hashlib.sha256()
    for array in (stays.offsets, stays.time, stays.var, stays.value):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update("\n".join(stays.variables).encode())
    return digest.hexdigest()


register_modality(LongitudinalModality())

from medai.modalities.longitudinal import tasks  # noqa: E402,F401  (registers the built-in tasks)
