"""Kinds of target: inference from the values, the positive class decided one way for every file, encoding
with errors that name rows."""

import numpy as np
import pandas as pd
import pytest

from medai.errors import MedAIError
from medai.tasks.kinds import TargetSpec, choose_positive_label, infer_target, split_labels


@pytest.mark.parametrize("values,positive", [
    (["no", "yes"], "yes"), (["Yes", "No"], "Yes"), ([0, 1], "1"), (["neg", "pos"], "pos"),
    (["False", "True"], "True"), ([0.0, 1.0], "1"), (["negative", "positive"], "positive"), (["N", "Y"], "Y"),
    (["absent", "present"], "present"),
])
def test_obvious_codings_decide_the_positive_class(values, positive):
    label, why = choose_positive_label(values)
    assert label == positive and "conventional" in why


@pytest.mark.parametrize("values", [[1, 2], ["ckd", "notckd"], ["benign", "malignant"], ["apple", "pear"]])
def test_anything_else_asks_for_the_positive_label(values):
    """ILPD codes liver patients 1 and others 2; guessing '2' was the wrong way round for a clinician."""
    with pytest.raises(MedAIError, match="--positive-label"):
        choose_positive_label(values)
    label, why = choose_positive_label(values, requested=str(values[0]))
    assert label == str(values[0]) and "--positive-label" in why
    with pytest.raises(MedAIError, match="not a value"):
        choose_positive_label(values, requested="plum")


def test_kind_is_inferred_and_stated():
    binary = infer_target(pd.Series(["no", "yes", "no"]), "y")
    assert binary.kind == "binary" and binary.classes == ["no", "yes"] and binary.positive_label == "yes"
    assert "two distinct values" in binary.how and "'yes' of" in binary.how
    graded = infer_target(pd.Series([0, 1, 2, 3, 4, 0, 1]), "num")
    assert graded.kind == "multiclass" and graded.classes == ["0", "1", "2", "3", "4"]
    assert "--kind regression" in graded.how
    assert infer_target(pd.Series(np.linspace(0, 300, 50)), "y").kind == "regression"
    assert infer_target(pd.Series(["a", "b", "c", "a"]), "y").kind == "multiclass"
    assert infer_target(pd.Series(["a;b", "b", "c;a"]), "y").kind == "multilabel"
    as_number = infer_target(pd.Series([0, 1, 2, 3, 4, 0, 1]), "num", kind="regression")
    assert as_number.kind == "regression" and as_number.how == "set with --kind"


def test_class_order_given_by_the_data_is_kept():
    target = infer_target(pd.Series(["malignant", "benign"]), "label", classes=["malignant", "benign"],
                          positive_label="malignant")
    assert target.classes == ["malignant", "benign"] and target.positive_index == 0
    assert target.encode(["benign", "malignant"]).tolist() == [1, 0]


@pytest.mark.parametrize("values,kind,message", [
    (["yes", "yes"], None, "single value"),
    ([1.5, 2.5, "high", 3.0], "regression", r"must be numeric but row 3 holds text"),
    (["mild", "severe", "mild"], "regression", "must be numeric"),
    (["a;b", ";", "b"], None, r"empty label set in row 2"),
    (["a;b", "[]", "b"], "multilabel", r"empty label set in row 2"),
    ([0.5, 1.5, 2.5, 0.5], "multiclass", "fractional"),
    (["a", "b", "c"], "binary", "exactly two"),
    (["a", "b"], "survival-ish", "--kind must be one of"),
])
def test_bad_targets_get_one_clear_error(values, kind, message):
    with pytest.raises(MedAIError, match=message):
        infer_target(pd.Series(values), "target", kind=kind)


def test_encode_names_rows_with_unknown_values():
    target = TargetSpec("multiclass", "grade", ["0", "1", "2"])
    assert target.encode([0, 2.0, "1"]).tolist() == [0, 2, 1]
    with pytest.raises(MedAIError, match="row 2"):
        target.encode(["0", "7"])


def test_multilabel_cells_and_columns():
    assert split_labels("a; b") == ["a", "b"] and split_labels('["a", "b"]') == ["a", "b"]
    assert split_labels(["x"]) == ["x"] and split_labels(np.nan) is None
    target = infer_target(pd.Series(["dm;htn", "htn", "ckd"]), "dx")
    assert target.classes == ["ckd", "dm", "htn"]
    assert target.encode(["dm;htn", "ckd"]).tolist() == [[0, 1, 1], [1, 0, 0]]
    columns = pd.DataFrame({"dm": [1, 0, np.nan], "htn": [0, 1, 1]})
    spec = infer_target(columns, "dm,htn")
    encoded = spec.encode(columns)
    assert spec.kind == "multilabel" and np.isnan(encoded[2, 0]) and encoded[2, 1] == 1
    with pytest.raises(MedAIError, match="must hold 0/1"):
        spec.encode(columns.assign(dm=["yes", "maybe", 1]))


def test_round_trip():
    target = infer_target(pd.Series(["no", "yes"]), "y")
    assert TargetSpec.from_json(target.to_json()) == target
