"""Targets that span several columns with roles: ``survival`` (a follow-up time and an event indicator) and
``treatment-effect`` (the arm a patient received and the outcome observed, optionally the true effect of
semi-synthetic data).

The reader that knows the roles (``--time/--event``, ``--treatment/--outcome``) hands the road the target
columns as a DataFrame and their roles in ``Dataset.target_fields``; here they are checked and encoded:

- survival -> ``(n, 2)`` floats: time, event (1 = the event happened, 0 = censored);
- treatment-effect -> ``(n, 3)`` floats: arm index (into ``TargetSpec.classes``), outcome, true effect of the
  non-reference arm (NaN where unknown).

Every check names the column and the rows at fault.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medai.errors import MedAIError

EVENT_CODES = {"1": 1.0, "0": 0.0, "true": 1.0, "false": 0.0}
GRID_POINTS = 60
MIN_EVENTS = 5
MIN_PER_ARM = 5


def _rows(positions, limit: int = 5) -> str:
    positions = np.asarray(positions)
    shown = ", ".join(str(int(i) + 1) for i in positions[:limit])
    more = f" and {len(positions) - limit} more" if len(positions) > limit else ""
    return f"row{'s' if len(positions) > 1 else ''} {shown}{more}"


def _column(values: pd.DataFrame, fields: dict, role: str, flag: str, source: str) -> pd.Series:
    name = fields.get(role)
    if not name:
        raise MedAIError(f"this target needs {flag} COLUMN")
    if not isinstance(values, pd.DataFrame) or name not in values.columns:
        raise MedAIError(f"{source} has no {role} column {name!r} ({flag})")
    return values[name].reset_index(drop=True)


def _numbers(series: pd.Series, what: str, source: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series):
        raise MedAIError(f"{source}: {what} {series.name!r} holds true/false values; it must be numeric")
    numbers = pd.to_numeric(series, errors="coerce")
    missing = np.flatnonzero(series.isna().to_numpy())
    if missing.size:
        raise MedAIError(f"{source}: {what} {series.name!r} is missing in {_rows(missing)}; fill it in or remove "
                         "those records")
    bad = np.flatnonzero(numbers.isna().to_numpy() | ~np.isfinite(numbers.to_numpy(dtype=float)))
    if bad.size:
        raise MedAIError(f"{source}: {what} {series.name!r} must be a finite number but {_rows(bad)} "
                         f"{'hold' if bad.size > 1 else 'holds'} {series.iloc[bad[0]]!r}")
    return numbers.to_numpy(dtype=float)


def _label(value) -> str:
    from medai.tasks.kinds import label_text

    return label_text(value).lower()


# -- survival ------------------------------------------------------------------------------------------------
def event_indicator(series: pd.Series, event_value: str | None, source: str) -> np.ndarray:
    """0/1 (or true/false) -> 1.0 for the event, 0.0 for censored; another coding needs ``--event-value``."""
    missing = np.flatnonzero(series.isna().to_numpy())
    if missing.size:
        raise MedAIError(f"{source}: event column {series.name!r} is missing in {_rows(missing)}; fill it in or "
                         "remove those records")
    texts = series.map(_label)
    if event_value is not None:
        wanted = _label(event_value)
        if wanted not in set(texts):
            raise MedAIError(f"{source}: --event-value {event_value!r} is not a value of event column "
                             f"{series.name!r} (values: {sorted(set(texts))[:10]})")
        if texts.nunique() > 2:
            raise MedAIError(f"{source}: event column {series.name!r} has {texts.nunique()} values; it must hold "
                             "two (the event and censored)")
        return (texts == wanted).to_numpy(dtype=float)
    codes = texts.map(EVENT_CODES)
    bad = np.flatnonzero(codes.isna().to_numpy())
    if bad.size:
        raise MedAIError(f"{source}: event column {series.name!r} must be 0/1 or true/false (1 = the event "
                         f"happened, 0 = censored) but {_rows(bad)} {'hold' if bad.size > 1 else 'holds'} "
                         f"{series.iloc[bad[0]]!r}; name the value that means the event with --event-value")
    return codes.to_numpy(dtype=float)


def survival_array(values: pd.DataFrame, fields: dict, source: str) -> np.ndarray:
    time = _numbers(_column(values, fields, "time", "--time", source), "time column", source)
    negative = np.flatnonzero(time < 0)
    if negative.size:
        raise MedAIError(f"{source}: time column {fields['time']!r} is negative in {_rows(negative)}; follow-up "
                         "times must be >= 0")
    event = event_indicator(_column(values, fields, "event", "--event", source), fields.get("event_value"), source)
    return np.column_stack([time, event])


def _round(value: float) -> float:
    """Two significant digits: a horizon a person would name."""
    if value <= 0:
        return float(value)
    digits = 1 - int(np.floor(np.log10(value)))
    return float(round(value, digits))


def survival_target(values: pd.DataFrame, column: str, fields: dict, source: str):
    from medai.tasks.kinds import TargetSpec

    y = survival_array(values, fields, source)
    time, event = y[:, 0], y[:, 1]
    n_events = int(event.sum())
    if n_events < MIN_EVENTS:
        raise MedAIError(f"{source}: {n_events} event(s) in {fields['event']!r}; a survival model needs at least "
                         f"{MIN_EVENTS} (is the event column coded 1 = event, 0 = censored?)")
    last_event = float(time[event == 1].max())
    horizons = fields.get("horizons")
    if horizons:
        horizons = sorted(float(h) for h in horizons)
        if horizons[0] <= 0:
            raise MedAIError(f"horizons must be positive times, got {horizons[0]}")
        beyond = [h for h in horizons if h >= last_event]
        if beyond:
            raise MedAIError(f"horizon(s) {beyond} lie beyond the follow-up of {source}: the last event is at "
                             f"{last_event:g} ({fields['time']!r}); choose horizons before it")
        how = "horizons named with --horizons" if fields.get("horizons_how") is None else fields["horizons_how"]
    else:
        horizons = sorted({_round(q) for q in np.quantile(time[event == 1], [0.25, 0.5, 0.75])})
        how = "horizons at the quartiles of the event times (name them with --horizons)"
    grid = np.linspace(0.0, last_event, GRID_POINTS + 1)[1:]
    grid = np.unique(np.round(np.concatenate([grid, horizons]), 6))
    unit = fields.get("time_unit") or "time units"
    spec_fields = {**{k: v for k, v in fields.items() if k != "horizons_how"}, "horizons": horizons,
                   "grid": grid.tolist(), "last_event": last_event, "time_unit": unit}
    return TargetSpec("survival", column, [], how=(f"time-to-event: {fields['time']!r} ({unit}) with event "
                                                   f"{fields['event']!r}; {n_events} events of {len(y)} records "
                                                   f"({len(y) - n_events} censored); {how}"),
                      fields=spec_fields)


# -- treatment effect ----------------------------------------------------------------------------------------
def _natural(text: str):
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def treatment_target(values: pd.DataFrame, column: str, fields: dict, source: str):
    from medai.tasks.kinds import TargetSpec, label_text

    arms_series = _column(values, fields, "treatment", "--treatment", source)
    missing = np.flatnonzero(arms_series.isna().to_numpy())
    if missing.size:
        raise MedAIError(f"{source}: treatment column {fields['treatment']!r} is missing in {_rows(missing)}")
    arms = sorted(arms_series.map(label_text).unique(), key=_natural)
    if len(arms) < 2:
        raise MedAIError(f"{source}: treatment column {fields['treatment']!r} has a single arm ({arms}); a "
                         "treatment effect compares at least two arms")
    if len(arms) > 10:
        raise MedAIError(f"{source}: treatment column {fields['treatment']!r} has {len(arms)} distinct values; "
                         "a treatment is a handful of arms (at most 10), not a dose or a measurement")
    counts = arms_series.map(label_text).value_counts()
    small = [a for a in arms if counts[a] < MIN_PER_ARM]
    if small:
        raise MedAIError(f"{source}: arm(s) {small} of {fields['treatment']!r} have fewer than {MIN_PER_ARM} "
                         "records; an effect cannot be estimated from so few")
    reference = fields.get("reference")
    if reference is not None:
        reference = label_text(reference)
        if reference not in arms:
            raise MedAIError(f"--reference-arm {reference!r} is not an arm of {fields['treatment']!r} ({arms})")
        arms = [reference, *[a for a in arms if a != reference]]
    _numbers(_column(values, fields, "outcome", "--outcome", source), "outcome column", source)
    if fields.get("true_effect"):
        if len(arms) != 2:
            raise MedAIError("--true-effect is the effect of one arm against the other: it needs exactly two arms")
        _numbers(_column(values, fields, "true_effect", "--true-effect", source), "true-effect column", source)
    better = "higher" if fields.get("higher_is_better", True) else "lower"
    spec_fields = {**fields, "reference": arms[0], "higher_is_better": better == "higher"}
    per_arm = ", ".join(f"{a}: {int(counts[a])}" for a in arms)
    return TargetSpec("treatment-effect", column, arms, how=(
        f"treatment {fields['treatment']!r} with {len(arms)} arms ({per_arm}; reference {arms[0]!r}), outcome "
        f"{fields['outcome']!r} ({better} is better)"), fields=spec_fields)


def treatment_array(target, values: pd.DataFrame, source: str) -> np.ndarray:
    from medai.tasks.kinds import label_text

    fields = target.fields
    arms = _column(values, fields, "treatment", "--treatment", source).map(
        lambda v: None if pd.isna(v) else label_text(v))
    index = {a: i for i, a in enumerate(target.classes)}
    codes = arms.map(index)
    unknown = np.flatnonzero(codes.isna().to_numpy())
    if unknown.size:
        raise MedAIError(f"{source}: treatment {fields['treatment']!r} has arms outside {target.classes} in "
                         f"{_rows(unknown)} (e.g. {arms.iloc[unknown[0]]!r})")
    outcome = _numbers(_column(values, fields, "outcome", "--outcome", source), "outcome column", source)
    effect = np.full(len(outcome), np.nan)
    if fields.get("true_effect") and fields["true_effect"] in values.columns:
        effect = _numbers(values[fields["true_effect"]].reset_index(drop=True), "true-effect column", source)
    return np.column_stack([codes.to_numpy(dtype=float), outcome, effect])


# -- the road's entry points ---------------------------------------------------------------------------------
def infer(kind: str, values, column: str, fields: dict, source: str):
    if not isinstance(values, pd.DataFrame):
        flags = "--time COL --event COL" if kind == "survival" else "--treatment COL --outcome COL"
        raise MedAIError(f"a {kind} target spans several columns: give them with {flags}")
    if len(values) == 0:
        raise MedAIError(f"{source} has no records")
    if kind == "survival":
        return survival_target(values, column, fields, source)
    return treatment_target(values, column, fields, source)


def encode(target, values, source: str) -> np.ndarray:
    if not isinstance(values, pd.DataFrame):
        raise MedAIError(f"{source}: a {target.kind} target needs its columns as a table")
    if target.kind == "survival":
        return survival_array(values, target.fields, source)
    return treatment_array(target, values, source)
