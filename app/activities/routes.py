"""Green actions: factors, logging, review, integrations."""
from flask_smorest import Blueprint

bp = Blueprint("activities", __name__, description="Factor sets, green actions, review and integrations")
