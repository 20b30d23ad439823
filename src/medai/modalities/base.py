"""The plug-in contract of a modality.

A modality is one folder under ``medai/modalities/`` (or any installed package) holding a subclass of
:class:`Modality` and one call to :func:`medai.modalities.register_modality`. It supplies:

- **reading**: which ``--data`` paths it claims (:meth:`claims`), how it reads a user's training data
  (:meth:`read_training_data`) and a built-in task's data (:meth:`load_task_data`), and how it reads inputs
  to predict (:meth:`read_inputs` for files and folders, :meth:`inputs_from_records` for the service's JSON);
- **learners** following scikit-learn conventions (:meth:`learners`, :meth:`make_learner`, :meth:`fit`) and
  how their weights are stored without pickle (:meth:`save_learner`, :meth:`load_learner`);
- **explaining** one prediction (:meth:`explain`) and what the report shows besides the kind's metrics
  (:meth:`report_extras`);
- its **input contract** for the service: ``"records"`` (JSON objects with named fields, validated against
  the model's ``input_schema``) or ``"files"`` (uploads);
- its own **command-line options** (:attr:`cli_options`) and, optionally, extra commands and service routes.

Everything else (splits, decision rule, evaluation, conformal uncertainty, report, card, artifact,
registry, CLI, service) is the road's. A modality never branches on another modality's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from medai.data.dataset import Dataset, Inputs
from medai.errors import MedAIError

if TYPE_CHECKING:  # pragma: no cover
    from medai.road.model import Model
    from medai.road.options import TrainOptions
    from medai.tasks import Task
    from medai.tasks.kinds import TargetSpec

RECORDS, FILES = "records", "files"


@dataclass(frozen=True)
class CliOption:
    """A command-line option a modality adds to ``medai train`` (and other commands named in ``commands``).

    Its value reaches the modality as ``options.extra[dest]``.
    """

    flag: str
    help: str
    type: Any = str
    default: Any = None
    is_flag: bool = False
    multiple: bool = False
    commands: tuple[str, ...] = ("train",)

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


class Modality:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    input_contract: ClassVar[str] = RECORDS
    cli_options: ClassVar[tuple[CliOption, ...]] = ()
    default_learner: ClassVar[str] = "auto"
    reads: ClassVar[str] = ""  # what kind of values it reads, as a user would say it ("SMILES strings")
    explain_in_tables: ClassVar[bool] = True  # add a one-line explanation to `medai predict` tables by default

    # -- reading -----------------------------------------------------------------------------------------
    def claims(self, path: Path, options: TrainOptions) -> int:
        """How surely ``path`` is this modality's data: 0 no, 1 it can read it, 2 it is clearly its kind, 3 the
        user gave options that only this modality reads (e.g. ``--time/--event``), which outweighs any sniffing."""
        return 0

    def read_training_data(self, path: Path, options: TrainOptions) -> Dataset:
        raise MedAIError(f"the {self.name} modality cannot read --data")

    def load_task_data(self, task: Task, options: TrainOptions) -> Dataset:
        raise MedAIError(f"the {self.name} modality has no built-in data for task {task.name!r}")

    def read_inputs(self, path: Path, model: Model, labelled: bool = False, options: dict | None = None) -> Inputs:
        """Records to predict from a file or folder; with ``labelled``, also their targets (``Inputs.y``).
        ``options`` holds the values of the modality's command-line options."""
        raise MedAIError(f"the {self.name} modality cannot read {path}")

    def inputs_from_options(self, model: Model, options: dict) -> Inputs | None:
        """Records given on the command line by the modality's own options (e.g. ``--smiles``) when INPUT is
        left out of ``medai predict``/``explain``; ``None`` when there are none."""
        return None

    def input_files(self, path: Path) -> list[Path]:
        """The files a files-contract model predicts from ``path`` (a file, or a folder searched recursively),
        in a stable order: what batch inference on a cluster hands to :meth:`inputs_from_files` in batches."""
        if not path.exists():
            raise MedAIError(f"{path} does not exist")
        if path.is_file():
            return [path]
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))

    def inputs_from_records(self, records: list[dict[str, Any]], model: Model) -> Any:
        """The service's validated JSON records -> what the learner takes (records contract)."""
        raise MedAIError(f"{self.name} models do not take JSON records")

    def inputs_from_frame(self, frame, model: Model, source: str = "table", labelled: bool = False) -> Inputs:
        """A pandas DataFrame of records (records contract) -> inputs (and targets when ``labelled``)."""
        raise MedAIError(f"{self.name} models do not take tables of records")

    def inputs_from_files(self, paths: list[Path], model: Model) -> Any:
        """Uploaded files (already de-identified where DICOM) -> what the learner takes (files contract)."""
        raise MedAIError(f"{self.name} models do not take files")

    def records_column(self, series) -> str | None:
        """Whether a table column holds this modality's values (e.g. SMILES): the hint to give a user."""
        return None

    # -- learning ----------------------------------------------------------------------------------------
    def learners(self, kind: str) -> tuple[str, ...]:
        return ()

    def make_learner(self, name: str, target: TargetSpec, options: TrainOptions, task: Task, dataset: Dataset):
        """An unfitted learner for ``target`` (scikit-learn conventions: ``fit``, ``predict_proba`` for
        classifiers - ``(n, classes)``, or ``(n, labels)`` for multilabel - and ``predict`` for regression)."""
        raise NotImplementedError

    def fit(self, learner, X, y, X_val=None, y_val=None):
        """Fit on training records; a learner that declares ``watches_validation`` (it stops early or keeps its
        best epoch) also gets the validation records."""
        if getattr(learner, "watches_validation", False):
            return learner.fit(X, y, X_val, y_val)
        return learner.fit(X, y)

    def describe_learner(self, learner, name: str) -> dict[str, Any]:
        """``{"name", "hyperparameters", "training"}`` for model.json and the report."""
        params = learner.get_params() if hasattr(learner, "get_params") else {}
        return {"name": name, "hyperparameters": json_params(params), "training": {}}

    def save_learner(self, learner) -> dict[str, bytes]:
        """Weights as files (name -> bytes) in a format that cannot run code on load."""
        from medai.modalities.skops_io import dumps

        return {"model.skops": dumps(learner)}

    def load_learner(self, directory: Path, meta: dict[str, Any]):
        from medai.modalities.skops_io import loads

        path = directory / "model.skops"
        return loads(path.read_bytes(), str(path), self.trusted_modules())

    def trusted_modules(self) -> tuple[str, ...]:
        """Module prefixes whose types the skops loader may build (besides scikit-learn, numpy, scipy)."""
        return (type(self).__module__ + ".",)

    # -- checking, explaining, reporting -----------------------------------------------------------------
    def check_data(self, dataset: Dataset, target: TargetSpec, y: np.ndarray) -> list[str]:
        """Warnings about the training data once the target is known (e.g. a feature that leaks it)."""
        return []

    def explain(self, model: Model, X, top_k: int = 5) -> list[dict[str, Any]]:
        """One explanation per record: any of ``contributions`` (list of ``{feature, value, contribution}``),
        ``summary`` (one line), ``image_png`` (bytes), plus JSON-able details."""
        raise MedAIError(f"{self.name} models have no explanation method")

    def report_extras(self, model: Model, X_test, y_test: np.ndarray) -> dict[str, Any]:
        """What the report adds for this modality (``y_test`` as the learner takes it): ``plots``
        (name -> PNG), ``metrics`` (metrics.json entries), ``tables``, ``limitations``."""
        return {}

    def evaluation_extras(self, model: Model, inputs: Inputs, y: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
        """What ``medai evaluate`` adds beside ``test`` for this modality (``y`` the outcome as the metrics take it,
        ``scores`` the model's): e.g. a challenge's own score, or metrics by hours of data seen."""
        return {}

    def cv_fold_extras(self, y: np.ndarray, s: np.ndarray, target: TargetSpec) -> dict[str, float]:
        """Metrics this modality adds to the kind's decision-free metrics of each cross-validation fold (``y`` as
        the metrics take it, ``s`` the kind's scores), e.g. the accuracy at the most probable class."""
        return {}

    def embed(self, learner, X) -> np.ndarray | None:
        """A numeric representation of records (for a conformal difficulty estimate), or ``None``."""
        return None

    def record_extras(self, model: Model, X, records: list[dict[str, Any]] | None = None) -> dict[str, list[Any]]:
        """Per-record fields added to every prediction (JSON item and CSV column), e.g. an applicability
        domain: ``{"in_domain": [...], "nearest_train_similarity": [...]}``. By convention
        ``outside_training_data`` (bool per record) flags records the model cannot vouch for, with the reasons in
        ``out_of_range``; the road refuses those records when the user asks it to. ``X`` is ``None`` only when
        the service scored validated JSON ``records`` on the modality's fast path (``records_scores``)."""
        return {}

    def records_scores(self, model: Model, records: list[dict[str, Any]]) -> np.ndarray | None:
        """A faster way to score validated JSON records than ``inputs_from_records`` + the learner, if any."""
        return None

    def export(self, model: Model, fmt: str, destination: Path) -> str:
        raise MedAIError(f"{self.name} models cannot be exported as {fmt}")

    # -- extension points --------------------------------------------------------------------------------
    def register_cli(self, app) -> None:
        """Add this modality's own commands to the ``medai`` command line (a typer app)."""

    def routers(self) -> list:
        """Extra service routers (FastAPI ``APIRouter`` with their own role dependency) under ``/v1``."""
        return []


def labelled_records(frame, model, source: str) -> tuple[Any, Any, list[str]]:
    """The records of ``frame`` that carry the model's target (one column, or several joined by commas for a
    multilabel model): ``(records, targets, notes)``; unlabelled records are left out and counted in ``notes``."""
    targets = model.target.column.split(",")
    absent = [t for t in targets if t not in frame.columns]
    if absent:
        raise MedAIError(f"{source} has no target column {absent[0]!r} to evaluate against")
    keep = frame[targets].notna().any(axis=1) if len(targets) > 1 else frame[targets[0]].notna()
    notes = [] if keep.all() else [f"{int((~keep).sum())} unlabelled record(s) left out"]
    frame = frame.loc[keep].reset_index(drop=True)
    return frame, (frame[targets] if len(targets) > 1 else frame[targets[0]]), notes


def json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Hyper-parameters as JSON values (anything else as its string)."""
    return {k: (v if isinstance(v, int | float | str | bool | type(None)) else str(v)) for k, v in params.items()}
