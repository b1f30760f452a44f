"""How well subsample trials rank configurations on Diginetica: the choice of ``--train-sessions``.

Trains the hand configuration and ``--configs`` - 1 configurations drawn from the search
space on the latest N training sessions for each ``--sizes`` N, and on all training
sessions; scores every model by ``retrieve`` on the same validation cases; reports
Spearman's rank correlation between each size's scores and the all-sessions scores (HR@20
and MRR@20), what each size cost, and the smallest size reaching ``--min-correlation``:
the ``--train-sessions`` to give ``benchmarks/tuning_diginetica.py``.

    .venv/bin/python benchmarks/tuning_fidelity.py [--configs 5] [--sizes 20000 50000 100000] [--epochs 4]

Writes ``benchmarks/results/tuning_fidelity.{json,md}``. ``--max-train-sessions`` shrinks a
smoke run.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, diginetica_parser, diginetica_run_config, provenance, run_main

import recsys_base  # noqa: F401


def parse_args(argv=None):
    parser = diginetica_parser(__doc__.split("\n\n")[0], default_epochs=4)
    parser.set_defaults(config=REPO / "benchmarks" / "configs" / "diginetica.json")
    parser.add_argument("--configs", type=int, default=5, help="configurations compared (the hand one included)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 50_000, 100_000],
                        help="subsample sizes: latest training sessions")
    parser.add_argument("--validation-cases", type=int, default=5_000)
    parser.add_argument("--min-correlation", type=float, default=0.8)
    parser.add_argument("--space", type=Path, help="search space override file to draw configurations from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-train-sessions", type=int, help="smoke runs: keep only the latest N training sessions")
    return parser.parse_args(argv)


def run(args) -> dict:
    from recommenders.data.loaders import load_srgnn_splits
    from recommenders.data.split import latest_sessions
    from tuning.fidelity import fidelity_study, sample_configs, smallest_faithful_size
    from tuning.space import load_space

    hand = diginetica_run_config(args)
    prepared = load_srgnn_splits(args.data_dir, validation_fraction=args.validation_fraction)
    prepared.train = latest_sessions(prepared.train, args.max_train_sessions)
    configs = [(hand.retrieval, hand.train),
               *sample_configs("retrieval", load_space("retrieval", args.space), args.configs - 1, hand.retrieval,
                               hand.train, seed=args.seed)]
    study = fidelity_study(prepared, configs, args.sizes, args.validation_cases, seed=args.seed)
    return {
        "dataset": "diginetica (SR-GNN preprocessing)",
        "train_sessions": int(prepared.train["session_id"].nunique()),
        "configs": [{"model": vars(model), "train": vars(train)} for model, train in configs],
        **study,
        "chosen_train_sessions": smallest_faithful_size(study, args.min_correlation),
    }


def markdown(result: dict) -> str:
    rows = ["| training sessions | Spearman HR@20 | Spearman MRR@20 | training s (all configs) |", "|---:|---:|---:|---:|"]
    # Keyed by size, None for all sessions: in the JSON file the keys are text ("20000", "null").
    seconds = {"null" if size is None else str(size): value for size, value in result["seconds"].items()}
    for size, correlations in result["correlations"].items():
        rows.append(f"| {int(size):,} | {correlations['val_HR@20']:.2f} | {correlations['val_MRR@20']:.2f} | "
                    f"{seconds[str(size)]:,.0f} |")
    rows.append(f"| all ({result['train_sessions']:,}) | 1 | 1 | {seconds['null']:,.0f} |")
    scores = ["| config | training sessions | HR@20 | MRR@20 |", "|---:|---:|---:|---:|"]
    for row in result["rows"]:
        scores.append(f"| {row['config']} | {row['train_sessions'] or 'all'} | {100 * row['val_HR@20']:.2f} | "
                      f"{100 * row['val_MRR@20']:.2f} |")
    chosen = result["chosen_train_sessions"]
    return "\n".join([
        "# Subsample vs full-data scores of a handful of retrieval configurations on Diginetica",
        "",
        f"{provenance(result)} Config 0 is the hand configuration; validation scores of `retrieve`, percent.",
        "",
        *rows,
        "",
        f"Smallest subsample ranking the configurations with Spearman >= {result['arguments']['min_correlation']} "
        f"on both metrics: **{f'{chosen:,} sessions' if chosen else 'none (train trials on all sessions)'}**.",
        "",
        *scores,
        "",
    ])


def main(argv=None) -> int:
    return run_main("tuning_fidelity", parse_args(argv), run, markdown)


if __name__ == "__main__":
    sys.exit(main())
