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
