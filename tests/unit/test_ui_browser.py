"""The planner page in a real headless browser (Debian's chromium + chromium-driver, Selenium):
load the page, run a plan, read the top row, download the report. Skips, with the reason, when
no browser is installed (README: "Web UI")."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("streamlit", reason="the ui extra (streamlit) is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="no headless browser: apt-get install -y chromium chromium-driver",
)
APP = Path(__file__).resolve().parents[2] / "servesim" / "ui" / "app.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server():
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(APP.parents[2])}
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
           "--server.headless", "true", "--browser.gatherUsageStats", "false"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _browser(download_dir: Path):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1600,2400"):  # fmt: skip
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                           "download.prompt_for_download": False})  # fmt: skip
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    drv.execute_cdp_cmd("Page.setDownloadBehavior",
                        {"behavior": "allow", "downloadPath": str(download_dir)})  # fmt: skip
    return drv


def _set_number(drv, label: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = drv.find_element(By.XPATH, f"//input[@aria-label={label!r}]")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(value, Keys.TAB)


def test_browser_loads_runs_a_plan_reads_top_row_and_downloads_report(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    drv = _browser(tmp_path)
    try:
        drv.get(server)
        wait = WebDriverWait(drv, 120)
        wait.until(ec.presence_of_element_located((By.XPATH, "//button[.//p[text()='Run plan']]")))
        wait.until(
            ec.presence_of_element_located((By.XPATH, "//input[@aria-label='Input tokens']"))
        )
        print("page loaded:", drv.title)
        _set_number(drv, "Input tokens", "256")
        _set_number(drv, "Output tokens", "64")
        drv.find_element(By.XPATH, "//summary[.//p[text()='Search and pricing']]").click()
        _set_number(drv, "Max simulations", "2")
        _set_number(drv, "Requests per day level", "20")
        _set_number(drv, "Requests per search run (0: a minute of traffic)", "40")
        drv.find_element(By.XPATH, "//button[.//p[text()='Run plan']]").click()
        top = wait.until(ec.presence_of_element_located(
            (By.XPATH, "//h3[starts-with(normalize-space(.), 'Top option:')]")))  # fmt: skip
        text = top.text
        print("top row:", text)
        assert "/month" in text and "/Mtok" in text
        button = wait.until(ec.element_to_be_clickable(
            (By.XPATH, "//button[.//p[text()='Download report']]")))  # fmt: skip
        button.click()
        report = tmp_path / "report.md"
        for _ in range(60):
            if report.exists() and report.stat().st_size > 0:
                break
            time.sleep(0.5)
        body = report.read_text(encoding="utf-8")
        print("report:", len(body), "bytes;", body.splitlines()[0])
        assert body.startswith("# Capacity plan: llama-3.1-8b")
        assert "## Options (ranked)" in body
    finally:
        drv.quit()
