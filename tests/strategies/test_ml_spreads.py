"""``ml_spreads``: purged walk-forward (no label overlaps the test window), metrics against
scikit-learn, the design's rules by hand, strikes by Black-76 delta (scipy), real SPY 2021 quotes
against the raw vendor rows, P&L by hand, the risk layer, and no look-ahead."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from brokers import OptionsBroker
from data_feeds import align_to_index, chain_feed, load_ohlc
from data_feeds.chain_store import ChainStore
from data_feeds.chains import QUOTE_COLUMNS, ChainSnapshot
from indicators import market_features
from strategies.base import run_cerebro
from strategies.ml_models import (
    DIRECTION_CLASSES,
    ModelSettings,
    direction_labels,
    forward_return,
    model_features,
    ovr_auc,
    purged_walk_forward_splits,
    train_walk_forward,
)
from strategies.ml_spreads import (
    DELTA_TARGETS,
    MlSpreads,
    MlSpreadsParams,
    MlSpreadsStrategy,
    NoSpread,
    choose_structure,
    design_contracts,
    select_dte,
    select_spread,
)
from strategies.risk import RiskLimits

TZ = "America/New_York"
INDEX = "index/spx_vix_spy_qqq_daily.csv"
SPY_CHAINS = "options/spy_options_subset_2021.csv.gz"
SMALL_ML = ModelSettings(n_estimators=15, max_depth=3, learning_rate=0.1, seed=7)


# --------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spy(shared_data: Path) -> pd.DataFrame:
    return load_ohlc(str(shared_data / INDEX), root="SPY", start="2017-01-01", end="2021-12-31")


@pytest.fixture(scope="module")
def vix(shared_data: Path) -> pd.DataFrame:
    return load_ohlc(str(shared_data / INDEX), root="VIX", start="2017-01-01", end="2021-12-31")


@pytest.fixture(scope="module")
def spy_features(spy: pd.DataFrame, vix: pd.DataFrame) -> pd.DataFrame:
    v, _ = align_to_index(vix["close"], spy.index, max_fill=1, name="vix")
    return market_features(spy, v, garch_window=500, garch_refit_every=63)


@pytest.fixture(scope="module")
def spy_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("spy2021") / "chains.duckdb"
    with ChainStore(path) as store:
        store.ingest(shared_data / SPY_CHAINS, "vendor")
    store = ChainStore(path, read_only=True)
    yield store
    store.close()


@pytest.fixture(scope="module")
def raw_spy(shared_data: Path) -> pd.DataFrame:
    """The vendor file read with pandas (independent of the store)."""
    raw = pd.read_csv(shared_data / SPY_CHAINS)
    raw["right"] = raw["type"].map({"call": "C", "put": "P"})
    raw["quotedate"] = pd.to_datetime(raw["quotedate"]).dt.date
    raw["expiration"] = pd.to_datetime(raw["expiration"]).dt.date
    return raw


def raw_quote(raw: pd.DataFrame, day: dt.date, exp: dt.date, strike: float, right: str):
    rows = raw[
        (raw["quotedate"] == day)
        & (raw["expiration"] == exp)
        & (raw["strike"] == strike)
        & (raw["right"] == right)
    ]
    assert len(rows) == 1, (day, exp, strike, right)
    return float(rows["bid"].iloc[0]), float(rows["ask"].iloc[0])


# --------------------------------------------------------------------------------------
# purged walk-forward: the must-show leakage test
# --------------------------------------------------------------------------------------


def test_purge_removes_every_training_label_that_overlaps_the_test_window(
    spy: pd.DataFrame, spy_features: pd.DataFrame
) -> None:
    """Labels are the closes (and VIX ranks) shifted by the horizon. Moving every close and VIX
    rank inside a test window changes the label of every purged sample and of no training
    sample; without the purge (the raw 504 sessions before the test window) exactly ``horizon``
    training labels would come from the test window."""
    h = 5
    close, rank = spy["close"], spy_features["vix_rank"]
    splits = purged_walk_forward_splits(
        len(close), first_test=800, train_size=504, test_size=63, step=21, horizon=h
    )
    assert len(splits) == math.ceil((len(close) - 800) / 21)
    rng = np.random.default_rng(0)
    base_r, base_v = forward_return(close, h), rank.shift(-h)
    for sp in splits:
        s = sp.test[0]
        assert len(sp.train) == 504 and len(sp.purged) == h
        assert (sp.train + h < s).all()  # the shifted label of every training sample ends before s
        assert np.array_equal(sp.purged, np.arange(s - h, s))
        moved_close = close.copy()
        moved_close.iloc[sp.test] *= rng.uniform(0.9, 1.1, len(sp.test))
        moved_rank = rank.copy()
        moved_rank.iloc[sp.test] += rng.uniform(0.01, 0.1, len(sp.test))
        r2, v2 = forward_return(moved_close, h), moved_rank.shift(-h)
        np.testing.assert_array_equal(r2.iloc[sp.train], base_r.iloc[sp.train])
        np.testing.assert_array_equal(v2.iloc[sp.train], base_v.iloc[sp.train])
        assert (r2.iloc[sp.purged] != base_r.iloc[sp.purged]).all()
        assert (v2.iloc[sp.purged] != base_v.iloc[sp.purged]).all()
        raw_window = np.arange(s - 504, s)
        assert int((r2.iloc[raw_window] != base_r.iloc[raw_window]).sum()) == h
    with pytest.raises(ValueError, match="needs 509 sessions of history"):
        purged_walk_forward_splits(len(close), first_test=500, horizon=h)


@pytest.fixture(scope="module")
def walk_forward(spy: pd.DataFrame, spy_features: pd.DataFrame):
    table = model_features(spy_features, spy["close"])
    return train_walk_forward(
        table,
        spy["close"],
        spy_features["vix_rank"],
        first_test=pd.Timestamp("2021-01-04", tz=TZ),
        train_size=252,
        test_size=63,
        step=21,
        horizon=5,
        settings=SMALL_ML,
    )


def test_trained_folds_respect_the_purge_and_the_latest_model_predicts(
    walk_forward, spy: pd.DataFrame, spy_features: pd.DataFrame
) -> None:
    idx = spy.index
    fm = walk_forward.fold_metrics
    assert len(fm) == 12 and (fm["train_rows"] == 252).all()
    for _, row in fm.iterrows():
        train_end, test_start = idx.get_loc(row["train_end"]), idx.get_loc(row["test_start"])
        assert train_end + 5 == test_start - 1  # 5 purged sessions in between
        assert idx.get_loc(row["purged_start"]) == train_end + 1
    pred = walk_forward.predictions
    starts = pd.DatetimeIndex(fm["test_start"])
    for day, fold in pred["fold"].items():  # the most recent fold started on or before the day
        assert fold == int(np.searchsorted(starts, day, side="right") - 1)
    probs = pred[["p_bearish", "p_neutral", "p_bullish"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert (pred["direction"] == probs.argmax(axis=1)).all()
    np.testing.assert_allclose(pred["confidence"], (probs.max(axis=1) - 1 / 3) / (2 / 3))
    # deterministic for a seed
    again = train_walk_forward(
        model_features(spy_features, spy["close"]),
        spy["close"],
        spy_features["vix_rank"],
        first_test=pd.Timestamp("2021-01-04", tz=TZ),
        train_size=252,
        test_size=63,
        step=21,
        settings=SMALL_ML,
    )
    pd.testing.assert_frame_equal(again.predictions, pred)


def test_metrics_match_scikit_learn(walk_forward) -> None:
    from sklearn.metrics import accuracy_score, mean_absolute_error, roc_auc_score

    pred = walk_forward.predictions.dropna(
        subset=["p_bearish", "direction_label", "vix_rank_future"]
    )
    y = pred["direction_label"].astype(int).to_numpy()
    proba = pred[["p_bearish", "p_neutral", "p_bullish"]].to_numpy()
    m = walk_forward.metrics
    assert m["n_scored_days"] == len(pred)
    assert set(y) == {0, 1, 2}
    want_auc = roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=[0, 1, 2])
    assert m["direction_auc_ovr"] == pytest.approx(want_auc, abs=1e-12)
    assert ovr_auc(y, proba) == pytest.approx(want_auc, abs=1e-12)
    assert m["direction_accuracy"] == pytest.approx(accuracy_score(y, proba.argmax(axis=1)))
    k = math.ceil(0.2 * len(y))
    top = np.argsort(-proba.max(axis=1), kind="stable")[:k]
    assert m["direction_top_confidence_accuracy"] == pytest.approx(
        accuracy_score(y[top], proba[top].argmax(axis=1))
    )
    err = pred["vix_rank_forecast"] - pred["vix_rank_future"]
    assert m["vol_rmse"] == pytest.approx(math.sqrt((err**2).mean()))
    assert m["vol_mae"] == pytest.approx(
        mean_absolute_error(pred["vix_rank_future"], pred["vix_rank_forecast"])
    )
    imp = walk_forward.importance
    assert (imp >= 0).all().all() and imp["direction"].sum() > 0


def test_direction_labels_by_hand() -> None:
    close = pd.Series([100.0, 101.5, 100.4, 100.0, 98.0, 99.5])
    np.testing.assert_array_equal(
        direction_labels(close, horizon=1, threshold=0.01).to_numpy(),
        [2.0, 0.0, 1.0, 0.0, 2.0, np.nan],  # +1.5%, -1.08%, -0.40%, -2%, +1.53%, unknown
    )
    r = forward_return(close, 2)
    assert r.iloc[0] == pytest.approx(100.4 / 100 - 1) and r.iloc[-2:].isna().all()


# --------------------------------------------------------------------------------------
# rules (design doc 001, section 5)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regime", "direction", "confidence", "want"),
    [
        ("low_vol", "bullish", 0.5, "bull_call"),
        ("low_vol", "bearish", 0.5, "bear_put"),
        ("low_vol", "neutral", 0.9, None),
        ("high_vol", "bullish", 0.1, "bull_put"),
        ("high_vol", "bearish", 0.1, "bear_call"),
        ("high_vol", "neutral", 0.1, "iron_condor"),
        ("iv_contraction", "bullish", 0.1, "bull_put"),
        ("iv_contraction", "neutral", 0.1, "iron_condor"),
        ("iv_expansion", "bearish", 0.1, "bear_put"),
        ("iv_expansion", "neutral", 0.9, None),
        ("neutral", "bullish", 0.5, "bull_call"),
        ("neutral", "bullish", 0.2, None),  # low confidence in the neutral regime
        ("neutral", "neutral", 0.9, None),
    ],
)
def test_strategy_matrix(regime: str, direction: str, confidence: float, want: str | None) -> None:
    got, _ = choose_structure(regime, direction, confidence, neutral_regime_confidence=0.3)
    assert got == want


def test_select_dte_and_sizing_by_hand() -> None:
    assert select_dte("low_vol", 0.5) == 30
    assert select_dte("low_vol", 0.8) == 23  # 30 - 7
    assert select_dte("iv_expansion", 0.2) == 45  # 45 + 7 clamped
    assert select_dte("high_vol", 0.9) == 14  # 21 - 7
    assert select_dte("neutral", 0.1, min_dte=21) == 37
    # $100,000 x 2% x 0.5 (high_vol) x (0.5 + 0.5 x 0.6) = $800
    assert design_contracts(100_000, 300.0, "high_vol", 0.6) == (2, False)
    assert design_contracts(100_000, 1000.0, "high_vol", 0.6) == (1, True)  # floor of 1
    assert design_contracts(100_000, 50.0, "low_vol", 1.0) == (10, False)  # $2,000 / $50 -> cap
    with pytest.raises(ValueError, match="max_loss_per_contract"):
        design_contracts(100_000, 0.0, "low_vol", 1.0)


# --------------------------------------------------------------------------------------
# strikes by delta on a Black-76 chain (scipy reference)
# --------------------------------------------------------------------------------------

QDAY = dt.date(2021, 6, 1)
EXP = dt.date(2021, 7, 2)  # 31 calendar days


def b76(f: float, k: float, t: float, vol: float, right: str) -> tuple[float, float]:
    """Black-76 price (zero rate) and forward delta with scipy."""
    d1 = (math.log(f / k) + 0.5 * vol * vol * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    if right == "C":
        return f * norm.cdf(d1) - k * norm.cdf(d2), norm.cdf(d1)
    return k * norm.cdf(-d2) - f * norm.cdf(-d1), norm.cdf(d1) - 1.0


def tte() -> float:
    minutes = dt.datetime.combine(EXP, dt.time(16)) - dt.datetime.combine(QDAY, dt.time(15, 45))
    return minutes.total_seconds() / 60 / 525_600


def synthetic_snapshot(
    strikes: Sequence[float], rights: str = "CP", f: float = 400.0, vol: float = 0.2
) -> ChainSnapshot:
    rows = []
    for k in strikes:
        for right in rights:
            p, _ = b76(f, k, tte(), vol, right)
            rows.append(
                {
                    "root": "SPY",
                    "expiration": pd.Timestamp(EXP),
                    "strike": float(k),
                    "right": right,
                    "bid": round(p - 0.02, 6),
                    "ask": round(p + 0.02, 6),
                    "mid": p,
                    "last": np.nan,
                    "volume": np.nan,
                    "open_interest": np.nan,
                    "vendor_implied_vol": np.nan,
                    "vendor_delta": np.nan,
                    "vendor_gamma": np.nan,
                    "vendor_theta": np.nan,
                    "vendor_vega": np.nan,
                    "is_liquid": True,
                }
            )
    when = pd.Timestamp.combine(QDAY, dt.time(15, 45)).tz_localize(TZ)
    return ChainSnapshot("SPY", when, f, pd.DataFrame(rows)[list(QUOTE_COLUMNS)], source="test")


def nearest_by_scipy(strikes, f, target, right, otm_of=None):
    cand = [k for k in strikes if (k >= f if right == "C" else k <= f)]
    if otm_of is not None:
        cand = [k for k in cand if (k > otm_of if right == "C" else k < otm_of)]
    deltas = {k: b76(f, k, tte(), 0.2, right)[1] for k in cand}
    return min(cand, key=lambda k: abs(deltas[k] - target)), deltas


@pytest.mark.parametrize("structure", ["bull_call", "bear_put", "bull_put", "bear_call"])
def test_verticals_pick_the_strikes_nearest_the_target_deltas(structure: str) -> None:
    strikes = np.arange(360.0, 441.0, 1.0)
    snap = synthetic_snapshot(strikes)
    regime = "low_vol"
    near_t, far_t = DELTA_TARGETS[regime]
    right = "C" if structure in ("bull_call", "bear_call") else "P"
    sign = 1 if right == "C" else -1
    near, deltas = nearest_by_scipy(strikes, 400.0, sign * near_t, right)
    far, _ = nearest_by_scipy(strikes, 400.0, sign * far_t, right, otm_of=near)
    got = select_spread(snap, structure, regime, 30, root="SPY")
    assert got.expiration == EXP and got.dte == 31 and got.forward_source == "parity"
    assert got.forward == pytest.approx(400.0, abs=1e-9)
    legs = {c.strike: q for c, q in got.combo.legs}
    credit = structure in ("bull_put", "bear_call")
    assert legs == ({near: -1, far: 1} if credit else {near: 1, far: -1})
    assert got.legs[0].delta == pytest.approx(deltas[near], abs=1e-7)
    assert all(leg.listed for leg in got.legs)  # a $1 ladder lists every target within 0.05
    width = abs(near - far)
    quote = {k: b76(400.0, k, tte(), 0.2, right)[0] for k in (near, far)}
    if credit:  # sell near at its bid, buy far at its ask
        credit_in = (quote[near] - 0.02) - (quote[far] + 0.02)
        assert got.entry_estimate == pytest.approx(-credit_in, abs=1e-6)
        assert got.max_loss == pytest.approx(width - credit_in, abs=1e-6)
        assert got.max_profit == pytest.approx(credit_in, abs=1e-6)
    else:
        debit = (quote[near] + 0.02) - (quote[far] - 0.02)
        assert got.max_loss == pytest.approx(debit, abs=1e-6)
        assert got.max_profit == pytest.approx(width - debit, abs=1e-6)


def test_iron_condor_and_unlisted_targets_and_spot_forward() -> None:
    snap = synthetic_snapshot(np.arange(360.0, 441.0, 1.0))
    ic = select_spread(snap, "iron_condor", "high_vol", 21, root="SPY")
    (pl, a), (ps, b), (cs, c), (cl, d) = [(k.strike, q) for k, q in ic.combo.legs]
    assert (a, b, c, d) == (1, -1, -1, 1) and pl < ps < 400 < cs < cl
    assert ic.entry_estimate < 0 and ic.max_loss == pytest.approx(
        max(ps - pl, cl - cs) + ic.entry_estimate
    )
    # a $25 ladder: the 0.35 / 0.25 call targets are not listed within 0.05 -> traded, flagged
    ladder = [350.0, 375.0, 400.0, 425.0, 450.0]
    sparse = synthetic_snapshot(ladder)
    got = select_spread(sparse, "bull_call", "neutral", 30, root="SPY")
    assert not got.targets_listed
    near, deltas = nearest_by_scipy(ladder, 400.0, 0.35, "C")
    assert got.legs[0].strike == near and got.legs[0].miss == pytest.approx(
        abs(deltas[near] - 0.35), abs=1e-7
    )
    with pytest.raises(NoSpread) as exc:  # nothing within 0.01 delta
        select_spread(sparse, "bull_call", "neutral", 30, root="SPY", max_delta_miss=0.01,
                      delta_tolerance=0.01)  # fmt: skip
    assert exc.value.reason == "near_delta_not_listed"
    # calls only: no parity pair, the chain's underlying price is the forward
    calls = synthetic_snapshot(np.arange(380.0, 431.0, 1.0), rights="C")
    got = select_spread(calls, "bull_call", "low_vol", 30, root="SPY")
    assert got.forward_source == "underlying_price" and got.forward == 400.0
    near, deltas = nearest_by_scipy(np.arange(380.0, 431.0, 1.0), 400.0, 0.40, "C")
    assert got.legs[0].strike == near
    assert got.legs[0].delta == pytest.approx(deltas[near], abs=1e-6)
    with pytest.raises(NoSpread, match="no_expiry_in_range"):
        select_spread(calls, "bull_call", "low_vol", 30, root="SPY", min_dte=40, max_dte=45)


# --------------------------------------------------------------------------------------
# real SPY 2021 quotes
# --------------------------------------------------------------------------------------


def test_spread_on_real_quotes_matches_the_raw_vendor_rows(spy_store, raw_spy) -> None:
    day = dt.date(2021, 6, 1)
    snap = spy_store.snapshot("SPY", day)
    got = select_spread(snap, "bull_call", "neutral", 45, root="SPY")
    bid = ask = 0.0
    for c, q in got.combo.legs:
        b, a = raw_quote(raw_spy, day, c.expiration, c.strike, c.right)
        bid, ask = bid + (q * b if q > 0 else q * a), ask + (q * a if q > 0 else q * b)
    assert got.combo.ask == pytest.approx(ask, abs=1e-9)
    assert got.combo.bid == pytest.approx(bid, abs=1e-9)
    assert got.expiration == dt.date(2021, 7, 16)  # the only 14-45 DTE expiry with two calls


@pytest.fixture(scope="module")
def bull_put_run(spy_store):
    """MlSpreadsStrategy on real SPY quotes with a hand-made signal: bull put spreads."""
    days = [
        d for d in spy_store.quote_dates("SPY") if dt.date(2021, 3, 1) <= d <= dt.date(2021, 6, 30)
    ]
    signals = {
        d: {
            "regime": "iv_contraction",
            "direction": "bullish",
            "confidence": 0.5,
            "vix_rank": 0.5,
            "vix_rank_forecast": 0.5,
        }
        for d in days
    }
    return run_strategy(spy_store, days, signals)


def run_strategy(store, days, signals, limits=None, **rules):
    params = MlSpreadsParams(min_dte=21, exit_dte=20, **rules)
    feed = chain_feed(store, "SPY", roots=["SPY"], start=days[0], end=days[-1])
    spy = store_spy_close(store, days)
    broker = OptionsBroker(commission_per_contract=0.65, settlement_prices={"SPY": spy})
    strat, value, _ = run_cerebro(
        MlSpreadsStrategy,
        [feed],
        broker,
        cash=100_000.0,
        strategy_kwargs={
            "rules": params,
            "signals": signals,
            "last_day": days[-1],
            "limits": limits,
        },
    )
    return strat, value, broker


def store_spy_close(store, days) -> pd.DataFrame:
    """Settlement prices: the chain's own SPY price per quote date (matches the SPY close)."""
    px = {d: store.snapshot("SPY", d).underlying_price for d in days}
    index = pd.DatetimeIndex([pd.Timestamp(d) for d in px]).tz_localize(TZ)
    return pd.DataFrame({"open": list(px.values()), "close": list(px.values())}, index=index)


def test_fills_and_position_pnl_by_hand_from_the_raw_file(bull_put_run, raw_spy) -> None:
    strat, value, broker = bull_put_run
    log = pd.DataFrame(strat.log_rows)
    traded = log[log["status"].isin(["traded", "open_at_end"])]
    assert len(traded) >= 3 and set(traded["structure"]) == {"bull_put"}
    fills = broker.fills_frame()
    opt = fills[fills["event"] == "fill"]
    for _, f in opt.iterrows():  # every fill at the raw touch: buy at the ask, sell at the bid
        b, a = raw_quote(raw_spy, f["time"].date(), f["expiration"], f["strike"], f["right"])
        assert f["price"] == pytest.approx(a if f["quantity"] > 0 else b, abs=1e-9)
        want_cash = -f["quantity"] * f["price"] * 100 - 0.65 * abs(f["quantity"])
        assert f["cash_flow"] == pytest.approx(want_cash, abs=1e-9)
    for _, row in traded[traded["status"] == "traded"].iterrows():
        tag = f"bull_put {row['date']:%Y-%m-%d}"
        mine = opt[opt["tag"].isin([tag, f"close {tag}"])]
        legs = {(c.strip()[-1], float(c.strip()[1:-1])) for c in row["legs"].split()}
        settled = fills[
            (fills["event"] == "settlement")
            & (fills["expiration"] == row["expiration"])
            & fills.apply(lambda r, legs=legs: (r["right"], r["strike"]) in legs, axis=1)
        ]
        by_hand = (-mine["quantity"] * mine["price"] * 100 - 0.65 * mine["quantity"].abs()).sum()
        by_hand += settled["cash_flow"].sum()
        if row.get("shares_closed", 0) == 0 or pd.isna(row.get("shares_closed")):
            assert row["net_pnl"] == pytest.approx(by_hand, abs=1e-6)
        # the sold put is nearer the money than the bought one (a credit spread)
        sold = mine[(mine["tag"] == tag) & (mine["quantity"] < 0)]["strike"].iloc[0]
        bought = mine[(mine["tag"] == tag) & (mine["quantity"] > 0)]["strike"].iloc[0]
        assert sold > bought
    # the account: start cash + every cash flow + open legs at their last marks
    cash = 100_000.0 + fills["cash_flow"].sum()
    marks = sum(p.quantity * p.mark * 100 for p in broker.option_positions.values())
    shares = sum(p.quantity * p.mark for p in broker.underlying_positions.values())
    assert value.iloc[-1] == pytest.approx(cash + marks + shares, abs=1e-6)
    assert strat.counts["exit_deferred"] > 0  # the sparse ladder: legs often unquoted


def test_truncating_the_future_leaves_past_decisions_unchanged(spy_store, bull_put_run) -> None:
    strat_full, _, _ = bull_put_run
    full = pd.DataFrame(strat_full.log_rows)
    days = [
        d for d in spy_store.quote_dates("SPY") if dt.date(2021, 3, 1) <= d <= dt.date(2021, 6, 30)
    ]
    cut = days[40]
    short_days = [d for d in days if d <= cut]
    signals = {d: dict(strat_full.signals[d]) for d in short_days}
    strat_short, _, _ = run_strategy(spy_store, short_days, signals)
    short = pd.DataFrame(strat_short.log_rows)
    cols = ["date", "status", "structure", "legs", "contracts", "entry_cost", "expiration"]
    before = full[full["date"] < cut].reset_index(drop=True)
    entry_cols = [c for c in cols if c in short.columns]
    # decisions before the cut are identical (exit outcomes may differ: the short run closes at
    # its window end)
    got = short[short["date"] < cut].reset_index(drop=True)[entry_cols]
    want = before[entry_cols].replace("traded", "open")
    got = got.replace({"traded": "open", "open_at_end": "open"})
    want = want.replace({"open_at_end": "open"})
    pd.testing.assert_frame_equal(got, want)


def test_kill_switch_of_the_risk_layer_stops_new_spreads(spy_store) -> None:
    days = [
        d for d in spy_store.quote_dates("SPY") if dt.date(2021, 3, 1) <= d <= dt.date(2021, 4, 30)
    ]
    signals = {
        d: {"regime": "low_vol", "direction": "bullish", "confidence": 1.0, "vix_rank": 0.5,
            "vix_rank_forecast": 0.5}
        for d in days
    }  # fmt: skip
    strat, _, broker = run_strategy(
        spy_store, days, signals, limits=RiskLimits(max_drawdown=0.001)
    )
    events = strat.risk.events_frame()
    assert strat.risk.killed and (events["kind"] == "kill").sum() == 1
    kill_day = strat.risk.kill_time.date()
    log = pd.DataFrame(strat.log_rows)
    after = log[log["date"] > kill_day]
    assert not after["status"].isin(["open"]).any()
    assert (after["status"] == "risk_blocked").any()
    opened_after = [
        f for f in broker.option_fills if f.time.date() > kill_day and "close" not in f.tag
    ]
    assert opened_after == []


# --------------------------------------------------------------------------------------
# the plugin: signals from the previous session, no look-ahead through features and models
# --------------------------------------------------------------------------------------


class FirstDates:
    """A snapshot source limited to quote dates up to ``last`` (keeps the chain audit short)."""

    def __init__(self, store, last: dt.date) -> None:
        self.store, self.last = store, last

    def quote_dates(self, underlying, roots=None):
        return [d for d in self.store.quote_dates(underlying, roots) if d <= self.last]

    def snapshot(self, *args, **kwargs):
        return self.store.snapshot(*args, **kwargs)


PLUGIN_FIXED = {
    "ml_train_days": 252,
    "ml_test_days": 21,
    "ml_step_days": 21,
    "n_estimators": 10,
    "max_depth": 2,
    "garch_window": 500,
    "garch_refit_every": 63,
    "min_dte": 21,
    "exit_dte": 20,
}


def test_plugin_signals_come_from_the_previous_session_and_ignore_the_future(
    spy: pd.DataFrame, vix: pd.DataFrame, spy_store
) -> None:
    source = FirstDates(spy_store, dt.date(2021, 2, 26))
    full = MlSpreads(fixed=PLUGIN_FIXED)
    full.prepare({"underlying": spy, "vix": vix, "chains": source}, {})
    sig = full.signals()
    day = pd.Timestamp("2021-02-01", tz=TZ)
    prev = spy.index[spy.index.get_loc(day) - 1]
    assert sig.loc[day, "signal_date"] == prev.date()
    assert sig.loc[day, "vix_rank"] == full.features.at[prev, "vix_rank"]
    assert sig.loc[day, "p_bullish"] == full.models.predictions.at[prev, "p_bullish"]
    assert full.trading_days()[0] == pd.Timestamp("2021-01-04", tz=TZ)
    # data truncated after T: every signal up to T is identical (features, GARCH, models)
    cut = pd.Timestamp("2021-02-12", tz=TZ)
    short = MlSpreads(fixed=PLUGIN_FIXED)
    short.prepare({"underlying": spy.loc[:cut], "vix": vix.loc[:cut], "chains": source}, {})
    pd.testing.assert_frame_equal(short.signals(), sig.loc[:cut], check_exact=True)
    assert "delta targets" in " ".join(full.reports)
    with pytest.raises(ValueError, match="fixed at load time"):
        MlSpreads(fixed=PLUGIN_FIXED).prepare({}, {"ml_train_days": [100, 200]})


def test_params_reject_inconsistent_rules() -> None:
    with pytest.raises(ValueError, match="exit_dte"):
        MlSpreadsParams(min_dte=14, exit_dte=14)
    with pytest.raises(ValueError, match="ml_step_days"):
        MlSpreadsParams(ml_step_days=30, ml_test_days=21)
    assert DIRECTION_CLASSES == ("bearish", "neutral", "bullish")


# --------------------------------------------------------------------------------------
# end to end through the runner, logged to MLflow (slow)
# --------------------------------------------------------------------------------------

E2E = """
[experiment]
name = "ml_e2e"
[data]
start = "2017-01-01"
end = "2021-12-31"
[data.underlying]
source = "{data}/index/spx_vix_spy_qqq_daily.csv"
root = "SPY"
[data.vix]
source = "{data}/index/spx_vix_spy_qqq_daily.csv"
root = "VIX"
[data.chains]
db = "{tmp}/chains.duckdb"
ingest = ["{data}/options/spy_options_subset_2021.csv.gz"]
format = "vendor"
[strategy]
name = "ml_spreads"
[strategy.params]
ml_train_days = 252
n_estimators = 20
max_depth = 3
min_dte = 21
exit_dte = 20
[strategy.search_space]
take_profit = {{ low = 0.3, high = 0.8 }}
[walkforward]
train_days = 126
test_days = 63
[optimize]
trials = 2
seed = 3
[tracking]
results_dir = "{tmp}/results"
"""


@pytest.mark.slow
def test_walk_forward_run_logs_models_and_metrics_to_mlflow(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    import strategies
    from experiments.runner import run_experiment

    monkeypatch.setitem(strategies.STRATEGIES, MlSpreads.name, MlSpreads)
    config = tmp_path / "e2e.toml"
    config.write_text(E2E.format(data=shared_data, tmp=tmp_path))
    out = run_experiment(config)
    assert (out.run_dir / "tearsheet.html").is_file()
    for name in ("direction_model.json", "volatility_model.json", "fold_metrics.csv"):
        assert (out.run_dir / "ml" / name).is_file()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    run = mlflow.get_run(out.mlflow_run_id)
    assert 0.0 < run.data.metrics["oos_ml_direction_auc_ovr"] < 1.0
    assert "oos_delta_targets_not_listed" in run.data.metrics
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(out.mlflow_run_id, "ml")}
    assert "ml/direction_model.json" in arts
