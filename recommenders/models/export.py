"""Atomic SavedModel export to ``saved_models/<model>/<version>/`` with warmup requests.

A version directory appears only once complete: each model is written to a hidden
temporary directory beside it and renamed into place (a rename within one file system is
atomic), so TensorFlow Serving's file-system poller never sees a half-written version.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from recommenders.models.config import RecommendConfig, TrainConfig
from recommenders.models.serving_modules import RankingModule, RecommendModule, RetrievalModule
from recsys_base.errors import ModelError
from recsys_base.tf_compat import tensorflow
from serving import contract
from serving.contract.warmup import warmup_inputs, write_warmup_requests

tf = tensorflow()

METADATA_FILE = Path("assets.extra") / "recsys_model.json"


def existing_versions(model_dir: str | Path) -> list[int]:
    """Numeric version directories under ``model_dir`` (temporary ones are hidden and skipped)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(base_dir: str | Path, models=contract.MODELS) -> int:
    """One more than the highest version of any of ``models`` (so all three stay in step)."""
    return max([0] + [v for m in models for v in existing_versions(Path(base_dir) / m)]) + 1


def save_atomically(module: tf.Module, function, model_dir: Path, version: int, signature: str,
                    warmup: dict | None, metadata: dict) -> Path:
    """Saves ``module`` as ``model_dir/version`` via a temporary directory and one rename."""
    final = model_dir / str(version)
    if final.exists():
        raise ModelError(f"{final} already exists: versions are immutable, export a new one")
    model_dir.mkdir(parents=True, exist_ok=True)
    temporary = model_dir / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    try:
        tf.saved_model.save(module, str(temporary), signatures={signature: function, contract.DEFAULT_SIGNATURE: function})
        if warmup is not None:
            write_warmup_requests(temporary, model_dir.name, [warmup])
        (temporary / METADATA_FILE).parent.mkdir(parents=True, exist_ok=True)
        (temporary / METADATA_FILE).write_text(json.dumps(metadata, indent=1, default=str))
        os.rename(temporary, final)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)
    return final


def export_models(retrieval_model, ranking_model, base_dir: str | Path = "saved_models", version: int | None = None,
                  recommend_config: RecommendConfig | None = None, metadata: dict | None = None,
                  max_session_events: int = TrainConfig.max_length) -> dict[str, Path]:
    """Exports the ``retrieval``, ``ranking`` and ``recommend`` SavedModels as one version.

    Returns ``{model name: version directory}``. ``metadata`` (e.g. evaluation results) is
    stored in each version's ``assets.extra/recsys_model.json``. The signatures read the
    last ``max_session_events`` events of a session (the run's ``TrainConfig.max_length``).
    """
    base_dir = Path(base_dir)
    version = version or next_version(base_dir)
    retrieval = RetrievalModule(retrieval_model, max_session_events)
    ranking = RankingModule(ranking_model, max_session_events)
    recommend = RecommendModule(retrieval, ranking, (recommend_config or RecommendConfig()).validate())
    item_ids = retrieval_model.vocab.item_ids
    exported = {}
    for name, module, function in (
        (contract.RETRIEVAL_MODEL, retrieval, retrieval.retrieve),
        (contract.RANKING_MODEL, ranking, ranking.rank),
        (contract.RECOMMEND_MODEL, recommend, recommend.recommend),
    ):
        info = {"model": name, "version": version, "signature": contract.SIGNATURES[name],
                "num_items": retrieval.num_items, **(metadata or {})}
        exported[name] = save_atomically(module, function, base_dir / name, version, contract.SIGNATURES[name],
                                         warmup_inputs(name, item_ids), info)
    return exported
