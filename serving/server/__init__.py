"""The embedded TF-Serving-compatible server (TensorFlow + grpcio).

Usage::

    from serving.server import ServerConfig, serve
    handle = serve(ServerConfig(Path("models.config"), model_base=Path("saved_models"), port=0))
    ...
    handle.stop()
"""

import recsys_base  # noqa: F401  (the Keras-2 switch, before the server imports TensorFlow)
from serving.server.app import ServerConfig, ServerHandle, ServerTls, serve

__all__ = ["ServerConfig", "ServerHandle", "ServerTls", "serve"]
