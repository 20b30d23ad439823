"""Visit-history samples: what the visit tasks build and the visit learners take.

A sample is one index visit of one patient with the codes of every visit of that patient up to and including
the index visit (its history), oldest first: ``visits[i]`` is a list of visits, each a dict ``domain -> codes``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DOMAINS = ("conditions", "procedures", "drugs")  # the code domains of a visit


@dataclass
class VisitHistories:
    ids: np.ndarray  # one id per sample (the index visit's id)
    subjects: np.ndarray  # the patient of each sample
    visits: list[list[dict[str, list[str]]]]

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=object)
        self.subjects = np.asarray(self.subjects, dtype=object)
        if not (len(self.ids) == len(self.subjects) == len(self.visits)):
            raise ValueError("ids, subjects and visits must have one entry per sample")

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, positions) -> VisitHistories:
        positions = np.asarray(positions, dtype=int)
        return VisitHistories(self.ids[positions], self.subjects[positions], [self.visits[i] for i in positions])

    def last_visit(self) -> VisitHistories:
        """Each sample's index visit alone (PyHealth 1.1.3's tasks give its models this)."""
        return VisitHistories(self.ids, self.subjects, [h[-1:] for h in self.visits])

    def tokens(self) -> list[list[list[str]]]:
        """Per sample, per visit: the codes as ``domain:code`` tokens."""
        return [[[f"{d}:{c}" for d in DOMAINS for c in visit.get(d, ())] for visit in history]
                for history in self.visits]


def concat(parts: list[VisitHistories]) -> VisitHistories:
    return VisitHistories(np.concatenate([p.ids for p in parts]), np.concatenate([p.subjects for p in parts]),
                          [h for p in parts for h in p.visits])
