"""Log-mel features: extraction (``logmel``), the on-disk cache (``cache``), normalisation."""

from harness.features.cache import feature_key, feature_path, load_features
from harness.features.logmel import FeatureConfig, LogMelExtractor, band_stats, extract, normalize

__all__ = [
    "FeatureConfig",
    "LogMelExtractor",
    "band_stats",
    "extract",
    "feature_key",
    "feature_path",
    "load_features",
    "normalize",
]
