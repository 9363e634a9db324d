"""Live codes' digits are encrypted under the data keys: a new SECRET_KEY or `keys rotate` leaves them working."""
import base64
import io
import os

import zxingcpp
from PIL import Image

from app import keyring
from app.extensions import db
from app.rewards.models import RedemptionCode
from tests.rewards.builders import balance

API = "/api/v1"


def stored(code_id) -> RedemptionCode:
    return db.session.get(RedemptionCode, code_id, populate_existing=True)


def my_codes(client, person) -> dict:
    return {item["id"]: item["code"] for item in
            client.get(f"{API}/redemption-codes", headers=person.headers).get_json()["items"]}


def qr_digits(client, person, code) -> list[str]:
    reply = client.get(code["qr_png_url"], headers=person.headers)
    assert reply.status_code == 200, reply.get_data(as_text=True)
    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(reply.data)))]


def test_a_new_secret_key_leaves_live_codes_readable(app, client, resident, reward, fund, get_code, monkeypatch):
    fund(resident.household_id, 500)
    code = get_code(resident, reward)

    monkeypatch.setitem(app.config, "SECRET_KEY", "a-new-secret-key-after-a-leak-0123456789")

    assert my_codes(client, resident)[code["id"]] == code["code"]
    assert qr_digits(client, resident, code) == [code["code"]]


def test_keys_rotate_re_encrypts_codes_under_the_new_key_and_live_codes_keep_working(app, client, resident, clerk,
                                                                                     reward, fund, get_code,
                                                                                     monkeypatch):
    fund(resident.household_id, 500)
    live, used = get_code(resident, reward), get_code(resident, reward)
    client.post(f"{API}/merchant/redemptions", json={"code": used["code"]}, headers=clerk.headers)
    new = f"k2026b:{base64.b64encode(os.urandom(32)).decode()}"
    monkeypatch.setitem(app.config, "DATA_KEYS", f"{new},{keyring.DEV_DATA_KEYS}")

    result = app.test_cli_runner().invoke(args=["keys", "rotate"])

    assert result.exit_code == 0, result.output
    assert "2 redemption codes" in result.output
    assert stored(live["id"]).code_encrypted.startswith("k2026b:")
    assert stored(used["id"]).code_encrypted.startswith("k2026b:")
    monkeypatch.setitem(app.config, "DATA_KEYS", new)  # the old key removed
    assert my_codes(client, resident)[live["id"]] == live["code"]
    assert qr_digits(client, resident, live) == [live["code"]]
    assert qr_digits(client, resident, used) == [used["code"]]
    redeemed = client.post(f"{API}/merchant/redemptions", json={"code": live["code"]}, headers=clerk.headers)
    assert redeemed.status_code == 201, redeemed.get_data(as_text=True)
    assert balance(resident.household_id) == 300
