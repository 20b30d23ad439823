# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""The web page in a real headless Chromium (Playwright driving Debian's ``chromium``) against a live
``medai serve`` on loopback: sign-in per role, the models, predict from the form and by upload, jobs, the
admin pages; axe-core on every page (no serious or critical violation); no CSP violation, no outside
request. Screenshots go to ``MEDAI_WEB_SCREENSHOTS`` when set (the README's pictures)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_service_support import imaging_artifact, wdbc_artifact, wdbc_rows  # noqa: F401
from web_support import ROLES

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.sync_api")


def _chromium() -> str:
    path = os.environ.get("MEDAI_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: `make install` installs Debian's chromium")
        pytest.skip("chromium is not installed (make install puts Debian's chromium in place)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Live:
    url: str
    keys: dict[str, str]
    home: Path
    shots: Path


@pytest.fixture(scope="module")
def live(tmp_path_factory, wdbc_artifact, imaging_artifact):
    """``medai serve`` as a real process on loopback, with a tabular and an image model and one key per role."""
    from medai import db
    from medai.registry import Registry
    from medai.serving.keys import KeyStore

    home = tmp_path_factory.mktemp("web_live_home")
    keys = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDAI_HOME", str(home))
        mp.delenv("MEDAI_DATABASE_URL", raising=False)
        Registry().register(wdbc_artifact, name="wdbc")
        Registry().register(imaging_artifact, name="xray")
        for role in ROLES:
            keys[role] = KeyStore().create(f"Dr {role.title()}", role)[1]
        db.dispose_all()
    port = _free_port()
    env = dict(os.environ, MEDAI_HOME=str(home), MEDAI_RATE_LIMIT="100000")
    env.pop("MEDAI_DATABASE_URL", None)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "medai"), "serve", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, "medai serve did not start"
        time.sleep(0.3)
    shots = Path(os.environ.get("MEDAI_WEB_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    shots.mkdir(parents=True, exist_ok=True)
    try:
        yield Live(url, keys, home, shots)
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode()
        assert "Traceback" not in output, output


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


class Watched:
    """A page whose console CSP violations and requests to any other host are collected."""

    def __init__(self, context, origin: str) -> None:
        self.page = context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("request", lambda r: None if r.url.startswith((origin, "data:", "blob:"))
                     else self.problems.append(f"outside request: {r.url}"))

    def _console(self, message) -> None:
        if message.type == "error" and ("Content Security Policy" in message.text or "Refused" in message.text):
            self.problems.append(message.text)


@pytest.fixture
def page(browser, live):
    context = browser.new_context(viewport={"width": 1180, "height": 900}, base_url=live.url)
    watched = Watched(context, live.url)
    yield watched.page
    context.close()
    assert not watched.problems, watched.problems


def axe_check(page) -> None:
    """axe-core (bundled, injected into the page) finds no serious or critical violation."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{page.url}: {bad}"


def shot(page, live: Live, name: str) -> None:
    page.screenshot(path=str(live.shots / f"{name}.png"), full_page=True)


def sign_in(page, live: Live, role: str) -> None:
    page.goto("/sign-in")
    page.get_by_label("API key").fill(live.keys[role])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/models")


# ------------------------------------------------------------------------------------------- tests


def test_sign_in_per_role_models_and_card(page, live):
    page.goto("/models")
    assert "/sign-in" in page.url  # signed out: sent to sign-in
    axe_check(page)
    shot(page, live, "sign-in")
    for role in ROLES:
        sign_in(page, live, role)
        assert page.get_by_role("link", name="wdbc").is_visible()
        assert page.get_by_text(f"Dr {role.title()}").is_visible()
        nav = page.get_by_role("navigation", name="Main")
        assert nav.get_by_role("link", name="Audit log").count() == (1 if role == "admin" else 0)
        if role == "admin":
            axe_check(page)
            shot(page, live, "models")
            page.get_by_role("link", name="wdbc").click()
            page.wait_for_url("**/models/wdbc")
            assert page.get_by_role("heading", name="Model card", exact=True).is_visible()
            axe_check(page)
            shot(page, live, "model")
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/sign-in?notice=signed_out")
        assert page.get_by_text("You are signed out.").is_visible()
        page.goto("/models/wdbc")
        assert "/sign-in" in page.url
    # the key never reached the browser's storage
    assert page.evaluate("() => window.localStorage.length + window.sessionStorage.length") == 0
    assert all("medai_" not in c["value"] for c in page.context.cookies())


def test_wrong_key_message_is_on_the_page(page, live):
    page.goto("/sign-in")
    page.get_by_label("API key").fill("medai_000000000000_" + "A" * 43)
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text().startswith("Not signed in")
    axe_check(page)
