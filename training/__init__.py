"""Task specs, LightGBM fitting with temporal validation, calibration, evaluation and the MLflow registry."""
