"""seed-demo gives the dashboards months of history, once."""
from sqlalchemy import func, select

from app.activities.models import Action
from app.district import dashboard
from app.district.demo import HISTORY_NOTE
from app.extensions import db


def test_seed_demo_records_five_months_of_history_and_redemptions_once(app):
    first = app.test_cli_runner().invoke(args=["seed-demo"])
    actions = db.session.scalar(select(func.count()).select_from(Action).where(Action.note == HISTORY_NOTE))
    second = app.test_cli_runner().invoke(args=["seed-demo"])

    assert first.exit_code == 0 and second.exit_code == 0, (first.output, second.output)
    assert "history: already seeded" in second.output
    assert db.session.scalar(select(func.count()).select_from(Action).where(Action.note == HISTORY_NOTE)) == actions
    figures = dashboard.dashboard()
    assert all(grams > 0 for grams in figures["reduction_g"][:5])
    assert figures["households"][:5] == sorted(figures["households"][:5]) and figures["households"][4] >= 8
    assert {t["action_type"] for t in figures["by_action_type"]} >= {"recycling", "second_hand"}
    assert len(figures["top_communities"]) == 2 and all(c["households"] >= 5 for c in figures["top_communities"])
    assert all(c["redeemed_points"] > 0 for c in figures["points"]["communities"])
