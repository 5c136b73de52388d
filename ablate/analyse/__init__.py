"""Analysis: MLflow runs -> curves, fits, knees, figures and dashboards."""
