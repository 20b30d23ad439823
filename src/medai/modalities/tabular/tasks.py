"""The built-in tabular tasks."""

from medai.tasks import SplitProtocol, Task, register_task

# Values beyond these are not physiological: a prediction from them is refused or flagged, never trusted.
CLEVELAND_LIMITS = {"age": (0, 120), "trestbps": (40, 300), "chol": (40, 1200), "thalach": (30, 250),
                    "oldpeak": (-5, 15), "ca": (0, 3)}
PIMA_LIMITS = {"pregnancies": (0, 30), "glucose": (10, 700), "blood_pressure": (10, 250), "skin_thickness": (0, 120),
               "insulin": (0, 2000), "bmi": (8, 100), "diabetes_pedigree": (0, 5), "age": (0, 120)}

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
    options={"limits": {"*": (0.0, None)}},  # sizes, areas, textures: none can be negative
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
    options={"limits": CLEVELAND_LIMITS},
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
    options={"limits": PIMA_LIMITS},
))

register_task(Task(
    name="heart-disease-severity",
    modality="tabular",
    kind="multiclass",
    dataset="heart-disease-cleveland-num",
    target="num",
    categorical=("cp", "restecg", "slope", "thal"),
    subgroups=("sex", "age"),
    description="Angiographic coronary artery disease severity (num 0-4: 0 none, 1-4 increasing) from 13 features",
    intended_use="Research on graded coronary disease risk; the grades 1-4 are small groups.",
    split=SplitProtocol(cv="5x3"),
    default_learner="logistic",
    options={"limits": CLEVELAND_LIMITS},
))

register_task(Task(
    name="diabetes-progression",
    modality="tabular",
    kind="regression",
    dataset="diabetes-progression",
    target="target",
    subgroups=("sex",),
    description="Disease progression one year after baseline from ten baseline measurements (Efron et al. 2004)",
    intended_use="Teaching and method comparison; the ten variables are mean-centred and scaled as shipped.",
    split=SplitProtocol(cv="5x3"),
    default_learner="ridge",
))
