"""Evaluation: metrics (``regionlm.eval.metrics``) and benchmarks."""
