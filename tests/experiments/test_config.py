"""Config validation: one clear line naming the file and the key for every kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.config import ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "x.toml"
    path.write_text(text)
    return path


BASE = """
[experiment]
name = "t"
[data.underlying]
source = "builtin:sp500"
[data.vix]
source = "builtin:vix"
[strategy]
name = "zero_dte_straddle"
[strategy.params]
contracts = 2
[strategy.search_space]
window = { low = 5, high = 30 }
rv_estimator = { choices = ["parkinson", "rogers_satchell"] }
"""


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.toml")))
def test_shipped_configs_are_valid(name: str) -> None:
    config = load_config(CONFIGS / name)
    assert config.strategy.name


def test_valid_config_parses(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    assert config.strategy.params == {"contracts": 2}
    assert config.strategy.search_space["window"].values()[0] == 5
    assert config.optimize.objective == "sharpe"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("[strategy]\nname", '[strategy]\nnmae = "x"\nname', "strategy.nmae: unknown key"),
        ("contracts = 2", "contrcts = 2", "strategy.params.contrcts: unknown key"),
        ("contracts = 2", 'contracts = "two"', "strategy.params.contracts: "),
        ("contracts = 2", "contracts = 0", "strategy.params.contracts: Input should be greater"),
        (
            "window = { low = 5, high = 30 }",
            "windw = { low = 5, high = 30 }",
            "strategy.search_space.windw: unknown key",
        ),
        (
            "window = { low = 5, high = 30 }",
            "window = { low = 1, high = 30 }",
            "strategy.search_space.window: Input should be greater than or equal to 2",
        ),
        ('"parkinson"', '"parkinsn"', "strategy.search_space.rv_estimator: Input should be"),
        ('name = "zero_dte_straddle"', 'name = "nope"', "strategy.name: unknown strategy 'nope'"),
        ('source = "builtin:sp500"', 'sorce = "builtin:sp500"', "data.underlying.sorce: unknown"),
        (
            '[experiment]\nname = "t"',
            '[experiment]\nname = "t"\n[optimize]\ntrials = 0',
            "optimize.trials: Input should be greater than or equal to 1",
        ),
    ],
)
def test_mistakes_fail_with_one_line_naming_the_key(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: ")
    assert expected in msg


def test_toml_syntax_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TOML syntax error"):
        load_config(write(tmp_path, "[experiment\nname = 1"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_param_both_fixed_and_searched_is_rejected(tmp_path: Path) -> None:
    text = BASE.replace("contracts = 2", "contracts = 2\nwindow = 10")
    with pytest.raises(ConfigError, match=r"strategy\.search_space\.window: also fixed"):
        load_config(write(tmp_path, text))


RENAMED_BASE = """
[experiment]
name = "t"
[data.underlying]
source = "builtin:sp500"
[strategy]
name = "{name}"
[strategy.{section}]
{line}
"""


@pytest.mark.parametrize(
    ("name", "section", "line", "expected"),
    [
        (
            "vrp_harvest",
            "params",
            "profit_target = 0.5",
            "strategy.params.profit_target: renamed to take_profit",
        ),
        (
            "vrp_harvest",
            "search_space",
            "profit_target = { low = 0.2, high = 0.8 }",
            "strategy.search_space.profit_target: renamed to take_profit",
        ),
        (
            "skew_dislocation",
            "search_space",
            "hold_days = { low = 1, high = 5 }",
            "strategy.search_space.hold_days: renamed to max_hold_days",
        ),
        (
            "zero_dte_straddle",
            "params",
            'estimator = "parkinson"',
            "strategy.params.estimator: renamed to rv_estimator",
        ),
        (
            "vol_of_vol",
            "params",
            'vvix_source = "vvix.csv"',
            "strategy.params.vvix_source: a data file, not a parameter: moved to data.vvix.source",
        ),
        (
            "vol_dislocation",
            "params",
            'option_quotes = "q.csv"',
            "strategy.params.option_quotes: a data file, not a parameter: moved to "
            "data.option_quotes.source",
        ),
        (
            "directional_overlay",
            "params",
            'index_minute = "m.csv"',
            "strategy.params.index_minute: a data file, not a parameter: moved to "
            "data.index_minute.source",
        ),
    ],
)
def test_renamed_or_moved_parameter_fails_with_one_line_naming_the_new_key(
    tmp_path: Path, name: str, section: str, line: str, expected: str
) -> None:
    path = write(tmp_path, RENAMED_BASE.format(name=name, section=section, line=line))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {expected}"
