"""Readers from real shop-log formats into the canonical :mod:`~recommenders.data.schema`.

Loaders only translate: they rename columns, map event names and parse timestamps.
They do not judge rows (cleaning does, and reports what it drops), but they refuse
input that cannot be the format they read: a missing file, a missing column, or a
timestamp column of which no value parses raises :class:`~recsys_base.errors.DataError`
naming the file and column.

Usage (the public datasets, downloaded beforehand)::

    shop = load_diginetica_raw("/work/shared/datasets/diginetica/raw-cikm16-sample")
    shop = load_retailrocket("events.csv", ["item_properties_part1.csv", "item_properties_part2.csv"])
    data = load_srgnn("/work/shared/datasets/diginetica")
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recommenders.data import schema
from recommenders.data.dataset import PreparedData
from recommenders.data.report import CleaningReport, DataReport, DropLedger, quarantine_catalog, quarantine_events
from recommenders.data.split import unsplit_report
from recsys_base.errors import ConfigError, DataError
from serving import contract

PARQUET_SUFFIXES = (".parquet", ".pq")
# Values every loader reads as missing (Diginetica writes "NA").
NA_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]

RETAILROCKET_EVENTS = {"view": contract.VIEW, "addtocart": contract.CART, "transaction": contract.PURCHASE}
RETAILROCKET_PRICE_PROPERTY = "790"
RETAILROCKET_CATEGORY_PROPERTY = "categoryid"


def _existing(path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}")
    return path


def read_table(path, sep: str = ",", columns: Iterable[str] | None = None, **kwargs) -> pd.DataFrame:
    """Reads a CSV (``sep``-separated, every column as text) or a Parquet file by extension.

    Raises DataError naming the file when it is missing, unreadable, or lacks ``columns``.
    """
    path = _existing(path, "input")
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            try:
                frame = pd.read_parquet(path)
            except (KeyError, TypeError) as exc:
                # pyarrow rebuilds the frame from the file's own "pandas" metadata (JSON) and
                # indexes into it unchecked: a damaged entry surfaces as a bare KeyError.
                raise DataError(f"cannot read {path}: its pandas metadata is damaged ({type(exc).__name__}: {exc})") from exc
        else:
            frame = _read_csv_keeping_malformed(path, sep, **kwargs)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    require_columns(frame, columns or (), path)
    return frame


def _read_csv_keeping_malformed(path: Path, sep: str, **kwargs) -> pd.DataFrame:
    """``pd.read_csv`` where a line with too many fields becomes an all-missing row.

    Such a row cannot be trusted field by field, and failing the whole file for it would
    stop ingestion; as an empty row it is quarantined by cleaning and counted in the report.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        frame = pd.read_csv(path, sep=sep, dtype="string", keep_default_na=False, na_values=NA_VALUES,
                            on_bad_lines="warn", **kwargs)
    skipped = [line for warning in caught if issubclass(warning.category, pd.errors.ParserWarning)
               for line in str(warning.message).splitlines() if line.startswith("Skipping line")]
    for warning in caught:
        if not issubclass(warning.category, pd.errors.ParserWarning):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if skipped:
        warnings.warn(f"{path}: {len(skipped)} malformed line(s) kept as empty rows for cleaning to quarantine "
                      f"({'; '.join(skipped[:3])}{'; ...' if len(skipped) > 3 else ''})", stacklevel=3)
        empty = pd.DataFrame(pd.NA, index=range(len(skipped)), columns=frame.columns, dtype="string")
        frame = pd.concat([frame, empty], ignore_index=True)
    return frame


def require_columns(frame: pd.DataFrame, columns: Iterable[str], path, has=None, hint: str = "") -> None:
    """Raises DataError naming ``path``, the missing columns and the ones it has (``has``)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        has = frame.columns if has is None else has
        raise DataError(f"{path} is missing column(s) {', '.join(missing)}; it has {column_names(has) or 'none'}{hint}")


def column_names(names: Iterable) -> str:
    """Column names for a one-line message: as they are, or quoted when empty or holding a
    line break or another unprintable character (a file's header can hold anything).

    >>> column_names(["item_id", "", "a\\nb"])
    "item_id, '', 'a\\\\nb'"
    """
    return ", ".join(name if name and name.isprintable() else repr(name) for name in map(str, names))


def as_id_strings(values: pd.Series) -> pd.Series:
    """Ids as trimmed strings; whole floats (ids read next to NaNs) lose their ``.0``, unless
    some are past int64 (found by fuzzing: a Parquet column of 1e300 failed the import).

    >>> as_id_strings(pd.Series([3.0, None])).tolist(), as_id_strings(pd.Series([1e300, 2.0])).tolist()
    (['3', <NA>], ['1e+300', '2.0'])
    """
    if pd.api.types.is_float_dtype(values):
        finite = values.dropna()
        if (finite == np.floor(finite)).all() and (finite.abs() < 2**63).all():  # larger ones keep their float text
            values = values.astype("Int64")
    out = values.astype("string").str.strip()
    return out.mask(out == "")


# Epoch units and their ticks per second; "iso" reads ISO 8601 text, "auto" decides per value.
EPOCH_UNITS = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
TIMESTAMP_UNITS = ("auto", *EPOCH_UNITS, "iso")
# Plausible dates, 1973-03-03 to 2255-03-14, are 1e8 to 9e9 epoch seconds. In ms, us and ns
# the same dates lie 3, 6 and 9 orders of magnitude higher, so the four ranges never overlap
# and a value's size names its unit; a number in none of them is no plausible date. (The
# upper end keeps nanoseconds within datetime64[ns], which ends in 2262.)
PLAUSIBLE_EPOCH_SECONDS = (1e8, 9e9)


def scalar_values(values: pd.Series, where: str) -> pd.Series:
    """``values`` with bytes decoded as UTF-8; DataError naming ``where`` for lists, arrays,
    dicts (one value per row is expected) or bytes that are not UTF-8 text.

    Only Parquet columns can hold such values (CSV is read as text), so only object columns are looked at.

    >>> scalar_values(pd.Series([b"a", "b"], dtype=object), "item_id").tolist()
    ['a', 'b']
    >>> scalar_values(pd.Series([[1, 2], [3]]), "events.parquet column item_id")
    Traceback (most recent call last):
    ...
    recsys_base.errors.DataError: events.parquet column item_id holds lists, not one value per row (e.g. [1, 2])
    """
    if values.dtype != object:
        return values
    nested = values.map(lambda value: isinstance(value, (list, tuple, set, dict, np.ndarray))).astype(bool)
    if nested.any():
        example = values[nested].iloc[0]
        kind = "dict" if isinstance(example, dict) else "list"
        shown = str(example.tolist() if isinstance(example, np.ndarray) else example)
        raise DataError(f"{where} holds {kind}s, not one value per row (e.g. {shown[:40]})")
    is_bytes = values.map(lambda value: isinstance(value, bytes)).astype(bool)
    if not is_bytes.any():
        return values
    decoded = {}
    for row, value in values[is_bytes].items():
        try:
            decoded[row] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{where} holds bytes that are not UTF-8 text (row {row}: {value[:40]!r})") from None
    return values.where(~is_bytes, pd.Series(decoded, dtype=object))


def _date_text(text: pd.Series, iso: bool) -> pd.Series:
    """Dates written as text, parsed (UTC-aware); ``NaT`` where a value is no date."""
    if iso:
        return pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    with warnings.catch_warnings():
        # "Could not infer format": the per-value fallback below is the answer to it.
        warnings.simplefilter("ignore", UserWarning)
        parsed = pd.to_datetime(text, errors="coerce", utc=True)
    retry = parsed.isna()
    if retry.any():
        # The format pandas infers from the first value rejects rows written differently.
        parsed[retry] = pd.to_datetime(text[retry], errors="coerce", utc=True, format="mixed")
    return parsed


def _epochs(numbers: pd.Series, unit: str) -> tuple[pd.Series, dict[str, pd.Series]]:
    """Epoch numbers as UTC times (``NaT`` where implausible or out of range) and, per unit, which were read in it."""
    magnitude = np.abs(numbers.to_numpy(dtype="float64", na_value=np.nan))
    parsed = pd.Series(pd.NaT, index=numbers.index, dtype="datetime64[ns, UTC]")
    read_as = {}
    for name, per_second in EPOCH_UNITS.items():
        if unit == "auto":
            low, high = (bound * per_second for bound in PLAUSIBLE_EPOCH_SECONDS)
            mask = pd.Series((magnitude >= low) & (magnitude < high), index=numbers.index)
        else:
            mask = pd.Series(np.isfinite(magnitude) & (name == unit), index=numbers.index)
        if mask.any():
            parsed[mask] = pd.to_datetime(numbers[mask], unit=name, errors="coerce", utc=True)
            read_as[name] = mask
    return parsed, read_as


def _example(values: pd.Series, mask) -> str:
    return repr(values[mask].iloc[0]) if mask.any() else ""


def parse_timestamps(values: pd.Series, where: str, unit: str = "auto") -> pd.Series:
    """Parses epoch numbers or dates written as text into naive UTC, value by value.

    ``unit`` is one of :data:`TIMESTAMP_UNITS`. ``auto`` reads each number in the epoch unit
    its size names (see :data:`PLAUSIBLE_EPOCH_SECONDS`) and each text in any pandas date
    format, so a column mixing formats parses row by row and a warning counts each format
    found. ``s``/``ms``/``us``/``ns`` read numbers in that unit and ``iso`` reads ISO 8601
    text; a column that also holds the other kind (dates beside declared epochs, epochs
    beside declared ISO text) is refused with an example of each. A value that does not parse,
    or lies before 1970 (:data:`EARLIEST_EVENT_TIME`), becomes ``NaT`` (cleaning quarantines it
    as ``invalid_timestamp``) and a warning says how many; when no value parses, or the column
    holds true/false values, DataError names ``where``.

    >>> parse_timestamps(pd.Series(["1700000000", "1700000060000", "2024-01-01T10:00:00", "inf"]), "ts").tolist()
    [Timestamp('2023-11-14 22:13:20'), Timestamp('2023-11-14 22:14:20'), Timestamp('2024-01-01 10:00:00'), NaT]
    """
    if unit not in TIMESTAMP_UNITS:
        raise ConfigError(f"timestamp unit must be one of {', '.join(TIMESTAMP_UNITS)}, got {unit!r}")
    values = scalar_values(values, where)
    present = values.notna()
    if pd.api.types.is_datetime64_any_dtype(values):
        return _naive_ns(pd.to_datetime(values, utc=True))
    if pd.api.types.infer_dtype(values, skipna=True) == "boolean":
        raise DataError(f"{where} holds true/false values, not timestamps (e.g. {values[present].iloc[0]})")
    numbers = values if pd.api.types.is_numeric_dtype(values) else pd.to_numeric(values.astype("string"), errors="coerce")
    is_number = present & numbers.notna()
    is_text = present & ~is_number
    text = values[is_text].astype("string").str.strip()
    dates = _date_text(text, iso=unit == "iso") if is_text.any() else pd.Series(dtype="datetime64[ns, UTC]")
    is_date = is_text.copy()
    is_date[is_text] = dates.notna()
    finite = is_number & np.isfinite(numbers.to_numpy(dtype="float64", na_value=np.nan))
    declared_epochs, declared_iso = unit in EPOCH_UNITS, unit == "iso"
    if (declared_epochs and is_date.any()) or (declared_iso and finite.any()):
        raise DataError(f"{where} mixes epoch numbers (e.g. {_example(values, finite)}) and date text (e.g. "
                        f"{_example(values, is_date)}) but the timestamp unit is {unit!r}; "
                        f"'auto' reads each value in its own format")
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    formats = {}
    if not declared_iso and finite.any():
        epochs, read_as = _epochs(numbers[finite], unit)
        parsed[finite] = epochs
        formats.update({f"epoch {name}": mask.reindex(values.index, fill_value=False) for name, mask in read_as.items()})
    if is_date.any():
        parsed[is_date] = dates[dates.notna()]
        formats["date text"] = is_date
    parsed = _naive_ns(parsed)
    failed = present & parsed.isna()
    if present.any() and failed[present].all():
        raise DataError(f"{where}: no value parses as a timestamp (e.g. {values[present].iloc[0]!r})")
    if len(formats) > 1:
        found = ", ".join(f"{int(mask.sum()):,} {name} (e.g. {_example(values, mask)})" for name, mask in formats.items())
        warnings.warn(f"{where}: read value by value as {found}", stacklevel=2)
    if failed.any():
        warnings.warn(f"{where}: {int(failed.sum()):,} value(s) are no timestamp with unit {unit!r} "
                      f"(e.g. {_example(values, failed)}); cleaning quarantines them as invalid_timestamp", stacklevel=2)
    return parsed


# Event times before this are refused: from the Unix epoch to the latest time nanoseconds
# hold (2262), any two times differ by a duration int64 nanoseconds hold, so the time
# differences of sessionization, bot rates and splits cannot overflow. Pandas' whole range
# (from 1677) spans twice that, and a shop's log holds no event before 1970.
EARLIEST_EVENT_TIME = pd.Timestamp(0)


def _naive_ns(parsed: pd.Series) -> pd.Series:
    """UTC times as naive datetime64[ns]; times before :data:`EARLIEST_EVENT_TIME` or beyond
    what nanoseconds can hold become ``NaT``."""
    parsed = parsed.dt.tz_localize(None)
    in_range = (parsed >= EARLIEST_EVENT_TIME) & (parsed <= pd.Timestamp.max)
    return parsed.where(in_range).astype("datetime64[ns]")


def _check_map(column_map: dict[str, str] | None, frames: dict[str, pd.DataFrame]) -> None:
    unknown = [src for src in (column_map or {}) if not any(src in f.columns for f in frames.values())]
    if unknown:
        where = " or ".join(frames)
        raise DataError(f"column map source(s) {', '.join(unknown)} not found in {where}")


def _scalar_columns(frame: pd.DataFrame, columns, path) -> pd.DataFrame:
    """``frame`` with :func:`scalar_values` applied to those of ``columns`` it has."""
    present = [column for column in columns if column in frame.columns]
    return frame.assign(**{column: scalar_values(frame[column], f"{path} column {column}") for column in present})


def load_csv(events_path, catalog_path=None, column_map: dict[str, str] | None = None,
             timestamp_unit: str = "auto") -> schema.ShopData:
    """Loads events (and optionally a catalog) from CSV or Parquet files in any column naming.

    ``column_map`` renames source columns to canonical ones (``{"sessionId": "session_id"}``)
    in both files. Events need ``item_id``, ``timestamp`` and ``session_id`` or ``user_id``
    (then cleaning sessionizes); ``event_type`` defaults to ``view`` (plain click logs);
    ``user_id`` and ``query`` are optional. Timestamps are read by :func:`parse_timestamps`
    with ``timestamp_unit``. A column holding lists (or bytes that are not UTF-8) is refused
    by name: such ids would turn into their text and silently merge.

    Example:

    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp, "clicks.csv")
    ...     _ = path.write_text("sid,item,ts\\n1,a,1704067200\\n1,b,1704067260\\n2,a,1704070800\\n")
    ...     shop = load_csv(path, column_map={"sid": "session_id", "item": "item_id", "ts": "timestamp"})
    >>> shop.events
      session_id user_id item_id event_type           timestamp query
    0          1    <NA>       a       view 2024-01-01 00:00:00  <NA>
    1          1    <NA>       b       view 2024-01-01 00:01:00  <NA>
    2          2    <NA>       a       view 2024-01-01 01:00:00  <NA>
    """
    raw_events = read_table(events_path)
    frames = {str(events_path): raw_events}
    raw_catalog = None
    if catalog_path is not None:
        raw_catalog = read_table(catalog_path)
        frames[str(catalog_path)] = raw_catalog
    _check_map(column_map, frames)

    events = raw_events.rename(columns=column_map or {})
    required = ["item_id", "timestamp"] + ([] if "user_id" in events.columns else ["session_id"])
    hint = " (map source columns to canonical names, e.g. sessionId=session_id)"
    require_columns(events, required, events_path, raw_events.columns, hint)
    events = _scalar_columns(events, ("session_id", "user_id", "item_id", "event_type", "query"), events_path)
    out = pd.DataFrame(index=events.index)
    for column in ("session_id", "user_id", "item_id"):
        out[column] = as_id_strings(events[column]) if column in events.columns else pd.NA
    out["event_type"] = events["event_type"].astype("string") if "event_type" in events.columns else contract.VIEW
    out["timestamp"] = parse_timestamps(events["timestamp"], f"{events_path} column timestamp", timestamp_unit)
    out["query"] = events["query"].astype("string") if "query" in events.columns else pd.NA

    if raw_catalog is None:
        catalog = schema.empty_catalog()
    else:
        catalog = raw_catalog.rename(columns=column_map or {})
        require_columns(catalog, ["item_id"], catalog_path, raw_catalog.columns)
        catalog = _scalar_columns(catalog, schema.CATALOG_COLUMNS, catalog_path)
        catalog = catalog.assign(item_id=as_id_strings(catalog["item_id"]))
        for column in ("title", "brand"):
            if column in catalog.columns:
                catalog[column] = catalog[column].astype("string")
        if "category" in catalog.columns:
            catalog["category"] = as_id_strings(catalog["category"])
        if "price" in catalog.columns:
            catalog["price"] = pd.to_numeric(catalog["price"], errors="coerce")
    return schema.ShopData(out, catalog)


def load_retailrocket(events_csv, item_properties=()) -> schema.ShopData:
    """Loads the RetailRocket dataset: ``events.csv`` plus ``item_properties_part*.csv``.

    Events ``view``/``addtocart``/``transaction`` become ``view``/``cart``/``purchase``;
    ``visitorid`` is the user and sessions are left to cleaning's inactivity gap. Item
    properties give each item its latest ``categoryid`` and price (property ``790``,
    written like ``n5160.000``).
    """
    raw = read_table(events_csv, columns=("timestamp", "visitorid", "event", "itemid"))
    event_type = raw["event"].str.strip().str.lower()
    events = pd.DataFrame(
        {
            "session_id": pd.NA,
            "user_id": as_id_strings(raw["visitorid"]),
            "item_id": as_id_strings(raw["itemid"]),
            "event_type": event_type.map(RETAILROCKET_EVENTS).fillna(event_type),
            "timestamp": parse_timestamps(raw["timestamp"], f"{events_csv} column timestamp", "ms"),
        }
    )
    paths = [item_properties] if isinstance(item_properties, (str, Path)) else list(item_properties)
    return schema.ShopData(events, _retailrocket_catalog(paths))


def _retailrocket_catalog(paths) -> pd.DataFrame:
    wanted = (RETAILROCKET_CATEGORY_PROPERTY, RETAILROCKET_PRICE_PROPERTY)
    pieces = []
    for path in paths:
        read_table(path, columns=("timestamp", "itemid", "property", "value"), nrows=0)
        # The property files hold ~20M rows; only two properties matter, so stream them.
        chunks = pd.read_csv(path, dtype="string", chunksize=1_000_000, keep_default_na=False, na_values=NA_VALUES)
        for chunk in tqdm(chunks, desc=f"reading {Path(path).name}", unit="Mrows", leave=False):
            pieces.append(chunk[chunk["property"].isin(wanted)])
    if not pieces:
        return schema.empty_catalog()
    props = pd.concat(pieces, ignore_index=True)
    props["timestamp"] = pd.to_numeric(props["timestamp"], errors="coerce")
    props["itemid"] = as_id_strings(props["itemid"])
    latest = props.sort_values("timestamp", kind="stable").drop_duplicates(["itemid", "property"], keep="last")
    wide = latest.pivot(index="itemid", columns="property", values="value")
    catalog = pd.DataFrame({"item_id": wide.index.astype("string")})
    category = wide.get(RETAILROCKET_CATEGORY_PROPERTY)
    price = wide.get(RETAILROCKET_PRICE_PROPERTY)
    catalog["category"] = "" if category is None else category.fillna("").to_numpy()
    if price is not None:
        catalog["price"] = pd.to_numeric(price.str.lstrip("n"), errors="coerce").to_numpy()
    return catalog


def _plus_milliseconds(times: pd.Series, offsets: pd.Series, where: str) -> pd.Series:
    """``times + offsets`` milliseconds; ``NaT`` where either is missing or no number and, with
    a warning, where the sum leaves the event-time range of :func:`_naive_ns` (adding it would
    overflow nanoseconds, or the time could not be differenced).

    >>> _plus_milliseconds(pd.Series(pd.to_datetime(["2016-01-01", "2016-01-01"])), pd.Series(["1500", "1e17"]), "t").tolist()
    [Timestamp('2016-01-01 00:00:01.500000'), NaT]
    """
    offsets = scalar_values(offsets, where)
    milliseconds = pd.to_numeric(offsets, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    start_ns = times.to_numpy(dtype="datetime64[ns]").astype("int64").astype("float64")
    # float64 is exact to about a microsecond here; the second of headroom keeps the exact sum in range.
    end_ns = start_ns + milliseconds * 1e6
    known = times.notna().to_numpy()
    in_range = known & (end_ns >= EARLIEST_EVENT_TIME.value) & (end_ns <= pd.Timestamp.max.value - 1e9)
    out_of_range = known & np.isfinite(milliseconds) & ~in_range
    if out_of_range.any():
        warnings.warn(f"{where}: {int(out_of_range.sum()):,} value(s) put the event outside "
                      f"{EARLIEST_EVENT_TIME.year}-{pd.Timestamp.max.year} (e.g. {_example(offsets, out_of_range)}); "
                      f"cleaning quarantines them as invalid_timestamp", stacklevel=3)
    offsets = pd.to_timedelta(pd.Series(np.where(in_range, milliseconds, np.nan), index=times.index), unit="ms")
    return times.where(in_range) + offsets


def _diginetica_events(frame: pd.DataFrame, session: str, user: str, path) -> pd.DataFrame:
    days = parse_timestamps(frame["eventdate"], f"{path} column eventdate")
    return pd.DataFrame(
        {
            "session_id": as_id_strings(frame[session]),
            "user_id": as_id_strings(frame[user]),
            "timestamp": _plus_milliseconds(days, frame["timeframe"], f"{path} column timeframe"),
        }
    )


def _tokens(values: pd.Series) -> pd.Series:
    # CIKM16 anonymized text into comma-separated numeric tokens; spaces make them words.
    return values.astype("string").str.replace(",", " ", regex=False).str.strip()


def load_diginetica_raw(directory) -> schema.ShopData:
    """Loads the raw CIKM Cup 2016 files (``;``-separated, ``NA`` = missing) from ``directory``.

    ``train-item-views.csv`` (or ``sample_train-item-views.csv``) gives view events at
    ``eventdate + timeframe`` milliseconds; ``train-purchases.csv``, ``train-queries.csv``
    (search events, query = the anonymized tokens separated by spaces),
    ``product-categories.csv`` and ``products.csv`` (price = 2**pricelog2, title = name
    tokens) are read when present.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"Diginetica directory not found: {directory}")
    views_path = next(
        (directory / n for n in ("train-item-views.csv", "sample_train-item-views.csv") if (directory / n).is_file()), None
    )
    if views_path is None:
        raise DataError(f"{directory} has no train-item-views.csv (or sample_train-item-views.csv)")
    parts = []
    views = read_table(views_path, sep=";", columns=("session_id", "user_id", "item_id", "timeframe", "eventdate"))
    parts.append(
        _diginetica_events(views, "session_id", "user_id", views_path).assign(
            item_id=as_id_strings(views["item_id"]), event_type=contract.VIEW
        )
    )
    purchases_path = directory / "train-purchases.csv"
    if purchases_path.is_file():
        purchases = read_table(purchases_path, sep=";", columns=("sessionId", "userId", "timeframe", "eventdate", "itemId"))
        parts.append(
            _diginetica_events(purchases, "sessionId", "userId", purchases_path).assign(
                item_id=as_id_strings(purchases["itemId"]), event_type=contract.PURCHASE
            )
        )
    queries_path = directory / "train-queries.csv"
    if queries_path.is_file():
        queries = read_table(
            queries_path, sep=";", columns=("sessionId", "userId", "timeframe", "eventdate", "searchstring.tokens")
        )
        parts.append(
            _diginetica_events(queries, "sessionId", "userId", queries_path).assign(
                item_id=pd.NA, event_type=schema.SEARCH, query=_tokens(queries["searchstring.tokens"])
            )
        )
    events = pd.concat(parts, ignore_index=True)
    return schema.ShopData(events, _diginetica_catalog(directory))


def _diginetica_catalog(directory: Path) -> pd.DataFrame:
    catalog = schema.empty_catalog()[["item_id"]]
    categories_path = directory / "product-categories.csv"
    if categories_path.is_file():
        categories = read_table(categories_path, sep=";", columns=("itemId", "categoryId"))
        catalog = pd.DataFrame({"item_id": as_id_strings(categories["itemId"]), "category": as_id_strings(categories["categoryId"])})
    products_path = directory / "products.csv"
    if products_path.is_file():
        products = read_table(products_path, sep=";", columns=("itemId", "pricelog2", "product.name.tokens"))
        details = pd.DataFrame(
            {
                "item_id": as_id_strings(products["itemId"]),
                "title": _tokens(products["product.name.tokens"]),
                "price": np.exp2(pd.to_numeric(products["pricelog2"], errors="coerce")),
            }
        )
        catalog = catalog.merge(details, on="item_id", how="outer")
    return catalog


class SrgnnData(NamedTuple):
    """The SR-GNN benchmark as one shop plus which of its sessions are the test sessions.

    Example: two training sessions and one test session (``1 2 4``, listed by its prefixes).

    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = Path(tmp, "train_sessions.txt").write_text("1 2 3\\n2 3\\n")
    ...     _ = Path(tmp, "test_prefix_label.tsv").write_text("1 2\\t4\\n1\\t2\\n")
    ...     data = load_srgnn(tmp)
    >>> data.train_session_ids, data.test_session_ids
    (['train-1', 'train-2'], ['test-1'])
    >>> events = data.shop.events
    >>> list(events.loc[events["session_id"].isin(data.test_session_ids), "item_id"])
    ['1', '2', '4']
    """

    shop: schema.ShopData
    train_session_ids: list[str]
    test_session_ids: list[str]


SRGNN_START = pd.Timestamp("2016-01-01")
# Synthetic clock: one minute between clicks, an hour between sessions, so that no
# inactivity-gap or bot-rate rule could ever cut or drop a benchmark session.
SRGNN_CLICK_GAP = pd.Timedelta(minutes=1)
SRGNN_SESSION_GAP = pd.Timedelta(hours=1)


def _srgnn_train_sessions(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8") as handle:
        sessions = [line.split() for line in handle]
    empty = next((n for n, s in enumerate(sessions, 1) if not s), None)
    if empty is not None:
        raise DataError(f"{path} line {empty} is empty; expected space-separated item ids")
    return sessions


def _srgnn_test_sessions(path: Path) -> list[list[str]]:
    """Rebuilds the test sessions: each group of lines lists every prefix, longest first."""
    sessions: list[list[str]] = []
    expected: list[str] = []  # the prefix the next line must have; empty at a group start
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 2 or not fields[0].split() or not fields[1].strip():
                raise DataError(f"{path} line {number}: expected 'prefix items<TAB>next item'")
            prefix, label = fields[0].split(), fields[1].strip()
            if not expected:
                sessions.append(prefix + [label])
            elif prefix + [label] != expected:
                raise DataError(f"{path} line {number}: prefix does not continue the session of the lines above")
            expected = prefix if len(prefix) > 1 else []
    if expected:
        raise DataError(f"{path} ends inside a session: its prefixes do not reach length 1")
    return sessions


def _srgnn_events(sessions: list[list[str]], names: list[str], first_click: int, first_session: int) -> pd.DataFrame:
    lengths = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=len(sessions))
    session_index = np.repeat(np.arange(len(sessions)), lengths) + first_session
    click_index = np.arange(lengths.sum()) + first_click
    clock = click_index * SRGNN_CLICK_GAP.value + session_index * SRGNN_SESSION_GAP.value
    return pd.DataFrame(
        {
            "session_id": pd.array(np.repeat(np.array(names, dtype=object), lengths), dtype="string"),
            "item_id": pd.array([item for s in sessions for item in s], dtype="string"),
            "event_type": contract.VIEW,
            "timestamp": SRGNN_START + pd.to_timedelta(clock, unit="ns"),
        }
    )


def load_srgnn(directory) -> SrgnnData:
    """Loads the SR-GNN benchmark files: ``train_sessions.txt`` and ``test_prefix_label.tsv``.

    The files hold no times, so every click gets a synthetic, strictly increasing timestamp
    in file order with all training sessions before all test sessions. Test sessions are
    rebuilt from their prefix lines (longest prefix + label = the whole session); building
    every prefix of them reproduces the file. ``item_category.tsv``, when present, gives
    the catalog categories. Session ids are ``train-<n>`` / ``test-<n>`` (1-based, file order).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"SR-GNN directory not found: {directory}")
    train = _srgnn_train_sessions(_existing(directory / "train_sessions.txt", "SR-GNN training sessions"))
    test = _srgnn_test_sessions(_existing(directory / "test_prefix_label.tsv", "SR-GNN test cases"))
    train_ids = [f"train-{n}" for n in range(1, len(train) + 1)]
    test_ids = [f"test-{n}" for n in range(1, len(test) + 1)]
    train_events = _srgnn_events(train, train_ids, 0, 0)
    test_events = _srgnn_events(test, test_ids, len(train_events), len(train))
    events = pd.concat([train_events, test_events], ignore_index=True)
    category_path = directory / "item_category.tsv"
    if category_path.is_file():
        raw = read_table(category_path, sep="\t", columns=("item_id", "category_id"))
        catalog = pd.DataFrame({"item_id": as_id_strings(raw["item_id"]), "category": as_id_strings(raw["category_id"])})
    else:
        catalog = pd.DataFrame({"item_id": events["item_id"].drop_duplicates()})
    return SrgnnData(schema.ShopData(events, catalog), train_ids, test_ids)


def load_srgnn_splits(directory, validation_fraction: float = 0.1) -> PreparedData:
    """The SR-GNN benchmark as prepared data, keeping its own split and dropping nothing.

    Test is the file's test sessions; the last ``validation_fraction`` of training
    sessions (file order, i.e. the latest) is validation. Nothing is cleaned, so scores on
    ``test`` compare with published numbers; validation may hold items train lacks.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ConfigError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    data = load_srgnn(directory)
    events = data.shop.events
    n_validation = round(len(data.train_session_ids) * validation_fraction)
    held_out = set(data.train_session_ids[len(data.train_session_ids) - n_validation :])
    is_test = events["session_id"].isin(set(data.test_session_ids))
    is_validation = events["session_id"].isin(held_out)
    parts = {
        "train": events[~is_test & ~is_validation].reset_index(drop=True),
        "validation": events[is_validation].reset_index(drop=True),
        "test": events[is_test].reset_index(drop=True),
    }
    catalog = data.shop.catalog
    cleaning = CleaningReport(
        rows_in=len(events),
        rows_out=len(events),
        dropped={},
        sessions_out=len(data.train_session_ids) + len(data.test_session_ids),
        items_out=int(events["item_id"].nunique()),
        catalog_rows_in=len(catalog),
        catalog_rows_out=len(catalog),
    )
    nothing_dropped = DropLedger(())
    return PreparedData(
        **parts,
        catalog=catalog,
        report=DataReport(source=f"srgnn:{directory}", cleaning=cleaning, split=unsplit_report(parts)),
        quarantine=quarantine_events(nothing_dropped),
        catalog_quarantine=quarantine_catalog(nothing_dropped),
    )
