"""Reading and checking user tables: every bad input gets a clear MedAIError."""

import numpy as np
import pandas as pd
import pytest
from helpers import risk_frame

from medai.data.splits import cv_splits, duplicate_rows_across, parse_cv, train_val_test_split
from medai.data.tabular import (
    choose_positive_label,
    coerce_features,
    data_fingerprint,
    encode_target,
    infer_schema,
    read_table,
)
from medai.errors import MedAIError, NotFoundError


def test_read_table_errors(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(MedAIError, match="empty"):
        read_table(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b,c\n")
    with pytest.raises(MedAIError, match="no records"):
        read_table(header_only)
    with pytest.raises(MedAIError, match="directory"):
        read_table(tmp_path)
    dup = tmp_path / "dup.csv"
    dup.write_text("a,a\n1,2\n")
    with pytest.raises(MedAIError):
        read_table(dup)


def test_read_csv_and_parquet_agree(tmp_path):
    frame = risk_frame(50)
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    a, b = read_table(tmp_path / "d.csv"), read_table(tmp_path / "d.parquet")
    assert list(a.columns) == list(b.columns) and len(a) == len(b) == 50


@pytest.mark.parametrize("values,positive", [
    (["no", "yes"], "yes"), (["Yes", "No"], "Yes"), ([1, 2], "2"), ([0, 1], "1"), (["neg", "pos"], "pos"),
    (["benign", "malignant"], "malignant"), (["False", "True"], "True"), (["healthy", "sick"], "sick"),
    (["control", "x"], "x"), ([0.0, 1.0], "1"),
])
def test_positive_label_spellings(values, positive):
    assert choose_positive_label(values) == positive


def test_ambiguous_positive_label_asks_for_it():
    with pytest.raises(MedAIError, match="--positive-label"):
        choose_positive_label(["apple", "pear"])
    assert choose_positive_label(["apple", "pear"], requested="pear") == "pear"
    with pytest.raises(MedAIError, match="not a value"):
        choose_positive_label(["apple", "pear"], requested="plum")


def test_infer_schema_types_and_errors():
    frame = risk_frame()
    schema = infer_schema(frame, "outcome", id_column="patient_id")
    assert schema.numeric == ["age", "systolic_bp"]
    assert schema.categorical == ["smoker", "sex"]
    assert schema.classes == ["no", "yes"] and schema.positive_label == "yes"
    with pytest.raises(MedAIError, match="target column 'nope'"):
        infer_schema(frame, "nope")
    one_class = frame.assign(outcome="yes")
    with pytest.raises(MedAIError, match="1 class"):
        infer_schema(one_class, "outcome")
    three = frame.assign(outcome=np.arange(len(frame)) % 3)
    with pytest.raises(MedAIError, match="3 classes"):
        infer_schema(three, "outcome")
    blank = frame.assign(empty_col=np.nan)
    with pytest.raises(MedAIError, match="'empty_col'.*entirely missing"):
        infer_schema(blank, "outcome")
    with pytest.raises(MedAIError, match="id column"):
        infer_schema(frame, "outcome", id_column="pid")


def test_free_text_columns_are_dropped_not_one_hot_encoded():
    frame = risk_frame(120).assign(note=[f"note {i}" for i in range(120)])
    schema = infer_schema(frame, "outcome", id_column="patient_id")
    assert "note" in schema.dropped and "note" not in schema.feature_names


def test_numbers_stored_as_text_are_numeric():
    frame = risk_frame(60)
    frame["age"] = frame["age"].astype(int).astype(str)
    schema = infer_schema(frame, "outcome", id_column="patient_id")
    assert "age" in schema.numeric


def test_coerce_names_missing_columns_and_bad_rows():
    frame = risk_frame(30)
    schema = infer_schema(frame, "outcome", id_column="patient_id")
    with pytest.raises(MedAIError, match=r"missing column\(s\).*'age'"):
        coerce_features(frame.drop(columns=["age"]), schema)
    bad = frame.astype({"systolic_bp": object})
    bad.loc[[4, 9], "systolic_bp"] = ["high", "n/d"]
    with pytest.raises(MedAIError, match=r"'systolic_bp' must be numeric but rows 5, 10 hold text"):
        coerce_features(bad, schema)
    ok = frame.astype({"age": object})
    ok.loc[0, "age"] = "?"  # common missing-value spellings are missing, not errors
    assert np.isnan(coerce_features(ok, schema)["age"].iloc[0])


def test_encode_target_rejects_unknown_labels():
    frame = risk_frame(30)
    schema = infer_schema(frame, "outcome")
    assert set(encode_target(frame, schema)) == {0, 1}
    frame.loc[3, "outcome"] = "maybe"
    with pytest.raises(MedAIError, match="row 4"):
        encode_target(frame, schema)


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
