"""The AutoML report as a person sees it: headless Chromium (Debian's chromium and chromium-driver,
installed by `make test` through scripts/install-browser.sh) opens report.html offline; every
image must decode and the page must log no error."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from byoc import preprocessing
from byoc.artifact import BINARY, REGRESSION
from byoc.automl import job
from support import diabetes_frame, mixed_frame

pytestmark = pytest.mark.slow


def _report(tmp_path: Path, frame: pd.DataFrame, target: str, problem_type: str) -> Path:
    X = frame.drop(columns=[target])
    features = preprocessing.feature_schema(X)
    X = preprocessing.coerce_features(X, features, where="test")
    if problem_type == REGRESSION:
        y, classes = frame[target].to_numpy(dtype=float), None
    else:
        classes = sorted(frame[target].unique().tolist())
        y = np.searchsorted(classes, frame[target].to_numpy())
    settings = job.AutoSettings(max_runtime_seconds=120, max_candidates=2)
    job.run(
        X,
        y,
        problem_type=problem_type,
        features=features,
        classes=classes,
        settings=settings,
        output_dir=tmp_path,
        started=time.monotonic(),
    )
    return tmp_path / "report.html"


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "run `make browser` (scripts/install-browser.sh) to install Chromium"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        yield session
    finally:
        session.quit()


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_every_image_of_the_report_decodes_and_the_page_logs_no_error(kind, browser, tmp_path):
    frame, target, problem_type = (
        (mixed_frame(), "deposit", BINARY) if kind == "binary" else (diabetes_frame(), "target", REGRESSION)
    )
    page = _report(tmp_path, frame, target, problem_type)
    browser.get(page.as_uri())
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]);"
    )
    expected = 5 if kind == "binary" else 4  # curves or scatter plots, importances, score over time
    assert len(images) >= expected, images
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, f"image {alt!r} did not decode"
    assert browser.find_element("css selector", "h1").text == "byoc AutoML report"
    rows = browser.execute_script("return document.querySelectorAll('table tbody tr').length;")
    assert rows >= 2
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []


HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "</style><b>bold</b>",
    '=HYPERLINK("http://example.invalid","click")',
    'a,b"c\nd',
    "\u202eevil\u200b😀",
    "x" * 5000,
]


def test_a_report_of_hostile_names_shows_them_as_text_within_the_window(browser, tmp_path):
    """Column names and class labels are the data's: markup in them stays text (no element, no
    console error), and a 5,000-character name wraps in its cell (and the target's classes) instead
    of making the feature table, and the page, 40,000 pixels wide."""
    from byoc.automl import objective, report

    y = np.array([0, 1, 1, 0, 1, 0])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9], [0.7, 0.3]])
    features = [{"name": n, "type": "numeric", "missing_share": 0.0, "cardinality": 1} for n in HOSTILE]
    exploration = {
        "features": features,
        "warnings": [{"message": f"column '{n}' holds a single value (or none)"} for n in HOSTILE],
        "target": {"classes": {HOSTILE[0]: {"count": 3}, HOSTILE[-1]: {"count": 3}}},
    }
    page = tmp_path / "report.html"
    page.write_text(
        report.render(
            problem_type=BINARY,
            objective=objective.resolve(None, BINARY),
            y=y,
            held_out=proba,
            labels=HOSTILE[:2],
            results=[],
            leaderboard=[],
            exploration=exploration,
            importances={n: 0.1 * i for i, n in enumerate(HOSTILE)},
            summary={"chosen model": HOSTILE[2]},
        ),
        encoding="utf-8",
    )
    browser.set_window_size(1280, 900)
    browser.get(page.as_uri())
    assert browser.execute_script("return document.querySelectorAll('script, b, img[src=x]').length;") == 0
    cells = browser.execute_script(
        "return Array.from(document.querySelectorAll('table tbody tr td:first-child')).map(c => c.textContent);"
    )
    shown = [n.replace("\u202e", "[U+202E]") for n in HOSTILE]  # a bidi control is shown, not obeyed
    assert [c for c in cells if c in shown] == shown
    width = browser.execute_script("return document.documentElement.scrollWidth;")
    assert width <= 1280, f"the page is {width} px wide"
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []
