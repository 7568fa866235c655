"""The Dagster webserver serves our code location on loopback, and a real headless browser renders its asset graph.

The GraphQL checks prove the definitions load inside the webserver's own code server; the browser check proves the
UI really draws the graph (not only the page shell). The screenshot is kept in test-artifacts/ for a human to look at.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.dagster_ui import (ARTIFACTS, LOCATION_PATH, browser_page, chromium_path, graphql, running_webserver,
                                  wait_location_loaded, wait_stable)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SCREENSHOT = ARTIFACTS / "dagster-asset-graph.png"
MODELS_SCREENSHOT = ARTIFACTS / "dagster-model-graph.png"
GROUP_PAGE = f"{LOCATION_PATH}/asset-groups/sample"
MODELS_PAGE = f"{LOCATION_PATH}/asset-groups/sample_models"


@pytest.fixture()
def chromium() -> str:
    return chromium_path()


@pytest.fixture()
def webserver(dagster_home, tmp_path) -> Iterator[str]:
    with running_webserver(dagster_home, tmp_path / "webserver.log") as base:
        yield base


def test_webserver_serves_asset_graph_and_browser_renders_it(chromium, webserver, tmp_path):
    from PIL import Image, ImageStat

    wait_location_loaded(webserver)

    nodes = graphql(webserver, "{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    groups = {"/".join(n["assetKey"]["path"]): n["groupName"] for n in nodes}
    for key in ("sample/shards", "sample/manifest"):
        assert groups.get(key) == "sample", f"asset {key} missing from the graph (have {sorted(groups)})"
    # The chain after the data, as the UI draws it: shards → checkpoint → AVD / evaluation → leaderboard.
    deps = {"/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]}
            for n in graphql(webserver, "{ assetNodes { assetKey { path } dependencyKeys { path } } }")["assetNodes"]}
    assert groups["sample/fomm/checkpoint"] == "sample_models" and "sample/shards" in deps["sample/fomm/checkpoint"]
    assert "sample/mraa/checkpoint" in deps["sample/mraa/avd"]
    assert "sample/fomm/checkpoint" in deps["sample/fomm/evaluation"]
    assert {f"{d}/{m}/evaluation" for d in ("sample", "taichi", "ted") for m in ("fomm", "mraa")} <= deps["leaderboard"]

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    page_errors: list[str] = []
    with browser_page(chromium, tmp_path / "chromium-profile", page_errors) as page:
        page.goto(webserver + GROUP_PAGE, wait_until="load", timeout=60_000)
        # Graph nodes are HTML inside the lineage SVG; the page shell has no foreignObject at all.
        graph_node = page.locator("svg foreignObject")
        node = graph_node.filter(has=page.get_by_text("shards", exact=True)).first
        node.wait_for(state="visible", timeout=90_000)
        box = wait_stable(node)
        assert graph_node.filter(has=page.get_by_text("manifest", exact=True)).count() == 1
        assert page.get_by_text("Join the Dagster community").count() == 0, "sign-up dialog covers the graph"
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        MODELS_SCREENSHOT.unlink(missing_ok=True)
        page.goto(webserver + MODELS_PAGE, wait_until="load", timeout=60_000)
        model_nodes = page.locator("svg foreignObject")
        first = model_nodes.filter(has=page.get_by_text("checkpoint", exact=True)).first
        first.wait_for(state="visible", timeout=90_000)
        wait_stable(first)
        assert model_nodes.filter(has=page.get_by_text("evaluation", exact=True)).count() >= 1
        # The node's label is the key's last part; the model's name is on the node as a kind tag.
        assert model_nodes.filter(has=page.get_by_text("mraa", exact=True)).count() >= 1
        page.screenshot(path=str(MODELS_SCREENSHOT), full_page=True)
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
