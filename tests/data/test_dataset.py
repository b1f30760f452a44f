"""prepare() accounting, and the prepared-data directory: exact round trip, atomic, guarded."""

import json

import pandas as pd
import pytest

from recommenders.data.cleaning import CleaningConfig
from recommenders.data.dataset import REPORT_FILE, TABLES, load_prepared, prepare, save_prepared
from recommenders.data.report import DataReport
from recommenders.data.split import SplitConfig
from recsys_base.errors import DataError


@pytest.fixture(scope="module")
def prepared():
    from recommenders.data.synthetic import SyntheticShopConfig, generate_shop

    return prepare(generate_shop(SyntheticShopConfig.small(seed=4)), source="synthetic test shop")


def test_prepare_accounts_for_every_row(prepared):
    report = prepared.report
    kept = len(prepared.train) + len(prepared.validation) + len(prepared.test)
    assert report.cleaning.rows_in == kept + len(prepared.quarantine) == kept + report.quarantined
    counts = prepared.quarantine["reason"].value_counts().to_dict()
    expected = {r: n for r, n in {**report.cleaning.dropped, **report.split.dropped}.items() if n}
    assert counts == expected
    assert report.split.parts["train"].events == len(prepared.train)


def test_prepare_applies_both_configs(prepared):
    from recommenders.data.synthetic import SyntheticShopConfig, generate_shop

    shop = generate_shop(SyntheticShopConfig.small(seed=4))
    strict = prepare(shop, CleaningConfig(min_item_support=40), SplitConfig(validation_fraction=0.0, test_fraction=0.3))
    assert strict.validation.empty
    assert strict.report.cleaning.dropped["rare_item"] > prepared.report.cleaning.dropped["rare_item"]
    assert strict.report.split.parts["test"].sessions > prepared.report.split.parts["test"].sessions


def test_round_trip_is_exact(prepared, tmp_path):
    out = save_prepared(prepared, tmp_path / "shop")
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{t}.parquet" for t in TABLES] + [REPORT_FILE])
    loaded = load_prepared(out)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(loaded, name), getattr(prepared, name), check_exact=True)
    assert loaded.report == prepared.report
    assert not list(tmp_path.glob(".shop.*"))  # no staging directory left behind


def test_report_survives_json(prepared):
    text = json.dumps(prepared.report.to_dict())
    assert DataReport.from_dict(json.loads(text)) == prepared.report
    table = prepared.report.format_table()
    assert "dropped: bot_session_length" in table and "synthetic test shop" in table
    assert f"{prepared.report.quarantined:,}" in table.splitlines()[-1]


def test_non_empty_directory_is_only_replaced_when_asked(prepared, tmp_path):
    out = tmp_path / "shop"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="is not empty"):
        save_prepared(prepared, out)
    assert (out / "notes.txt").read_text() == "mine"
    save_prepared(prepared, out, overwrite=True)
    assert not (out / "notes.txt").exists() and (out / "train.parquet").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop"]


def test_empty_directory_is_used(prepared, tmp_path):
    (tmp_path / "shop").mkdir()
    assert load_prepared(save_prepared(prepared, tmp_path / "shop")).report == prepared.report


def test_loading_something_else_names_what_is_missing(prepared, tmp_path):
    with pytest.raises(DataError, match="prepared data directory not found"):
        load_prepared(tmp_path / "nothing")
    out = save_prepared(prepared, tmp_path / "shop")
    (out / "test.parquet").unlink()
    (out / REPORT_FILE).unlink()
    with pytest.raises(DataError, match="not a prepared data directory: missing test.parquet, report.json"):
        load_prepared(out)
