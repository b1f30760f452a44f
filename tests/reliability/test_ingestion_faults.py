"""Ingestion of files with malformed rows: the rows are quarantined with counts, the rest
of the file is ingested exactly as without them, and ingestion finishes."""

import warnings

import pandas as pd
import pytest

from recommenders.data.dataset import prepare
from recommenders.data.loaders import load_csv
from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
from recsys_base.errors import DataError

COLUMNS = ["session_id", "user_id", "item_id", "event_type", "timestamp", "query"]


@pytest.fixture(scope="module")
def clean_lines():
    events = generate_shop(SyntheticShopConfig.small()).events[COLUMNS].head(4000)
    return events.to_csv(index=False).splitlines()


def _prepare(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = prepare(load_csv(path))
    return prepared, [str(w.message) for w in caught]


MALFORMED = {
    "ragged": "s-bad-1,u-1,item-1,view,2024-03-01 10:00:00,,EXTRA,FIELDS",
    "ragged_quoted": 's-bad-2,u-1,"item,2",view,2024-03-01 10:00:00,,x',
    "short": "s-bad-3,u-1",
    "bad_timestamp": "s-bad-4,u-1,item-4,view,yesterday-ish,",
    "no_item": "s-bad-5,u-1,,view,2024-03-01 10:00:00,",
}


def test_malformed_lines_are_quarantined_and_the_rest_ingested_unchanged(clean_lines, tmp_path):
    clean, dirty = tmp_path / "clean.csv", tmp_path / "dirty.csv"
    clean.write_text("\n".join(clean_lines) + "\n")
    lines = list(clean_lines)
    for offset, line in enumerate(MALFORMED.values()):  # spread through the file
        lines.insert(1 + (offset + 1) * len(clean_lines) // (len(MALFORMED) + 1), line)
    dirty.write_text("\n".join(lines) + "\n")

    reference, _ = _prepare(clean)
    prepared, messages = _prepare(dirty)

    for split in ("train", "validation", "test"):
        pd.testing.assert_frame_equal(getattr(prepared, split), getattr(reference, split))
    assert len(prepared.quarantine) == len(reference.quarantine) + len(MALFORMED)
    assert prepared.report.cleaning.rows_in == reference.report.cleaning.rows_in + len(MALFORMED)
    assert prepared.report.quarantined == reference.report.quarantined + len(MALFORMED)
    assert any("2 malformed line(s)" in message and "Skipping line" in message for message in messages), messages


def test_a_file_with_an_unterminated_quote_fails_with_the_file_and_row_named(clean_lines, tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text("\n".join([*clean_lines[:10], 's-x,u-1,"item-open,view,2024-03-01 10:00:00,', *clean_lines[10:20]]) + "\n")
    with pytest.raises(DataError, match=r"cannot read .*broken.csv: .*EOF inside string starting at row 10"):
        load_csv(path)
