"""Built-in survival and treatment-effect tasks and their data sets.

Survival: WHAS500, GBSG2 and the Veterans' lung cancer trial ship inside scikit-survival. Treatment effect:
IHDP (semi-synthetic, with true potential outcomes; 10 replications) and ACTG 175 (a randomised trial of four
arms) lie under ``MEDAI_DATA_DIR/causal/``.
"""

from __future__ import annotations

import pandas as pd

from medai.data.registry import DataFile, DatasetSpec, register_dataset
from medai.tasks import SplitProtocol, Task, register_task

IHDP_SHA256 = {
    1: "2bdc8b94fdf2f669b1d3d49325fd9359d88418566545003867841312a1653411",
    2: "36db2f3d002250bc95e5214477718c939fbe7dfe8df573c4050d8b246d314042",
    3: "bd792ce0642468195b2c3f0cd4c521378d7d52d044f153e844d151a87e067518",
    4: "ac04602a2f052af1211347bcaff87f7bab356a4a7f42f8c6a81edede51549006",
    5: "8f9b3ef4b66e8f9dd240c9851233f4fb483c73c25b6d23c6459c666edb9cd691",
    6: "e05192794201c8a8fe1e4a88f12d3367d3d6b568eadb46365557661bff00712e",
    7: "246684bfc9e1258e5bdc59c3d1c13c0694a331d1f13026ff79f6c4605e6d3678",
    8: "6e88b890ee4ed6274b8ea4285500dd0865ab71e17010ee505f7e2a2d507c4511",
    9: "fe959d86a37be9278ef195fbf139b2b8af1b8246b3518208cd00b295d906a98f",
    10: "b9bce7e081f245b7689a3c2b5e4ed37162dca8cd596e0998b73ddc0ac92a4919",
}
IHDP_COLUMNS = ["treatment", "y_factual", "y_cfactual", "mu0", "mu1", *[f"x{i}" for i in range(1, 26)]]
ACTG_SHA256 = "44bb0216630998c1545c6621278babe95a41dbfd3cbf65426260568f27e5e200"
ACTG_ARMS = {0: "ZDV", 1: "ZDV+ddI", 2: "ZDV+ddC", 3: "ddI"}
# Measured after randomisation (or other outcomes): never features of a baseline model.
ACTG_NOT_FEATURES = ("pidnum", "treat", "offtrt", "cd420", "cd496", "r", "cd820", "cens", "days")


def _sksurv_loader(function: str, time: str, event: str):
    def load(_spec: DatasetSpec) -> pd.DataFrame:
        import sksurv.datasets

        X, y = getattr(sksurv.datasets, function)()
        frame = X.copy()
        for column in frame.columns:
            if isinstance(frame[column].dtype, pd.CategoricalDtype):
                frame[column] = frame[column].astype(object)
        names = y.dtype.names
        frame[event] = y[names[0]].astype(int)
        frame[time] = y[names[1]].astype(float)
        return frame

    return load


def load_ihdp(spec: DatasetSpec) -> pd.DataFrame:
    """One IHDP replication (CEVAE's CSV, no header) with the true individual effect ``mu1 - mu0``."""
    frame = pd.read_csv(spec.path(), header=None, names=IHDP_COLUMNS)
    frame["x14"] = frame["x14"] - 1  # coded {1, 2} in the files (CEVAE's loader subtracts 1)
    frame["true_effect"] = frame["mu1"] - frame["mu0"]
    frame["treatment"] = frame["treatment"].astype(int)
    return frame


def load_actg(spec: DatasetSpec) -> pd.DataFrame:
    frame = pd.read_csv(spec.path(), index_col=0)
    frame["arm"] = frame.pop("arms").map(ACTG_ARMS)
    return frame


SURVIVAL_SETS = (
    ("whas500", "load_whas500", "lenfol", "fstat", "days", (365.0, 1095.0, 1825.0),
     "Worcester Heart Attack Study: 500 patients after acute myocardial infarction, 14 features",
     "Hosmer, Lemeshow & May (2008), Applied Survival Analysis, 2nd ed.", "death after myocardial infarction"),
    ("gbsg2", "load_gbsg2", "time", "cens", "days", (365.0, 1095.0, 1825.0),
     "German Breast Cancer Study Group 2: 686 women with node-positive breast cancer, 8 features",
     "Schumacher et al. (1994), J Clin Oncol 12:2086", "recurrence-free survival in node-positive breast cancer"),
    ("veterans", "load_veterans_lung_cancer", "Survival_in_days", "Status", "days", (30.0, 90.0, 180.0),
     "Veterans' Administration lung cancer trial: 137 men with advanced inoperable lung cancer, 6 features",
     "Kalbfleisch & Prentice (1980), The Statistical Analysis of Failure Time Data", "death in advanced lung cancer"),
)

for _name, _function, _time, _event, _unit, _horizons, _description, _citation, _what in SURVIVAL_SETS:
    register_dataset(DatasetSpec(name=f"survival-{_name}", description=_description, modality="treatment",
                                 license="ships in scikit-survival (GPL-3.0)", citation=_citation,
                                 loader=_sksurv_loader(_function, _time, _event), package="sksurv"))
    register_task(Task(
        name=f"{_name}-survival", modality="treatment", kind="survival", dataset=f"survival-{_name}",
        target=f"{_time},{_event}", description=f"Time to {_what} ({_description.split(':')[0]})",
        subgroups=("age", "gender") if _name == "whas500" else ("age",) if _name == "gbsg2" else (),
        intended_use="Research on survival modelling; individual curves are estimates for patients like these.",
        default_learner="auto",
        options={"roles": {"time": _time, "event": _event, "time_unit": _unit, "horizons": list(_horizons),
                           "horizons_how": f"horizons {', '.join(f'{h:g}' for h in _horizons)} {_unit}"}},
    ))

for _k, _sha in IHDP_SHA256.items():
    register_dataset(DatasetSpec(
        name=f"ihdp-{_k}", modality="treatment",
        description=f"IHDP semi-synthetic benchmark, replication {_k}: 747 infants, 25 covariates, true potential "
                    "outcomes (NPCI setting A)",
        license="research use; no licence stated (Hill 2011 covariates, NPCI-simulated outcomes)",
        citation="Hill (2011), J Comput Graph Stat 20:217; Louizos et al. (2017), CEVAE",
        loader=load_ihdp, files=(DataFile(f"causal/ihdp_cevae/ihdp_npci_{_k}.csv", _sha),)))
    register_task(Task(
        name=f"ihdp-{_k}", modality="treatment", kind="treatment-effect", dataset=f"ihdp-{_k}",
        target="treatment,y_factual,true_effect",
        description=f"Effect of specialist home visits on cognitive scores (IHDP, replication {_k})",
        split=SplitProtocol(val_size=0.27, test_size=0.10), default_learner="auto",
        intended_use="Benchmarking individual treatment-effect estimation (semi-synthetic outcomes).",
        options={"roles": {"treatment": "treatment", "outcome": "y_factual", "true_effect": "true_effect",
                           "reference": "0", "higher_is_better": True},
                 "drop": ["y_cfactual", "mu0", "mu1"]},
    ))

register_dataset(DatasetSpec(
    name="actg175", modality="treatment",
    description="ACTG 175: 2139 HIV-infected adults randomised to ZDV, ZDV+ddI, ZDV+ddC or ddI",
    license="GPL-2 (R package speff2trial); CC BY 4.0 per the UCI page",
    citation="Hammer et al. (1996), N Engl J Med 335:1081",
    loader=load_actg, files=(DataFile("causal/actg175/ACTG175.csv", ACTG_SHA256),)))
register_task(Task(
    name="actg175-cd4", modality="treatment", kind="treatment-effect", dataset="actg175", target="arm,cd420",
    description="Which of four antiretroviral regimens raises the CD4 count at 20 weeks most (ACTG 175)",
    subgroups=("gender", "age"), default_learner="auto",
    intended_use="Research on treatment recommendation from a randomised trial; not for clinical use.",
    options={"roles": {"treatment": "arm", "outcome": "cd420", "reference": "ZDV", "higher_is_better": True},
             "drop": list(ACTG_NOT_FEATURES)},
))
