"""Who records an action, in words a resident understands."""

# One phrase per recorder; none holds " or ", so a list of them joined by " or " reads (and translates) back.
PHRASES = {
    "resident": "the resident in the app",
    "staff": "community staff",
    "device": "a smart device (smart bin / station scale / transit gate)",
    "import": "an operator import (transit operator / partner)",
}


def how_credited(sources: list[str]) -> str:
    """The 422 message for a resident reporting an action only others may record."""
    others = " or ".join(PHRASES[s] for s in sources if s != "resident" and s in PHRASES)
    return f"Residents cannot report this action themselves; it is credited when recorded by {others}."
