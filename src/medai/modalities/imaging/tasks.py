"""The built-in imaging tasks: MedMNIST keeps its official split and the benchmark's decision rule (argmax)."""

from medai.tasks import SplitProtocol, Task, register_task

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
