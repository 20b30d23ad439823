"""Small text corpora made on the fly for the text modality's tests (no download, no real PHI)."""

from __future__ import annotations

import random
from pathlib import Path

FIRST = ["Ana", "Luis", "Marta", "Jorge", "Elena", "Pablo", "Lucia", "Diego", "Sara", "Hugo", "Irene", "Mario"]
LAST = ["Garcia", "Lopez", "Martin", "Sanchez", "Perez", "Gomez", "Ruiz", "Diaz", "Moreno", "Alonso", "Navarro"]
CITIES = ["Madrid", "Sevilla", "Valencia", "Bilbao", "Zaragoza", "Granada", "Murcia", "Toledo"]
FINDINGS = ["dolor abdominal", "fiebre alta", "tos persistente", "cefalea intensa", "disnea de esfuerzo"]


def note(rng: random.Random) -> tuple[str, list[tuple[int, int, str]]]:
    """A short clinical note with a patient name, a city and a date, and their spans."""
    parts: list[tuple[str, str | None]] = [
        ("Paciente: ", None), (f"{rng.choice(FIRST)} {rng.choice(LAST)}", "NOMBRE"), (".\nVive en ", None),
        (rng.choice(CITIES), "TERRITORIO"), (". Ingreso el ", None),
        (f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(2000, 2020)}", "FECHAS"),
        (f" por {rng.choice(FINDINGS)}.\n", None),
    ]
    text, spans = "", []
    for piece, label in parts:
        if label:
            spans.append((len(text), len(text) + len(piece), label))
        text += piece
    return text, spans


def write_brat(folder: Path, n: int, seed: int = 0) -> list[tuple[str, list]]:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    docs = []
    for i in range(n):
        text, spans = note(rng)
        (folder / f"doc{i:03d}.txt").write_text(text, encoding="utf-8")
        lines = [f"T{k + 1}\t{label} {s} {e}\t{text[s:e]}" for k, (s, e, label) in enumerate(spans)]
        (folder / f"doc{i:03d}.ann").write_text("\n".join(lines) + "\n", encoding="utf-8")
        docs.append((text, spans))
    return docs


def write_conll(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        disease = rng.choice(["breast cancer", "cystic fibrosis", "diabetes", "colon carcinoma", "asthma"])
        words = ["Patients", "with", *disease.split(), "were", "studied", "."]
        tags = ["O", "O", "B-Disease", *["I-Disease"] * (len(disease.split()) - 1), "O", "O", "O"]
        lines += [f"{w}\t{t}" for w, t in zip(words, tags, strict=True)] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_pubtator(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    blocks = []
    for i in range(n):
        disease, concept = rng.choice([("breast cancer", "D001943"), ("cystic fibrosis", "D003550"),
                                       ("asthma", "D001249")])
        title = f"A study of {disease} in adults."
        abstract = f"We followed {rng.randint(10, 99)} patients. No sign of {disease} was seen in controls."
        pmid = str(1000 + i)
        text = title + "\n" + abstract
        spans = [(text.index(disease), disease), (text.rindex(disease), disease)]
        blocks.append("\n".join([f"{pmid}|t|{title}", f"{pmid}|a|{abstract}"] +
                                [f"{pmid}\t{s}\t{s + len(m)}\t{m}\tSpecificDisease\t{concept}" for s, m in spans]))
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


def notes_table(path: Path, n: int = 120, seed: int = 0) -> None:
    import pandas as pd

    rng = random.Random(seed)
    cardiac = ["chest pain radiating to the left arm", "elevated troponin and ST elevation", "atrial fibrillation "
               "with rapid ventricular response", "heart failure with reduced ejection fraction"]
    neuro = ["sudden weakness of the right arm and slurred speech", "seizure activity with postictal confusion",
             "progressive memory loss over two years", "severe headache with neck stiffness"]
    rows = []
    for i in range(n):
        label = "cardiac" if i % 2 else "neuro"
        finding = rng.choice(cardiac if label == "cardiac" else neuro)
        rows.append({"note_id": f"n{i}", "note": f"The patient presented with {finding}. Examination on day "
                     f"{rng.randint(1, 9)} was otherwise unremarkable; heart rate {rng.randint(50, 140)} and weight "
                     f"{rng.randint(45, 110)} kg.", "label": label})
    pd.DataFrame(rows).to_csv(path, index=False)
