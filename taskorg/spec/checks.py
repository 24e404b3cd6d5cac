"""The plumbing every field check uses: how problems are raised, caught and reported.

A converter takes the raw value and a Reporter positioned at the field. A
problem with the field as a whole raises `Invalid` (reported by `checked` at
the field, or below it by `subpath`); problems with single items of a list
are reported on the spot so that every bad item is named. A converter whose
field had problems returns a placeholder: the spec is refused anyway, and a
default placeholder keeps later cross-field checks from piling on.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, TypeVar

from .errors import PathPart, describe
from .report import Reporter

T = TypeVar("T")


class Invalid(Exception):
    """A field's value is wrong; `subpath` points below the field when useful."""

    def __init__(self, message: str, *subpath: PathPart) -> None:
        super().__init__(message)
        self.message = message
        self.subpath = subpath


def checked(convert: Callable[[Any, Reporter], T], value: Any, rep: Reporter, default: T) -> T:
    """Run a converter; report its Invalid at the field and return `default` instead."""
    before = rep.count
    try:
        result = convert(value, rep)
    except Invalid as problem:
        rep.at(*problem.subpath).add(problem.message)
        return default
    return default if rep.count > before else result


def optional(data: Mapping[str, Any], key: str, rep: Reporter,
             convert: Callable[[Any, Reporter], T], default: T) -> T:
    """A field that may be missing or null (both mean: the default)."""
    value = data.get(key)
    return default if value is None else checked(convert, value, rep.at(key), default)


def required(data: Mapping[str, Any], key: str, rep: Reporter,
             convert: Callable[[Any, Reporter], T], default: T, example: str) -> T:
    """A field that must be present; `example` tells the user what to write."""
    value = data.get(key)
    if value is None:
        rep.at(key).add(f"is required ({example})")
        return default
    return checked(convert, value, rep.at(key), default)


def check_keys(data: Mapping[Any, Any], known: Iterable[str], rep: Reporter,
               hints: Mapping[str, str] | None = None) -> None:
    """Report every key that is not a known field, with a suggestion when one fits."""
    known = tuple(known)
    for key in data:
        if key in known:
            continue
        name = str(key)
        rep.at(name).add(unknown_field(name, known, hints or {}, rep))


def unknown_field(name: str, known: tuple[str, ...], hints: Mapping[str, str], rep: Reporter) -> str:
    if name in hints:
        return f"unknown field {describe(name)} ({hints[name]})"
    close = rep.budget.closest(name, known)
    if close:
        return f"unknown field {describe(name)} (did you mean {close!r}?)"
    if len(known) <= 4:
        return f"unknown field {describe(name)} (known fields: {', '.join(known)})"
    return f"unknown field {describe(name)}"


def want_mapping(value: Any) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"must be a mapping, got {describe(value)}")
    return value


def want_list(value: Any, what: str = "a list") -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(f"must be {what}, got {describe(value)}")
    return value


def want_str(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"must be a string, got {describe(value)}")
    return value


def want_int(value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"must be an integer, got {describe(value)}")
    if not low <= value <= high:
        raise Invalid(f"must be from {low} to {high}, got {value}")
    return value


def to_bool(value: Any, rep: Reporter) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"must be true or false, got {describe(value)}")
    return value


def scalar_text(value: Any) -> str:
    """A string, number or boolean as the text a container sees ("true", "0.5")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise Invalid(f"must be a string, number or boolean, got {describe(value)}")
