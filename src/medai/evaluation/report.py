"""The evaluation report (self-contained ``report.html``) and the model card (``card.md``).

Both are rendered from one ``context`` dict that the road builds, so every modality and kind of target gets
the same report: metrics with CIs, decision rule, confusion matrix, conformal coverage, plots, CV, subgroups,
split protocol, duplicates, warnings.
"""

from __future__ import annotations

import base64
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

_env = Environment(
    loader=PackageLoader("medai.evaluation", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ci(entry: dict | None) -> str:
    if not entry:
        return "n/a"
    if entry.get("ci_low") is None:
        return _fmt(entry.get("value"))
    return f"{_fmt(entry['value'])} ({_fmt(entry['ci_low'])}-{_fmt(entry['ci_high'])})"


def _cell(row: dict, key: str) -> str:
    """A subgroup row's value for ``key``, with its CI when the row has ``key_ci_low``/``key_ci_high``."""
    value = row.get(key)
    if value is None:
        return "n/a"
    low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if low is None or high is None:
        return _fmt(value)
    return f"{_fmt(value)} ({_fmt(low)}-{_fmt(high)})"


_env.filters["fmt"] = _fmt
_env.filters["cell"] = _cell
_env.filters["ci"] = _ci
_env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")


def render_report(context: dict[str, Any]) -> str:
    return _env.get_template("report.html.j2").render(**context)


def render_card(context: dict[str, Any]) -> str:
    card_env = Environment(
        loader=PackageLoader("medai.evaluation", "templates"),
        autoescape=False,  # noqa: S701 (Markdown, not HTML)
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    card_env.filters.update(_env.filters)
    return card_env.get_template("card.md.j2").render(**context)
