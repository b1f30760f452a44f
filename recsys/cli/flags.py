"""Flags that set one field of a typed config: type, default and help come from the dataclass.

A flag declared this way cannot drift from the config it fills: its default is the field's
default, its type the default's type, ``--help`` shows that default, and the parsed value
is stored under the field's own name so the handler passes it on without renaming.

>>> import argparse, dataclasses
>>> @dataclasses.dataclass
... class Load:
...     workers: int = 4
>>> parser = argparse.ArgumentParser()
>>> field_flag(parser, Load, "workers", "client threads")
>>> Load(**field_values(parser.parse_args(["--workers", "8"]), Load))
Load(workers=8)
>>> "client threads (default: 4)" in " ".join(parser.format_help().split())
True
"""

from __future__ import annotations

import argparse
import dataclasses


def field_flag(parser, config_class, field: str, help_text: str, flag: str | None = None) -> None:
    """Adds ``flag`` (default ``--<field-name>``) for ``config_class.field``, stored as ``field``."""
    default = getattr(config_class, field)  # a dataclass keeps each plain default as a class attribute
    if isinstance(default, bool):
        raise TypeError(f"{config_class.__name__}.{field} is a bool: declare it with action='store_true'")
    parser.add_argument(flag or f"--{field.replace('_', '-')}", dest=field, type=type(default), default=default,
                        help=f"{help_text} (default: %(default)s)")


def _optional(convert, kind: str):
    """An argparse type: ``convert(text)``, or None for ``none``/``off`` (a cap switched off)."""

    def parse(text: str):
        if text.lower() in ("none", "off"):
            return None
        try:
            return convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind} or 'none', got {text!r}") from None

    return parse


optional_int = _optional(int, "an integer")
optional_float = _optional(float, "a number")


def field_values(args: argparse.Namespace, config_class) -> dict:
    """The parsed values of those of ``config_class``'s fields that have flags."""
    names = {field.name for field in dataclasses.fields(config_class)}
    return {name: value for name, value in vars(args).items() if name in names}
