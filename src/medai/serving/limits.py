"""Bounds the service puts on what a request may cost: time and decoded pixels (a :class:`medai.budget.Budget`
per model call and per job), JSON depth and number sizes.

Everything here turns an input that would crash or exhaust a worker into a :class:`MedAIError` naming the
problem (the service answers 422), never echoing the offending value.
"""

from __future__ import annotations

import json
import math
from typing import Any

from medai.budget import Budget
from medai.errors import MedAIError

__all__ = ["MAX_JSON_DEPTH", "MAX_NUMBER_CHARS", "job_budget", "json_depth", "loads_json", "request_budget"]

MAX_JSON_DEPTH = 64
"""Deepest nesting of objects/arrays accepted in a JSON body read by hand (a FHIR Bundle needs about 10)."""

MAX_NUMBER_CHARS = 40
"""Longest JSON number literal accepted (digits, sign, point, exponent); 40 holds every finite double."""

class _NumberError(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _NumberError(f"a number with {len(text)} digits")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _NumberError(f"a number written with {len(text)} characters")
    value = float(text)
    if not math.isfinite(value):
        raise _NumberError("a number beyond the range of a double (about 1.8e308)")
    return value


def _parse_constant(text: str) -> float:
    raise _NumberError(f"{text}, which is not JSON")


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of parsed JSON (iterative, stops counting past ``limit``)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def loads_json(body: bytes | str, what: str = "the request body", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON from an untrusted client: :class:`MedAIError` for malformed JSON, nesting deeper than
    ``max_depth``, a number literal over :data:`MAX_NUMBER_CHARS` characters or beyond a double, and the
    non-JSON constants NaN/Infinity."""
    try:
        value = json.loads(
            body, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
        )
    except _NumberError as exc:
        raise MedAIError(f"{what}: {exc}; numbers must be at most {MAX_NUMBER_CHARS} characters and finite") from None
    except RecursionError:
        raise MedAIError(f"{what}: JSON nested too deeply; at most {max_depth} levels are accepted") from None
    except json.JSONDecodeError as exc:
        raise MedAIError(f"{what}: malformed JSON at line {exc.lineno} column {exc.colno}") from None
    except (UnicodeDecodeError, ValueError):
        raise MedAIError(f"{what}: malformed JSON (expected UTF-8 text)") from None
    if json_depth(value, max_depth) > max_depth:
        raise MedAIError(f"{what}: JSON nested too deeply; at most {max_depth} levels are accepted")
    return value


def request_budget(settings) -> Budget:
    """The budget of one model call of a request: its time limit (the 504 timeout; work is cancelled when
    it fires) and the per-file and per-request pixel limits of the service's settings."""
    return Budget(
        settings.predict_timeout_s,
        max_file_pixels=settings.max_image_pixels,
        max_file_voxels=settings.max_volume_voxels,
        max_total_pixels=settings.max_request_pixels,
        what="the request",
    )


def job_budget(settings) -> Budget:
    """The budget of one batch job: its own time limit and the per-file pixel limits (no total: a job
    streams its inputs in chunks, so its memory does not grow with their number)."""
    return Budget(
        settings.job_timeout_s,
        max_file_pixels=settings.max_image_pixels,
        max_file_voxels=settings.max_volume_voxels,
        what="the job",
    )
