"""Lazy package faces: a package re-exports names of its modules, each imported on first use.

``__getattr__, __dir__ = lazy_face(__name__, {"name": "module", ...})`` in a package's __init__
makes ``from package import name`` work without importing every module at package import (so the
CLI starts fast). A face never exports a name that is also a submodule of the package: importing
that submodule would replace the attribute.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_face(package: str, exports: dict[str, str]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package``, exporting ``exports`` (name -> module)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
