"""Request and response schemas of the MedAI service: the single source of the API contract (OpenAPI)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Scalar = float | int | str | bool | None


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="where the problem is, e.g. ['body', 'records', 0, 'age']")
    msg: str
    type: str = "value_error"


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer: ``detail`` is one line fit to show a user; ``errors`` lists field problems."""

    detail: str
    errors: list[ErrorItem] | None = None


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class ModelSummary(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    name: str
    version: int
    stage: str
    task: str
    kind: str
    modality: str
    family: str
    learner: str
    metrics: dict[str, Any]
    created_at: str
    description: str = ""


class ModelList(BaseModel):
    models: list[ModelSummary]


class InputColumn(BaseModel):
    name: str
    kind: str = Field(description="numeric, categorical or text")
    categories: list[str] = []
    min: float | None = Field(None, description="smallest value in the training data (numeric fields)")
    max: float | None = Field(None, description="largest value in the training data (numeric fields)")
    low: float | None = Field(None, description="physiological lower limit the task declares (impossible below)")
    high: float | None = Field(None, description="physiological upper limit the task declares (impossible above)")


class ModelDetail(BaseModel):
    name: str
    default_version: int
    versions: list[ModelSummary]
    task: str
    kind: str
    modality: str
    family: str
    input_kind: Literal["records", "files"] = Field(description="JSON records with named fields, or uploaded files")
    input_schema: list[InputColumn] | None = None
    file_input: dict[str, Any] | None = Field(None, description="what a file-based model reads (image size, formats)")
    classes: list[str] | None = Field(None, description="classes (binary, multiclass) or labels (multilabel)")
    positive_label: str | None = None
    threshold: float | None = None
    decision: dict[str, Any] | None = Field(None, description="the decision rule chosen on validation data")
    conformal: dict[str, Any] | None = Field(None, description="conformal coverage and mode of the sets/intervals")
    metrics: dict[str, Any]
    model_card: str | None = None
    loinc_mapping: dict[str, str] | None = None


class PredictRequest(BaseModel):
    """Input of a model that takes records: one object per patient or item, field name -> value."""

    model_config = ConfigDict(extra="forbid")
    records: list[dict[str, Scalar]] = Field(min_length=1, max_length=10_000)
    record_ids: list[str] | None = Field(
        None, max_length=10_000,
        description="one id per record (e.g. an encounter number), to send its outcome later to "
                    "POST /v1/models/{name}/outcomes; stored only as a keyed hash")


class Contribution(BaseModel):
    feature: str
    value: Any = None
    contribution: float


class Interval(BaseModel):
    low: float
    high: float


class Prediction(BaseModel):
    """One prediction; which fields are present depends on the model's kind of target."""

    model_config = ConfigDict(extra="allow")
    index: int
    label: str | None = Field(None, description="the predicted class (binary, multiclass)")
    labels: list[str] | None = Field(None, description="the predicted labels (multilabel)")
    value: float | None = Field(None, description="the predicted value (regression)")
    probability: float | None = Field(None, description="probability of the positive label (binary models)")
    probabilities: dict[str, float] | None = Field(None, description="per class (or per label) probability")
    prediction_set: list[str] | None = Field(None, description="conformal set: every class not ruled out")
    interval: Interval | None = Field(None, description="conformal interval (regression)")
    coverage: float | None = Field(None, description="nominal coverage of the set or interval")
    uncertain: bool | None = Field(None, description="the set holds other than one class: uncertain - refer")
    outside_training_data: bool | None = Field(None, description="the record lies outside what the model saw in "
                                               "training (or outside physiological limits): do not trust blindly")
    out_of_range: list[str] | None = Field(None, description="why the record is outside (fields, never values)")
    contributions: list[Contribution] | None = None
    explains: str | None = Field(None, description="what the explanation is about")
    summary: str | None = None
    explanation_png_base64: str | None = Field(None, description="a picture explaining the prediction (Grad-CAM)")
    file: str | None = None


class PredictResponse(BaseModel):
    model: str
    version: int
    kind: str
    threshold: float | None = None
    positive_label: str | None = None
    predictions: list[Prediction]


class JobInfo(BaseModel):
    id: str
    model: str
    version: int | None
    status: Literal["queued", "running", "done", "failed"]
    kind: str
    items: int | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    result_url: str | None = None


class JobList(BaseModel):
    jobs: list[JobInfo]


class RegisterRequest(BaseModel):
    artifact_dir: str = Field(description="a model artifact directory readable by the server")
    name: str | None = None
    description: str = ""


class StageRequest(BaseModel):
    stage: Literal["none", "staging", "production", "retired"]


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["viewer", "clinician", "admin"]
    expires_days: float | None = Field(None, gt=0, le=36_500, description="days until the key expires")


class KeyInfo(BaseModel):
    key_id: str
    name: str
    role: str
    created_at: str
    expires_at: str | None = None
    revoked_at: str | None = None
    last_used_at: str | None = None


class KeyCreated(KeyInfo):
    key: str = Field(description="the API key; shown once, never stored")


class KeyList(BaseModel):
    keys: list[KeyInfo]


class AuditRecord(BaseModel):
    seq: int
    ts: str
    key_id: str | None = None
    role: str | None = None
    action: str
    route: str | None = None
    method: str | None = None
    model: str | None = None
    model_version: str | None = None
    input_sha256: str | None = None
    outcome: str
    status_code: int | None = None
    client: str | None = None
    detail: Any = None
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    records: list[AuditRecord]


class AuditVerify(BaseModel):
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None


class LoincMapping(BaseModel):
    """How FHIR input maps to a model's columns: LOINC code -> column; Patient gender/age -> columns."""

    mapping: dict[str, str] = Field(description="LOINC code -> model input column")
    gender_column: str | None = None
    age_column: str | None = None
    gender_values: dict[str, str] | None = Field(
        None, description="FHIR gender (male/female/other/unknown) -> value the model expects"
    )
    units: dict[str, str] | None = Field(
        None,
        description="model input column -> the UCUM unit it was trained in (e.g. 'mm', 'mg/dL'); quantities "
        "are converted to it, and a quantity with a unit is refused for a column without one",
    )
