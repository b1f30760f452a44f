"""Vocabularies and per-item feature tables built once from the training split.

They are plain Python data (lists and numpy arrays, saved as JSON beside a model) that the
model turns into Keras preprocessing layers (``StringLookup``, ``TextVectorization``), so
they travel inside every exported SavedModel and serving needs nothing else.

Example:

>>> import pandas as pd
>>> from recommenders.data import schema
>>> train_events = schema.conform_events(pd.DataFrame({"session_id": ["s1", "s1", "s2", "s2"],
...     "item_id": ["b", "a", "b", "c"], "event_type": ["view", "view", "view", "cart"],
...     "timestamp": pd.date_range("2024-01-01", periods=4, freq="min")}))
>>> catalog = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "category": ["shoes", "shoes", "hats", "hats"],
...     "title": ["Red Shoe", "Blue Shoe", "Green Hat", "Red Hat"]})
>>> vocab = FeatureVocabularies.build(train_events, catalog)
>>> vocab.item_ids, vocab.item_counts      # most popular first; d is in the catalog only
(['b', 'a', 'c', 'd'], [2, 1, 1, 0])
>>> vocab.item_categories, vocab.text_tokens
(['shoes', 'shoes', 'hats', 'hats'], ['hat', 'red', 'shoe', 'blue', 'green'])
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from recommenders.data.schema import INTERACTION_TYPES, conform_catalog
from recsys_base.errors import DataError

# Log-spaced gaps (seconds) between consecutive events: seconds apart vs. a coffee break vs. a new day.
TIME_GAP_BOUNDARIES = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)
# Keras TextVectorization's "lower_and_strip_punctuation" pattern, so the vocabulary built
# here tokenizes exactly as the in-model layer does at serving time.
_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')


# tf.strings.lower (inside TextVectorization) lower-cases ASCII letters only.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def tokenize(text: str) -> list[str]:
    """Lower-cases, strips punctuation and splits on whitespace, like ``TextVectorization``."""
    return _PUNCTUATION.sub("", str(text).translate(_ASCII_LOWER)).split()


@dataclasses.dataclass
class FeatureVocabularies:
    """Everything the models need to know about the shop, learned from training data only.

    ``item_ids`` is ordered by training popularity (most popular first); every per-item
    array (``item_categories``, ``item_brands``, ``item_prices``, ``item_titles``,
    ``item_counts``) is aligned with it. Items in the catalog that never occur in training
    are kept (with count 0) so they can still be retrieved by their content features.
    """

    item_ids: list[str]
    item_counts: list[int]
    item_categories: list[str]
    item_brands: list[str]
    item_prices: list[float]
    item_titles: list[str]
    categories: list[str]
    brands: list[str]
    users: list[str]
    text_tokens: list[str]
    price_boundaries: list[float]
    time_gap_boundaries: list[float] = dataclasses.field(default_factory=lambda: list(TIME_GAP_BOUNDARIES))
    event_types: list[str] = dataclasses.field(default_factory=lambda: list(INTERACTION_TYPES))

    @classmethod
    def build(
        cls,
        train_events: pd.DataFrame,
        catalog: pd.DataFrame,
        max_users: int = 100_000,
        max_text_tokens: int = 20_000,
        price_buckets: int = 10,
    ) -> FeatureVocabularies:
        """Builds vocabularies from training events and the catalog."""
        interactions = train_events[train_events["event_type"].isin(INTERACTION_TYPES)]
        if interactions.empty:
            raise DataError("cannot build vocabularies: the training split has no view/cart/purchase events")
        counts = interactions["item_id"].value_counts()
        catalog = conform_catalog(catalog).drop_duplicates("item_id").set_index("item_id")
        unseen = sorted(set(catalog.index) - set(counts.index))
        item_ids = [str(i) for i in counts.index] + unseen
        item_counts = [int(c) for c in counts.values] + [0] * len(unseen)
        aligned = catalog.reindex(item_ids)

        def text_column(name):
            return aligned[name].fillna("").astype(str).tolist()

        prices = aligned["price"].astype(float).to_numpy()
        known_prices = prices[np.isfinite(prices)]
        if known_prices.size:
            quantiles = np.quantile(known_prices, np.linspace(0, 1, price_buckets + 1)[1:-1])
            price_boundaries = sorted({float(q) for q in quantiles})
        else:
            price_boundaries = []

        users = interactions["user_id"].dropna()
        users = users[users != ""].value_counts().index[:max_users]

        token_counts: dict[str, int] = {}
        texts = text_column("title") + train_events["query"].dropna().astype(str).tolist()
        for text in texts:
            for token in tokenize(text):
                token_counts[token] = token_counts.get(token, 0) + 1
        tokens = sorted(token_counts, key=lambda t: (-token_counts[t], t))[:max_text_tokens]

        categories = sorted({c for c in text_column("category") if c})
        brands = sorted({b for b in text_column("brand") if b})
        return cls(
            item_ids=item_ids,
            item_counts=item_counts,
            item_categories=text_column("category"),
            item_brands=text_column("brand"),
            item_prices=[float(p) if np.isfinite(p) else -1.0 for p in prices],
            item_titles=text_column("title"),
            categories=categories,
            brands=brands,
            users=[str(u) for u in users],
            text_tokens=tokens,
            price_boundaries=price_boundaries,
        )

    def grown(self, train_events: pd.DataFrame, catalog: pd.DataFrame, max_users: int = 100_000,
              max_text_tokens: int = 20_000) -> FeatureVocabularies:
        """These vocabularies grown by new training events and a new catalog, old indices kept.

        Every old entry keeps its position (so weights learned for it stay valid) and new
        ones are appended: items (most frequent in ``train_events`` first, then catalog-only
        ones), categories, brands, users and title/query tokens. Price buckets keep their
        boundaries. Content of known items and ``item_counts`` come from the new data. A
        catalog that drops an item of these vocabularies is refused (DataError): the serving
        model still recommends it.

        >>> import pandas as pd
        >>> from recommenders.data import schema
        >>> events = schema.conform_events(pd.DataFrame({"session_id": ["s1", "s1"], "item_id": ["b", "a"],
        ...     "event_type": "view", "timestamp": pd.date_range("2024-01-01", periods=2, freq="min")}))
        >>> old = FeatureVocabularies.build(events, pd.DataFrame({"item_id": ["a", "b"], "category": ["shoes", "shoes"]}))
        >>> new_events = events.assign(item_id=["c", "c"])
        >>> new = old.grown(new_events, pd.DataFrame({"item_id": ["a", "b", "c"], "category": ["shoes", "shoes", "bags"]}))
        >>> new.item_ids, new.item_counts, new.categories   # old order kept, c appended
        (['b', 'a', 'c'], [0, 0, 2], ['shoes', 'bags'])
        """
        self.check_catalog_keeps_items(catalog)
        fresh = FeatureVocabularies.build(train_events, catalog, max_users, max_text_tokens)
        position = {item: index for index, item in enumerate(fresh.item_ids)}
        known = set(self.item_ids)
        item_ids = self.item_ids + [item for item in fresh.item_ids if item not in known]
        order = [position[item] for item in item_ids]

        def appended(old: list, new: list, limit: int | None = None) -> list:
            known = set(old)
            extra = [value for value in new if value not in known]
            return old + extra[: None if limit is None else max(0, limit - len(old))]

        return dataclasses.replace(
            self,
            item_ids=item_ids,
            **{name: [getattr(fresh, name)[i] for i in order]
               for name in ("item_counts", "item_categories", "item_brands", "item_prices", "item_titles")},
            categories=appended(self.categories, fresh.categories),
            brands=appended(self.brands, fresh.brands),
            users=appended(self.users, fresh.users, max_users),
            text_tokens=appended(self.text_tokens, fresh.text_tokens, max_text_tokens),
        )

    def check_catalog_keeps_items(self, catalog: pd.DataFrame) -> None:
        """DataError naming the items of these vocabularies that ``catalog`` lacks, if any."""
        dropped = sorted(set(self.item_ids) - set(conform_catalog(catalog)["item_id"]))
        if dropped:
            shown = ", ".join(dropped[:5]) + (f" and {len(dropped) - 5} more" if len(dropped) > 5 else "")
            raise DataError(f"the new catalog drops {len(dropped)} item(s) the serving model still knows: {shown}; "
                            "keep every served item in the catalog")

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def item_sampling_probability(self) -> np.ndarray:
        """Training frequency of each item (add-one smoothed), aligned with ``item_ids``."""
        counts = np.asarray(self.item_counts, dtype=np.float64) + 1.0
        return counts / counts.sum()

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def load(cls, path: str | Path) -> FeatureVocabularies:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"vocabulary file not found: {path}")
        return cls(**json.loads(path.read_text()))
