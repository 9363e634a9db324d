"""compare_factor_sets: what a draft adds, removes and changes against the set in force."""
from decimal import Decimal
from importlib import resources

from app.activities import factors
from app.extensions import db


def draft_from_project_csv(edit) -> bytes:
    lines = resources.files("app").joinpath("data/factors.csv").read_text(encoding="utf-8").splitlines()
    lines = [lines[0]] + [line.replace("SJ-2026.1,2026-01-01", "SJ-2027.1,2027-01-01", 1) for line in lines[1:]]
    return "\n".join(edit(lines)).encode()


def test_a_draft_shows_the_changed_factor_with_old_and_new_values_and_added_and_removed_rows(factor_set):
    def edit(lines):
        edited = []
        for line in lines:
            if ",recycling,paper,kg,1.0,100," in line:
                line = line.replace(",recycling,paper,kg,1.0,100,", ",recycling,paper,kg,1.2,120,")
            if ",walking,," in line:
                continue
            edited.append(line)
        edited.append(edited[-1].replace("single_use_refusal,plastic_bag", "single_use_refusal,cup", 1))
        return edited

    draft = factors.create_factor_set_from_csv(draft_from_project_csv(edit))
    db.session.flush()

    diff = factors.compare_factor_sets(draft, factor_set)

    assert [(c["new"].action_type, c["new"].variant, c["changes"]) for c in diff["changed"]] == [
        ("recycling", "paper", [("kgco2e_per_unit", Decimal("1.0"), Decimal("1.2")),
                                ("points_per_unit", Decimal("100"), Decimal("120"))])]
    assert [(r.action_type, r.variant) for r in diff["added"]] == [("single_use_refusal", "cup")]
    assert [(r.action_type, r.variant) for r in diff["removed"]] == [("walking", "")]
    assert diff["unchanged"] == len(factor_set.rows) - 2


def test_against_nothing_in_force_every_row_is_added(factor_set):
    diff = factors.compare_factor_sets(factor_set, None)

    assert len(diff["added"]) == len(factor_set.rows) and diff["changed"] == [] and diff["removed"] == []
