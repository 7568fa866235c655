"""The real Dagster webserver on loopback and Debian's headless Chromium, for the UI tests: start/stop, GraphQL,
and waiting until a page has really drawn what it shows (not only the page shell)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.local_celery import free_port, stop_session

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"  # screenshots kept for a human to look at
LOCATION = "motionpipe"  # workspace.yaml's location_name
LOCATION_PATH = f"/locations/__repository__@{LOCATION}"
# Without these, Chromium waits on network services (updates, sync, QUIC probes) that a closed machine never answers.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    """Debian's Chromium; Playwright's own browser download needs internet this machine does not have."""
    path = "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else shutil.which("chromium")
    if path is None:
        pytest.skip("no Chromium: install Debian's `chromium` package (apt-get install chromium) to run this test")
    return path


def log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no webserver log)"


def graphql(base: str, query: str) -> dict:
    req = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = json.load(resp)
    assert "errors" not in body, f"GraphQL errors for {query!r}: {body['errors']}"
    return body["data"]


@contextlib.contextmanager
def running_webserver(dagster_home: str, log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """`dagster-webserver -w workspace.yaml` on a free loopback port over the instance in ``dagster_home``
    (telemetry off); yields its base URL and stops it (and its code server) whatever happens."""
    config = Path(dagster_home, "dagster.yaml")
    if not config.exists() or "telemetry" not in config.read_text():
        config.write_text("telemetry:\n  enabled: false\n")  # the instance must not try to reach the internet
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    exe = Path(sys.executable).with_name("dagster-webserver")
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(exe), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                                cwd=REPO, env={**os.environ, **(env or {}), "DAGSTER_HOME": dagster_home},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dagster-webserver exited with {proc.returncode}:\n{log_tail(log)}")
            try:
                with urllib.request.urlopen(f"{base}/server_info", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dagster-webserver did not answer {base}/server_info within 120 s:\n{log_tail(log)}")
            time.sleep(0.5)
        yield base
    finally:
        stop_session(proc, grace=30)  # the webserver and its code-server child share its session


def wait_location_loaded(base: str) -> dict:
    query = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message stack } } } } } }"""
    deadline = time.monotonic() + 60
    while True:
        workspace = graphql(base, query)["workspaceOrError"]
        assert workspace["__typename"] == "Workspace", workspace
        entries = {e["name"]: e for e in workspace["locationEntries"]}
        assert LOCATION in entries, f"no code location {LOCATION!r} in {sorted(entries)}"
        entry = entries[LOCATION]
        if entry["loadStatus"] == "LOADED" or time.monotonic() > deadline:
            error = entry["locationOrLoadError"]
            assert entry["loadStatus"] == "LOADED" and error["__typename"] == "RepositoryLocation", \
                f"code location {LOCATION!r} failed to load: {error.get('message')}\n{error.get('stack')}"
            return entry
        time.sleep(0.5)


def wait_stable(locator, timeout_s: float = 10) -> dict:
    """The graph zooms to fit after its first paint: wait until the node stops moving before the screenshot."""
    box, deadline = None, time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        locator.page.wait_for_timeout(250)
        new = locator.bounding_box()
        if new is not None and new == box:
            return new
        box = new
    raise AssertionError(f"asset node never settled; last bounding box {box}")


@contextlib.contextmanager
def browser_page(chromium: str, profile: Path, errors: list[str], viewport=(1600, 1000)):
    """A fresh-profile headless Chromium page with Dagster's sign-up dialog dismissed; uncaught page errors are
    appended to ``errors``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(profile), executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": viewport[0], "height": viewport[1]})
        try:
            browser.add_init_script("window.localStorage.setItem('communityNux', '\"1\"')")
            page = browser.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page
        finally:
            browser.close()
