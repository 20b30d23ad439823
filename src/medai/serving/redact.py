"""Keeping server paths out of what clients see: error messages and stored job errors.

Errors raised deep inside (a file that would not decode, a missing folder) name the file by its path on the
server — useful at the command line, a leak in an HTTP answer. :func:`redact_paths` replaces every absolute
path in a message by its last component (uploads and job inputs are stored under generic names such as
``item-00003.png``, so that name is safe and still says which file was meant).
"""

from __future__ import annotations

import re

__all__ = ["redact_paths"]

# an absolute POSIX path of at least two components, not a /v1/... route, not part of a URL or a unit (mg/dL)
_ABSOLUTE_PATH = re.compile(r"(?<![\w/.:~-])/(?!v1/)(?:[^\s'\"/:,;()\[\]{}<>]+/)+([^\s'\"/:,;()\[\]{}<>]*)")


def redact_paths(message: str) -> str:
    """``message`` with each absolute path replaced by its last component (``'<path>'`` when that is empty)."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "<path>", message)
