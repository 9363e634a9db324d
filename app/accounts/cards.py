"""Household card numbers as people type them: printed in groups of four, scanned or keyed with spaces or hyphens."""
import re

_SEPARATORS = re.compile(r"[\s\-‐‑‒–—]+")


def normalise_card(raw: str) -> str:
    """The stored form of a card number: every space and hyphen removed."""
    return _SEPARATORS.sub("", raw)
