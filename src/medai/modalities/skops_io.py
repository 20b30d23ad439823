"""Weights of scikit-learn style learners as skops files: loading builds only allow-listed types, never a
pickle's arbitrary objects."""

from __future__ import annotations

from medai.errors import IntegrityError

# skops builds only types whose module starts with one of these (plus each modality's own package)
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "lightgbm.", "collections.OrderedDict", "builtins.")


def dumps(obj) -> bytes:
    import skops.io as sio

    return sio.dumps(obj)


def loads(data: bytes, source: str, extra_prefixes: tuple[str, ...] = ()):
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=data)
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES + tuple(extra_prefixes))]
    if refused:
        raise IntegrityError(f"{source} contains types that are not allowed to load: {refused[:5]}")
    return sio.loads(data, trusted=untrusted)
