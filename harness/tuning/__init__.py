"""Optuna studies over α, γ (and lr): storage, objective, search, report. ``harness tune`` drives them."""
