"""Atomic SavedModel export to ``saved_models/<model>/<version>/`` with warmup requests.

A version directory appears only once complete: each model is written to a hidden
temporary directory beside it and renamed into place (a rename within one file system is
atomic), so TensorFlow Serving's file-system poller never sees a half-written version. The
three models of one export are one version: all three are written before any is renamed,
and a failed rename removes the ones already renamed, so serving never finds a version
of one model that the others lack.
"""

from __future__ import annotations

import errno
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


def _stage(module: tf.Module, function, model_dir: Path, version: int, signature: str, warmup: dict | None,
           metadata: dict) -> Path:
    """Saves ``module`` into a new hidden temporary directory in ``model_dir``; returns it."""
    model_dir.mkdir(parents=True, exist_ok=True)
    temporary = model_dir / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    tf.saved_model.save(module, str(temporary), signatures={signature: function, contract.DEFAULT_SIGNATURE: function})
    if warmup is not None:
        write_warmup_requests(temporary, model_dir.name, [warmup])
    (temporary / METADATA_FILE).parent.mkdir(parents=True, exist_ok=True)
    (temporary / METADATA_FILE).write_text(json.dumps(metadata, indent=1, default=str))
    return temporary


def publish(staged: dict[Path, Path]) -> None:
    """Renames each staged temporary directory to its version directory, all or none.

    When a rename fails, the version directories already renamed are removed again and
    the ModelError names them, so no model is left with a version the others lack.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     base = Path(tmp)
    ...     for name in ("a", "b"):
    ...         (base / name / ".tmp").mkdir(parents=True)
    ...     (base / "b" / "1" / "model").mkdir(parents=True)  # b/1 appeared meanwhile
    ...     try:
    ...         publish({base / "a" / ".tmp": base / "a" / "1", base / "b" / ".tmp": base / "b" / "1"})
    ...     except ModelError as error:
    ...         print(str(error).replace(tmp, "BASE"))
    ...     print(sorted(p.name for p in (base / "a").iterdir()))
    cannot rename BASE/b/.tmp to BASE/b/1: version directory already exists; removed BASE/a/1 again,
    so no model has version 1
    []
    """
    renamed: list[Path] = []
    for temporary, final in staged.items():
        try:
            if final.exists():  # os.rename would silently replace an empty directory
                raise FileExistsError(errno.EEXIST, "version directory already exists")
            os.rename(temporary, final)
        except OSError as error:
            for path in renamed:
                shutil.rmtree(path, ignore_errors=True)
            removed = f"removed {', '.join(map(str, renamed))} again" if renamed else "nothing was published"
            raise ModelError(f"cannot rename {temporary} to {final}: {error.strerror or error}; "
                             f"{removed}, so no model has version {final.name}") from None
        renamed.append(final)


def export_models(retrieval_model, ranking_model, base_dir: str | Path = "saved_models", version: int | None = None,
                  recommend_config: RecommendConfig | None = None, metadata: dict | None = None,
                  max_session_events: int = TrainConfig.max_length) -> dict[str, Path]:
    """Exports the ``retrieval``, ``ranking`` and ``recommend`` SavedModels as one version.

    All three appear together or none does: every target is checked first, then all three
    are written to temporary directories, then :func:`publish` renames them. Returns
    ``{model name: version directory}``. ``metadata`` (e.g. evaluation results) is stored
    in each version's ``assets.extra/recsys_model.json``. The signatures read the last
    ``max_session_events`` events of a session (the run's ``TrainConfig.max_length``).
    """
    base_dir = Path(base_dir)
    if base_dir.exists() and not base_dir.is_dir():
        raise ModelError(f"model base directory {base_dir} is a file, not a directory")
    version = version or next_version(base_dir)
    targets = {name: base_dir / name / str(version) for name in contract.MODELS}
    taken = [str(path) for path in targets.values() if path.exists()]
    if taken:
        raise ModelError(f"{', '.join(taken)} already exist(s): versions are immutable, export a new one "
                         f"(the next free version is {next_version(base_dir)})")
    retrieval = RetrievalModule(retrieval_model, max_session_events)
    ranking = RankingModule(ranking_model, max_session_events)
    recommend = RecommendModule(retrieval, ranking, (recommend_config or RecommendConfig()).validate())
    item_ids = retrieval_model.vocab.item_ids
    staged: dict[Path, Path] = {}
    try:
        for name, module, function in (
            (contract.RETRIEVAL_MODEL, retrieval, retrieval.retrieve),
            (contract.RANKING_MODEL, ranking, ranking.rank),
            (contract.RECOMMEND_MODEL, recommend, recommend.recommend),
        ):
            info = {"model": name, "version": version, "signature": contract.SIGNATURES[name],
                    "num_items": retrieval.num_items, **(metadata or {})}
            try:
                temporary = _stage(module, function, base_dir / name, version, contract.SIGNATURES[name],
                                   warmup_inputs(name, item_ids), info)
            except (OSError, tf.errors.OpError) as error:
                message = getattr(error, "strerror", None) or getattr(error, "message", None) or str(error) or repr(error)
                raise ModelError(f"cannot write {base_dir / name}: {message.splitlines()[0]}; nothing was published") from None
            staged[temporary] = targets[name]
        publish(staged)
    finally:
        for temporary in staged:
            if temporary.exists():
                shutil.rmtree(temporary)
    return targets
