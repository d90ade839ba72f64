"""One registry pattern for everything users can name: dataset readers, predictors,
perturbations.

Entries are added with an explicit decorator; third-party packages add entries
through an entry-point group, loaded the first time a name is not found.

>>> colors: Registry[int] = Registry("color")
>>> @colors.register("red")
... def _red() -> int:
...     return 1
>>> colors.get("red")()
1
>>> colors.get("rde")
Traceback (most recent call last):
...
brittle.errors.UnknownNameError: unknown color 'rde'; did you mean 'red'? (known: red)
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from brittle.errors import ConfigError, UnknownNameError

T = TypeVar("T")

__all__ = ["Registry", "load_reference"]


class Registry(Generic[T]):
    """Named entries of one kind (``what`` is used in messages, e.g. "dataset format")."""

    def __init__(self, what: str, entry_point_group: str | None = None) -> None:
        self.what = what
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._plugins_loaded = entry_point_group is None

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that adds ``obj`` under ``name``; a name can be registered once."""

        def decorate(obj: T) -> T:
            if name in self._entries:
                raise ConfigError(f"{self.what} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorate

    def _load_plugins(self) -> None:
        if self._plugins_loaded or self.entry_point_group is None:
            return
        self._plugins_loaded = True
        for ep in importlib.metadata.entry_points(group=self.entry_point_group):
            if ep.name not in self._entries:
                self._entries[ep.name] = ep.load()

    def get(self, name: str) -> T:
        """The entry called ``name``; unknown names get a "did you mean" error."""
        if name not in self._entries:
            self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            known = sorted(self._entries)
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.what} {name!r}{hint} (known: {', '.join(known)})"
            ) from None

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self._load_plugins()
        return iter(sorted(self._entries))

    def items(self) -> list[tuple[str, T]]:
        self._load_plugins()
        return sorted(self._entries.items())


def load_reference(ref: str) -> Any:
    """Import ``module:attr`` or ``path/to/file.py:attr`` and return the attribute.

    >>> load_reference("os.path:join")("a", "b")
    'a/b'
    >>> load_reference("nowhere.py:X")
    Traceback (most recent call last):
    ...
    brittle.errors.ConfigError: nowhere.py:X: file nowhere.py does not exist
    """
    module_part, sep, attr = ref.rpartition(":")
    if not sep or not module_part or not attr:
        raise ConfigError(f"{ref}: expected 'module:name' or 'path/to/file.py:name'")
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        path = Path(module_part)
        if not path.is_file():
            raise ConfigError(f"{ref}: file {module_part} does not exist")
        mod_name = f"_brittle_user_{abs(hash(path.resolve()))}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{ref}: cannot import {module_part}")
        module = importlib.util.module_from_spec(spec)
        # Registered before exec so dataclasses and pickling inside the file can find it.
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[mod_name]
            raise ConfigError(f"{ref}: importing {module_part} failed: {exc}") from exc
    else:
        try:
            module = importlib.import_module(module_part)
        except ImportError as exc:
            raise ConfigError(f"{ref}: cannot import module {module_part!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        names = [n for n in dir(module) if not n.startswith("_")]
        close = difflib.get_close_matches(attr, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{ref}: {module_part} has no attribute {attr!r}{hint}") from None
