"""Module attributes that load on first use (PEP 562), so that importing a package stays cheap."""

from __future__ import annotations

import importlib
from typing import Callable


def lazy_exports(package: str, exports: dict[str, str], namespace: dict) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps an attribute to the module that
    defines it (relative to ``package``); an attribute that maps to ``""`` is the submodule of that
    name itself. ``namespace`` is the package's ``globals()``."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if not exports[name]:
            return importlib.import_module(f"{package}.{name}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
