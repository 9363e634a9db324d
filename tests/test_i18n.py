"""Problem replies in Simplified Chinese for `Accept-Language: zh…`, English otherwise; `code` never changes."""
import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

import app as app_package
from app.errors import HTTP_CODES, AppError
from app.i18n import TRANSLATIONS_DIR, translate
from tests.activities.conftest import action_body

API = "/api/v1"
CJK = re.compile(r"[\u4e00-\u9fff]")
PO = TRANSLATIONS_DIR / "zh" / "LC_MESSAGES" / "messages.po"


def every_app_error() -> list[type[AppError]]:
    """Every AppError subclass the app defines (every module imported first)."""
    for module in pkgutil.walk_packages(app_package.__path__, "app."):
        importlib.import_module(module.name)
    found, todo = [], [AppError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def in_chinese(app, text: str) -> str:
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        return translate(text)


@pytest.mark.parametrize("error", every_app_error(), ids=lambda cls: f"{cls.__name__}:{cls.code}")
def test_every_error_class_has_an_english_and_a_chinese_title(app, error):
    chinese = in_chinese(app, error.title)

    assert error.title and not CJK.search(error.title)
    assert chinese != error.title and CJK.search(chinese), error.title


@pytest.mark.parametrize("status", sorted(HTTP_CODES))
def test_every_http_error_code_has_an_english_and_a_chinese_title(app, status):
    code, title = HTTP_CODES[status]

    assert CJK.search(in_chinese(app, title)), (code, title)


def test_the_catalogue_keeps_every_placeholder_and_is_not_committed_compiled():
    with PO.open("rb") as handle:
        catalogue = read_po(handle, locale="zh")

    for message in catalogue:
        if message.id:
            assert message.string and not message.fuzzy, message.id
            assert set(re.findall(r"%\((\w+)\)s", message.id)) == set(re.findall(r"%\((\w+)\)s", message.string))
    assert not list(Path(TRANSLATIONS_DIR).rglob("*.mo"))


@pytest.mark.parametrize("header,language", [
    ("zh", "zh"), ("zh-CN", "zh"), ("zh-Hans", "zh"), ("zh-Hans-CN", "zh"), ("zh_TW", "zh"),
    ("fr-FR, zh-CN;q=0.5", "zh"), ("en-US", "en"), ("en;q=0.9, zh;q=0.8", "en"), ("fr", "en"), ("*", "en"),
    ("zh;q=0, en;q=0.1", "en"), (None, "en"),
])
def test_the_language_follows_accept_language(client, header, language):
    headers = {"Accept-Language": header} if header else {}

    reply = client.get(f"{API}/no-such-route", headers=headers)

    body = reply.get_json(force=True)
    assert reply.status_code == 404 and body["code"] == "not_found"
    assert reply.headers["Content-Language"] == language and "Accept-Language" in reply.headers["Vary"]
    assert bool(CJK.search(body["title"] + body["detail"])) == (language == "zh")


def test_a_chinese_422_translates_title_detail_and_every_field_message(client, factor_set, resident):
    body = action_body(quantity="1.2345", unit="kilo", surprise=True)
    body.pop("occurred_at")

    reply = client.post(f"{API}/actions", json=body, headers={**resident.headers, "Accept-Language": "zh-CN"})

    problem = reply.get_json()
    assert reply.status_code == 422 and problem["code"] == "validation_error"
    assert problem["title"] == "请求中有无效字段"
    assert problem["detail"] == "部分字段无效，`errors` 中逐一列出"
    assert problem["errors"] == {
        "quantity": ["须符合格式 ^[0-9]{1,6}(\\.[0-9]{1,3})?$。"],
        "occurred_at": ["缺少必填字段。"],
        "surprise": ["未知字段。"],
    }


def test_the_422_for_an_action_residents_may_not_log_says_in_chinese_who_records_it(client, factor_set, resident):
    reply = client.post(f"{API}/actions", headers={**resident.headers, "Accept-Language": "zh"}, json=action_body(
        action_type="waste_sorting", variant="correct_sort", unit="event", quantity="1"))

    assert reply.get_json()["errors"]["action_type"] == [
        "居民不能自行上报此行为；由社区工作人员或智能设备（智能垃圾箱 / 回收站电子秤 / 公交闸机）记录后才会计入积分。"]


def test_values_a_client_sends_back_stay_as_they_are(client, staff):
    reply = client.get(f"{API}/review/actions?status=lost&limit=0", headers={**staff.headers, "Accept-Language": "zh"})

    errors = reply.get_json()["errors"]
    assert errors["status"] == ["须为以下之一：pending, approved, rejected, reversed。"]
    assert errors["limit"] == ["须大于等于 1 且小于等于 100。"]


def test_business_refusals_and_their_details_are_translated_and_the_code_kept(client, factor_set, resident, staff):
    action = client.post(f"{API}/actions", json=action_body(), headers=resident.headers).get_json()
    client.post(f"{API}/review/actions/{action['id']}/approve", headers=staff.headers)

    english = client.post(f"{API}/review/actions/{action['id']}/approve", headers=staff.headers).get_json()
    chinese = client.post(f"{API}/review/actions/{action['id']}/approve",
                          headers={**staff.headers, "Accept-Language": "zh-Hans"}).get_json()

    assert english["code"] == chinese["code"] == "invalid_state"
    assert english["detail"] == "Only a pending action can be approved; this one is approved"
    assert chinese["title"] == "对象当前状态不允许此操作"
    assert chinese["detail"] == "只有待审核的行为可以通过，此行为状态为已通过"


def test_roles_are_named_in_chinese_in_a_403(client, resident):
    reply = client.get(f"{API}/review/actions", headers={**resident.headers, "Accept-Language": "zh"})

    assert reply.status_code == 403 and reply.get_json()["code"] == "forbidden"
    assert reply.get_json()["detail"] == "此操作需要角色：社区工作人员"


def test_a_rate_limited_reply_is_translated_and_keeps_retry_after(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_LIMIT", "1/minute")
    login = {"phone": "13912345678", "password": "whatever-123"}
    client.post(f"{API}/auth/login", json=login)

    reply = client.post(f"{API}/auth/login", json=login, headers={"Accept-Language": "zh-CN"})

    assert reply.status_code == 429 and reply.get_json()["code"] == "rate_limited"
    assert reply.get_json()["title"] == "请求过于频繁" and int(reply.headers["Retry-After"]) >= 1


def test_english_stays_the_default_and_successes_are_untouched(client, factor_set):
    assert client.get(f"{API}/factors", headers={"Accept-Language": "zh"}).get_json()["factor_set"]["code"]
    assert client.get(f"{API}/no-such-route").get_json()["title"] == "Not found"
