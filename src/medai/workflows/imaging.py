"""Image diagnosis: train a CNN on a built-in task or the user's images, evaluate it with the common
report (bootstrap CIs, threshold, calibration, plots), add Grad-CAM examples, and package the artifact.
"""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medai.data.registry import get_dataset
from medai.data.splits import train_val_test_split
from medai.data.tabular import choose_positive_label
from medai.evaluation import plots
from medai.evaluation.evaluate import confusion_matrix, evaluate_binary, evaluate_multiclass
from medai.evaluation.report import render_card, render_report
from medai.evaluation.threshold import ThresholdRule, choose_threshold
from medai.models.artifact import dumps, write_artifact
from medai.tasks import SplitProtocol, Task
from medai.workflows.common import library_versions, medai_version, now_iso
from medai.workflows.tabular import TrainResult, _json_safe

SPLITS = ("train", "val", "test")


@dataclass
class ImageTrainOptions:
    network: str | None = None  # None: the recipe's network (or the task's default)
    epochs: int | None = None
    image_size: int | None = None
    batch_size: int | None = None
    members: int | None = None  # networks in the ensemble; None: the recipe's number
    seed: int = 0
    threshold: str | None = None  # clinical threshold rule on validation data (default: Youden)
    tta: bool | None = None
    n_boot: int = 1000
    max_train: int | None = None  # use only the first N training images (quick runs, tests)
    show_progress: bool = True
    num_threads: int | None = None


@dataclass
class ImageData:
    """Images per split (lists of arrays or one array) with integer labels and class names."""

    images: dict[str, Any]
    labels: dict[str, np.ndarray]
    classes: list[str]
    source: str
    official_split: bool
    license: str = "user data"
    citation: str = ""


def load_task_data(task: Task) -> ImageData:
    spec = get_dataset(task.dataset)
    splits = spec.load()
    classes = list(spec.extra.get("classes") or [str(c) for c in np.unique(splits["train"][1])])
    return ImageData({s: splits[s][0] for s in SPLITS}, {s: splits[s][1] for s in SPLITS}, classes,
                     spec.name, official_split=True, license=spec.license, citation=spec.citation)


def load_user_data(path: Path, seed: int = 0, path_column: str = "path", label_column: str = "label") -> ImageData:
    """A class-per-folder directory, a CSV of ``path,label``, or a MedMNIST-style ``.npz``."""
    from medai.data.images import load_image, load_medmnist_npz, read_image_csv, scan_image_folder

    path = Path(path)
    if path.suffix.lower() == ".npz":
        splits = load_medmnist_npz(path)
        classes = [str(c) for c in np.unique(np.concatenate([splits[s][1] for s in SPLITS]))]
        return ImageData({s: splits[s][0] for s in SPLITS}, {s: splits[s][1] for s in SPLITS}, classes,
                         str(path), official_split=True)
    listing = scan_image_folder(path) if path.is_dir() else read_image_csv(path, path_column, label_column)
    images = [load_image(p) for p in listing.paths]
    labels = np.asarray(listing.labels)
    split = train_val_test_split(labels, seed=seed)
    pick = {"train": split.train, "val": split.val, "test": split.test}
    return ImageData({s: [images[i] for i in pick[s]] for s in SPLITS}, {s: labels[pick[s]] for s in SPLITS},
                     [str(c) for c in listing.classes], str(path), official_split=False)


def custom_image_task(path: Path, classes: list[str], spatial_dims: int, positive_label: str | None) -> Task:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(path).stem).strip("-") or "images"
    binary = len(classes) == 2
    return Task(
        name=f"{stem}-images"[:100], modality="imaging", kind="binary" if binary else "multiclass",
        dataset=str(path), target="label",
        positive_label=choose_positive_label(classes, positive_label, "class folder") if binary else None,
        description=f"Classify images from {Path(path).name} into {', '.join(classes)}",
        split=SplitProtocol(), default_learner="small-cnn",
        options={"spatial_dims": spatial_dims, "image_size": 28 if spatial_dims == 3 else 64},
    )


def _image_hashes(X: np.ndarray) -> list[str]:
    return [hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest() for x in X]


def _examples_png(X: np.ndarray, y: np.ndarray, proba: np.ndarray, classes: list[str], n: int = 12) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(X))
    cols = min(6, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.9 * rows), dpi=110, squeeze=False)
    rng = np.random.default_rng(0)
    for ax, i in zip(axes.ravel(), rng.choice(len(X), n, replace=False), strict=False):
        image = X[i].mean(axis=0)
        image = image[image.shape[0] // 2] if image.ndim == 3 else image
        pred = int(proba[i].argmax())
        ax.imshow(image, cmap="gray")
        ok = pred == y[i]
        ax.set_title(f"{classes[y[i]][:10]}\npred {classes[pred][:10]} {proba[i, pred]:.2f}", fontsize=7,
                     color="darkgreen" if ok else "crimson")
    for ax in axes.ravel():
        ax.axis("off")
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _gradcam_png(model_like, X: np.ndarray, indices: list[int]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, axes = plt.subplots(1, len(indices), figsize=(2.0 * len(indices), 2.2), dpi=110, squeeze=False)
    for ax, i in zip(axes.ravel(), indices, strict=True):
        ax.imshow(np.asarray(Image.open(io.BytesIO(model_like.gradcam_png(X[i])))))
        ax.axis("off")
        ax.set_title(f"test #{i}", fontsize=7)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def train_image_task(task: Task, out: str | Path, options: ImageTrainOptions | None = None,
                     data: ImageData | None = None) -> TrainResult:
    from medai.data.images import prepare_images
    from medai.models.imaging.artifact import ImagingModel
    from medai.models.imaging.classifier import RECIPES, ImageClassifier

    options = options or ImageTrainOptions()
    out = Path(out)
    data = data or load_task_data(task)
    spatial_dims = int(task.options.get("spatial_dims", 2))
    image_size = options.image_size or task.options.get("image_size", 28)
    first = data.images["train"][0]
    channels = 3 if (spatial_dims == 2 and np.ndim(first) == 3 and np.shape(first)[-1] == 3) else 1
    X = {s: prepare_images(list(data.images[s]), image_size, channels=channels, spatial_dims=spatial_dims)
         for s in SPLITS}
    y = {s: np.asarray(data.labels[s]).astype(int) for s in SPLITS}
    if options.max_train:
        X["train"], y["train"] = X["train"][: options.max_train], y["train"][: options.max_train]
    recipe = dict(RECIPES.get(task.options.get("recipe", ""), {}))
    recipe.update(spatial_dims=spatial_dims, seed=options.seed, progress=options.show_progress)
    for key, value in (("network", options.network), ("epochs", options.epochs),
                       ("batch_size", options.batch_size), ("tta", options.tta), ("n_members", options.members),
                       ("num_threads", options.num_threads)):
        if value is not None:
            recipe[key] = value
    recipe.setdefault("network", task.default_learner if task.default_learner != "auto" else "small-cnn")
    classifier = ImageClassifier(**recipe)
    # No checkpoints here: nothing resumes them, and a ResNet-18's (weights, best weights, average and optimiser
    # state) is ~220 MB written every epoch. ImageClassifier.fit(checkpoint_dir=..., resume=True) offers them.
    classifier.fit(X["train"], y["train"], X["val"], y["val"])
    proba = {s: classifier.predict_proba(X[s]) for s in ("val", "test")}
    classes = data.classes
    binary = len(classes) == 2
    positive_index = classes.index(task.positive_label) if binary and task.positive_label in classes else (
        1 if binary else None)

    notes, extra_tables = [], []
    if binary:
        yb = {s: (y[s] == positive_index).astype(int) for s in SPLITS}
        p = {s: proba[s][:, positive_index] for s in ("val", "test")}
        rule = ThresholdRule.parse(options.threshold)
        clinical_threshold = choose_threshold(yb["val"], p["val"], rule)
        if task.options.get("decision") == "argmax":
            threshold, description = 0.5, "argmax of the model output (MedMNIST protocol; threshold 0.5)"
        else:
            threshold, description = clinical_threshold, rule.describe()
        test = evaluate_binary(yb["test"], p["test"], threshold, n_boot=options.n_boot, seed=options.seed)
        at_clinical = evaluate_binary(yb["test"], p["test"], clinical_threshold, n_boot=options.n_boot,
                                      seed=options.seed)
        matrix = confusion_matrix(yb["test"], p["test"], threshold)
        prevalence = {s: round(float(yb[s].mean()), 6) for s in SPLITS}
        extra_tables.append({
            "title": "Decision rule on the test set: protocol (argmax) vs threshold chosen on validation",
            "note": (f"Positive rate: validation {prevalence['val']:.3f}, test {prevalence['test']:.3f}. "
                     "A threshold tuned on validation data carries its prevalence over to the test set."),
            "header": ["rule", "threshold", "accuracy", "sensitivity", "specificity", "F1"],
            "rows": [[name, float(t), m["accuracy"]["value"], m["sensitivity"]["value"],
                      m["specificity"]["value"], m["f1"]["value"]]
                     for name, t, m in (("protocol", threshold, test),
                                        (f"validation {rule.method}", clinical_threshold, at_clinical))],
        })
        decision = {"rule": "argmax" if task.options.get("decision") == "argmax" else rule.method,
                    "target": rule.target, "threshold": round(threshold, 6), "description": description}
        pngs = {
            "roc": plots.roc_png(yb["test"], p["test"], test["auroc"]["value"], threshold),
            "precision_recall": plots.pr_png(yb["test"], p["test"], test["auprc"]["value"]),
            "calibration": plots.calibration_png(yb["test"], p["test"]),
            "confusion": plots.confusion_png(matrix, [classes[1 - positive_index], classes[positive_index]]),
        }
        confusion = {"labels": [classes[1 - positive_index], classes[positive_index]], "matrix": matrix}
    else:
        test = evaluate_multiclass(y["test"], proba["test"], n_boot=min(options.n_boot, 500), seed=options.seed)
        at_clinical = None
        threshold = None
        prevalence = {s: {c: round(float(np.mean(y[s] == k)), 6) for k, c in enumerate(classes)} for s in SPLITS}
        decision = {"rule": "argmax", "target": None, "threshold": None, "description": "most probable class"}
        pred = proba["test"].argmax(axis=1)
        matrix = [[int(np.sum((y["test"] == a) & (pred == b))) for b in range(len(classes))]
                  for a in range(len(classes))]
        pngs = {"confusion": plots.confusion_png(matrix, classes)}
        confusion = {"labels": classes, "matrix": matrix}

    meta_preview = {"preprocessing": {"image_size": image_size, "channels": channels, "spatial_dims": spatial_dims},
                    "classes": classes, "positive_index": positive_index, "decision": decision}
    explainer = ImagingModel(classifier, meta_preview)
    pngs["test_examples"] = _examples_png(X["test"], y["test"], proba["test"], classes)
    shown = [int(i) for i in np.argsort(-proba["test"].max(axis=1))[:2]] + \
            [int(i) for i in np.flatnonzero(proba["test"].argmax(1) != y["test"])[:2]]
    pngs["gradcam_examples"] = _gradcam_png(explainer, X["test"], shown or [0])

    train_hashes = set(_image_hashes(X["train"]))
    split_info = {
        "protocol": ("official train/validation/test split of the dataset" if data.official_split
                     else task.split.describe()),
        "seed": options.seed,
        "group_column": None,
        "sizes": {s: int(len(y[s])) for s in SPLITS},
        "prevalence": prevalence if binary else {s: 0.0 for s in SPLITS},
        "duplicates": {
            "val_in_train": sum(h in train_hashes for h in _image_hashes(X["val"])),
            "test_in_train": sum(h in train_hashes for h in _image_hashes(X["test"])),
        },
    }
    if not binary:
        split_info["class_prevalence"] = prevalence
    history = classifier.history_
    learner = classifier.network
    if int(classifier.n_members) > 1:
        networks = dict.fromkeys(m["network"] for m in classifier.members_)
        learner = f"{' + '.join(networks)} (ensemble of {int(classifier.n_members)})"
    metrics = {
        "task": task.name,
        "learner": learner,
        "split": split_info,
        "decision": decision,
        "test": test,
        "cv": {},
        "confusion_matrix": confusion,
        "subgroups": [],
        "training": {"epochs_run": len(history), "best_epoch": classifier.best_epoch_,
                     "best_val_auroc": classifier.best_score_, "members": classifier.members_},
    }
    if at_clinical is not None:
        metrics["test_at_validation_threshold"] = {"threshold": round(float(clinical_threshold), 6),
                                                   "rule": rule.describe(),
                                                   "metrics": at_clinical}
    fingerprint = hashlib.sha256("".join(sorted(train_hashes)).encode()).hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        classifier.save(tmp)
        weights = {name: (Path(tmp) / name).read_bytes() for name in ("weights.safetensors", "network.json")}
    model_json = {
        "format": "medai-model/1",
        "family": "imaging",
        "name": task.name,
        "task": task.to_json(),
        "learner": learner,
        "hyperparameters": _json_safe(json_params(classifier)),
        "seed": options.seed,
        "classes": classes,
        "positive_index": positive_index,
        "preprocessing": meta_preview["preprocessing"],
        "input_schema": explainer.input_schema,
        "decision": decision,
        "data": {"dataset": data.source, "fingerprint": fingerprint, "n_records": int(sum(len(y[s]) for s in SPLITS)),
                 "license": data.license, "citation": data.citation},
        "metrics": {"test": test},
        "medai_version": medai_version(),
        "libraries": library_versions(),
        "created_at": now_iso(),
        "weights": "weights.safetensors",
    }
    context = {
        "task": task.to_json(),
        "model": {"name": task.name, "learner": learner, "seed": options.seed,
                  "created_at": model_json["created_at"], "medai_version": model_json["medai_version"],
                  "libraries": model_json["libraries"]},
        "data": {**model_json["data"], "notes": notes},
        "split": split_info, "decision": decision, "test": test, "cv": {}, "cv_spec": "",
        "subgroups": [], "plots": pngs, "extra_tables": extra_tables,
        "limitations": [
            f"Images are resized to {image_size} px; fine findings visible only at full resolution are lost.",
            "Grad-CAM shows where the network looked, not why; it is coarse at this resolution.",
        ],
    }
    files = {
        "model.json": dumps(_json_safe(model_json)),
        **weights,
        "metrics.json": dumps(_json_safe(metrics)),
        "report.html": render_report(context).encode(),
        "card.md": render_card(context).encode(),
        **{f"plots/{name}.png": png for name, png in pngs.items()},
    }
    write_artifact(out, files)
    return TrainResult(task=task, out=out, metrics=_json_safe(metrics), model_json=model_json)


def json_params(classifier) -> dict[str, Any]:
    return {k: (v if isinstance(v, int | float | str | bool | type(None)) else str(v))
            for k, v in classifier.get_params().items()}
