"""Routes CLI commands to the workflow of a modality other than tabular (today: imaging)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd

from medai.errors import MedAIError, NotFoundError


def image_options(arguments: dict[str, Any]):
    from medai.workflows.imaging import ImageTrainOptions

    return ImageTrainOptions(network=arguments.get("model"), epochs=arguments.get("epochs"),
                             image_size=arguments.get("image_size"), seed=arguments.get("seed", 0),
                             members=arguments.get("members"),
                             threshold=arguments.get("threshold"),
                             show_progress=not arguments.get("as_json", False))


def train_images(task, out: Path, arguments: dict[str, Any], data=None):
    from medai.workflows.imaging import train_image_task

    return train_image_task(task, out, image_options(arguments), data=data)


def user_image_task(path: Path, arguments: dict[str, Any]):
    """Task and data for ``--data`` pointing at images (folder, CSV of paths, or .npz)."""
    from medai.workflows.imaging import custom_image_task, load_user_data

    data = load_user_data(path, arguments.get("seed", 0), path_column=arguments.get("image_column") or "path",
                          label_column=arguments.get("target") or "label")
    first = data.images["train"][0]
    spatial_dims = 3 if (getattr(first, "ndim", 0) == 3 and first.shape[-1] not in (3,)) else 2
    task = custom_image_task(path, data.classes, spatial_dims, arguments.get("positive_label"))
    return task, data


def image_files(path: Path) -> list[Path]:
    from medai.data.images import IMAGE_EXTENSIONS

    if not path.exists():
        raise NotFoundError(f"{path} does not exist")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and (
        p.suffix.lower() in IMAGE_EXTENSIONS or "".join(p.suffixes[-2:]).lower() == ".nii.gz"))
    if not files:
        raise MedAIError(f"folder {path} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def predict_images(model, input_path: Path, output: Path | None) -> None:
    files = image_files(Path(input_path))
    rows = []
    for result in model.predict_files(files, explain=False):
        row = {"file": result["file"], "label": result["label"]}
        if "probability" in result:
            row["probability"] = result["probability"]
        row.update({f"p_{name}": p for name, p in result["probabilities"].items()})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if output is None:
        sys.stdout.write(frame.to_csv(index=False))
    else:
        from medai.fsutil import atomic_write_text

        atomic_write_text(output, frame.to_csv(index=False))
        print(f"{len(frame)} predictions written to {output}", file=sys.stderr)


def explain_image(model, input_path: Path, output: Path | None) -> dict[str, Any]:
    import base64

    from medai.fsutil import atomic_write_bytes

    files = image_files(Path(input_path))
    if len(files) != 1:
        raise MedAIError(f"explain takes one image; {input_path} holds {len(files)}")
    result = model.predict_files(files, explain=True)[0]
    destination = output or Path(files[0].stem + "_gradcam.png")
    atomic_write_bytes(destination, base64.b64decode(result.pop("gradcam_png_base64")))
    result["heatmap"] = str(destination)
    return result
