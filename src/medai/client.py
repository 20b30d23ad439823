"""A typed Python client for the MedAI model service.

>>> client = Client("http://127.0.0.1:8000", key="medai_...")
>>> client.predict("breast-cancer-wdbc", [{"mean radius": 14.1, ...}], explain=True)

Every 4xx/5xx answer raises :class:`ServiceError` (a :class:`~medai.errors.MedAIError`) carrying
``status_code``, the server's ``detail`` line and its field ``errors``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from medai.errors import MedAIError

__all__ = ["Client", "ServiceError"]


class ServiceError(MedAIError):
    """The service answered with an error status."""

    def __init__(
        self, status_code: int, detail: str, errors: list | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}


class Client:
    """``Client(url, key)``; ``http`` may be any ``httpx.Client``-compatible object (e.g. FastAPI's
    ``TestClient``), in which case ``url`` is ignored."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        key: str | None = None,
        *,
        timeout: float = 60.0,
        http: Any = None,
        verify: bool | str = True,
    ) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.key = key
        self._own = http is None
        self._http = http if http is not None else httpx.Client(base_url=self.url, timeout=timeout, verify=verify)

    def close(self) -> None:
        if self._own:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------- transport

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        return headers

    def _request(
        self,
        method: str,
        path: str,
        *,
        raw: bool = False,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ):
        response = self._http.request(method, path, headers=self._headers(headers), **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
                detail, errors = str(body.get("detail", response.text)), body.get("errors")
            except ValueError:
                detail, errors = response.text[:500] or response.reason_phrase, None
            raise ServiceError(response.status_code, detail, errors, dict(response.headers))
        return response if raw else response.json()

    # ------------------------------------------------------------------------------------- reading

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/health")

    def models(self, latest_only: bool = False) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/models", params={"latest_only": latest_only})["models"]

    def model(self, name: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/models/{name}")

    # ---------------------------------------------------------------------------------- predicting

    def _predict_path(self, name: str, version: int | None) -> str:
        return f"/v1/models/{name}/predict" if version is None else f"/v1/models/{name}/versions/{version}/predict"

    def predict(
        self, name: str, records: list[dict[str, Any]], version: int | None = None, explain: bool = False
    ) -> dict[str, Any]:
        """Tabular prediction: ``{"model", "version", "threshold", "predictions": [...]}``."""
        return self._request(
            "POST",
            self._predict_path(name, version),
            json={"records": records},
            params={"explain": "true"} if explain else None,
        )

    def predict_file(
        self,
        name: str,
        path: str | Path,
        version: int | None = None,
        explain: bool = False,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """Prediction from an image or DICOM file (de-identified by the server on arrival)."""
        path = Path(path)
        ctype = content_type or (
            "application/dicom" if path.suffix.lower() in (".dcm", ".dicom") else "application/octet-stream"
        )
        with open(path, "rb") as handle:
            return self._request(
                "POST",
                self._predict_path(name, version),
                files={"file": (path.name, handle, ctype)},
                params={"explain": "true"} if explain else None,
            )

    def fhir_predict(self, name: str, bundle: dict[str, Any], version: int | None = None) -> dict[str, Any]:
        """A FHIR R4 Bundle in, a FHIR RiskAssessment out."""
        import json

        params: dict[str, Any] = {"model": name}
        if version is not None:
            params["version"] = version
        return self._request(
            "POST",
            "/v1/fhir/RiskAssessment/$predict",
            params=params,
            content=json.dumps(bundle).encode(),
            headers={"Content-Type": "application/fhir+json"},
        )

    # ---------------------------------------------------------------------------------------- jobs

    def submit_job(self, name: str, path: str | Path, version: int | None = None, explain: bool = False) -> dict:
        """Submit a CSV (tabular) or a zip of images (image models); the job's info (``id``, ``status``)."""
        path = Path(path)
        data: dict[str, str] = {"model": name, "explain": "true" if explain else "false"}
        if version is not None:
            data["version"] = str(version)
        ctype = {".csv": "text/csv", ".zip": "application/zip"}.get(path.suffix.lower(), "application/octet-stream")
        with open(path, "rb") as handle:
            return self._request("POST", "/v1/jobs", data=data, files={"file": (path.name, handle, ctype)})

    def job(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/jobs/{job_id}")

    def wait_job(self, job_id: str, timeout: float = 60.0, poll_s: float = 0.1) -> dict[str, Any]:
        """Poll until the job is done or failed (or ``timeout`` seconds pass)."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.job(job_id)
            if info["status"] in ("done", "failed") or time.monotonic() > deadline:
                return info
            time.sleep(poll_s)

    def job_result(self, job_id: str) -> str:
        """The finished job's predictions as CSV text."""
        return self._request("GET", f"/v1/jobs/{job_id}/result", raw=True).text

    # --------------------------------------------------------------------------------------- admin

    def register_model(self, artifact_dir: str | Path, name: str | None = None) -> dict[str, Any]:
        return self._request("POST", "/v1/admin/models", json={"artifact_dir": str(artifact_dir), "name": name})

    def set_stage(self, name: str, version: int, stage: str) -> dict[str, Any]:
        return self._request("PUT", f"/v1/admin/models/{name}/versions/{version}/stage", json={"stage": stage})

    def set_loinc_mapping(
        self,
        name: str,
        mapping: dict[str, str],
        gender_column: str | None = None,
        age_column: str | None = None,
        gender_values: dict[str, str] | None = None,
        units: dict[str, str] | None = None,
    ) -> dict:
        """Set a model's FHIR mapping; ``units``: column -> the UCUM unit the model takes (quantities are
        converted to it)."""
        return self._request(
            "PUT",
            f"/v1/admin/models/{name}/loinc-mapping",
            json={
                "mapping": mapping,
                "gender_column": gender_column,
                "age_column": age_column,
                "gender_values": gender_values,
                "units": units,
            },
        )

    def create_key(self, name: str, role: str, expires_days: float | None = None) -> dict[str, Any]:
        return self._request("POST", "/v1/admin/keys", json={"name": name, "role": role, "expires_days": expires_days})

    def keys(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/admin/keys")["keys"]

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return self._request("DELETE", f"/v1/admin/keys/{key_id}")

    def audit(self, since: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if since:
            params["since"] = since
        return self._request("GET", "/v1/admin/audit", params=params)["records"]

    def audit_verify(self) -> dict[str, Any]:
        return self._request("GET", "/v1/admin/audit/verify")
