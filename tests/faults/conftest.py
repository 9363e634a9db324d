"""Real processes for the fault tests: a private redis-server, the API under gunicorn, `flask worker`s."""
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.faults import env_for, free_port, redis_server_binary
from tests.integrations.conftest import device, make_integration, operator  # noqa: F401  fixtures
from tests.rewards.builders import clerk, fund, make_merchant, make_reward, merchant, reward  # noqa: F401  fixtures

ROOT = Path(__file__).resolve().parents[2]


class PrivateRedis:
    """A redis-server of this test alone, on its own port: stopping it touches no other test or session."""

    def __init__(self, workdir: Path):
        self.port, self.workdir, self.process = free_port(), workdir, None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):  # a plain connect: redis-py would retry each failed ping with a backoff
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.025)
        raise AssertionError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """Kill it, as a crash would (SIGKILL: no save, no goodbye to clients)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def _log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""


class Processes:
    """Starts the API and workers as real processes on the test database; stops what is left at the end."""

    def __init__(self, app, workdir: Path):
        self.app, self.workdir, self.started = app, workdir, []

    def _spawn(self, name: str, argv: list, env: dict) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        process.log_path = self.workdir / f"{name}.log"
        self.started.append(process)
        return process

    def api(self, **env) -> str:
        """gunicorn with one worker; returns its base URL once /healthz answers."""
        port = free_port()
        process = self._spawn("api", [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind",
                                      f"127.0.0.1:{port}", "--timeout", "60", "app:create_app()"],
                              env_for(self.app, **env))
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            assert process.poll() is None, "the API exited:\n" + _log_tail(process.log_path)
            try:
                requests.get(f"{base}/healthz", timeout=10)
                return base
            except requests.RequestException:
                time.sleep(0.05)
        raise AssertionError("the API did not start:\n" + _log_tail(process.log_path))

    def flask(self, name: str, *args, **env) -> subprocess.Popen:
        return self._spawn(name, [sys.executable, "-m", "flask", "--app", "app", *args], env_for(self.app, **env))

    def finish(self, process: subprocess.Popen, timeout: float = 120) -> str:
        """Wait for a process to exit by itself (a burst worker, a command); return its log."""
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError("still running after %ss:\n%s" % (timeout, _log_tail(process.log_path)))
        log = _log_tail(process.log_path)
        assert code == 0, log
        return log

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)


@pytest.fixture
def processes(app, tmp_path):
    running = Processes(app, tmp_path)
    yield running
    running.stop_all()
