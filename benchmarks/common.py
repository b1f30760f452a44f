"""What every benchmark script shares: where data and results live, the machine, the run wrapper."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "diginetica"
RESULTS = REPO / "benchmarks" / "results"


def peak_rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def diginetica_parser(description: str, default_epochs: int) -> argparse.ArgumentParser:
    """The options every Diginetica benchmark takes: data, output, training settings, ``--config``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    parser.add_argument("--epochs", type=int, default=default_epochs)
    parser.add_argument("--batch-size", type=int, help="overrides the run config's (default 256)")
    parser.add_argument("--learning-rate", type=float, help="overrides the run config's (default 0.003)")
    parser.add_argument("--validation-fraction", type=float, default=0.02,
                        help="latest training sessions held out for early stopping")
    parser.add_argument("--config", type=Path, help="JSON run config whose sections override defaults")
    return parser


def diginetica_run_config(args):
    """The run config of a Diginetica benchmark: ``--config`` (if any), then the command-line training settings.

    ``--batch-size`` and ``--learning-rate`` override the config's only when given, so a
    tuned config's own values (``benchmarks/configs/diginetica_tuned.json``) are kept.

    Diginetica has only item ids and categories: no users, queries or meaningful clock
    times, so those features are off in both towers. It has only views, so the ranker's
    cart and purchase tasks would never see a positive: their weights are 0 and the
    ranking score is the click probability.
    """
    from recsys.workflow import RunConfig

    config = RunConfig.from_file(args.config) if args.config else RunConfig()
    config.train.epochs, config.train.verbose = args.epochs, 2
    if args.batch_size is not None:
        config.train.batch_size = args.batch_size
    if args.learning_rate is not None:
        config.train.learning_rate = args.learning_rate
    for model in (config.retrieval, config.ranking):
        model.use_user = model.use_query = model.use_context = False
    config.ranking.cart_weight = config.ranking.purchase_weight = 0.0
    return config.validate()


# The options of :func:`diginetica_parser` that ``--dataset synthetic`` ignores (it runs the
# demo's shop and config): a synthetic results page leaves them out of its arguments.
DIGINETICA_ONLY_OPTIONS = ("data_dir", "epochs", "batch_size", "learning_rate", "validation_fraction", "config")


def parse_dataset_args(parser: argparse.ArgumentParser, argv=None):
    """``parser``'s arguments (a :func:`diginetica_parser` with ``--dataset``); with
    ``--dataset synthetic``, a ``DIGINETICA_ONLY_OPTIONS`` option set to anything but its
    default is an error naming it, not a flag silently ignored."""
    args = parser.parse_args(argv)
    if args.dataset == "synthetic":
        given = [name for name in DIGINETICA_ONLY_OPTIONS if getattr(args, name) != parser.get_default(name)]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            parser.error(f"--dataset synthetic runs the demo's shop and run config; it does not take {flags}")
    return args


def ignored_options(args) -> tuple[str, ...]:
    """What :func:`run_main` should leave out of ``args``' page: see ``DIGINETICA_ONLY_OPTIONS``."""
    return DIGINETICA_ONLY_OPTIONS if args.dataset == "synthetic" else ()


def dataset_and_config(args):
    """``(prepared data, run config)`` of ``args.dataset``: the synthetic shop with the demo's
    config (``DIGINETICA_ONLY_OPTIONS`` do not apply), or Diginetica's SR-GNN split with
    :func:`diginetica_run_config`."""
    if args.dataset == "synthetic":
        from recommenders.data.dataset import prepare
        from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
        from recsys.workflow import RunConfig

        config = RunConfig()
        config.train.verbose = 2
        return prepare(generate_shop(SyntheticShopConfig())), config.validate()
    from recommenders.data.loaders import load_srgnn_splits

    return load_srgnn_splits(args.data_dir, validation_fraction=args.validation_fraction), diginetica_run_config(args)


def split_metrics(ranked, cases, revisit, k: int = 20) -> dict:
    """HR@k and MRR@k (percent) of ``ranked`` [cases, >= k] item ids over all cases, the
    re-visits (``revisit`` [cases]: the next item is already in the session) and new items."""
    import numpy as np

    hit = ranked[:, :k] == cases.targets[:, None]
    reciprocal = (hit / np.arange(1, k + 1)).sum(axis=1)
    return {part: {"HR": 100 * hit[rows].any(axis=1).mean(), "MRR": 100 * reciprocal[rows].mean()}
            for part, rows in (("all", np.ones_like(revisit)), ("revisit", revisit), ("new", ~revisit))}


def machine() -> dict:
    """CPU count this process may use, total memory and platform."""
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "memory_gb": round(total_kb / 2**20, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _argument_value(value):
    """A parsed option as JSON: paths as text, relative to ``REPO`` when they lie inside it."""
    if isinstance(value, (list, tuple)):
        return [_argument_value(item) for item in value]
    if not isinstance(value, Path):
        return value
    absolute = Path(os.path.abspath(value))
    for candidate in (absolute, absolute.resolve()):
        if candidate.is_relative_to(REPO):
            return str(candidate.relative_to(REPO))
    return str(absolute)


def provenance(result: dict) -> str:
    """The results page's first sentence(s): when, on what machine, by which script with which options.

    Results written before ``run_main`` recorded them may lack the date, the platform, the
    script or the arguments: those parts are left out.
    """
    m = result["machine"]
    when = f" {result['date']}" if result.get("date") else ""
    where = f", {m['platform']}" if m.get("platform") else ""
    text = f"Run{when} on {m['nproc']} CPU(s), {m['memory_gb']} GB RAM{where}."
    if result.get("script"):
        how = f" with {json.dumps(result['arguments'], default=str)}" if "arguments" in result else ""
        text += f" Produced by `benchmarks/{result['script']}`{how}."
    return text


def run_main(name: str, args, run, markdown, hidden_arguments=()) -> int:
    """Runs a benchmark, prints its results page and writes ``<name>.json`` / ``<name>.md``.

    The result records its provenance: ``date`` (UTC), ``machine``, ``script`` (the file
    defining ``run``) and ``arguments`` (``args`` but ``hidden_arguments``), unless ``run``
    set them itself. Bad input (a ``RecsysError``) is one line on stderr and exit code 2.
    """
    from recsys_base.errors import RecsysError

    try:
        result = run(args)
    except RecsysError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    script = getattr(sys.modules.get(run.__module__), "__file__", None)
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "script": Path(script).name if script else f"{name}.py",
        "arguments": {key: _argument_value(value) for key, value in vars(args).items() if key not in hidden_arguments},
        **result,
    }
    page = markdown(result)
    print(page)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    (args.output_dir / f"{name}.md").write_text(page, encoding="utf-8")
    return 0
