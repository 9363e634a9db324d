"""Songjiang Carbon Credit: the application factory."""
import logging

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .config import load_config, settle_limit_storage, settle_secrets
from .extensions import api, begin_sqlite_transactions, db, limiter, migrate
from .keyring import check_data_keys

API_PREFIX = "/api/v1"


def create_app(overrides: dict | None = None) -> Flask:
    """Build the app from the environment, with `overrides` on top (tests, scripts)."""
    app = Flask(__name__, instance_relative_config=False)
    app.config.update(load_config())
    if overrides:
        app.config.update(overrides)
    settle_secrets(app.config)
    settle_limit_storage(app.config)
    check_data_keys(app.config)
    from .json_body import BodyJSONProvider

    app.json = BodyJSONProvider(app)  # request bodies parse in one place, hostile ones are 400
    app.json.sort_keys = False
    logging.basicConfig(level=app.config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s %(message)s")

    _prepare_sqlite(app)
    db.init_app(app)
    with app.app_context():
        for engine in db.engines.values():
            begin_sqlite_transactions(engine)
    migrate.init_app(app, db, directory=str(_migrations_dir()), compare_type=True, render_as_batch=True)
    from . import ratelimit  # noqa: F401  registers the sjc+database:// limiter storage

    limiter.init_app(app)
    from .i18n import init_app as init_i18n

    init_i18n(app)
    api.init_app(app)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    from .openapi import bp as docs_assets_bp, describe

    describe(api)
    app.register_blueprint(docs_assets_bp)

    from . import models  # noqa: F401  every table, for migrations and create_all
    from .errors import register_error_handlers

    register_error_handlers(app)
    _register_features(app)
    _register_hooks(app)
    return app


def _migrations_dir():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "migrations"


def _register_features(app: Flask) -> None:
    """Every feature's routes, scope models, jobs, demo data and commands, in one visible list.

    A new capability adds its lines here; nothing registers itself by being imported.
    """
    from . import cli, health, jobs
    from .accounts import routes as accounts_routes, service as accounts_service
    from .activities import cli as activities_cli, demo as activities_demo, routes as activities_routes
    from .integrations import cli as integrations_cli, demo as integrations_demo, jobs as integrations_jobs
    from .integrations import routes as integrations_routes
    from .ledger import expiry, routes as ledger_routes
    from .merchants import models as merchants_models, routes as merchants_routes
    from .rewards import demo as rewards_demo, routes as rewards_routes
    from .campaigns import cli as campaigns_cli, demo as campaigns_demo, leaderboard, routes as campaigns_routes
    from .district import cli as district_cli, demo as district_demo, exports, models as district_models
    from .district import routes as district_routes

    api.register_blueprint(health.bp)
    for blueprint in (accounts_routes.bp, ledger_routes.bp, activities_routes.bp, rewards_routes.bp,
                      integrations_routes.bp, merchants_routes.bp, campaigns_routes.bp,
                      district_routes.bp):
        api.register_blueprint(blueprint, url_prefix=API_PREFIX)

    # Staff scopes: POST /admin/staff checks `merchant_id` / `park_id` against these.
    accounts_service.register_scope_models(app, {"merchant": merchants_models.Merchant,
                                                 "park": district_models.Park})

    jobs.register_handlers(app, {
        "integrations.import": (integrations_jobs.run_import, "chunked"),
        "ledger.expire_points": (expiry.expire_points_job, "chunked"),
        leaderboard.JOB: leaderboard.sync_job,
        exports.JOB: exports.build_export_job,
    })

    # seed-demo runs these in this order: factors first, as later seeders value actions with them.
    cli.register_demo_seeders(app, [
        ("factors and demo actions", activities_demo.seed_factors_and_actions),
        ("merchants", rewards_demo.seed_demo_merchant),
        ("integrations", integrations_demo.seed_demo_integration),
        ("campaigns", campaigns_demo.seed_demo_campaign),
        ("history", district_demo.seed_demo_history),
        ("district", district_demo.seed_demo_district),
    ])

    for command in (*cli.COMMANDS, activities_cli.factors_cli, integrations_cli.integrations_cli,
                    campaigns_cli.campaigns_cli, district_cli.exports_cli, district_cli.district_cli):
        app.cli.add_command(command)

    # The staff web console (/console/): HTML pages, not part of the API or its OpenAPI document.
    from .console import init_app as init_console

    init_console(app)


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


