"""Let a module be called like the public function it is named after.

`servesim.bench`, `servesim.sweep`, ... are both a function of the public API and a module of the
package. Once `import servesim.bench` has run, the package attribute is the module, so the module
itself must be callable for `servesim.bench(...)` to keep working.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any


def make_callable(module_name: str, func: Callable[..., Any]) -> None:
    """Make ``sys.modules[module_name]`` callable: calling it calls ``func``."""

    class _CallableModule(types.ModuleType):
        __doc__ = f"Module {module_name}; calling it calls {func.__name__}."

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

    sys.modules[module_name].__class__ = _CallableModule
