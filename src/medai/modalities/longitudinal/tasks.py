"""Built-in longitudinal tasks, defined declaratively (data, index time, observation window, label, split).

``physionet2012-mortality``: in-hospital death from the first 48 hours of an ICU stay (PhysioNet/Computing in
Cardiology Challenge 2012). Trained on set A (80% train, 20% validation for early stopping and the threshold,
stratified by the seed) and tested on set B; ``--cv 5x2`` cross-validates over A+B. The threshold maximises the
challenge's Event 1 score, min(sensitivity, PPV), on validation data - fixed before the test set is seen. Its
default learner is the ensemble of LightGBM on summaries and GRU-D (the best on set A's validation stays).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medai.data.registry import DataFile, DatasetSpec, register_dataset
from medai.modalities.longitudinal.visit_data import VISIT_DATASET, load_visit_task
from medai.tasks import SplitProtocol, Task, register_task

P12 = "ehr/physionet2012/"
P12_LICENSE = "Open Data Commons Attribution License v1.0 (PhysioNet, Challenge Open Access)"
P12_CITATION = ("Silva I, Moody G, Scott DJ, Celi LA, Mark RG. Predicting in-hospital mortality of ICU patients: the "
                "PhysioNet/Computing in Cardiology Challenge 2012. Comput Cardiol 2012;39:245-248")
P12_FILES = tuple(DataFile(P12 + name, sha256=sha) for name, sha in (
    ("set-a.tar.gz", "dd6292adab790a67265cb95704db27187a2acbeec88ec39b98f5e9301ea4a7d2"),
    ("Outcomes-a.txt", "2613ea60ccda29f87571a7d6b09ad130858a8ccd66325bd073365925026883c2"),
    ("set-b.tar.gz", "165765a7e569b390ab9a8a80c3561c0e60e7ccab75d93e7401d70a4158d720d7"),
    ("Outcomes-b.txt", "1305f29734da374a809483229a99f33a9230aa8d4fa74b1a2d6ad788136423d5")))


def _paths(spec: DatasetSpec) -> dict[str, object]:
    return {f.relative_path.rsplit("/", 1)[1]: spec.path(f.relative_path) for f in spec.files}


register_dataset(DatasetSpec(
    name="physionet2012", description="PhysioNet 2012 challenge sets A and B: 8,000 ICU stays, first 48 h, "
    "36 time series + 5 descriptors, in-hospital death", modality="longitudinal", license=P12_LICENSE,
    citation=P12_CITATION, loader=_paths, files=P12_FILES))

register_task(Task(
    name="physionet2012-mortality", modality="longitudinal", kind="binary", dataset="physionet2012",
    target="In-hospital_death", positive_label="1",
    description="In-hospital death from the first 48 hours of an ICU stay (train set A, test set B)",
    split=SplitProtocol(kind="official", val_size=0.2, test_size=0.0),
    default_learner="ensemble",  # LightGBM + GRU-D: the best validation AUROC on set A (README)
    intended_use="Research on ICU mortality risk and early warning; not validated for clinical decisions.",
    options={"threshold": "se-ppv", "window_hours": 48.0}))


MIMIC = "ehr/mimic-iv-clinical-database-demo-2.2/"
MIMIC_FILES = tuple(DataFile(MIMIC + name, sha256=sha) for name, sha in (
    ("icu/icustays.csv.gz", "e05e81aa52a3022e522b6832a898101a69b84e64c17bb344d819e458d5bc21b3"),
    ("hosp/admissions.csv.gz", "910b9f160ffdf1e08ea673585393f347c773ccc87d66875c627584a903ae8493"),
    ("hosp/d_labitems.csv.gz", "72ea5f020469fd24543bd98ab3bd0a4f645a5a4b7802d9d52af20d736f9d76db"),
    ("hosp/labevents.csv.gz", "d51a4cf1ea63245abe7d544b0d50a928e9ee2ec5eb9a5ce85500aed0bd6c6dfc")))


def _mimic_root(spec: DatasetSpec):
    for item in spec.files:
        spec.path(item.relative_path)  # verified
    return spec.path(spec.files[0].relative_path).parents[1]


register_dataset(DatasetSpec(
    name="mimic-iv-demo", description="MIMIC-IV Clinical Database Demo 2.2: 100 patients, 140 ICU stays (hosp + icu "
    "modules; no chartevents in this copy)", modality="longitudinal",
    license="Open Data Commons Open Database License v1.0 (ODbL)",
    citation="Johnson A, Bulgarelli L, Pollard T, Horng S, Celi LA, Mark R. MIMIC-IV Clinical Database Demo (v2.2). "
    "PhysioNet 2023. doi:10.13026/dp1f-ex47", loader=_mimic_root, files=MIMIC_FILES))

register_task(Task(
    name="mimic4demo-icu-mortality", modality="longitudinal", kind="binary", dataset="mimic-iv-demo",
    target="hospital_expire_flag", positive_label="1",
    description="In-hospital death from the lab results of the first 24 h of an ICU stay (MIMIC-IV demo)",
    split=SplitProtocol(kind="stratified", val_size=0.2, test_size=0.3), default_learner="auto",
    intended_use="Demonstration of MIMIC-IV reading; 140 stays cannot validate or rank models.",
    options={"window_hours": 24.0}))


def load_task_data(modality, task, options):
    from sklearn.model_selection import train_test_split

    from medai.errors import MedAIError
    from medai.modalities.longitudinal.reading import ReadStays, read_challenge, read_labels
    from medai.modalities.longitudinal.stays import concat

    if task.dataset == "mimic-iv-demo":
        return _mimic_task(modality, task)
    if task.dataset == VISIT_DATASET:
        return load_visit_task(modality, task)
    if task.dataset != "physionet2012":
        raise MedAIError(f"task {task.name!r}: no loader for dataset {task.dataset!r}")
    from medai.data.registry import get_dataset

    spec = get_dataset(task.dataset)
    files = spec.load()
    sets = [read_challenge(files["set-a.tar.gz"]), read_challenge(files["set-b.tar.gz"])]
    variables = tuple(sorted(set(sets[0].stays.variables) | set(sets[1].stays.variables)))
    stays = concat([s.stays.with_variables(variables)[0] for s in sets])
    tables = [read_labels(files[name], task.target, s.stays.ids, "RecordID")[2]
              for name, s in zip(("Outcomes-a.txt", "Outcomes-b.txt"), sets, strict=True)]
    table = pd.concat(tables)
    y = table[task.target].reindex(pd.Index(stays.ids)).reset_index(drop=True)
    n_a = len(sets[0].stays)
    a = np.arange(n_a)
    train, val = train_test_split(a, test_size=task.split.val_size, random_state=options.seed,
                                  stratify=y.iloc[:n_a].to_numpy())
    split = {"train": np.sort(train), "val": np.sort(val), "test": np.arange(n_a, len(stays))}
    notes = [f"set {name}: {note}" for name, read in zip("AB", sets, strict=True) for note in read.notes]
    read = ReadStays(stays, notes, id_column="RecordID", window_hours=sets[0].window_hours)
    return modality.dataset(read, y, task.target, table, source="physionet2012 (sets A and B)",
                            labels="Outcomes-a.txt + Outcomes-b.txt", license=spec.license, citation=spec.citation,
                            official_split=split, subgroups=_subgroups(stays),
                            split_protocol=f"set A {1 - task.split.val_size:.0%}/{task.split.val_size:.0%} "
                            "train/validation (stratified), set B test (the challenge's sets)")


def _subgroups(stays) -> pd.DataFrame:
    """ICU type, sex and age band of each stay, from the descriptors at hour 0."""
    from medai.modalities.longitudinal.features import STATS, summarise

    F = summarise(stays)
    k = len(STATS)

    def last(name):
        return F[:, stays.variables.index(name) * k + STATS.index("last")] if name in stays.variables else \
            np.full(len(stays), np.nan)

    icu = pd.Series(last("ICUType")).map({1: "coronary care", 2: "cardiac surgery recovery", 3: "medical",
                                          4: "surgical"}).fillna("unknown")
    sex = pd.Series(last("Gender")).map({0: "female", 1: "male"}).fillna("unknown")
    return pd.DataFrame({"icu_type": icu, "sex": sex, "age": last("Age")})  # the road bands ages


def _mimic_task(modality, task):
    from medai.data.registry import get_dataset
    from medai.modalities.longitudinal.mimic import icu_stays

    spec = get_dataset(task.dataset)
    read, table = icu_stays(spec.load(), float(task.options["window_hours"]))
    y = table[task.target].reindex(pd.Index(read.stays.ids)).reset_index(drop=True)
    return modality.dataset(read, y, task.target, table, source="MIMIC-IV demo 2.2 (ICU stays)",
                            labels="admissions.hospital_expire_flag", group_column="subject_id",
                            license=spec.license, citation=spec.citation)
