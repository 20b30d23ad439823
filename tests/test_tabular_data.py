"""Checking user tables: column types, bad cells, fingerprints and splits; every bad input gets a clear error."""

import numpy as np
import pandas as pd
import pytest
from helpers import risk_frame

from medai.data.splits import cv_splits, duplicate_rows_across, parse_cv, train_val_test_split
from medai.errors import MedAIError, NotFoundError
from medai.modalities.tabular.schema import coerce_features, data_fingerprint, infer_schema


def numeric(schema):
    return [c.name for c in schema.features if c.kind == "numeric"]


def test_infer_schema_types_and_errors():
    frame = risk_frame()
    schema = infer_schema(frame, ["outcome"], id_column="patient_id")
    assert numeric(schema) == ["age", "systolic_bp"]
    assert [c.name for c in schema.features if c.kind == "categorical"] == ["smoker", "sex"]
    age = schema.features[0]
    assert age.min == frame["age"].min() and age.max == frame["age"].max()
    blank = frame.assign(empty_col=np.nan)
    with pytest.raises(MedAIError, match="'empty_col'.*entirely missing"):
        infer_schema(blank, ["outcome"])
    with pytest.raises(MedAIError, match="id column"):
        infer_schema(frame, ["outcome"], id_column="pid")
    with pytest.raises(MedAIError, match="no usable feature columns"):
        infer_schema(frame[["patient_id", "outcome"]], ["outcome"], id_column="patient_id")


def test_free_text_columns_are_dropped_not_one_hot_encoded():
    frame = risk_frame(120).assign(note=[f"note {i}" for i in range(120)])
    schema = infer_schema(frame, ["outcome"], id_column="patient_id")
    assert "note" in schema.dropped and "note" not in schema.feature_names


def test_numbers_stored_as_text_are_numeric():
    frame = risk_frame(60)
    frame["age"] = frame["age"].astype(int).astype(str)
    schema = infer_schema(frame, ["outcome"], id_column="patient_id")
    assert "age" in numeric(schema)


def test_coerce_names_missing_columns_and_bad_rows():
    frame = risk_frame(30)
    schema = infer_schema(frame, ["outcome"], id_column="patient_id")
    with pytest.raises(MedAIError, match=r"missing column\(s\).*'age'"):
        coerce_features(frame.drop(columns=["age"]), schema)
    bad = frame.astype({"systolic_bp": object})
    bad.loc[[4, 9], "systolic_bp"] = ["high", "n/d"]
    with pytest.raises(MedAIError, match=r"'systolic_bp' must be numeric but rows 5, 10 hold text$") as error:
        coerce_features(bad, schema)
    assert "high" not in str(error.value)  # errors name rows and columns, never a cell's value (it may be PHI)
    ok = frame.astype({"age": object})
    ok.loc[0, "age"] = "?"  # common missing-value spellings are missing, not errors
    assert np.isnan(coerce_features(ok, schema)["age"].iloc[0])


def test_fingerprint_changes_with_any_cell():
    frame = risk_frame(30)
    a = data_fingerprint(frame)
    assert a == data_fingerprint(frame.copy())
    frame.loc[0, "age"] += 1
    assert a != data_fingerprint(frame)


def test_split_is_stratified_and_group_aware():
    y = np.array([0] * 150 + [1] * 50)
    s = train_val_test_split(y, seed=0)
    assert len(set(s.train) | set(s.val) | set(s.test)) == 200
    for part in (s.train, s.val, s.test):
        assert abs(y[part].mean() - 0.25) < 0.05
    groups = np.repeat(np.arange(50), 4)
    g = train_val_test_split(np.repeat(np.arange(50) % 3 == 0, 4).astype(int), groups, seed=0)
    sets = [set(groups[p]) for p in (g.train, g.val, g.test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    for train, test in cv_splits(np.repeat(np.arange(50) % 3 == 0, 4).astype(int), groups, 5, 2, 0):
        assert not set(groups[train]) & set(groups[test])
    for stratify in (True, False):  # regression and multilabel targets split without strata
        values = np.repeat(np.arange(50) % 3 == 0, 4).astype(int) if stratify else np.linspace(0, 1, 200)
        g = train_val_test_split(values, groups, seed=1, stratify=stratify)
        assert not {*groups[g.train]} & {*groups[g.test]} and len(g.train) + len(g.val) + len(g.test) == 200
        for train, test in cv_splits(values, groups, 4, 1, 0, stratify=stratify):
            assert not set(groups[train]) & set(groups[test])
    plain = train_val_test_split(np.linspace(0, 1, 100), seed=0, stratify=False)
    assert plain.sizes() == {"train": 60, "val": 20, "test": 20}


def test_parse_cv_and_duplicates():
    assert parse_cv("5x5") == (5, 5) and parse_cv("10") == (10, 1) and parse_cv("none") is None
    with pytest.raises(MedAIError, match="5x5"):
        parse_cv("five")
    a = pd.DataFrame({"x": [1, 2, 3]})
    assert duplicate_rows_across(a, pd.DataFrame({"x": [3, 4]})) == 1


def test_unknown_dataset_names_the_known_ones():
    from medai.data.registry import get_dataset, list_datasets

    with pytest.raises(NotFoundError, match="unknown dataset 'nope'; known datasets: .*diabetes-pima"):
        get_dataset("nope")
    names = {d.name for d in list_datasets()}
    assert {"breast-cancer-wdbc", "heart-disease-cleveland", "diabetes-pima", "pneumoniamnist"} <= names
    assert get_dataset("breast-cancer-wdbc").availability() == "package"
