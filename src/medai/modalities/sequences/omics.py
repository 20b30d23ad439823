"""The omics modality: samples x genes matrices (gene expression as CSV/Parquet; variants from a VCF turned into
per-gene features) with SVD inside the pipeline and any tabular learner on top.

Registered by the sequences package (``medai.modalities.sequences``): the genomics extra serves both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medai.data.dataset import Dataset, Inputs
from medai.data.tables import read_table, table_format
from medai.errors import MedAIError
from medai.modalities import RECORDS, CliOption, Modality

WIDE = 500  # a table with at least this many numeric columns reads as an omics matrix
_TRAIN = ("train",)
_OWN = ("components", "reducer", "log_transform", "genes_in_rows", "region_size")


def _numeric_share(frame: pd.DataFrame) -> tuple[int, float]:
    numeric = frame.select_dtypes("number").shape[1]
    return numeric, numeric / max(1, frame.shape[1])


class OmicsModality(Modality):
    name = "omics"
    description = ("Samples x genes matrices: gene expression (CSV/Parquet) or per-gene variant features from a "
                   "VCF, with SVD inside the pipeline")
    input_contract = RECORDS
    reads = "gene expression or per-gene variant features"
    default_learner = "logistic"
    cli_options = (
        CliOption("--components", "Omics: SVD/PCA components (default min(50, samples - 1, genes - 1)).", int,
                  commands=_TRAIN),
        CliOption("--reducer", "Omics: svd (default), pca or none.", commands=_TRAIN),
        CliOption("--log-transform", "Omics: take log2(x + 1) of the values first (raw counts or intensities).",
                  is_flag=True, commands=_TRAIN),
        CliOption("--genes-in-rows", "Omics: the table has one row per gene and one column per sample.",
                  is_flag=True, commands=("train", "predict", "evaluate", "explain")),
        CliOption("--region-size", "Omics (VCF): bases per region for variants without a gene annotation "
                  "(default 100000).", int, commands=_TRAIN),
        CliOption("--labels", "Sequences and omics: a table of labels keyed by record (FASTA) or sample id.",
                  commands=("train", "evaluate")),
    )

    # -- reading -----------------------------------------------------------------------------------------
    def claims(self, path: Path, options) -> int:
        from medai.modalities.sequences.vcf import is_vcf

        path = Path(path)
        if not path.is_file():
            return 0
        if is_vcf(path):
            return 2
        if not table_format(path):
            return 0
        if any((options.extra or {}).get(key) for key in _OWN):
            return 2
        try:
            frame = read_table(path) if path.stat().st_size < 200_000_000 else None
        except MedAIError:
            return 0
        if frame is None:
            return 0
        numeric, share = _numeric_share(frame)
        return 2 if numeric >= WIDE and share >= 0.9 else 0

    def read_training_data(self, path: Path, options) -> Dataset:
        frame, notes, id_name = self._read(Path(path), options.extra or {}, options)
        return self._dataset(frame, options, str(path), notes, id_name)

    def load_task_data(self, task, options) -> Dataset:
        from dataclasses import replace

        from medai.data.registry import get_dataset

        spec = get_dataset(task.dataset)
        frame = spec.load()
        options = replace(options, target=task.target)
        return self._dataset(frame, options, spec.name, [], None, license=spec.license, citation=spec.citation)

    def _read(self, path: Path, extra: dict, options=None) -> tuple[pd.DataFrame, list[str], str | None]:
        from medai.modalities.sequences.vcf import is_vcf, read_vcf

        if is_vcf(path):
            frame, notes = read_vcf(path, int(extra.get("region_size") or 100_000))
            return frame.reset_index(), notes, "sample"
        frame = read_table(path)
        notes = []
        if extra.get("genes_in_rows"):
            gene = frame.columns[0]
            frame = frame.set_index(gene).T.rename_axis("sample").reset_index()
            notes.append(f"one row per gene in {path.name} (gene names in {gene!r}): transposed to samples x genes")
        id_name = next((c for c in frame.columns if str(c).lower() in ("sample", "sample_id", "id", "patient",
                                                                        "patient_id", "barcode")), None)
        return frame, notes, id_name

    def _dataset(self, frame: pd.DataFrame, options, source: str, notes: list[str], id_name: str | None,
                 license: str = "user data", citation: str = "") -> Dataset:
        from medai.modalities.sequences.reading import labels_from_file

        extra = options.extra or {}
        target = options.target
        if extra.get("labels"):
            if id_name is None:
                id_name = options.id_column or frame.columns[0]
            ids = frame[id_name].astype(str).tolist()
            labels, target, said = labels_from_file(ids, Path(extra["labels"]), None, target, source)
            frame = frame.assign(**{target: labels})
            notes = [*notes, *said]
        if not target:
            raise MedAIError(f"name the label column of {source} with --target, or give --labels FILE keyed by sample")
        if target not in frame.columns:
            raise MedAIError(f"--target {target!r} is not a column of {source} (nor of --labels); it has "
                             f"{frame.shape[1]} columns, e.g. {list(frame.columns[:5])}")
        y = frame[target]
        known = y.notna()
        if (~known).any():
            notes.append(f"{int((~known).sum())} sample(s) without a label left out")
        frame, y = frame[known].reset_index(drop=True), y[known].reset_index(drop=True)
        id_name = id_name or (options.id_column if options.id_column in frame.columns else None)
        X = frame.drop(columns=[c for c in (target, id_name) if c is not None])
        text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        if text:
            notes.append(f"{len(text)} non-numeric column(s) left out of the matrix: {text[:5]}")
            X = X.drop(columns=text)
        if X.shape[1] < 2:
            raise MedAIError(f"{source} has fewer than two numeric gene columns besides the target")
        values = X.to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        if finite.size and finite.min() >= 0 and finite.max() > 1000 and not extra.get("log_transform"):
            notes.append("the values look like raw counts or intensities (0 to "
                         f"{finite.max():.0f}): consider --log-transform")
        missing = int(np.isnan(values).sum())
        if missing:
            notes.append(f"{missing} missing value(s): imputed by the gene's training median inside the pipeline")
        notes.append(f"{X.shape[0]} samples x {X.shape[1]} genes/features")
        X.columns = [str(c) for c in X.columns]
        schema = {"fields": [{"name": c, "kind": "numeric"} for c in X.columns], "matrix": "samples x genes"}
        import hashlib

        fingerprint = hashlib.sha256(pd.util.hash_pandas_object(X, index=False).values.tobytes()
                                     + y.astype(str).str.cat().encode()).hexdigest()
        return Dataset(X=X, y=y, target_column=target, input_schema=schema, source=source, license=license,
                       citation=citation, fingerprint=fingerprint, notes=notes)

    def read_inputs(self, path: Path, model, labelled: bool = False, options: dict | None = None) -> Inputs:
        options = options or {}
        frame, notes, id_name = self._read(Path(path), options)
        y = None
        if labelled:
            target = model.target.column
            if options.get("labels"):
                from medai.modalities.sequences.reading import labels_from_file

                ids = frame[id_name or frame.columns[0]].astype(str).tolist()
                labels, _, _ = labels_from_file(ids, Path(options["labels"]), None, target, str(path))
                frame = frame.assign(**{target: labels})
            if target not in frame.columns:
                raise MedAIError(f"{path} has no column {target!r} with the true labels")
            y = frame[target]
        inputs = self.inputs_from_frame(frame, model, str(path))
        inputs.y, inputs.notes = y, notes + inputs.notes
        if id_name:
            inputs.ids, inputs.id_name = frame[id_name].astype(str).tolist(), id_name
        return inputs

    def inputs_from_frame(self, frame, model, source: str = "table", labelled: bool = False) -> Inputs:
        fields = [f["name"] for f in model.input_fields]
        present = [f for f in fields if f in frame.columns]
        if not present:
            raise MedAIError(f"none of the model's {len(fields)} genes/features is a column of {source} "
                             f"(e.g. {fields[:3]})")
        notes = []
        if len(present) < len(fields):
            notes.append(f"{len(fields) - len(present)} of the model's {len(fields)} features are missing from "
                         f"{source}: imputed by their training medians")
        X = frame.reindex(columns=fields).apply(pd.to_numeric, errors="coerce")
        y = frame[model.target.column] if labelled else None
        return Inputs(X, [f"row {i + 1}" for i in range(len(X))], "row", y, notes)

    def inputs_from_records(self, records: list[dict[str, Any]], model) -> pd.DataFrame:
        fields = [f["name"] for f in model.input_fields]
        return pd.DataFrame([{f: r.get(f) for f in fields} for r in records], columns=fields, dtype=float)

    # -- learning ----------------------------------------------------------------------------------------
    def learners(self, kind: str) -> tuple[str, ...]:
        from medai.modalities.sequences.omics_learner import CLASSIFIERS, REGRESSORS

        return REGRESSORS if kind == "regression" else CLASSIFIERS if kind in ("binary", "multiclass") else ()

    def make_learner(self, name: str, target, options, task, dataset):
        from medai.modalities.sequences.omics_learner import OmicsModel

        if target.kind not in ("binary", "multiclass", "regression"):
            raise MedAIError(f"omics models take binary, multiclass or regression targets, not {target.kind}")
        if name in (None, "auto"):
            name = "ridge" if target.kind == "regression" else "logistic"
        extra = options.extra
        model = OmicsModel(learner=name, task=target.kind, reducer=(extra.get("reducer") or "svd").lower(),
                           n_components=extra.get("components"), log_transform=bool(extra.get("log_transform")),
                           seed=options.seed)
        model._final()  # an unknown learner is refused before training
        return model

    def describe_learner(self, learner, name: str) -> dict[str, Any]:
        params = {k: (v if isinstance(v, int | float | str | bool | type(None)) else str(v))
                  for k, v in learner.get_params().items()}
        share = learner.explained_variance()
        training = {"explained_variance": float(share.sum())} if share is not None else {}
        return {"name": learner.describe(), "hyperparameters": params, "training": training}

    def trusted_modules(self) -> tuple[str, ...]:
        return ("medai.modalities.sequences.",)

    def cv_fold_extras(self, y, s, target) -> dict[str, float]:
        from medai.modalities.sequences import accuracy_extras

        return accuracy_extras(y, s, target)

    # -- explaining ----------------------------------------------------------------------------------------
    def explain(self, model, X, top_k: int = 5) -> list[dict[str, Any]]:
        learner = model.learner
        proba = learner.predict_proba(X) if model.kind != "regression" else None
        out = []
        for i in range(len(X)):
            row = X.iloc[[i]]
            output = (model.target.positive_index if model.kind == "binary"
                      else int(np.argmax(proba[i])) if proba is not None else 0)
            contributions = learner.gene_contributions(row, output) if proba is not None else None
            if contributions is None:
                out.append({"summary": "no gene-level contributions for this learner", "contributions": []})
                continue
            c = contributions[0]
            order = np.argsort(-np.abs(c))[:top_k]
            what = (f"log-odds of {model.target.positive_label!r}" if model.kind == "binary"
                    else f"score of class {model.target.classes[output]!r}")
            out.append({"explains": what, "summary": ", ".join(f"{learner.features_[j]} {c[j]:+.2f}" for j in order),
                        "contributions": [{"feature": learner.features_[j], "value": float(row.iloc[0, j]),
                                           "contribution": float(c[j])} for j in order]})
        return out

    def report_extras(self, model, X_test, y_test) -> dict[str, Any]:
        from medai.evaluation.plots import png_bytes, pyplot

        learner = model.learner
        share = learner.explained_variance()
        if share is None:
            return {}
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.bar(np.arange(1, len(share) + 1), share, color="#255C99", label="component")
        ax.plot(np.arange(1, len(share) + 1), np.cumsum(share), color="#D62839", label="cumulative")
        ax.set_xlabel("component")
        ax.set_ylabel("share of variance (training records)")
        ax.legend(fontsize=8)
        ax.set_title("Scree plot of the SVD fitted on the training records", fontsize=9)
        rows = [[r["component"], round(r["variance"], 4),
                 ", ".join(f"{g} ({w:+.2f})" for g, w in r["genes"])] for r in learner.top_loadings()]
        return {"plots": {"scree": png_bytes(fig)},
                "tables": [{"title": "Top-loading genes of the first components",
                            "note": "loadings on standardised genes; the SVD is fitted on the training records only",
                            "header": ["component", "share of variance", "top genes (loading)"], "rows": rows}],
                "metrics": {"svd": {"components": int(len(share)), "explained_variance": float(share.sum()),
                                    "top_loadings": learner.top_loadings()}}}


def _breast_cancer(spec) -> pd.DataFrame:
    from sksurv.datasets import load_breast_cancer

    X, _ = load_breast_cancer()
    genes = [c for c in X.columns if c not in ("age", "er", "grade", "size")]
    return X[genes].astype(float).assign(er=X["er"].astype(str))


def register_tasks() -> None:
    from medai.data.registry import DatasetSpec, register_dataset
    from medai.tasks import SplitProtocol, Task, register_task

    register_dataset(DatasetSpec(
        name="desmedt-breast-cancer-expression", modality="omics", package="sksurv", loader=_breast_cancer,
        description="198 node-negative breast cancer patients, 76 gene-expression probes (Affymetrix U133A; "
                    "Desmedt et al. 2007, GSE7390) as shipped in scikit-survival",
        license="GEO public data (GSE7390) as redistributed by scikit-survival (GPL-3.0 package)",
        citation="Desmedt et al. (2007), Strong time dependence of the 76-gene prognostic signature for "
                 "node-negative breast cancer patients in the TRANSBIG multicenter independent validation series, "
                 "Clin Cancer Res 13:3207"))
    register_task(Task(
        name="breast-cancer-er", modality="omics", kind="binary", dataset="desmedt-breast-cancer-expression",
        target="er",
        positive_label="positive", description="Oestrogen-receptor status (positive/negative) from 76 expression "
        "probes", split=SplitProtocol(kind="stratified", val_size=0.2, test_size=0.2, cv="5x3"),
        default_learner="logistic", intended_use="Research on expression signatures; ER status is measured by IHC "
        "in the clinic."))
