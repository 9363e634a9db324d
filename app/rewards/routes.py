"""Rewards, redemption codes and redemptions."""
from flask_smorest import Blueprint

bp = Blueprint("rewards", __name__, description="Merchants, rewards, redemption codes and redemptions")
