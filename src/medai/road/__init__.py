"""The one road: train -> evaluate -> report -> package, for every modality and kind of target.

    from medai.road import TrainOptions, train_task, train_data, load_model
    result = train_task("heart-disease-cleveland", "runs/cleveland", TrainOptions(cv="5x5"))
    model = load_model("runs/cleveland")
"""

from medai.road.model import Model, load_model
from medai.road.options import TrainOptions
from medai.road.train import TrainResult, train, train_data, train_task, user_task

__all__ = ["Model", "TrainOptions", "TrainResult", "load_model", "train", "train_data", "train_task", "user_task"]
