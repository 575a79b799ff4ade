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
estimator = { choices = ["parkinson", "rogers_satchell"] }
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
        ('"parkinson"', '"parkinsn"', "strategy.search_space.estimator: Input should be"),
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
