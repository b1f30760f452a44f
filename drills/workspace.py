"""A drill's private copy of the models and their config: faults are injected here, never
into the user's model directory."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from recsys_base.errors import ConfigError
from serving import contract

MODEL = contract.RECOMMEND_MODEL
TOY_ITEMS = 50
DEFAULT_SESSION = ("item-001", "item-002")


@dataclass(frozen=True)
class Workspace:
    """``models_dir/recommend/<version>/`` served per ``config_file``; ``stable_version`` labelled stable."""

    root: Path
    models_dir: Path
    config_file: Path
    stable_version: int
    toy: bool

    @property
    def model_dir(self) -> Path:
        """The served model's base path."""
        return self.models_dir / MODEL

    def version_dir(self, version: int) -> Path:
        """Where ``version`` lives."""
        return self.model_dir / str(version)


def pristine_models(root: Path, model_base: Path | None) -> tuple[Path, int]:
    """The models every scenario copies: the recommend model of ``model_base`` (its newest
    version), or the toy recommend model version 1. Returns (models dir, stable version)."""
    models = root / "pristine"
    if model_base is None:
        from serving.testing import export_toy_models

        export_toy_models(models, version=1, num_items=TOY_ITEMS, models=(MODEL,))
        return models, 1
    source = Path(model_base) / MODEL
    versions = sorted(int(path.name) for path in source.iterdir() if path.name.isdigit() and path.is_dir()) if source.is_dir() else []
    if not versions:
        raise ConfigError(f"--model-base {model_base}: no exported version under {source} (expected {source}/<version>/saved_model.pb)")
    shutil.copytree(source / str(versions[-1]), models / MODEL / str(versions[-1]))
    return models, versions[-1]


def new_workspace(root: Path, name: str, pristine: Path, stable_version: int, toy: bool) -> Workspace:
    """A fresh copy of ``pristine`` under ``root/name`` with a models.config labelling it stable."""
    from serving.deployment import DeploymentConfig, write_configs

    directory = root / name
    if directory.exists():
        shutil.rmtree(directory)
    models = directory / "models"
    shutil.copytree(pristine, models)
    configs = write_configs(
        DeploymentConfig(model_base=str(models), models=(MODEL,), stable_version=stable_version),
        directory / "config",
    )
    return Workspace(directory, models, configs["models.config"], stable_version, toy)


def load_session(version_dir: Path) -> tuple[str, ...]:
    """The session of the version's first warmup request (real item ids for a real model)."""
    from serving.contract.warmup import read_warmup_requests

    records = read_warmup_requests(version_dir)
    if not records:
        return DEFAULT_SESSION
    from recsys_base.tf_compat import tensorflow

    row = tensorflow().make_ndarray(records[0].predict_log.request.inputs[contract.SESSION_ITEM_IDS])[0]
    session = tuple(item.decode("utf-8") for item in row if item)
    return session or DEFAULT_SESSION
