"""The MLflow UI as a person sees it after two local runs, in a real headless Chromium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # two kfp.local runs, an MLflow server and a browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # Debian's package
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 640}
# where the README's screenshots are refreshed from (make screenshots); else only tmp_path
SCREENSHOTS_ENV = "SEGPIPE_SCREENSHOTS_DIR"


@pytest.fixture(scope="module")
def ui(local_runs, tmp_path_factory):
    """`mlflow server` on 127.0.0.1 over the local runs' store; yields (URL, tracking URI)."""
    from pipelines.local.mlflow_server import MlflowServer

    workdir, uri, _ = local_runs
    log_path = tmp_path_factory.mktemp("mlflow-ui") / "server.log"
    with MlflowServer(uri, log_path, cwd=workdir) as server:
        yield server.uri, uri


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            "needs Debian's chromium package (.ci/run installs it: apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def _page(browser):
    """A new user's page (fresh storage), MLflow's assistant panel closed as one closes it."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(
        "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');"
        "localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
    )
    return context.new_page()


def _row_text(page, run_id: str) -> str:
    """The runs table's row of `run_id`, all its cells (the table splits a row in three)."""
    row = page.get_by_role("row").filter(has=page.locator(f"a[href*='{run_id}']"))
    row.wait_for(timeout=30_000)
    index = row.get_attribute("aria-rowindex")
    return "\n".join(page.locator(f"[role=row][aria-rowindex='{index}']").all_inner_texts())


def _screenshot(page, name: str, tmp_path: Path) -> Path:
    """A small PNG (256-colour palette) of the page, also copied where SCREENSHOTS_ENV says."""
    from PIL import Image

    page.wait_for_timeout(500)  # let the table settle
    raw = tmp_path / f"{name}.raw.png"
    page.screenshot(path=str(raw))
    small = tmp_path / f"{name}.png"
    Image.open(raw).convert("RGB").quantize(colors=256).save(small, optimize=True)
    if os.environ.get(SCREENSHOTS_ENV):
        shutil.copyfile(small, Path(os.environ[SCREENSHOTS_ENV], f"{name}.png"))
    return small


def test_the_mlflow_ui_shows_runs_steps_and_the_champion(ui, browser, tmp_path):
    from mlflow.tracking import MlflowClient

    from components.common.tracking.runs import model_version_link, runs_link

    url, uri = ui
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("segpipe")
    published, refused = client.search_runs(
        [experiment.experiment_id],
        "tags.`segpipe.step` = 'pipeline'",
        order_by=["attributes.start_time ASC"],
    )
    page = _page(browser)

    # the runs page as segpipe links it: model-training mode, a row per pipeline run with its
    # mean IoU and gate decision
    page.goto(runs_link(url, experiment.experiment_id))
    for parent, passed in ((published, "true"), (refused, "false")):
        row = _row_text(page, parent.info.run_id)
        assert parent.info.run_name[:12] in row
        assert str(parent.data.metrics["mean_iou"]) in row  # rounded to 4 places
        assert passed in row
    assert page.get_by_role("columnheader", name="mean_iou", exact=True).first.is_visible()
    assert page.get_by_text("Model training", exact=True).is_visible()
    assert not page.get_by_text("Training runs").count()  # GenAI mode's label
    expand = page.get_by_role("row").filter(has=page.locator(f"a[href*='{refused.info.run_id}']"))
    expand.locator("button[data-component-id*='runnamecellrenderer']").click()  # its steps
    page.get_by_role("link", name="preprocess", exact=True).wait_for(timeout=30_000)
    runs_png = _screenshot(page, "mlflow-runs", tmp_path)

    # the parent run: the steps nested under it, the headline in its description
    page.goto(runs_link(url, experiment.experiment_id, published.info.run_id))
    page.get_by_text("Child runs", exact=True).wait_for(timeout=30_000)
    for step in ("preprocess", "train", "evaluate", "publish"):
        page.get_by_role("link", name=step, exact=True).wait_for(timeout=30_000)
    assert page.get_by_text("Published segpipe-unet version 1 as champion").is_visible()
    run_png = _screenshot(page, "mlflow-run", tmp_path)

    # the registered model: version 1 is the champion, with its signature's schema
    page.goto(model_version_link(url, "segpipe-unet", "1"))
    page.get_by_text("Inputs (1)").wait_for(timeout=30_000)
    alias = page.get_by_text("@ champion").or_(page.get_by_text("champion", exact=True))
    alias.first.wait_for(timeout=30_000)  # the aliases load after the schema
    assert page.get_by_text("Outputs (1)").is_visible()
    assert page.get_by_text("Segmentation model by segpipe.").first.is_visible()  # description
    assert page.get_by_text("Model training", exact=True).is_visible()
    version_png = _screenshot(page, "mlflow-model-version", tmp_path)

    for png in (runs_png, run_png, version_png):
        assert png.stat().st_size < 150_000, png
