"""Which gold PII types the CRF misses on Presidio's synthetic set: the first of the benchmark's random folds
(KFold(5, shuffle, seed 0)), CRF trained on the other four; per type the gold count, the spans found at
character IoU >= 0.9, the misses (with what was predicted over them) and the false positives of that type.

Usage: MEDAI_DATA_DIR=... python benchmarks/text_pii_types.py
"""
import collections
import json
import os
import sys
from pathlib import Path

from sklearn.model_selection import KFold

from medai.modalities.text.ner import CRFTagger

sys.path.insert(0, str(Path(__file__).resolve().parent))
from text import iou  # noqa: E402

records = json.load(open(os.environ["MEDAI_DATA_DIR"] + "/text/presidio_synthetic_pii/synth_dataset_v2.json"))
texts = [r["full_text"] for r in records]
gold = [[(s["start_position"], s["end_position"], s["entity_type"]) for s in r["spans"]] for r in records]
train, test = next(KFold(5, shuffle=True, random_state=0).split(texts))
for prop in (True,):
    m = CRFTagger(propagate=prop).fit([texts[i] for i in train], [gold[i] for i in train])
    pred = m.predict([texts[i] for i in test])
    hit, tot, fp = collections.Counter(), collections.Counter(), collections.Counter()
    misses = collections.defaultdict(list)
    for i, p in zip(test, pred, strict=True):
        ps = [(s["start"], s["end"], s["label"]) for s in p]
        for g in gold[i]:
            tot[g[2]] += 1
            ok = any(iou(g, q) >= 0.9 for q in ps)
            hit[g[2]] += ok
            if not ok:
                over = [texts[i][q[0]:q[1]] for q in ps if q[0] < g[1] and q[1] > g[0]]
                misses[g[2]].append((texts[i][g[0]:g[1]], over))
        for q in ps:
            if not any(iou(g, q) >= 0.9 for g in gold[i]):
                fp[q[2]] += 1
    print("propagate", prop, "recall", sum(hit.values()) / sum(tot.values()))
    for t, n in tot.most_common():
        print(f"{t:20s} gold {n:4d} found {hit[t]:4d} missed {n - hit[t]:4d} fp-as-type {fp[t]:3d}", misses[t][:4])
