"""Reading tables in every format clinical researchers keep them in, with value labels where the format has them."""

import numpy as np
import pandas as pd
import pytest
from helpers import risk_frame

from medai.data.tables import read_table
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
    with pytest.raises(MedAIError, match="repeats the column"):
        read_table(dup)
    headerless = tmp_path / "cleveland.data"
    headerless.write_text("63.0,1.0,1.0,145.0\n67.0,1.0,4.0,160.0\n")
    with pytest.raises(MedAIError, match="no header row"):
        read_table(headerless)
    garbage = tmp_path / "x.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(MedAIError, match="could not read .*x.parquet"):
        read_table(garbage)


def test_csv_tsv_text_parquet_jsonl_excel_agree(tmp_path):
    frame = risk_frame(50)
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_csv(tmp_path / "d.tsv", index=False, sep="\t")
    frame.to_csv(tmp_path / "d.txt", index=False, sep=";")
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    frame.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    frame.to_excel(tmp_path / "d.xlsx", index=False)
    for name in ("d.csv", "d.tsv", "d.txt", "d.parquet", "d.jsonl", "d.xlsx"):
        got = read_table(tmp_path / name)
        assert list(got.columns) == list(frame.columns), name
        assert len(got) == 50 and got["age"].tolist() == frame["age"].tolist(), name


def test_excel_with_several_filled_sheets_is_refused(tmp_path):
    with pd.ExcelWriter(tmp_path / "two.xlsx") as writer:
        risk_frame(10).to_excel(writer, sheet_name="a", index=False)
        risk_frame(10).to_excel(writer, sheet_name="b", index=False)
    with pytest.raises(MedAIError, match="2 sheets"):
        read_table(tmp_path / "two.xlsx")


ARFF = """% UCI-style ARFF
@relation 'kidney'
@attribute 'age' numeric
@attribute 'bp' numeric
@attribute 'htn' {yes,no}
@attribute 'class' {ckd,notckd}
@data
48,80,yes,ckd
7,50,no,ckd
62,?,no,notckd
"""


def test_arff_standard_and_lenient(tmp_path):
    good = tmp_path / "kidney.arff"
    good.write_text(ARFF)
    frame = read_table(good)
    assert list(frame.columns) == ["age", "bp", "htn", "class"]
    assert frame["age"].tolist() == [48, 7, 62] and np.isnan(frame["bp"].iloc[2])
    assert frame["class"].tolist() == ["ckd", "ckd", "notckd"]
    # the UCI chronic-kidney-disease file has stray tabs, spaces and trailing commas that strict parsers refuse
    messy = tmp_path / "messy.arff"
    messy.write_text(ARFF.replace("7,50,no,ckd", "7,50,\tno ,ckd,").replace("@attribute 'bp' numeric",
                                                                          "@attribute 'bp'  numeric"))
    frame = read_table(messy)
    assert frame["htn"].tolist() == ["yes", "no", "no"] and frame["age"].dtype.kind in "if"
    broken = tmp_path / "broken.arff"
    broken.write_text(ARFF.replace("62,?,no,notckd", "62,1,2,3,4,5"))
    with pytest.raises(MedAIError, match="line 10: 6 values for 4 attributes"):
        read_table(broken)


def test_spss_stata_and_sas_transport_keep_value_labels(tmp_path):
    pyreadstat = pytest.importorskip("pyreadstat")
    frame = pd.DataFrame({"age": [50.0, 61.0, 44.0], "sex": [1.0, 2.0, 1.0], "died": [0.0, 1.0, 0.0]})
    labels = {"sex": {1.0: "female", 2.0: "male"}, "died": {0.0: "alive", 1.0: "dead"}}
    pyreadstat.write_sav(frame, str(tmp_path / "trial.sav"), variable_value_labels=labels)
    pyreadstat.write_dta(frame, str(tmp_path / "trial.dta"), variable_value_labels=labels)
    pyreadstat.write_xport(frame, str(tmp_path / "trial.xpt"))
    for name in ("trial.sav", "trial.dta"):
        got = read_table(tmp_path / name)
        assert got["sex"].tolist() == ["female", "male", "female"], name
        assert got["died"].tolist() == ["alive", "dead", "alive"], name
        assert got["age"].tolist() == [50.0, 61.0, 44.0], name
    xpt = read_table(tmp_path / "trial.xpt")
    assert [c.lower() for c in xpt.columns] == ["age", "sex", "died"] and len(xpt) == 3
