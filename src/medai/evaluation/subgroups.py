"""Performance per subgroup (sex, age band, site, ...) so that a model that fails one group is visible."""

from __future__ import annotations

import numpy as np
import pandas as pd

AGE_BANDS = [(0, 40, "<40"), (40, 50, "40-49"), (50, 60, "50-59"), (60, 70, "60-69"), (70, 200, ">=70")]
MIN_GROUP_SIZE = 10


def band_ages(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    out = pd.Series("missing", index=values.index, dtype=object)
    for low, high, label in AGE_BANDS:
        out[(numbers >= low) & (numbers < high)] = label
    return out


def find_subgroup_columns(columns: list[str], requested: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The requested columns that exist, else any column named like sex, gender, age, race, ethnicity, site."""
    if requested:
        return [c for c in requested if c in columns]
    wanted = {"sex", "gender", "age", "race", "ethnicity", "site", "hospital"}
    return [c for c in columns if c.lower() in wanted]


def subgroup_table(
    frame: pd.DataFrame,
    columns: list[str],
    evaluator,
    y: np.ndarray,
    s: np.ndarray,
    decision: dict,
    *,
    seed: int = 0,
) -> list[dict]:
    """One row per (column, group): n and the kind's metrics (its headline with a 95% CI), from
    ``evaluator.subgroup_stats``; age is banded."""
    rows = []
    y, s = np.asarray(y), np.asarray(s, dtype=float)
    for column in columns:
        values = frame[column].reset_index(drop=True)
        groups = band_ages(values) if column.lower() == "age" else values.map(
            lambda v: "missing" if pd.isna(v) else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
        )
        for group in sorted(groups.unique(), key=str):
            mask = (groups == group).to_numpy()
            stats, note = evaluator.subgroup_stats(y[mask], s[mask], decision, seed=seed)
            rows.append({"column": column, "group": str(group), "n": int(mask.sum()), **stats, "note": note})
    return rows
