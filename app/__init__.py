"""Songjiang Carbon Credit: the application factory."""
import logging

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .config import check_production, load_config
from .extensions import api, db, limiter, migrate

API_PREFIX = "/api/v1"


def create_app(overrides: dict | None = None) -> Flask:
    """Build the app from the environment, with `overrides` on top (tests, scripts)."""
    app = Flask(__name__, instance_relative_config=False)
    app.config.update(load_config())
    if overrides:
        app.config.update(overrides)
    check_production(app.config)
    app.json.sort_keys = False
    logging.basicConfig(level=app.config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s %(message)s")

    _prepare_sqlite(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(_migrations_dir()), compare_type=True, render_as_batch=True)
    limiter.init_app(app)
    api.init_app(app)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})

    from . import models  # noqa: F401  every table, for migrations and create_all
    from .errors import register_error_handlers

    register_error_handlers(app)
    _register_blueprints(app)
    _register_hooks(app)

    from .cli import register_cli

    register_cli(app)
    return app


def _migrations_dir():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "migrations"


def _register_blueprints(app: Flask) -> None:
    from .accounts.routes import bp as accounts_bp
    from .health import bp as health_bp
    from .ledger.routes import bp as ledger_bp

    api.register_blueprint(health_bp)
    for bp in (accounts_bp, ledger_bp, *_feature_blueprints()):
        api.register_blueprint(bp, url_prefix=API_PREFIX)


def _feature_blueprints():
    """Blueprints of the feature packages beyond accounts and the ledger."""
    from .activities.routes import bp as activities_bp
    from .integrations.routes import bp as integrations_bp
    from .merchants.routes import bp as merchants_bp
    from .rewards.routes import bp as rewards_bp
    from .campaigns.routes import bp as campaigns_bp

    return [activities_bp, rewards_bp, integrations_bp, merchants_bp, campaigns_bp]


def _register_hooks(app: Flask) -> None:
    from . import jobs

    @app.after_request
    def _dispatch_jobs(response):
        jobs.dispatch()
        return response

    @app.teardown_appcontext
    def _forget_staged_jobs(exc):
        db.session.info.pop("staged_jobs", None)


def _prepare_sqlite(app: Flask) -> None:
    """SQLite: WAL, a generous busy timeout, and write transactions that lock up front."""
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if not uri.startswith("sqlite"):
        return
    if uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
        from pathlib import Path

        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    options.pop("pool_pre_ping", None)
    connect_args = dict(options.get("connect_args") or {})
    connect_args.setdefault("timeout", 30)
    connect_args.setdefault("check_same_thread", False)
    options["connect_args"] = connect_args
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


@event.listens_for(Engine, "connect")
def _sqlite_on_connect(dbapi_connection, connection_record):
    import sqlite3

    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin_immediate(conn):
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
