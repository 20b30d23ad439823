"""ONNX export of the text networks with dynamic int8 quantisation (onnxruntime), and its benchmark.

``medai export MODEL --format onnx -o model.onnx`` writes the float32 network (``model.onnx``, refused unless its
outputs equal torch's within 1e-4) and its dynamically quantised int8 copy (``model.int8.onnx``: weights of the
GRU and linear layers as int8, activations quantised on the fly). :class:`OnnxTextClassifier` predicts from
either file with the vocabulary and chunking the model.json records.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from medai.errors import MedAIError
from medai.fsutil import atomic_write_bytes


def _export_rnn(learner, path: Path) -> None:
    import onnx
    import torch

    class WithOutput(torch.nn.Module):
        def __init__(self, net, multilabel: bool):
            super().__init__()
            self.net, self.multilabel = net, multilabel

        def forward(self, ids):
            logits = self.net(ids)
            return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)

    model = WithOutput(learner.network_, learner.multilabel_).eval()
    example = torch.ones((2, 7), dtype=torch.long)
    tmp = path.with_name(f".{path.name}.tmp")
    with torch.no_grad():
        torch.onnx.export(model, (example,), str(tmp), input_names=["ids"], output_names=["probabilities"],
                          dynamic_axes={"ids": {0: "batch", 1: "length"}, "probabilities": {0: "batch"}},
                          opset_version=17, dynamo=False, external_data=False)
    proto = onnx.load(str(tmp))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "medai_learner", "rnn"
    atomic_write_bytes(path, proto.SerializeToString())
    tmp.unlink(missing_ok=True)


def quantize(source: Path, destination: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(destination), weight_type=QuantType.QInt8)


class OnnxTextClassifier:
    """Probabilities from an exported recurrent classifier: the learner's own tokenising and chunking, the
    network in onnxruntime."""

    def __init__(self, path: Path, learner):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.learner = learner

    def predict_proba(self, texts, batch: int = 64) -> np.ndarray:
        seqs, owner = self.learner._chunks(list(texts))
        probs = np.zeros((len(seqs), self.learner.n_outputs_), dtype=np.float32)
        order = np.argsort([len(s) for s in seqs])
        for a in range(0, len(order), batch):
            idx = order[a:a + batch]
            width = max(len(seqs[i]) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                ids[row, :len(seqs[i])] = seqs[i]
            probs[idx] = self.session.run(None, {"ids": ids})[0]
        out = np.zeros((len(texts), self.learner.n_outputs_))
        np.add.at(out, owner, probs)
        return out / np.bincount(owner, minlength=len(texts))[:, None]


def export_onnx(model, destination: Path) -> str:
    learner = model.learner
    if getattr(learner, "learner_name", "") != "rnn":
        raise MedAIError(f"ONNX export covers the recurrent text classifier (learner rnn); this model's learner is "
                         f"{model.meta.get('learner')!r}")
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    _export_rnn(learner, destination)
    int8 = destination.with_name(destination.stem + ".int8.onnx")
    quantize(destination, int8)
    probe = [" ".join(w for w in list(learner.vocab_)[i:i + 40]) for i in range(0, 400, 40)] + ["unknown words only"]
    reference = learner.predict_proba(probe)
    difference = float(np.abs(OnnxTextClassifier(destination, learner).predict_proba(probe) - reference).max())
    if difference > 1e-4:
        destination.unlink(missing_ok=True)
        int8.unlink(missing_ok=True)
        raise MedAIError(f"ONNX outputs differ from torch by {difference:.2e} (> 1e-4); export refused")
    quantized = float(np.abs(OnnxTextClassifier(int8, learner).predict_proba(probe) - reference).max())
    return f"max |onnx - torch| = {difference:.1e}; int8 copy {int8.name}, max |int8 - torch| = {quantized:.1e}"


def benchmark_rnn_onnx(csv: Path, seed: int = 0) -> dict:
    """One stratified half of the Medical Abstracts trains the recurrent classifier; the other half is scored by
    eager torch, ONNX float32 and ONNX int8: macro-F1 and milliseconds per document."""
    import tempfile

    import pandas as pd
    import torch
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    from medai.modalities.text.rnn import AttentionRNNClassifier

    frame = pd.read_csv(csv)
    texts, y = frame["medical_abstract"].tolist(), frame["condition_label"].to_numpy() - 1
    train, test = next(StratifiedKFold(2, shuffle=True, random_state=seed).split(texts, y))
    learner = AttentionRNNClassifier(seed=seed).fit([texts[i] for i in train], y[train])
    held = [texts[i] for i in test]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "m.onnx", Path(tmp) / "m.int8.onnx"
        _export_rnn(learner, fp32)
        quantize(fp32, int8)
        scorers = {"eager torch": learner, "ONNX float32": OnnxTextClassifier(fp32, learner),
                   "ONNX int8 (dynamic)": OnnxTextClassifier(int8, learner)}
        for name, scorer in scorers.items():
            start = time.perf_counter()
            with torch.no_grad():
                proba = scorer.predict_proba(held)
            ms = (time.perf_counter() - start) * 1000 / len(held)
            rows[name] = {"macro_f1": round(float(f1_score(y[test], proba.argmax(1), average="macro")), 4),
                          "ms_per_doc": round(ms, 3)}
        rows["sizes_bytes"] = {"float32": fp32.stat().st_size, "int8": int8.stat().st_size}
    sizes = rows.pop("sizes_bytes")
    return {"rows": rows, "sizes": sizes, "threads": torch.get_num_threads(), "n_test": len(held)}


def describe(result: dict) -> str:
    return json.dumps(result)
