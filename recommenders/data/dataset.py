"""Prepared data: clean + split in one call, and its directory format on disk.

A prepared directory holds one Parquet file per table (:data:`TABLES`) and
``report.json``; reading it back gives exactly the frames that were written, dtypes
included. Writes are atomic: the files go to a temporary sibling directory that is
renamed into place, so a crash never leaves a half-written dataset behind.

Example:

>>> import tempfile
>>> from pathlib import Path
>>> from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
>>> prepared = prepare(generate_shop(SyntheticShopConfig.small()), source="small synthetic shop")
>>> with tempfile.TemporaryDirectory() as tmp:
...     directory = save_prepared(prepared, Path(tmp) / "shop")
...     print(sorted(path.name for path in directory.iterdir()))
...     print(load_prepared(directory).train.equals(prepared.train))
['catalog.parquet', 'catalog_quarantine.parquet', 'quarantine.parquet', 'report.json',
 'test.parquet', 'train.parquet', 'validation.parquet']
True
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recommenders.data import schema
from recommenders.data.cleaning import CleaningConfig, clean
from recommenders.data.report import DataReport
from recommenders.data.split import SplitConfig, time_split
from recsys_base.errors import DataError

TABLES = ("train", "validation", "test", "catalog", "quarantine", "catalog_quarantine")
REPORT_FILE = "report.json"


@dataclass
class PreparedData:
    """A shop ready for training: split events, cleaned catalog, report and dropped rows.

    ``quarantine`` holds every dropped event row with a ``reason`` column (cleaning and
    split reasons); ``catalog_quarantine`` the dropped catalog rows.

    Example:

    >>> from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
    >>> prepared = prepare(generate_shop(SyntheticShopConfig.small()), source="small synthetic shop")
    >>> {name: len(frame) for name, frame in prepared.tables().items()}
    {'train': 28110, 'validation': 3651, 'test': 3444, 'catalog': 300, 'quarantine': 4548, 'catalog_quarantine': 0}
    >>> print(prepared.report.format_table())
    source                                 small synthetic shop
    <BLANKLINE>
    events in                              39,753
    ...
    quarantined events                     4,548
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    catalog: pd.DataFrame
    report: DataReport
    quarantine: pd.DataFrame
    catalog_quarantine: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The frames by file name stem, in :data:`TABLES` order."""
        return {name: getattr(self, name) for name in TABLES}


def prepare(
    shop: schema.ShopData,
    cleaning: CleaningConfig | None = None,
    split: SplitConfig | None = None,
    source: str = "",
) -> PreparedData:
    """Cleans ``shop`` and splits it by time; ``source`` names the input in the report."""
    split = (split or SplitConfig()).validate()
    cleaned = clean(shop, cleaning)
    parts = time_split(cleaned.shop.events, split.validation_fraction, split.test_fraction, split.min_session_length)
    quarantine = pd.concat([cleaned.quarantine, parts.quarantine], ignore_index=True)
    return PreparedData(
        train=parts.train,
        validation=parts.validation,
        test=parts.test,
        catalog=cleaned.shop.catalog,
        report=DataReport(source=source, cleaning=cleaned.report, split=parts.report),
        quarantine=quarantine,
        catalog_quarantine=cleaned.catalog_quarantine,
    )


def check_output_directory(directory, overwrite: bool = False) -> Path:
    """Raises DataError unless :func:`save_prepared` may write to ``directory``; returns it.

    Callers with slow work before the save check first, so a refusal comes before the wait.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise DataError(f"output path exists and is not a directory: {directory}")
    if directory.is_dir() and any(directory.iterdir()) and not overwrite:
        raise DataError(f"output directory {directory} is not empty; pass --overwrite (overwrite=True) to replace it")
    # The directory is created beside its siblings, so its nearest existing ancestor must take new entries.
    ancestor = next(parent for parent in directory.absolute().parents if parent.exists())
    if not ancestor.is_dir():
        raise DataError(f"cannot create output directory {directory}: {ancestor} is a file")
    if not directory.exists() and not os.access(ancestor, os.W_OK | os.X_OK):
        raise DataError(f"cannot create output directory {directory}: {ancestor} is not writable")
    return directory


def save_prepared(prepared: PreparedData, directory, overwrite: bool = False) -> Path:
    """Writes ``prepared`` to ``directory`` atomically; returns the directory.

    Refuses (DataError) to replace a non-empty directory unless ``overwrite``.
    """
    directory = check_output_directory(directory, overwrite)
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    except OSError as exc:
        raise DataError(f"cannot create output directory {directory}: {exc.strerror or exc}") from None
    try:
        for name, frame in prepared.tables().items():
            frame.to_parquet(staging / f"{name}.parquet", index=False)
        (staging / REPORT_FILE).write_text(json.dumps(prepared.report.to_dict(), indent=2) + "\n", encoding="utf-8")
        if directory.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=directory.parent))
            os.replace(directory, retired / directory.name)
            os.replace(staging, directory)
            shutil.rmtree(retired)
        else:
            os.replace(staging, directory)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return directory


def load_prepared(directory) -> PreparedData:
    """Reads a directory written by :func:`save_prepared`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"prepared data directory not found: {directory}")
    missing = [f"{name}.parquet" for name in TABLES if not (directory / f"{name}.parquet").is_file()]
    if not (directory / REPORT_FILE).is_file():
        missing.append(REPORT_FILE)
    if missing:
        raise DataError(f"{directory} is not a prepared data directory: missing {', '.join(missing)}")
    try:
        report = DataReport.from_dict(json.loads((directory / REPORT_FILE).read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{directory / REPORT_FILE} is not a valid report: {exc}") from exc
    tables = {name: pd.read_parquet(directory / f"{name}.parquet") for name in TABLES}
    return PreparedData(report=report, **tables)
