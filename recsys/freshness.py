"""The freshness drill: shop days with new items, retrained and released while the server serves.

``recsys retrain`` is only useful if its loop runs in production without anyone noticing:
this drill launches a synthetic shop (tiny models, one epoch, trained on the shop's first
days), serves it from an embedded server process (polling the model base path) under steady ``stable``-labelled load, then for each new day retrains on
that day's sessions with :func:`recsys.retrain.retrain_run` and releases through the
canary gate (:func:`recsys.retrain.release`, reloading the server in TF Serving's two
steps). It passes when no request failed, every day's version was promoted and answered
``stable`` requests, and some of that day's new items were recommended on that very day
(to the day's holdout sessions, through the server).

``recsys drill --scenario freshness`` runs a week (``--freshness-days``, default 7); the
test suite runs one day.
"""

from __future__ import annotations

import time
from pathlib import Path

from drills.load import LoadGenerator, recommend_inputs, summarize
from drills.replicas import ReplicaProcess
from drills.scenarios import DrillResult, DrillSettings
from recsys.retrain import RetrainConfig, release, retrain_run
from serving import contract

MODEL = contract.RECOMMEND_MODEL
BASE_DAYS = 7
SESSIONS_PER_DAY = 120
# One table half-life for the fusion gate (not a choice among four): the drill is about the release.
TINY_RUN = {
    "train": {"epochs": 1, "batch_size": 64, "early_stopping_patience": 0, "verbose": 0},
    "retrieval": {"embedding_dim": 16, "feature_dim": 4, "lstm_units": 16, "output_dim": 16, "extra_negatives": 64,
                  "neighbour_half_lives": [0.0]},
    "ranking": {"embedding_dim": 16, "feature_dim": 4, "lstm_units": 16, "output_dim": 16, "deep_units": [16]},
}


def _shop(days: int, seed: int):
    from recommenders.data.synthetic import SyntheticShopConfig, generate_shop, release_days, session_days

    config = SyntheticShopConfig.small(n_items=120, n_categories=8, n_brands=12, n_users=200, seed=seed, clean=True,
                                       n_sessions=SESSIONS_PER_DAY * (BASE_DAYS + days), days=BASE_DAYS + days,
                                       new_item_days=days, new_items_per_day=4)
    shop = generate_shop(config)
    return shop, release_days(config), shop.events["session_id"].map(session_days(shop.events, config))


def _served_items(client, cases, k: int) -> set[str]:
    """Every item the ``stable`` version recommends to the sessions of ``cases``."""
    items = set()
    for prefix in cases.prefix_item_ids:
        prediction = client.predict(MODEL, recommend_inputs(prefix[-20:], k), label=contract.STABLE_LABEL)
        items.update(item.decode() if isinstance(item, bytes) else str(item) for item in prediction.outputs[contract.ITEM_IDS][0])
    return items


def _first_answer(load: LoadGenerator, version: int, since: float, timeout_s: float) -> float | None:
    """Seconds after ``since`` of the first load request that ``version`` answered (waiting up to ``timeout_s``)."""
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        answered = [s.end for s in list(load.samples) if s.version == version and s.end >= since]
        if answered:
            return min(answered) - since
        time.sleep(0.05)
    return None


def freshness(workdir: Path, settings: DrillSettings) -> DrillResult:
    """Runs the drill of the module docstring for ``settings.freshness_days`` days in ``workdir``."""
    from recommenders.data.dataset import prepare, save_prepared
    from recommenders.data.schema import ShopData
    from recommenders.evaluation.cases import make_next_item_cases
    from recsys.workflow import RunConfig, export_run, train_run
    from serving.client import RecommenderClient
    from serving.deployment import DeploymentConfig, write_configs

    workdir = Path(workdir)
    shop, release_day, day = _shop(settings.freshness_days, settings.seed)
    launch = ShopData(shop.events[day < BASE_DAYS], shop.catalog[shop.catalog["item_id"].map(release_day) < BASE_DAYS])
    save_prepared(prepare(launch, source="freshness drill: launch days"), workdir / "data", overwrite=True)
    previous = workdir / "run-launch"
    train_run(workdir / "data", previous, RunConfig.from_dict(TINY_RUN), overwrite=True)
    models = workdir / "models"
    export_run(previous, models, version=1)
    config_file = write_configs(DeploymentConfig(model_base=str(models), models=(MODEL,), stable_version=1),
                                workdir / "config")["models.config"]
    # A process of its own, as in production: the retrain's training threads do not hold its interpreter.
    replica = ReplicaProcess(config_file, models, poll_seconds=settings.poll_seconds)
    target = replica.target
    notes, passed_days = [], 0
    try:
        with RecommenderClient([target], deadline_s=settings.deadline_s, retries=4, version_label=contract.STABLE_LABEL) as client:
            session = tuple(launch.events["item_id"].dropna().iloc[:2])
            load = LoadGenerator(client, settings.workers, settings.rate_per_worker, settings.k, session)
            with load.running():
                for new_day in range(BASE_DAYS, BASE_DAYS + settings.freshness_days):
                    started = time.monotonic()
                    catalog = shop.catalog[shop.catalog["item_id"].map(release_day) <= new_day]
                    result = retrain_run(previous, ShopData(shop.events[day == new_day], catalog), workdir / f"run-day{new_day}",
                                         RetrainConfig(epochs=1, max_drop=settings.gate_max_drop, seed=settings.seed),
                                         overwrite=True)
                    decision = release(result, models, config_file, [target])
                    released = time.monotonic()
                    picked = _first_answer(load, decision.canary_version, released, timeout_s=10.0)
                    todays = set(release_day.index[release_day == new_day])
                    shown = _served_items(client, make_next_item_cases(result.holdout), settings.k) & todays
                    passed_days += decision.promoted and picked is not None and bool(shown)
                    notes.append(f"day {new_day} ({time.monotonic() - started:.0f}s): {decision.reason}; "
                                 + (f"load answered by it {picked:.2f}s after the release; " if picked is not None
                                    else "load never answered by it; ")
                                 + f"{len(shown)} of the day's {len(todays)} new items recommended that day")
                    if decision.promoted:
                        previous = result.run_dir
                time.sleep(settings.warm_seconds)
    finally:
        replica.stop()
    total = summarize(load.samples)
    notes.append(f"stable requests answered by versions {list(total.versions)}")
    notes += [f"errors: {', '.join(total.errors)}"] if total.failed else []
    passed = total.failed == 0 and passed_days == settings.freshness_days
    return DrillResult("freshness", passed, total.requests, total.failed, float("nan"), total.p99_ms, notes)
