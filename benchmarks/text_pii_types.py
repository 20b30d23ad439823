"""Where the de-identification ensemble misses on Presidio's synthetic PII set, per gold type, on one half of the
records (``--half dev``: the development half, where misses are analysed; ``heldout``: the other half, scored
only; ``all``). The halves are a fixed-seed random split of the 1,500 records (``pii_halves`` in ``text.py``).

The CRF's spans are predicted out of fold (the benchmark's random folds, ``KFold(5, shuffle, seed)``) and cached
in ``--crf-cache`` (computed when missing, about 20 minutes on a quiet 2-core CPU). Per type: the gold count,
those found at character IoU >= 0.9, the misses split into "nothing predicted over it" and "partial overlap"
(a span over it, but IoU < 0.9: a boundary error), and, per predicted type, the false positives; ``--show N``
prints N examples of each.

Usage: MEDAI_DATA_DIR=... python benchmarks/text_pii_types.py [--half dev] [--show 10] [--crf-cache PATH]
       [--no-crf]
"""
import argparse
import collections
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from text import deid_detections, iou, load_pii, oof_crf, pii_halves  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--half", choices=("dev", "heldout", "all"), default="dev")
    parser.add_argument("--show", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crf-cache", type=Path, default=None,
                        help="default: runs/deid/crf-random-folds-seed<seed>[-<params>].json")
    parser.add_argument("--crf-params", default="{}", help='CRFTagger settings as JSON, e.g. {"case_copies": true}')
    parser.add_argument("--no-crf", action="store_true", help="the Safe Harbor recognizers alone")
    parser.add_argument("--spacy", action="store_true", help="add spaCy's small English model")
    args = parser.parse_args()
    texts, gold = load_pii()
    dev, heldout = pii_halves(len(texts), args.seed)
    rows = {"dev": dev, "heldout": heldout, "all": list(range(len(texts)))}[args.half]
    params = json.loads(args.crf_params)
    tag = "".join(f"-{k}={v}" for k, v in sorted(params.items())).replace(" ", "")
    cache = args.crf_cache or Path(f"runs/deid/crf-random-folds-seed{args.seed}{tag}.json")
    crf = None if args.no_crf else oof_crf(texts, gold, args.seed, cache, params=params)
    pred = deid_detections([texts[i] for i in rows], None if crf is None else [crf[i] for i in rows], args.spacy)
    hit, tot, fp = collections.Counter(), collections.Counter(), collections.Counter()
    none, partial, fps = (collections.defaultdict(list) for _ in range(3))
    for i, ps in zip(rows, pred, strict=True):
        text = texts[i]
        for g in gold[i]:
            tot[g[2]] += 1
            if any(iou(g, q) >= 0.9 for q in ps):
                hit[g[2]] += 1
                continue
            over = [(text[q[0]:q[1]], q[2]) for q in ps if q[0] < g[1] and q[1] > g[0]]
            (partial if over else none)[g[2]].append((text[g[0]:g[1]], over, i))
        for q in ps:
            if not any(iou(g, q) >= 0.9 for g in gold[i]):
                fp[q[2]] += 1
                fps[q[2]].append((text[q[0]:q[1]], [text[g[0]:g[1]] for g in gold[i] if g[0] < q[1] and q[0] < g[1]]))
    n_pred = sum(map(len, pred))
    n_fp = sum(fp.values())
    print(f"{args.half} half: {len(rows)} records, recall {sum(hit.values()) / sum(tot.values()):.4f}, "
          f"precision {(n_pred - n_fp) / max(n_pred, 1):.4f} ({n_pred} predicted, {n_fp} matching no gold span)")
    print("| gold type | gold | found | recall | missed, nothing over it | missed, boundary |")
    print("|---|---|---|---|---|---|")
    for t, n in tot.most_common():
        print(f"| {t} | {n} | {hit[t]} | {hit[t] / n:.3f} | {len(none[t])} | {len(partial[t])} |")
    if args.show:
        for t in tot:
            for kind, store in (("nothing", none), ("boundary", partial)):
                for value, over, i in store[t][:args.show]:
                    print(f"MISS {t} [{kind}] #{i} {value!r} <- {over}")
        for t, n in fp.most_common():
            print(f"FALSE POSITIVES as {t}: {n}")
            for value, overlapping in fps[t][:args.show]:
                print(f"   {value!r} over gold {overlapping}")


if __name__ == "__main__":
    main()
