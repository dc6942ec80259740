"""The try-the-model page (``GET /``): its HTML and assets, then a real Chromium on a real
Gunicorn, at a phone's and a desktop's window size."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from app.config import PROJECT_ROOT

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
POSITIVE = "The crew was friendly, the seats were comfortable and we landed early. Thank you!"
NEGATIVE = "Three hours late, lost my bag and nobody at the desk would help. Never again."
# WCAG 2.1 AA: normal text needs a contrast ratio of at least 4.5:1.
MIN_CONTRAST = 4.5
TEXT_SELECTORS = [
    "h1",
    ".model",
    "label",
    ".hint",
    "button",
    ".error p",
    ".error li",
    ".summary",
    "#label",
    ".name",
    ".value",
    ".site-footer a",
]


# --- The page and its assets, through the test client ------------------------------------


def test_page_has_the_form_the_result_region_and_the_model(client, app):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    bundle = app.extensions["models"].registry.stable.bundle
    assert '<label for="review">' in html and '<textarea id="review"' in html
    assert 'role="alert"' in html and 'aria-live="polite"' in html
    assert '<a href="/docs">' in html
    assert f'<strong id="model-name">{bundle.name}</strong>' in html
    assert f'<strong id="model-version">{bundle.version}</strong>' in html


@pytest.mark.parametrize(
    ("path", "mimetypes"),
    [
        ("/static/style.css", {"text/css"}),
        ("/static/classify.js", {"text/javascript", "application/javascript"}),
    ],
)
def test_static_files_have_a_content_type_that_nosniff_accepts(client, path, mimetypes):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype in mimetypes
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    response.close()


def test_page_loads_nothing_from_other_hosts(client):
    for path in ("/", "/static/style.css", "/static/classify.js"):
        response = client.get(path)
        text = response.get_data(as_text=True)
        response.close()
        # No absolute or protocol-relative URL, no web font, no CSS import.
        assert not re.search(r"https?://|[\"'(]//\w|@import|@font-face", text), path


# --- A real browser on a real server ------------------------------------------------------


@pytest.fixture
def browser(tmp_path) -> Iterator[webdriver.Chrome]:
    """Headless Chromium with a fresh profile, driven by Debian's chromedriver."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.skip(
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


def bars(driver: webdriver.Chrome) -> list[dict]:
    """Each class's bar as drawn: class name, filled fraction of its track, percentage."""
    return driver.execute_script(
        """
        return [...document.querySelectorAll("#scores .score")].map((item) => ({
          name: item.dataset.class,
          fraction: item.querySelector(".fill").getBoundingClientRect().width
            / item.querySelector(".bar").getBoundingClientRect().width,
          text: item.querySelector(".value").textContent,
        }));
        """
    )


def assert_bars_match(driver: webdriver.Chrome, scores: dict[str, float]) -> None:
    """One bar per class, in the API's order, as wide as its probability (after the
    width transition ends)."""

    def drawn() -> bool:
        current = bars(driver)
        return [bar["name"] for bar in current] == list(scores) and all(
            abs(bar["fraction"] - scores[bar["name"]]) < 0.01 for bar in current
        )

    wait_for(driver, drawn, f"bars matching {scores}, got {bars(driver)}")
    assert [bar["text"] for bar in bars(driver)] == [f"{p * 100:.1f}%" for p in scores.values()]


def assert_fits_the_window(driver: webdriver.Chrome, width: int) -> None:
    layout = driver.execute_script(
        """
        const root = document.documentElement;
        const widest = Math.max(...[...document.querySelectorAll("body *")]
          .filter((el) => el.getClientRects().length)
          .map((el) => el.getBoundingClientRect().right));
        return {inner: window.innerWidth, scroll: root.scrollWidth, client: root.clientWidth,
                widest: widest};
        """
    )
    assert layout["inner"] == width
    assert layout["scroll"] <= layout["client"], f"horizontal scroll: {layout}"
    assert layout["widest"] <= width, f"an element sticks out: {layout}"


def contrast_problems(driver: webdriver.Chrome) -> list[str]:
    """Visible text whose colour on its effective background is below ``MIN_CONTRAST``."""
    found = driver.execute_script(
        """
        const rgb = (css) => css.match(/[\\d.]+/g).map(Number);
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


@pytest.mark.slow
def test_page_in_a_real_browser(start_server, browser):
    server = start_server(WEB_CONCURRENCY="1")
    server.wait_ready("/ready")
    info = requests.get(server.url + "/model", timeout=5).json()
    expected = {
        text: requests.post(server.url + "/classify", json={"review": text}, timeout=5).json()
        for text in (POSITIVE, NEGATIVE)
    }
    empty_error = requests.post(server.url + "/classify", json={"review": ""}, timeout=5).json()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    for device, (width, height) in VIEWPORTS.items():
        set_viewport(browser, width, height)
        browser.get(server.url + "/")
        assert browser.title == "Sentiment classifier"
        assert browser.find_element(By.ID, "model-name").text == info["name"]
        assert browser.find_element(By.ID, "model-version").text == info["version"]
        assert browser.find_element(By.LINK_TEXT, "API documentation").get_attribute("href") == (
            server.url + "/docs"
        )
        assert_fits_the_window(browser, width)
        browser.save_screenshot(str(SCREENSHOTS / f"{device}-empty.png"))

        # Type a review and click Classify.
        review = browser.find_element(By.ID, "review")
        review.send_keys(POSITIVE)
        browser.find_element(By.ID, "classify").click()
        label = wait_for(
            browser, lambda: browser.find_elements(By.ID, "label"), "the predicted label"
        )[0]
        assert label.text.lower() == expected[POSITIVE]["label"]
        assert browser.find_element(By.ID, "summary").get_attribute("aria-live") == "polite"
        assert_bars_match(browser, expected[POSITIVE]["scores"])
        assert not browser.find_element(By.ID, "error").is_displayed()
        assert_fits_the_window(browser, width)
        assert contrast_problems(browser) == []
        browser.save_screenshot(str(SCREENSHOTS / f"{device}-result.png"))

        # The keyboard alone: Ctrl+Enter in the text area submits.
        review.clear()
        review.send_keys(NEGATIVE)
        review.send_keys(Keys.CONTROL, Keys.ENTER)
        wait_for(
            browser,
            lambda: (
                browser.find_element(By.ID, "label").text.lower() == expected[NEGATIVE]["label"]
            ),
            "the label for the negative review",
        )
        assert_bars_match(browser, expected[NEGATIVE]["scores"])

        # Empty text: the API's message and per-field detail, in the alert.
        review.clear()
        browser.find_element(By.ID, "classify").click()
        alert = browser.find_element(By.CSS_SELECTOR, '[role="alert"]')
        wait_for(browser, alert.is_displayed, "the error alert")
        assert empty_error["error"]["message"] in alert.text
        for message in empty_error["error"]["details"]["review"]:
            assert message in alert.text
        assert review.get_attribute("aria-invalid") == "true"
        assert not browser.find_element(By.ID, "result").is_displayed()
        assert_fits_the_window(browser, width)
        assert contrast_problems(browser) == []
        browser.save_screenshot(str(SCREENSHOTS / f"{device}-error.png"))

    # Focus is visible: Tab from the text area reaches the button, which gets a ring.
    review = browser.find_element(By.ID, "review")
    review.click()
    review.send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.get_attribute("id") == "classify"
    assert focused.value_of_css_property("outline-style") == "solid"
    assert float(focused.value_of_css_property("outline-width").removesuffix("px")) >= 2

    # A dark system theme keeps every text readable too.
    set_viewport(browser, *VIEWPORTS["phone"])
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    review.clear()
    review.send_keys(POSITIVE + Keys.CONTROL + Keys.ENTER)
    wait_for(browser, browser.find_element(By.ID, "result").is_displayed, "the dark result")
    assert_bars_match(browser, expected[POSITIVE]["scores"])
    assert contrast_problems(browser) == []
    browser.save_screenshot(str(SCREENSHOTS / "phone-dark-result.png"))

    # The page loaded every asset and ran without a script error.
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    # The empty review's 400 is logged by Chromium as a failed resource; nothing else is.
    assert all("/classify" in entry["message"] and "400" in entry["message"] for entry in errors)
    assert Path(SCREENSHOTS / "phone-result.png").stat().st_size > 0
