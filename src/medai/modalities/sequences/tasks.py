"""Built-in sequence tasks: the UCI primate splice-junction sequences (``sequences/`` under MEDAI_DATA_DIR)."""

from __future__ import annotations

import pandas as pd

from medai.data.registry import DataFile, DatasetSpec, register_dataset
from medai.tasks import SplitProtocol, Task, register_task

SPLICE = "sequences/uci_splice_junction/splice.csv"
SPLICE_CITATION = ("Towell, Shavlik & Noordewier (1990), Refinement of approximate domain theories by "
                   "knowledge-based artificial neural networks, AAAI-90; data: Harley & Reynolds (1987), UCI "
                   "Machine Learning Repository (Molecular Biology, Splice-junction Gene Sequences)")
SPLICE_LICENSE = "UCI Machine Learning Repository, CC BY 4.0 (as listed on the UCI page; cite the creators)"


def _splice(spec: DatasetSpec) -> pd.DataFrame:
    # UCI's splice.data pads its fields with spaces; the copy adds a header line 'Class, Donor, Sequence'
    frame = pd.read_csv(spec.path(), skipinitialspace=True)
    frame = frame.rename(columns=lambda c: str(c).strip())
    return frame.apply(lambda column: column.str.strip() if column.dtype == object else column)


register_dataset(DatasetSpec(
    name="uci-splice-junctions", modality="sequences", license=SPLICE_LICENSE, citation=SPLICE_CITATION,
    description="3,190 primate DNA windows of 60 nt around exon/intron (EI, donor) and intron/exon (IE, acceptor) "
                "boundaries, or neither (N)", loader=_splice,
    files=(DataFile(SPLICE, sha256="a8e1f2f76ef4c2393bb5d072c6e94c2db919d9c319a377012b59a5567fe6f5e8"),)))

register_task(Task(
    name="splice-junctions", modality="sequences", kind="multiclass", dataset="uci-splice-junctions",
    target="Class", description="Splice junction type of a 60-nt primate DNA window: EI (donor), IE (acceptor) or N",
    split=SplitProtocol(kind="stratified", val_size=0.15, test_size=0.2, cv="5x3"), default_learner="wd-svm",
    intended_use="Research annotation of candidate splice sites in primate DNA; not a clinical variant classifier.",
    options={"sequence_column": "Sequence", "id_column": "Donor"}))
