"""``recsys data``: the happy paths end to end, and bad input as a one-line error with exit 2."""

from pathlib import Path

import pytest

from recommenders.data.dataset import load_prepared
from recsys.cli import main

RAW_SAMPLE = "/work/shared/datasets/diginetica/raw-cikm16-sample"
EVENTS_CSV = """sid,product,kind,when
{rows}"""


def clicks(path: Path, sessions: int = 30, bad_time: str | None = None) -> Path:
    rows = []
    for s in range(sessions):
        for k, item in enumerate((s % 3, s % 3 + 1, s % 3 + 2)):
            rows.append(f"s{s},{item},view,2024-01-{1 + s // 10:02d} 10:{s:02d}:{k:02d}")
    if bad_time:
        rows.append(f"s0,1,view,{bad_time}")
    path.write_text(EVENTS_CSV.format(rows="\n".join(rows)) + "\n")
    return path


MAP = ["--map", "sid=session_id", "--map", "product=item_id", "--map", "kind=event_type", "--map", "when=timestamp"]


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


def test_generate_then_report(tmp_path, capsys):
    out = tmp_path / "shop"
    assert main(["data", "generate", "--small", "--seed", "3", "--sessions", "1500", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith(f"wrote {out}: train ")
    prepared = load_prepared(out)
    assert prepared.report.source == "synthetic shop (seed 3, 1,500 sessions, 300 items)"
    assert main(["data", "report", str(out)]) == 0
    assert capsys.readouterr().out.strip() == prepared.report.format_table()


def test_import_csv_with_map_and_flags(tmp_path, capsys):
    events = clicks(tmp_path / "clicks.csv")
    out = tmp_path / "out"
    args = ["data", "import", "--format", "csv", "--input", str(events), *MAP, "--out", str(out)]
    assert main([*args, "--min-item-support", "1", "--test-fraction", "0.2", "--validation-fraction", "0"]) == 0
    prepared = load_prepared(out)
    assert prepared.report.cleaning.rows_in == 90 and prepared.report.quarantined == 0
    assert prepared.validation.empty and prepared.report.split.parts["test"].sessions == 6
    assert "quarantined" in capsys.readouterr().out


def test_import_diginetica_sample(tmp_path, capsys):
    out = tmp_path / "digi"
    assert main(["data", "import", "--format", "diginetica-raw", "--input", RAW_SAMPLE, "--out", str(out)]) == 0
    report = load_prepared(out).report
    assert report.cleaning.rows_in == 12_391 + 18_025
    assert report.cleaning.rows_in == report.cleaning.rows_out + sum(report.cleaning.dropped.values())


def test_import_retailrocket_sessionizes_visitors(tmp_path, capsys):
    lines = ["timestamp,visitorid,event,itemid,transactionid"]
    for visitor in range(20):
        start = 1_433_221_332_000 + visitor * 7_200_000
        for k, event in enumerate(("view", "addtocart", "transaction")):
            lines.append(f"{start + k * 60_000},{visitor % 10},{event},{visitor % 4},")
    (tmp_path / "events.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "props.csv").write_text("timestamp,itemid,property,value\n1,0,790,n12.5\n1,1,categoryid,3\n")
    out = tmp_path / "rr"
    args = ["--input", str(tmp_path / "events.csv"), "--catalog", str(tmp_path / "props.csv"), "--out", str(out)]
    assert main(["data", "import", "--format", "retailrocket", *args, "--min-item-support", "1"]) == 0
    prepared = load_prepared(out)
    assert prepared.report.cleaning.sessions_from_users == 20 and prepared.report.quarantined == 0
    assert set(prepared.train["event_type"]) == {"view", "cart", "purchase"}
    assert prepared.catalog.set_index("item_id").loc["0", "price"] == 12.5


@pytest.mark.parametrize(
    "make_args, message",
    [
        (
            lambda d: ["--format", "csv", "--input", str(d / "missing.csv")],
            "recsys data: error: input file not found: {d}/missing.csv",
        ),
        (
            lambda d: ["--format", "csv", "--input", str(clicks(d / "c.csv"))],
            "recsys data: error: {d}/c.csv is missing column(s) item_id, timestamp, session_id; it has sid, product, kind, when"
            " (map source columns to canonical names, e.g. sessionId=session_id)",
        ),
        (
            lambda d: ["--format", "csv", "--input", str(clicks(d / "c.csv", sessions=0, bad_time="tomorrowish")), *MAP],
            "recsys data: error: {d}/c.csv column timestamp: no value parses as a timestamp (e.g. 'tomorrowish')",
        ),
        (
            lambda d: ["--format", "csv", "--input", str(clicks(d / "c.csv", sessions=3)), *MAP],
            "recsys data: error: no events left after cleaning: 9 rows in, dropped rare_item=9",
        ),
        (
            lambda d: ["--format", "csv", "--input", str(clicks(d / "c.csv")), "--map", "sid"],
            "recsys data: error: --map 'sid': expected SRC=DST, e.g. --map sessionId=session_id",
        ),
        (
            lambda d: ["--format", "csv", "--input", str(clicks(d / "c.csv")), "--map", "sid=session"],
            "recsys data: error: --map 'sid=session': 'session' is not a canonical column;",
        ),
        (
            lambda d: ["--format", "srgnn", "--input", str(d), "--catalog", "x.csv"],
            "recsys data: error: --catalog does not apply to --format srgnn",
        ),
        (
            lambda d: ["--format", "srgnn", "--input", str(d), "--test-fraction", "0.2", "--min-item-support", "2"],
            "recsys data: error: --min-item-support, --test-fraction do(es) not apply to --format srgnn",
        ),
        (
            lambda d: ["--format", "diginetica-raw", "--input", str(d)],
            "recsys data: error: {d} has no train-item-views.csv (or sample_train-item-views.csv)",
        ),
        (
            lambda d: ["--format", "csv", "--input", str(clicks(d / "c.csv")), *MAP, "--test-fraction", "1.5"],
            "recsys data: error: test_fraction must be in [0, 1), got 1.5",
        ),
    ],
    ids=[
        "missing-file",
        "missing-columns",
        "bad-timestamps",
        "nothing-left",
        "bad-map",
        "unknown-target",
        "catalog",
        "srgnn-flags",
        "no-views",
        "fraction",
    ],
)
def test_bad_import_input_exits_2_with_one_line(tmp_path, capsys, make_args, message):
    out = tmp_path / "out"
    assert main(["data", "import", *make_args(tmp_path), "--out", str(out)]) == 2
    assert error_line(capsys).startswith(message.format(d=tmp_path))
    assert not out.exists()


def test_existing_output_is_refused_without_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("")
    args = ["data", "import", "--format", "csv", "--input", str(clicks(tmp_path / "c.csv")), *MAP, "--out", str(out)]
    assert main([*args, "--min-item-support", "1"]) == 2
    assert "pass --overwrite (overwrite=True) to replace it" in error_line(capsys)
    assert main([*args, "--min-item-support", "1", "--overwrite"]) == 0
    assert not (out / "keep").exists()


def test_flag_help_states_the_config_defaults(capsys):
    from recommenders.data.cleaning import CleaningConfig
    from recommenders.data.split import SplitConfig
    from recsys.cli.data import CLEANING_FLAGS, SPLIT_FLAGS

    with pytest.raises(SystemExit):
        main(["data", "generate", "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps help lines
    for flags, config in ((CLEANING_FLAGS, CleaningConfig()), (SPLIT_FLAGS, SplitConfig())):
        for name, (_, text) in flags.items():
            assert f"{text} (default {getattr(config, name)})" in shown, name


def test_report_of_a_non_prepared_directory(tmp_path, capsys):
    assert main(["data", "report", str(tmp_path)]) == 2
    assert error_line(capsys).startswith(f"recsys data: error: {tmp_path} is not a prepared data directory: missing train.parquet")
