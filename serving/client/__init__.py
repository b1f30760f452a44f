"""The thin TF Serving client: grpcio + protobuf + numpy, never TensorFlow.

Usage::

    from serving.client import RecommenderClient
    client = RecommenderClient(["10.0.0.1:8500", "10.0.0.2:8500"], version_label="stable")
    client.recommend(["item-1", "item-2"], k=5)
"""

from serving.client.aio import AsyncRecommenderClient
from serving.client.channels import ClientConfig, RetryThrottling, TlsConfig
from serving.client.client import RecommenderClient
from serving.client.errors import ServingError
from serving.client.requests import Prediction, VersionStatus
from serving.client.routing import LabelSplit

__all__ = [
    "AsyncRecommenderClient", "ClientConfig", "LabelSplit", "Prediction", "RecommenderClient", "RetryThrottling", "ServingError",
    "TlsConfig", "VersionStatus",
]  # fmt: skip
