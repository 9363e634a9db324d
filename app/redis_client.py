"""One Redis client per URL and process, with bounded waits: a Redis that hangs must not hold a request.

Replay checks, leaderboards, export progress, the RQ queue and `/healthz` all use it; only the RQ
worker, whose blocking pops wait on purpose, opens its own connection (jobs.run_worker).
"""
from flask import current_app

_clients: dict = {}


def redis_client():
    """The client of REDIS_URL, or None when Redis is not configured."""
    url = current_app.config.get("REDIS_URL")
    if not url:
        return None
    client = _clients.get(url)
    if client is None:
        from redis import Redis

        client = _clients[url] = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    return client
