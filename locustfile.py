"""A realistic mix for longer load runs than scripts/bench.py: residents reading and writing, a clerk redeeming.

    pip install locust          # not a dependency of the project
    locust -f locustfile.py --host http://127.0.0.1:5000 -u 200 -r 20

The server needs the demo data (`flask seed-demo`: the district admin 13800000000 and the demo
community) and `RATELIMIT_ENABLED=false`, since every simulated resident registers from one address.
Each simulated resident registers a household of its own and logs in. The first one in each locust
process also sets up, through the API as the demo district admin, a merchant with a clerk and a
reward of 1 point with ample stock. About 80 % of the requests read (wallet, actions, rewards,
campaigns, me, allowances) and 20 % write: reports waiting for review, self-approved walking
credits, and redemptions (the resident takes a code, the clerk scans it). A household earns about
48 walking points a day before the walking cap, so a long run ends with some code requests refused
as `insufficient_points` (409, counted as expected).
"""
import random
import time
import uuid
from datetime import datetime, timezone

from gevent.lock import Semaphore
from locust import HttpUser, between, task

# Every request this file makes, by name: tests/test_scripts.py checks each against the app's routes.
ENDPOINTS = {
    "communities": ("GET", "/api/v1/communities"),
    "register": ("POST", "/api/v1/auth/register"),
    "login": ("POST", "/api/v1/auth/login"),
    "wallet": ("GET", "/api/v1/wallet"),
    "wallet entries": ("GET", "/api/v1/wallet/entries"),
    "allowances": ("GET", "/api/v1/wallet/allowances"),
    "actions": ("GET", "/api/v1/actions"),
    "rewards": ("GET", "/api/v1/rewards"),
    "campaigns": ("GET", "/api/v1/campaigns"),
    "me": ("GET", "/api/v1/me"),
    "report": ("POST", "/api/v1/actions"),
    "redemption code": ("POST", "/api/v1/redemption-codes"),
    "redeem": ("POST", "/api/v1/merchant/redemptions"),
    "merchant": ("POST", "/api/v1/merchants"),
    "staff": ("POST", "/api/v1/admin/staff"),
    "reward": ("POST", "/api/v1/merchants/{merchant_id}/rewards"),
}
DEMO_ADMIN, DEMO_PASSWORD = "13800000000", "demo-pass-2026"
PASSWORD = "locust-pass-1"
RELOGIN_SECONDS = 600  # well inside the default 15-minute access token


def call(client, name, token=None, body=None, expect=(200, 201), **params):
    """One request of ENDPOINTS, reported under its name; the reply's JSON, or None if unexpected."""
    method, template = ENDPOINTS[name]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with client.request(method, template.format(**params), name=name, json=body, headers=headers,
                        catch_response=True) as reply:
        if reply.status_code not in expect:
            reply.failure(f"{reply.status_code}: {reply.text[:200]}")
            return None
        reply.success()
        return reply.json() if reply.content else {}


def phone() -> str:
    return "16" + "".join(random.choices("0123456789", k=9))


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


def log_in(client, number, password) -> tuple[str, float]:
    tokens = call(client, "login", body={"phone": number, "password": password})
    if tokens is None:
        raise RuntimeError(f"cannot log in as {number}: is the demo data there (flask seed-demo)?")
    return tokens["access_token"], time.monotonic()


class Shop:
    """One merchant, its clerk and a 1-point reward per locust process, made on first use."""

    lock = Semaphore()
    ready = False

    @classmethod
    def get(cls, client) -> "type[Shop]":
        with cls.lock:
            if not cls.ready:
                cls.set_up(client)
            elif time.monotonic() - cls.clerk_since > RELOGIN_SECONDS:
                cls.clerk, cls.clerk_since = log_in(client, cls.clerk_phone, PASSWORD)
        return cls

    @classmethod
    def set_up(cls, client) -> None:
        admin, _ = log_in(client, DEMO_ADMIN, DEMO_PASSWORD)
        communities = call(client, "communities")["items"]
        community = next((c for c in communities if "演示" in c["name"]), communities[0])
        merchant = call(client, "merchant", admin, {"name": f"Locust shop {uuid.uuid4().hex[:8]}",
                                                    "community_id": community["id"]})
        cls.clerk_phone = phone()
        call(client, "staff", admin, {"phone": cls.clerk_phone, "password": PASSWORD, "display_name": "locust clerk",
                                      "role": "merchant_staff", "merchant_id": merchant["id"]})
        cls.clerk, cls.clerk_since = log_in(client, cls.clerk_phone, PASSWORD)
        reward = call(client, "reward", cls.clerk, {"name": "Locust tote", "points_cost": 1, "stock": 1_000_000},
                      merchant_id=merchant["id"])
        if reward is None:
            raise RuntimeError("cannot set up the merchant's reward (see the failures)")
        cls.community_id, cls.reward_id, cls.ready = community["id"], reward["id"], True


class Resident(HttpUser):
    wait_time = between(1, 3)

    def on_start(self):
        shop = Shop.get(self.client)
        self.phone = phone()
        tokens = call(self.client, "register", body={"phone": self.phone, "password": PASSWORD,
                                                     "display_name": "locust", "community_id": shop.community_id},
                      expect=(201,))
        if tokens is None:
            raise RuntimeError("registration refused: is RATELIMIT_ENABLED=false on the server?")
        self.token, self.since = tokens["access_token"], time.monotonic()
        self.walk()  # a few points to spend

    def call(self, name, body=None, expect=(200, 201), **params):
        if time.monotonic() - self.since > RELOGIN_SECONDS:
            self.token, self.since = log_in(self.client, self.phone, PASSWORD)
        return call(self.client, name, self.token, body, expect, **params)

    # ~80 % reads
    @task(30)
    def wallet(self):
        self.call("wallet")

    @task(12)
    def actions(self):
        self.call("actions")

    @task(12)
    def rewards(self):
        self.call("rewards")

    @task(10)
    def campaigns(self):
        self.call("campaigns")

    @task(6)
    def me(self):
        self.call("me")

    @task(5)
    def allowances(self):
        self.call("allowances")

    @task(5)
    def wallet_entries(self):
        self.call("wallet entries")

    # ~20 % writes
    @task(8)
    def report(self):
        """Recycling: waits for community staff."""
        self.call("report", {"action_type": "recycling", "variant": "paper", "quantity": "1.5", "unit": "kg",
                             "occurred_at": now()}, expect=(201,))

    @task(7)
    def walk(self):
        """Walking: self-approved, points at once (up to the daily cap)."""
        self.call("report", {"action_type": "walking", "quantity": "0.5", "unit": "km", "occurred_at": now()},
                  expect=(201,))

    @task(5)
    def redeem(self):
        """A code for the 1-point reward, scanned by the clerk."""
        shop = Shop.get(self.client)
        code = self.call("redemption code", {"reward_id": shop.reward_id}, expect=(201, 409))
        if code and "code" in code:
            call(self.client, "redeem", shop.clerk, {"code": code["code"]}, expect=(201,))
