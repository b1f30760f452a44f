"""TFRS models: session/item towers, retrieval, multi-task ranking, the recommend path, export."""
