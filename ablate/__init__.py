"""ablate: instruction-tuning ablation studies on Ray Tune and MLflow."""

__version__ = "0.1.0"
