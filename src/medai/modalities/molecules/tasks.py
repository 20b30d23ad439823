"""Built-in molecule tasks: MoleculeNet sets as chemprop distributed them (``molecules/`` under MEDAI_DATA_DIR),
each with MoleculeNet's recommended split (Wu et al. 2018): scaffold for BBBP, BACE and HIV; random for Tox21 and
ESOL; 80/10/10. ``--split`` changes it.
"""

from __future__ import annotations

import pandas as pd

from medai.data.registry import DataFile, DatasetSpec, register_dataset
from medai.tasks import SplitProtocol, Task, register_task

CHEMPROP = "molecules/moleculenet_chemprop/"
LICENSE = ("MoleculeNet benchmark data as distributed in chemprop's repository (MIT); no separate data licence - "
           "research use, cite MoleculeNet and the original source")
MOLECULENET = "Wu et al. (2018), MoleculeNet: a benchmark for molecular machine learning, Chem. Sci. 9:513"
SPLIT = SplitProtocol(kind="official", val_size=0.1, test_size=0.1)
TOX21_TASKS = ("NR-AR", "NR-AR-LBD", "NR-AhR", "NR-Aromatase", "NR-ER", "NR-ER-LBD", "NR-PPAR-gamma", "SR-ARE",
               "SR-ATAD5", "SR-HSE", "SR-MMP", "SR-p53")


def _csv(spec: DatasetSpec) -> pd.DataFrame:
    frame = pd.read_csv(spec.path())
    return frame.rename(columns=spec.extra.get("rename", {}))


_SETS = (
    ("bbbp", "BBBP: blood-brain barrier penetration of 2,039 compounds (Martins et al. 2012)", "bbbp.csv",
     "a61e17872cbec0743a6147dc802a1f7550acfe8dc1053f881f4c42a3ce2dc597", {}),
    ("bace", "BACE: 1,513 inhibitors of human beta-secretase 1, active or not (Subramanian et al. 2016)", "bace.csv",
     "847be1e38d3798c60df03e1aaf2ccd0f09f9ed89407de78e80463aa637088532", {}),
    ("tox21", "Tox21: 7,831 compounds in 12 toxicity assays (nuclear receptors, stress response)", "tox21.csv",
     "b58cc1f683e78e3c7a1bf7116e9aac0119804018d100f7b8cdb0857941c31aca", {}),
    ("hiv", "HIV: 41,127 compounds screened for inhibition of HIV replication (NCI DTP AIDS antiviral screen)",
     "hiv.csv.gz", "0a4a7390d6f22035c293e8e0d500655d76233b35f0f68ab128f3ceccdd97a297", {}),
    ("esol", "ESOL: measured aqueous solubility (log mol/L) of 1,128 compounds (Delaney 2004)", "delaney.csv",
     "887aa5930b0a7e7fcb76a2d25dc0ebe11c23878ca2d8d1e2204ca2c46b175140",
     {"rename": {"logp": "log_solubility"}}),  # chemprop's file calls the measured solubility 'logp'
)

for _name, _description, _file, _sha, _extra in _SETS:
    register_dataset(DatasetSpec(name=f"moleculenet-{_name}", description=_description, modality="molecules",
                                 license=LICENSE, citation=MOLECULENET, loader=_csv,
                                 files=(DataFile(CHEMPROP + _file, sha256=_sha),), extra=_extra))


def _task(name, kind, target, description, split, intended_use, smiles_column="smiles", positive=None):
    register_task(Task(name=name, modality="molecules", kind=kind, dataset=f"moleculenet-{name}", target=target,
                       description=description, positive_label=positive, split=SPLIT, default_learner="auto",
                       intended_use=intended_use, options={"split": split, "smiles_column": smiles_column}))


_task("bbbp", "binary", "p_np", "Blood-brain barrier penetration (1) or not (0) from the structure", "scaffold",
      "Early CNS-exposure triage of compounds; not a substitute for in vivo measurement.", positive="1")
_task("bace", "binary", "Class", "BACE-1 inhibition (IC50 <= 100 nM: 1) from the structure", "scaffold",
      "Prioritising candidate BACE-1 inhibitors for assay.", smiles_column="mol", positive="1")
_task("tox21", "multilabel", ",".join(TOX21_TASKS), "Activity in the 12 Tox21 assays (missing labels per assay)",
      "random", "Screening-level toxicity flags; confirm in the assay itself.")
_task("hiv", "binary", "HIV_active", "Confirmed (moderately) active against HIV replication in the NCI screen",
      "scaffold", "Hit triage in antiviral screening.", positive="1")
_task("esol", "regression", "log_solubility", "Aqueous solubility, log10(mol/L), from the structure", "random",
      "Solubility estimates for compound design; measured values rule.")
