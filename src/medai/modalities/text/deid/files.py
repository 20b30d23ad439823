"""``medai deid text`` on files: one text file, a folder of ``.txt`` files, or a table with a text column.

Every input is read and checked before anything is written; outputs are written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

from medai.errors import MedAIError
from medai.fsutil import atomic_write_bytes, atomic_write_text
from medai.modalities.text.corpora import read_text_file


def deidentify_text_input(source: Path, output: Path, *, method: str, text_column: str | None = None,
                          patient_column: str | None = None, detector=None, dayfirst: bool = False) -> dict:
    from medai.data.tables import read_table, table_format
    from medai.modalities.text.deid.api import deidentify_texts

    source, output = Path(source), Path(output)
    if not source.exists():
        raise MedAIError(f"{source} does not exist")
    if output.resolve() == source.resolve():
        raise MedAIError("the output must not overwrite the input")
    if source.is_dir():
        files = sorted(p for p in source.rglob("*.txt") if p.is_file())
        if not files:
            raise MedAIError(f"{source} holds no .txt files")
        texts = [read_text_file(f) for f in files]
        ids = [str(f.relative_to(source)) for f in files]
        results = deidentify_texts(texts, method, ids, detector, dayfirst=dayfirst)
        for name, (text, _) in zip(ids, results, strict=True):
            atomic_write_text(output / name, text)
    elif table_format(source) and source.suffix.lower() != ".txt":
        from medai.modalities.text.reading import choose_text_column

        frame = read_table(source)
        column = choose_text_column(frame, text_column, [patient_column], str(source))
        if patient_column and patient_column not in frame.columns:
            raise MedAIError(f"--patient-column {patient_column!r} is not in {source}")
        present = frame[column].notna()
        texts = frame.loc[present, column].astype(str).tolist()
        rows = [i for i, keep in enumerate(present) if keep]
        patients = ([str(frame[patient_column].iloc[i]) for i in rows] if patient_column
                    else [f"row-{i + 1}" for i in rows])
        results = deidentify_texts(texts, method, patients, detector, dayfirst=dayfirst)
        frame.loc[present, column] = [text for text, _ in results]
        ids = [f"row {i + 1}" for i in rows]
        suffix = output.suffix.lower()
        if suffix in (".parquet", ".pq"):
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            atomic_write_bytes(output, buffer.getvalue())
        elif suffix == ".jsonl":
            atomic_write_text(output, frame.to_json(orient="records", lines=True, force_ascii=False))
        else:
            atomic_write_text(output, frame.to_csv(index=False))
    else:
        text = read_text_file(source)
        results = deidentify_texts([text], method, [source.name], detector, dayfirst=dayfirst)
        ids = [source.name]
        atomic_write_text(output, results[0][0])
    documents = [{"id": doc_id, "spans": spans, **({"note": "empty text"} if not spans and not text.strip() else {})}
                 for doc_id, (text, spans) in zip(ids, results, strict=True)]
    return {"input": str(source), "output": str(output), "method": method, "documents": documents}
