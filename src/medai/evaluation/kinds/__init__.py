"""One evaluator per kind of target; the road asks :func:`evaluator_for` and never branches on the kind."""

from __future__ import annotations

from medai.errors import MedAIError
from medai.evaluation.kinds.base import KindEvaluator
from medai.evaluation.kinds.binary import BinaryEvaluator
from medai.evaluation.kinds.multiclass import MulticlassEvaluator
from medai.evaluation.kinds.multilabel import MultilabelEvaluator
from medai.evaluation.kinds.regression import RegressionEvaluator
from medai.evaluation.kinds.survival import SurvivalEvaluator
from medai.evaluation.kinds.treatment_effect import TreatmentEffectEvaluator

_EVALUATORS: dict[str, KindEvaluator] = {}


def register_evaluator(evaluator: KindEvaluator) -> KindEvaluator:
    """Add the evaluator of a new kind of target (survival, treatment effect, ...)."""
    _EVALUATORS[evaluator.kind] = evaluator
    return evaluator


def evaluator_for(kind: str) -> KindEvaluator:
    try:
        return _EVALUATORS[kind]
    except KeyError:
        known = ", ".join(sorted(_EVALUATORS))
        raise MedAIError(f"no evaluator for targets of kind {kind!r}; known: {known}") from None


for _evaluator in (BinaryEvaluator(), MulticlassEvaluator(), MultilabelEvaluator(), RegressionEvaluator(),
                   SurvivalEvaluator(), TreatmentEffectEvaluator()):
    register_evaluator(_evaluator)

__all__ = ["KindEvaluator", "evaluator_for", "register_evaluator"]
