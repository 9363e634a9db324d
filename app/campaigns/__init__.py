"""Campaigns: staff-run, budget-funded multipliers and bonuses, event check-ins and leaderboards."""
