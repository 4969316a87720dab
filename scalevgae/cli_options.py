"""Command-line options generated from dataclass fields, and an argparse parser whose errors are one line.

A field ``name`` becomes ``--name-with-dashes`` (dest ``name``) with the field's type and default;
``metadata`` gives ``"help"`` (required), and optionally ``"choices"``, ``"off"`` (a CLI value that
means None, e.g. ``--patience 0``), ``"cli_default"`` (the CLI's default when it differs from
the API's) and ``"aliases"`` (more option strings for a non-boolean field, e.g. ``--max-epochs``).
Booleans that default to True become ``--no-<name>`` switches, those that default to False
``--<name>`` switches; tuples of ints are comma-separated (``--fanouts 10,5``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from typing import Any, Callable, Iterable, Optional, Sequence, TypeVar

T = TypeVar("T")


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (exit status 2) that points at --help."""

    def error(self, message: str) -> typing.NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


class HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to every option that has a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        h = action.help or ""
        d = action.default
        if "default" in h or d is None or d is argparse.SUPPRESS or isinstance(d, bool) or not action.option_strings:
            return h
        return h + " (default: %(default)s)"


def _int_tuple(flag: str) -> Callable[[str], tuple]:
    def parse(s: str) -> tuple:
        try:
            return tuple(int(v) for v in s.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be comma-separated integers, got {s!r}") from None
    return parse


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type, *, only: Optional[Iterable[str]] = None,
                          exclude: Iterable[str] = ()) -> None:
    """One ``--<field-name>`` option per field of the dataclass ``cls`` (see the module docstring)."""
    hints = typing.get_type_hints(cls)
    only = None if only is None else set(only)
    for f in dataclasses.fields(cls):
        if (only is not None and f.name not in only) or f.name in exclude:
            continue
        meta = f.metadata
        if "help" not in meta:
            raise TypeError(f"{cls.__name__}.{f.name} needs metadata={{'help': ...}} for its command-line option")
        flag = "--" + f.name.replace("_", "-")
        default = meta.get("cli_default", f.default)
        help_ = meta["help"].replace("%", "%%")
        base = hints[f.name]
        if typing.get_origin(base) is typing.Union:  # Optional[X]
            base = next(t for t in typing.get_args(base) if t is not type(None))
        if base is bool:
            if default:
                parser.add_argument("--no-" + flag[2:], dest=f.name, action="store_false",
                                    help=help_ + " (default: on; this switch turns it off)")
            else:
                parser.add_argument(flag, dest=f.name, action="store_true", help=help_)
            continue
        kw: dict[str, Any] = {"type": base, "default": default, "metavar": base.__name__.upper()}
        if base is tuple:
            kw = {"type": _int_tuple(flag), "default": ",".join(str(v) for v in default), "metavar": "A,B"}
        if "choices" in meta:
            kw["choices"] = tuple(meta["choices"])
            kw.pop("metavar")
        parser.add_argument(flag, *meta.get("aliases", ()), dest=f.name, help=help_, **kw)


def dataclass_from_args(cls: type[T], a: argparse.Namespace, base: Optional[T] = None) -> T:
    """``cls`` from the options :func:`add_dataclass_options` added (``"off"`` values -> None); fields
    absent from ``a`` keep ``base``'s value (or the default)."""
    kw = {}
    for f in dataclasses.fields(cls):
        if hasattr(a, f.name):
            v = getattr(a, f.name)
            kw[f.name] = None if "off" in f.metadata and v == f.metadata["off"] else v
        elif base is not None:
            kw[f.name] = getattr(base, f.name)
    return cls(**kw)


def given_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The dests the user set explicitly in ``argv`` (a second parse with every default suppressed)."""
    actions = [act for p in _all_parsers(parser) for act in p._actions]
    saved = [(act, act.default) for act in actions]
    try:
        for act in actions:
            act.default = argparse.SUPPRESS
        ns = parser.parse_args(argv)
    finally:
        for act, d in saved:
            act.default = d
    return set(vars(ns))


def _all_parsers(p: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    out = [p]
    for act in p._actions:
        if isinstance(act, argparse._SubParsersAction):
            for sp in act.choices.values():
                out += _all_parsers(sp)
    return out
