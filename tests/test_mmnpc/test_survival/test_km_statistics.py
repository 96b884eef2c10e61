"""run_km on a hand-made table: 3-year rates, log-rank and hazard ratio worked out
independently (product-limit by hand, log-rank and Cox partial likelihood in numpy)
and checked against lifelines called directly."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from lifelines.statistics import logrank_test
from scipy import optimize, stats

from mmnpc.survival import run_km

from .conftest import HIGH, LOW


def _arrays(rows):
    return np.array([r[2] for r in rows], float), np.array([r[3] for r in rows], int)


def _logrank_by_hand(t1, e1, t2, e2) -> float:
    """Mantel-Haenszel log-rank chi-square: (O1 - E1)^2 / V over distinct event times."""
    times = np.concatenate([t1, t2])
    events = np.concatenate([e1, e2])
    group1 = np.r_[np.ones(len(t1)), np.zeros(len(t2))].astype(bool)
    o_minus_e, var = 0.0, 0.0
    for t in np.unique(times[events == 1]):
        at_risk = times >= t
        n, n1 = at_risk.sum(), (at_risk & group1).sum()
        d = ((times == t) & (events == 1)).sum()
        d1 = ((times == t) & (events == 1) & group1).sum()
        o_minus_e += d1 - d * n1 / n
        var += d * (n1 / n) * (1 - n1 / n) * (n - d) / max(n - 1, 1)
    return o_minus_e**2 / var


def _cox_by_hand(t, e, x) -> tuple[float, float]:
    """(beta, se) maximising the Cox partial likelihood of one covariate (no ties)."""
    def neg_loglik(beta):
        return -sum(beta * x[i] - np.log(np.exp(beta * x[t >= t[i]]).sum())
                    for i in np.flatnonzero(e))

    beta = optimize.minimize_scalar(neg_loglik, bounds=(-10, 10), method='bounded',
                                    options={'xatol': 1e-10}).x
    info = 0.0
    for i in np.flatnonzero(e):
        weights = np.exp(beta * x[t >= t[i]])
        p = (weights * x[t >= t[i]]).sum() / weights.sum()
        info += p * (1 - p)
    return beta, 1 / np.sqrt(info)


@pytest.fixture
def report(cohort, tmp_path):
    scores, clinical = cohort
    return run_km(scores, clinical, tmp_path / 'out')


def test_three_year_survival_by_hand(report):
    groups = report['endpoints']['dmfs']['groups']
    # high: events at 6 (8 at risk), 12 (7), 24 (5), 30 (4); 18 censored
    assert groups['high']['survival_at_horizon'] == pytest.approx(7 / 8 * 6 / 7 * 4 / 5 * 3 / 4)
    # low: events at 15 (9 at risk) and exactly at 36 (6 at risk) -- S(36) includes it
    assert groups['low']['survival_at_horizon'] == pytest.approx(8 / 9 * 5 / 6)
    assert (groups['high']['n'], groups['high']['events']) == (8, 5)
    assert (groups['low']['n'], groups['low']['events']) == (10, 3)


def test_three_year_ci_is_log_log_greenwood(report):
    # high group at 36 months: d/(n(n-d)) summed over its events before 36
    s = 0.45
    greenwood = 1 / (8 * 7) + 1 / (7 * 6) + 1 / (5 * 4) + 1 / (4 * 3)
    half = stats.norm.ppf(0.975) * np.sqrt(greenwood) / abs(np.log(s))
    expected = [np.exp(-np.exp(np.log(-np.log(s)) + half)),
                np.exp(-np.exp(np.log(-np.log(s)) - half))]
    ci = report['endpoints']['dmfs']['groups']['high']['survival_at_horizon_ci95']
    assert ci == pytest.approx(expected, rel=1e-6)


def test_logrank_by_hand_and_lifelines(report):
    (t1, e1), (t2, e2) = _arrays(HIGH), _arrays(LOW)
    chi2 = _logrank_by_hand(t1, e1, t2, e2)
    result = report['endpoints']['dmfs']['logrank']
    assert result['chi2'] == pytest.approx(chi2, rel=1e-9)
    assert result['p_value'] == pytest.approx(stats.chi2.sf(chi2, df=1), rel=1e-9)
    assert result['p_value'] == pytest.approx(logrank_test(t1, t2, e1, e2).p_value, rel=1e-12)
    assert 0.001 < result['p_value'] < 0.2  # a real difference, not a degenerate one


def test_hazard_ratio_is_high_vs_low_by_hand(report):
    (t1, e1), (t2, e2) = _arrays(HIGH), _arrays(LOW)
    t, e = np.r_[t1, t2], np.r_[e1, e2]
    x = np.r_[np.ones(len(t1)), np.zeros(len(t2))]
    beta, se = _cox_by_hand(t, e, x)
    hr = report['endpoints']['dmfs']['hazard_ratio']
    assert hr['value'] == pytest.approx(np.exp(beta), rel=1e-4)
    assert hr['value'] > 1  # high risk has the higher hazard
    z = stats.norm.ppf(0.975)
    assert hr['ci95'] == pytest.approx([np.exp(beta - z * se), np.exp(beta + z * se)], rel=1e-3)
    assert hr['p_value'] == pytest.approx(2 * stats.norm.sf(abs(beta / se)), rel=1e-3)


def test_median_by_hand(report):
    # high: S drops to 0.45 <= 0.5 at 30 months; low never reaches 0.5
    groups = report['endpoints']['dmfs']['groups']
    assert groups['high']['median_months'] == 30
    assert groups['low']['median_months'] is None
    assert any('low: median not reached' in n for n in report['endpoints']['dmfs']['notes'])


def test_outputs_written(real_plots, report, tmp_path):
    out = tmp_path / 'out'
    assert json.loads((out / 'survival.json').read_text()) == report
    for endpoint in ('dmfs', 'os'):
        for suffix in ('csv', 'png', 'pdf'):
            assert (out / f'km_{endpoint}.{suffix}').stat().st_size > 0
    assert (out / 'km_dmfs.png').read_bytes()[:4] == b'\x89PNG'
    assert (out / 'km_dmfs.pdf').read_bytes()[:4] == b'%PDF'
    curve = pd.read_csv(out / 'km_dmfs.csv')
    high = curve[curve['group'] == 'high'].set_index('time_months')
    assert high.loc[0, 'at_risk'] == 8
    assert high.loc[24, 'survival'] == pytest.approx(7 / 8 * 6 / 7 * 4 / 5)
    assert high.loc[18, 'censored'] == 1 and high.loc[18, 'events'] == 0
    assert (curve['ci_lower_95'] <= curve['survival'] + 1e-12).all()
    assert (curve['survival'] <= curve['ci_upper_95'] + 1e-12).all()
