"""MedAI: train, evaluate, explain and serve clinical prediction models.

Importing :mod:`medai` is cheap: heavy libraries load only in the modules that need them.
"""

__version__ = "0.1.0"

from medai.errors import MedAIError

__all__ = ["MedAIError", "__version__"]
