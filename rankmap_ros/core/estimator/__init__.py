"""The learned throughput estimator (paper Sections IV.C-D): VQ-VAE unit codes, the multi-task
attention CNN, its OmniBoost baseline, training, checkpoints and the ThroughputModel predictor."""

from rankmap_ros.core.estimator.checkpoint import EstimatorError, load_checkpoint, shipped_path
from rankmap_ros.core.estimator.predictor import LearnedEstimator, load_estimator

__all__ = ["EstimatorError", "LearnedEstimator", "load_checkpoint", "load_estimator", "shipped_path"]
