"""Physiologically possible values of common ICU variables, used to flag (and leave out) impossible observations
such as a pH of 735 or a temperature of -17.8 C: they are counted in the reader's notes, never silently used.

Names are the PhysioNet 2012 challenge's, with a few common aliases; units are the challenge's (mmHg, C, kg, cm,
mmol/L, mg/dL, fraction for FiO2). Ranges are deliberately wide: they reject recording errors, not sick patients.
"""

from __future__ import annotations

import numpy as np

RANGES: dict[str, tuple[float, float]] = {
    "Age": (0, 120), "Gender": (0, 1), "Height": (50, 250), "Weight": (20, 400), "ICUType": (1, 4),
    "ALP": (0, 5000), "ALT": (0, 20000), "AST": (0, 20000), "Albumin": (0.5, 7), "BUN": (0, 300),
    "Bilirubin": (0, 100), "Cholesterol": (20, 1000), "Creatinine": (0, 30), "DiasABP": (1, 300),
    "FiO2": (0.21, 1.0), "GCS": (3, 15), "Glucose": (10, 2000), "HCO3": (1, 60), "HCT": (5, 80), "HR": (1, 300),
    "K": (0.5, 15), "Lactate": (0, 40), "MAP": (1, 300), "MechVent": (0, 1), "Mg": (0, 15), "NIDiasABP": (1, 300),
    "NIMAP": (1, 300), "NISysABP": (1, 350), "Na": (90, 200), "PaCO2": (5, 200), "PaO2": (10, 800),
    "Platelets": (1, 2000), "RespRate": (0, 100), "SaO2": (20, 100), "SysABP": (1, 350), "Temp": (15, 45),
    "TroponinI": (0, 100), "TroponinT": (0, 100), "Urine": (0, 10000), "WBC": (0, 500), "pH": (6.5, 8.0),
}
ALIASES = {"heart_rate": "HR", "heartrate": "HR", "resp_rate": "RespRate", "respiratory_rate": "RespRate",
           "temperature": "Temp", "sbp": "SysABP", "dbp": "DiasABP", "map": "MAP", "spo2": "SaO2",
           "sodium": "Na", "potassium": "K", "lactate": "Lactate", "creatinine": "Creatinine", "glucose": "Glucose",
           "platelets": "Platelets", "wbc": "WBC", "ph": "pH", "fio2": "FiO2", "gcs": "GCS", "bun": "BUN"}
_LOWER = {name.lower(): name for name in RANGES} | ALIASES


def range_of(variable: str) -> tuple[float, float] | None:
    name = _LOWER.get(str(variable).strip().lower())
    return RANGES.get(name) if name else None


def out_of_range(variables: tuple[str, ...], var: np.ndarray, value: np.ndarray) -> np.ndarray:
    """True for each observation outside its variable's possible range (or not a finite number)."""
    low = np.full(len(variables), -np.inf, dtype=np.float64)
    high = np.full(len(variables), np.inf, dtype=np.float64)
    for i, name in enumerate(variables):
        bounds = range_of(name)
        if bounds:
            low[i], high[i] = bounds
    value = np.asarray(value, dtype=np.float64)
    return ~np.isfinite(value) | (value < low[var]) | (value > high[var])


def describe_flagged(variables: tuple[str, ...], var: np.ndarray, flagged: np.ndarray, limit: int = 8) -> str:
    """``"pH 12, Temp 5, ..."``: how many observations of each variable were out of range."""
    counts = np.bincount(var[flagged], minlength=len(variables))
    order = np.argsort(-counts)
    parts = [f"{variables[i]} {counts[i]}" + (f" (outside {range_of(variables[i])[0]:g}-"
                                              f"{range_of(variables[i])[1]:g})" if range_of(variables[i]) else "")
             for i in order[:limit] if counts[i]]
    more = int((counts[order[limit:]] > 0).sum()) if len(order) > limit else 0
    return ", ".join(parts) + (f" and {more} more variables" if more else "")
