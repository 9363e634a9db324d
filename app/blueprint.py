"""The blueprint every feature's routes use."""
import flask_smorest

from .json_body import BodyParser


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's blueprint whose `@bp.arguments` parses JSON bodies through app/json_body.py."""

    ARGUMENTS_PARSER = BodyParser()
