"""ONNX export of a fitted :class:`ImageClassifier` and an onnxruntime-backed predictor.

The exported graph takes ``input`` float32 ``(batch, C, *spatial)`` and returns ``probabilities``
``(batch, n_classes)``: the softmax is part of the graph, so torch and ONNX give the same numbers.
The class labels and input shape are stored in the model's metadata (``medai_classes``,
``medai_input_shape``), so :class:`OnnxImageClassifier` needs only the ``.onnx`` file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medai.errors import MedAIError


def export_onnx(classifier, path: str | Path, opset_version: int = 17) -> Path:
    """Write ``classifier`` (fitted :class:`ImageClassifier`) to ``path`` as one self-contained ONNX file
    with a dynamic batch axis. Returns the path."""
    import torch

    classifier._check_fitted()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    class _WithSoftmax(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.net(x), dim=1)

    model = _WithSoftmax(classifier.network_).eval()
    example = torch.zeros((2, *classifier.input_shape_), dtype=torch.float32)
    tmp = path.with_name(f".{path.name}.tmp")
    with torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=["input"],
            output_names=["probabilities"],
            dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}},
            opset_version=opset_version,
            dynamo=False,
            external_data=False,
        )
    import onnx

    proto = onnx.load(str(tmp))
    for key, value in {
        "medai_classes": json.dumps(classifier.classes_.tolist()),
        "medai_classes_dtype": str(classifier.classes_.dtype),
        "medai_input_shape": json.dumps(list(classifier.input_shape_)),
        "medai_network": classifier.network,
    }.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    from medai.fsutil import atomic_write_bytes

    atomic_write_bytes(path, proto.SerializeToString())
    tmp.unlink(missing_ok=True)
    return path


class OnnxImageClassifier:
    """Predict with an ONNX file written by :func:`export_onnx` through onnxruntime (CPU).

    ``predict_proba(X)`` takes float32 ``(N, C, *spatial)`` in [0, 1] and returns ``(N, n_classes)``
    probabilities; ``predict(X)`` returns labels from ``classes_``.
    """

    def __init__(self, path: str | Path, batch_size: int = 256, num_threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise MedAIError(f"ONNX model {str(path)!r} does not exist")
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise MedAIError(f"{str(path)!r} is not a readable ONNX model: {exc}") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        if "medai_classes" not in meta:
            raise MedAIError(f"{str(path)!r} lacks medai metadata; expected a file written by export_onnx")
        self.classes_ = np.asarray(json.loads(meta["medai_classes"]), dtype=meta.get("medai_classes_dtype") or None)
        self.input_shape_ = tuple(json.loads(meta["medai_input_shape"]))
        self.batch_size = batch_size
        self.path = path

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != len(self.input_shape_) + 1 or X.shape[1] != self.input_shape_[0]:
            raise MedAIError(f"X has shape {tuple(X.shape)}; expected (N, {', '.join(map(str, self.input_shape_))})")
        if not np.issubdtype(X.dtype, np.floating) or not np.isfinite(X).all():
            raise MedAIError("X must hold finite float values in [0, 1]")
        X = np.ascontiguousarray(X, dtype=np.float32)
        out = [
            self.session.run(["probabilities"], {"input": X[i : i + self.batch_size]})[0]
            for i in range(0, len(X), self.batch_size)
        ]
        return np.concatenate(out).astype(np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
