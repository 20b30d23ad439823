"""What it takes to keep EconML's fitted estimators in the safe artifact format (skops, allow-listed types only).

Two things in them are beyond skops: the inference object of the DR-learner and the causal forest points back
at its estimator (a cycle), and the causal forest's trees are EconML's own Cython ``Tree``, which skops cannot
build. While saving, ``savable`` cuts the cycle and puts each tree's state (its constructor's four numbers and
its arrays) in a plain ``SavedTree``; it restores the learner afterwards. ``restore`` undoes both on a loaded
learner. The trees' node arrays are trusted as scikit-learn's are: an artifact's files are checksummed against
its manifest before loading.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from medai.errors import IntegrityError


class SavedTree:
    """An EconML tree as plain data: the arguments of ``Tree(...)`` and the state for ``__setstate__``."""

    def __init__(self, args, state: dict):
        self.args = [int(a) if not isinstance(a, bool) else a for a in args]
        self.state = state

    def build(self):
        from econml.tree._tree import Tree

        if len(self.args) != 4 or not all(isinstance(a, int | bool) for a in self.args):
            raise IntegrityError(f"a saved causal-forest tree has malformed arguments {self.args!r}")
        tree = Tree(*self.args)
        tree.__setstate__(self.state)
        return tree


def _estimators(learner) -> list:
    if not hasattr(learner, "cate_"):
        return []
    return [learner.cate_, *getattr(learner, "bootstrap_", [])]


def _slots(obj, seen: set[int]) -> Iterator[tuple[Callable, object]]:
    """(setter, value) of every attribute, list item and dict value reachable from ``obj`` (each object once)."""
    stack = [obj]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, list):
            items = [(lambda v, n=node, i=i: n.__setitem__(i, v), value) for i, value in enumerate(node)]
        elif isinstance(node, dict):
            items = [(lambda v, n=node, k=k: n.__setitem__(k, v), value) for k, value in node.items()]
        elif isinstance(node, tuple):
            items = [(None, value) for value in node]
        elif hasattr(node, "__dict__") and type(node).__module__.split(".")[0] in ("econml", "sklearn", "lightgbm"):
            items = [(lambda v, n=node, k=k: setattr(n, k, v), value) for k, value in vars(node).items()]
        else:
            continue
        for setter, value in items:
            yield setter, value
            if isinstance(value, list | dict | tuple) or hasattr(value, "__dict__"):
                stack.append(value)


@contextmanager
def savable(learner):
    """The learner made savable for the duration (see the module's docstring), then put back as it was."""
    undo: list[Callable] = []
    try:
        for estimator in _estimators(learner):
            inference = getattr(estimator, "_inference", None)
            if inference is not None and getattr(inference, "_est", None) is estimator:
                inference._est = None
                undo.append(lambda i=inference, e=estimator: setattr(i, "_est", e))
            for setter, value in _slots(estimator, set()):
                if type(value).__module__ == "econml.tree._tree" and type(value).__name__ == "Tree":
                    if setter is None:
                        raise IntegrityError("an EconML tree inside a tuple cannot be saved")
                    reduced = value.__reduce__()
                    setter(SavedTree(reduced[1], reduced[2]))
                    undo.append(lambda s=setter, v=value: s(v))
        yield learner
    finally:
        for step in reversed(undo):
            step()


def restore(learner):
    """A loaded learner made whole: trees rebuilt, inference objects pointing at their estimators again."""
    for estimator in _estimators(learner):
        inference = getattr(estimator, "_inference", None)
        if inference is not None and hasattr(inference, "_est") and inference._est is None:
            inference._est = estimator
        for setter, value in list(_slots(estimator, set())):
            if isinstance(value, SavedTree):
                setter(value.build())
    return learner
