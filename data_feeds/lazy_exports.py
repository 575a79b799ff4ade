"""Lazy public names of a package: ``from pkg import name`` imports ``name``'s module on first use.

A package ``__init__`` lists its public imports once, inside ``if TYPE_CHECKING:`` (type checkers
and readers see them as ordinary imports), and ends with ``lazy_package(__name__)``. The first
access to a name imports the submodule that defines it (PEP 562 module ``__getattr__``), so
importing the package -- or one light submodule of it, such as ``data_feeds.errors`` -- no longer
loads numba kernels, vectorbt or backtrader: ``volsuite --help`` answers in well under a second.

Only stdlib here: every package of the suite may import this module.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import types
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["lazy_package"]


def _type_checking_imports(source: str, package: str) -> dict[str, tuple[str, str]]:
    """``{public name: (module, attribute)}`` of the ``from X import a as b`` statements inside
    the top-level ``if TYPE_CHECKING:`` blocks of a package ``__init__`` source."""
    out: dict[str, tuple[str, str]] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")):
            continue
        for stmt in node.body:
            if not isinstance(stmt, ast.ImportFrom) or stmt.module is None:
                continue
            module = stmt.module
            if stmt.level:  # relative: from .x import y
                base = package.rsplit(".", stmt.level - 1)[0] if stmt.level > 1 else package
                module = f"{base}.{module}"
            for alias in stmt.names:
                out[alias.asname or alias.name] = (module, alias.name)
    return out


class _LazyPackage(types.ModuleType):
    """Module type of a lazy package: resolves its exported names on first access."""

    _lazy_exports: dict[str, tuple[str, str]]

    def __getattr__(self, name: str) -> object:
        computed = self.__dict__.get("_lazy_computed", {})
        if name in computed:
            value = computed[name]()
            self.__dict__[name] = value
            return value
        exports = self.__dict__.get("_lazy_exports", {})
        if name not in exports:
            # a submodule not imported yet (eager package imports used to load them all)
            if not name.startswith("__") and importlib.util.find_spec(f"{self.__name__}.{name}"):
                return importlib.import_module(f"{self.__name__}.{name}")
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        module, attr = exports[name]
        value = getattr(importlib.import_module(module), attr)
        self.__dict__[name] = value  # cached: the next access is a plain lookup
        return value

    def __setattr__(self, name: str, value: object) -> None:
        # importing submodule ``pkg.x`` sets attribute ``x`` on the package; when ``x`` is also an
        # exported name (``indicators.realized_vol`` the function), the export wins, as it did
        # with eager ``from pkg.x import x`` imports (the submodule stays in ``sys.modules``)
        if isinstance(value, types.ModuleType) and name in self.__dict__.get("_lazy_exports", {}):
            return
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.__dict__.get("_lazy_exports", {})))


def lazy_package(name: str, computed: Mapping[str, Callable[[], object]] | None = None) -> None:
    """Make the public names of package ``name`` load on first access.

    Parameters
    ----------
    name : str
        The package's ``__name__``; its ``__init__.py`` holds the public imports inside a
        top-level ``if TYPE_CHECKING:`` block.
    computed : mapping of str to callable, optional
        Names whose value is built by calling the function on first access (then cached), e.g. a
        registry of classes that would import every module.

    Raises
    ------
    ImportError
        A name of the package's ``__all__`` is neither defined in ``__init__`` nor imported in
        its ``TYPE_CHECKING`` block (so ``from pkg import *`` would fail later).
    """
    module = sys.modules[name]
    path = Path(module.__file__ or "")
    exports = _type_checking_imports(path.read_text(encoding="utf-8"), name)
    missing = [
        n
        for n in getattr(module, "__all__", ())
        if n not in exports and n not in module.__dict__ and n not in (computed or {})
    ]
    if missing:
        raise ImportError(f"{path}: __all__ names {missing} are not imported under TYPE_CHECKING")
    module.__dict__["_lazy_exports"] = exports
    module.__dict__["_lazy_computed"] = dict(computed or {})
    module.__class__ = _LazyPackage
