"""The built-in task catalog. A new modality registers its tasks here."""

from __future__ import annotations

from medai.errors import NotFoundError
from medai.tasks.task import SplitProtocol, Task

_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is registered twice")
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    try:
        return _TASKS[name]
    except KeyError:
        raise NotFoundError(f"unknown task {name!r}; known tasks: {', '.join(sorted(_TASKS))}") from None


def list_tasks() -> list[Task]:
    return [_TASKS[name] for name in sorted(_TASKS)]


register_task(Task(
    name="breast-cancer-wdbc",
    modality="tabular",
    kind="binary",
    dataset="breast-cancer-wdbc",
    target="diagnosis",
    positive_label="malignant",
    description="Malignant vs benign breast mass from fine-needle aspirate cytology features",
    intended_use="Decision support for cytopathologists reading breast FNA; not a stand-alone diagnosis.",
    default_learner="logistic",
))

register_task(Task(
    name="heart-disease-cleveland",
    modality="tabular",
    kind="binary",
    dataset="heart-disease-cleveland",
    target="heart_disease",
    positive_label="yes",
    categorical=("cp", "restecg", "slope", "thal"),
    subgroups=("sex", "age"),
    description="Angiographic coronary artery disease (>50% narrowing, num > 0) from 13 clinical features",
    intended_use="Pre-test risk of coronary artery disease in adults referred for angiography.",
    split=SplitProtocol(cv="5x5"),
    default_learner="logistic",
))

register_task(Task(
    name="diabetes-pima",
    modality="tabular",
    kind="binary",
    dataset="diabetes-pima",
    target="diabetes",
    positive_label="yes",
    subgroups=("age",),
    description="Diabetes onset within five years from eight measurements (Pima women, age >= 21)",
    intended_use="Screening-risk estimate for type 2 diabetes in adult Pima women; other populations untested.",
    split=SplitProtocol(cv="5x5"),
    default_learner="logistic",
))

# -- imaging: MedMNIST tasks keep the official split and the benchmark's decision rule (argmax) -------------
_MEDMNIST_SPLIT = SplitProtocol(kind="official", val_size=0.0, test_size=0.0)

register_task(Task(
    name="pneumonia-xray",
    modality="imaging",
    kind="binary",
    dataset="pneumoniamnist",
    target="label",
    positive_label="pneumonia",
    description="Pneumonia vs normal on paediatric chest X-ray (PneumoniaMNIST, 28x28)",
    intended_use="Triage support for paediatric chest radiographs; a radiologist reads every image.",
    split=_MEDMNIST_SPLIT,
    default_learner="small-cnn",
    options={"recipe": "pneumoniamnist", "spatial_dims": 2, "image_size": 28, "decision": "argmax"},
))

register_task(Task(
    name="breast-ultrasound",
    modality="imaging",
    kind="binary",
    dataset="breastmnist",
    target="label",
    positive_label="malignant",
    description="Malignant vs normal/benign breast ultrasound (BreastMNIST, 28x28)",
    intended_use="Second reader for breast ultrasound; biopsy decisions stay with the clinician.",
    split=_MEDMNIST_SPLIT,
    default_learner="small-cnn",
    options={"recipe": "breastmnist", "spatial_dims": 2, "image_size": 28, "decision": "argmax"},
))

register_task(Task(
    name="adrenal-ct-3d",
    modality="imaging",
    kind="binary",
    dataset="adrenalmnist3d",
    target="label",
    positive_label="hyperplasia",
    description="Adrenal hyperplasia vs normal from 3D adrenal shape masks of abdominal CT (AdrenalMNIST3D, 28^3)",
    intended_use="Research on 3D CT shape classification; not for clinical use.",
    split=_MEDMNIST_SPLIT,
    default_learner="small-cnn",
    options={"recipe": "adrenalmnist3d", "spatial_dims": 3, "image_size": 28, "decision": "argmax"},
))
