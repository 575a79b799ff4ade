"""Bad experiment configs (issue 17, point 13; issue 12, point 3): each one fails at load time with
one line naming the file and the key, through :func:`experiments.config.load_config` and through
``volsuite run`` (non-zero exit, one line, no traceback, nothing written).

Each case is ``(id, edit, expected fragment)``: ``edit`` turns the valid :data:`BASE` text into
the bad config (a string replacement, or raw bytes for the encoding case).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from experiments.cli import app
from experiments.config import ConfigError, load_config

BASE = """\
[experiment]
name = "corpus"
description = "a valid config the cases break"
initial_cash = 100000.0

[data.underlying]
source = "builtin:sp500"
[data.vix]
source = "builtin:vix"

[strategy]
name = "zero_dte_straddle"
[strategy.params]
contracts = 1
[strategy.search_space]
window = { low = 5, high = 30 }
short_threshold = { low = 0.0, high = 1.0 }
rv_estimator = { choices = ["parkinson", "rogers_satchell"] }

[optimize]
trials = 2
seed = 42

[broker]
kind = "backtest"

[costs]
commission_per_contract = 1.0
slippage_spread_fraction = 0.5

[tracking]
results_dir = "RESULTS"
"""


def _sub(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


CASES: list[tuple[str, Callable[[str], str | bytes], str]] = [
    (
        "name_dotdot",
        _sub('name = "corpus"', 'name = ".."'),
        "experiment.name: '..' would put the run folder outside results_dir/<name>",
    ),
    (
        "name_dot",
        _sub('name = "corpus"', 'name = "."'),
        "experiment.name: '.' would put the run folder outside results_dir/<name>",
    ),
    (
        "name_slash",
        _sub('name = "corpus"', 'name = "a/b"'),
        "experiment.name: String should match pattern",
    ),
    (
        "initial_cash_inf",
        _sub("initial_cash = 100000.0", "initial_cash = inf"),
        "experiment.initial_cash: Input should be a finite number",
    ),
    (
        "initial_cash_nan",
        _sub("initial_cash = 100000.0", "initial_cash = nan"),
        "experiment.initial_cash: Input should be a finite number",
    ),
    (
        "commission_inf",
        _sub("commission_per_contract = 1.0", "commission_per_contract = inf"),
        "costs.commission_per_contract: Input should be a finite number",
    ),
    (
        "broker_alias_commission_inf",
        _sub(
            'kind = "backtest"\n\n[costs]\ncommission_per_contract = 1.0\n',
            'kind = "backtest"\ncommission_per_contract = inf\n\n[costs]\n',
        ),
        "costs.commission_per_contract: Input should be a finite number",
    ),
    (
        "hedge_half_spread_inf",
        _sub("[costs]\n", "[costs]\nhedge_half_spread = inf\n"),
        "costs.hedge_half_spread: Input should be a finite number",
    ),
    (
        "share_impact_nan",
        _sub("[tracking]", "[costs.shares]\nimpact_coefficient = nan\n\n[tracking]"),
        "costs.shares.impact_coefficient: Input should be a finite number",
    ),
    (
        "slippage_by_root_negative",
        _sub("[costs]\n", "[costs]\nslippage_by_root = { SPXW = -0.1 }\n"),
        "costs.slippage_by_root.SPXW: Input should be greater than or equal to 0",
    ),
    (
        "strategy_param_inf",
        _sub("contracts = 1\n", "contracts = 1\nstrike_increment = inf\n"),
        "strategy.params.strike_increment: Input should be a finite number",
    ),
    (
        "seed_negative",
        _sub("seed = 42", "seed = -1"),
        "optimize.seed: Input should be greater than or equal to 0",
    ),
    (
        "trials_zero",
        _sub("trials = 2", "trials = 0"),
        "optimize.trials: Input should be greater than or equal to 1",
    ),
    (
        "latin1_bytes",
        lambda text: text.replace("a valid config", "caf\u00e9 config").encode("latin-1"),
        "not UTF-8 text (byte 0xe9 at byte offset <offset>)",
    ),
    (
        "results_dir_under_a_file",
        _sub('results_dir = "RESULTS"', 'results_dir = "FILE/results"'),
        "tracking.results_dir: '<file>/results' is under '<file>', which is a regular file "
        "(expected a folder)",
    ),
    (
        "results_dir_is_a_file",
        _sub('results_dir = "RESULTS"', 'results_dir = "FILE"'),
        "tracking.results_dir: '<file>' is a regular file (expected a folder)",
    ),
    (
        "int_low_above_high",
        _sub("window = { low = 5, high = 30 }", "window = { low = 30, high = 5 }"),
        "strategy.search_space.window: high (5) must be >= low (30)",
    ),
    (
        "float_low_above_high",
        _sub(
            "short_threshold = { low = 0.0, high = 1.0 }",
            "short_threshold = { low = 1.0, high = 0.5 }",
        ),
        "strategy.search_space.short_threshold: high (0.5) must be >= low (1.0)",
    ),
    (
        "empty_choices",
        _sub(
            'rv_estimator = { choices = ["parkinson", "rogers_satchell"] }',
            "rv_estimator = { choices = [] }",
        ),
        "strategy.search_space.rv_estimator.choices: empty list (expected at least one choice)",
    ),
    (
        "dimension_not_a_table",
        _sub("window = { low = 5, high = 30 }", "window = 5"),
        "strategy.search_space.window: expected {low, high} or {choices}",
    ),
    (
        "search_a_cost",
        _sub(
            "[strategy.search_space]\n",
            "[strategy.search_space]\nhedge_half_spread = { low = 0.0, high = 0.1 }\n",
        ),
        "strategy.search_space.hedge_half_spread: not tunable (costs and risk limits are fixed "
        "by the config)",
    ),
    (
        "search_a_limit",
        _sub(
            "[strategy.search_space]\n",
            "[strategy.search_space]\nmax_drawdown = { low = 0.1, high = 0.3 }\n",
        ),
        "strategy.search_space.max_drawdown: not tunable (costs and risk limits are fixed by the "
        "config)",
    ),
    (
        "search_a_load_time_param",
        _sub(
            "[strategy.search_space]\n", '[strategy.search_space]\nroot = { choices = ["SPXW"] }\n'
        ),
        "strategy.search_space.root: not tunable (fixed by zero_dte_straddle; set it in "
        "[strategy.params])",
    ),
    (
        "cost_as_a_parameter",
        _sub("contracts = 1\n", "contracts = 1\ncommission_per_contract = 0.5\n"),
        "strategy.params.commission_per_contract: a cost or risk limit, not a parameter: set "
        "costs.commission_per_contract",
    ),
    (
        "limit_not_enforced",
        _sub("[tracking]", "[risk]\nmax_drawdown = 0.2\n\n[tracking]"),
        "risk.max_drawdown: not enforced by strategy zero_dte_straddle (it enforces: none)",
    ),
    (
        "alias_and_costs_both",
        _sub('kind = "backtest"\n', 'kind = "backtest"\ncommission_per_contract = 0.65\n'),
        "broker.commission_per_contract: also set as costs.commission_per_contract (keep one)",
    ),
    (
        "toml_syntax",
        _sub("contracts = 1", "contracts = "),
        "TOML syntax error",
    ),
]


def _write_case(tmp_path: Path, edit: Callable[[str], str | bytes]) -> tuple[Path, dict[str, str]]:
    """The case's config under ``tmp_path`` (results and the regular file inside it too)."""
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("a regular file, not a folder\n")
    out = edit(BASE)
    if isinstance(out, str):
        out = out.encode("utf-8")
    out = out.replace(b"RESULTS", str(tmp_path / "results").encode())
    out = out.replace(b"FILE", str(blocker).encode())
    path = tmp_path / "bad.toml"
    path.write_bytes(out)
    fill = {"<file>": str(blocker)}
    if b"\xe9" in out:
        fill["<offset>"] = str(out.index(b"\xe9"))  # counted on the bytes, not by the loader
    return path, fill


def _expected(template: str, fill: dict[str, str]) -> str:
    for key, value in fill.items():
        template = template.replace(key, value)
    return template


def test_base_config_is_valid(tmp_path: Path) -> None:
    path, _ = _write_case(tmp_path, lambda text: text)
    config = load_config(path)
    assert config.experiment.name == "corpus"
    assert config.costs.commission_per_contract == 1.0


def test_corpus_has_enough_cases() -> None:
    assert len(CASES) >= 15
    assert len({case for case, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("case", "edit", "expected"), CASES, ids=[c[0] for c in CASES])
def test_load_config_one_line(
    tmp_path: Path, case: str, edit: Callable[[str], str | bytes], expected: str
) -> None:
    path, fill = _write_case(tmp_path, edit)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert _expected(expected, fill) in message
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(("case", "edit", "expected"), CASES, ids=[c[0] for c in CASES])
def test_cli_run_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    edit: Callable[[str], str | bytes],
    expected: str,
) -> None:
    path, fill = _write_case(tmp_path, edit)
    monkeypatch.chdir(tmp_path)  # nothing may land in the repository whatever happens
    result = CliRunner().invoke(app, ["run", str(path), "--no-mlflow"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert _expected(expected, fill) in lines[0]
    assert not (tmp_path / "results").exists()
