import numpy as np
import pytest

from recommenders.evaluation.baselines import MarkovChain, Popularity, SessionKNN
from recommenders.evaluation.cases import make_next_item_cases
from recsys_base.errors import ConfigError
from tests.evaluation.conftest import catalog_of, view_events

CATALOG = catalog_of("abcdefghij")


def prefixes(*prefix_lists):
    """Cases whose prefixes are ``prefix_lists`` (the target is an arbitrary catalog item)."""
    sessions = {f"q{n}": [*prefix, "j"] for n, prefix in enumerate(prefix_lists)}
    # A session of n + 1 views yields n cases; its last one has the whole prefix.
    return make_next_item_cases(view_events(sessions)).take(np.cumsum([len(p) for p in prefix_lists]) - 1)


def test_popularity_ranks_by_training_frequency_for_everyone():
    model = Popularity().fit(view_events({"1": ["c", "c", "b"], "2": ["c", "b", "a"]}), CATALOG)
    ranked = model.recommend(prefixes(["a"], ["d", "e"]), k=4)
    assert ranked[:, :3].tolist() == [["c", "b", "a"]] * 2
    # Unseen items fill the rest; equal counts go to the item listed later in the catalog.
    assert ranked[:, 3].tolist() == ["j", "j"]


def test_markov_puts_the_most_frequent_successor_first():
    train = view_events({"1": ["a", "b"], "2": ["a", "b"], "3": ["a", "c"], "4": ["d", "e", "d", "e"]})
    ranked = MarkovChain().fit(train, CATALOG).recommend(prefixes(["e", "a"], ["d"]), k=3)
    assert ranked[0].tolist() == ["b", "c", "a"]  # two successors, then the most popular item
    # d -> e only; then popularity: a (3 views), then d, b, e tie (2) and the later-listed wins.
    assert ranked[1].tolist() == ["e", "a", "d"]


def test_markov_falls_back_to_popularity_without_a_known_last_item():
    train = view_events({"1": ["a", "b", "b"], "2": ["b", "c"]})
    model = MarkovChain().fit(train, CATALOG)
    cases = prefixes(["a", "not-in-catalog"], ["h"])
    ranked = model.recommend(cases, k=2)
    assert ranked[0].tolist() == ["b", "c"]  # unknown items are ignored: 'a' is the last known
    assert ranked[1].tolist() == ["b", "c"]  # 'h' never seen: popularity


def test_recommendations_are_distinct_catalog_items():
    train = view_events({"1": ["a", "b", "c"], "2": ["b", "d"]})
    for model in (Popularity(), MarkovChain(), SessionKNN()):
        ranked = model.fit(train, CATALOG).recommend(prefixes(["a", "b"], ["z"]), k=10)
        assert ranked.shape == (2, 10)
        assert all(sorted(row) == list("abcdefghij") for row in ranked.tolist())


def test_session_knn_weights_recent_prefix_items_higher():
    train = view_events({"1": ["p", "e"], "2": ["q", "f"]})
    ranked = SessionKNN().fit(train, catalog_of("efpq")).recommend(prefixes(["p", "q"]), k=4)
    # 'q' (last, weight 1) beats 'p' (weight 1/2): its neighbour's items rank first.
    assert ranked[0].tolist()[:2] == ["q", "f"]


def test_session_knn_normalizes_by_neighbour_length():
    train = view_events({"1": ["q", "g", "h", "i"], "2": ["q", "f"]})
    ranked = SessionKNN().fit(train, catalog_of("fghiq")).recommend(prefixes(["q"]), k=3)
    assert ranked[0].tolist()[:2] == ["q", "f"]


def test_session_knn_samples_the_most_recent_neighbours():
    # 'old' is the closer neighbour of [a], but only 'new' is among the 1 most recent.
    train = view_events({"old": ["a", "c"], "new": ["a", "d", "e", "f"]})
    cases = prefixes(["a"])
    closest = SessionKNN(neighbours=1, sample_size=2).fit(train, CATALOG).recommend(cases, k=2)
    recent = SessionKNN(neighbours=1, sample_size=1).fit(train, CATALOG).recommend(cases, k=2)
    assert sorted(closest[0].tolist()) == ["a", "c"]
    assert recent[0, 0] == "a" and recent[0, 1] in {"d", "e", "f"}


def test_bad_settings_and_calls_are_rejected():
    with pytest.raises(ConfigError, match="neighbours <= sample_size"):
        SessionKNN(neighbours=100, sample_size=10)
    with pytest.raises(RuntimeError, match="before fit"):
        Popularity().recommend(prefixes(["a"]), k=1)
    with pytest.raises(ConfigError, match="catalog size 10, got 11"):
        Popularity().fit(view_events({"1": ["a", "b"]}), CATALOG).recommend(prefixes(["a"]), k=11)


def test_a_session_opened_by_a_search_gets_popular_items():
    frame = view_events({"s": ["x", "b"]}).assign(item_id=[None, "b"], event_type=["search", "view"], query=["lamp", None])
    cases = make_next_item_cases(frame)
    assert cases.prefix_item_ids == [[]] and cases.queries.tolist() == ["lamp"]
    train = view_events({"1": ["a", "b", "c", "c"]})
    for model in (MarkovChain(), SessionKNN()):
        assert model.fit(train, CATALOG).recommend(cases, k=2).tolist() == [["c", "b"]]
