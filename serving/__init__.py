"""Serving: TF Serving deployment files, the embedded TF-Serving-compatible server, the thin client.

This package's ``__init__`` imports nothing so that ``serving.client`` stays free of TensorFlow.
"""
