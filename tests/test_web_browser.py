# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""The web page in a real headless Chromium (Playwright driving Debian's ``chromium``) against a live
``medai serve`` on loopback: sign-in per role, the models, predict from the form and by upload, jobs, the
admin pages; axe-core on every page (no serious or critical violation); no CSP violation, no outside
request. Screenshots go to ``MEDAI_WEB_SCREENSHOTS`` when set (the README's pictures)."""

from __future__ import annotations

import io
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

# the module's server (two models trained, `medai serve` started) is set up within the first test's time limit
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
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

    deadline = time.monotonic() + 300  # a loaded 2-core machine can take minutes to import everything
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
    context.set_default_timeout(240_000)  # a first model load can take minutes on a loaded 2-core machine
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
            # the road's evaluation report: served under a CSP that runs no script (so axe cannot be injected
            # there); its HTML is checked by axe as a document of its own
            report = page.request.get("/models/wdbc/versions/1/report")
            csp = report.headers["content-security-policy"]
            assert report.ok and "default-src 'none'" in csp and "sandbox" in csp and "script" not in csp
            page.goto("about:blank")
            page.set_content(report.text())
            axe_check(page)
            page.goto("/models/wdbc")
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


def test_predict_from_the_form_with_explanation(page, live, wdbc_rows):
    sign_in(page, live, "clinician")
    page.goto("/models/wdbc/predict")
    axe_check(page)
    for name, value in wdbc_rows[0].items():
        page.get_by_label(name, exact=True).fill(repr(value))
    page.get_by_role("button", name="Predict").click()
    result = page.get_by_role("region", name="Result")
    result.wait_for()
    assert result.get_by_text("Probability of malignant").is_visible()
    assert result.get_by_text("Conformal prediction set").is_visible()
    assert result.get_by_role("table", name="What pushed this prediction").locator("svg rect").count() == 5
    axe_check(page)
    shot(page, live, "predict-tabular")
    # a value out of range and a word where a number goes: clear messages beside the fields
    page.get_by_label("mean radius", exact=True).fill("twelve")
    page.get_by_label("mean texture", exact=True).fill("-3")
    page.get_by_role("button", name="Predict").click()
    assert page.get_by_role("alert").first.inner_text().startswith("Some values need correcting")
    assert page.get_by_text("mean radius: enter a number").is_visible()
    assert page.get_by_text("mean texture: -3 is not a possible value").is_visible()
    assert page.get_by_label("mean radius", exact=True).get_attribute("aria-invalid") == "true"
    axe_check(page)


def _png_bytes() -> bytes:
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray((np.tri(28) * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_predict_by_upload_image_and_dicom(page, live, tmp_path):
    from conftest import require_data

    sign_in(page, live, "clinician")
    page.goto("/models/xray/predict")
    axe_check(page)
    page.get_by_label("Drop a file here, or choose one").set_input_files(
        files=[{"name": "chest.png", "mimeType": "image/png", "buffer": _png_bytes()}])
    assert page.get_by_text("Chosen: chest.png").is_visible()
    page.get_by_role("button", name="Predict").click()
    page.wait_for_selector("section.result, #form-errors")
    assert page.locator("#form-errors").count() == 0, page.locator("#form-errors").inner_text()
    result = page.get_by_role("region", name="Result for chest.png")
    overlay = result.get_by_role("img", name="Explanation overlay (Grad-CAM)")
    assert overlay.is_visible() and overlay.evaluate("img => img.naturalWidth") > 0
    axe_check(page)
    shot(page, live, "predict-image")
    page.get_by_label("Drop a file here, or choose one").set_input_files(require_data("imaging/dicom/CT_small.dcm"))
    page.get_by_role("button", name="Predict").click()
    page.get_by_role("region", name="Result for CT_small.dcm").wait_for()
    # a wrong file type: the service's message on the page
    page.get_by_label("Drop a file here, or choose one").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"}])
    page.get_by_role("button", name="Predict").click()
    assert "unsupported file type" in page.get_by_role("alert").first.inner_text()
    # 100 MB: refused in the page before it is sent, with the limit named
    big = tmp_path / "big.dcm"
    with big.open("wb") as handle:
        handle.truncate(100 * 1024 * 1024)
    page.get_by_label("Drop a file here, or choose one").set_input_files(big)
    page.get_by_role("button", name="Predict").click()
    alert = page.locator("[data-upload-error]")
    alert.wait_for()
    assert "too large" in alert.inner_text() and "the limit is 32 MB" in alert.inner_text()
    # and sent anyway (a script-less client): a page that says so, and the server stays up
    import httpx

    with big.open("rb") as handle:
        r = httpx.post(live.url + "/models/xray/predict", files={"file": ("big.dcm", handle, "application/dicom")},
                       timeout=60)
    assert r.status_code == 413 and "too large" in r.text
    assert httpx.get(live.url + "/health").status_code == 200


def test_viewer_is_refused_predict_in_the_browser(page, live):
    sign_in(page, live, "viewer")
    page.goto("/models/wdbc")
    assert page.get_by_role("link", name="Predict with this model").count() == 0
    response = page.goto("/models/wdbc/predict")
    assert response.status == 403
    assert "does not allow" in page.get_by_role("alert").inner_text()
    axe_check(page)


def test_run_a_job_and_download_its_result(page, live, wdbc_rows):
    import pandas as pd

    sign_in(page, live, "clinician")
    page.get_by_role("link", name="Jobs").click()
    page.wait_for_url("**/jobs")
    axe_check(page)
    page.get_by_label("Model", exact=True).select_option("wdbc")
    csv = pd.DataFrame(wdbc_rows).to_csv(index=False).encode()
    page.get_by_label("CSV or zip file").set_input_files(
        files=[{"name": "batch.csv", "mimeType": "text/csv", "buffer": csv}])
    page.get_by_role("button", name="Start the job").click()
    page.wait_for_url("**/jobs/*")
    link = page.get_by_role("link", name="Download the results (CSV)")
    link.wait_for(state="visible")  # the page polls the job until it is done
    assert page.locator("[data-job-state]").inner_text() == "done"
    axe_check(page)
    shot(page, live, "job")
    with page.expect_download() as download_info:
        link.click()
    path = download_info.value.path()
    text = Path(path).read_text()
    assert text.count("\n") == len(wdbc_rows) + 1 and "probability" in text.splitlines()[0]


def test_admin_keys_and_verify_the_audit_chain(page, live):
    sign_in(page, live, "admin")
    page.get_by_role("link", name="Keys").click()
    page.get_by_label("Who or what uses it").fill("Ward 5 tablet")
    page.get_by_label("Role").select_option("viewer")
    page.get_by_role("button", name="Create the key").click()
    new_key = page.locator("#new-key").inner_text()
    assert new_key.startswith("medai_")
    axe_check(page)
    page.goto("/admin/keys")
    assert new_key not in page.content()  # shown once
    shot(page, live, "keys")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke the key of Ward 5 tablet").click()
    assert page.get_by_role("status").inner_text().startswith("The key was revoked")
    page.get_by_role("link", name="Audit log").click()
    page.get_by_role("button", name="Verify chain").click()
    assert page.get_by_role("status").inner_text().startswith("The chain is intact")
    page.get_by_label("Action").fill("web_sign_in")
    page.get_by_role("button", name="Filter").click()
    actions = page.locator("tbody tr td:nth-child(5)").all_inner_texts()
    assert actions and set(actions) == {"web_sign_in"}
    page.get_by_label("Action").fill("")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("button", name="Verify chain").click()
    axe_check(page)
    shot(page, live, "audit")


def test_signed_out_and_csrf_less_requests_are_refused(browser, live):
    context = browser.new_context(base_url=live.url)
    try:
        page = context.new_page()
        for path in ("/models", "/models/wdbc/predict", "/jobs", "/admin/audit"):
            page.goto(path)
            assert "/sign-in?next=" in page.url, path
        r = page.request.post("/models/wdbc/predict", form={"f0": "1"}, max_redirects=0)
        assert r.status == 401
        sign_in(page, live, "clinician")
        r = page.request.post("/models/wdbc/predict", form={"f0": "1"}, max_redirects=0)
        assert r.status == 403 and "security token" in r.text()
        page.get_by_role("button", name="Sign out").click()
        r = page.request.get("/jobs", max_redirects=0)
        assert r.status == 303
    finally:
        context.close()
