"""`ftc board` in a real browser: headless Chromium (Debian's package, installed by scripts/apt-ensure.sh where
missing) driven by Selenium, over the quickstart's run, with a screenshot of each page in the test's tmp dir."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the quickstart trains the tiny model first
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
TOKEN_VARIABLE = "FTC_BOARD_TEST_TOKEN"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_board(folder: Path, *options: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = [sys.executable, "-m", "ftc", "board", str(folder), "--port", str(port), *options]
    board = subprocess.Popen(
        command, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return board, port
        except OSError:
            assert board.poll() is None, board.stdout.read().decode()
            assert time.monotonic() < deadline, "the board did not start"
            time.sleep(0.1)


def stop(board: subprocess.Popen) -> None:
    board.terminate()
    board.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    installed = subprocess.run(
        [str(SCRIPTS / "apt-ensure.sh"), "chromium=chromium", "chromedriver=chromium-driver"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if installed.returncode != 0:
        pytest.skip(f"no headless Chromium here: {installed.stderr.strip()}")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1600"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A board folder holding the quickstart: its spec, and the run `ftc quickstart` trained from it."""
    folder = tmp_path_factory.mktemp("board")
    trained = subprocess.run(
        [sys.executable, "-m", "ftc", "quickstart", str(folder / "qs"), "--steps", "6"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    return folder


@pytest.fixture(scope="module")
def board_url(workspace) -> Iterator[str]:
    board, port = start_board(workspace)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop(board)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def wait(driver, until, seconds: float = 15):
    # The page redraws what it shows on each answer: an element found a moment ago may be gone, so ask again.
    ignored = (StaleElementReferenceException, NoSuchElementException)
    return WebDriverWait(driver, seconds, poll_frequency=0.1, ignored_exceptions=ignored).until(lambda _: until())


def test_the_runs_list_shows_the_quickstarts_run(browser, board_url, screenshots):
    browser.get(board_url + "#runs")
    row = wait(browser, lambda: browser.find_elements(By.CSS_SELECTOR, 'tr[data-path="qs/runs/quickstart"]'))[0]
    state = row.find_element(By.CSS_SELECTOR, ".state")
    assert state.text == "done" and state.get_attribute("title") == "exit status 0"  # the local target's record
    assert row.find_element(By.CSS_SELECTOR, ".run-step").text == "5 of 6"  # logged every 5 steps, of max_steps 6
    assert {"sft", "lora", "local"} <= {cell.text for cell in row.find_elements(By.TAG_NAME, "td")}
    browser.save_screenshot(str(screenshots / "runs.png"))


def test_the_run_page_draws_a_point_per_logged_loss_and_the_memory_bars(browser, board_url, workspace, screenshots):
    metrics = json.loads((workspace / "qs" / "runs" / "quickstart" / "metrics.json").read_text())
    browser.get(board_url + "#runs")
    wait(browser, lambda: browser.find_elements(By.CSS_SELECTOR, 'tr[data-path="qs/runs/quickstart"]'))[0].click()
    points = wait(browser, lambda: browser.find_elements(By.CSS_SELECTOR, "svg#chart-loss circle.point"))
    assert len(points) == len(metrics["log"]) == 2
    memory_rows = browser.find_elements(By.CSS_SELECTOR, "#run-memory .row")
    assert [row.text.split("\n")[0] for row in memory_rows][-2:] == ["planned peak", "measured (process RSS)"]
    assert "[lora]" in browser.find_element(By.ID, "run-spec").text
    assert browser.find_element(By.ID, "cancel").get_attribute("disabled") is not None  # a finished run
    browser.save_screenshot(str(screenshots / "run.png"))


def set_toml(driver, text: str) -> None:
    driver.execute_script(
        "const area = document.querySelector('#toml'); area.value = arguments[0];"
        "area.dispatchEvent(new Event('input'));",
        text,
    )


def test_the_editor_puts_a_typo_at_its_key_and_plans_the_fixed_spec(browser, board_url, workspace, screenshots):
    spec = (workspace / "qs" / "quickstart.toml").read_text()
    browser.get(board_url + "#editor=qs/quickstart.toml")
    wait(browser, lambda: browser.find_elements(By.CSS_SELECTOR, "#plan-memory .bar[data-term]"))
    set_toml(browser, spec.replace("rank = 16", "rnak = 16"))
    error = wait(browser, lambda: browser.find_elements(By.CSS_SELECTOR, '[data-section="lora"] .field-error'))[0]
    assert error.get_attribute("data-key") == "lora.rnak" and "did you mean 'rank'" in error.text
    assert not browser.find_elements(By.CSS_SELECTOR, "#plan-memory")
    browser.save_screenshot(str(screenshots / "editor-typo.png"))

    set_toml(browser, spec)
    browser.find_element(By.CSS_SELECTOR, '#hardware option[value="A10G-24GB"]').click()
    fits = wait(
        browser,
        lambda: "A10G" in browser.find_element(By.ID, "plan-fits").text and browser.find_element(By.ID, "plan-fits"),
    )
    assert fits.text.startswith("fits on 1xA10G-24GB") and "of 22.50 GiB per device" in fits.text
    terms = {bar.get_attribute("data-term") for bar in browser.find_elements(By.CSS_SELECTOR, "#plan-memory .bar")}
    assert {"weights", "activations", "reserved"} <= terms
    assert not browser.find_elements(By.CSS_SELECTOR, ".field-error")

    rank = browser.find_element(By.CSS_SELECTOR, 'input[data-key="lora.rank"]')
    rank.clear()
    rank.send_keys("32\t")  # a form edit: written into the TOML, the comments around it kept
    wait(browser, lambda: "rank = 32" in browser.find_element(By.ID, "toml").get_property("value"))
    time.sleep(0.5)  # past the text's own re-check: an older answer must not put the old rank back in the form
    assert rank.get_property("value") == "32"
    text = browser.find_element(By.ID, "toml").get_property("value")
    assert 'target = "all"                  # every linear layer but the output head' in text
    browser.save_screenshot(str(screenshots / "editor.png"))
    assert (workspace / "qs" / "quickstart.toml").read_text() == spec  # nothing saved until Save


def test_beyond_loopback_the_page_needs_its_token(browser, workspace, screenshots):
    board, port = start_board(workspace, "--host", "0.0.0.0", "--auth-env", TOKEN_VARIABLE, env={TOKEN_VARIABLE: "t0k"})
    try:
        url = f"http://127.0.0.1:{port}/"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "api/runs", timeout=10)
        assert refused.value.code == 401
        browser.get(url)
        assert "needs its token" in browser.find_element(By.TAG_NAME, "body").text
        browser.get(url + "?token=t0k#runs")  # logs in: a cookie, and the address loses the token
        wait(browser, lambda: browser.find_elements(By.CSS_SELECTOR, 'tr[data-path="qs/runs/quickstart"]'))
        assert "token" not in browser.current_url
        browser.save_screenshot(str(screenshots / "login.png"))
    finally:
        stop(board)


def test_launch_runs_the_saved_spec_and_its_page_follows_it_to_the_end(browser, board_url, workspace, screenshots):
    spec_file = workspace / "qs" / "quickstart.toml"
    browser.get(board_url + "#editor=qs/quickstart.toml")
    wait(browser, lambda: browser.find_elements(By.CSS_SELECTOR, "#plan-memory .bar[data-term]"))
    set_toml(browser, spec_file.read_text().replace('dir = "runs/quickstart"', 'dir = "runs/from-board"'))
    browser.find_element(By.CSS_SELECTOR, '#hardware option[value="cpu"]').click()
    wait(browser, lambda: "on 1xcpu" in browser.find_element(By.ID, "plan-fits").text)
    browser.find_element(By.ID, "launch").click()
    wait(browser, lambda: "#run=" in browser.current_url, seconds=30)
    assert 'dir = "runs/from-board"' in spec_file.read_text()  # Launch saves first
    run_dir = workspace / "qs" / "runs" / "from-board"
    # Read in one script: the page redraws the run every 2 s, so elements found earlier go stale.
    state = "return document.querySelector('#run-summary .state')?.textContent"
    wait(browser, lambda: browser.execute_script(state) == "done", seconds=180)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    points = "return document.querySelectorAll('svg#chart-loss circle.point').length"
    assert browser.execute_script(points) == len(metrics["log"]) == 2
    log = browser.execute_script("return document.querySelector('#run-log').textContent")
    assert "ftc runtime · sft · lora" in log  # the launch's own output, logged by the board
    browser.save_screenshot(str(screenshots / "launched.png"))
