"""Reading molecules: CSV/Parquet (any table MedAI reads) or SDF, the SMILES column found by name or content,
standardisation, invalid SMILES reported per row and left out, duplicates merged (or kept and reported),
and the split computed here (by scaffold, at random, or from a column).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from medai.data.dataset import Dataset, Inputs
from medai.data.tables import read_table, table_format
from medai.errors import MedAIError, NotFoundError
from medai.modalities.molecules.chem import SMILES_PATTERN, Standardiser, require_rdkit, standardise_all
from medai.modalities.molecules.splits import check_split, column_split, make_split

SMILES_NAMES = ("smiles", "canonical_smiles", "smile", "mol", "molecule", "structure", "smiles_string",
                "isomeric_smiles", "canonicalsmiles", "drug", "compound_smiles")
ID_NAMES = ("id", "name", "compound id", "compound_id", "mol_id", "molecule_id", "chembl_id", "cid")
SDF_SUFFIXES = (".sdf", ".sd", ".sdf.gz")
REPORT_ROWS = 10  # invalid rows listed one by one in the notes; the rest counted


def is_sdf(path: Path) -> bool:
    return path.name.lower().endswith(SDF_SUFFIXES)


def looks_like_smiles(series: pd.Series, sample: int = 200) -> bool:
    """Most values of a text column are SMILES (RDKit parses them when it is installed; else by pattern)."""
    values = series.dropna().astype(str).str.strip()
    values = values[values != ""]
    if values.empty or pd.api.types.is_numeric_dtype(series):
        return False
    values = values.sample(min(sample, len(values)), random_state=0) if len(values) > sample else values
    if not values.map(lambda v: bool(SMILES_PATTERN.match(v))).mean() >= 0.9:
        return False
    chemical = values.str.contains(r"[=#()\[\]0-9]|^[BCNOSPFIcnos]", regex=True).mean() >= 0.9
    if not chemical:
        return False
    try:
        from rdkit import Chem

        from medai.modalities.molecules.chem import rdkit_messages
    except ImportError:
        return True
    with rdkit_messages():
        parsed = values.map(lambda v: Chem.MolFromSmiles(v) is not None)
    return bool(parsed.mean() >= 0.8)


def _strong_name(column) -> bool:
    return "smile" in str(column).strip().lower()


def find_smiles_column(frame: pd.DataFrame, requested: str | None, source: str) -> str | None:
    """The SMILES column: the one named, else a column named like one whose values are SMILES, else any column
    whose values are SMILES, else a column called ``smiles`` (its bad values are then reported row by row)."""
    if requested:
        if requested not in frame.columns:
            raise MedAIError(f"--smiles-column {requested!r} is not in {source}; columns are: {list(frame.columns)}")
        return requested
    by_name = [c for c in frame.columns if str(c).strip().lower() in SMILES_NAMES or _strong_name(c)]
    others = [c for c in frame.columns if c not in by_name]
    for column in by_name + others:
        if frame[column].dtype == object and looks_like_smiles(frame[column]):
            return column
    strong = [c for c in by_name if _strong_name(c) and (frame[c].dtype == object or frame[c].isna().all())]
    return strong[0] if strong else None


def read_frame(path: Path) -> pd.DataFrame:
    """A table, or an SDF as a table (its properties, plus ``smiles`` written from each record's structure)."""
    if not is_sdf(path):
        return read_table(path)
    require_rdkit()
    if not path.exists():
        raise NotFoundError(f"data file {path} does not exist")
    import gzip

    from rdkit import Chem

    from medai.modalities.molecules.chem import rdkit_messages

    rows = []
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle, rdkit_messages():
        for mol in Chem.ForwardSDMolSupplier(handle, sanitize=True, removeHs=True):
            if mol is None:
                rows.append({"smiles": None})
                continue
            rows.append({**mol.GetPropsAsDict(includePrivate=False, includeComputed=False),
                         "smiles": Chem.MolToSmiles(mol)})
    if not rows:
        raise MedAIError(f"{path} holds no SDF records")
    return pd.DataFrame(rows)


def target_list(target: str | None, frame: pd.DataFrame, source: str, sdf: bool) -> list[str]:
    if not target:
        raise MedAIError("--data needs --target COLUMN (several columns, comma-separated, make a multi-task target)")
    targets = [t.strip() for t in str(target).split(",") if t.strip()]
    missing = [t for t in targets if t not in frame.columns]
    if missing:
        what = "property" if sdf else "column"
        present = [c for c in frame.columns if c != "smiles"] if sdf else list(frame.columns)
        raise MedAIError(f"{source} has no {what} {missing[0]!r}; {what} names: {present}")
    return targets


def standardise_frame(frame: pd.DataFrame, column: str, standardiser: Standardiser, source: str
                      ) -> tuple[pd.DataFrame, list[str]]:
    """Rows whose SMILES standardise (a ``_smiles`` column added), and one note per refused row (1-based)."""
    raw = frame[column]
    if raw.isna().all() or raw.astype(str).str.strip().eq("").all():
        raise MedAIError(f"SMILES column {column!r} of {source} is empty")
    smiles, reasons = standardise_all(raw.tolist(), standardiser)
    bad = [i for i, s in enumerate(smiles) if s is None]
    if len(bad) == len(frame):
        raise MedAIError(f"no SMILES in column {column!r} of {source} could be read (row 1: {reasons[bad[0]]})")
    notes = []
    if bad:
        listed = "; ".join(f"row {i + 1} {str(raw.iloc[i])[:40]!r}: {reasons[i]}" for i in bad[:REPORT_ROWS])
        more = f"; and {len(bad) - REPORT_ROWS} more" if len(bad) > REPORT_ROWS else ""
        notes.append(f"{len(bad)} invalid SMILES left out ({listed}{more})")
    out = frame.assign(_smiles=smiles).iloc[[i for i in range(len(frame)) if smiles[i] is not None]]
    return out.reset_index(drop=True), notes


def merge_duplicates(frame: pd.DataFrame, targets: list[str], regression: bool) -> tuple[pd.DataFrame, list[str]]:
    """One row per standardised molecule (at its first position): numbers averaged, agreeing labels kept,
    conflicting labels left unknown."""
    repeated_mask = frame["_smiles"].duplicated(keep=False).to_numpy()
    if not repeated_mask.any():
        return frame, []
    conflicts, rows = 0, {}
    for _, group in frame.loc[repeated_mask].groupby("_smiles", sort=False):
        row = group.iloc[0].copy()
        for t in targets:
            values = group[t].dropna()
            if regression:
                row[t] = pd.to_numeric(values, errors="coerce").mean() if len(values) else np.nan
            elif values.astype(str).nunique() > 1:
                row[t], conflicts = np.nan, conflicts + 1
            elif len(values):
                row[t] = values.iloc[0]
        rows[group.index[0]] = row
    kept = frame.loc[~repeated_mask]
    merged = pd.concat([kept, pd.DataFrame.from_dict(rows, orient="index")]).sort_index().reset_index(drop=True)
    n_records, n_molecules = int(repeated_mask.sum()), len(rows)
    how = "their values averaged" if regression else "agreeing labels kept"
    note = (f"{n_records} records are {n_molecules} molecules repeated after standardisation: merged into one each "
            f"({how}" + (f"; {conflicts} conflicting label(s) left unknown" if conflicts else "") + ")")
    return merged, [note]


def smiles_keys(smiles) -> np.ndarray:
    return np.array([int(hashlib.sha1(s.encode()).hexdigest()[:15], 16) for s in smiles], dtype=np.int64)


def assign_split(frame: pd.DataFrame, column: str, split_column: str | None, kind: str, seed: int, source: str
                 ) -> tuple[pd.DataFrame, str]:
    """Each record's part (``_part``: train/val/test) and the sentence the report states. The split is made on
    the records as read (file order, SMILES as written), before duplicates are merged - DeepChem's way."""
    if split_column:
        parts = column_split(frame[split_column], split_column, source)
        protocol = f"split given by column {split_column!r}"
    else:
        parts, protocol = make_split(kind, frame[column].astype(str).str.strip().tolist(), seed)
    part = np.empty(len(frame), dtype=object)
    for name, idx in parts.items():
        part[idx] = name
    return frame.assign(_part=part), protocol


def split_duplicates(frame: pd.DataFrame, merge: bool) -> list[str]:
    """A note counting the molecules whose records fall into different parts (before merging)."""
    spread = frame.groupby("_smiles", sort=False)["_part"].nunique()
    n = int((spread > 1).sum())
    if not n:
        return []
    return [f"{n} molecule(s) have records in more than one of train/validation/test"
            + (": each merged into the part of its first record" if merge else " (kept in each: --duplicates keep)")]


def build_dataset(frame: pd.DataFrame, options, *, source: str, smiles_column: str | None, targets: list[str],
                  license: str = "user data", citation: str = "", split: str | None = None,
                  regression: bool | None = None, sdf: bool = False) -> Dataset:
    """The road's Dataset of standardised molecules, split by the modality."""
    require_rdkit()
    extra = options.extra
    column = find_smiles_column(frame, extra.get("smiles_column") or smiles_column, source)
    if column is None:
        raise MedAIError(f"{source} has no SMILES column (looked for {', '.join(SMILES_NAMES[:4])}... and at the "
                         "values); name it with --smiles-column")
    standardiser = Standardiser(tautomer=bool(extra.get("tautomer")))
    labelled = frame[targets].notna().any(axis=1)
    notes = [f"SMILES from column {column!r}; {standardiser.describe()}."]
    if not labelled.all():
        notes.append(f"{int((~labelled).sum())} record(s) without a value of {', '.join(targets)} were left out.")
    frame = frame.loc[labelled].reset_index(drop=True)
    if frame.empty:
        raise MedAIError(f"{source} has no records with a value of {', '.join(targets)}")
    frame, invalid = standardise_frame(frame, column, standardiser, source)
    notes += invalid
    if regression is None:
        regression = len(targets) == 1 and _looks_regression(frame[targets[0]], options)
    split_column = extra.get("split_column")
    if split_column and split_column not in frame.columns:
        raise MedAIError(f"--split-column {split_column!r} is not in {source}; columns are: {list(frame.columns)}")
    frame, protocol = assign_split(frame, column, split_column, extra.get("split") or split or "scaffold",
                                   options.seed, source)
    notes += split_duplicates(frame, extra.get("duplicates", "merge") == "merge")
    if extra.get("duplicates", "merge") == "merge":
        frame, merged = merge_duplicates(frame, targets, regression)
        notes += merged
    elif extra.get("duplicates") != "keep":
        raise MedAIError(f"--duplicates must be merge or keep, got {extra.get('duplicates')!r}")
    else:
        repeats = int(frame["_smiles"].duplicated().sum())
        if repeats:
            notes.append(f"{repeats} record(s) repeat a molecule after standardisation (kept: --duplicates keep)")
    frame = frame.loc[frame[targets].notna().any(axis=1)].reset_index(drop=True)
    smiles = frame["_smiles"].tolist()
    parts = {name: np.flatnonzero((frame["_part"] == name).to_numpy()) for name in ("train", "val", "test")}
    check_split(parts, protocol)
    unused = [c for c in frame.columns if c not in (column, "_smiles", "_part", *targets, split_column)]
    if unused:
        notes.append(f"Columns not used (the model reads only the structure): {', '.join(map(str, unused[:10]))}"
                     + (" ..." if len(unused) > 10 else ""))
    y = frame[targets] if len(targets) > 1 else frame[targets[0]]
    fingerprint = hashlib.sha256("\n".join(smiles).encode() + pd.util.hash_pandas_object(
        frame[targets], index=False).to_numpy().tobytes()).hexdigest()
    return Dataset(
        X=np.array(smiles, dtype=object), y=y, target_column=",".join(targets),
        input_schema={"fields": [{"name": "smiles", "kind": "text"}], "smiles_column": column,
                      "standardise": standardiser.to_json(), "id_column": _id_column(frame, column)},
        source=source, license=license, citation=citation, fingerprint=fingerprint, official_split=parts,
        split_protocol=protocol, record_keys=smiles_keys(smiles), notes=notes,
        options={"split": protocol, "sdf": sdf},
    )


def _looks_regression(series: pd.Series, options) -> bool:
    if options.kind:
        return options.kind == "regression"
    numbers = pd.to_numeric(series, errors="coerce")
    return bool(numbers.notna().all() and (numbers.nunique() > 10 or not (numbers % 1 == 0).all()))


def _id_column(frame: pd.DataFrame, smiles_column: str) -> str | None:
    for c in frame.columns:
        if str(c).strip().lower() in ID_NAMES and c != smiles_column:
            return str(c)
    return None


def read_user_data(path: Path, options) -> Dataset:
    frame = read_frame(path)
    targets = target_list(options.target, frame, str(path), is_sdf(path))
    return build_dataset(frame, options, source=str(path), smiles_column="smiles" if is_sdf(path) else None,
                         targets=targets, sdf=is_sdf(path))


def inputs_from_frame(frame: pd.DataFrame, schema: dict, source: str, targets: list[str] | None = None,
                      smiles_column: str | None = None, notes: list[str] | None = None) -> Inputs:
    """Molecules to predict (and their targets when ``targets``): invalid SMILES are left out and reported."""
    require_rdkit()
    if frame.empty:
        raise MedAIError(f"{source} has no records to predict")
    requested = smiles_column or (schema.get("smiles_column") if schema.get("smiles_column") in frame.columns
                                  else None)
    column = find_smiles_column(frame, requested, source)
    if column is None:
        raise MedAIError(f"{source} has no SMILES column; name it with --smiles-column")
    notes = list(notes or [])
    y = None
    if targets is not None:
        absent = [t for t in targets if t not in frame.columns]
        if absent:
            raise MedAIError(f"{source} has no target column {absent[0]!r} to evaluate against")
        keep = frame[targets].notna().any(axis=1)
        if not keep.all():
            notes.append(f"{int((~keep).sum())} unlabelled record(s) left out")
        frame = frame.loc[keep].reset_index(drop=True)
    standardiser = Standardiser(**schema.get("standardise", {}))
    frame, invalid = standardise_frame(frame, column, standardiser, source)
    notes += invalid
    if targets is not None:
        y = frame[targets] if len(targets) > 1 else frame[targets[0]]
    id_column = schema.get("id_column") if schema.get("id_column") in frame.columns else None
    ids = frame[id_column].tolist() if id_column else frame[column].astype(str).tolist()
    return Inputs(np.array(frame["_smiles"].tolist(), dtype=object), ids, id_column or column, y, notes)


def claims_file(path: Path, options) -> int:
    if not path.is_file():
        return 0
    if is_sdf(path):
        return 2
    if not table_format(path):
        return 0
    if (options.extra or {}).get("smiles_column"):
        return 2
    try:
        head = read_table(path) if path.stat().st_size < 50_000_000 else None
    except MedAIError:
        return 0
    if head is None:
        return 0
    return 2 if find_smiles_column(head.head(500), None, str(path)) is not None else 0
