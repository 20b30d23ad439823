"""``medai deid text|table|dicom``: de-identify notes, tables and DICOM files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from medai.console import err, print_json
from medai.errors import MedAIError

deid_app = typer.Typer(help="De-identification of notes, tables and DICOM files (HIPAA Safe Harbor).",
                       no_args_is_help=True)

Method = Annotated[str, typer.Option(help="redact, tag (e.g. [PERSON]) or surrogate (realistic stand-ins, dates "
                                          "shifted per patient).")]
ModelOption = Annotated[str | None, typer.Option("--model", help="A trained entity model (directory or registered "
                                                                 "name) that joins the detectors.")]
NoSpacy = Annotated[bool, typer.Option("--no-spacy", help="Patterns only: leave spaCy's English model out.")]
Dayfirst = Annotated[bool, typer.Option("--dayfirst", help="Read 03/04/2020 as 3 April (default: 4 March).")]


def _columns(value: str | None) -> list[str]:
    return [c.strip() for c in (value or "").split(",") if c.strip()]


def _detector(model: str | None, no_spacy: bool, threshold: float):
    from medai.modalities.text.deid.detect import Detector

    return Detector(model=model, use_spacy=not no_spacy, threshold=threshold)


def _write_report(report_path: Path | None, report) -> None:
    if report_path is not None:
        from medai.fsutil import atomic_write_text

        atomic_write_text(report_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")


@deid_app.command("text")
def deid_text(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="A text file, a folder of .txt files, or a "
                                               "CSV/Parquet/JSONL with a text column.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where the de-identified copy goes (a folder "
                                         "for a folder input).")],
    method: Method = "tag",
    report: Annotated[Path | None, typer.Option("--report", help="JSON report: every span found, its type and "
                                                "character offsets in the input.")] = None,
    text_column: Annotated[str | None, typer.Option(help="Tables: the column holding the notes.")] = None,
    patient_column: Annotated[str | None, typer.Option(help="Tables: the patient of each note (surrogates and "
                                                     "date shifts are consistent within a patient).")] = None,
    model: ModelOption = None,
    no_spacy: NoSpacy = False,
    threshold: Annotated[float, typer.Option(help="Lowest detector score kept.")] = 0.35,
    dayfirst: Dayfirst = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report.")] = False,
) -> None:
    """De-identify free text: each span found is redacted, tagged or replaced by a surrogate."""
    from medai.modalities.text.deid.files import deidentify_text_input

    result = deidentify_text_input(input_path, output, method=method, text_column=text_column,
                                   patient_column=patient_column, detector=_detector(model, no_spacy, threshold),
                                   dayfirst=dayfirst)
    _write_report(report, result)
    if as_json:
        return print_json(result)
    spans = sum(len(d["spans"]) for d in result["documents"])
    err.print(f"{len(result['documents'])} document(s), {spans} span(s) found ({method}) -> {output}")


@deid_app.command("table")
def deid_table(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="A table (CSV, Parquet, ...).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The de-identified table (CSV or Parquet).")],
    text_columns: Annotated[str | None, typer.Option(help="Free-text columns (comma-separated).")] = None,
    date_columns: Annotated[str | None, typer.Option(help="Date columns: shifted per patient.")] = None,
    age_columns: Annotated[str | None, typer.Option(help="Age columns: over 89 becomes 90+.")] = None,
    zip_columns: Annotated[str | None, typer.Option(help="ZIP code columns: the ZIP-3 rule.")] = None,
    id_columns: Annotated[str | None, typer.Option(help="Identifier columns: keyed pseudonyms.")] = None,
    drop_columns: Annotated[str | None, typer.Option(help="Columns removed.")] = None,
    patient_column: Annotated[str | None, typer.Option(help="The patient of each row.")] = None,
    method: Method = "surrogate",
    report: Annotated[Path | None, typer.Option("--report", help="JSON report of the changes per column.")] = None,
    model: ModelOption = None,
    no_spacy: NoSpacy = False,
    dayfirst: Dayfirst = False,
) -> None:
    """De-identify named columns of a table the same way as notes (dates shifted consistently per patient)."""
    from medai.data.tables import read_table
    from medai.fsutil import atomic_write_bytes
    from medai.modalities.text.deid.api import deidentify_table

    frame = read_table(input_path)
    detector = _detector(model, no_spacy, 0.35) if text_columns else None
    out, changes = deidentify_table(frame, text_columns=_columns(text_columns), date_columns=_columns(date_columns),
                                    age_columns=_columns(age_columns), zip_columns=_columns(zip_columns),
                                    id_columns=_columns(id_columns), drop_columns=_columns(drop_columns),
                                    patient_column=patient_column, method=method, detector=detector, dayfirst=dayfirst)
    if output.suffix.lower() in (".parquet", ".pq"):
        import io

        buffer = io.BytesIO()
        out.to_parquet(buffer, index=False)
        atomic_write_bytes(output, buffer.getvalue())
    else:
        atomic_write_bytes(output, out.to_csv(index=False).encode())
    _write_report(report, {"input": str(input_path), "output": str(output), "columns": changes})
    err.print(f"{len(out)} rows de-identified -> {output}")


@deid_app.command("dicom")
def deid_dicom(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="A DICOM file or a folder of them.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The de-identified file (a folder for a folder).")],
    refuse_burned_in: Annotated[bool, typer.Option("--refuse-burned-in", help="Refuse files whose pixels may hold "
                                                   "burned-in text (nothing is written for them).")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="JSON report per file.")] = None,
) -> None:
    """DICOM PS3.15 Basic Profile de-identification; files that may carry burned-in text are flagged (or refused)."""
    from medai.modalities.text.deid.api import deidentify_dicom_file, installation_secret

    if not input_path.exists():
        raise MedAIError(f"{input_path} does not exist")
    secret = installation_secret()
    files = [input_path] if input_path.is_file() else sorted(p for p in input_path.rglob("*") if p.is_file())
    if not files:
        raise MedAIError(f"{input_path} holds no files")
    results = []
    for file in files:
        destination = output if input_path.is_file() else output / file.relative_to(input_path)
        results.append(deidentify_dicom_file(file, destination, secret, refuse_burned_in))
    _write_report(report, {"files": results})
    flagged = sum(bool(r["burned_in_risk"]) for r in results)
    err.print(f"{len(results)} DICOM file(s) de-identified -> {output}" +
              (f"; {flagged} may hold burned-in text (see the report)" if flagged else ""))
