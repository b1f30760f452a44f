"""Offline evaluation: next-item cases, ranking metrics, baselines and the harness that compares models."""
