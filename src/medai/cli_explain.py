"""``medai explain``: contributions as tables, pictures (Grad-CAM, atom maps, ...) as PNG files."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from medai.console import out, print_json
from medai.fsutil import atomic_write_bytes
from medai.road.model import explanation_json


def _picture_paths(ids: list, output: Path | None, count: int) -> list[Path]:
    stems = [Path(str(i)).stem if i is not None else f"record-{n + 1}" for n, i in enumerate(ids)]
    if count == 1:
        return [output or Path(f"{stems[0]}_explanation.png")]
    folder = output or Path("explanations")
    folder.mkdir(parents=True, exist_ok=True)
    return [folder / f"{stem}_explanation.png" for stem in stems]


def show_explanations(model, inputs, top_k: int, output: Path | None, as_json: bool) -> None:
    explanations = model.modality.explain(model, inputs.X, top_k)
    items = model.items(model.scores(inputs.X), inputs.X)
    ids = list(inputs.ids) if inputs.ids is not None else [None] * len(items)
    pictures = [e for e in explanations if e.get("image_png") is not None]
    paths = iter(_picture_paths(ids, output, len(pictures)) if pictures else [])
    rows = []
    for n, (item, explanation, record_id) in enumerate(zip(items, explanations, ids, strict=True)):
        row = {"row": n + 1, inputs.id_name: record_id, **item, **explanation_json(explanation)}
        row.pop("explanation_png_base64", None)
        if explanation.get("image_png") is not None:
            path = next(paths)
            atomic_write_bytes(path, explanation["image_png"])
            row["explanation_png"] = str(path)
        rows.append(row)
    if as_json:
        return print_json(rows)
    for row in rows:
        label = f"row {row['row']}" + (f" ({row[inputs.id_name]})" if row[inputs.id_name] is not None else "")
        said = _prediction_text(row)
        if row.get("contributions"):
            table = Table(title=f"{label}: {said} - contributions to the {row.get('explains', 'score')}")
            table.add_column("feature")
            table.add_column("value", justify="right")
            table.add_column("contribution", justify="right")
            for c in row["contributions"]:
                table.add_row(str(c["feature"]), str(c["value"]), f"{c['contribution']:+.3f}")
            out.print(table)
        else:
            out.print(f"{label}: {said}" + (f" -> {row['explanation_png']}" if "explanation_png" in row else "")
                      + (f" ({row['summary']})" if row.get("summary") else ""))


def _prediction_text(row: dict) -> str:
    if "prediction_text" in row:  # kinds without a label or value say their prediction in words
        text = row["prediction_text"]
    elif "value" in row:
        text = f"{row['value']:.4g}"
    elif "labels" in row:
        text = ", ".join(row["labels"]) or "no label"
    else:
        text = str(row["label"]) + (f" (p={row['probability']:.3f})" if row.get("probability") is not None else "")
    if row.get("uncertain"):
        text += " - uncertain, refer"
    return text
