"""volsuite portfolio: equal-risk-contribution weights against hand calculations, weights that use
nothing from their own session, the signal of a member from its fills, and the book identity
``portfolio[t] = sum_i w[t, i] R[t, i] - cost[t]`` on real member runs."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.portfolio import (
    PortfolioError,
    PortfolioSection,
    combine,
    erc_weights,
    load_portfolio_config,
    member_signals,
    target_weights,
)

REPO = Path(__file__).resolve().parents[2]


# -- equal risk contribution -------------------------------------------------------------------
def test_erc_constant_correlation_is_inverse_vol():
    """Maillard, Roncalli & Teiletche (2010), section 2.2: with one correlation for every pair,
    ERC weights are proportional to 1 / sigma_i. sigma = (10%, 20%, 40%), rho = 0.3 by hand:
    (1/0.1, 1/0.2, 1/0.4) / 17.5 = (4/7, 2/7, 1/7)."""
    sd = np.array([0.1, 0.2, 0.4])
    corr = np.full((3, 3), 0.3) + 0.7 * np.eye(3)
    w = erc_weights(np.outer(sd, sd) * corr)
    assert w == pytest.approx([4 / 7, 2 / 7, 1 / 7], abs=1e-10)


def test_erc_block_covariance_hand_calculation():
    """Unit variances, assets 1 and 2 correlated 0.5, asset 3 uncorrelated with both. By
    symmetry w1 = w2 = a, w3 = b; risk contributions a (a + 0.5 a) = b^2 give b = a sqrt(1.5),
    and 2a + b = 1 gives a = 1 / (2 + sqrt(1.5)) = 0.310102..., b = 0.379795...."""
    cov = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    w = erc_weights(cov)
    a = 1.0 / (2.0 + math.sqrt(1.5))
    assert w == pytest.approx([a, a, a * math.sqrt(1.5)], abs=1e-10)
    rc = w * (cov @ w)
    assert rc == pytest.approx(np.full(3, rc.sum() / 3), abs=1e-12)


def test_erc_rejects_bad_covariances():
    with pytest.raises(ValueError, match="not symmetric"):
        erc_weights(np.array([[1.0, 0.2], [0.3, 1.0]]))
    with pytest.raises(ValueError, match="positive diagonal"):
        erc_weights(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="not positive definite"):
        erc_weights(np.array([[1.0, 1.0], [1.0, 1.0]]))


def test_inverse_vol_targets_by_hand():
    """Member sds 0.01, 0.02 (ddof 1 of +-x series) and a flat member: weights 2/3, 1/3, 0."""
    n = 20
    alt = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    sd_of_alt = float(np.std(alt, ddof=1))
    hist = np.column_stack([0.01 * alt / sd_of_alt, 0.02 * alt / sd_of_alt, np.zeros(n)])
    section = PortfolioSection(name="t", weighting="inverse_vol", lookback=20, min_history=5)
    w, note = target_weights(hist, section)
    assert note == ""
    assert w == pytest.approx([2 / 3, 1 / 3, 0.0], abs=1e-12)
    w_warm, note = target_weights(hist[:3], section)
    assert note == "warmup" and w_warm == pytest.approx([1 / 3] * 3)


# -- no look-ahead -------------------------------------------------------------------------------
def _random_returns(t: int = 80, n: int = 3, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = rng.normal(0.0, [0.005, 0.01, 0.02], size=(t, n))
    data[:, 2] += 0.5 * data[:, 1]
    idx = pd.bdate_range("2020-01-02", periods=t)
    return pd.DataFrame(data, index=idx, columns=["a", "b", "c"])


@pytest.mark.parametrize(
    "scheme", ["equal", "inverse_vol", "risk_parity", "vol_target", "signal_vote"]
)
@pytest.mark.parametrize("rebalance_days", [1, 5])
def test_weights_on_day_t_use_nothing_from_day_t(scheme: str, rebalance_days: int):
    """Perturb every member's return (and signal) on day t and after: weights up to and
    including day t do not move; the identity holds exactly on every day."""
    r = _random_returns()
    rng = np.random.default_rng(11)
    signals = pd.DataFrame(rng.choice([-1, 0, 1], size=r.shape), index=r.index, columns=r.columns)
    section = PortfolioSection(
        name="t",
        weighting=scheme,
        lookback=30,
        min_history=10,
        rebalance_days=rebalance_days,
        rebalance_cost_bps=5.0,
        vol_target={"target_vol": 0.1, "window": 10},
    )
    base = combine(r, section, signals=signals)
    for t in (0, 9, 10, 37, 79):
        r2, s2 = r.copy(), signals.copy()
        r2.iloc[t:] += rng.normal(0, 0.05, size=r2.iloc[t:].shape)
        s2.iloc[t:] = -s2.iloc[t:]
        moved = combine(r2, section, signals=s2)
        cols = [*r.columns, "cost"]
        pd.testing.assert_frame_equal(
            moved.weights[cols].iloc[: t + 1], base.weights[cols].iloc[: t + 1], atol=0, rtol=0
        )
    w = base.weights[list(r.columns)].to_numpy()
    identity = (w * r.to_numpy()).sum(axis=1) - base.weights["cost"].to_numpy()
    assert np.abs(identity - base.returns["portfolio"].to_numpy()).max() <= 1e-15


def test_signal_vote_weights_the_supporting_members():
    """Signals at the close of day 0: a short, b short, c long -> score -1/3 (|score| >= 0.2):
    a trade short, a and b get 1/2 on day 1; day 1 signals a long, b short -> conflict
    (score 0): cash on day 2."""
    r = _random_returns(t=3)
    signals = pd.DataFrame([[-1, -1, 1], [1, -1, 0], [0, 0, 0]], index=r.index, columns=r.columns)
    book = combine(r, PortfolioSection(name="t", weighting="signal_vote"), signals=signals)
    w = book.weights[list(r.columns)].to_numpy()
    assert w[0] == pytest.approx([0, 0, 0])
    assert w[1] == pytest.approx([0.5, 0.5, 0.0])
    assert w[2] == pytest.approx([0, 0, 0])


def test_member_signal_from_fills():
    """Sessions Jan 2, 3, 6, 7, 8, 9 2020: a short straddle opened on the 3rd and closed on the
    6th; two calls bought on the 7th and settled on the 8th; delta-hedge shares do not count."""
    rows = [
        ("2020-01-03 15:45:00", "fill", "SPXW", "2020-02-21", 3000.0, "C", -1),
        ("2020-01-03 15:45:00", "fill", "SPXW", "2020-02-21", 3000.0, "P", -1),
        ("2020-01-03 15:45:00", "stock_fill", "SPX", None, None, None, 40),
        ("2020-01-06 15:45:00", "fill", "SPXW", "2020-02-21", 3000.0, "C", 1),
        ("2020-01-06 15:45:00", "fill", "SPXW", "2020-02-21", 3000.0, "P", 1),
        ("2020-01-07 15:45:00", "fill", "SPXW", "2020-01-08", 3100.0, "C", 2),
        ("2020-01-08 16:00:00", "settlement", "SPXW", "2020-01-08", 3100.0, "C", 2),
    ]
    trades = pd.DataFrame(
        rows, columns=["time", "event", "root", "expiration", "strike", "right", "quantity"]
    )
    trades["price"], trades["commission"], trades["fold"] = 1.0, 0.0, 0
    sessions = pd.bdate_range("2020-01-02", "2020-01-09")
    got = member_signals(trades, sessions)
    assert got.tolist() == [0, -1, 0, 1, 0, 0]


def test_config_errors_name_the_field(tmp_path: Path):
    p = tmp_path / "p.toml"
    p.write_text(
        '[portfolio]\nname = "x"\n[[members]]\nconfig = "nope.toml"\n'
        '[[members]]\nconfig = "nope2.toml"\n'
    )
    with pytest.raises(PortfolioError, match=r"members\[0\]\.config: no file 'nope.toml'"):
        load_portfolio_config(p)
    p.write_text(
        '[portfolio]\nname = "x"\nweighting = "magic"\n[[members]]\nconfig = "a"\n'
        '[[members]]\nconfig = "b"\n'
    )
    with pytest.raises(PortfolioError, match=r"portfolio\.weighting"):
        load_portfolio_config(p)


def test_shipped_example_validates():
    cfg = load_portfolio_config(REPO / "experiments/portfolios/example.toml")
    assert len(cfg.members) >= 3


# -- real runs -----------------------------------------------------------------------------------
MEMBERS = ("vrp_harvest_spx2019", "vol_of_vol_spx2019", "term_structure_slope_spx2019")


@pytest.mark.slow
@pytest.mark.shared_data
def test_identity_on_real_member_runs(
    shared_data: Path, chain_store_2019_path: Path, tmp_path: Path, monkeypatch
):
    """Three real 2019 SPX strategies run with 2 trials each (their own chain-store copy, results
    under tmp_path), combined by risk parity and by the signal vote: the identity holds to
    1e-12 on every session, weights and returns read back from the CSV files; the summary's
    Sharpe is mean / sd * sqrt(252) of returns.csv; missing sessions are counted."""
    from experiments.portfolio import run_portfolio

    db = tmp_path / "chains.duckdb"
    shutil.copyfile(chain_store_2019_path, db)
    members = []
    for name in MEMBERS:
        text = (REPO / f"experiments/configs/{name}.toml").read_text()
        text = text.replace("../shared/data/", f"{shared_data}/")
        text = text.replace('db = "results/chains.duckdb"', f'db = "{db}"')
        text = re.sub(r"ingest = \[[^\]]*\]", "ingest = []", text)
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(text + f'\n[tracking]\nresults_dir = "{tmp_path / "results"}"\n')
        members.append(cfg)
    monkeypatch.chdir(tmp_path)
    for scheme in ("risk_parity", "signal_vote"):
        port = tmp_path / f"{scheme}.toml"
        port.write_text(
            f'[portfolio]\nname = "{scheme}"\nweighting = "{scheme}"\nlookback = 21\n'
            f'min_history = 5\nrebalance_cost_bps = 2.0\nresults_dir = "{tmp_path / "out"}"\n'
            f'benchmark = "{shared_data}/index/spx_vix_spy_qqq_daily.csv"\n'
            + "".join(f'[[members]]\nconfig = "{m}"\n' for m in members)
        )
        out = run_portfolio(port, run=True, trials=2, track=False)
        returns = pd.read_csv(out.run_dir / "returns.csv", index_col=0)
        weights = pd.read_csv(out.run_dir / "weights.csv", index_col=0)
        assert list(returns.columns) == [*MEMBERS, "portfolio"]
        w = weights[list(MEMBERS)].to_numpy()
        lhs = (w * returns[list(MEMBERS)].to_numpy()).sum(axis=1) - weights["cost"].to_numpy()
        assert np.abs(lhs - returns["portfolio"].to_numpy()).max() <= 1e-12
        summary = json.loads((out.run_dir / "summary.json").read_text())
        p = returns["portfolio"].to_numpy()
        assert summary["metrics"]["sharpe"] == pytest.approx(
            p.mean() / p.std(ddof=1) * math.sqrt(252), rel=1e-9
        )
        for name in MEMBERS:
            own = pd.read_csv(Path(summary["members"][name]["run_dir"]) / "oos_returns.csv")
            assert summary["members"][name]["missing_days"] == len(returns) - len(own)
        for f in ("correlation.csv", "correlation.html", "tearsheet.html", "oos_returns.csv"):
            assert (out.run_dir / f).is_file()
        if scheme == "signal_vote":
            assert (out.run_dir / "signals.csv").is_file()
        if scheme == "risk_parity":
            _check_stress_on_real_books(out.run_dir, summary, tmp_path, shared_data)


def _check_stress_on_real_books(
    run_dir: Path, summary: dict, tmp_path: Path, shared_data: Path
) -> None:
    """Stress the real portfolio (small grid, 500 paths): the zero shock loses nothing on every
    close; every marked leg priced at its quote's implied vol reproduces the quote's mid
    (QuantLib's Black formula, independent of the project's kernels); positions.csv holds the
    net option contracts of trades.csv on the first fill day."""
    import QuantLib as ql

    from experiments.stress import stress_target

    spec = tmp_path / "scen.toml"
    spec.write_text(
        "spot = [-0.05, 0.0, 0.05]\nvol = [0.0, 0.1]\nmc_paths = 500\n"
        f'history = "{shared_data}/index/spx_vix_spy_qqq_daily.csv"\n'
    )
    out = stress_target(run_dir, scenarios=spec)
    t = out.table
    zero = t[(t["kind"] == "grid") & (t["spot_shift"] == 0) & (t["vol_shift"] == 0)]
    assert len(zero) > 0 and zero["pnl"].abs().max() < 1e-6
    assert set(t["kind"]) >= {"grid", "historical", "var", "es", "skew", "decay"}
    assert (run_dir / "stress.html").is_file()
    for name, member in summary["members"].items():
        pos = pd.read_csv(Path(member["run_dir"]) / "positions.csv")
        quoted = pos[pos["iv_source"] == "quote"]
        for row in quoted.itertuples():
            kind = ql.Option.Call if row.right == "C" else ql.Option.Put
            disc = math.exp(-row.rate * row.tte)
            model = ql.blackFormula(
                kind, row.strike, row.forward, row.implied_vol * math.sqrt(row.tte), disc
            )
            assert model == pytest.approx(row.mark, abs=1e-6), (name, row)
        trades = pd.read_csv(Path(member["run_dir"]) / "trades.csv")
        fills = trades[trades["event"] == "fill"]
        if len(fills):
            first = str(fills["time"].iloc[0])[:10]
            same = fills[fills["time"].str[:10] == first]
            held = pos[(pos["date"] == first) & pos["right"].isin(["C", "P"])]
            assert held["quantity"].sum() == pytest.approx(same["quantity"].sum()), name
