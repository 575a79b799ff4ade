"""Idea share per strategy file: how many code lines are the trading idea, how many plumbing.

Run on demand from the repository root::

    python benchmarks/strategy_idea_share.py [FILE ...]

Without arguments: every ``strategies/*.py`` module that defines a plugin (a class whose body
assigns both ``name`` and ``Params``). Prints one row per file: code lines, idea lines, share.

The rule (issue 12: "the idea is at least 60% of each strategy file")
----------------------------------------------------------------------
*Code lines* are the source lines covered by a statement (``ast``), without blank lines, comment
lines and docstrings (module, class and function docstrings). Each code line is classified by the
innermost function or class that holds it:

* **idea**: a ``StrategyParams`` subclass (the ``Params`` model: names, defaults, bounds,
  ``tunable``, validators); every other function or method (signal computation, entry, exit and
  sizing rules), module-level constants;
* **plumbing**:

  - the plugin methods ``prepare``, ``backtest``, ``benchmark``, ``trading_days``,
    ``data_fingerprint``, ``write_artifacts``, ``model_evaluation``, ``cerebro_spec`` (also
    ``data_needed``, ``recorded_quotes``) and the plugin class body (``name``, ``description``,
    ``required_data``, constants of the plugin);
  - imports, ``__all__``, ``if TYPE_CHECKING`` blocks, a backtrader strategy's ``params`` tuple;
  - bookkeeping: dataclasses (position records), ``__init__``/``start``/``stop``/``notify_*``,
    and functions whose name contains ``log``, ``record``, ``book``, ``finish``, ``report``,
    ``artifact``, ``fingerprint``, ``summary``, ``frame`` or ``info``;
  - logging statements inside idea functions: a statement that only writes the daily log or a
    counter (``row[...] = ...``, ``row.update(...)``, ``row.setdefault(...)``, ``*.append(row)``,
    ``*.log_rows.append(...)``, ``self.counts[...] += ...``, ``logger.*(...)``, ``warnings.warn``).

The rule is mechanical and errs both ways (a helper named ``_book_greeks`` computing a sizing
input counts as plumbing; a long signal helper of bookkeeping counts as idea); the number is a
yardstick for a file's trend, not a verdict on a line.
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PLUGIN_METHODS = frozenset(
    {
        "prepare",
        "backtest",
        "benchmark",
        "trading_days",
        "data_fingerprint",
        "write_artifacts",
        "model_evaluation",
        "cerebro_spec",
        "data_needed",
        "recorded_quotes",
    }
)
BOOKKEEPING_WORDS = (
    "log",
    "record",
    "book",
    "finish",
    "report",
    "artifact",
    "fingerprint",
    "summary",
    "frame",
    "info",
)
BOOKKEEPING_METHODS = frozenset({"__init__", "start", "stop"})
LOG_TARGETS = frozenset({"row", "log_rows", "counts", "log"})


@dataclass(frozen=True)
class Share:
    """Code lines of one file and how many of them are the idea (see the module docstring)."""

    path: Path
    code_lines: int
    idea_lines: int

    @property
    def share(self) -> float:
        """Idea lines / code lines (NaN for a file without code)."""
        return self.idea_lines / self.code_lines if self.code_lines else float("nan")


def _noncode_lines(source: str) -> set[int]:
    """Line numbers that hold only a comment or nothing (``tokenize``)."""
    code: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                        tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        code.update(range(tok.start[0], tok.end[0] + 1))
    return set(range(1, source.count("\n") + 2)) - code


def _docstring_lines(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                out.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    return out


def _span(node: ast.AST) -> range:
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return range(start, (node.end_lineno or node.lineno) + 1)


def _base_names(node: ast.ClassDef) -> list[str]:
    return [ast.unparse(b).split(".")[-1] for b in node.bases]


def _assigned(node: ast.ClassDef) -> set[str]:
    names: set[str] = set()
    for stmt in node.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else []
        if isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets = [stmt.target]
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def is_plugin(node: ast.ClassDef) -> bool:
    """A plugin class: its body assigns values to both ``name`` and ``Params`` (the abstract
    ``StrategyPlugin`` only annotates them)."""
    return {"name", "Params"} <= _assigned(node)


def _is_params(node: ast.ClassDef, params_classes: set[str]) -> bool:
    return any(b in params_classes or b == "StrategyParams" for b in _base_names(node))


def _is_dataclass(node: ast.ClassDef) -> bool:
    return any("dataclass" in ast.unparse(d) for d in node.decorator_list)


def _is_log_statement(stmt: ast.stmt) -> bool:
    """A statement that only writes the daily log or a counter (module docstring)."""

    def root_name(expr: ast.expr) -> str | None:
        while isinstance(expr, ast.Attribute | ast.Subscript):
            if isinstance(expr, ast.Attribute) and expr.attr in LOG_TARGETS:
                return expr.attr
            expr = expr.value
        return expr.id if isinstance(expr, ast.Name) else None

    if isinstance(stmt, ast.Assign | ast.AugAssign):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return all(
            isinstance(t, ast.Subscript | ast.Attribute) and root_name(t) in LOG_TARGETS
            for t in targets
        )
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        func = stmt.value.func
        text = ast.unparse(func)
        if text.startswith(("logger.", "logging.", "warnings.warn")):
            return True
        if isinstance(func, ast.Attribute):
            if func.attr in ("update", "setdefault") and root_name(func.value) in LOG_TARGETS:
                return True
            if func.attr == "append":
                args = stmt.value.args
                arg_is_row = bool(args) and isinstance(args[0], ast.Name) and args[0].id == "row"
                return arg_is_row or root_name(func.value) in LOG_TARGETS
    return False


def _walk_statements(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements of a function body, descending into compound statements (not into nested
    functions or classes, which are classified on their own)."""
    for stmt in body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        yield stmt
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(stmt, field, None)
            if inner:
                yield from _walk_statements(inner)


def idea_share(path: Path) -> Share:
    """Classify the code lines of one module (module docstring's rule).

    Parameters
    ----------
    path : pathlib.Path
        A Python module.

    Returns
    -------
    Share

    Raises
    ------
    SyntaxError
        The file does not parse.
    """
    source = path.read_text()
    tree = ast.parse(source, filename=str(path))
    drop = _noncode_lines(source) | _docstring_lines(tree)
    label: dict[int, str] = {}  # line -> "idea" | "plumbing"; inner scopes overwrite outer

    def mark(lines: Iterable[int], kind: str) -> None:
        for n in lines:
            label[n] = kind

    params_classes: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            mark(_span(stmt), "plumbing")
        elif isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test):
            mark(_span(stmt), "plumbing")
        elif isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in stmt.targets
        ):
            mark(_span(stmt), "plumbing")
        else:
            mark(_span(stmt), "idea")

    def visit_function(node: ast.FunctionDef | ast.AsyncFunctionDef, in_plugin: bool) -> None:
        name = node.name
        plumbing = (
            (in_plugin and name in PLUGIN_METHODS)
            or name in BOOKKEEPING_METHODS
            or name.startswith("notify_")
            or any(w in name.lower() for w in BOOKKEEPING_WORDS)
        )
        mark(_span(node), "plumbing" if plumbing else "idea")
        if not plumbing:
            for stmt in _walk_statements(node.body):
                if _is_log_statement(stmt):
                    mark(_span(stmt), "plumbing")
        visit_body(node.body, in_plugin)

    def visit_class(node: ast.ClassDef) -> None:
        if _is_params(node, params_classes):
            params_classes.add(node.name)
            mark(_span(node), "idea")
            return
        plugin = is_plugin(node)
        mark(_span(node), "plumbing" if plugin or _is_dataclass(node) else "idea")
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "params" for t in stmt.targets
            ):
                mark(_span(stmt), "plumbing")
        visit_body(node.body, plugin)

    def visit_body(body: Iterable[ast.stmt], in_plugin: bool) -> None:
        for stmt in body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                visit_function(stmt, in_plugin)
            elif isinstance(stmt, ast.ClassDef):
                visit_class(stmt)

    visit_body(tree.body, False)
    code = [n for n in label if n not in drop]
    return Share(path, len(code), sum(label[n] == "idea" for n in code))


def strategy_modules(folder: Path) -> list[Path]:
    """The modules of ``folder`` that define a plugin class (:func:`is_plugin`)."""
    out = []
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        if any(isinstance(n, ast.ClassDef) and is_plugin(n) for n in ast.walk(tree)):
            out.append(path)
    return out


def main(argv: list[str]) -> int:
    """Print the table; arguments are files (default: the plugin modules of ``strategies/``)."""
    root = Path(__file__).resolve().parents[1]
    paths = [Path(a) for a in argv] or strategy_modules(root / "strategies")
    rows = [idea_share(p) for p in paths]
    total = Share(Path("total"), sum(r.code_lines for r in rows), sum(r.idea_lines for r in rows))
    width = max(len(r.path.name) for r in rows)
    print(f"{'file':<{width}}  {'code lines':>10}  {'idea lines':>10}  {'share':>6}")
    for r in [*rows, total]:
        print(f"{r.path.name:<{width}}  {r.code_lines:>10}  {r.idea_lines:>10}  {r.share:>6.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
