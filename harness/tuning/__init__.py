"""Optuna studies over α, γ (and lr): storage, objective, search, report. See ``harness.tune``."""
