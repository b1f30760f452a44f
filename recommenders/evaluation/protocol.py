"""The interface every model plugs into the evaluation harness through."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from recommenders.evaluation.cases import NextItemCases


@runtime_checkable
class Recommender(Protocol):
    """A next-item recommender: learns from events, then ranks the whole catalog per case.

    ``recommend`` returns a ``[len(cases), k]`` array of item id strings, best first,
    drawn from the catalog given to ``fit``. Items already in the prefix may be returned:
    shoppers revisit products, and the benchmark protocol counts those hits.

    Example:

    >>> from recommenders.evaluation.baselines import Popularity
    >>> isinstance(Popularity(), Recommender)
    True
    """

    def fit(self, train_events: pd.DataFrame, catalog: pd.DataFrame) -> Recommender:
        """Learns from canonical training events; ``catalog`` is the ranking universe."""

    def recommend(self, cases: NextItemCases, k: int) -> np.ndarray:
        """Returns the top ``k`` catalog item ids for every case."""
