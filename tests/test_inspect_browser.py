"""The page `lstmkit inspect` writes, in a real headless browser: Debian's chromium through chromedriver.

It must render without console errors, picking another cell must change the colouring, and
a screenshot is taken. ``.ci/run`` installs ``chromium`` and ``chromium-driver`` with apt-get;
where that is impossible (no root, no package mirror) this test skips and says why.
"""
from __future__ import annotations

import json
import shutil

import pytest

from cli_helpers import TINY, run_cli, write_text

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them with apt-get, "
           "which needs root and a package mirror)")


@pytest.fixture
def browser(monkeypatch):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements.txt)")
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager must never download a driver or browser
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,900", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_page_renders_and_reacts_in_chromium(browser, tmp_path, capsys, monkeypatch):
    from selenium.webdriver.common.by import By

    monkeypatch.setenv("LSTMKIT_ENGINE", "0")
    data = write_text(tmp_path)
    run = tmp_path / "run"
    assert run_cli("train", "charlm", "--data", data, *TINY, "--layers", 2, "--max-steps", 5, "--out", run,
                   capsys=capsys)[0] == 0
    page = tmp_path / "page.html"
    rc, _, err = run_cli("inspect", run, "--text", data, "--out", page, "--max-tokens", 400, capsys=capsys)
    assert rc == 0, err

    browser.get(page.as_uri())
    assert browser.execute_script("return document.body.dataset.ready") == "1"
    assert browser.execute_script("return document.querySelectorAll('#text span').length") == 400
    assert browser.execute_script("return [document.getElementById('heatmap').width, "
                                  "document.getElementById('heatmap').height]") == [400, 16]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#matches a.cell")) > 0

    def colouring():
        return browser.execute_script(
            "return Array.from(document.querySelectorAll('#text span')).map(s => s.style.backgroundColor)")

    before, cell = colouring(), browser.execute_script("return document.body.dataset.cell")
    assert len(set(before)) > 5  # the text is coloured, not uniform
    browser.find_element(By.ID, "next").click()  # a real click on the "next cell" button
    after = colouring()
    assert browser.execute_script("return document.body.dataset.cell") != cell and after != before

    select = browser.find_element(By.ID, "layer")  # another layer, through its <select>
    select.find_elements(By.TAG_NAME, "option")[0].click()
    browser.find_element(By.ID, "cell").clear()
    browser.find_element(By.ID, "cell").send_keys("3\n")
    assert browser.execute_script("return document.body.dataset.cell").endswith("/0/3")
    assert colouring() != after

    link = browser.find_elements(By.CSS_SELECTOR, "#matches a.cell")[-1]  # a cell from the search table
    link.click()
    assert browser.find_element(By.ID, "feature").get_attribute("value") != ""  # its feature is underlined

    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], json.dumps(errors, indent=1)
    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
