"""The Dagster webserver serves our code location on loopback, and a real headless browser renders its asset graph.

The GraphQL checks prove the definitions load inside the webserver's own code server; the browser check proves the
UI really draws the graph (not only the page shell). The screenshot is kept in test-artifacts/ for a human to look at.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "test-artifacts" / "dagster-asset-graph.png"
MODELS_SCREENSHOT = REPO / "test-artifacts" / "dagster-model-graph.png"
LOCATION = "motionpipe"  # workspace.yaml's location_name
GROUP_PAGE = f"/locations/__repository__@{LOCATION}/asset-groups/sample"
MODELS_PAGE = f"/locations/__repository__@{LOCATION}/asset-groups/sample_models"
# Without these, Chromium waits on network services (updates, sync, QUIC probes) that a closed machine never answers.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture()
def chromium() -> str:
    """Debian's Chromium; Playwright's own browser download needs internet this machine does not have."""
    path = "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else shutil.which("chromium")
    if path is None:
        pytest.skip("no Chromium: install Debian's `chromium` package (apt-get install chromium) to run this test")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no webserver log)"


def _graphql(base: str, query: str) -> dict:
    req = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = json.load(resp)
    assert "errors" not in body, f"GraphQL errors for {query!r}: {body['errors']}"
    return body["data"]


def _stop(proc: subprocess.Popen) -> None:
    """Ends the webserver and its code-server child: both share the process group started for the webserver."""
    for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture()
def webserver(dagster_home, tmp_path) -> Iterator[str]:
    # No telemetry: the instance must not try to reach the internet.
    Path(dagster_home, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "webserver.log"
    exe = Path(sys.executable).with_name("dagster-webserver")
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(exe), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                                cwd=REPO, env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dagster-webserver exited with {proc.returncode}:\n{_log_tail(log)}")
            try:
                with urllib.request.urlopen(f"{base}/server_info", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dagster-webserver did not answer {base}/server_info within 120 s:\n{_log_tail(log)}")
            time.sleep(0.5)
        yield base
    finally:
        _stop(proc)


def _wait_location_loaded(base: str) -> dict:
    query = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message stack } } } } } }"""
    deadline = time.monotonic() + 60
    while True:
        workspace = _graphql(base, query)["workspaceOrError"]
        assert workspace["__typename"] == "Workspace", workspace
        entries = {e["name"]: e for e in workspace["locationEntries"]}
        assert LOCATION in entries, f"no code location {LOCATION!r} in {sorted(entries)}"
        entry = entries[LOCATION]
        if entry["loadStatus"] == "LOADED" or time.monotonic() > deadline:
            return entry
        time.sleep(0.5)


def _wait_stable(locator, timeout_s: float = 10) -> dict:
    """The graph zooms to fit after its first paint: wait until the node stops moving before the screenshot."""
    box, deadline = None, time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        locator.page.wait_for_timeout(250)
        new = locator.bounding_box()
        if new is not None and new == box:
            return new
        box = new
    raise AssertionError(f"asset node never settled; last bounding box {box}")


def test_webserver_serves_asset_graph_and_browser_renders_it(chromium, webserver, tmp_path):
    from PIL import Image, ImageStat
    from playwright.sync_api import sync_playwright

    entry = _wait_location_loaded(webserver)
    error = entry["locationOrLoadError"]
    assert entry["loadStatus"] == "LOADED" and error["__typename"] == "RepositoryLocation", \
        f"code location {LOCATION!r} failed to load: {error.get('message')}\n{error.get('stack')}"

    nodes = _graphql(webserver, "{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    groups = {"/".join(n["assetKey"]["path"]): n["groupName"] for n in nodes}
    for key in ("sample/shards", "sample/manifest"):
        assert groups.get(key) == "sample", f"asset {key} missing from the graph (have {sorted(groups)})"
    # The chain after the data, as the UI draws it: shards → checkpoint → AVD / evaluation → leaderboard.
    deps = {"/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]}
            for n in _graphql(webserver, "{ assetNodes { assetKey { path } dependencyKeys { path } } }")["assetNodes"]}
    assert groups["sample/fomm/checkpoint"] == "sample_models" and "sample/shards" in deps["sample/fomm/checkpoint"]
    assert "sample/mraa/checkpoint" in deps["sample/mraa/avd"]
    assert "sample/fomm/checkpoint" in deps["sample/fomm/evaluation"]
    assert {f"{d}/{m}/evaluation" for d in ("sample", "taichi", "ted") for m in ("fomm", "mraa")} <= deps["leaderboard"]

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    page_errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # fresh profile: no state from earlier runs
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS, viewport={"width": 1600, "height": 1000})
        try:
            # Dismiss the community sign-up dialog up front: it would cover the graph.
            browser.add_init_script("window.localStorage.setItem('communityNux', '\"1\"')")
            page = browser.new_page()
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            page.goto(webserver + GROUP_PAGE, wait_until="load", timeout=60_000)
            # Graph nodes are HTML inside the lineage SVG; the page shell has no foreignObject at all.
            graph_node = page.locator("svg foreignObject")
            node = graph_node.filter(has=page.get_by_text("shards", exact=True)).first
            node.wait_for(state="visible", timeout=90_000)
            box = _wait_stable(node)
            assert graph_node.filter(has=page.get_by_text("manifest", exact=True)).count() == 1
            assert page.get_by_text("Join the Dagster community").count() == 0, "sign-up dialog covers the graph"
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            MODELS_SCREENSHOT.unlink(missing_ok=True)
            page.goto(webserver + MODELS_PAGE, wait_until="load", timeout=60_000)
            model_nodes = page.locator("svg foreignObject")
            first = model_nodes.filter(has=page.get_by_text("checkpoint", exact=True)).first
            first.wait_for(state="visible", timeout=90_000)
            _wait_stable(first)
            assert model_nodes.filter(has=page.get_by_text("evaluation", exact=True)).count() >= 1
            # The node's label is the key's last part; the model's name is on the node as a kind tag.
            assert model_nodes.filter(has=page.get_by_text("mraa", exact=True)).count() >= 1
            page.screenshot(path=str(MODELS_SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert not page_errors, f"uncaught errors in the Dagster UI: {page_errors}"

    assert SCREENSHOT.stat().st_size > 20_000, f"{SCREENSHOT} is suspiciously small"
    with Image.open(SCREENSHOT) as img:
        assert img.width >= 1600 and img.height >= 1000, img.size
        full = ImageStat.Stat(img.convert("L"))
        node_pixels = ImageStat.Stat(img.convert("L").crop(
            (int(box["x"]), int(box["y"]), int(box["x"] + box["width"]), int(box["y"] + box["height"]))))
    assert full.stddev[0] > 10, f"{SCREENSHOT} is a near-blank single colour (stddev {full.stddev[0]:.1f})"
    assert node_pixels.stddev[0] > 5, "the shards node area of the screenshot is blank"
    assert MODELS_SCREENSHOT.stat().st_size > 20_000, f"{MODELS_SCREENSHOT} is suspiciously small"
