"""Strict decorator registries: ``@MODELS.register("name")`` and ``MODELS.create("name", **kw)``.

``create`` passes on every option it is given except ``None`` values (``None`` means "not set": the entry's
own default applies). An option the entry does not take is a :class:`~armor.errors.UserError` naming it,
the options that are allowed, and the closest one — never silently dropped.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Iterator, List, Mapping

from .errors import UserError, did_you_mean

#: constructor arguments that the caller supplies, not the user (never listed as options)
_SUPPLIED = ("self", "threat", "input_shape", "num_classes")


def options_of(factory: Callable[..., Any]) -> Dict[str, inspect.Parameter]:
    """The keyword options a factory takes, with their defaults (``threat`` etc. excluded)."""
    params = inspect.signature(factory).parameters
    return {n: p for n, p in params.items() if n not in _SUPPLIED
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def check_options(what: str, factory: Callable[..., Any], options: Mapping[str, Any]) -> None:
    """Raise ``UserError`` for the first option ``factory`` does not take."""
    allowed = options_of(factory)
    for key in options:
        if key not in allowed:
            listed = ", ".join(allowed) or "none"
            raise UserError(f"{what} has no option {key!r}{did_you_mean(key, allowed)}; its options are: {listed}")


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def add(obj: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise KeyError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = obj
            return obj

        return add

    def names(self) -> List[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            raise UserError(f"unknown {self.kind} {name!r}{did_you_mean(name, self._entries)}; "
                            f"choose one of: {', '.join(self.names())}")
        return self._entries[name]

    def options(self, name: str) -> Dict[str, inspect.Parameter]:
        """The options entry ``name`` takes (name → parameter with its default)."""
        return options_of(self.get(name))

    def takes(self, name: str, option: str) -> bool:
        return option in self.options(name)

    def check(self, name: str, options: Mapping[str, Any]) -> Dict[str, Any]:
        """The options without ``None`` values, after checking that ``name`` takes each of them."""
        given = {k: v for k, v in options.items() if v is not None}
        check_options(f"{self.kind} {name!r}", self.get(name), given)
        return given

    def create(self, name: str, *args: Any, **options: Any) -> Any:
        """Build ``name`` with ``options`` (``None`` = not set); an option it does not take is a ``UserError``."""
        return self.get(name)(*args, **self.check(name, options))
