"""District pages in a real browser (headless Chromium): an export requested and downloaded, the dashboard drawn."""
import csv
import io
import time
from pathlib import Path

import pytest

from app.localtime import today
from tests.console.conftest import By, login, wait
from tests.console.district_data import district, last_months, mid_month, record  # noqa: F401  fixtures

pytestmark = pytest.mark.committing
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def downloaded(directory: Path, seconds: int = 20) -> Path:
    """The one file Chromium finished downloading into `directory`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done = [p for p in directory.iterdir() if not p.name.endswith((".crdownload", ".tmp"))]
        if done and not any(p.name.endswith(".crdownload") for p in directory.iterdir()):
            return done[0]
        time.sleep(0.2)
    raise AssertionError(f"nothing downloaded into {directory}: {list(directory.iterdir())}")


def test_an_admin_requests_an_export_watches_it_finish_and_downloads_the_csv(browser, admin, make_community,
                                                                            make_resident, record, tmp_path):
    community = make_community("浏览器导出社区")
    month = last_months()[4]
    for _ in range(5):
        record(make_resident(community_id=community.id), mid_month(month), "paper", "3")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})

    login(browser, admin.user.phone)
    browser.get(f"{browser.base_url}/console/district/exports")
    form = browser.find_element(By.ID, "export-form")
    for name, value in (("period_from", f"{month}-01"), ("period_to", str(today()))):
        browser.execute_script("arguments[0].value = arguments[1]", form.find_element(By.NAME, name), value)
    form.find_element(By.ID, "request-export").click()
    wait(browser, lambda driver: driver.find_element(By.ID, "export").get_attribute("data-status") == "done")
    assert browser.find_element(By.ID, "export-rows").text == "1"
    browser.find_element(By.ID, "download").click()

    rows = list(csv.reader(io.StringIO(downloaded(downloads).read_text(encoding="utf-8-sig"))))
    assert rows == [["community", "month", "actions", "households", "reduction_g", "verified_reduction_g", "points"],
                    ["浏览器导出社区", month, "5", "5", "15000", "15000", "1500"]]


def test_the_dashboard_draws_its_charts_and_a_screenshot_is_kept(browser, admin, district):
    login(browser, admin.user.phone)
    browser.set_window_size(1280, 1700)
    browser.get(f"{browser.base_url}/console/district/dashboard")
    wait(browser, lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "svg.chart")) == 4)

    bars = {bar.get_attribute("data-value"): bar.size["height"]
            for bar in browser.find_elements(By.CSS_SELECTOR, "#chart-communities rect.bar")}
    assert set(bars) == {"5650", "3600"}
    assert bars["5650"] > 0 and abs(bars["5650"] / bars["3600"] - 5650 / 3600) < 0.02
    points = browser.find_elements(By.CSS_SELECTOR, "#chart-households circle.point")
    assert [p.get_attribute("data-value") for p in points] == ["0", "0", "0", "2", "2", "0"]
    assert "9,250 g CO₂e" in browser.find_element(By.ID, "figure-reduction").text
    assert "各月各类行为减排量" in browser.find_element(By.ID, "chart-reductions").text
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "console-dashboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
