"""Type checks for config dataclasses, whether filled from JSON, YAML, flags or Python.

``isinstance`` is not enough for values read from a file: JSON's ``true`` is a Python
bool, which is also an int; ``Infinity`` and ``NaN`` parse as floats; a list may hold
anything. :func:`check_fields` checks every field of a dataclass against its annotation
(a bool is not an int, floats are finite, list elements have the element type),
normalizes what is unambiguous (an int where a float is declared, a list where a tuple
is) and raises :class:`~recsys_base.errors.ConfigError` naming the field's path. Every
config's ``validate()`` calls it first, so range checks after it see the declared types.

>>> import dataclasses
>>> @dataclasses.dataclass
... class Layers:
...     units: tuple[int, ...] = (64,)
...     rate: float = 0.5
...     cap: int | None = None
>>> check_fields(Layers(units=[32, 16], rate=1))
Layers(units=(32, 16), rate=1.0, cap=None)
>>> check_fields(Layers(units=[32, True]), "ranking")
Traceback (most recent call last):
...
recsys_base.errors.ConfigError: ranking.units[1] must be an integer, got True
>>> check_fields(Layers(rate=float("inf")))
Traceback (most recent call last):
...
recsys_base.errors.ConfigError: rate must be a finite number, got inf
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing

from recsys_base.errors import ConfigError


def check_fields(config, where: str = ""):
    """Checks and normalizes ``config``'s fields in place; returns ``config``.

    ``where`` prefixes the field names in errors (``"retrieval"`` gives ``retrieval.deep_units[0]``).
    """
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        path = f"{where}.{field.name}" if where else field.name
        setattr(config, field.name, _checked(getattr(config, field.name), hints[field.name], path))
    return config


def _checked(value, kind, path: str):
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]  # configs only use "X | None"
        return _checked(value, inner, path)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, got {value!r}")
        items = [_checked(item, args[0], f"{path}[{index}]") for index, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path} must be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        raise ConfigError(f"{path} must be an integer, got {value!r}")
    if kind is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # JSON integers have any size; past float's range is no finite number
                number = math.inf
            if math.isfinite(number):
                return number
        raise ConfigError(f"{path} must be a finite number, got {value!r:.60}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path} must be a string, got {value!r}")
    raise TypeError(f"{path}: check_fields does not handle the annotation {kind!r}")
