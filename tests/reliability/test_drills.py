"""One test per drill scenario, asserting the outcome the shop relies on."""

import json

import pytest

from drills import scenarios
from drills.canary import canary_gate, read_labels, toy_holdout
from drills.workspace import MODEL, TOY_ITEMS
from recsys.cli import main
from serving import contract
from serving.config_files import read_model_server_config
from tests.reliability.conftest import FAST


def test_replica_killed_under_load_loses_no_request(workspace):
    result = scenarios.replica_killed(workspace, FAST)
    assert result.passed, result.notes
    assert result.failed == 0 and result.requests > 40
    assert result.failover_s < FAST.deadline_s


def test_half_written_version_is_reported_and_previous_keeps_serving(workspace):
    result = scenarios.corrupt_version(workspace, FAST)
    assert result.passed, result.notes
    assert result.failed == 0
    assert "version 2" in result.notes[0] and "reported END/UNKNOWN" in result.notes[0]
    assert "versions that answered after the drop: [1]" in result.notes[1]
    # The canary tooling reports the load error and restores models.config.
    assert result.notes[2].startswith("labelling it canary: model 'recommend' on 127.0.0.1:") and "version 2: DecodeError" in result.notes[2]
    assert read_labels(workspace.config_file, MODEL) == {contract.STABLE_LABEL: 1}


def test_unreadable_model_dir_keeps_last_loaded_version_serving(workspace):
    result = scenarios.unreadable_model_dir(workspace, FAST)
    assert result.passed, result.notes
    assert result.failed == 0
    # The drill restores the directory afterwards.
    assert workspace.model_dir.is_dir() and workspace.version_dir(1).is_dir()


def test_restart_with_warmup_answers_first_request_within_bound(workspace):
    result = scenarios.restart_with_warmup(workspace, FAST)
    assert result.passed, result.notes
    assert result.failed == 0 and result.requests == 50
    first_ms = float(result.notes[0].split("first request ")[1].split(" ms")[0])
    assert first_ms <= FAST.first_request_bound_ms
    assert result.notes[1].startswith("without warmup records the first request takes ")


def test_worse_canary_is_rolled_back_and_decision_logged(workspace):
    result = scenarios.canary_rejected(workspace, FAST)
    assert result.passed, result.notes
    assert read_labels(workspace.config_file, MODEL) == {contract.STABLE_LABEL: 1}
    decision = json.loads((workspace.root / "canary_decisions.jsonl").read_text())
    assert decision["promoted"] is False and decision["canary_version"] == 2 and decision["stable_version"] == 1
    assert decision["canary_hit_rate"] < decision["stable_hit_rate"]


def test_three_exports_in_a_row_never_fail_a_stable_request(workspace):
    result = scenarios.three_exports(workspace, FAST)
    assert result.passed, result.notes
    assert result.failed == 0 and result.requests > 20
    assert "answered by versions [1]" in result.notes[0]
    assert "ms before the exports" in result.notes[2] and "ms while they loaded" in result.notes[2]
    # models.config serves exactly the labelled versions (TF Serving's canary recipe).
    config = read_model_server_config(workspace.config_file).model_config_list.config[0]
    assert list(config.model_version_policy.specific.versions) == [1, 4]


def test_canary_as_good_as_stable_is_promoted(workspace):
    from serving.client import RecommenderClient
    from serving.server import ServerConfig, serve
    from serving.testing import export_toy_models

    export_toy_models(workspace.models_dir, version=2, num_items=TOY_ITEMS, models=(MODEL,))
    handle = serve(ServerConfig(workspace.config_file, model_base=workspace.models_dir, port=0, poll_seconds=0,
                                allow_config_reload=True))  # the canary gate reloads it (from loopback)
    target = f"127.0.0.1:{handle.port}"
    try:
        with RecommenderClient([target]) as client:
            # Shoppers who like what version 2 ranks high: the canary beats stable.
            holdout = toy_holdout(TOY_ITEMS, 2, 30, FAST.k)
            decision = canary_gate(client, [target], workspace.config_file, MODEL, 2, holdout, k=FAST.k,
                                   decision_log=workspace.root / "log.jsonl")
            served = client.predict(MODEL, {**_one_row()}, label=contract.STABLE_LABEL).version
    finally:
        handle.stop(0)
    assert decision.promoted and decision.canary_hit_rate == 1.0
    assert read_labels(workspace.config_file, MODEL) == {contract.STABLE_LABEL: 2}
    assert served == 2


def _one_row():
    from drills.load import recommend_inputs

    return recommend_inputs(["item-001"], 5)


def test_cli_drill_prints_report_and_exit_code(tmp_path, capsys):
    code = main(["drill", "--scenario", "corrupt_version", "--workdir", str(tmp_path), "--fault-seconds", "0.5",
                 "--workers", "2", "--json", str(tmp_path / "drill.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert "| corrupt_version | PASS |" in out
    assert json.loads((tmp_path / "drill.json").read_text())[0]["passed"] is True


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--scenario", "meteor_strike"], "unknown drill scenario(s) ['meteor_strike']"),
        (["--replicas", "1"], "replicas must be >= 2"),
        (["--model-base", "/nonexistent/models"], "--model-base /nonexistent/models is not a directory"),
        (["--rate", "0"], "rate_per_worker must be > 0"),
    ],
)
def test_cli_drill_rejects_bad_flags(argv, message, capsys):
    assert main(["drill", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_crashing_scenario_is_reported_failed_and_the_others_still_run(monkeypatch, tmp_path):
    from drills import DrillConfig, DrillResult, format_report, run_drills, runner

    def crash(workspace, settings):
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(runner.SCENARIOS, "corrupt_version", crash)
    monkeypatch.setitem(runner.SCENARIOS, "unreadable_model_dir", lambda workspace, settings: DrillResult("unreadable_model_dir", True))
    results = run_drills(DrillConfig(scenarios=("corrupt_version", "unreadable_model_dir"), workdir=tmp_path), progress=False)
    assert [(r.scenario, r.passed) for r in results] == [("corrupt_version", False), ("unreadable_model_dir", True)]
    report = format_report(results)
    assert "| corrupt_version | FAIL |" in report and "crashed: RuntimeError: disk on fire" in report
