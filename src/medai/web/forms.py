"""The predict form generated from a model's input schema, and the typed record it yields.

A field per input column: numbers (with the training range and any physiological limits the task
declares), a choice among the categories seen in training, free text (notes, SMILES, sequences). A blank
field is a missing value (the model imputes it, as the API does with ``null``). What the page checks here
is only what a typed JSON client would have had to get right itself — a number that is a number, a value
within the physiological limits, a category the model knows; everything else is the API's validation, whose
field errors are mapped back onto the form (:func:`api_field_errors`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FormField", "api_field_errors", "form_fields", "parse_record"]


@dataclass
class FormField:
    name: str
    kind: str  # numeric | categorical | text
    id: str
    categories: list[str] = field(default_factory=list)
    min: float | None = None  # training range
    max: float | None = None
    low: float | None = None  # physiological limits (impossible beyond)
    high: float | None = None
    value: str = ""
    error: str | None = None
    warning: str | None = None

    @property
    def help(self) -> str:
        parts = []
        if self.kind == "numeric":
            if self.min is not None and self.max is not None:
                parts.append(f"training data range {_num(self.min)} to {_num(self.max)}")
            if self.low is not None or self.high is not None:
                parts.append(f"possible values: {self.limits}")
        elif self.kind == "categorical" and self.categories:
            parts.append(f"{len(self.categories)} allowed values")
        parts.append("leave blank if unknown")
        return "; ".join(parts)


    @property
    def limits(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{_num(self.low)} to {_num(self.high)}"
        return f"at least {_num(self.low)}" if self.low is not None else f"at most {_num(self.high)}"


def _num(value: float) -> str:
    return f"{value:.6g}"


def form_fields(schema: list[dict[str, Any]]) -> list[FormField]:
    return [
        FormField(
            name=spec["name"],
            kind=spec.get("kind", "numeric"),
            id=f"f{i}",
            categories=[str(c) for c in spec.get("categories") or []],
            min=spec.get("min"),
            max=spec.get("max"),
            low=spec.get("low"),
            high=spec.get("high"),
        )
        for i, spec in enumerate(schema)
    ]


def parse_record(fields: list[FormField], form) -> dict[str, Any]:
    """The JSON record of a posted form; each field's ``value`` keeps what was typed and ``error`` says what
    is wrong with it (the caller re-shows the form when any field has one)."""
    record: dict[str, Any] = {}
    for f in fields:
        raw = form.get(f.id)
        text = raw.strip() if isinstance(raw, str) else ""
        f.value = text if f.kind != "text" else (raw if isinstance(raw, str) else "")
        if text == "":
            record[f.name] = None
            continue
        if f.kind == "numeric":
            try:
                number = float(text.replace(",", ".")) if text.count(",") == 1 and "." not in text else float(text)
            except ValueError:
                f.error = f"{f.name}: enter a number (for example 12.5)"
                continue
            if not math.isfinite(number):
                f.error = f"{f.name}: enter a finite number"
                continue
            if (f.low is not None and number < f.low) or (f.high is not None and number > f.high):
                f.error = (f"{f.name}: {_num(number)} is not a possible value (expected {f.limits}); "
                           "check the value and its unit")
                continue
            record[f.name] = int(number) if number.is_integer() and abs(number) < 2**53 else number
        elif f.kind == "categorical":
            if f.categories and text not in f.categories:
                f.error = f"{f.name}: choose one of the listed values"
                continue
            record[f.name] = text
        else:
            record[f.name] = f.value
    return record


def api_field_errors(fields: list[FormField], errors: list[dict[str, Any]]) -> list[str]:
    """Put the API's field errors (``loc`` ending in a column name) on the form's fields; the messages that
    name no field are returned for the top of the form."""
    by_name = {f.name: f for f in fields}
    loose = []
    for error in errors:
        loc = error.get("loc") or []
        target = by_name.get(loc[-1]) if loc and isinstance(loc[-1], str) else None
        if target is not None and target.error is None:
            target.error = f"{target.name}: {error.get('msg', 'invalid value')}"
        else:
            loose.append(str(error.get("msg", "invalid value")))
    return loose


def out_of_range_warnings(fields: list[FormField], reasons: list[str]) -> None:
    """The API's "outside the training data" reasons, shown beside the fields they name."""
    for reason in reasons or []:
        for f in fields:
            if reason.startswith(f.name + " ") and f.warning is None:
                f.warning = reason
