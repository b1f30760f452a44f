"""``recsys data``: generate the synthetic shop, import real logs, print a preparation report.

Both ``generate`` and ``import`` end in a prepared data directory (see
:mod:`recommenders.data.dataset`) that training reads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recommenders.data.cleaning import CleaningConfig
from recommenders.data.loaders import TIMESTAMP_UNITS
from recommenders.data.split import SplitConfig
from recommenders.data.synthetic import SyntheticShopConfig
from recsys.cli.flags import optional_float, optional_int
from recsys_base.errors import ConfigError

FORMATS = ("csv", "parquet", "retailrocket", "diginetica-raw", "srgnn")


def register(subparsers) -> None:
    """Adds the ``data`` command group to the ``recsys`` parser."""
    data = subparsers.add_parser("data", help="generate, import and inspect shop data")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    generate = actions.add_parser("generate", help="generate the synthetic shop, clean and split it")
    generate.add_argument("--out", required=True, type=Path, help="directory to write the prepared data to")
    generate.add_argument("--seed", type=int, default=SyntheticShopConfig.seed,
                          help="random seed (same seed, same shop; default: %(default)s)")
    generate.add_argument("--sessions", type=int, help="number of shopping sessions")
    generate.add_argument("--items", type=int, help="number of products")
    generate.add_argument("--users", type=int, help="number of shoppers")
    generate.add_argument("--categories", type=int, help="number of product categories")
    generate.add_argument("--days", type=int, help="days of activity")
    generate.add_argument("--small", action="store_true", help="the small test-size shop (flags above still apply)")
    generate.add_argument("--no-dirt", action="store_true", help="leave out the dirty rows (duplicates, bots, ...)")
    _add_preparation_flags(generate)
    generate.set_defaults(func=_generate)

    imports = actions.add_parser("import", help="import real shop logs, clean and split them")
    imports.add_argument("--format", required=True, choices=FORMATS, help="input format")
    imports.add_argument(
        "--input", required=True, type=Path, help="events file (csv, parquet, retailrocket) or directory (diginetica-raw, srgnn)"
    )
    imports.add_argument(
        "--catalog",
        action="append",
        type=Path,
        default=[],
        help="catalog file (csv, parquet) or item_properties file, repeatable (retailrocket)",
    )
    imports.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="SRC=DST",
        help="rename source column SRC to canonical column DST (csv, parquet), repeatable",
    )
    imports.add_argument("--timestamp-unit", choices=TIMESTAMP_UNITS, default="auto",
                         help="epoch unit of numeric timestamps, or iso for ISO 8601 text (csv, parquet); "
                              "auto reads each value by its size or as date text (default: %(default)s)")
    imports.add_argument("--out", required=True, type=Path, help="directory to write the prepared data to")
    _add_preparation_flags(imports)
    imports.set_defaults(func=_import)

    report = actions.add_parser("report", help="print the preparation report of a prepared data directory")
    report.add_argument("directory", type=Path)
    report.set_defaults(func=_report)




# flag name (= config field) -> (type, help); unset flags keep the config dataclasses' defaults.
CLEANING_FLAGS = {
    "session_gap_minutes": (float, "inactivity that ends a session"),
    "max_events_per_session": (optional_int, "longer sessions are bots; 'none': no cap"),
    "max_events_per_minute": (optional_int, "faster sessions are bots; 'none': no cap"),
    "min_item_support": (int, "items with fewer view/cart/purchase events are dropped"),
    "min_session_length": (int, "sessions with fewer view/cart/purchase events are dropped"),
    "price_iqr_factor": (optional_float, "price outlier fence on log price, in IQRs; 'none': off"),
}
SPLIT_FLAGS = {
    "validation_fraction": (float, "share of sessions, latest by end time, for validation"),
    "test_fraction": (float, "share of sessions, latest by end time, for test"),
}


def _add_preparation_flags(parser: argparse.ArgumentParser) -> None:
    for title, flags, config_class in (("cleaning", CLEANING_FLAGS, CleaningConfig),
                                       ("split (srgnn keeps its own test split)", SPLIT_FLAGS, SplitConfig)):
        group = parser.add_argument_group(title)
        for name, (kind, text) in flags.items():
            # SUPPRESS: an unset flag is absent from args, so the dataclass default applies.
            group.add_argument("--" + name.replace("_", "-"), type=kind, default=argparse.SUPPRESS, metavar="N",
                               help=f"{text} (default {getattr(config_class, name)})")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")


def _configs(args):
    given = vars(args)
    cleaning = CleaningConfig(**{name: given[name] for name in CLEANING_FLAGS if name in given}).validate()
    split_fields = [*SPLIT_FLAGS, "min_session_length"]
    split = SplitConfig(**{name: given[name] for name in split_fields if name in given}).validate()
    return cleaning, split


def _prepare_and_save(load, args, source: str) -> int:
    """Loads with ``load()``, cleans, splits and saves, showing progress per stage."""
    from tqdm.auto import tqdm

    from recommenders.data.dataset import PreparedData, check_output_directory, prepare, save_prepared

    cleaning, split = _configs(args)
    check_output_directory(args.out, args.overwrite)
    # No bar when stderr is no terminal (logs, pipes), and none left behind: an error then is its only line.
    with tqdm(total=3, unit="step", desc="loading", file=sys.stderr, disable=None, leave=False) as progress:
        loaded = load()
        progress.update()
        progress.set_description("cleaning and splitting")
        prepared = loaded if isinstance(loaded, PreparedData) else prepare(loaded, cleaning, split, source=source)
        progress.update()
        progress.set_description("writing")
        save_prepared(prepared, args.out, overwrite=args.overwrite)
        progress.update()
    _print_summary(prepared, args.out)
    return 0


def _print_summary(prepared, out: Path) -> None:
    report = prepared.report
    parts = ", ".join(
        f"{name} {part.events:,} events / {part.sessions:,} sessions" for name, part in report.split.parts.items()
    )
    print(f"wrote {out}: {parts}; catalog {len(prepared.catalog):,} items")
    print(f"{report.quarantined:,} of {report.cleaning.rows_in:,} events quarantined; details: recsys data report {out}")


def _generate(args) -> int:
    from recommenders.data.synthetic import generate_shop

    sizes = {
        "n_sessions": args.sessions,
        "n_items": args.items,
        "n_users": args.users,
        "n_categories": args.categories,
        "days": args.days,
    }
    overrides = {name: value for name, value in sizes.items() if value is not None}
    overrides.update(seed=args.seed, clean=args.no_dirt)
    config = SyntheticShopConfig.small(**overrides) if args.small else SyntheticShopConfig(**overrides)
    source = f"synthetic shop (seed {config.seed}, {config.n_sessions:,} sessions, {config.n_items:,} items)"
    return _prepare_and_save(lambda: generate_shop(config), args, source=source)


def _column_map(pairs: list[str]) -> dict[str, str]:
    from recommenders.data.schema import CATALOG_COLUMNS, EVENT_COLUMNS

    known = list(dict.fromkeys([*EVENT_COLUMNS, *CATALOG_COLUMNS]))
    mapping = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source or not target:
            raise ConfigError(f"--map {pair!r}: expected SRC=DST, e.g. --map sessionId=session_id")
        if target not in known:
            raise ConfigError(f"--map {pair!r}: {target!r} is not a canonical column; use one of {', '.join(known)}")
        mapping[source] = target
    return mapping


def _loader(args):
    """Checks the format-specific flags; returns a function loading ShopData or PreparedData."""
    from recommenders.data import loaders

    fmt, path, catalogs = args.format, args.input, args.catalog
    if args.map and fmt not in ("csv", "parquet"):
        raise ConfigError(f"--map applies to --format csv or parquet, not {fmt}")
    if args.timestamp_unit != "auto" and fmt not in ("csv", "parquet"):
        raise ConfigError(f"--timestamp-unit applies to --format csv or parquet, not {fmt}: its timestamps have a known unit")
    if fmt in ("csv", "parquet"):
        if len(catalogs) > 1:
            raise ConfigError(f"--format {fmt} takes at most one --catalog file, got {len(catalogs)}")
        if fmt == "parquet" and path.suffix.lower() not in loaders.PARQUET_SUFFIXES:
            raise ConfigError(f"--format parquet expects a .parquet file, got {path}")
        column_map = _column_map(args.map)
        catalog = catalogs[0] if catalogs else None
        return lambda: loaders.load_csv(path, catalog, column_map, args.timestamp_unit)
    if fmt == "retailrocket":
        return lambda: loaders.load_retailrocket(path, catalogs)
    if catalogs:
        raise ConfigError(f"--catalog does not apply to --format {fmt}: its catalog files are read from --input")
    if fmt == "diginetica-raw":
        return lambda: loaders.load_diginetica_raw(path)
    ignored = [name for name in [*CLEANING_FLAGS, "test_fraction"] if name in vars(args)]
    if ignored:
        flags = ", ".join("--" + name.replace("_", "-") for name in ignored)
        raise ConfigError(f"{flags} do(es) not apply to --format srgnn: the benchmark is used as published")
    return lambda: loaders.load_srgnn_splits(path, _configs(args)[1].validation_fraction)


def _import(args) -> int:
    return _prepare_and_save(_loader(args), args, source=f"{args.format}:{args.input}")


def _report(args) -> int:
    from recommenders.data.dataset import load_prepared

    print(load_prepared(args.directory).report.format_table())
    return 0
