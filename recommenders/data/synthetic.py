"""A deterministic synthetic shop: the embedded default data for the demo and every test.

``generate_shop(config)`` returns a :class:`~recommenders.data.schema.ShopData` whose
events and catalog follow the canonical schema. Everything is drawn from independent
random streams derived from ``config.seed``: the same config gives identical frames.

Generative process (tests rely on each numbered property):

1. **Catalog.** ``n_categories`` categories come from a fixed list of real product
   categories grouped into departments (electronics, home, kitchen, fashion, sports,
   beauty), interleaved so small shops span every department; beyond the list,
   pseudo-word categories are invented. Each category gets a log-normal base price, one
   or two *complementary* categories from its department, and a share of the
   ``n_items`` items (at least one each). Each brand sells in a few categories. An item
   has a popularity weight (log-normal: a long tail), a price level ``z ~ N(0, 1)``
   within its category, ``price = base_price * exp(0.5 z)``, and the title
   ``"<Brand> <adjective> <color> <noun>"``: the noun is specific to the category (title
   words carry category information) and the adjective to the price level (``budget`` /
   ``premium`` words for cheap / expensive items). Ids: ``item_00042``.
2. **Next-item graph.** Every item has ``next_items_per_item`` successors with fixed,
   decreasing probabilities: similar items from its own category (close in price,
   popular ones favoured) and one accessory from a complementary category. Successors
   are directional (``a -> b`` does not imply ``b -> a``), so the order of a session
   carries information an order-free model cannot use.
3. **Users.** ``n_users`` shoppers (``user_00007``) with an activity weight, a taste (a
   mixture concentrated on one to three categories, big categories being likelier
   favourites, plus a little mass on every category), a price level and a favourite
   brand (one selling in their top category).
4. **Sessions.** ``n_sessions`` sessions, each by a user drawn by activity; a fraction
   ``anonymous_rate`` hides the user id (``<NA>``) but keeps the user's tastes. A session
   has an intent (a category drawn from the user's taste, re-drawn with probability
   ``intent_switch_probability`` at each step) and views a geometric number of items
   (mean ``mean_session_length``, at most ``max_session_length``). Each next item is,
   in order of precedence:

   * after a **search** (probability ``search_probability``, doubled on the first step):
     an item of the intent category, chosen by popularity, closeness to the user's price
     level and the favourite brand;
   * with ``transition_probability``: a successor of the last item (property 2);
   * with ``revisit_probability``: an earlier (not the last) item of the session;
   * with ``noise_probability``: any item by global popularity;
   * otherwise: an item of the intent category, chosen as after a search.

   Successors and intent choices never repeat the last item (unless its category
   has no other item).
5. **Funnel.** A view becomes a ``cart`` (at most once per session-item) with a
   probability that rises when the item is in the session's intent category and by
   the favourite brand, and falls with the distance between the item's and the user's
   price level; each session also has a buying propensity. At the end of the session,
   carted items are purchased with a probability driven by the same price match and
   propensity. Hence purchase ⊂ cart ⊂ view per session-item, exactly, in a clean shop.
6. **Search.** A ``search`` event (``item_id`` ``<NA>``, ``query`` set) comes right
   before the view it leads to. Its words are a subset of that item's lower-cased title
   words: usually the noun, sometimes brand, adjective or color; never empty.
7. **Time.** Sessions start on a uniform day among ``days`` after ``start_date`` at an
   hour drawn from an evening-heavy daily profile. Consecutive events are seconds to
   minutes apart (log-normal gaps of 1 s to 20 min: search to its view ~8 s, view to
   cart ~12 s, between views ~40 s, checkout ~1 min after the last event); session ids
   (``session_000123``) are numbered by start time and events are sorted by timestamp.
8. **Dirt** (skipped when ``clean=True``). Dirty rows are only ever *added*: the genuine
   events are identical to the clean shop's, and dropping exact duplicates, unknown
   event types, views without item and bot sessions gives back exactly the clean
   events. Rates: ``duplicate_rate`` and ``unknown_event_rate`` (copies of genuine
   events, the latter with an event type outside the schema), ``missing_item_rate``
   (copies of views with ``<NA>`` item), ``bot_session_rate`` (per genuine session: an
   anonymous session of 250 to 600 views of uniformly random items, 0.2 to 2 s apart,
   numbered after the genuine sessions) and ``price_outlier_rate`` (catalog prices
   replaced by 0 or 1e6; behaviour still follows the true price).
9. **New items** (when ``new_item_days`` > 0). Each of the last ``new_item_days`` days
   releases ``new_items_per_day`` items (never a category's only launch item), drawn
   from the catalog above: :func:`release_days` gives each item's first day. A session
   sees only items released by the day it starts (a successor or popular pick not yet
   released becomes an intent-category pick), and in the first ``LAUNCH_DAYS`` days
   after release an item's intent-category logit gets ``LAUNCH_BOOST`` (shops promote
   what is new). With ``new_item_days`` 0 the shop is exactly the one without this rule.

Example:

>>> from recommenders.data.synthetic import SyntheticShopConfig, generate_shop
>>> shop = generate_shop(SyntheticShopConfig.small(clean=True))
>>> len(shop.catalog), shop.events["session_id"].nunique()
(300, 4000)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommenders.data.schema import INTERACTION_TYPES, SEARCH, ShopData
from recsys_base.errors import ConfigError
from serving import contract

# (department, category, category-specific title nouns); nouns are unique across the list.
_CATEGORIES = (
    ("electronics", "headphones", ("headphones", "earbuds", "headset")),
    ("electronics", "laptops", ("laptop", "notebook", "ultrabook")),
    ("electronics", "phones", ("smartphone", "phone")),
    ("electronics", "phone cases", ("case", "cover", "bumper")),
    ("electronics", "chargers", ("charger", "adapter", "powerbank")),
    ("electronics", "cameras", ("camera", "camcorder")),
    ("electronics", "tablets", ("tablet", "ereader")),
    ("electronics", "smartwatches", ("smartwatch", "tracker")),
    ("electronics", "speakers", ("speaker", "soundbar")),
    ("electronics", "keyboards", ("keyboard", "keypad")),
    ("electronics", "mice", ("mouse", "trackpad")),
    ("electronics", "monitors", ("monitor", "display")),
    ("home", "lamps", ("lamp", "lantern")),
    ("home", "rugs", ("rug", "carpet")),
    ("home", "curtains", ("curtain", "blind")),
    ("home", "bedding", ("duvet", "pillow", "sheet")),
    ("home", "towels", ("towel", "bathrobe")),
    ("home", "vases", ("vase", "planter")),
    ("home", "candles", ("candle", "diffuser")),
    ("home", "clocks", ("clock", "alarm")),
    ("kitchen", "cookware", ("pan", "skillet", "wok")),
    ("kitchen", "knives", ("knife", "cleaver")),
    ("kitchen", "kettles", ("kettle", "teapot")),
    ("kitchen", "coffee makers", ("espresso", "grinder", "coffeemaker")),
    ("kitchen", "blenders", ("blender", "mixer")),
    ("kitchen", "tableware", ("plate", "bowl", "mug")),
    ("kitchen", "food storage", ("container", "jar")),
    ("fashion", "sneakers", ("sneakers", "trainers")),
    ("fashion", "boots", ("boots", "booties")),
    ("fashion", "jackets", ("jacket", "parka", "coat")),
    ("fashion", "trousers", ("jeans", "chinos")),
    ("fashion", "shirts", ("shirt", "blouse", "tee")),
    ("fashion", "dresses", ("dress", "skirt")),
    ("fashion", "bags", ("backpack", "tote", "handbag")),
    ("fashion", "socks", ("socks", "tights")),
    ("fashion", "sunglasses", ("sunglasses", "shades")),
    ("fashion", "watches", ("wristwatch", "chronograph")),
    ("sports", "yoga", ("yogamat", "block")),
    ("sports", "weights", ("dumbbell", "kettlebell")),
    ("sports", "bicycles", ("bicycle", "bike")),
    ("sports", "helmets", ("helmet", "visor")),
    ("sports", "tents", ("tent", "shelter")),
    ("sports", "bottles", ("bottle", "flask")),
    ("beauty", "hair care", ("shampoo", "conditioner")),
    ("beauty", "fragrance", ("perfume", "cologne")),
    ("beauty", "skincare", ("serum", "moisturizer", "cleanser")),
    ("beauty", "makeup", ("lipstick", "mascara", "foundation")),
)
_COLORS = ("black", "white", "silver", "blue", "red", "green", "grey", "navy", "beige", "pink")
_BUDGET_ADJECTIVES = ("basic", "essential", "everyday", "value", "lite")
_MIDRANGE_ADJECTIVES = ("classic", "compact", "modern", "sport", "smart", "urban", "soft")
_PREMIUM_ADJECTIVES = ("premium", "deluxe", "pro", "elite", "signature", "luxury")
_ONSETS = ("b", "d", "f", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "gr", "st", "tr", "pl")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "io", "ou")
_CODAS = ("", "", "n", "r", "x", "s", "l", "m", "k")
_UNKNOWN_EVENT_TYPES = ("wishlist", "compare", "share")

# Relative session starts per hour of day (UTC): quiet nights, lunch bump, evening peak.
_HOUR_PROFILE = np.array(
    [1.0, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.5, 2.2, 2.8, 3.2, 3.5,
     3.8, 3.6, 3.3, 3.2, 3.3, 3.6, 4.2, 5.0, 5.5, 5.2, 4.0, 2.2]
)

# Behaviour constants (documented in the module docstring; not worth a config knob each).
_PRICE_SPREAD = 0.5  # log-price standard deviation within a category
_PRICE_TOLERANCE = 0.7  # how far (in z units) from their price level shoppers still look
_INTENT_POPULARITY = 0.5  # weight of item popularity when choosing in a category
_BRAND_BONUS = 1.0  # logit bonus of the favourite brand when choosing in a category
_CART_BIAS, _PURCHASE_BIAS = -3.4, 0.4
_MAX_GAP_SECONDS = 1200.0
LAUNCH_BOOST, LAUNCH_DAYS = 1.5, 3
_BOT_LENGTH = (250, 600)


@dataclass(frozen=True)
class SyntheticShopConfig:
    """Sizes, behaviour probabilities and dirt rates of the synthetic shop.

    ``validate()`` (which :func:`generate_shop` calls) raises :class:`ConfigError` naming a bad field.

    Example:

    >>> SyntheticShopConfig(n_items=500, n_sessions=2_000).n_items
    500
    >>> SyntheticShopConfig.small(seed=3).seed
    3
    """

    seed: int = 0
    n_items: int = 1_500
    n_categories: int = 40
    n_brands: int = 60
    n_users: int = 3_000
    n_sessions: int = 25_000
    days: int = 60
    start_date: str = "2025-01-06"
    anonymous_rate: float = 0.3
    mean_session_length: float = 7.0
    max_session_length: int = 40
    next_items_per_item: int = 4
    search_probability: float = 0.12
    transition_probability: float = 0.5
    revisit_probability: float = 0.05
    noise_probability: float = 0.08
    intent_switch_probability: float = 0.08
    duplicate_rate: float = 0.01
    unknown_event_rate: float = 0.003
    missing_item_rate: float = 0.005
    bot_session_rate: float = 0.002
    price_outlier_rate: float = 0.005
    new_item_days: int = 0
    new_items_per_day: int = 0
    clean: bool = False

    @classmethod
    def small(cls, **overrides) -> SyntheticShopConfig:
        """A shop for tests: 300 items, 4,000 sessions, generated in well under a second."""
        sizes = dict(n_items=300, n_categories=12, n_brands=20, n_users=600, n_sessions=4_000, days=14)
        return cls(**{**sizes, **overrides})

    def validate(self) -> SyntheticShopConfig:
        """Checks every field; returns ``self``."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "int" and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
                raise ConfigError(f"SyntheticShopConfig.{field.name} must be an integer, got {value!r}")
            if field.type == "float" and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            ):
                raise ConfigError(f"SyntheticShopConfig.{field.name} must be a finite number, got {value!r}")
            if field.name.endswith(("_rate", "_probability")) and not 0.0 <= value <= 1.0:
                raise ConfigError(f"SyntheticShopConfig.{field.name} must be between 0 and 1, got {value!r}")
        if self.seed < 0:
            raise ConfigError(f"SyntheticShopConfig.seed must be >= 0, got {self.seed}")
        for name in ("n_items", "n_categories", "n_brands", "n_users", "n_sessions", "days", "max_session_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"SyntheticShopConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_categories > self.n_items:
            raise ConfigError(
                f"SyntheticShopConfig.n_categories ({self.n_categories}) must not exceed n_items ({self.n_items})"
            )
        if self.new_item_days < 0 or self.new_items_per_day < 0 or (self.new_item_days > 0) != (self.new_items_per_day > 0):
            raise ConfigError("SyntheticShopConfig.new_item_days and new_items_per_day must both be 0 or both be >= 1, "
                              f"got {self.new_item_days} and {self.new_items_per_day}")
        if self.new_item_days >= self.days:
            raise ConfigError(f"SyntheticShopConfig.new_item_days must be less than days ({self.days}): day 0 launches "
                              f"the shop, got {self.new_item_days}")
        if self.new_item_days * self.new_items_per_day > self.n_items - self.n_categories:
            raise ConfigError(f"SyntheticShopConfig: {self.new_item_days} days x {self.new_items_per_day} new items exceed the "
                              f"{self.n_items - self.n_categories} items that are not a category's only launch item")
        if not 1 <= self.next_items_per_item < self.n_items:
            raise ConfigError(
                f"SyntheticShopConfig.next_items_per_item must be between 1 and n_items - 1 "
                f"({self.n_items - 1}), got {self.next_items_per_item}"
            )
        if not 1.0 <= self.mean_session_length <= self.max_session_length:
            raise ConfigError(
                f"SyntheticShopConfig.mean_session_length must be between 1 and max_session_length "
                f"({self.max_session_length}), got {self.mean_session_length}"
            )
        step_mass = self.transition_probability + self.revisit_probability + self.noise_probability
        if step_mass > 1.0:
            raise ConfigError(
                "SyntheticShopConfig.transition_probability + revisit_probability + noise_probability "
                f"must not exceed 1, got {step_mass:g}"
            )
        if not isinstance(self.clean, bool):
            raise ConfigError(f"SyntheticShopConfig.clean must be true or false, got {self.clean!r}")
        try:
            pd.Timestamp(self.start_date)
        except (TypeError, ValueError):
            raise ConfigError(
                f"SyntheticShopConfig.start_date must be a date like 2025-01-06, got {self.start_date!r}"
            ) from None
        return self


def generate_shop(config: SyntheticShopConfig | None = None) -> ShopData:
    """Generates the synthetic shop described in the module docstring.

    Example:

    >>> shop = generate_shop(SyntheticShopConfig.small())
    >>> sorted(shop.events["event_type"].unique())[:4]
    ['cart', 'compare', 'purchase', 'search']
    """
    config = (config or SyntheticShopConfig()).validate()
    # The fifth stream (new items) leaves the first four, and so a shop without new items, unchanged.
    catalog_rng, users_rng, sessions_rng, dirt_rng, release_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(5)
    )
    items = _Catalog.generate(config, catalog_rng)
    users = _Users.generate(config, items, users_rng)
    release = _release_days(config, items, release_rng)
    events = _simulate(config, items, users, sessions_rng, release, release_rng)
    catalog = items.frame()
    if not config.clean:
        events = _add_dirty_events(config, events, items, dirt_rng)
        catalog = _add_price_outliers(config, catalog, dirt_rng)
    return ShopData(events, catalog)


def _release_days(config: SyntheticShopConfig, items: _Catalog, rng: np.random.Generator) -> np.ndarray | None:
    """Each item's release day (property 9), or None when the shop releases no new items."""
    if not config.new_item_days:
        return None
    launch_only = items.members[:, 0]  # every category keeps one launch item
    eligible = np.setdiff1d(np.arange(len(items.category)), launch_only)
    released = rng.choice(eligible, config.new_item_days * config.new_items_per_day, replace=False)
    release = np.zeros(len(items.category), dtype=np.int64)
    release[released] = config.days - config.new_item_days + np.arange(len(released)) // config.new_items_per_day
    return release


def release_days(config: SyntheticShopConfig) -> pd.Series:
    """The day (0 = ``start_date``) each item of :func:`generate_shop`'s catalog is released
    (property 9), indexed by item id: 0 for every item when ``new_item_days`` is 0.

    >>> days = release_days(SyntheticShopConfig.small(new_item_days=2, new_items_per_day=3))
    >>> days.value_counts().sort_index().to_dict()
    {0: 294, 12: 3, 13: 3}
    """
    config = config.validate()
    catalog_rng, _, _, _, release_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(5))
    items = _Catalog.generate(config, catalog_rng)
    release = _release_days(config, items, release_rng)
    return pd.Series(np.zeros(len(items.category), np.int64) if release is None else release, index=items.item_ids, name="release_day")


def session_days(events: pd.DataFrame, config: SyntheticShopConfig) -> pd.Series:
    """The day (0 = ``start_date``) each session of ``events`` started, indexed by session id."""
    started = events.groupby("session_id")["timestamp"].min()
    return ((started - pd.Timestamp(config.start_date)) // pd.Timedelta(days=1)).astype(np.int64).rename("day")


def _pseudo_words(rng: np.random.Generator, count: int, taken: set[str]) -> list[str]:
    """Distinct pronounceable two-syllable words, none of them in ``taken``."""
    words: list[str] = []
    while len(words) < count:
        onsets, vowels = rng.choice(_ONSETS, 2), rng.choice(_VOWELS, 2)
        word = onsets[0] + vowels[0] + onsets[1] + vowels[1] + rng.choice(_CODAS)
        if word not in taken:
            taken.add(word)
            words.append(word)
    return words


def _id_strings(prefix: str, count: int, width: int) -> np.ndarray:
    """``prefix_000``, ``prefix_001``, ... zero-padded to ``width`` digits (more if needed)."""
    width = max(width, len(str(count - 1)))
    return np.array([f"{prefix}_{i:0{width}d}" for i in range(count)], dtype=object)


def _gumbel_top(logits: np.ndarray, rng: np.random.Generator, k: int) -> np.ndarray:
    """Samples ``k`` columns per row without replacement, proportionally to ``exp(logits)``."""
    noisy = logits + rng.gumbel(size=logits.shape)
    if k == 1 and logits.shape[-1]:
        return np.argmax(noisy, axis=-1)[..., None]
    return np.argsort(-noisy, axis=-1, kind="stable")[..., :k]


def _pick_each(options: list[tuple], group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For every entry of ``group``, a uniform choice among ``options[group]``."""
    counts = np.array([len(o) for o in options])
    table = np.array([list(o) + [None] * (counts.max() - len(o)) for o in options], dtype=object)
    return table[group, (rng.random(len(group)) * counts[group]).astype(np.int64)]


@dataclass
class _Catalog:
    """Item attributes (arrays indexed by item number) and the per-category candidate table."""

    category_names: list[str]
    brand_names: list[str]
    category: np.ndarray
    brand: np.ndarray
    price_level: np.ndarray
    price: np.ndarray
    log_popularity: np.ndarray
    title_words: np.ndarray  # (n_items, 4) object: brand, adjective, color, noun (lower case)
    successors: np.ndarray  # (n_items, k) item numbers
    successor_cdf: np.ndarray  # (n_items, k) cumulative successor probabilities
    members: np.ndarray  # (n_categories, max size) item numbers, -1 padded

    @classmethod
    def generate(cls, config: SyntheticShopConfig, rng: np.random.Generator) -> _Catalog:
        n_items, n_cats = config.n_items, config.n_categories
        departments, names, nouns = _category_vocabulary(n_cats, rng)
        brand_names = [w.capitalize() for w in _pseudo_words(rng, config.n_brands, set(itertools.chain(*nouns)))]

        # Category sizes: one item each, the rest by log-normal shares.
        shares = rng.lognormal(0.0, 0.6, n_cats)
        sizes = 1 + rng.multinomial(n_items - n_cats, shares / shares.sum())
        category = np.repeat(np.arange(n_cats), sizes)

        # Each brand sells in 1-3 categories; every category gets at least one brand.
        brand_categories = [set(rng.choice(n_cats, rng.integers(1, 4))) for _ in range(config.n_brands)]
        for c in range(n_cats):
            if not any(c in cats for cats in brand_categories):
                brand_categories[rng.integers(config.n_brands)].add(c)
        sellers = [np.array([b for b, cats in enumerate(brand_categories) if c in cats]) for c in range(n_cats)]
        brand = _pick_each([tuple(s) for s in sellers], category, rng).astype(np.int64)

        base_log_price = rng.uniform(np.log(5.0), np.log(800.0), n_cats)
        price_level = rng.normal(0.0, 1.0, n_items)
        price = np.round(np.exp(base_log_price[category] + _PRICE_SPREAD * price_level), 2).clip(0.5)
        log_popularity = rng.normal(0.0, 1.0, n_items)

        price_class = np.digitize(price_level, [-0.8, 0.8])
        adjective = _pick_each([_BUDGET_ADJECTIVES, _MIDRANGE_ADJECTIVES, _PREMIUM_ADJECTIVES], price_class, rng)
        title_words = np.stack(
            [
                np.array([brand_names[b].lower() for b in brand], dtype=object),
                adjective,
                rng.choice(np.array(_COLORS, dtype=object), n_items),
                _pick_each(nouns, category, rng),
            ],
            axis=1,
        )

        members = np.full((n_cats, sizes.max()), -1)
        for c in range(n_cats):
            members[c, : sizes[c]] = np.flatnonzero(category == c)
        complements = _complements(departments, rng)
        successors, successor_cdf = _successor_graph(
            config.next_items_per_item, category, price_level, log_popularity, members, complements, rng
        )
        return cls(
            names, brand_names, category, brand, price_level, price, log_popularity,
            title_words, successors, successor_cdf, members,
        )

    @property
    def item_ids(self) -> np.ndarray:
        return _id_strings("item", len(self.category), 5)

    def frame(self) -> pd.DataFrame:
        titles = [
            f"{b.capitalize()} {adjective} {color} {noun}" for b, adjective, color, noun in self.title_words
        ]
        return pd.DataFrame(
            {
                "item_id": self.item_ids,
                "title": titles,
                "category": np.array(self.category_names, dtype=object)[self.category],
                "brand": np.array(self.brand_names, dtype=object)[self.brand],
                "price": self.price,
            }
        )

    def pick_in_category(
        self, categories: np.ndarray, users: _Users, user: np.ndarray, last: np.ndarray, rng: np.random.Generator,
        release: np.ndarray | None = None, day: np.ndarray | None = None,
    ) -> np.ndarray:
        """One item per row from ``categories``, by popularity, price match and brand; avoids ``last``.

        With ``release`` (each item's release day) and ``day`` (each row's), only released
        items are candidates and recently released ones get the launch boost (property 9).
        """
        candidates = self.members[categories]
        valid = candidates >= 0
        safe = np.where(valid, candidates, 0)
        logits = (
            _INTENT_POPULARITY * self.log_popularity[safe]
            - (self.price_level[safe] - users.price_level[user, None]) ** 2 / (2 * _PRICE_TOLERANCE**2)
            + _BRAND_BONUS * (self.brand[safe] == users.favourite_brand[user, None])
        )
        if release is not None:
            age = day[:, None] - release[safe]
            valid &= age >= 0
            logits = logits + LAUNCH_BOOST * ((release[safe] > 0) & (age < LAUNCH_DAYS))
        # A one-item category may leave only ``last``: keep it possible rather than pick padding.
        logits = np.where(candidates == last[:, None], -50.0, logits)
        logits = np.where(valid, logits, -np.inf)
        choice = _gumbel_top(logits, rng, 1)[:, 0]
        return candidates[np.arange(len(categories)), choice]


def _category_vocabulary(n_categories: int, rng: np.random.Generator):
    """Departments, names and title nouns of the categories, departments interleaved."""
    by_department: dict[str, list] = {}
    for department, name, nouns in _CATEGORIES:
        by_department.setdefault(department, []).append((department, name, nouns))
    chosen = [c for c in itertools.chain(*itertools.zip_longest(*by_department.values())) if c is not None]
    chosen = chosen[:n_categories]
    extra = n_categories - len(chosen)
    if extra > 0:
        taken = {noun for _, _, nouns in _CATEGORIES for noun in nouns}
        words = _pseudo_words(rng, 2 * extra, taken)
        department_names = list(by_department)
        for i in range(extra):
            department = department_names[rng.integers(len(department_names))]
            chosen.append((department, words[2 * i], (words[2 * i], words[2 * i + 1])))
    departments, names, nouns = zip(*chosen)
    return np.array(departments), list(names), list(nouns)


def _complements(departments: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """One or two other categories of the same department (any department if it is alone)."""
    out = []
    for c, department in enumerate(departments):
        pool = np.flatnonzero((departments == department) & (np.arange(len(departments)) != c))
        if len(pool) == 0:
            pool = np.flatnonzero(np.arange(len(departments)) != c)
        out.append(rng.choice(pool, min(len(pool), rng.integers(1, 3)), replace=False) if len(pool) else pool)
    return out


def _successor_graph(k, category, price_level, log_popularity, members, complements, rng):
    """Each item's ``k`` successors and their cumulative probabilities (property 2)."""
    n_items = len(category)
    all_items = np.arange(n_items)
    successors = np.empty((n_items, k), dtype=np.int64)
    n_accessories = 1 if k > 1 else 0
    for item in range(n_items):
        same = members[category[item]]
        same = same[(same >= 0) & (same != item)]
        similar = 0.5 * log_popularity[same] - (price_level[same] - price_level[item]) ** 2 / (2 * 0.5**2)
        picked = same[_gumbel_top(similar, rng, k - n_accessories)]
        if n_accessories and len(complements[category[item]]):
            accessories = members[complements[category[item]]].ravel()
            accessories = accessories[accessories >= 0]
            picked = np.concatenate([picked, accessories[_gumbel_top(0.5 * log_popularity[accessories], rng, 1)]])
        if len(picked) < k:  # tiny categories: fill with popular items from anywhere
            rest = all_items[~np.isin(all_items, np.append(picked, item))]
            picked = np.concatenate([picked, rest[_gumbel_top(log_popularity[rest], rng, k - len(picked))]])
        successors[item] = picked
    weights = -np.sort(-rng.dirichlet(np.ones(k), n_items), axis=1)
    return successors, np.cumsum(weights, axis=1)


@dataclass
class _Users:
    """Latent shopper traits, arrays indexed by user number."""

    activity: np.ndarray
    taste_cdf: np.ndarray  # (n_users, n_categories) cumulative category taste
    price_level: np.ndarray
    favourite_brand: np.ndarray

    @classmethod
    def generate(cls, config: SyntheticShopConfig, items: _Catalog, rng: np.random.Generator) -> _Users:
        n_users, n_cats = config.n_users, config.n_categories
        # Big categories attract more shoppers, so no handful of items dominates the views.
        category_appeal = (items.members >= 0).sum(axis=1) * rng.lognormal(0.0, 0.3, n_cats)
        n_favourites = min(3, n_cats)
        favourites = _gumbel_top(np.broadcast_to(np.log(category_appeal), (n_users, n_cats)), rng, n_favourites)
        # Dirichlet weights over one to three favourites: normalized exponentials, some zeroed.
        weights = rng.exponential(size=(n_users, n_favourites))
        weights[np.arange(n_favourites) >= rng.integers(1, n_favourites + 1, n_users)[:, None]] = 0.0
        taste = np.full((n_users, n_cats), 0.05 / n_cats)
        taste[np.arange(n_users)[:, None], favourites] += 0.95 * weights / weights.sum(axis=1, keepdims=True)
        # The favourite brand sells a popular item in the user's top category.
        candidates = items.members[taste.argmax(axis=1)]
        logits = np.where(candidates >= 0, items.log_popularity[candidates], -np.inf)
        favourite_item = candidates[np.arange(n_users), _gumbel_top(logits, rng, 1)[:, 0]]
        return cls(
            activity=rng.lognormal(0.0, 1.0, n_users),
            taste_cdf=np.cumsum(taste, axis=1),
            price_level=rng.normal(0.0, 0.8, n_users),
            favourite_brand=items.brand[favourite_item],
        )

    def draw_category(self, user: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One category per entry of ``user``, drawn from that user's taste."""
        cdf = self.taste_cdf[user]
        return np.minimum((cdf < rng.random(len(user))[:, None] * cdf[:, -1:]).sum(axis=1), cdf.shape[1] - 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _browse(config: SyntheticShopConfig, items: _Catalog, users: _Users, user, length, rng, release=None, day=None):
    """Steps every session forward together (property 4); returns viewed items, searches, intents.

    With ``release`` and each session's ``day``, unreleased items are never viewed (property 9)."""
    n, width = len(user), int(length.max())
    viewed = np.full((n, width), -1, dtype=np.int64)
    searched = np.zeros((n, width), dtype=bool)
    intent_at = np.zeros((n, width), dtype=np.int64)
    intent = users.draw_category(user, rng)
    popularity_cdf = np.cumsum(np.exp(items.log_popularity))
    transition = config.transition_probability
    revisit = transition + config.revisit_probability
    noise = revisit + config.noise_probability
    for step in range(width):
        active = np.flatnonzero(length > step)
        who = user[active]
        if step > 0:
            switch = rng.random(len(active)) < config.intent_switch_probability
            intent[active[switch]] = users.draw_category(who[switch], rng)
        categories = intent[active]
        last = viewed[active, step - 1] if step else np.full(len(active), -1)
        search_probability = min(1.0, 2 * config.search_probability) if step == 0 else config.search_probability
        is_search = rng.random(len(active)) < search_probability
        mode = np.where(is_search, 1.0, rng.random(len(active)))

        follow = (mode < transition) & (step > 0)
        go_back = (mode >= transition) & (mode < revisit) & (step > 1)
        wander = (mode >= revisit) & (mode < noise)
        choice = np.empty(len(active), dtype=np.int64)
        rows = np.flatnonzero(follow)
        cdf = items.successor_cdf[last[rows]]
        rank = np.minimum((cdf < rng.random(len(rows))[:, None]).sum(axis=1), cdf.shape[1] - 1)
        choice[rows] = items.successors[last[rows], rank]
        rows = np.flatnonzero(go_back)
        position = (rng.random(len(rows)) * (step - 1)).astype(np.int64)
        choice[rows] = viewed[active[rows], position]
        rows = np.flatnonzero(wander)
        picked = np.searchsorted(popularity_cdf, rng.random(len(rows)) * popularity_cdf[-1], side="right")
        choice[rows] = np.minimum(picked, len(popularity_cdf) - 1)
        if release is not None:  # an unreleased successor or popular pick becomes an intent pick
            picked = np.flatnonzero(follow | wander)
            unreleased = picked[release[choice[picked]] > day[active[picked]]]
            follow[unreleased] = wander[unreleased] = False
        rows = np.flatnonzero(~(follow | go_back | wander))
        released = {} if release is None else {"release": release, "day": day[active[rows]]}
        choice[rows] = items.pick_in_category(categories[rows], users, who[rows], last[rows], rng, **released)

        viewed[active, step] = choice
        searched[active, step] = is_search
        intent_at[active, step] = categories
    return viewed, searched, intent_at


def _funnel(items: _Catalog, users: _Users, session, user, item, on_intent, propensity, rng):
    """Cart and purchase flags per view (property 5)."""
    mismatch = np.abs(items.price_level[item] - users.price_level[user])
    favourite = items.brand[item] == users.favourite_brand[user]
    cart = rng.random(len(item)) < _sigmoid(
        _CART_BIAS + 1.2 * on_intent + 0.8 * favourite - 1.0 * mismatch + propensity[session]
    )
    # Once an item is in the cart, viewing it again does not add it again.
    carted = np.flatnonzero(cart)
    _, first = np.unique(session[carted] * len(items.category) + item[carted], return_index=True)
    cart = np.zeros_like(cart)
    cart[carted[first]] = True
    purchase = cart & (rng.random(len(item)) < _sigmoid(_PURCHASE_BIAS - 0.8 * mismatch + propensity[session]))
    return cart, purchase


def _queries(items: _Catalog, item: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Search text from the title words of the item viewed next (property 6)."""
    words = items.title_words[item]
    keep = rng.random(words.shape) < np.array([0.35, 0.25, 0.3, 0.9])
    keep[~keep.any(axis=1), 3] = True
    return [" ".join(w[k]) for w, k in zip(words, keep)]


def _start_seconds(config: SyntheticShopConfig, n: int, rng: np.random.Generator, day: np.ndarray | None = None) -> np.ndarray:
    """Seconds after ``start_date`` at which ``n`` sessions begin (property 7), on ``day`` if given."""
    if day is None:
        day = rng.integers(0, config.days, n)
    hour = rng.choice(24, n, p=_HOUR_PROFILE / _HOUR_PROFILE.sum())
    return day * 86_400.0 + hour * 3_600.0 + rng.random(n) * 3_600.0


def _timestamps(config: SyntheticShopConfig, seconds: np.ndarray) -> np.ndarray:
    milliseconds = np.round(seconds * 1000.0).astype("timedelta64[ms]")
    return (np.datetime64(pd.Timestamp(config.start_date).to_datetime64(), "ms") + milliseconds).astype(
        "datetime64[ns]"
    )


def _sorted_by_time(events: pd.DataFrame) -> pd.DataFrame:
    return events.sort_values("timestamp", kind="stable").reset_index(drop=True)


def _simulate(config: SyntheticShopConfig, items: _Catalog, users: _Users, rng: np.random.Generator,
              release: np.ndarray | None = None, release_rng: np.random.Generator | None = None) -> pd.DataFrame:
    """The genuine events of ``config.n_sessions`` sessions (properties 4 to 7 and 9)."""
    n = config.n_sessions
    user = rng.choice(config.n_users, n, p=users.activity / users.activity.sum())
    anonymous = rng.random(n) < config.anonymous_rate
    length = np.minimum(rng.geometric(1.0 / config.mean_session_length, n), config.max_session_length)
    propensity = rng.normal(0.0, 0.7, n)
    # With new items a session's day must be known while it browses: drawn up front, from the release stream.
    day = None if release is None else release_rng.integers(0, config.days, n)
    viewed, searched, intent_at = _browse(config, items, users, user, length, rng, release, day)

    mask = viewed >= 0
    session, step = np.nonzero(mask)
    item = viewed[mask]
    on_intent = items.category[item] == intent_at[mask]
    cart, purchase = _funnel(items, users, session, user[session], item, on_intent, propensity, rng)
    search = searched[mask]

    # Slots order the events of one step: search, view, cart; purchases follow the last step.
    parts = [(search, 0), (np.ones_like(search), 1), (cart, 2), (purchase, 3)]
    ev_session = np.concatenate([session[m] for m, _ in parts])
    ev_step = np.concatenate([np.where(slot == 3, config.max_session_length, step[m]) for m, slot in parts])
    ev_slot = np.concatenate([np.full(m.sum(), slot) for m, slot in parts])
    ev_order = np.concatenate([step[m] for m, _ in parts])
    ev_item = np.concatenate([item[m] for m, _ in parts])
    order = np.lexsort((ev_order, ev_slot, ev_step, ev_session))
    ev_session, ev_slot, ev_item = ev_session[order], ev_slot[order], ev_item[order]

    first = np.r_[True, ev_session[1:] != ev_session[:-1]]
    previous_slot = np.r_[-1, ev_slot[:-1]]
    median_gap = np.select(
        [ev_slot == 0, (ev_slot == 1) & (previous_slot == 0), ev_slot == 1, ev_slot == 2, previous_slot == 3],
        [40.0, 8.0, 40.0, 12.0, 2.0],
        default=60.0,
    )
    gap = np.clip(median_gap * np.exp(0.8 * rng.normal(size=len(ev_slot))), 1.0, _MAX_GAP_SECONDS)
    gap[first] = 0.0
    elapsed = np.cumsum(gap)
    elapsed -= elapsed[np.maximum.accumulate(np.where(first, np.arange(len(first)), 0))]

    start = _start_seconds(config, n, rng, day)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(start, kind="stable")] = np.arange(n)
    user_ids = _id_strings("user", config.n_users, 5)[user]
    user_ids[anonymous] = None
    is_search = ev_slot == 0
    query = np.full(len(ev_slot), None, dtype=object)
    query[is_search] = _queries(items, ev_item[is_search], rng)
    item_ids = items.item_ids[ev_item]
    item_ids[is_search] = None
    events = pd.DataFrame(
        {
            "session_id": _id_strings("session", n, 6)[rank[ev_session]],
            "user_id": user_ids[ev_session],
            "item_id": item_ids,
            "event_type": np.array([SEARCH, *INTERACTION_TYPES], dtype=object)[ev_slot],
            "timestamp": _timestamps(config, start[ev_session] + elapsed),
            "query": query,
        }
    )
    return _sorted_by_time(events)


def _add_dirty_events(config: SyntheticShopConfig, events: pd.DataFrame, items: _Catalog, rng) -> pd.DataFrame:
    """Genuine events plus duplicates, unknown types, item-less views and bots (property 8)."""
    n_events = len(events)
    views = np.flatnonzero(events["event_type"].to_numpy() == contract.VIEW)
    missing = events.iloc[rng.choice(views, round(config.missing_item_rate * len(views)), replace=False)]
    unknown = events.iloc[rng.choice(n_events, round(config.unknown_event_rate * n_events), replace=False)]
    duplicates = events.iloc[rng.choice(n_events, round(config.duplicate_rate * n_events), replace=False)]

    n_bots = round(config.bot_session_rate * config.n_sessions)
    bot_length = rng.integers(_BOT_LENGTH[0], _BOT_LENGTH[1] + 1, n_bots)
    bot = np.repeat(np.arange(n_bots), bot_length)
    first = np.cumsum(bot_length) - bot_length
    gap = rng.uniform(0.2, 2.0, len(bot))
    gap[first] = 0.0
    elapsed = np.cumsum(gap)
    elapsed -= elapsed[np.repeat(first, bot_length)]
    width = max(6, len(str(config.n_sessions - 1)))
    bots = pd.DataFrame(
        {
            "session_id": np.array([f"session_{config.n_sessions + b:0{width}d}" for b in range(n_bots)])[bot],
            "user_id": None,
            "item_id": items.item_ids[rng.integers(0, len(items.category), len(bot))],
            "event_type": contract.VIEW,
            "timestamp": _timestamps(config, _start_seconds(config, n_bots, rng)[bot] + elapsed),
            "query": None,
        }
    )
    dirty = [
        missing.assign(item_id=None),
        unknown.assign(event_type=rng.choice(np.array(_UNKNOWN_EVENT_TYPES, dtype=object), len(unknown))),
        duplicates,
        bots,
    ]
    return _sorted_by_time(pd.concat([events, *dirty], ignore_index=True))


def _add_price_outliers(config: SyntheticShopConfig, catalog: pd.DataFrame, rng) -> pd.DataFrame:
    catalog = catalog.copy()
    outliers = rng.choice(len(catalog), round(config.price_outlier_rate * len(catalog)), replace=False)
    catalog.loc[outliers, "price"] = rng.choice([0.0, 1e6], len(outliers))
    return catalog
