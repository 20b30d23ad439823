"""NCBI Disease: CRF feature variants trained on the train split and scored on the development split (strict
mention-level micro P/R/F1 with bootstrap CIs over abstracts; document consistency on, as in the product). Used
to choose the CRF's features for biomedical abstracts on dev only (the test split is held back).

Usage: MEDAI_DATA_DIR=... python benchmarks/text_ncbi_features.py --variant clusters=64,512 [--variant ...]
A variant is ``name=value`` pairs joined by ``;`` over CRFTagger's parameters (``base`` for the defaults).
"""
import argparse
import json
import os
import time
from pathlib import Path

from medai.modalities.text.corpora import read_corpus
from medai.modalities.text.evaluator import span_scores
from medai.modalities.text.ner import CRFTagger

BASE = Path(os.environ["MEDAI_DATA_DIR"]) / "text/ncbi_disease/original-data"


def parse(variant: str) -> dict:
    params = {}
    for item in filter(None, variant.split(";")):
        if item == "base":
            continue
        key, value = item.split("=", 1)
        params[key] = tuple(int(v) for v in value.split(",")) if key == "clusters" else json.loads(value)
    return params


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", action="append", required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/ncbi-features.jsonl"))
    args = parser.parse_args()
    train = read_corpus(BASE / "NCBItrainset_corpus.txt", one_type="Disease").documents
    dev = read_corpus(BASE / "NCBIdevelopset_corpus.txt", one_type="Disease").documents
    gold = [d.span_keys() for d in dev]
    for variant in args.variant:
        start = time.perf_counter()
        model = CRFTagger(**parse(variant)).fit([d.text for d in train], [d.span_keys() for d in train])
        minutes = (time.perf_counter() - start) / 60
        predicted = model.predict([d.text for d in dev])
        micro = span_scores(gold, predicted, n_boot=1000)["micro"]
        row = {"variant": variant, "train_minutes": round(minutes, 1),
               **{m: micro[m] for m in ("precision", "recall", "f1")}}
        print(json.dumps(row), flush=True)
        spans = args.out.with_name(args.out.stem + "-" + "".join(c if c.isalnum() else "_" for c in variant) + ".json")
        spans.write_text(json.dumps({d.id: p for d, p in zip(dev, predicted, strict=True)}))  # for error analysis
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as handle:
            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
