"""The molecules modality: drug activity and property prediction from SMILES.

RDKit reads and standardises the molecules and computes their features (Morgan counts, RDKit 2D descriptors,
MACCS); the learners are a random forest, extra trees, LightGBM, a MinMax (Tanimoto on counts) kernel SVM on
Morgan counts, an ensemble of them (``auto``) and chemprop's D-MPNN. The modality computes its own split
(scaffold, random, balanced scaffold, or a column), adds an applicability domain to every prediction
(nearest-training-molecule Tanimoto similarity on ECFP4 bits; the artifact keeps the training molecules' packed
fingerprints, never their SMILES) and draws per-atom contribution maps.

RDKit, chemprop and torch are imported inside the methods that need them (``pip install 'medai[molecules]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medai.data.dataset import Dataset, Inputs
from medai.errors import MedAIError
from medai.modalities import RECORDS, CliOption, Modality, register_modality
from medai.modalities.base import json_params
from medai.modalities.molecules import domain
from medai.modalities.molecules.learners import MoleculeForest

LEARNERS = ("rf", "extratrees", "lightgbm", "svm", "chemprop", "auto")
ALIASES = {"random-forest": "rf", "lgbm": "lightgbm", "mpnn": "chemprop", "d-mpnn": "chemprop", "et": "extratrees",
           "extra-trees": "extratrees", "tanimoto-svm": "svm", "minmax-svm": "svm"}
_TRAIN, _READ = ("train",), ("train", "predict", "evaluate", "explain")


class MoleculesModality(Modality):
    name = "molecules"
    description = "Molecules as SMILES (CSV/Parquet/SDF): activity and property prediction"
    input_contract = RECORDS
    reads = "SMILES strings"
    default_learner = "auto"
    explain_in_tables = False  # an atom map is a picture: `medai explain` draws it
    cli_options = (
        CliOption("--smiles-column", "Molecules: the column holding SMILES (default: found by name or content).",
                  commands=_READ),
        CliOption("--smiles", "Molecules: a SMILES to predict or explain (repeatable) instead of INPUT.",
                  multiple=True, commands=("predict", "explain")),
        CliOption("--split", "Molecules: scaffold (deterministic Bemis-Murcko), random or balanced-scaffold.",
                  commands=_TRAIN),
        CliOption("--split-column", "Molecules: a column saying train/val/test per molecule.", commands=_TRAIN),
        CliOption("--features", "Molecules: morgan,rdkit2d,maccs (comma-separated; default all three).",
                  commands=_TRAIN),
        CliOption("--radius", "Molecules: Morgan radius (2 = ECFP4).", int, commands=_TRAIN),
        CliOption("--n-bits", "Molecules: Morgan fingerprint size.", int, commands=_TRAIN),
        CliOption("--tautomer", "Molecules: standardise to the canonical tautomer.", is_flag=True, commands=_TRAIN),
        CliOption("--duplicates", "Molecules: merge (default) or keep molecules repeated after standardisation.",
                  commands=_TRAIN),
        CliOption("--domain-threshold", "Molecules: nearest-train Tanimoto similarity below which a molecule is "
                  f"outside the applicability domain (default {domain.THRESHOLD}).", float, commands=_TRAIN),
        CliOption("--epochs", "Molecules (chemprop) and images: maximum training epochs.", int, commands=_TRAIN),
        CliOption("--n-estimators", "Molecules: trees of the forests and of LightGBM (default 500).", int,
                  commands=_TRAIN),
        CliOption("--mpnn-descriptors", "Molecules: give chemprop RDKit 2D descriptors as extra features.",
                  is_flag=True, commands=_TRAIN),
    )

    # -- reading -----------------------------------------------------------------------------------------
    def claims(self, path: Path, options) -> int:
        from medai.modalities.molecules.reading import claims_file

        return claims_file(Path(path), options)

    @staticmethod
    def _check_learner(options) -> None:
        """A misspelt learner is refused before any molecule is read."""
        name = ALIASES.get(options.learner or "auto", options.learner or "auto")
        if name not in LEARNERS:
            raise MedAIError(f"unknown learner {options.learner!r} for molecules; choose one of {', '.join(LEARNERS)}")

    def read_training_data(self, path: Path, options) -> Dataset:
        from medai.modalities.molecules.reading import read_user_data

        self._check_learner(options)
        return domain.with_threshold(read_user_data(Path(path), options), options)

    def load_task_data(self, task, options) -> Dataset:
        from medai.data.registry import get_dataset
        from medai.modalities.molecules.reading import build_dataset

        self._check_learner(options)
        spec = get_dataset(task.dataset)
        return domain.with_threshold(build_dataset(
            spec.load(), options, source=spec.name, smiles_column=task.options.get("smiles_column"),
            targets=task.target.split(","), license=spec.license, citation=spec.citation,
            split=task.options.get("split"), regression=task.kind == "regression"), options)

    def read_inputs(self, path: Path, model, labelled: bool = False, options: dict | None = None) -> Inputs:
        from medai.modalities.molecules.reading import read_frame

        frame = read_frame(Path(path))
        targets = model.target.column.split(",") if labelled else None
        return self._inputs(frame, model, str(path), targets, (options or {}).get("smiles_column"))

    def inputs_from_options(self, model, options: dict) -> Inputs | None:
        if not options.get("smiles"):
            return None
        import pandas as pd

        frame = pd.DataFrame({"smiles": list(options["smiles"])})
        return self._inputs(frame, model, "--smiles", None, "smiles")

    def inputs_from_frame(self, frame, model, source: str = "table", labelled: bool = False) -> Inputs:
        return self._inputs(frame, model, source, model.target.column.split(",") if labelled else None, None)

    def _inputs(self, frame, model, source, targets, smiles_column) -> Inputs:
        from medai.modalities.molecules.reading import inputs_from_frame

        inputs = inputs_from_frame(frame, model.input_schema, source, targets, smiles_column)
        if len(inputs) == 0:
            raise MedAIError(f"no SMILES in {source} could be read: {'; '.join(inputs.notes)}")
        for note in inputs.notes:
            from medai.console import err

            err.print(f"note: {note}", markup=False, highlight=False)
        return inputs

    def inputs_from_records(self, records: list[dict[str, Any]], model) -> np.ndarray:
        from medai.modalities.molecules.chem import Standardiser, require_rdkit, standardise_all

        require_rdkit()
        values = [record.get("smiles") for record in records]
        smiles, reasons = standardise_all(values, Standardiser(**model.input_schema.get("standardise", {})))
        bad = [i for i, s in enumerate(smiles) if s is None]
        if bad:
            i = bad[0]
            raise MedAIError(f"record {i}: field 'smiles' {str(values[i])[:60]!r} is not a valid molecule "
                             f"({reasons[i]})" + (f"; {len(bad) - 1} more invalid" if len(bad) > 1 else ""))
        return np.array(smiles, dtype=object)

    def records_column(self, series) -> str | None:
        from medai.modalities.molecules.reading import looks_like_smiles

        return "SMILES strings" if series.dtype == object and looks_like_smiles(series) else None

    # -- learning ----------------------------------------------------------------------------------------
    def learners(self, kind: str) -> tuple[str, ...]:
        return LEARNERS

    def make_learner(self, name: str, target, options, task, dataset):
        from medai.modalities.molecules.features import Featurizer, parse_kinds

        name = ALIASES.get(name, name)
        extra = options.extra
        if name == "chemprop":
            from medai.modalities.molecules.mpnn import ChempropLearner

            return ChempropLearner(task=target.kind, n_classes=max(2, len(target.classes)),
                                   epochs=int(extra.get("epochs") or 50), seed=options.seed,
                                   descriptors=bool(extra.get("mpnn_descriptors")), progress=options.show_progress)
        if name not in LEARNERS:
            raise MedAIError(f"unknown learner {name!r} for molecules; choose one of {', '.join(LEARNERS)}")
        features = extra.get("features") or "morgan,rdkit2d,maccs"
        Featurizer(parse_kinds(features), int(extra.get("radius") or 2), int(extra.get("n_bits") or 2048))
        trees = int(extra.get("n_estimators") or 500)
        if trees < 1:
            raise MedAIError(f"--n-estimators must be at least 1, got {trees}")
        split = extra.get("split") or (task.options.get("split") if task is not None else None) or "scaffold"
        return MoleculeForest(model=name, task=target.kind, features=features, radius=int(extra.get("radius") or 2),
                              n_bits=int(extra.get("n_bits") or 2048), n_estimators=trees, seed=options.seed,
                              selection="random" if split == "random" else "scaffold")

    def describe_learner(self, learner, name: str) -> dict[str, Any]:
        params = json_params(learner.get_params())
        if isinstance(learner, MoleculeForest):
            selection = getattr(learner, "selection_", None)
            return {"name": learner.describe(), "hyperparameters": params,
                    "training": {"selection": selection} if selection else {}}
        return {"name": "chemprop D-MPNN" + (" + RDKit 2D descriptors" if learner.descriptors else ""),
                "hyperparameters": params, "training": {"best_epoch": int(learner.best_epoch_)}}

    def save_learner(self, learner) -> dict[str, bytes]:
        if isinstance(learner, MoleculeForest):
            return super().save_learner(learner)
        return learner.to_files()

    def load_learner(self, directory: Path, meta: dict[str, Any]):
        from medai.modalities.molecules.mpnn import CONFIG, WEIGHTS

        if (directory / WEIGHTS).is_file():
            from medai.modalities.molecules.mpnn import ChempropLearner

            return ChempropLearner.from_files((directory / WEIGHTS).read_bytes(), (directory / CONFIG).read_bytes())
        return super().load_learner(directory, meta)

    def trusted_modules(self) -> tuple[str, ...]:
        return ("medai.modalities.molecules.",)

    def embed(self, learner, X) -> np.ndarray | None:
        return learner.embed(X)

    # -- trust -------------------------------------------------------------------------------------------
    def record_extras(self, model, X, records=None) -> dict[str, list[Any]]:
        if X is None:  # no fast path here: the road always has the standardised molecules
            X = self.inputs_from_records(records or [], model)
        return domain.record_extras(model, X)

    def explain(self, model, X, top_k: int = 5) -> list[dict[str, Any]]:
        from medai.modalities.molecules.explain import explain_molecules

        return explain_molecules(model, X, top_k)

    def report_extras(self, model, X_test, y_test) -> dict[str, Any]:
        return domain.report(model, X_test, y_test)


register_modality(MoleculesModality())

from medai.modalities.molecules import tasks  # noqa: E402,F401  (registers the built-in tasks)
