"""Import a heavy library on first use, so commands that never touch it start fast.

    if TYPE_CHECKING:
        from aiohttp import web
    else:
        web = lazy_module("aiohttp.web")

The name behaves like the module from its first attribute access on; type checkers see the real
import. Use it only for libraries a command may not need at all (HTTP server, HTTP clients).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_lazy_target"] = None

    def _load(self) -> ModuleType:
        target = self.__dict__["_lazy_target"]
        if target is None:
            target = importlib.import_module(self.__name__)
            self.__dict__["_lazy_target"] = target
        return target

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def __repr__(self) -> str:
        loaded = self.__dict__["_lazy_target"] is not None
        return f"<lazy module {self.__name__!r}{' (loaded)' if loaded else ''}>"


def lazy_module(name: str) -> Any:
    """A stand-in for module `name` that imports it on first attribute access."""
    return LazyModule(name)
