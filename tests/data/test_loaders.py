"""Loaders: tiny files in tmp_path for each format, plus the real Diginetica files in place."""

from pathlib import Path

import pandas as pd
import pytest

from recommenders.data import schema
from recommenders.data.cleaning import CleaningConfig, clean
from recommenders.data.loaders import (
    load_csv,
    load_diginetica_raw,
    load_retailrocket,
    load_srgnn,
    load_srgnn_splits,
    parse_timestamps,
)
from recsys_base.errors import DataError

DIGINETICA = Path("/work/shared/datasets/diginetica")
RAW_SAMPLE = DIGINETICA / "raw-cikm16-sample"
SRGNN_TEST_CASES = 60_858


def write(path: Path, text: str) -> Path:
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


def assert_canonical(shop: schema.ShopData) -> None:
    assert dict(shop.events.dtypes.astype(str)) == schema.EVENT_COLUMNS
    assert dict(shop.catalog.dtypes.astype(str)) == schema.CATALOG_COLUMNS


# --- generic CSV / Parquet -------------------------------------------------------------


def test_csv_with_column_map_and_catalog(tmp_path):
    events = write(
        tmp_path / "clicks.csv",
        """
sid,visitor,product,kind,when,text
1,u7,10,view,2024-01-02 03:04:05,
1,u7,,search,2024-01-02T03:05:00Z,red shoes
2,,11.0,purchase,2024-01-03,
""",
    )
    catalog = write(tmp_path / "items.csv", "product,name,price,category\n10,Shoe,19.5,3\n11,Sock,x,\n")
    column_map = {"sid": "session_id", "visitor": "user_id", "product": "item_id", "kind": "event_type", "when": "timestamp"}
    column_map.update(text="query", name="title")
    shop = load_csv(events, catalog, column_map)
    assert_canonical(shop)
    e = shop.events
    assert list(e["session_id"]) == ["1", "1", "2"]
    assert list(e["user_id"].fillna("-")) == ["u7", "u7", "-"]
    assert list(e["item_id"].fillna("-")) == ["10", "-", "11.0"]
    assert list(e["timestamp"]) == [pd.Timestamp(t) for t in ("2024-01-02 03:04:05", "2024-01-02 03:05:00", "2024-01-03")]
    assert list(e["query"].fillna("-")) == ["-", "red shoes", "-"]
    c = shop.catalog
    assert list(c["title"]) == ["Shoe", "Sock"] and list(c["category"]) == ["3", ""]
    assert c["price"].iloc[0] == 19.5 and pd.isna(c["price"].iloc[1])


def test_parquet_with_epoch_timestamps_and_default_event_type(tmp_path):
    frame = pd.DataFrame({"user_id": [5, 6], "item_id": [1.0, 2.0], "timestamp": [1_700_000_000_000, 1_700_000_060_000]})
    frame.to_parquet(tmp_path / "events.parquet")
    shop = load_csv(tmp_path / "events.parquet")
    assert list(shop.events["item_id"]) == ["1", "2"]
    assert list(shop.events["user_id"]) == ["5", "6"]
    assert list(shop.events["event_type"]) == ["view", "view"]
    assert shop.events["session_id"].isna().all()
    assert shop.events["timestamp"].iloc[1] == pd.Timestamp("2023-11-14 22:14:20")


def test_explicit_timestamp_unit_wins_over_the_guess(tmp_path):
    path = write(tmp_path / "e.csv", "session_id,item_id,timestamp\ns,1,1700000000\n")
    assert load_csv(path).events["timestamp"].iloc[0] == pd.Timestamp("2023-11-14 22:13:20")
    assert load_csv(path, timestamp_unit="ms").events["timestamp"].iloc[0] == pd.Timestamp("1970-01-20 16:13:20")


def test_timestamps_in_mixed_formats_and_zones_become_naive_utc():
    values = pd.Series(["2024-01-02 03:04:05", "2024-01-02T05:04:05+02:00", "Jan 3 2024", "garbage", None], dtype="string")
    with pytest.warns(UserWarning, match="1 value\\(s\\) are no timestamp .*'garbage'"):
        parsed = parse_timestamps(values, "test")
    assert list(parsed[:3]) == [pd.Timestamp(t) for t in ("2024-01-02 03:04:05", "2024-01-02 03:04:05", "2024-01-03")]
    assert parsed[3:].isna().all()


def test_each_epoch_value_is_read_in_the_unit_its_size_names():
    seconds = [1_700_000_000 + 60 * n for n in range(5)]
    values = pd.Series([*map(str, seconds), str(1_700_000_300_000), str(1_700_000_360_000_000), "12", "inf"])
    with pytest.warns(UserWarning, match=r"5 epoch s \(e\.g\. '1700000000'\), 1 epoch ms .*1 epoch us"):
        parsed = parse_timestamps(values, "ts")
    expected = [pd.Timestamp(n, unit="s") for n in [*seconds, 1_700_000_300, 1_700_000_360]]
    assert list(parsed[:7]) == expected
    assert parsed[7:].isna().all()  # 12 is no plausible date in any unit; inf is no number


def test_a_time_before_1970_is_quarantined_not_a_crash(tmp_path):
    # Found by tests/reliability/test_fuzz.py: a year-1731 time beside 2023 ones parsed, and
    # sessionization's time difference then overflowed int64 nanoseconds (a traceback, exit 1).
    rows = [f"s{s},{k % 2},{1_700_000_000 + s * 7200 + k * 60}" for s in range(3) for k in range(4)]
    path = write(tmp_path / "e.csv", "session_id,item_id,timestamp\ns0,0,-7523371976854776.0\n" + "\n".join(rows) + "\n")
    with pytest.warns(UserWarning, match=r"1 value\(s\) are no timestamp .*'-7523371976854776\.0'"):
        shop = load_csv(path)
    assert shop.events["timestamp"].isna().tolist() == [True] + [False] * 12
    cleaned = clean(shop, CleaningConfig())
    assert cleaned.report.dropped["invalid_timestamp"] == 1 and len(cleaned.shop.events) == 12


def test_one_millisecond_row_does_not_merge_sessions(tmp_path):
    rows = [f"s{s},{k},{1_700_000_000 + s * 7200 + k * 60}" for s in range(50) for k in range(3)]
    path = write(tmp_path / "e.csv", "session_id,item_id,timestamp\n" + "\n".join([*rows, "s0,9,1700000030000"]) + "\n")
    with pytest.warns(UserWarning, match="150 epoch s .* 1 epoch ms"):
        events = load_csv(path).events
    assert events["timestamp"].min() == pd.Timestamp("2023-11-14 22:13:20")
    assert events["timestamp"].iloc[-1] == pd.Timestamp("2023-11-14 22:13:50")


def test_half_epoch_half_iso_parses_row_by_row(tmp_path):
    rows = [f"s,{n},{1_700_000_000 + 60 * n if n % 2 else pd.Timestamp(1_700_000_000 + 60 * n, unit='s').isoformat()}"
            for n in range(6)]
    path = write(tmp_path / "e.csv", "session_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    with pytest.warns(UserWarning, match=r"3 epoch s \(e\.g\. '1700000060'\), 3 date text \(e\.g\. '2023-11-14T22:13:20'\)"):
        events = load_csv(path).events
    assert list(events["timestamp"]) == [pd.Timestamp(1_700_000_000 + 60 * n, unit="s") for n in range(6)]


@pytest.mark.parametrize("unit, message", [
    ("s", r"mixes epoch numbers \(e\.g\. '1700000000'\) and date text \(e\.g\. '2024-01-01T00:00:00'\) but the timestamp unit is 's'"),
    ("iso", r"mixes epoch numbers \(e\.g\. '1700000000'\) and date text .* unit is 'iso'"),
])
def test_a_declared_unit_refuses_values_of_the_other_kind_with_an_example_of_each(tmp_path, unit, message):
    path = write(tmp_path / "e.csv", "session_id,item_id,timestamp\ns,1,1700000000\ns,2,2024-01-01T00:00:00\n")
    with pytest.raises(DataError, match=message):
        load_csv(path, timestamp_unit=unit)


def test_iso_unit_reads_iso_text_and_quarantines_other_dates():
    with pytest.warns(UserWarning, match="1 value"):
        parsed = parse_timestamps(pd.Series(["2024-01-02T03:04:05Z", "Jan 3 2024"]), "ts", "iso")
    assert parsed[0] == pd.Timestamp("2024-01-02 03:04:05") and pd.isna(parsed[1])


@pytest.mark.parametrize("column, values, message", [
    ("timestamp", [True, False], r"column timestamp holds true/false values, not timestamps"),
    ("item_id", [[1, 2], [3]], r"column item_id holds lists, not one value per row \(e\.g\. \[1, 2\]\)"),
    ("session_id", [b"a\xff", b"b"], r"column session_id holds bytes that are not UTF-8 text \(row 0: b'a\\xff'\)"),
])
def test_parquet_columns_that_are_not_one_value_per_row_are_refused_by_name(tmp_path, column, values, message):
    frame = pd.DataFrame({"session_id": ["a", "b"], "item_id": ["1", "2"], "timestamp": [1_700_000_000, 1_700_000_060]})
    frame[column] = values
    frame.to_parquet(tmp_path / "events.parquet")
    with pytest.raises(DataError, match=message):
        load_csv(tmp_path / "events.parquet")


def test_parquet_with_damaged_pandas_metadata_is_refused_by_name(tmp_path):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(pd.DataFrame({"session_id": ["a"], "item_id": ["1"], "timestamp": [1_700_000_000]}))
    pandas_metadata = json.loads(table.schema.metadata[b"pandas"])
    for column in pandas_metadata["columns"]:
        del column["numpy_type"]  # what a fuzzed file held: pyarrow then fails with KeyError: 'numpy_type'
    pq.write_table(table.replace_schema_metadata({b"pandas": json.dumps(pandas_metadata).encode()}),
                   tmp_path / "events.parquet")
    with pytest.raises(DataError, match=r"cannot read .*events\.parquet: its pandas metadata is damaged \(KeyError: 'numpy_type'\)"):
        load_csv(tmp_path / "events.parquet")


def test_utf8_bytes_in_parquet_are_text(tmp_path):
    frame = pd.DataFrame({"session_id": [b"caf\xc3\xa9"], "item_id": ["1"], "timestamp": [1_700_000_000]})
    frame.to_parquet(tmp_path / "events.parquet")
    assert load_csv(tmp_path / "events.parquet").events["session_id"].iloc[0] == "café"


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"input file not found: .*nope\.csv"):
        load_csv(tmp_path / "nope.csv")


def test_missing_columns_are_named(tmp_path):
    path = write(tmp_path / "e.csv", "sid,product,when\n1,2,2024-01-01\n")
    with pytest.raises(DataError, match=r"e\.csv is missing column\(s\) item_id, timestamp, session_id; it has sid, product, when"):
        load_csv(path)


def test_unparsable_timestamps_are_refused(tmp_path):
    path = write(tmp_path / "e.csv", "session_id,item_id,timestamp\n1,2,yesterday\n1,3,soon\n")
    with pytest.raises(DataError, match=r"e\.csv column timestamp: no value parses as a timestamp \(e\.g\. 'yesterday'\)"):
        load_csv(path)


def test_unknown_column_map_source_is_named(tmp_path):
    path = write(tmp_path / "e.csv", "session_id,item_id,timestamp\n1,2,2024-01-01\n")
    with pytest.raises(DataError, match="column map source\\(s\\) sessionId not found in"):
        load_csv(path, column_map={"sessionId": "session_id"})


# --- RetailRocket ------------------------------------------------------------------------


def test_retailrocket_events_and_latest_properties(tmp_path):
    events = write(
        tmp_path / "events.csv",
        """
timestamp,visitorid,event,itemid,transactionid
1433221332117,257597,view,355908,
1433224214164,992329,addtocart,248676,
1433221955914,992329,transaction,248676,4000
""",
    )
    props1 = write(
        tmp_path / "item_properties_part1.csv",
        """
timestamp,itemid,property,value
1435460400000,248676,categoryid,1338
1431226800000,248676,790,n5160.000
1441508400000,248676,790,n6000.000
1441508400000,248676,888,1116713 960601
""",
    )
    props2 = write(tmp_path / "item_properties_part2.csv", "timestamp,itemid,property,value\n1431226800000,355908,categoryid,7\n")
    shop = load_retailrocket(events, [props1, props2])
    assert_canonical(shop)
    e = shop.events
    assert list(e["event_type"]) == ["view", "cart", "purchase"]
    assert list(e["user_id"]) == ["257597", "992329", "992329"]
    assert e["session_id"].isna().all()
    assert e["timestamp"].iloc[0] == pd.Timestamp("2015-06-02 05:02:12.117")
    catalog = shop.catalog.set_index("item_id")
    assert catalog.loc["248676", "category"] == "1338" and catalog.loc["248676", "price"] == 6000.0
    assert catalog.loc["355908", "category"] == "7" and pd.isna(catalog.loc["355908", "price"])


def test_retailrocket_missing_columns_are_named(tmp_path):
    path = write(tmp_path / "events.csv", "timestamp,visitor,event,itemid\n1,2,view,3\n")
    with pytest.raises(DataError, match="missing column\\(s\\) visitorid"):
        load_retailrocket(path)


# --- raw Diginetica (CIKM Cup 2016) ------------------------------------------------------


def test_diginetica_raw_sample_in_place():
    shop = load_diginetica_raw(RAW_SAMPLE)
    assert_canonical(shop)
    e = shop.events
    counts = e["event_type"].value_counts().to_dict()
    assert counts == {"view": 12_391, "purchase": 18_025}
    first = e.iloc[0]
    assert (first["session_id"], first["item_id"]) == ("1", "81766")
    assert pd.isna(first["user_id"])
    assert first["timestamp"] == pd.Timestamp("2016-05-09") + pd.Timedelta(milliseconds=526_309)
    purchase = e[(e["event_type"] == "purchase") & (e["session_id"] == "156")].iloc[0]
    assert (purchase["user_id"], purchase["item_id"]) == ("7", "35324")
    assert len(shop.catalog) == 184_047
    assert shop.catalog.set_index("item_id").loc["139578", "category"] == "1096"


def test_diginetica_raw_queries_and_products(tmp_path):
    write(tmp_path / "train-item-views.csv", "session_id;user_id;item_id;timeframe;eventdate\n1;NA;9;1000;2016-05-09\n")
    write(
        tmp_path / "train-queries.csv",
        "queryId;sessionId;userId;timeframe;duration;eventdate;searchstring.tokens;categoryId;items;is.test\n"
        "1;1;NA;500;10;2016-05-09;16655,244087;0;9,10;FALSE\n"
        "2;1;NA;900;10;2016-05-09;;1096;9;FALSE\n",
    )
    write(tmp_path / "products.csv", "itemId;pricelog2;product.name.tokens\n9;4;4,5,6\n")
    shop = load_diginetica_raw(tmp_path)
    e = shop.events
    assert list(e["event_type"]) == ["view", "search", "search"]
    assert list(e["query"].fillna("-")) == ["-", "16655 244087", "-"]
    assert e["timestamp"].iloc[1] == pd.Timestamp("2016-05-09 00:00:00.500")
    assert shop.catalog.to_dict("records") == [{"item_id": "9", "title": "4 5 6", "category": "", "brand": "", "price": 16.0}]


def test_diginetica_raw_timeframe_out_of_range_is_quarantined_not_a_crash(tmp_path):
    # eventdate + timeframe milliseconds: a huge offset overflowed nanoseconds (a traceback), and
    # a large negative one put the event before 1970, which sessionization cannot difference.
    rows = [f"{s};NA;{k % 2};{k * 60_000};2016-05-09" for s in range(1, 4) for k in range(4)]
    write(tmp_path / "train-item-views.csv", "session_id;user_id;item_id;timeframe;eventdate\n"
          + "\n".join([*rows, "1;NA;7;1e17;2016-05-09", "2;NA;7;-1.5e12;2016-05-09", "3;NA;7;;2016-05-09"]) + "\n")
    with pytest.warns(UserWarning, match=r"timeframe: 2 value\(s\) put the event outside 1970-2262 \(e\.g\. '1e17'\)"):
        shop = load_diginetica_raw(tmp_path)
    assert shop.events["timestamp"].isna().tolist() == [False] * 12 + [True] * 3
    assert shop.events["timestamp"].iloc[1] == pd.Timestamp("2016-05-09 00:01:00")
    cleaned = clean(shop, CleaningConfig())
    assert cleaned.report.dropped["invalid_timestamp"] == 3 and len(cleaned.shop.events) == 12


def test_diginetica_raw_needs_the_views_file(tmp_path):
    with pytest.raises(DataError, match="has no train-item-views.csv"):
        load_diginetica_raw(tmp_path)
    with pytest.raises(DataError, match="Diginetica directory not found"):
        load_diginetica_raw(tmp_path / "missing")


# --- SR-GNN benchmark ---------------------------------------------------------------------


def every_prefix_case(sessions: pd.DataFrame) -> list[str]:
    """The file lines a session list implies: every prefix, longest first, and its next item."""
    lines = []
    for items in sessions.groupby("session_id", sort=False)["item_id"].apply(list):
        for k in range(len(items) - 1, 0, -1):
            lines.append(" ".join(items[:k]) + "\t" + items[k])
    return lines


def test_srgnn_real_files_round_trip_the_test_cases():
    data = load_srgnn(DIGINETICA)
    events = data.shop.events
    assert len(data.train_session_ids) == 186_670
    test_events = events[events["session_id"].isin(set(data.test_session_ids))]
    lines = every_prefix_case(test_events)
    assert len(lines) == SRGNN_TEST_CASES
    assert lines == (DIGINETICA / "test_prefix_label.tsv").read_text().splitlines()
    assert events["timestamp"].is_monotonic_increasing and events["timestamp"].is_unique
    last_train = events.loc[~events["session_id"].isin(set(data.test_session_ids)), "timestamp"].max()
    assert last_train < test_events["timestamp"].min()
    assert len(data.shop.catalog) == 43_097 and data.shop.catalog["category"].nunique() == 995


def test_srgnn_splits_hold_out_the_latest_training_sessions():
    prepared = load_srgnn_splits(DIGINETICA, validation_fraction=0.1)
    parts = prepared.report.split.parts
    assert parts["validation"].sessions == 18_667 and parts["train"].sessions == 186_670 - 18_667
    assert parts["test"].events - parts["test"].sessions == SRGNN_TEST_CASES
    assert prepared.report.quarantined == 0 and prepared.quarantine.empty
    assert prepared.train["timestamp"].max() < prepared.validation["timestamp"].min()
    assert prepared.validation["session_id"].iloc[-1] == "train-186670"


def test_srgnn_inconsistent_prefixes_are_refused(tmp_path):
    write(tmp_path / "train_sessions.txt", "1 2\n")
    write(tmp_path / "test_prefix_label.tsv", "1 2 3\t4\n1 2\t9\n1\t2\n")
    with pytest.raises(DataError, match=r"test_prefix_label\.tsv line 2: prefix does not continue"):
        load_srgnn(tmp_path)
    write(tmp_path / "test_prefix_label.tsv", "1 2 3\t4\n1 2\t3\n")
    with pytest.raises(DataError, match="ends inside a session"):
        load_srgnn(tmp_path)
