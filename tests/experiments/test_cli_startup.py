"""A fast CLI (issue 16 item 3): what ``import experiments.cli`` loads, flags shown as flags.

Timing is not tested (``benchmarks/bench_cli_startup.py`` prints it); the guard is the set of
heavy modules in ``sys.modules`` after the imports a command needs, checked in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "vectorbt",
    "mlflow",
    "quantstats",
    "xgboost",
    "optuna",
    "backtrader",
    "numba",
    "streamlit",
    "pandas",
)


def _loaded_after(code: str) -> list[str]:
    """Heavy top-level modules in ``sys.modules`` after running ``code`` in a fresh interpreter
    rooted at this worktree."""
    probe = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import json, sys
        print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_cli_loads_no_heavy_library():
    assert _loaded_after("import experiments.cli") == []


def test_paper_stop_path_loads_no_heavy_library():
    # what `volsuite paper stop` imports: the kill switch and the session state readers
    code = """
        from brokers.live import KillSwitch
        from brokers.live.safety import scrub_secrets
        from experiments.paper_state import kill_report, running_sessions, wait_for_kill
    """
    assert _loaded_after(code) == []


def test_list_strategies_loads_no_plugin_and_matches_the_classes():
    code = """
        import strategies
        names = strategies.list_strategies()
        assert len(names) == len(strategies.BUILTIN), names
    """
    assert _loaded_after(code) == []
    import strategies

    described = strategies.list_strategies()
    for name, cls in strategies.STRATEGIES.items():
        assert cls.name == name  # the BUILTIN table's key is the class's registered name
        assert described[name] == cls.description


@pytest.mark.parametrize(
    "args",
    [["--help"], ["run", "--help"], ["surface", "fit", "--help"], ["paper", "--help"]],
)
def test_flags_display_as_flags(args):
    from experiments.cli import app

    result = CliRunner().invoke(app, args, env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    if args[0] == "run":
        assert "--mlflow" in result.output and "--no-mlflow" in result.output


def test_run_no_mlflow_flag_reaches_the_runner(monkeypatch, tmp_path):
    import experiments.runner
    from data_feeds.errors import VolsuiteError
    from experiments.cli import app

    seen = {}

    def fake_run(config, **kwargs):
        seen.update(kwargs)
        raise VolsuiteError("stop here")

    monkeypatch.setattr(experiments.runner, "run_experiment", fake_run)
    result = CliRunner().invoke(app, ["run", str(tmp_path / "x.toml"), "--no-mlflow"])
    assert result.exit_code == 2 and "stop here" in result.output
    assert seen["track"] is False


def _make_package(root: Path) -> None:
    pkg = root / "lazypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            from typing import TYPE_CHECKING

            from data_feeds.lazy_exports import lazy_package

            if TYPE_CHECKING:
                from lazypkg.alpha import alpha, Beta as Gamma
                from lazypkg.side import side_value

            __all__ = ["Gamma", "alpha", "side_value"]

            lazy_package(__name__)
            """
        )
    )
    (pkg / "alpha.py").write_text(
        "LOADED = True\n\ndef alpha():\n    return 1\n\nclass Beta:\n    pass\n"
    )
    (pkg / "side.py").write_text("side_value = 42\n")
    (pkg / "extra.py").write_text("value = 7\n")


def test_lazy_package_semantics(tmp_path, monkeypatch):
    _make_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("lazypkg")]:
        monkeypatch.delitem(sys.modules, name)
    import lazypkg

    assert "lazypkg.alpha" not in sys.modules  # nothing loaded by the package import
    from lazypkg import Gamma, alpha

    assert "lazypkg.alpha" in sys.modules
    assert alpha() == 1 and Gamma.__name__ == "Beta"  # `as` names resolve to the attribute
    # the function wins over its same-named submodule, as with an eager `from .alpha import alpha`
    import lazypkg.alpha

    assert callable(lazypkg.alpha) and lazypkg.alpha() == 1
    assert lazypkg.extra.value == 7  # a plain submodule is reachable as an attribute
    assert "side_value" in dir(lazypkg)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = lazypkg.nope


def test_lazy_package_rejects_an_all_name_it_cannot_load(tmp_path, monkeypatch):
    pkg = tmp_path / "badpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from data_feeds.lazy_exports import lazy_package\n"
        "__all__ = ['missing']\n"
        "lazy_package(__name__)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match=r"__all__ names \['missing'\]"):
        import badpkg  # noqa: F401
