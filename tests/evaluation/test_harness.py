import numpy as np
import pytest

from recommenders.evaluation.baselines import MarkovChain, Popularity, SessionKNN
from recommenders.evaluation.cases import make_next_item_cases
from recommenders.evaluation.harness import evaluate
from recommenders.evaluation.report import EvaluationReport
from recsys_base.errors import ConfigError, DataError, ModelError
from tests.evaluation.conftest import catalog_of, view_events

ITEMS = [f"i{n}" for n in range(10)]


def cycle_walks(starts, length=5):
    """Sessions walking i0 -> i1 -> ... -> i9 -> i0: the next item is fully determined."""
    return view_events({f"w{n}": [ITEMS[(s + step) % 10] for step in range(length)] for n, s in enumerate(starts)})


@pytest.fixture(scope="module")
def report():
    rng = np.random.default_rng(0)
    cases = make_next_item_cases(cycle_walks(rng.integers(0, 10, 20)))
    models = {"popularity": Popularity(), "markov": MarkovChain(), "session_knn": SessionKNN()}
    return evaluate(
        models, cases, k_values=(1, 5), train_events=cycle_walks(range(10)), catalog=catalog_of(ITEMS), batch_size=7
    )


def test_markov_predicts_a_deterministic_walk_perfectly(report):
    markov = report.result("markov").metrics
    assert markov["HR@1"] == markov["MRR@1"] == markov["NDCG@1"] == 1.0
    assert markov["Coverage@1"] == 1.0  # every item is some case's successor


def test_baselines_are_ordered_as_the_structure_demands(report):
    popularity, knn = report.result("popularity").metrics, report.result("session_knn").metrics
    assert popularity["HR@1"] <= 0.2 and popularity["HR@5"] < 0.5
    # Neighbours contain the prefix items too (up to 4 here), so the successor comes right after them.
    assert knn["HR@5"] == 1.0
    assert report.result("popularity").metrics["Coverage@5"] == 0.5


def test_report_records_the_run(report):
    assert report.n_cases == 80 and report.catalog_size == 10 and report.k_values == (1, 5)
    assert [r.name for r in report.results] == ["popularity", "markov", "session_knn"]
    assert all(r.fit_seconds is not None and r.recommend_seconds >= 0 for r in report.results)


def test_json_round_trip_is_exact(report, tmp_path):
    path = tmp_path / "nested" / "report.json"
    report.to_json(path)
    assert EvaluationReport.from_json(path) == report


def test_table_shows_percent_per_model(report):
    table = report.format_table()
    markov_row = next(line for line in table.splitlines() if line.startswith("| markov |"))
    assert markov_row.split(" | ")[1:3] == ["100.00", "100.00"]  # HR@1, HR@5
    assert "80 cases, full ranking over 10 items" in table


def test_pretrained_models_need_a_catalog_size():
    model = MarkovChain().fit(cycle_walks(range(10)), catalog_of(ITEMS))
    cases = make_next_item_cases(cycle_walks([3]))
    result = evaluate({"markov": model}, cases, k_values=(1,), catalog_size=10).result("markov")
    assert result.fit_seconds is None and result.metrics["HR@1"] == 1.0
    with pytest.raises(ConfigError, match="catalog_size is required"):
        evaluate({"markov": model}, cases)


class WrongShape:
    def fit(self, train_events, catalog):
        return self

    def recommend(self, cases, k):
        return np.full((len(cases), k - 1), "i0", dtype=object)


def test_bad_inputs_get_clear_errors(tmp_path):
    cases = make_next_item_cases(cycle_walks([0]))
    with pytest.raises(ModelError, match=r"broken.recommend returned shape \(4, 1\) for 4 cases at k=2"):
        evaluate({"broken": WrongShape()}, cases, k_values=(2,), catalog_size=10)
    with pytest.raises(ConfigError, match="from 1 to the catalog size 10"):
        evaluate({"markov": MarkovChain()}, cases, k_values=(20,), catalog_size=10)
    with pytest.raises(ConfigError, match="give both train_events and catalog"):
        evaluate({"markov": MarkovChain()}, cases, train_events=cycle_walks([0]))
    with pytest.raises(DataError, match="no test cases"):
        evaluate({"markov": MarkovChain()}, cases.take([]), catalog_size=10)
    (tmp_path / "bad.json").write_text('{"k_values": [20]}')
    with pytest.raises(DataError, match="not an evaluation report"):
        EvaluationReport.from_json(tmp_path / "bad.json")
    with pytest.raises(DataError, match="not found"):
        EvaluationReport.from_json(tmp_path / "missing.json")
