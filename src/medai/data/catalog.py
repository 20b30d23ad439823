"""The built-in datasets. Each modality adds its own entries here."""

from __future__ import annotations

import numpy as np
import pandas as pd

from medai.data.registry import DataFile, DatasetSpec, register_dataset

CLEVELAND_COLUMNS = [
    "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg",
    "thalach", "exang", "oldpeak", "slope", "ca", "thal", "num",
]
PIMA_COLUMNS = [
    "pregnancies", "glucose", "blood_pressure", "skin_thickness", "insulin",
    "bmi", "diabetes_pedigree", "age", "outcome",
]
# Zero is physiologically impossible for these measurements; the data set uses it for "not measured".
PIMA_ZERO_MEANS_MISSING = ["glucose", "blood_pressure", "skin_thickness", "insulin", "bmi"]


def _load_breast_cancer(_spec: DatasetSpec) -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.copy()
    # scikit-learn codes 0 = malignant, 1 = benign; the clinical question is "is it malignant?".
    frame["diagnosis"] = np.where(frame.pop("target") == 0, "malignant", "benign")
    return frame


def _load_cleveland(spec: DatasetSpec) -> pd.DataFrame:
    frame = pd.read_csv(spec.path(), header=None, names=CLEVELAND_COLUMNS, na_values="?")
    frame["heart_disease"] = np.where(frame.pop("num") > 0, "yes", "no")
    return frame


def _load_cleveland_num(spec: DatasetSpec) -> pd.DataFrame:
    return pd.read_csv(spec.path(), header=None, names=CLEVELAND_COLUMNS, na_values="?")


def _load_diabetes_progression(_spec: DatasetSpec) -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True).frame


def _load_pima(spec: DatasetSpec) -> pd.DataFrame:
    frame = pd.read_csv(spec.path(), header=None, names=PIMA_COLUMNS)
    for column in PIMA_ZERO_MEANS_MISSING:
        frame[column] = frame[column].mask(frame[column] == 0)
    frame["diabetes"] = np.where(frame.pop("outcome") == 1, "yes", "no")
    return frame


register_dataset(DatasetSpec(
    name="breast-cancer-wdbc",
    description="Wisconsin Diagnostic Breast Cancer: 569 fine-needle aspirates, 30 nuclear features",
    modality="tabular",
    license="CC BY 4.0 (UCI); ships in scikit-learn (BSD-3-Clause)",
    citation="Street, Wolberg & Mangasarian (1993), Nuclear feature extraction for breast tumor diagnosis",
    loader=_load_breast_cancer,
    package="sklearn",
))

register_dataset(DatasetSpec(
    name="heart-disease-cleveland",
    description="UCI Heart Disease, Cleveland Clinic: 303 patients, 13 clinical features, angiographic disease",
    modality="tabular",
    license="CC BY 4.0 (UCI ML Repository)",
    citation="Detrano et al. (1989), Am J Cardiol 64:304; Janosi, Steinbrunn, Pfisterer, Detrano",
    loader=_load_cleveland,
    files=(DataFile(
        "tabular/heart_disease_uci/processed.cleveland.data",
        sha256="a74b7efa387bc9d108d7d0115d831fe9b414b29ae7124f331b622b4efa0427c8",
        url="https://archive.ics.uci.edu/ml/machine-learning-databases/heart-disease/processed.cleveland.data",
    ),),
))

register_dataset(DatasetSpec(
    name="heart-disease-cleveland-num",
    description="UCI Heart Disease, Cleveland Clinic, with the graded outcome num (0 none, 1-4 severity)",
    modality="tabular",
    license="CC BY 4.0 (UCI ML Repository)",
    citation="Detrano et al. (1989), Am J Cardiol 64:304; Janosi, Steinbrunn, Pfisterer, Detrano",
    loader=_load_cleveland_num,
    files=(DataFile(
        "tabular/heart_disease_uci/processed.cleveland.data",
        sha256="a74b7efa387bc9d108d7d0115d831fe9b414b29ae7124f331b622b4efa0427c8",
        url="https://archive.ics.uci.edu/ml/machine-learning-databases/heart-disease/processed.cleveland.data",
    ),),
))

register_dataset(DatasetSpec(
    name="diabetes-progression",
    description="Diabetes progression (Efron et al. 2004): 442 patients, 10 baseline variables, a quantitative target",
    modality="tabular",
    license="BSD-3-Clause (ships in scikit-learn)",
    citation="Efron, Hastie, Johnstone & Tibshirani (2004), Least Angle Regression, Annals of Statistics 32:407",
    loader=_load_diabetes_progression,
    package="sklearn",
))

register_dataset(DatasetSpec(
    name="diabetes-pima",
    description="Pima Indians Diabetes (NIDDK): 768 women, 8 measurements, diabetes within 5 years",
    modality="tabular",
    license="not verified (NIDDK; widely redistributed, Kaggle copy labelled CC0)",
    citation="Smith et al. (1988), Using the ADAP learning algorithm to forecast the onset of diabetes mellitus",
    loader=_load_pima,
    files=(DataFile(
        "tabular/pima_indians_diabetes/pima-indians-diabetes.data.csv",
        sha256="6bfe5d0f379d17a0e0819b996407e3c09bf80febd4287f2ed212190dfff154af",
        url="https://raw.githubusercontent.com/jbrownlee/Datasets/master/pima-indians-diabetes.data.csv",
    ),),
))


# -- imaging: MedMNIST v2 (official splits; public source = the MedMNIST Zenodo record) --------------------
MEDMNIST_RECORD = "https://zenodo.org/records/10519652/files"
MEDMNIST_CITATION = ("Yang et al. (2023), MedMNIST v2, Scientific Data 10:41, doi:10.1038/s41597-022-01721-8")


def _load_medmnist(spec: DatasetSpec):
    from medai.data.images import load_medmnist_npz

    return load_medmnist_npz(spec.path())


def _medmnist(name: str, file: str, sha256: str, description: str, source: str, **extra) -> None:
    register_dataset(DatasetSpec(
        name=name,
        description=description,
        modality="imaging",
        license="CC BY 4.0",
        citation=f"{MEDMNIST_CITATION}; {source}",
        loader=_load_medmnist,
        files=(DataFile(f"imaging/medmnist/{file}", sha256=sha256, url=f"{MEDMNIST_RECORD}/{file}?download=1"),),
        extra=extra,
    ))


_medmnist("pneumoniamnist", "pneumoniamnist.npz",
          "e1792d3f03751cb101e99f19a63b3c1941436c988665f47853417b05be250cd8",
          "PneumoniaMNIST: paediatric chest X-rays 28x28, pneumonia vs normal (4708/524/624)",
          "Kermany et al. (2018), Cell 172:1122", classes=["normal", "pneumonia"])
_medmnist("breastmnist", "breastmnist.npz",
          "3a22d2a4625e7dd8903f0f59030e81a3d0c222bece2e5e10927456cb50efdec1",
          "BreastMNIST: breast ultrasound 28x28, malignant vs normal/benign (546/78/156)",
          "Al-Dhabyani et al. (2020), Data in Brief 28:104863", classes=["malignant", "normal or benign"])
_medmnist("adrenalmnist3d", "adrenalmnist3d.npz",
          "8ffd78c0f000265deb7cf4ee0b454136fb3170f9839ecaa7bb01adf9f88aa7d1",
          "AdrenalMNIST3D: adrenal gland shapes from abdominal CT, 28^3, hyperplasia vs normal (1188/98/298)",
          "Zhongshan Hospital, Fudan University (MedMNIST v2)", classes=["normal", "hyperplasia"])
_medmnist("adrenalmnist3d-64", "adrenalmnist3d_64.npz",
          "124a53ea2c66c8ac1985a4c98ea6f34d1ab35bdab1dc50947f80d4a87e54057d",
          "AdrenalMNIST3D at 64^3 (MedMNIST+), same labels and splits",
          "Zhongshan Hospital, Fudan University (MedMNIST+)", classes=["normal", "hyperplasia"])
