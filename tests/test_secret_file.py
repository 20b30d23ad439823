"""The installation's secrets (de-identification, monitoring ids): made once, owner-only, refused when damaged."""

import stat

import pytest

from medai import config
from medai.errors import MedAIError


def test_a_secret_is_made_once_and_readable_by_its_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDAI_HOME", str(tmp_path))
    first = config.secret_file("deid.key")
    assert len(first) == 32 and config.secret_file("deid.key") == first
    assert stat.S_IMODE((tmp_path / "deid.key").stat().st_mode) == 0o600
    assert config.secret_file("monitor.key") != first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_a_truncated_secret_is_refused_with_its_path(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDAI_HOME", str(tmp_path))
    (tmp_path / "deid.key").write_bytes(b"short")
    with pytest.raises(MedAIError, match="deid.key: the secret is too short"):
        config.secret_file("deid.key")
