"""DICOMweb pull mode: find new studies with QIDO-RS, fetch their new instances with WADO-RS, and queue them
exactly as if they had come by C-STORE. Instances already known (received before, or results MedAI itself
stored) are never fetched again."""

from __future__ import annotations

import logging
from typing import Any

from medai.errors import MedAIError
from medai.gateway.network import intake_dataset

log = logging.getLogger(__name__)
SKIP_MODALITIES = {"SR", "KO", "PR", "SEG", "RTSTRUCT", "DOC"}


def _value(item: dict, tag: str) -> str:
    values = (item.get(tag) or {}).get("Value") or [""]
    return str(values[0])


def pull_once(url: str, store, spool, audit, study_date: str | None = None, client=None) -> dict[str, Any]:
    """One pass over the PACS: counts of studies seen and instances queued, duplicate or refused."""
    from dicomweb_client.api import DICOMwebClient

    client = client or DICOMwebClient(url=url)
    counts = {"studies": 0, "series": 0, "queued": 0, "known": 0, "refused": 0}
    try:
        studies = client.search_for_studies(search_filters={"StudyDate": f"{study_date}-"} if study_date else None)
    except Exception as exc:  # noqa: BLE001
        raise MedAIError(f"QIDO-RS search at {url} failed ({type(exc).__name__}: {str(exc)[:200]})") from None
    for study in studies:
        study_uid = _value(study, "0020000D")
        counts["studies"] += 1
        for series in client.search_for_series(study_instance_uid=study_uid):
            series_uid = _value(series, "0020000E")
            if _value(series, "00080060").upper() in SKIP_MODALITIES \
                    or _value(series, "0008103E").startswith("MedAI "):  # not images, or MedAI's own results
                continue
            instances = client.search_for_instances(study_instance_uid=study_uid, series_instance_uid=series_uid)
            new = [_value(i, "00080018") for i in instances]
            new = [uid for uid in new if uid and not store.known(uid) and not store.was_sent(uid)]
            counts["known"] += len(instances) - len(new)
            if not new:
                continue
            counts["series"] += 1
            wanted = set(new)
            for ds in client.retrieve_series(study_instance_uid=study_uid, series_instance_uid=series_uid):
                if str(ds.get("SOPInstanceUID", "")) not in wanted:
                    continue
                outcome = intake_dataset(ds, store, spool, audit, source=url)
                counts["queued" if outcome == "ok" else "refused" if outcome != "duplicate" else "known"] += 1
            store.close([series_uid])
    audit.record("gateway.pull", role="dicom", route="dicomweb:qido", client=url[:200], detail=counts)
    return counts
