"""The visit-history tasks on the MIMIC-IV demo: PyHealth 1.1.3's four MIMIC-IV tasks, registered as built-in
tasks, and how their data become the road's :class:`Dataset` (patient-level splits: ``groups`` = patient)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from medai.data.registry import DataFile, DatasetSpec, register_dataset
from medai.errors import MedAIError
from medai.modalities.longitudinal.visit_tasks import VisitTask, build_samples
from medai.tasks import SplitProtocol, Task, register_task

MIMIC = "ehr/mimic-iv-clinical-database-demo-2.2/"
VISIT_DATASET = "mimic-iv-demo-visits"
MIN_LABEL_SAMPLES = 10  # next-diagnoses: a code is a label when at least this many samples have it
_PYHEALTH = " (PyHealth 1.1.3 {fn}: visits in visit-id order, as PyHealth orders them)"
_TIME = " (visits in time order: the next admission is the next one in time)"
_NEXT_DX = dict(next_required=("conditions",))
VISIT_TASKS = {
    "mimic4demo-mortality": (VisitTask("mortality"), "binary", "In-hospital death at the next admission"
                             + _PYHEALTH.format(fn="mortality_prediction_mimic4_fn")),
    "mimic4demo-readmission": (VisitTask("readmission", window_days=30), "binary",
                               "Next admission starts fewer than 30 days after this one started"
                               + _PYHEALTH.format(fn="readmission_prediction_mimic4_fn, time_window=30")),
    "mimic4demo-los": (VisitTask("los", index_visits="all"), "multiclass",
                       "Length of stay in 10 classes (<1 day, 1..7 days, 8-14 days, >14 days)"
                       + _PYHEALTH.format(fn="length_of_stay_prediction_mimic4_fn")),
    "mimic4demo-next-diagnoses": (VisitTask("next-diagnoses", **_NEXT_DX), "multilabel",
                                  "The diagnosis codes of the next admission (multilabel)"
                                  + _PYHEALTH.format(fn="sample selection of its mortality function")),
    "mimic4demo-mortality-chronological": (VisitTask("mortality", order="time"), "binary",
                                           "In-hospital death at the next admission" + _TIME),
    "mimic4demo-readmission-chronological": (VisitTask("readmission", window_days=30, order="time"), "binary",
                                             "Next admission starts fewer than 30 days after this one started"
                                             + _TIME),
    "mimic4demo-next-diagnoses-chronological": (VisitTask("next-diagnoses", order="time", **_NEXT_DX),
                                                "multilabel", "The diagnosis codes of the next admission" + _TIME),
}

register_dataset(DatasetSpec(
    name=VISIT_DATASET, description="MIMIC-IV Clinical Database Demo 2.2, hosp module: 100 patients, 275 "
    "admissions with diagnoses, procedures and prescriptions", modality="longitudinal",
    license="Open Data Commons Open Database License v1.0 (ODbL)",
    citation="Johnson A, Bulgarelli L, Pollard T, Horng S, Celi LA, Mark R. MIMIC-IV Clinical Database Demo (v2.2). "
    "PhysioNet 2023. doi:10.13026/dp1f-ex47",
    loader=lambda spec: [spec.path(f.relative_path) for f in spec.files][0].parents[1],
    files=tuple(DataFile(MIMIC + name, sha256=sha) for name, sha in (
        ("hosp/admissions.csv.gz", "910b9f160ffdf1e08ea673585393f347c773ccc87d66875c627584a903ae8493"),
        ("hosp/patients.csv.gz", "59dcc6cd8450ddf03ad32cc7d76e41caa4c9633541715987f590c74835cf6fae"),
        ("hosp/diagnoses_icd.csv.gz", "958565670c0b3903c0c12825366dc2bae8561d2d55f16feac0c949dd630ed3e4"),
        ("hosp/procedures_icd.csv.gz", "68f21dcba9ae0c4b7faa3ef38aa950a8ebeb6d167bc74416314dccdcf28674e0"),
        ("hosp/prescriptions.csv.gz", "33c392ba5b9299b08eca0a61911ba106f0aebdba26ed31b856bb9ffd49fe3654")))))

for _name, (_spec, _kind, _description) in VISIT_TASKS.items():
    register_task(Task(
        name=_name, modality="longitudinal", kind=_kind, dataset=VISIT_DATASET, target=_spec.label,
        positive_label="1" if _kind == "binary" else None, description=_description,
        split=SplitProtocol(kind="stratified", val_size=0.2, test_size=0.2),
        default_learner="bag-of-codes",  # the classical baseline: fast and robust on 100 patients; not ranked
        intended_use="Demonstration and benchmarking on 100 patients; cannot validate or rank models.",
        options={"visit_task": _name}))


def visit_dataset(modality, task, visits, events, source: str, license: str = "user data", citation: str = ""):
    """The :class:`Dataset` of a visit task (``task.options["visit_task"]`` names its definition)."""
    from medai.data.dataset import Dataset

    spec, kind, _ = VISIT_TASKS[task.options["visit_task"]]
    samples, histories = build_samples(visits, events, spec)
    if len(samples) == 0:
        raise MedAIError(f"{source}: the {task.name} cohort is empty - no admission has a next admission and codes "
                         "in all of conditions, procedures and drugs")
    labels = samples["label"].to_list()
    classes = None
    notes = [f"{len(samples)} samples of {samples['subject_id'].n_unique()} patients ({task.description})"]
    if kind == "multilabel":
        counts = pd.Series([c for codes in labels for c in codes]).value_counts()
        kept = sorted(counts.index[counts >= MIN_LABEL_SAMPLES])
        if len(kept) < 2:
            raise MedAIError(f"{source}: fewer than two diagnosis codes occur in {MIN_LABEL_SAMPLES} or more "
                             "next visits; too few labels for the next-diagnoses task")
        y = pd.DataFrame([[int(c in set(codes)) for c in kept] for codes in labels], columns=kept)
        notes.append(f"labels: the {len(kept)} diagnosis codes present in at least {MIN_LABEL_SAMPLES} samples' next "
                     f"visits (of {len(counts)} codes)")
    else:
        y = pd.Series([str(v) for v in labels], name=spec.label)
        classes = [str(c) for c in range(10)] if spec.label == "los" else ["0", "1"]
    digest = hashlib.sha256("\n".join(f"{i}|{h}" for i, h in zip(histories.ids, histories.visits, strict=True))
                            .encode()).hexdigest()
    keys = np.array([int(hashlib.sha1(str(i).encode()).hexdigest()[:15], 16) for i in histories.ids], dtype=np.int64)
    return Dataset(X=histories, y=y, target_column=spec.label if kind != "multilabel" else "next_conditions",
                   input_schema={"layout": "visit histories: per sample, the codes (conditions, procedures, drugs) "
                                           "of each admission up to the index admission", "visit_task": task.name},
                   source=source, license=license, citation=citation, fingerprint=digest,
                   groups=histories.subjects, group_column="subject_id", record_keys=keys, classes=classes,
                   notes=notes)


def load_visit_task(modality, task):
    from medai.data.registry import get_dataset
    from medai.modalities.longitudinal.visits import mimic_visits

    spec = get_dataset(task.dataset)
    visits, events = mimic_visits(spec.load())
    return visit_dataset(modality, task, visits, events, "MIMIC-IV demo 2.2 (hosp: visit histories)",
                         license=spec.license, citation=spec.citation)


def train_on_event_tables(task_name: str, events_path, visits_path, out=None, options=None):
    """Train a visit task (its definition: one of :data:`VISIT_TASKS`) on a generic MEDS-style event table and
    visits table (see :func:`medai.modalities.longitudinal.visits.read_event_table`) through the road."""
    from medai.modalities import get_modality
    from medai.modalities.longitudinal.visits import read_event_table
    from medai.road.train import train
    from medai.tasks import get_task

    if task_name not in VISIT_TASKS:
        raise MedAIError(f"unknown visit task {task_name!r}; choose one of {', '.join(VISIT_TASKS)}")
    task = get_task(task_name)
    modality = get_modality("longitudinal")
    visits, events = read_event_table(events_path, visits_path)
    dataset = visit_dataset(modality, task, visits, events, str(events_path))
    return train(task, dataset, out, options, modality)
