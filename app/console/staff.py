"""Community staff pages: review queue, staff-assisted logging, cards, campaigns, merchants, flags."""
