"""The imaging modality: X-ray, CT, MRI, ultrasound (2D and 3D) with CNNs, Grad-CAM and ONNX export.

Torch and MONAI are imported only when a model is built, trained or loaded.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from medai.errors import MedAIError
from medai.modalities import FILES, CliOption, Modality, register_modality
from medai.modalities.imaging import data

NETWORKS = ("small-cnn", "resnet18", "resnet50", "densenet121")
WEIGHT_FILES = ("weights.safetensors", "network.json")


class ImagingModality(Modality):
    name = "imaging"
    description = "Medical images (PNG/JPEG, DICOM, NIfTI, npy; 2D and 3D) with CNNs"
    input_contract = FILES
    reads = "medical images"
    default_learner = "small-cnn"
    explain_in_tables = False  # a Grad-CAM is a picture: `medai explain` draws it
    cli_options = (
        CliOption("--epochs", "Image models: maximum training epochs.", int),
        CliOption("--image-size", "Image models: side length images are resized to.", int),
        CliOption("--members", "Image models: networks in the ensemble.", int),
        CliOption("--batch-size", "Image models: images per training step.", int),
        CliOption("--threads", "Image models: torch threads for training (default: all cores).", int),
        CliOption("--image-column", "--data CSV of image paths: the column holding the paths."),
    )

    # -- reading -----------------------------------------------------------------------------------------
    def claims(self, path: Path, options) -> int:
        if path.is_dir():  # a folder without a single image file is another modality's (e.g. text files)
            from medai.data.images import IMAGE_EXTENSIONS

            images = (p for p in path.rglob("*") if p.suffix.lower() in (*IMAGE_EXTENSIONS, ".gz"))
            return 2 if next(images, None) is not None else 1
        if path.suffix.lower() == ".npz":
            return 2
        return 2 if options.extra.get("image_column") else 0

    def read_training_data(self, path: Path, options):
        return data.user_dataset(path, options.extra.get("image_size"), options.extra.get("image_column"),
                                 options.target)

    def load_task_data(self, task, options):
        return data.task_dataset(task, options.extra.get("image_size"))

    def read_inputs(self, path: Path, model, labelled: bool = False, options: dict | None = None):
        return data.read_inputs(path, model.input_schema, labelled, model.target.classes)

    def input_files(self, path: Path) -> list[Path]:
        return data.image_files(Path(path))

    def inputs_from_files(self, paths: list[Path], model) -> np.ndarray:
        return data.load_files([Path(p) for p in paths], model.input_schema)

    # -- learning ----------------------------------------------------------------------------------------
    def learners(self, kind: str) -> tuple[str, ...]:
        return NETWORKS if kind in ("binary", "multiclass") else ()

    def make_learner(self, name: str, target, options, task, dataset):
        from medai.modalities.imaging.classifier import RECIPES, ImageClassifier

        if target.kind not in ("binary", "multiclass"):
            raise MedAIError(f"image models predict one class per image; a {target.kind} target is not supported")
        recipe = dict(RECIPES.get(task.options.get("recipe", ""), {}))
        recipe.update(spatial_dims=int(dataset.options["spatial_dims"]), seed=options.seed,
                      progress=options.show_progress)
        extra = options.extra
        for key, value in (("epochs", extra.get("epochs")), ("batch_size", extra.get("batch_size")),
                           ("tta", extra.get("tta")), ("n_members", extra.get("members")),
                           ("num_threads", extra.get("threads"))):
            if value is not None:
                recipe[key] = value
        if name != "auto" and (name != task.default_learner or "network" not in recipe):
            recipe["network"] = name
        recipe.setdefault("network", "small-cnn")
        return ImageClassifier(**recipe)

    def fit(self, learner, X, y, X_val=None, y_val=None):
        # No checkpoints here: nothing resumes them, and a ResNet-18's (weights, best weights, average and
        # optimiser state) is ~220 MB written every epoch. ImageClassifier.fit(checkpoint_dir=..., resume=True)
        # offers them.
        return learner.fit(X, y, X_val, y_val)

    def describe_learner(self, learner, name: str) -> dict[str, Any]:
        described = learner.network
        if int(learner.n_members) > 1:
            networks = dict.fromkeys(m["network"] for m in learner.members_)
            described = f"{' + '.join(networks)} (ensemble of {int(learner.n_members)})"
        params = {k: (v if isinstance(v, int | float | str | bool | type(None)) else str(v))
                  for k, v in learner.get_params().items()}
        return {"name": described, "hyperparameters": params,
                "training": {"epochs_run": len(learner.history_), "best_epoch": learner.best_epoch_,
                             "best_val_auroc": learner.best_score_, "members": learner.members_}}

    def save_learner(self, learner) -> dict[str, bytes]:
        with tempfile.TemporaryDirectory() as tmp:
            learner.save(tmp)
            return {name: (Path(tmp) / name).read_bytes() for name in WEIGHT_FILES}

    def load_learner(self, directory: Path, meta: dict[str, Any]):
        from medai.modalities.imaging.classifier import ImageClassifier

        classifier = ImageClassifier.load(directory)
        classifier.progress = False
        return classifier

    # -- explaining --------------------------------------------------------------------------------------
    def explain(self, model, X, top_k: int = 5) -> list[dict[str, Any]]:
        from medai.modalities.imaging.figures import gradcam_pngs

        dims = int(model.input_schema["spatial_dims"])
        return [{"image_png": png, "explains": "Grad-CAM of the predicted class",
                 "summary": "Grad-CAM heatmap of the predicted class"} for png in gradcam_pngs(model.learner, X, dims)]

    def report_extras(self, model, X_test, y_test) -> dict[str, Any]:
        from medai.modalities.imaging.figures import examples_png, gradcam_grid_png

        proba = model.learner.predict_proba(X_test)
        y_test = np.asarray(y_test, dtype=int)
        shown = [int(i) for i in np.argsort(-proba.max(axis=1))[:2]] + \
                [int(i) for i in np.flatnonzero(proba.argmax(1) != y_test)[:2]]
        size = model.input_schema["image_size"]
        return {
            "plots": {"test_examples": examples_png(X_test, y_test, proba, model.target.classes),
                      "gradcam_examples": gradcam_grid_png(model.learner, X_test, shown or [0],
                                                           int(model.input_schema["spatial_dims"]))},
            "limitations": [
                f"Images are resized to {size} px; fine findings visible only at full resolution are lost.",
                "Grad-CAM shows where the network looked, not why; it is coarse at this resolution.",
            ],
        }

    def export(self, model, fmt: str, destination: Path) -> str:
        from medai.modalities.imaging.onnx_runtime import OnnxImageClassifier, export_onnx

        if fmt != "onnx":
            raise MedAIError(f"image models export to onnx, not {fmt!r}")
        classifier = model.learner
        export_onnx(classifier, destination)
        probe = np.random.default_rng(0).random((4, *classifier.input_shape_), dtype=np.float32)
        difference = float(np.abs(OnnxImageClassifier(destination).predict_proba(probe)
                                  - classifier.predict_proba(probe)).max())
        if difference > 1e-4:
            destination.unlink(missing_ok=True)
            raise MedAIError(f"ONNX outputs differ from torch by {difference:.2e} (> 1e-4); export refused")
        return f"max |onnx - torch| = {difference:.1e}"

    def register_cli(self, app) -> None:
        from medai.gateway.cli import gateway_app
        from medai.modalities.imaging.cli import enhance_app

        app.add_typer(enhance_app, name="enhance")
        app.add_typer(gateway_app, name="gateway")  # the DICOM network gateway (medai[pacs])


register_modality(ImagingModality())

from medai.modalities.imaging import tasks  # noqa: E402,F401  (registers the built-in tasks)
