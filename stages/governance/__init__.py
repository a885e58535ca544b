"""Governance stage logic (tenant policy, budgets, rate limits): pure functions over ``schemas.governance``."""
