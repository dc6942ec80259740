"""The companion page (``GET /``) and the API documentation (``GET /docs``): their HTML and
assets through the test client, then a real Chromium on a real Gunicorn serving two model
versions, at a phone's and a desktop's window size, every feature driven end to end."""

from __future__ import annotations

import csv
import functools
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import programs
import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from app.config import DEFAULT_MODEL_DIR, PROJECT_ROOT
from app.serving.confidence import confidence_bands
from app.serving.preprocessing import RATING_TOKENS, tokenize
from app.serving.texts import NOT_BLANK_PATTERN
from app.web.page import EXAMPLES, MAX_FILE_ROWS
from deploy.dyno import WebProcess

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = PROJECT_ROOT / "reports" / "screenshots"  # reports/ is git-ignored
VIEWPORTS = {"phone": (375, 700), "desktop": (1280, 800)}
# The controls that tests outside the project drive the page by.
TEST_IDS = [
    "review-input",
    "classify-button",
    "result-label",
    "explain-view",
    "batch-input",
    "batch-file",
    "batch-results",
    "batch-download",
    "version-compare",
]
POSITIVE = "The crew was friendly, the seats were comfortable and we landed early. Thank you!"
NEGATIVE = "Three hours late, lost my bag and nobody at the desk would help. Never again."
PASTED = [
    "Lost my bag again. Never flying with them.",
    "Flight 2214 boards at gate B12.",
    "Lovely crew, thank you!",
    "Two hours on the tarmac and no food.",
]
# Batches of this size make a 10,000-line file take over a thousand requests: time to cancel.
SMALL_BATCH = 8
SHOWN_ROWS = 1000  # batch.js MAX_SHOWN
PROBABILITIES = ["p_negative", "p_neutral", "p_positive"]  # the download's, in class order
# WCAG 2.1 AA: normal text needs a contrast ratio of at least 4.5:1.
MIN_CONTRAST = 4.5
TEXT_SELECTORS = [
    "h1",
    "h2",
    ".model",
    "label",
    ".hint",
    "button",
    ".error p",
    ".summary",
    "#label",
    ".name",
    ".value",
    ".token",
    ".drivers-list li",
    ".results td",
    ".site-footer a",
]


# --- The pages and their assets, through the test client ----------------------------------


def test_page_has_every_control_with_its_test_id_and_a_label(client, app):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    bundle = app.extensions["models"].registry.stable.bundle
    for test_id in set(TEST_IDS) - {"result-label", "version-compare"}:  # drawn by the script
        assert html.count(f'data-testid="{test_id}"') == 1, test_id
    # The compare view is there when several versions are loaded (the shipped 1 and 2).
    several = len(app.extensions["models"].registry.versions) > 1
    assert ('data-testid="version-compare"' in html) == several
    for control in ("review", "batch-text", "batch-file", "batch-filter", "batch-label-filter"):
        assert f'<label for="{control}">' in html, control
    assert 'role="alert"' in html and 'aria-live="polite"' in html
    assert '<a href="/docs">' in html
    assert f'<strong id="model-name">{bundle.name}</strong>' in html
    assert f'<strong id="model-version">{bundle.version}</strong>' in html


def page_config_of(client) -> dict:
    """The JSON the page's scripts read, from ``GET /``."""
    html = client.get("/").get_data(as_text=True)
    return json.loads(
        re.search(r'<script type="application/json" id="page-config">(.*?)</script>', html, re.S)
        .group(1)
        .replace("&#39;", "'")
    )


def test_page_config_has_the_versions_their_bands_and_the_examples(client, app):
    config = page_config_of(client)
    registry = app.extensions["models"].registry
    assert config["versions"] == [
        {
            "version": version,
            "labels": registry.labels_of(version),
            "classes": predictor.bundle.classes,
            "bands": confidence_bands(predictor.bundle.metadata).to_dict(),
        }
        for version, predictor in registry.versions.items()
    ]
    assert config["urls"] == {
        "classify": "/classify",
        "explain": "/explain",
        "model": "/model",
        "feedback": "/feedback",
    }
    assert [example["text"] for example in config["examples"]] == [e.text for e in EXAMPLES]
    assert config["notBlankPattern"] == NOT_BLANK_PATTERN  # the API's rule, not trim()
    assert {example.kind for example in EXAMPLES} == {"best", "limits"}


def test_the_negation_example_s_note_says_what_the_versions_do(client):
    """The note said 'bad' pulled version 1 toward negative, under a "Why" that showed
    'bad' pushing away from it and 'not' toward it (an outside probe)."""
    (example,) = [e for e in EXAMPLES if e.text == "Not bad at all, actually."]
    assert "reads 'not' as a complaint word" in example.note

    def pushes(version: str) -> dict[str, float]:
        answer = client.post(f"/explain?version={version}", json={"review": example.text})
        tokens = answer.get_json()["tokens"]
        return {token["token"]: token["contributions"]["negative"] for token in tokens}

    first = pushes("1")
    assert max(first, key=first.get) == "not" and first["bad"] < 0
    second = pushes("2")
    assert second["not_bad"] < 0 and "bad" not in second  # read as one


def test_page_offers_no_feedback_when_answers_are_not_recorded(make_app):
    config = page_config_of(make_app(RECORD_PREDICTIONS=False).test_client())
    assert config["urls"]["feedback"] is None


STATIC = [
    "/static/style.css",
    "/static/docs.css",
    "/static/docs.js",
    *(f"/static/page/{name}.js" for name in ("main", "api", "format", "single", "batch", "csv")),
]


@pytest.mark.parametrize("path", STATIC)
def test_static_files_have_a_content_type_that_nosniff_accepts(client, path):
    response = client.get(path)
    assert response.status_code == 200
    allowed = (
        {"text/css"} if path.endswith(".css") else {"text/javascript", "application/javascript"}
    )
    assert response.mimetype in allowed
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    response.close()


@pytest.mark.parametrize("path", ["/", "/docs"])
def test_pages_allow_only_this_server_s_files_and_no_framing(client, path):
    response = client.get(path)
    policy = dict(
        directive.split(" ", 1)
        for directive in response.headers["Content-Security-Policy"].split("; ")
    )
    assert policy["script-src"] == policy["style-src"] == policy["default-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "<script>" not in response.get_data(as_text=True)  # no inline script to allow
    assert ' style="' not in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/model", "/openapi.json", "/static/style.css"])
def test_api_answers_and_files_carry_no_page_policy(client, path):
    response = client.get(path)
    response.close()
    assert response.status_code == 200
    assert "Content-Security-Policy" not in response.headers
    assert "X-Frame-Options" not in response.headers


@pytest.mark.parametrize("path", ["/", "/docs", *STATIC])
def test_pages_load_nothing_from_other_hosts(client, path):
    response = client.get(path)
    text = response.get_data(as_text=True)
    response.close()
    # No absolute or protocol-relative URL, no web font, no CSS import.
    assert not re.search(r"https?://|[\"'(]//\w|@import|@font-face", text), path


# --- A real browser on a real server ------------------------------------------------------


@pytest.fixture(scope="module")
def server(two_versions, tmp_path_factory) -> Iterator[WebProcess]:
    """Gunicorn serving versions 1 (stable) and 2 (canary), small batches."""
    process = WebProcess(
        {
            "WEB_CONCURRENCY": "1",
            "MODEL_BASE_DIR": str(two_versions),
            "MODEL_LABELS": "stable=1,canary=2",
            "MAX_BATCH_SIZE": str(SMALL_BATCH),
        },
        log_path=tmp_path_factory.mktemp("server") / "server.log",
    )
    try:
        process.wait_ready("/ready")
        yield process
    finally:
        process.stop()


@pytest.fixture
def browser(tmp_path) -> Iterator[webdriver.Chrome]:
    """Headless Chromium with a fresh profile, driven by Debian's chromedriver; downloads
    go to ``tmp_path / "downloads"``."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        programs.missing(
            f"no {' or '.join(missing)}: install Debian's chromium and chromium-driver "
            "(apt-get install chromium chromium-driver) to run the browser test"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Both paths given: Selenium never runs its manager (which would try to download).
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "driver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_script_timeout(10)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def set_viewport(driver: webdriver.Chrome, width: int, height: int) -> None:
    """Exactly ``width`` × ``height`` CSS pixels; a phone also gets mobile emulation."""
    driver.set_window_size(width, height)
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def screenshot(driver: webdriver.Chrome, name: str) -> None:
    """The whole page (up to 6,000 px), not only the window (its size is restored after)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    width, height = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    # Capped: a table of 10,000 rows would make a picture Chromium cannot render in time.
    full = min(6000, driver.execute_script("return document.documentElement.scrollHeight"))
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": full, "deviceScaleFactor": 1, "mobile": width < 600},
    )
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    set_viewport(driver, width, height)


def wait_for(driver: webdriver.Chrome, condition, message: str, timeout: float = 10):
    """``condition()``'s first truthy value; the page replaces result elements as it
    renders, so an element that went stale mid-check is simply checked again."""
    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException]
    )
    try:
        return wait.until(lambda _: condition())
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {message}") from None


def by_test_id(driver: webdriver.Chrome, test_id: str):
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{test_id}"]')


def bars(driver: webdriver.Chrome, selector: str = "#scores") -> list[dict]:
    """Each class's bar as drawn: class name, filled fraction of its track, its text."""
    return driver.execute_script(
        """
        return [...document.querySelectorAll(arguments[0] + " .score")].map((item) => ({
          name: item.dataset.class,
          fraction: item.querySelector(".fill").getBoundingClientRect().width
            / item.querySelector(".bar").getBoundingClientRect().width,
          text: item.querySelector(".value").textContent,
        }));
        """,
        selector,
    )


def assert_bars_match(driver, scores: dict[str, float], selector: str = "#scores") -> None:
    """One bar per class, in the API's order, as wide as its probability (after the
    width transition ends)."""

    def drawn() -> bool:
        current = bars(driver, selector)
        return [bar["name"] for bar in current] == list(scores) and all(
            abs(bar["fraction"] - scores[bar["name"]]) < 0.01 for bar in current
        )

    wait_for(driver, drawn, f"bars matching {scores}, got {bars(driver, selector)}")
    texts = [bar["text"] for bar in bars(driver, selector)]
    assert texts == [shown_percent(p) for p in scores.values()]


def shown_percent(p: float) -> str:
    """A probability as the page shows it: one decimal, never 100% when below 1."""
    text = f"{p * 100:.1f}"
    return ">99.9%" if p < 1 and text == "100.0" else f"{text}%"


def assert_fits_the_window(driver: webdriver.Chrome, width: int) -> None:
    layout = driver.execute_script(
        """
        const root = document.documentElement;
        const out = [...document.querySelectorAll("body *")]
          .filter((el) => el.getClientRects().length)
          .filter((el) => !el.closest("[data-scrolls]"))
          .map((el) => [el.tagName + "#" + el.id + "." + el.className,
                        el.getBoundingClientRect().right])
          .filter(([, right]) => right > window.innerWidth + 0.5);
        return {inner: window.innerWidth, scroll: root.scrollWidth, client: root.clientWidth,
                out: out.slice(0, 5)};
        """
    )
    assert layout["inner"] == width
    assert layout["scroll"] <= layout["client"], f"horizontal scroll: {layout}"
    assert layout["out"] == [], f"elements stick out: {layout}"


def contrast_problems(driver: webdriver.Chrome) -> list[str]:
    """Visible text whose colour on its effective background is below ``MIN_CONTRAST``."""
    found = driver.execute_script(
        """
        const rgb = (css) => {
          const numbers = css.match(/[\\d.]+/g).map(Number);
          // color-mix() computes to color(srgb r g b [/ a]) with channels from 0 to 1.
          if (css.startsWith("color(srgb")) {
            return numbers.map((n, i) => (i < 3 ? n * 255 : n));
          }
          return numbers;
        };
        const background = (el) => {
          for (; el; el = el.parentElement) {
            const c = rgb(getComputedStyle(el).backgroundColor);
            if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
          }
          return [255, 255, 255];
        };
        return arguments[0].flatMap((selector) =>
          [...document.querySelectorAll(selector)]
            .filter((el) => el.getClientRects().length && el.textContent.trim())
            .map((el) => ({selector, text: el.textContent.trim().slice(0, 30),
                           color: rgb(getComputedStyle(el).color).slice(0, 3),
                           background: background(el)})));
        """,
        TEXT_SELECTORS,
    )
    assert len(found) >= 8, found  # the check saw the page's texts

    def luminance(color: list[float]) -> float:
        channels = [c / 255 for c in color]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    problems = []
    for item in found:
        light, dark = sorted((luminance(item["color"]), luminance(item["background"])))[::-1]
        ratio = (light + 0.05) / (dark + 0.05)
        if ratio < MIN_CONTRAST:
            problems.append(f"{item['selector']} {item['text']!r}: {ratio:.2f}:1")
    return problems


def error_text(driver: webdriver.Chrome, element_id: str) -> str:
    alert = driver.find_element(By.ID, element_id)
    wait_for(driver, alert.is_displayed, f"the alert #{element_id}")
    assert alert.get_attribute("role") == "alert"
    return alert.text


def api(server: WebProcess, path: str, body: dict) -> dict:
    response = requests.post(server.url + path, json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def open_page(driver: webdriver.Chrome, server: WebProcess, width: int, height: int) -> None:
    set_viewport(driver, width, height)
    driver.get(server.url + "/")
    wait_for(
        driver,
        lambda: driver.execute_script("return document.documentElement.dataset.ready"),
        "the page's script",
    )


def classify_in_page(driver: webdriver.Chrome, text: str) -> None:
    review = by_test_id(driver, "review-input")
    review.clear()
    review.send_keys(text)
    by_test_id(driver, "classify-button").click()


def wait_for_label(driver: webdriver.Chrome, label: str, timeout: float = 10) -> None:
    def shown() -> bool:
        found = driver.find_elements(By.CSS_SELECTOR, '[data-testid="result-label"]')
        return bool(found) and found[0].is_displayed() and found[0].text.lower() == label

    wait_for(driver, shown, f"the label {label!r}", timeout)


def wait_for_explanation(driver: webdriver.Chrome, review: str) -> list[dict]:
    """The Why view's tokens once the explanation for ``review`` is drawn."""
    placeholders = {"xxnum": "[number]", "xxurl": "[link]", "xxuser": "[@user]"}
    expected = [placeholders.get(token, token) for token in tokenize(review)]

    def tokens():
        found = driver.execute_script(
            """
            return [...document.querySelectorAll("#explain-tokens .token")].map((el) => ({
              text: el.textContent, push: Number(el.dataset.push), kind: el.className,
              weight: Number(getComputedStyle(el).getPropertyValue("--w"))}));
            """
        )
        return found if [token["text"] for token in found] == expected else None

    return wait_for(driver, tokens, f"the explanation of {review!r}")


@pytest.mark.slow
@pytest.mark.parametrize("device", VIEWPORTS)
def test_one_review_why_examples_and_errors(server, browser, device):
    width, height = VIEWPORTS[device]
    info = requests.get(server.url + "/model", timeout=5).json()
    bands = confidence_bands(json.loads((DEFAULT_MODEL_DIR / "metadata.json").read_text()))
    open_page(browser, server, width, height)
    assert browser.title == "Sentiment classifier"
    assert browser.find_element(By.ID, "model-name").text == info["name"]
    assert browser.find_element(By.ID, "model-version").text == info["version"]
    # The inputs show at once; the outputs (label, why, table, download) once there are results.
    for test_id in ("review-input", "classify-button", "batch-input", "batch-file"):
        assert by_test_id(browser, test_id).is_displayed(), test_id
    assert by_test_id(browser, "version-compare").is_displayed()  # two versions loaded
    assert_fits_the_window(browser, width)
    screenshot(browser, f"{device}-empty")

    # One review: label, bars, how sure in the page's words, who answered, why.
    for review in (POSITIVE, NEGATIVE):
        expected = api(server, "/classify", {"review": review})
        explanation = api(server, "/explain?version=1", {"review": review})
        classify_in_page(browser, review)
        wait_for_label(browser, expected["label"])
        assert_bars_match(browser, expected["scores"])
        words = bands.words(list(expected["scores"].values()))
        assert browser.find_element(By.ID, "sure").text == words
        assert "version 1 (stable)" in browser.find_element(By.ID, "answered-by").text
        tokens = wait_for_explanation(browser, review)
        pushes = [t["contributions"][expected["label"]] for t in explanation["tokens"]]
        assert [t["push"] for t in tokens] == pytest.approx(pushes, abs=1e-6)
        for token in tokens:  # colour by direction, strength by weight
            if token["push"] >= 0.0005:
                assert "token-for" in token["kind"]
            elif token["push"] <= -0.0005:
                assert "token-against" in token["kind"]
        # Strength relative to the biggest push, or to 2 points when every push is smaller.
        scale = max(0.02, *(abs(token["push"]) for token in tokens))
        for token in tokens:
            assert token["weight"] == pytest.approx(abs(token["push"]) / scale, abs=1e-3)
        top_word = max(explanation["tokens"], key=lambda t: t["contributions"][expected["label"]])
        if top_word["contributions"][expected["label"]] >= 0.0005:
            first = browser.find_element(By.CSS_SELECTOR, "#drivers-for li .driver-token")
            assert first.text == top_word["token"]
        saturated = browser.find_element(By.ID, "explain-saturated").is_displayed()
        assert saturated == (scale <= 0.02)
    assert by_test_id(browser, "explain-view").is_displayed()

    # The true label, sent back right after the answer: stored with it, counted in /monitoring.
    def feedback_on_version_1() -> int:
        report = requests.get(server.url + "/monitoring", timeout=5).json()
        return next(v["feedback"] for v in report["versions"] if v["version"] == "1")

    before = feedback_on_version_1()
    truth = "positive" if expected["label"] != "positive" else "neutral"
    by_test_id(browser, f"feedback-{truth}").click()
    feedback_status = browser.find_element(By.ID, "feedback-status")
    wait_for(browser, lambda: feedback_status.text.startswith("Recorded"), "the feedback's answer")
    assert feedback_status.text == (
        f"Recorded: {truth}. The model said {expected['label']}: it counts as wrong for version 1."
    )
    assert feedback_on_version_1() == before + 1
    assert not by_test_id(browser, "feedback-negative").is_enabled()  # once per answer
    assert_fits_the_window(browser, width)
    assert contrast_problems(browser) == []
    screenshot(browser, f"{device}-one-review")

    # The legend's samples show a strong push (from the style sheet: no inline styles).
    samples = browser.find_elements(By.CSS_SELECTOR, ".legend .token")
    assert len(samples) == 2
    for sample in samples:
        weight = browser.execute_script(
            "return getComputedStyle(arguments[0]).getPropertyValue('--w')", sample
        )
        assert float(weight) == 0.8

    # Another class: the view re-colours toward it.
    Select(browser.find_element(By.ID, "explain-class")).select_by_value("positive")
    assert "toward positive" in browser.find_element(By.ID, "drivers-for-heading").text

    # An example at the model's limits: the text, the answer, and what a person would say.
    limit = next(example for example in EXAMPLES if example.kind == "limits")
    button = browser.find_element(By.XPATH, f'//button[@data-text="{limit.text}"]')
    button.click()
    expected = api(server, "/classify", {"review": limit.text})
    note = browser.find_element(By.ID, "example-note")
    wait_for(browser, note.is_displayed, "the example's note")
    assert by_test_id(browser, "review-input").get_attribute("value") == limit.text
    assert f"A person would say {limit.expected}" in note.text
    assert ("agrees" in note.text) == (expected["label"] == limit.expected)
    # Got right, a hard case's note says it is hard for some versions, not why it failed.
    assert ("A hard case for some versions." in note.text) == ("agrees" in note.text)
    wait_for_label(browser, expected["label"])

    # Errors in plain words, the API's own words only as the detail.
    classify_in_page(browser, "   ")
    assert error_text(browser, "error") == "Type a review first."
    assert by_test_id(browser, "review-input").get_attribute("aria-invalid") == "true"
    assert not browser.find_element(By.ID, "result").is_displayed()
    browser.execute_script(
        "document.getElementById('review').value = 'a'.repeat(arguments[0])",
        info["limits"]["max_text_chars"] + 1,
    )
    by_test_id(browser, "classify-button").click()
    assert "characters long; the limit is 5,000" in error_text(browser, "error")
    assert_fits_the_window(browser, width)
    assert contrast_problems(browser) == []
    screenshot(browser, f"{device}-error")
    assert severe_browser_errors(browser) == []


@pytest.mark.slow
@pytest.mark.parametrize("device", VIEWPORTS)
def test_versions_answer_and_compare_side_by_side(server, browser, device):
    width, height = VIEWPORTS[device]
    open_page(browser, server, width, height)
    # Pin version 2 for everything: it answers, and says so.
    Select(browser.find_element(By.ID, "version")).select_by_value("2")
    classify_in_page(browser, POSITIVE)
    wait_for(
        browser,
        lambda: "version 2 (canary)" in browser.find_element(By.ID, "answered-by").text,
        "version 2's answer",
    )
    wait_for_explanation(browser, POSITIVE)

    compare = by_test_id(browser, "version-compare")
    Select(compare.find_element(By.ID, "compare-a")).select_by_value("1")
    Select(compare.find_element(By.ID, "compare-b")).select_by_value("2")
    compare.find_element(By.ID, "compare-button").click()
    columns = wait_for(
        browser,
        lambda: (
            len(found := compare.find_elements(By.CSS_SELECTOR, ".compare-column")) == 2 and found
        ),
        "two columns",
    )
    assert [column.get_attribute("data-version") for column in columns] == ["1", "2"]
    for column, version in zip(columns, ("1", "2"), strict=True):
        expected = api(server, f"/classify?version={version}", {"review": POSITIVE})
        assert column.find_element(By.CSS_SELECTOR, ".label").text.lower() == expected["label"]
        selector = f'.compare-column[data-version="{version}"] .scores'
        assert_bars_match(browser, expected["scores"], selector)
    # Side by side: the two columns share a row at both sizes.
    tops = [round(column.rect["y"]) for column in columns]
    assert tops[0] == tops[1]
    assert "Both say" in compare.find_element(By.ID, "compare-summary").text
    assert_fits_the_window(browser, width)
    assert contrast_problems(browser) == []
    browser.execute_script("arguments[0].scrollIntoView()", compare)
    screenshot(browser, f"{device}-compare")

    # With no text, a plain message.
    by_test_id(browser, "review-input").clear()
    compare.find_element(By.ID, "compare-button").click()
    assert error_text(browser, "compare-error") == "Type a review first."
    assert severe_browser_errors(browser) == []


def batch_rows(driver: webdriver.Chrome) -> list[dict]:
    """The results table, in display order."""
    return driver.execute_script(
        """
        return [...document.querySelectorAll('[data-testid="batch-results"] tbody tr')]
          .map((tr) => ({index: Number(tr.cells[0].textContent),
                         text: tr.cells[1].textContent,
                         label: tr.dataset.label || null,
                         cell: tr.cells[2].textContent.trim(),
                         score: tr.cells[3].textContent,
                         hidden: tr.hidden}));
        """
    )


def wait_for_batch(driver: webdriver.Chrome, timeout: float = 30) -> str:
    status = driver.find_element(By.ID, "batch-status")
    wait_for(driver, lambda: status.text.endswith("."), "the batch to finish", timeout)
    return status.text


def downloaded(driver: webdriver.Chrome, name: str) -> list[dict]:
    path = driver.downloads / name
    wait_for(driver, lambda: path.is_file() and path.stat().st_size > 0, f"the download {name}")
    time.sleep(0.2)  # the file is renamed into place when complete
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


@pytest.mark.slow
@pytest.mark.parametrize("device", VIEWPORTS)
def test_many_reviews_paste_file_table_download_and_cancel(server, browser, device, tmp_path):
    width, height = VIEWPORTS[device]
    open_page(browser, server, width, height)
    expected = api(server, "/classify", {"reviews": PASTED})["predictions"]

    # Paste: one review per line; blank lines skipped, a too-long line reported in its row.
    too_long = "x" * 5001
    box = by_test_id(browser, "batch-input")
    box.send_keys("\n".join([*PASTED[:2], "", *PASTED[2:]]) + "\n")
    browser.execute_script("arguments[0].value += arguments[1]", box, too_long)
    browser.find_element(By.ID, "batch-score").click()
    status = wait_for_batch(browser)
    assert status.startswith("4 of 5 reviews scored by version 1 (stable)")
    rows = batch_rows(browser)
    assert len(rows) == 5  # one row per input
    assert [row["label"] for row in rows[:4]] == [p["label"] for p in expected]
    assert [row["score"] for row in rows[:4]] == [shown_percent(p["score"]) for p in expected]
    assert "Too long: 5,001 characters (the limit is 5,000)" in rows[4]["cell"]
    summary = {
        item.get_attribute("data-class"): int(item.get_attribute("data-count"))
        for item in browser.find_elements(By.CSS_SELECTOR, "#batch-summary .score")
    }
    labels = [p["label"] for p in expected]
    assert summary == {name: labels.count(name) for name in ("negative", "neutral", "positive")}
    # Sort by score, highest first; filter by label and by text.
    browser.find_element(By.CSS_SELECTOR, 'button[data-sort="score"]').click()
    scores = [p["score"] for p in expected]
    order = sorted(range(4), key=lambda i: -scores[i])
    assert [row["index"] for row in batch_rows(browser)][:4] == [i + 1 for i in order]
    header = browser.find_element(By.CSS_SELECTOR, "th.col-score")
    assert header.get_attribute("aria-sort") == "descending"
    Select(browser.find_element(By.ID, "batch-label-filter")).select_by_value(labels[0])
    visible = [row for row in batch_rows(browser) if not row["hidden"]]
    assert {row["label"] for row in visible} == {labels[0]}
    assert len(visible) == labels.count(labels[0])
    Select(browser.find_element(By.ID, "batch-label-filter")).select_by_value("")
    browser.find_element(By.ID, "batch-filter").send_keys("tarmac")
    assert [row["index"] for row in batch_rows(browser) if not row["hidden"]] == [4]
    assert_fits_the_window(browser, width)
    assert contrast_problems(browser) == []
    browser.execute_script("document.getElementById('batch').scrollIntoView()")
    screenshot(browser, f"{device}-batch")
    # Download: every input in input order, the same columns as python -m app.batch.
    by_test_id(browser, "batch-download").click()
    table = downloaded(browser, "reviews-scored.csv")
    assert [row["text"] for row in table] == [*PASTED, too_long]
    assert [row["label"] for row in table] == [*labels, ""]
    for row, prediction in zip(table, expected, strict=False):
        assert float(row["score"]) == pytest.approx(prediction["score"], abs=1e-6)
        assert float(row["p_positive"]) == pytest.approx(prediction["scores"]["positive"], abs=1e-6)
    assert table[4]["error"].startswith("Too long")

    # A CSV file: quoted commas, quotes and line breaks; its other columns kept.
    texts = [
        f'Review {i}: "late", again,\nand rude.' if i % 3 else PASTED[i % 4] for i in range(20)
    ]
    reviews = tmp_path / "airline.csv"
    with reviews.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "text"])
        writer.writerows([f"r{i}", text] for i, text in enumerate(texts))
    by_test_id(browser, "batch-file").send_keys(str(reviews))
    wait_for(browser, lambda: len(batch_rows(browser)) == 20, "20 rows")
    assert wait_for_batch(browser).startswith("20 of 20 reviews scored")
    answers = api(server, "/classify", {"reviews": texts[:8]})["predictions"]
    assert [row["label"] for row in batch_rows(browser)[:8]] == [a["label"] for a in answers]
    by_test_id(browser, "batch-download").click()
    table = downloaded(browser, "airline-scored.csv")
    assert [row["id"] for row in table] == [f"r{i}" for i in range(20)]
    assert [row["text"] for row in table] == texts

    # A spreadsheet's export with semicolons (the comma is its decimal mark), a TSV, and a
    # TSV in UTF-16 with its byte-order mark (as Excel's "Unicode Text" export is: the
    # browser's File.text() reads it by that mark).
    # (Each with a row count of its own, so that each wait sees its own file's rows.)
    exports = [("semicolons.csv", ";", 4, "utf-8"), ("tabs.tsv", "\t", 2, "utf-8")]
    for name, separator, count, encoding in [*exports, ("unicode.tsv", "\t", 3, "utf-16")]:
        exported = tmp_path / name
        with exported.open("w", newline="", encoding=encoding) as file:
            writer = csv.writer(file, delimiter=separator)
            writer.writerow(["Stars", "Review"])
            writer.writerows([f"{i},5", text] for i, text in enumerate(PASTED[:count]))
        by_test_id(browser, "batch-file").send_keys(str(exported))
        wait_for(browser, lambda n=count: len(batch_rows(browser)) == n, f"the rows of {name}")
        assert wait_for_batch(browser).startswith(f"{count} of {count} reviews scored")
        assert [row["label"] for row in batch_rows(browser)] == labels[:count]
        assert [row["text"] for row in batch_rows(browser)] == PASTED[:count]

    # A file dropped on the drop zone is read like a chosen one.
    browser.execute_script(
        """
        const transfer = new DataTransfer();
        transfer.items.add(new File([arguments[0]], "dropped.txt", {type: "text/plain"}));
        const zone = document.getElementById("drop-zone");
        zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true}));
        zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        """,
        "\n".join(PASTED[:3]),
    )
    wait_for(browser, lambda: len(batch_rows(browser)) == 3, "3 dropped rows")
    assert wait_for_batch(browser).startswith("3 of 3 reviews scored")
    assert [row["label"] for row in batch_rows(browser)] == labels[:3]

    # Files the page cannot use: plain words, naming the problem.
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id,body\n1,great\n")
    by_test_id(browser, "batch-file").send_keys(str(wrong))
    message = error_text(browser, "batch-error")
    assert message.startswith("That file has no `text` column") and "id, body" in message
    lines = tmp_path / "reviews.jsonl"
    lines.write_text('{"text": "great crew"}\n{"text": oops}\n{"id": 3}\n{"text": "lost my bag"}\n')
    by_test_id(browser, "batch-file").send_keys(str(lines))
    wait_for(browser, lambda: len(batch_rows(browser)) == 4, "4 rows")
    assert wait_for_batch(browser).startswith("2 of 4 reviews scored")
    cells = [row["cell"] for row in batch_rows(browser)]
    assert "Line 2 is not valid JSON." in cells[1] and 'Line 3 has no "text" field.' in cells[2]

    # A big file goes in batches of MAX_BATCH_SIZE, with progress, and can be cancelled.
    big = tmp_path / "big.txt"
    big.write_text("\n".join(f"{PASTED[i % 4]} #{i}" for i in range(MAX_FILE_ROWS)))
    by_test_id(browser, "batch-file").send_keys(str(big))
    progress = browser.find_element(By.ID, "batch-progress")
    wait_for(browser, lambda: int(progress.get_attribute("value")) >= 5 * SMALL_BATCH, "progress")
    assert int(progress.get_attribute("max")) == MAX_FILE_ROWS
    assert int(progress.get_attribute("value")) % SMALL_BATCH == 0  # whole batches
    screenshot(browser, f"{device}-batch-progress")
    browser.find_element(By.ID, "batch-cancel").click()
    status = wait_for_batch(browser)
    scored = int(status.split(" of ")[0].replace(",", ""))
    assert 0 < scored < MAX_FILE_ROWS and "cancelled before the end" in status
    # The table shows the first 1,000 rows in the chosen order; the download has them all.
    assert len(batch_rows(browser)) == SHOWN_ROWS
    assert (
        f"the table shows the first {SHOWN_ROWS:,}"
        in browser.find_element(By.ID, "batch-shown").text
    )
    by_test_id(browser, "batch-download").click()
    table = downloaded(browser, "big-scored.csv")
    assert len(table) == MAX_FILE_ROWS
    assert sum(bool(row["label"]) for row in table) == scored
    assert table[-1]["error"] == "Not scored: cancelled."
    assert not browser.find_element(By.ID, "batch-cancel").is_displayed()
    assert_fits_the_window(browser, width)
    assert severe_browser_errors(browser) == []


# --- The page checks a text as the server does ------------------------------------------


def put_review(driver: webdriver.Chrome, text: str) -> None:
    """``text`` in the review box as if pasted (send_keys cannot type an emoji)."""
    driver.execute_script("document.getElementById('review').value = arguments[0]", text)


def score_file_in_page(driver: webdriver.Chrome, path, rows: int) -> str:
    """Choose ``path`` in the batch form; the status once its ``rows`` rows are scored."""
    by_test_id(driver, "batch-file").send_keys(str(path))
    wait_for(driver, lambda: len(batch_rows(driver)) == rows, f"{rows} rows of {path.name}")
    return wait_for_batch(driver)


@pytest.mark.slow
def test_the_page_counts_characters_as_the_server_does(server, browser, tmp_path):
    """The server counts code points (Python's len); an emoji is one, not two."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    emoji = "\N{GRINNING FACE}" * 3000  # 6,000 UTF-16 units, 3,000 characters
    put_review(browser, emoji)
    by_test_id(browser, "classify-button").click()
    wait_for_label(browser, api(server, "/classify", {"review": emoji})["label"])
    put_review(browser, "\N{GRINNING FACE}" * 5001)
    by_test_id(browser, "classify-button").click()
    assert error_text(browser, "error").startswith(
        "That review is 5,001 characters long; the limit is 5,000."
    )
    reviews = tmp_path / "emoji.jsonl"
    reviews.write_text(
        "".join(
            json.dumps({"text": text}) + "\n" for text in (PASTED[0], emoji, emoji + "!" * 2001)
        )
    )
    assert score_file_in_page(browser, reviews, 3).startswith("2 of 3 reviews scored")
    cells = [row["cell"] for row in batch_rows(browser)]
    assert "Too long: 5,001 characters (the limit is 5,000)." in cells[2]


@pytest.mark.slow
def test_the_page_finds_a_text_blank_as_the_server_does(server, browser, tmp_path):
    """Python's strip() removes U+001C-U+001F and U+0085 but not U+FEFF; JavaScript's trim()
    the other way round. The page follows the server (whose rule also takes zero-width
    and format characters, U+FEFF among them, as blank); a row it still sends and the
    server refuses costs only that row its answer."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    for blank in ("\x85", "\x1c\x1d\x1e\x1f", "\ufeff", "\u200b \u2060"):
        put_review(browser, blank)
        by_test_id(browser, "classify-button").click()
        assert error_text(browser, "error") == "Type a review first."
    put_review(browser, "\ufeffgreat")
    by_test_id(browser, "classify-button").click()
    wait_for_label(browser, api(server, "/classify", {"review": "\ufeffgreat"})["label"])

    texts = [PASTED[0], "\x85", "\x1c \x1f", "\ufeff", PASTED[1]]
    reviews = tmp_path / "blanks.csv"
    with reviews.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([["id", "text"], *([i, text] for i, text in enumerate(texts))])
    assert score_file_in_page(browser, reviews, 5).startswith("2 of 5 reviews scored")
    rows = batch_rows(browser)
    assert [bool(row["label"]) for row in rows] == [True, False, False, False, True]
    assert all("Empty: nothing to score." in row["cell"] for row in rows[1:4])

    # A text the page cannot judge (a lone surrogate, pasted) makes the server refuse its
    # batch: the batch is sent again one review at a time.
    box = by_test_id(browser, "batch-input")
    browser.execute_script(
        "arguments[0].value = arguments[1].join(String.fromCharCode(10))"
        " .replace('LONE', String.fromCharCode(0xd800))",
        box,
        [PASTED[0], "bad LONE half", *PASTED[1:]],
    )
    browser.find_element(By.ID, "batch-score").click()
    assert wait_for_batch(browser).startswith("4 of 5 reviews scored")
    # (Not batch_rows: webdriver cannot carry a lone surrogate back.)
    rows = browser.execute_script(
        """
        return [...document.querySelectorAll("#batch-results tbody tr")].map((tr) => (
          {label: tr.dataset.label || null, cell: tr.cells[2].textContent.trim()}));
        """
    )
    expected = api(server, "/classify", {"reviews": PASTED})["predictions"]
    assert [row["label"] for row in rows] == [
        expected[0]["label"],
        None,
        *(p["label"] for p in expected[1:]),
    ]
    assert rows[1]["cell"].startswith("— Refused: ")
    assert not browser.find_element(By.ID, "batch-error").is_displayed()


@pytest.mark.slow
def test_a_json_line_with_a_lone_surrogate_is_a_bad_row(server, browser, tmp_path):
    """As in python -m app.batch: "\\ud800" without its pair is no text; the API refuses a
    batch that holds one, so the page reports the line and sends the others."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    reviews = tmp_path / "surrogates.jsonl"
    reviews.write_text(
        '{"id": 1, "text": "Lovely crew, thank you!"}\n'
        '{"id": 2, "text": "bad \\ud800 escape"}\n'
        '{"id": 3, "text": "fine", "note": ["\\udc80"]}\n'
        '{"id": 4, "text": "a pair \\ud83d\\ude00 is text"}\n'
    )
    assert score_file_in_page(browser, reviews, 4).startswith("2 of 4 reviews scored")
    assert not browser.find_element(By.ID, "batch-error").is_displayed()
    cells = [row["cell"] for row in batch_rows(browser)]
    assert "Line 2 is not text: a string holds a lone surrogate (\\ud800)." in cells[1]
    assert "Line 3 is not text: a string holds a lone surrogate (\\udc80)." in cells[2]
    by_test_id(browser, "batch-download").click()
    table = downloaded(browser, "surrogates-scored.csv")
    assert [row["id"] for row in table] == ["1", "", "", "4"]
    assert table[3]["text"] == "a pair \N{GRINNING FACE} is text" and table[3]["label"]


def scored_csv(browser, server, tmp_path, name: str, content: str, rows: int, summary: str):
    """The page's cells and its download for a CSV file ``name``.csv of ``content``."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    reviews = tmp_path / f"{name}.csv"
    reviews.write_text(content)
    assert score_file_in_page(browser, reviews, rows).startswith(summary)
    cells = [row["cell"] for row in batch_rows(browser)]
    by_test_id(browser, "batch-download").click()
    return cells, downloaded(browser, f"{name}-scored.csv")


@pytest.mark.slow
def test_a_csv_row_with_more_cells_than_the_header_keeps_the_columns(server, browser, tmp_path):
    """As python -m app.batch: a bad row, written with the header's cells only."""
    content = 'id,text\n1,Lovely crew\n2,"too, many",x\n3,Lost my bag\n'
    cells, table = scored_csv(browser, server, tmp_path, "extra", content, 3, "2 of 3 reviews")
    assert "The row has 3 fields but the header has 2." in cells[1]
    assert list(table[1]) == ["id", "text", "label", "score", *PROBABILITIES, "version", "error"]
    assert table[1] == {
        **dict.fromkeys(table[1], ""),
        "id": "2",
        "text": "too, many",
        "error": "The row has 3 fields but the header has 2.",
    }
    assert table[0]["label"] and table[2]["label"]


@pytest.mark.slow
def test_a_csv_row_with_fewer_cells_than_the_header_is_padded_and_scored(server, browser, tmp_path):
    """As python -m app.batch: a short row's missing cells are empty; it is scored if it
    has its text, and is "Empty" if its text cell is the missing one."""
    content = "text,id,note\nLovely crew,1,a\nLost my bag,2\nOn time\n,4\n"
    cells, table = scored_csv(browser, server, tmp_path, "short", content, 4, "3 of 4 reviews")
    assert "Empty: nothing to score." in cells[3]
    assert [(row["id"], row["note"], bool(row["label"])) for row in table] == [
        ("1", "a", True),
        ("2", "", True),
        ("", "", True),
        ("4", "", False),
    ]
    assert [row["error"] for row in table[:3]] == ["", "", ""]


def app_batch(source, output, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m app.batch source output`` with the test server's version 1."""
    return subprocess.run(
        [sys.executable, "-m", "app.batch", str(source), str(output), "--quiet", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_a_broken_csv_is_refused_or_kept_as_python_m_app_batch_does(
    server, browser, two_versions, tmp_path
):
    """A file cut short inside a quoted field and a header that repeats a name are refused
    for the reason python -m app.batch gives (not scored as merged rows or from the first
    of two columns); a row of one quoted empty field is a row (bad: empty), in its place."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    model = ("--model-dir", str(two_versions / "1"))
    refused = {
        "unclosed": 'id,text\n1,"Great flight\n2,Lost my bag\n3,Fine\n',
        "repeated": "text,Text\nGreat,Awful\n",
    }
    for name, content in refused.items():
        source = tmp_path / f"{name}.csv"
        source.write_text(content)
        batch = app_batch(source, tmp_path / f"{name}-out.csv", *model)
        assert batch.returncode == 65, batch.stderr
        by_test_id(browser, "batch-file").send_keys(str(source))
        message = error_text(browser, "batch-error")
        said = message[0].lower() + message[1:].removesuffix(".")
        assert batch.stderr.strip() == f"Error: {source}: {said}", message
        reason = "the quoted field opened on line 2" if name == "unclosed" else "the header"
        assert said.startswith(reason)

    # A header and nothing else: nothing to score (python -m app.batch writes the header).
    header_only = tmp_path / "header.csv"
    header_only.write_text("id,text\n")
    assert app_batch(header_only, tmp_path / "header-out.csv", *model).returncode == 0
    assert (tmp_path / "header-out.csv").read_text().count("\n") == 1
    by_test_id(browser, "batch-file").send_keys(str(header_only))
    assert error_text(browser, "batch-error") == (
        "That file has a header but no rows: nothing to score."
    )

    source = tmp_path / "quoted.csv"
    source.write_text('text\n""\n\nLovely crew\n')
    assert score_file_in_page(browser, source, 2).startswith("1 of 2 reviews scored")
    assert "Empty: nothing to score." in batch_rows(browser)[0]["cell"]
    by_test_id(browser, "batch-download").click()
    page = downloaded(browser, "quoted-scored.csv")
    assert app_batch(source, tmp_path / "quoted-out.csv", *model).returncode == 0
    with (tmp_path / "quoted-out.csv").open(newline="", encoding="utf-8") as file:
        batch = list(csv.DictReader(file))
    assert [row["text"] for row in page] == [row["text"] for row in batch] == ["", "Lovely crew"]
    assert [bool(row["error"]) for row in page] == [bool(row["error"]) for row in batch]
    assert [row["label"] for row in page] == [row["label"] for row in batch]


@pytest.mark.slow
def test_the_download_is_what_python_m_app_batch_writes(server, browser, two_versions, tmp_path):
    """The same file scored by the page (version 1 pinned) and by python -m app.batch with
    version 1: the same bytes but for the last digit of a probability: the input's
    separator and line ending, a column replaced, the version, a byte that is not UTF-8
    kept (its row bad, for the same reason)."""
    source = tmp_path / "export.csv"
    source.write_bytes(
        b"id;text;label\r\n"
        b"1;Lovely crew, thank you!;x\r\n"
        b'2;"Caf\xe9 was awful; cold";y\r\n'
        b'3;"Lost my bag ""again""";z\r\n'
        b"4;Flight 2214 boards at gate B12.;\r\n"
    )
    model = ("--model-dir", str(two_versions / "1"))
    batch = app_batch(source, tmp_path / "batch.csv", "--delimiter", ";", *model)
    assert batch.returncode == 0, batch.stderr
    open_page(browser, server, *VIEWPORTS["desktop"])
    Select(browser.find_element(By.ID, "version")).select_by_value("1")
    by_test_id(browser, "batch-file").send_keys(str(source))
    assert wait_for_batch(browser).startswith("3 of 4 reviews scored")
    # (Not batch_rows: webdriver cannot carry the byte's stand-in, a lone surrogate, back.)
    cells = browser.execute_script(
        "return [...document.querySelectorAll('#batch-results tbody tr')]"
        ".map((tr) => tr.cells[2].textContent.trim())"
    )
    assert len(cells) == 4 and "Not valid UTF-8 (byte 0xE9 in column 'text')." in cells[1]
    by_test_id(browser, "batch-download").click()
    path = browser.downloads / "export-scored.csv"
    wait_for(browser, lambda: path.is_file() and path.stat().st_size > 0, "the download")
    time.sleep(0.2)  # the file is renamed into place when complete
    page = path.read_bytes()
    expected = (tmp_path / "batch.csv").read_bytes()
    number = re.compile(rb"\d\.\d{6}")
    assert number.sub(b"#", page) == number.sub(b"#", expected)
    assert page.startswith(b"id;text;label;score;p_negative;p_neutral;p_positive;version;error\r\n")
    assert b'"Caf\xe9 was awful; cold"' in page and page.count(b";1;\r\n") == 3
    found = [float(n) for n in number.findall(page)]
    assert found == pytest.approx([float(n) for n in number.findall(expected)], abs=2e-6)
    assert len(found) == 3 * 4


@pytest.mark.slow
def test_batches_fit_the_server_s_max_content_length(start_server, browser):
    """Long reviews (MAX_TEXT_CHARS may be up to 1,000,000) make a batch of
    MAX_BATCH_SIZE bigger than MAX_CONTENT_LENGTH, which the server refuses whole (413):
    the page cuts batches by their size in bytes too, and a review too big for a request
    of its own is a bad row."""
    server = start_server(WEB_CONCURRENCY="1", MAX_TEXT_CHARS="20000", MAX_CONTENT_LENGTH="70000")
    server.wait_ready("/ready")
    open_page(browser, server, *VIEWPORTS["desktop"])
    # 17,000 bytes each: four to a request of 70,000; 20,000 emoji are 80,002 bytes.
    long = [(f"{PASTED[i % 4]} " * 400)[:17_000] for i in range(9)]
    too_big = "\N{GRINNING FACE}" * 20_000
    browser.execute_script(
        "arguments[0].value = arguments[1].join(String.fromCharCode(10))",
        by_test_id(browser, "batch-input"),
        [*long[:5], too_big, *long[5:]],
    )
    browser.find_element(By.ID, "batch-score").click()
    assert wait_for_batch(browser).startswith("9 of 10 reviews scored")
    assert not browser.find_element(By.ID, "batch-error").is_displayed()
    rows = browser.execute_script(
        """
        return [...document.querySelectorAll("#batch-results tbody tr")].map((tr) => (
          {label: tr.dataset.label || null, cell: tr.cells[2].textContent.trim()}));
        """
    )
    expected = [
        api(server, "/classify", {"reviews": long[i : i + 4]})["predictions"] for i in (0, 4, 8)
    ]
    labels = [p["label"] for chunk in expected for p in chunk]
    assert [row["label"] for row in rows] == [*labels[:5], None, *labels[5:]]
    assert rows[5]["cell"] == (
        "— Too big to send: 80,002 bytes as JSON; the server takes 70,000 bytes a request "
        "(MAX_CONTENT_LENGTH)."
    )
    assert severe_browser_errors(browser) == []  # no request refused (413)


@pytest.mark.slow
def test_an_example_clicked_while_classifying_gets_its_own_answer(server, browser):
    """The second click comes while the first example's answer is on its way: that answer
    is not shown under the second text, the second text is classified."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    first, second = EXAMPLES[0], EXAMPLES[2]
    expected = api(server, "/classify", {"review": second.text})
    assert api(server, "/classify", {"review": first.text})["label"] != expected["label"]
    buttons = [
        browser.find_element(By.XPATH, f'//button[@data-text="{example.text}"]')
        for example in (first, second)
    ]
    browser.execute_script("arguments[0].click(); arguments[1].click()", *buttons)
    assert by_test_id(browser, "review-input").get_attribute("value") == second.text
    wait_for_label(browser, expected["label"])
    wait_for_explanation(browser, second.text)
    assert browser.find_element(By.ID, "example-note").text.startswith(
        f"A person would say {second.expected}"
    )
    # Typed over while its answer is on its way: the answer is not shown under the new text.
    put_review(browser, first.text)
    browser.execute_script(
        "document.getElementById('classify').click();"
        "document.getElementById('review').value = arguments[0];"
        "document.getElementById('classify').click()",
        POSITIVE,
    )
    wait_for_label(browser, api(server, "/classify", {"review": POSITIVE})["label"])
    wait_for_explanation(browser, POSITIVE)
    assert severe_browser_errors(browser) == []


# A hotel review of 1,200 characters: version 3 (a transformer) explains it by scoring it
# again without each of its words, for about 12 s on two cores (a short review waits behind
# that on the server: within the page's 30 s, so that the page's own wait is what shows).
LONG_REVIEW = " ".join(
    [
        "Breakfast was cold and the coffee tasted burnt.",
        "Noise from the street kept us awake until 2am.",
        "The bed was comfortable.",
        "The view from the balcony was stunning!",
        "The room was clean and the staff were friendly.",
        "Parking cost 20 euros a night.",
    ]
    * 5
)[:1200]


@pytest.mark.slow
def test_a_new_review_does_not_wait_behind_the_explanation_on_its_way(start_server, browser):
    """A short review sent while a long review's explanation is on its way aborts that
    request and is sent at once; the page says it is classifying, and the long review's
    answer is not left on show under the short text."""
    server = start_server(WEB_CONCURRENCY="1", MODEL_VERSIONS="1,3", MODEL_LABELS="stable=1")
    server.wait_ready("/ready", timeout=120)
    short = "Awful. Never again."
    long_label = api(server, "/classify?version=3", {"review": LONG_REVIEW})["label"]
    short_label = api(server, "/classify?version=3", {"review": short})["label"]
    open_page(browser, server, *VIEWPORTS["desktop"])
    Select(browser.find_element(By.ID, "version")).select_by_value("3")
    put_review(browser, LONG_REVIEW)
    by_test_id(browser, "classify-button").click()
    wait_for_label(browser, long_label, timeout=30)
    assert browser.find_element(By.ID, "explain-status").text.startswith("Working out")
    sent = browser.execute_script(
        """
        document.getElementById("review").value = arguments[0];
        const clicked = performance.now();
        document.getElementById("classify").click();
        return {clicked, status: document.getElementById("status").textContent,
                summary: document.getElementById("summary").textContent,
                result: document.getElementById("result").checkVisibility()};
        """,
        short,
    )
    assert sent["status"] == "Classifying…"
    assert sent["summary"] == ""  # the long review's answer is gone
    # The page's request leaves at once (the server answers it after one call of the
    # explanation it is still computing: the version's lock is taken in turn).
    wait_for_label(browser, short_label, timeout=120)
    started = browser.execute_script(
        """
        return performance.getEntriesByType("resource")
          .filter((entry) => entry.name.endsWith("/classify?version=3"))
          .map((entry) => entry.startTime - arguments[0]);
        """,
        sent["clicked"],
    )
    assert any(0 <= delay < 1000 for delay in started), started
    explained = browser.find_element(By.ID, "explain-body")
    wait_for(browser, explained.is_displayed, "the short review's explanation", timeout=120)
    assert browser.find_element(By.ID, "explain-status").text == ""
    assert severe_browser_errors(browser) == []


@pytest.mark.slow
def test_the_words_not_read_are_marked_where_they_are(start_server, browser):
    """Version 1 reads a review's first 64 tokens: the words not read are past its end.
    A transformer reads a very long review's opening and end: they are in the middle,
    where the page marks them (it said "past the model's input length" for both)."""
    server = start_server(MODEL_VERSIONS="1,4", MODEL_LABELS="stable=1", INFERENCE_PRECISION="int8")
    server.wait_ready("/ready", timeout=120)
    very_long = " ".join([LONG_REVIEW] * 3)
    open_page(browser, server, *VIEWPORTS["desktop"])
    select = Select(browser.find_element(By.ID, "version"))
    for version, text in (("1", LONG_REVIEW), ("4", very_long)):
        explained = requests.post(
            f"{server.url}/explain?version={version}", json={"review": text}, timeout=120
        ).json()
        assert explained["unseen_tokens"] > 0
        select.select_by_value(version)
        put_review(browser, text)
        by_test_id(browser, "classify-button").click()

        def marker(explained=explained):
            found = browser.execute_script(
                """
                const line = [...document.querySelectorAll("#explain-tokens > span")];
                const at = line.findIndex((el) => el.classList.contains("unseen"));
                return at < 0 ? null : {at, length: line.length, text: line[at].textContent};
                """
            )
            return found if found and found["length"] == len(explained["tokens"]) + 1 else None

        found = wait_for(browser, marker, f"version {version}'s unread words", timeout=120)
        assert found["at"] == explained["unseen_at"]
        assert f"+{explained['unseen_tokens']} words" in found["text"]
        if version == "1":
            assert found["at"] == len(explained["tokens"])
            assert "past the model's input length" in found["text"]
        else:
            assert 0 < found["at"] < len(explained["tokens"])
            assert "in the middle of a long review" in found["text"]
    assert severe_browser_errors(browser) == []


@pytest.mark.slow
def test_one_review_is_waited_for_a_bounded_time_and_can_be_cancelled(start_server, browser):
    """A server that does not answer (stopped: SIGSTOP) is not waited for forever: Cancel
    and Escape give up at once, and after 30 seconds the page says the server did not
    answer."""
    server = start_server(WEB_CONCURRENCY="1")
    server.wait_ready("/ready")
    open_page(browser, server, *VIEWPORTS["desktop"])
    status = browser.find_element(By.ID, "status")
    cancel = browser.find_element(By.ID, "classify-cancel")
    assert not cancel.is_displayed()
    os.killpg(server.process.pid, signal.SIGSTOP)
    try:
        classify_in_page(browser, POSITIVE)
        assert status.text == "Classifying…" and cancel.is_displayed()
        cancel.click()
        wait_for(browser, lambda: status.text == "Cancelled.", "Cancel")
        assert not cancel.is_displayed()
        # Focus goes to Classify when Cancel hides under it (it fell to the page's body).
        assert browser.switch_to.active_element.get_attribute("id") == "classify"
        classify_in_page(browser, POSITIVE)
        by_test_id(browser, "review-input").send_keys(Keys.ESCAPE)
        wait_for(browser, lambda: status.text == "Cancelled.", "Escape")
        # Escape cancels with focus on an example too (it worked in the form only).
        browser.find_element(By.CSS_SELECTOR, "button.example").click()
        assert status.text == "Classifying…"
        ActionChains(browser).send_keys(Keys.ESCAPE).perform()
        wait_for(browser, lambda: status.text == "Cancelled.", "Escape on an example")
        started = time.monotonic()
        classify_in_page(browser, NEGATIVE)
        alert = browser.find_element(By.ID, "error")
        wait_for(browser, alert.is_displayed, "the time-out", timeout=45)
        assert 29 < time.monotonic() - started < 40
        assert alert.text == (
            "The server did not answer within 30 seconds. It may be overloaded or stuck: "
            "try again in a moment."
        )
        assert status.text == "" and not cancel.is_displayed()
    finally:
        os.killpg(server.process.pid, signal.SIGCONT)
    classify_in_page(browser, NEGATIVE)
    wait_for_label(browser, api(server, "/classify", {"review": NEGATIVE})["label"])


def test_a_comparison_is_only_shown_under_the_text_it_is_for(server, browser):
    """An edit clears the columns (they stayed under a new text), and a comparison whose
    answers come late never overwrites a newer one (it did, seconds later)."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    compare = by_test_id(browser, "version-compare")
    summary = compare.find_element(By.ID, "compare-summary")
    put_review(browser, NEGATIVE)
    compare.find_element(By.ID, "compare-button").click()
    wait_for(browser, lambda: summary.text.startswith("Both say"), "a comparison")
    by_test_id(browser, "review-input").send_keys(" Or was it?")
    assert summary.text == "" and compare.find_elements(By.CSS_SELECTOR, ".compare-column") == []

    # Answers for a text starting "SLOW" come 2 s late, as a slow version's would.
    browser.execute_script(
        """const original = window.fetch;
        window.fetch = async (url, init) => {
          const slow = init && String(init.body).includes("SLOW");
          if (slow) await new Promise((resolve) => setTimeout(resolve, 2000));
          return original(url, init);
        };"""
    )
    put_review(browser, "SLOW " + NEGATIVE)
    compare.find_element(By.ID, "compare-button").click()
    put_review(browser, POSITIVE)
    compare.find_element(By.ID, "compare-button").click()
    label = api(server, "/classify", {"review": POSITIVE})["label"]
    wait_for(browser, lambda: summary.text.startswith(f"Both say {label}"), "the new comparison")
    time.sleep(2.5)  # past the first comparison's answers
    assert summary.text.startswith(f"Both say {label}")
    assert api(server, "/classify", {"review": NEGATIVE})["label"] != label


def test_a_new_request_takes_the_last_answer_s_status_lines_away(server, browser):
    """The result's live regions stay in view while it waits: the last answer's
    "Recorded: …" (or its explanation's status) stayed beside the new text's error."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    classify_in_page(browser, POSITIVE)
    label = api(server, "/classify", {"review": POSITIVE})["label"]
    wait_for_label(browser, label)
    by_test_id(browser, f"feedback-{label}").click()
    feedback_status = browser.find_element(By.ID, "feedback-status")
    wait_for(browser, lambda: feedback_status.text.startswith("Recorded"), "the feedback")

    classify_in_page(browser, "   ")

    assert error_text(browser, "error") == "Type a review first."
    assert browser.execute_script(
        "return [document.getElementById('feedback-status').textContent,"
        " document.getElementById('explain-status').textContent]"
    ) == ["", ""]


def test_buttons_do_nothing_before_the_page_s_script_runs(server, browser):
    """On a slow connection Classify could be clicked before the script ran: the browser
    posted the form itself and showed the API's raw 415 in place of the page. Without
    scripts at all, the page says so where it is seen first (it said so below every
    form, out of sight on a phone)."""
    set_viewport(browser, *VIEWPORTS["phone"])
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        browser.get(server.url + "/")
        notice = browser.find_element(By.CSS_SELECTOR, "main noscript p")
        assert notice.text == "This page needs JavaScript to call the API."
        bottom = browser.execute_script(
            "return arguments[0].getBoundingClientRect().bottom", notice
        )
        assert bottom <= VIEWPORTS["phone"][1], bottom
        set_viewport(browser, *VIEWPORTS["desktop"])
        browser.get(server.url + "/")
        by_test_id(browser, "review-input").send_keys(POSITIVE)
        by_test_id(browser, "classify-button").click()
        browser.find_element(By.ID, "batch-score").click()
        time.sleep(0.5)
        assert browser.current_url == server.url + "/"
        assert "unsupported_media_type" not in browser.page_source
    finally:
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
    open_page(browser, server, *VIEWPORTS["desktop"])
    classify_in_page(browser, POSITIVE)
    wait_for_label(browser, api(server, "/classify", {"review": POSITIVE})["label"])


def in_accessibility_tree(driver: webdriver.Chrome, element_id: str) -> bool:
    """Whether Chromium's accessibility tree (what a screen reader reads) has the element."""
    root = driver.execute_cdp_cmd("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
    node = driver.execute_cdp_cmd(
        "DOM.querySelector", {"nodeId": root, "selector": f"#{element_id}"}
    )
    tree = driver.execute_cdp_cmd(
        "Accessibility.getPartialAXTree", {"nodeId": node["nodeId"], "fetchRelatives": False}
    )
    return not tree["nodes"][0].get("ignored", False)


LIVE_REGIONS = ["status", "summary", "batch-progress-text", "batch-status", "batch-shown"]
# Filled at once when the answer shows ("Working out which words mattered…"): a live
# region in a part shown in the same step was not in the tree, and not announced.
EXPLAIN_STATUS = "explain-status"


@pytest.mark.slow
def test_live_regions_are_known_to_screen_readers_before_their_first_words(server, browser):
    """A screen reader announces a change to a live region it already has; one that comes
    into the page with its content (its container unhidden) is not announced."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    for element_id in LIVE_REGIONS:
        element = browser.find_element(By.ID, element_id)
        assert element.get_attribute("aria-live") == "polite", element_id
        assert element.text == "", element_id
        assert in_accessibility_tree(browser, element_id), element_id
    assert in_accessibility_tree(browser, EXPLAIN_STATUS)
    # Nothing shows of the outputs but their empty live regions.
    assert not browser.find_element(By.ID, "result").is_displayed()
    assert not browser.find_element(By.ID, "batch-results").is_displayed()
    classify_in_page(browser, POSITIVE)
    wait_for_label(browser, api(server, "/classify", {"review": POSITIVE})["label"])
    by_test_id(browser, "batch-input").send_keys("\n".join(PASTED))
    browser.find_element(By.ID, "batch-score").click()
    assert wait_for_batch(browser).startswith("4 of 4 reviews scored")
    for element_id in LIVE_REGIONS[1:]:
        assert browser.find_element(By.ID, element_id).text, element_id
        assert in_accessibility_tree(browser, element_id), element_id


@pytest.mark.slow
def test_a_long_word_wraps_on_a_phone(server, browser):
    """A word or link longer than the screen is wide (here one the model gives a push, so
    that it is among the top words too) wraps instead of pushing the page sideways."""
    open_page(browser, server, *VIEWPORTS["phone"])
    word = "".join("abcdefghijklmnopqrstuvwxyz"[(i * 7) % 26] for i in range(180))
    review = f"Great {word} and terrible"
    explanation = api(server, "/explain?version=1", {"review": review})
    pushes = {t["token"]: t["contributions"][explanation["label"]] for t in explanation["tokens"]}
    assert abs(pushes[word]) >= 0.0005  # among the drivers
    classify_in_page(browser, review)
    wait_for_explanation(browser, review)
    drivers = browser.find_elements(By.CSS_SELECTOR, ".drivers-list .driver-token")
    assert word in [driver.text for driver in drivers]
    assert_fits_the_window(browser, VIEWPORTS["phone"][0])


def focus_by_tab(driver: webdriver.Chrome, element_id: str, limit: int = 60) -> None:
    """Press Tab (only Tab) until ``element_id`` has the focus; fail after ``limit``."""
    for _ in range(limit):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        focused = driver.switch_to.active_element
        if focused.get_attribute("id") == element_id:
            # A visible ring: keyboard users see where they are.
            assert focused.value_of_css_property("outline-style") == "solid", element_id
            assert float(focused.value_of_css_property("outline-width").removesuffix("px")) >= 2
            return
    raise AssertionError(f"Tab never reached #{element_id}")


def keys(driver: webdriver.Chrome, *sequence: str) -> None:
    ActionChains(driver).send_keys(*sequence).perform()


@pytest.mark.slow
def test_why_view_names_placeholders_in_words(server, browser):
    # Version 2 reads "1/5" as a rating token (app/serving/preprocessing.py, RATING_TOKENS).
    open_page(browser, server, *VIEWPORTS["desktop"])
    tokens = ["xxurl", "xxnum", *RATING_TOKENS.values(), "great"]
    shown = browser.execute_async_script(
        """
        const [tokens, done] = arguments;
        import("/static/page/format.js").then((format) => done(tokens.map(format.tokenText)));
        """,
        tokens,
    )
    assert shown == [
        "[link]",
        "[number]",
        "[bottom rating]",
        "[poor rating]",
        "[good rating]",
        "[top rating]",
        "great",
    ]


@pytest.mark.slow
def test_percentages_never_say_100_below_1(server, browser):
    open_page(browser, server, *VIEWPORTS["desktop"])
    shown = browser.execute_async_script(
        """
        const [values, done] = arguments;
        import("/static/page/format.js").then((format) => done(values.map(format.percent)));
        """,
        [0.9996, 0.99949, 1.0, 0.5],
    )
    assert shown == [">99.9%", "99.9%", "100.0%", "50.0%"]
    # Below a band's bound, never rounded up to it: 0.98975 was "99.0%: fairly sure"
    # under "very sure means 99% or more" (an outside probe); bounds as precise as they are.
    shown = browser.execute_async_script(
        """
        const [values, done] = arguments;
        import("/static/page/format.js").then((format) => done([
          ...values.map((p) => format.percentFor(p, {very_sure: 0.99, fairly_sure: 0.89})),
          format.share(0.987), format.share(0.99),
        ]));
        """,
        [0.98975, 0.88999, 0.99, 0.9896],
    )
    assert shown == ["98.9%", "88.9%", "99.0%", "98.9%", "98.7%", "99%"]


def test_error_messages_say_what_happened_and_when_to_try_again(server, browser):
    """A busy server's 503 (with Retry-After) and a proxy's 429 said "the server had a
    problem… tell whoever runs it", and a proxy's error page without a request id asked
    for one to quote (an outside probe)."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    shown = browser.execute_async_script(
        """
        const done = arguments[0];
        import("/static/page/api.js").then((api) => done([
          api.plainError(503, {error: {code: "server_busy", message: "Busy."}}, "id1", "1"),
          api.plainError(503, null, null, null),
          api.plainError(429, null, null, "30"),
          api.plainError(502, null, null, null),
          api.plainError(500, {error: {code: "internal_error"}}, "0a1b", null),
        ].map((problem) => problem.message)));
        """
    )
    assert shown == [
        "The server cannot answer now (busy, or still starting). Try again in 1 second.",
        "The server cannot answer now (busy, or still starting). Try again in a moment.",
        "The server is getting too many requests now. Try again in 30 seconds.",
        "The server had a problem answering. Try again; if it keeps failing, tell whoever runs it.",
        "The server had a problem answering. Try again; if it keeps failing, tell whoever runs "
        "it and quote the request id 0a1b.",
    ]


def test_an_edit_takes_the_answer_and_its_true_label_buttons_away(server, browser):
    """The answer and its feedback buttons stayed under an edited text, and a click
    recorded the true label of the new text against the old one's answer."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    classify_in_page(browser, POSITIVE)
    wait_for_label(browser, api(server, "/classify", {"review": POSITIVE})["label"])
    assert browser.find_elements(By.CSS_SELECTOR, "#feedback-choices button")

    by_test_id(browser, "review-input").send_keys(" Or was it?")

    assert browser.execute_script(
        "const result = document.getElementById('result');"
        "return [result.hasAttribute('data-waiting'),"
        " document.getElementById('summary').textContent,"
        " document.querySelectorAll('#feedback-choices button').length]"
    ) == [True, "", 0]
    assert not browser.find_element(By.ID, "scores").is_displayed()


@pytest.mark.slow
def test_escape_in_the_filter_box_cancels_a_batch(server, browser, tmp_path):
    open_page(browser, server, *VIEWPORTS["desktop"])
    big = tmp_path / "big.txt"
    big.write_text("\n".join(f"{PASTED[i % 4]} #{i}" for i in range(MAX_FILE_ROWS)))
    by_test_id(browser, "batch-file").send_keys(str(big))
    progress = browser.find_element(By.ID, "batch-progress")
    wait_for(browser, lambda: int(progress.get_attribute("value")) >= SMALL_BATCH, "progress")
    browser.find_element(By.ID, "batch-filter").send_keys(Keys.ESCAPE)
    status = wait_for_batch(browser)
    assert "cancelled before the end" in status


@pytest.mark.slow
def test_a_file_just_over_the_limit_says_its_size(server, browser, tmp_path):
    """5 MB and one byte is not "5.0 MB" when the limit is 5 MB."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    limit = page_config_of_server(server)["maxFileBytes"]
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (limit + 1))
    by_test_id(browser, "batch-file").send_keys(str(big))
    assert error_text(browser, "batch-error").startswith(
        f"That file is {limit + 1:,} bytes; the page reads files up to {limit:,} bytes (5 MB)."
    )


def page_config_of_server(server: WebProcess) -> dict:
    html = requests.get(server.url + "/", timeout=5).text
    found = re.search(
        r'<script type="application/json" id="page-config">(.*?)</script>', html, re.S
    )
    return json.loads(found.group(1).replace("&#39;", "'"))


@pytest.mark.slow
@pytest.mark.parametrize("device", VIEWPORTS)
def test_keyboard_only(server, browser, device):
    width, height = VIEWPORTS[device]
    open_page(browser, server, width, height)
    expected = api(server, "/classify", {"review": NEGATIVE})
    focus_by_tab(browser, "review")
    keys(browser, NEGATIVE)
    ActionChains(browser).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(
        Keys.CONTROL
    ).perform()
    wait_for_label(browser, expected["label"])
    wait_for_explanation(browser, NEGATIVE)
    # An example button, by Tab and Enter.
    focus_by_tab(browser, "classify")
    keys(browser, Keys.TAB, Keys.ENTER)
    first = EXAMPLES[0]
    wait_for(browser, browser.find_element(By.ID, "example-note").is_displayed, "the example")
    assert by_test_id(browser, "review-input").get_attribute("value") == first.text
    # Compare, by keyboard.
    focus_by_tab(browser, "compare-button")
    keys(browser, Keys.ENTER)
    wait_for(
        browser,
        lambda: len(browser.find_elements(By.CSS_SELECTOR, ".compare-column")) == 2,
        "the comparison",
    )
    # Many reviews: type, then Tab to the button and press Enter; sort with Enter.
    focus_by_tab(browser, "batch-text")
    keys(browser, PASTED[0], Keys.ENTER, PASTED[1])
    focus_by_tab(browser, "batch-score")
    keys(browser, Keys.ENTER)
    assert wait_for_batch(browser).startswith("2 of 2 reviews scored")
    keys(browser, Keys.TAB)  # no trap: the focus moves on
    assert browser.switch_to.active_element.get_attribute("id") != "batch-score"
    score_header = browser.find_element(By.CSS_SELECTOR, 'button[data-sort="score"]')
    for _ in range(30):
        if browser.switch_to.active_element == score_header:
            break
        keys(browser, Keys.TAB)
    keys(browser, Keys.ENTER)
    header = browser.find_element(By.CSS_SELECTOR, "th.col-score")
    assert header.get_attribute("aria-sort") == "descending"
    screenshot(browser, f"{device}-keyboard")
    assert severe_browser_errors(browser) == []


@pytest.mark.slow
def test_dark_theme_stays_readable(server, browser):
    open_page(browser, server, *VIEWPORTS["phone"])
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    classify_in_page(browser, POSITIVE)
    wait_for_explanation(browser, POSITIVE)
    box = by_test_id(browser, "batch-input")
    box.send_keys("\n".join(PASTED))
    browser.find_element(By.ID, "batch-score").click()
    wait_for_batch(browser)
    assert contrast_problems(browser) == []
    screenshot(browser, "phone-dark")


def severe_browser_errors(driver: webdriver.Chrome) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


# --- Fixes after an outside probe: redeploys, focus, files, prefixes, right-to-left ---------


def slow_classify(driver: webdriver.Chrome, seconds: float) -> None:
    """Each POST /classify the page sends goes ``seconds`` late (a slow server), and is
    counted in ``window.classifyPosts``."""
    driver.execute_script(
        """const delay = arguments[0] * 1000;
        const original = window.fetch;
        window.classifyPosts = 0;
        window.fetch = async (url, init) => {
          if (init && init.method === "POST" && String(url).includes("/classify")) {
            window.classifyPosts += 1;
            await new Promise((resolve) => setTimeout(resolve, delay));
          }
          return original(url, init);
        };""",
        seconds,
    )


@pytest.mark.slow
def test_an_answer_from_a_version_deployed_after_the_page_loaded_is_shown(
    two_versions, browser, tmp_path
):
    """A page loaded while versions 1 and 2 were served (2 stable) got its answer from
    version 3 after a redeploy: the page looked up version 3's classes in its config, hid
    the answer and showed "Cannot read properties of undefined (reading 'classes')" (an
    outside probe). The answer is shown, with true-label buttons for the classes it names."""
    base = tmp_path / "versions"
    shutil.copytree(two_versions, base)
    env = {"WEB_CONCURRENCY": "1", "MODEL_BASE_DIR": str(base), "MODEL_VERSIONS": "1,2"}
    before = WebProcess(env, log_path=tmp_path / "before.log")
    try:
        before.wait_ready("/ready")
        open_page(browser, before, *VIEWPORTS["desktop"])
    finally:
        before.stop()
    # The redeploy, on the same port: version 3 (version 1's files) is added, and is stable.
    shutil.copytree(base / "1", base / "3")
    metadata = json.loads((base / "3" / "metadata.json").read_text())
    metadata["version"] = "3"
    (base / "3" / "metadata.json").write_text(json.dumps(metadata))
    env["MODEL_VERSIONS"] = "1,2,3"
    after = WebProcess(env, port=before.port, log_path=tmp_path / "after.log")
    try:
        after.wait_ready("/ready")
        expected = api(after, "/classify", {"review": POSITIVE})
        assert expected["model"]["version"] == "3"
        classify_in_page(browser, POSITIVE)
        wait_for_label(browser, expected["label"])
        assert not browser.find_element(By.ID, "error").is_displayed()
        assert browser.find_element(By.ID, "answered-by").text.endswith(" version 3.")
        buttons = browser.find_elements(By.CSS_SELECTOR, "#feedback-choices button")
        assert [button.text for button in buttons] == list(expected["scores"])
        by_test_id(browser, f"feedback-{expected['label']}").click()
        status = browser.find_element(By.ID, "feedback-status")
        wait_for(browser, lambda: status.text.startswith("Recorded"), "the feedback")
        wait_for_explanation(browser, POSITIVE)
        assert severe_browser_errors(browser) == []
    finally:
        after.stop()


@pytest.mark.slow
def test_focus_goes_to_score_reviews_when_a_batch_ends(server, browser):
    """Cancel hides when a batch ends: with focus on it (Enter on it, or the batch ending
    by itself), focus fell to the page's body (an outside probe)."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    slow_classify(browser, 1)
    box = by_test_id(browser, "batch-input")
    browser.execute_script("arguments[0].value = arguments[1]", box, "\n".join(PASTED * 6))
    cancel = browser.find_element(By.ID, "batch-cancel")
    for cancelled in (True, False):
        browser.execute_script("document.getElementById('batch-score').focus()")
        keys(browser, Keys.ENTER)
        wait_for(browser, cancel.is_displayed, "Cancel")
        keys(browser, Keys.TAB)
        assert browser.switch_to.active_element.get_attribute("id") == "batch-cancel"
        if cancelled:
            keys(browser, Keys.ENTER)
        status = wait_for_batch(browser)
        assert ("cancelled before the end" in status) == cancelled, status
        assert not cancel.is_displayed()
        assert browser.switch_to.active_element.get_attribute("id") == "batch-score"


def test_focus_goes_to_the_feedback_status_when_a_true_label_is_sent(server, browser):
    """The true-label buttons are disabled while the label is sent: focus on the one
    pressed fell to the page's body (an outside probe)."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    classify_in_page(browser, POSITIVE)
    label = api(server, "/classify", {"review": POSITIVE})["label"]
    wait_for_label(browser, label)
    browser.execute_script("arguments[0].focus()", by_test_id(browser, f"feedback-{label}"))
    keys(browser, Keys.ENTER)
    status = browser.find_element(By.ID, "feedback-status")
    wait_for(browser, lambda: status.text.startswith("Recorded"), "the feedback")
    assert browser.switch_to.active_element.get_attribute("id") == "feedback-status"


@pytest.mark.slow
def test_a_file_chosen_with_score_reviews_clicked_at_once_is_scored_once(server, browser):
    """The run began only once the file was read: a click on Score reviews meanwhile
    started a second run of the same file (every review sent twice; an outside probe)."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    slow_classify(browser, 0)
    shown = browser.execute_script(
        """
        const transfer = new DataTransfer();
        transfer.items.add(new File([arguments[0]], "reviews.txt", {type: "text/plain"}));
        const input = document.getElementById("batch-file");
        input.files = transfer.files;
        input.dispatchEvent(new Event("change"));
        document.getElementById("batch-score").click();
        return document.getElementById("batch-progress-text").textContent;
        """,
        "\n".join(PASTED * 5),  # 20 reviews: three batches of 8
    )
    assert wait_for_batch(browser).startswith("20 of 20 reviews scored")
    assert browser.execute_script("return window.classifyPosts") == 3
    assert shown == "Reading the file…"


@pytest.mark.slow
def test_a_file_chosen_while_a_batch_runs_is_refused_in_words(server, browser, tmp_path):
    """It was ignored without a word, its name left in the field (an outside probe)."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    slow_classify(browser, 1)
    box = by_test_id(browser, "batch-input")
    browser.execute_script("arguments[0].value = arguments[1]", box, "\n".join(PASTED * 4))
    browser.find_element(By.ID, "batch-score").click()
    wait_for(browser, browser.find_element(By.ID, "batch-cancel").is_displayed, "Cancel")
    other = tmp_path / "other.txt"
    other.write_text("\n".join(PASTED))
    by_test_id(browser, "batch-file").send_keys(str(other))
    assert error_text(browser, "batch-error") == (
        "other.txt was not read: a batch is being scored. Cancel it (or let it end), "
        "then choose the file again."
    )
    assert by_test_id(browser, "batch-file").get_attribute("value") == ""
    assert wait_for_batch(browser).startswith("16 of 16 reviews scored")


def test_two_files_dropped_score_the_first_and_say_so(server, browser):
    """The second was left out without a word (an outside probe)."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    browser.execute_script(
        """
        const transfer = new DataTransfer();
        transfer.items.add(new File([arguments[0]], "first.txt", {type: "text/plain"}));
        transfer.items.add(new File([arguments[1]], "second.txt", {type: "text/plain"}));
        const zone = document.getElementById("drop-zone");
        zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        """,
        "\n".join(PASTED[:3]),
        "\n".join(PASTED),
    )
    assert wait_for_batch(browser).startswith("3 of 3 reviews scored")
    assert len(batch_rows(browser)) == 3
    assert error_text(browser, "batch-error") == (
        "One file is scored at a time: first.txt was read, not second.txt."
    )


@pytest.mark.slow
def test_the_api_documentation_links_keep_the_proxy_s_path_prefix(server, browser):
    """Behind a proxy that mounts the server under /sentiment (a SCRIPT_NAME header),
    every URL of the page had the prefix but the two "API documentation" links: /docs,
    not this server there (an outside probe)."""
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"SCRIPT_NAME": "/sentiment"}}
    )
    set_viewport(browser, *VIEWPORTS["desktop"])
    browser.get(server.url + "/sentiment/")
    wait_for(
        browser,
        lambda: browser.execute_script("return document.documentElement.dataset.ready"),
        "the page's script",
    )
    links = browser.find_elements(By.LINK_TEXT, "API documentation")
    assert [link.get_attribute("href") for link in links] == [server.url + "/sentiment/docs"] * 2
    links[0].click()
    wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, ".opblock"), "Swagger UI")
    assert browser.current_url == server.url + "/sentiment/docs"


@pytest.mark.slow
def test_right_to_left_reviews_read_from_the_right(server, browser):
    """The text boxes and the results' review cells are dir="auto": a review in Hebrew
    or Arabic was shown left-aligned, its words in the wrong places (an outside probe)."""
    open_page(browser, server, *VIEWPORTS["desktop"])
    hebrew = "השירות היה מצוין והטיסה יצאה בזמן"
    by_test_id(browser, "review-input").send_keys(hebrew)
    by_test_id(browser, "batch-input").send_keys(hebrew + "\n" + PASTED[2])
    browser.find_element(By.ID, "batch-score").click()
    assert wait_for_batch(browser).startswith("2 of 2 reviews scored")
    cells = browser.execute_script(
        """
        return [...document.querySelectorAll("#batch-results td.col-text")].map((cell) => {
          const range = document.createRange();
          range.selectNodeContents(cell.querySelector(".clamp"));
          const text = range.getBoundingClientRect();
          const box = cell.getBoundingClientRect();
          return {direction: getComputedStyle(cell).direction,
                  left: text.left - box.left, right: box.right - text.right};
        });
        """
    )
    assert [cell["direction"] for cell in cells] == ["rtl", "ltr"]
    assert cells[0]["right"] < cells[0]["left"] and cells[1]["left"] < cells[1]["right"]
    browser.find_element(By.ID, "batch-filter").send_keys(hebrew[:7])
    wait_for(browser, lambda: len(batch_rows(browser)) == 1, "the filter")
    directions = browser.execute_script(
        "return ['review', 'batch-text', 'batch-filter'].map("
        "(id) => getComputedStyle(document.getElementById(id)).direction)"
    )
    assert directions == ["rtl", "rtl", "rtl"]


# --- /docs: Swagger UI ---------------------------------------------------------------------


def wait_for_swagger(driver: webdriver.Chrome, count: int) -> None:
    wait_for(
        driver,
        lambda: len(driver.find_elements(By.CSS_SELECTOR, ".opblock")) == count,
        f"{count} operations",
        timeout=20,
    )


def try_classify_in_docs(driver: webdriver.Chrome) -> tuple[str, dict]:
    """Swagger UI's "Try it out" (once) then "Execute" on POST /classify with its first
    example: the live response's status and body."""
    block = driver.find_element(By.ID, "operations-classify-classify")
    if not block.find_elements(By.CSS_SELECTOR, ".execute"):
        block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
        try_it = wait_for(
            driver,
            lambda: block.find_elements(By.CSS_SELECTOR, ".try-out__btn"),
            "the Try it out button",
        )[0]
        try_it.click()
    execute = wait_for(driver, lambda: block.find_elements(By.CSS_SELECTOR, ".execute"), "Execute")[
        0
    ]
    execute.click()
    body = wait_for(
        driver,
        lambda: block.find_elements(
            By.CSS_SELECTOR, ".live-responses-table .response-col_description pre"
        ),
        "the live response",
        timeout=15,
    )[0]
    status = block.find_element(
        By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_status"
    )
    return status.text.strip(), json.loads(body.text)


@pytest.mark.slow
@pytest.mark.parametrize("device", VIEWPORTS)
def test_docs_renders_every_operation_and_tries_one(server, browser, device):
    width, height = VIEWPORTS[device]
    document = requests.get(server.url + "/openapi.json", timeout=5).json()
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post")
    }
    set_viewport(browser, width, height)
    browser.get(server.url + "/docs")
    wait_for_swagger(browser, len(operations))
    drawn = {
        (
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"),
        )
        for block in browser.find_elements(By.CSS_SELECTOR, ".opblock")
    }
    assert drawn == operations
    assert document["info"]["title"] in browser.find_element(By.CSS_SELECTOR, ".title").text
    assert_fits_the_window(browser, width)
    screenshot(browser, f"{device}-docs")

    # "Try it out" on POST /classify with its first example: a real answer.
    status, answer = try_classify_in_docs(browser)
    assert status == "200"
    assert answer["label"] in ("negative", "neutral", "positive")
    assert answer["model"] == {"name": "sentiment", "version": "1"}
    assert_fits_the_window(browser, width)
    block = browser.find_element(By.ID, "operations-classify-classify")
    browser.execute_script("arguments[0].scrollIntoView()", block)
    screenshot(browser, f"{device}-docs-try-it")
    # Swagger UI asked no other host (no validator badge, no fonts): nothing failed.
    assert severe_browser_errors(browser) == []


def downloads(driver: webdriver.Chrome) -> dict[str, dict]:
    """What the browser fetched for this page, by path: bytes on the wire and decoded."""
    entries = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => ({name: e.name,"
        " encoded: e.encodedBodySize, decoded: e.decodedBodySize, transfer: e.transferSize}))"
    )
    return {urlsplit(entry["name"]).path: entry for entry in entries}


@pytest.mark.slow
def test_docs_assets_arrive_gzipped_and_are_revalidated_on_reload(server, browser):
    """Chromium (which asks for gzip) through Gunicorn: Swagger UI's 1.9 MB of script and
    styles and the document cross the wire gzipped, decode to the files, and a reload
    revalidates them with 304s."""
    set_viewport(browser, *VIEWPORTS["desktop"])
    browser.get(server.url + "/docs")
    wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, ".opblock"), "operations")
    first = downloads(browser)
    for path in (
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/openapi.json",
    ):
        plain = requests.get(server.url + path, headers={"Accept-Encoding": "identity"}, timeout=5)
        assert first[path]["decoded"] == len(plain.content), path
        assert first[path]["encoded"] < len(plain.content) / 3, path
    bundle = first["/docs/assets/swagger-ui-bundle.js"]
    assert bundle["transfer"] < 500_000 < 1_500_000 < bundle["decoded"]

    browser.refresh()
    wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, ".opblock"), "operations")
    again = downloads(browser)["/docs/assets/swagger-ui-bundle.js"]
    assert 0 < again["transfer"] < 2_000  # asked the server (not its memory): headers only
    assert severe_browser_errors(browser) == []


@pytest.mark.slow
def test_a_keyed_server_s_page_asks_for_the_key_and_keeps_it_in_the_tab(start_server, browser):
    key, scrape = "k3y-" + "b2" * 16, "scrape-" + "b2" * 12
    server = start_server(API_KEYS=key, MONITORING_API_KEYS=scrape)
    server.wait_ready("/ready")
    open_page(browser, server, *VIEWPORTS["desktop"])
    field = by_test_id(browser, "api-key-input")
    assert field.is_displayed() and field.get_attribute("type") == "password"

    def error_says(element_id: str, words: str) -> None:
        alert = browser.find_element(By.ID, element_id)
        wait_for(browser, lambda: words in alert.text, f"{words!r} in #{element_id}")

    classify_in_page(browser, POSITIVE)
    error_says("error", "This server needs an API key. Enter it in the API key field above.")
    # A key pasted with a zero-width space: fetch cannot send it (it said "could not be
    # reached"). And the footer's JSON link, which cannot carry the key, is not offered.
    field.send_keys(key + "\u200b")
    classify_in_page(browser, POSITIVE)
    error_says("error", "That API key has a character a key cannot have")
    field.clear()
    assert browser.find_elements(By.LINK_TEXT, "Model details (JSON)") == []
    field.send_keys("w" * 36)
    classify_in_page(browser, POSITIVE)
    error_says("error", "The server does not accept that API key.")
    field.clear()
    field.send_keys(scrape)
    classify_in_page(browser, POSITIVE)
    error_says("error", "That key may only read the server's metrics.")
    field.clear()
    field.send_keys(key)

    def answer(review: str) -> str:
        headers = {"Authorization": f"Bearer {key}"}
        response = requests.post(
            server.url + "/classify", json={"review": review}, headers=headers, timeout=10
        )
        return response.json()["label"]

    classify_in_page(browser, POSITIVE)
    wait_for_label(browser, answer(POSITIVE))
    wait_for_explanation(browser, POSITIVE)  # POST /explain carries the key too
    # Many reviews: GET /model (the limits) and POST /classify, both with the key.
    by_test_id(browser, "batch-input").send_keys("\n".join(PASTED))
    browser.find_element(By.ID, "batch-score").click()
    assert wait_for_batch(browser).startswith("4 of 4 reviews scored")

    # The key stays for the tab (sessionStorage), never in localStorage or a cookie.
    browser.refresh()
    wait_for(
        browser,
        lambda: browser.execute_script("return document.documentElement.dataset.ready"),
        "the page's script",
    )
    assert by_test_id(browser, "api-key-input").get_attribute("value") == key
    assert browser.execute_script("return localStorage.length") == 0
    assert browser.get_cookies() == []
    classify_in_page(browser, NEGATIVE)
    wait_for_label(browser, answer(NEGATIVE))
    # The browser logs the refused requests, and nothing else.
    refused = (" 401 ", " 403 ")
    assert all(any(r in e["message"] for r in refused) for e in severe_browser_errors(browser))


@pytest.mark.slow
def test_a_keyed_server_s_docs_take_the_key_with_authorize(start_server, browser):
    key = "k3y-" + "c3" * 16
    server = start_server(API_KEYS=key)
    server.wait_ready("/ready")
    document = requests.get(server.url + "/openapi.json", timeout=5).json()
    operations = sum(m in ("get", "post") for item in document["paths"].values() for m in item)
    set_viewport(browser, *VIEWPORTS["desktop"])
    browser.get(server.url + "/docs")
    wait_for_swagger(browser, operations)
    # The service's own API first, TF Serving's and the protocol's last.
    tags = [tag.text for tag in browser.find_elements(By.CSS_SELECTOR, ".opblock-tag span")]
    assert tags[0] == "classify" and tags[-2:] == ["tensorflow-serving", "open-inference"], tags

    status, answer = try_classify_in_docs(browser)
    assert status == "401" and answer["error"]["code"] == "api_key_required"
    browser.find_element(By.CSS_SELECTOR, "button.btn.authorize").click()
    dialog = wait_for(
        browser, lambda: browser.find_elements(By.CSS_SELECTOR, ".modal-ux"), "the dialog"
    )[0]
    dialog.find_element(By.CSS_SELECTOR, "input").send_keys(key)
    dialog.find_element(By.CSS_SELECTOR, "button.authorize").click()
    dialog.find_element(By.CSS_SELECTOR, "button.btn-done").click()
    status, answer = try_classify_in_docs(browser)
    assert status == "200" and answer["label"] in ("negative", "neutral", "positive"), answer


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # not on the test's output
        pass


@pytest.fixture
def other_origins(tmp_path) -> Iterator[list[str]]:
    """Two more origins on 127.0.0.1 (their own ports), each serving an empty page: the
    browser apps of another team, one allowed to call the API and one not."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>another app</title>")
    handler = functools.partial(QuietFiles, directory=str(site))
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(2)]
    for httpd in servers:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield [f"http://127.0.0.1:{httpd.server_port}" for httpd in servers]
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


# Run in a page of another origin: classify with a key (JSON and Authorization make the
# browser ask first: a preflight), read the request id, then give feedback on it (the
# prediction is recorded off the request path: retried while it is not there yet).
CROSS_ORIGIN_CALLS = """
const [url, key, review, done] = arguments;
const headers = {"Content-Type": "application/json", "Authorization": "Bearer " + key};
const post = (path, body) =>
  fetch(url + path, {method: "POST", headers, body: JSON.stringify(body)});
(async () => {
  const answer = await post("/classify", {review});
  const id = answer.headers.get("X-Request-ID");
  const {label} = await answer.json();
  let feedback;
  for (let attempt = 0; attempt < 50; attempt++) {
    feedback = await post("/feedback", {request_id: id, label});
    if (feedback.status !== 404) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  done({status: answer.status, id, label, feedback: feedback.status});
})().catch((error) => done({error: error.name + ": " + error.message}));
"""


@pytest.mark.slow
def test_another_site_cannot_frame_the_page_or_the_docs(server, browser, other_origins):
    """Chromium refuses to show either page in another origin's frame (frame-ancestors),
    so the page, which may hold an API key, cannot be clicked through from a lure."""
    browser.get(other_origins[0] + "/")
    for path in ("/", "/docs"):
        browser.get_log("browser")  # start from an empty log
        browser.execute_script(
            "const frame = document.createElement('iframe'); frame.src = arguments[0];"
            " document.body.append(frame);",
            server.url + path,
        )
        wait_for(
            browser,
            lambda: [
                e for e in browser.get_log("browser") if "frame-ancestors 'none'" in e["message"]
            ],
            f"the frame of {path} refused",
        )


def test_a_browser_app_on_an_allowed_origin_calls_the_api(start_server, browser, other_origins):
    """CORS as Chromium enforces it: the listed origin classifies, reads X-Request-ID and
    sends feedback, with an API key; an origin not listed is refused by the browser."""
    allowed, other = other_origins
    key = "k3y-" + "c4" * 16
    server = start_server(API_KEYS=key, CORS_ORIGINS=allowed)
    server.wait_ready("/ready")
    browser.get(allowed + "/")
    result = browser.execute_async_script(CROSS_ORIGIN_CALLS, server.url, key, NEGATIVE)
    assert result["status"] == 200 and result["label"] == "negative", result
    assert re.fullmatch(r"[0-9a-f]{32}", result["id"]), result  # exposed to the script
    assert result["feedback"] == 200, result
    browser.get(other + "/")
    refused = browser.execute_async_script(CROSS_ORIGIN_CALLS, server.url, key, NEGATIVE)
    assert refused == {"error": "TypeError: Failed to fetch"}
