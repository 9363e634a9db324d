"""The console in a real browser (headless Chromium through Selenium) against a real server thread."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.campaigns.models import Campaign
from app.columns import utcnow
from app.extensions import db
from app.localtime import SHANGHAI
from tests.activities.conftest import action_body
from tests.console.conftest import By, login, wait

pytestmark = pytest.mark.committing
API = "/api/v1"


def balance(client, person) -> int:
    return client.get(f"{API}/wallet", headers=person.headers).get_json()["balance"]


def test_staff_log_in_and_approve_an_action_from_the_queue_and_the_wallet_shows_it(browser, client, factor_set,
                                                                                  resident, staff):
    reported = client.post(f"{API}/actions", json=action_body(evidence="photo: 旧报纸一捆"), headers=resident.headers)
    action_id = reported.get_json()["id"]
    assert balance(client, resident) == 0

    login(browser, staff.user.phone)
    browser.get(f"{browser.base_url}/console/review")
    item = browser.find_element(By.ID, f"action-{action_id}")
    assert "photo: 旧报纸一捆" in item.text and "250" in item.find_element(By.CSS_SELECTOR, ".points-if-approved").text
    item.find_element(By.CSS_SELECTOR, "button.approve").click()
    wait(browser, lambda driver: "已入账 250 积分" in driver.find_element(By.TAG_NAME, "main").text)

    assert balance(client, resident) == 250
    assert not browser.find_elements(By.ID, f"action-{action_id}")


def test_staff_create_and_activate_a_campaign_in_the_browser(browser, client, factor_set, staff):
    login(browser, staff.user.phone)
    browser.get(f"{browser.base_url}/console/campaigns")

    browser.find_element(By.ID, "campaign-name").send_keys("浏览器测试活动")
    ends = (utcnow() + timedelta(days=3)).astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    browser.execute_script("arguments[0].value = arguments[1]", browser.find_element(By.ID, "ends_at"), ends)
    browser.find_element(By.ID, "budget_points").send_keys("500")
    browser.find_element(By.ID, "campaign-create").click()
    wait(browser, lambda driver: driver.find_elements(By.ID, "campaign-activate"))
    assert browser.find_element(By.ID, "campaign-status").get_attribute("data-status") == "draft"
    browser.find_element(By.ID, "campaign-activate").click()
    wait(browser, lambda driver: driver.find_element(By.ID, "campaign-status").get_attribute("data-status") == "active")

    campaign_id = db.session.scalar(select(Campaign.id).where(Campaign.name == "浏览器测试活动"))
    db.session.commit()
    view = client.get(f"{API}/campaigns/{campaign_id}", headers=staff.headers).get_json()
    assert view["status"] == "active" and view["budget_remaining"] == 500


def test_a_resident_is_turned_away_at_the_login_form(browser, resident):
    phone = resident.user.phone
    db.session.commit()  # on SQLite every transaction takes the write lock: hold none while the server works
    browser.get(f"{browser.base_url}/console/login")
    browser.find_element(By.ID, "phone").send_keys(phone)
    browser.find_element(By.ID, "password").send_keys("correct-horse-9")
    browser.find_element(By.ID, "login-button").click()

    wait(browser, lambda driver: "管理后台仅供" in driver.find_element(By.TAG_NAME, "main").text)
    browser.get(f"{browser.base_url}/console/review")
    assert "/console/login" in browser.current_url
