"""Image-diagnosis models: networks (2D/3D), augmentation, the ``ImageClassifier`` learner, ONNX export.

Heavy libraries (torch, MONAI, onnxruntime) load only when these modules are imported.
"""

from medai.models.imaging.classifier import RECIPES, ImageClassifier
from medai.models.imaging.networks import NETWORKS, build_network, load_pretrained

__all__ = ["NETWORKS", "RECIPES", "ImageClassifier", "build_network", "load_pretrained"]
