"""harness: a benchmark and ablation harness for acoustic scene classification."""

__version__ = "0.1.0"
