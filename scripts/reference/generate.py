#!/usr/bin/env python3
"""Regenerates tests/fixtures/stats/*.json: reference values for sloproof's statistics core,
computed by scipy, statsmodels, linearmodels and piecewise-regression on seeded simulated data,
plus published values shipped inside those packages (NIST Longley via statsmodels' test results,
Stata's housing IV results via linearmodels' test results).

    pip install -r scripts/reference/requirements.txt
    python3 scripts/reference/generate.py            # every fixture
    python3 scripts/reference/generate.py live       # only tests/fixtures/stats/live.json

The Rust tests read the committed fixtures; CI does not need Python.
"""
import json
import os
import sys

import numpy as np
import pandas as pd
import scipy
import statsmodels
import statsmodels.api as sm
import linearmodels
from linearmodels.iv import IV2SLS
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "stats")


def versions():
    import piecewise_regression
    return {"python": sys.version.split()[0], "numpy": np.__version__, "scipy": scipy.__version__,
            "statsmodels": statsmodels.__version__, "linearmodels": linearmodels.__version__,
            "pandas": pd.__version__, "piecewise_regression": getattr(piecewise_regression, "__version__", "?")}


def write(name, payload):
    payload = {"generated_by": "scripts/reference/generate.py", "versions": versions(), **payload}
    path = os.path.join(OUT, f"{name}.json")
    with open(path, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", os.path.relpath(path, ROOT))


def fl(a):
    return [float(v) for v in np.asarray(a).ravel()]


def two_sample_cases():
    rng = np.random.default_rng(20261128)
    cases = [("published", [1.0, 2.0, 3.0], [1.1, 2.9, 4.2])]
    cases.append(("normal_unequal", rng.normal(10, 2, 40), rng.normal(11, 5, 25)))
    cases.append(("lognormal_latency", rng.lognormal(5.5, 0.4, 300), rng.lognormal(5.6, 0.5, 280)))
    cases.append(("ties_integers", rng.integers(0, 6, 60).astype(float), rng.integers(1, 7, 45).astype(float)))
    return cases


def descriptive_and_tests():
    out = {"welch": [], "mann_whitney": [], "quantiles": []}
    for name, x, y in two_sample_cases():
        x, y = np.asarray(x, float), np.asarray(y, float)
        r = stats.ttest_ind(x, y, equal_var=False)
        ci = r.confidence_interval(0.95)
        ci90 = r.confidence_interval(0.90)
        out["welch"].append({"name": name, "x": fl(x), "y": fl(y), "t": float(r.statistic), "p": float(r.pvalue),
                             "df": float(r.df), "ci95": [float(ci.low), float(ci.high)],
                             "ci90": [float(ci90.low), float(ci90.high)],
                             "mean_x": float(np.mean(x)), "var_x": float(np.var(x, ddof=1)),
                             "sem_x": float(stats.sem(x))})
        m = stats.mannwhitneyu(x, y, method="asymptotic", alternative="two-sided")
        out["mann_whitney"].append({"name": name, "x": fl(x), "y": fl(y), "u": float(m.statistic), "p": float(m.pvalue)})
        qs = [0.0, 0.05, 0.5, 0.95, 0.99, 1.0]
        out["quantiles"].append({"name": name, "x": fl(x), "q": qs, "values": fl(np.percentile(x, [q * 100 for q in qs]))})
    return out


def proportions():
    cases = [(5, 83, 12, 99), (480, 10000, 520, 10000), (30, 1000, 12, 900)]
    out = []
    for k1, n1, k2, n2 in cases:
        z, p = proportions_ztest([k1, k2], [n1, n2])
        lo, hi = confint_proportions_2indep(k1, n1, k2, n2, method="wald", compare="diff", alpha=0.05)
        out.append({"k1": k1, "n1": n1, "k2": k2, "n2": n2, "z": float(z), "p": float(p), "ci95": [float(lo), float(hi)]})
    return out


def ratio_ci():
    """Ratio of two proportions p1/p2 by statsmodels' log interval with 0.5 added to each count
    and size ('log-adjusted'), at 95% and 90%, with zero counts in either arm."""
    cases = [(0, 3000, 900, 3000), (0, 3000, 10, 3000), (0, 3000, 3, 3000), (0, 120, 7, 95),
             (12, 400, 0, 380), (30, 1000, 12, 900)]
    out = []
    for k1, n1, k2, n2 in cases:
        ci = {}
        for conf in (0.95, 0.9):
            lo, hi = confint_proportions_2indep(k1, n1, k2, n2, method="log-adjusted", compare="ratio",
                                                alpha=1 - conf)
            ci[str(conf)] = [float(lo), float(hi)]
        out.append({"k1": k1, "n1": n1, "k2": k2, "n2": n2, "ci": ci})
    return {"cases": out}


def srm():
    out = []
    for obs, w in [([1000, 1200], [0.5, 0.5]), ([5010, 2490, 2500], [0.5, 0.25, 0.25]), ([333, 340, 327], [1, 1, 1])]:
        tot = sum(obs)
        exp = [tot * wi / sum(w) for wi in w]
        r = stats.chisquare(obs, exp)
        out.append({"observed": obs, "weights": w, "chi_square": float(r.statistic), "p": float(r.pvalue)})
    return out


def missingness():
    """chi2_contingency on the arm x (measured, missing) table, without Yates' correction."""
    out = []
    for measured, assigned in [([19600, 19200], [20000, 20000]), ([980, 1950, 1890], [1000, 2000, 2000]),
                               ([500, 480, 470, 455], [510, 500, 500, 500])]:
        table = [measured, [n - m for m, n in zip(measured, assigned)]]
        chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
        out.append({"measured": measured, "assigned": assigned, "chi_square": float(chi2), "p": float(p),
                     "df": int(dof)})
    return out


def homogeneity():
    """Cochran's Q via statsmodels' meta-analysis: estimates and their standard errors."""
    from statsmodels.stats.meta_analysis import combine_effects
    rng = np.random.default_rng(17)
    out = []
    for k in (2, 5, 10):
        est = rng.normal(-1e-4, 3e-5, k)
        se = rng.uniform(1e-5, 4e-5, k)
        r = combine_effects(est, se**2).test_homogeneity()
        out.append({"estimates": fl(est), "std_errors": fl(se), "q": float(r.statistic), "df": int(r.df),
                    "p": float(r.pvalue)})
    return out


def arm_intervals():
    """Per-arm intervals: Wilson for proportions (statsmodels), t for means (scipy)."""
    from statsmodels.stats.proportion import proportion_confint
    rng = np.random.default_rng(23)
    props = []
    for k, n in [(0, 50), (3, 40), (512, 10000), (9990, 10000), (7, 7)]:
        for conf in (0.95, 0.9):
            lo, hi = proportion_confint(k, n, alpha=1 - conf, method="wilson")
            props.append({"k": k, "n": n, "confidence": conf, "low": float(lo), "high": float(hi)})
    means = []
    for n in (2, 30, 5000):
        x = rng.lognormal(3, 0.8, n)
        lo, hi = stats.t.interval(0.95, n - 1, loc=x.mean(), scale=stats.sem(x))
        means.append({"x": fl(x), "low": float(lo), "high": float(hi)})
    return {"proportions": props, "means": means}


def log_p():
    """log10 of two-sided normal p-values, including where the p-value underflows (scipy logsf)."""
    zs = [0.5, 1.96, 5.0, 19.9, 20.0, 25.0, 38.5, 50.0, 200.0, 1e4]
    return [{"z": z, "log10_p": float((np.log(2) + stats.norm.logsf(z)) / np.log(10))} for z in zs]


def t_dist():
    """Student's t quantiles and upper tails (scipy), from small df to far beyond where the
    incomplete-beta inversion stays accurate (a 10M-unit Welch test has df ~ 6.7e6)."""
    dfs = [2.5, 30.0, 1e3, 1e4, 1.5e4, 3e4, 1e5, 1e6, 6.66e6, 1e7, 1e8, 1e9, 1e12]
    ps = [0.5, 0.6, 0.8, 0.975, 0.995, 0.9995, 0.025, 1e-7]
    ts = [0.0, 0.5, 1.96, 3.0, 5.0, 8.0, -2.5]
    # Far in the tails just above df 1e4, where the expansion's last terms matter most.
    far_dfs, far_ps, far_ts = [10001.0, 1.5e4], [1e-20, 2e-23], [9.0, 10.0]
    xs = [-8.0, -3.0, -1.0, 0.0, 0.5, 1.0, 1.96, 3.0, 5.0, 8.0, 20.0, 37.0]
    return {
        "normal": [{"x": x, "cdf": float(stats.norm.cdf(x)), "sf": float(stats.norm.sf(x))} for x in xs],
        "quantiles": [{"df": df, "p": p, "t": float(stats.t.ppf(p, df))} for df in dfs for p in ps]
        + [{"df": df, "p": p, "t": float(stats.t.ppf(p, df))} for df in far_dfs for p in far_ps],
        "tails": [{"df": df, "t": t, "sf": float(stats.t.sf(t, df))} for df in dfs for t in ts]
        + [{"df": df, "t": t, "sf": float(stats.t.sf(t, df))} for df in far_dfs for t in far_ts],
    }


def effective_f():
    """Montiel Olea & Pflueger's effective first-stage F from pyfixest (`IV_Diag`, hetero vcov =
    HC1). pyfixest forms Q_zz = Z'Z from the instrument columns as given; MOP partial the
    exogenous regressors (here the constant) out of Z, so the instruments are passed demeaned
    (pi and its robust covariance do not change; Z'Z becomes the partialled one)."""
    import pyfixest as pf
    out = []
    for seed, arms, n in [(4, 3, 600), (9, 4, 900), (2, 2, 400)]:
        rng = np.random.default_rng(seed)
        arm = rng.integers(0, arms, n)
        x = 100 + 30 * arm + rng.normal(0, 1, n) * (20 + 15 * arm)
        y = 2 - 0.01 * x + rng.normal(0, 1, n) * (1 + 0.5 * arm)
        df = pd.DataFrame({"y": y, "x": x})
        zs = []
        for a in range(1, arms):
            z = (arm == a).astype(float)
            df[f"z{a}"] = z - z.mean()
            zs.append(f"z{a}")
        fit = pf.feols(f"y ~ 1 | x ~ {' + '.join(zs)}", data=df, vcov="hetero")
        fit.IV_Diag()
        out.append({"arm": arm.tolist(), "x": fl(x), "y": fl(y), "arms": arms,
                    "effective_f": float(fit._eff_F)})
    return out


def anderson_rubin():
    """Anderson-Rubin confidence sets from ivmodels (`inverse_anderson_rubin_test`, F critical
    values, intercept fitted): strong (an interval), weak (two rays) and four-arm designs."""
    from ivmodels.tests import inverse_anderson_rubin_test
    out = []
    for seed, arms, n, shift in [(4, 3, 600, 30.0), (5, 2, 400, 0.5), (6, 4, 800, 8.0)]:
        rng = np.random.default_rng(seed)
        arm = rng.integers(0, arms, n)
        x = 100 + shift * arm + rng.normal(0, 20, n)
        y = 2 - 0.01 * x + rng.normal(0, 1, n)
        Z = np.column_stack([(arm == a).astype(float) for a in range(1, arms)])
        for confidence in (0.95, 0.9):
            cs = inverse_anderson_rubin_test(Z, x.reshape(-1, 1), y, alpha=1 - confidence, critical_values="f")
            bounds = [float(b) for b in np.asarray(cs._boundary()).ravel()] if not cs.is_empty() else []
            shape = "interval" if cs.is_bounded() else ("empty" if cs.is_empty() else "unbounded")
            out.append({"arm": arm.tolist(), "x": fl(x), "y": fl(y), "arms": arms, "confidence": confidence,
                        "shape": shape, "bounds": bounds})
    return out


def multiple():
    rng = np.random.default_rng(7)
    out = []
    for p in [[0.01, 0.04, 0.03, 0.005, 0.5], list(rng.uniform(0, 0.2, 12)), [0.2, 0.2, 0.01, 0.9]]:
        out.append({"p": fl(p), "holm": fl(multipletests(p, method="holm")[1]),
                    "bh": fl(multipletests(p, method="fdr_bh")[1])})
    return out


def power():
    out = []
    for d, n1, ratio, alpha in [(0.1, 1000, 1.0, 0.05), (0.05, 5000, 2.0, 0.05), (0.2, 300, 1.0, 0.01)]:
        pw = NormalIndPower().power(effect_size=d, nobs1=n1, alpha=alpha, ratio=ratio)
        es = NormalIndPower().solve_power(effect_size=None, nobs1=n1, alpha=alpha, power=0.8, ratio=ratio)
        out.append({"effect_size": d, "n1": n1, "n2": n1 * ratio, "alpha": alpha, "power": float(pw),
                    "mde_effect_size_at_80": float(es)})
    return out


def lift_and_cuped():
    """Relative lift by statsmodels' numerical delta method (NonlinearDeltaCov), Fieller's
    interval by inverting its test with scipy's root finder (brentq), CUPED's theta by
    statsmodels OLS and the adjusted arm moments by pandas: other computations than the closed
    forms in src/stats, on the same data."""
    from scipy.optimize import brentq
    from statsmodels.stats._delta_method import NonlinearDeltaCov
    rng = np.random.default_rng(99)
    n = 4000
    pre = rng.lognormal(3, 0.5, 2 * n)
    arm = np.repeat([0, 1], n)
    post = 5 + 0.8 * pre + rng.normal(0, 4, 2 * n) + 1.0 * arm
    c, t = post[arm == 0], post[arm == 1]
    z = stats.norm.ppf(0.975)
    mc, mt = c.mean(), t.mean()
    sc, st = stats.sem(c), stats.sem(t)
    nl = NonlinearDeltaCov(lambda p: np.array([p[0] / p[1] - 1.0]), np.array([mt, mc]),
                           np.diag([st**2, sc**2]))
    lift = float(nl.predicted()[0])
    se = float(nl.se_vectorized()[0])
    ci = nl.conf_int(alpha=0.05)[0]
    # Fieller: the ratios rho whose test of mt - rho*mc = 0 is not rejected at 5%.
    stat = lambda rho: (mt - rho * mc) ** 2 - z**2 * (st**2 + rho**2 * sc**2)
    rho = mt / mc
    fieller = [brentq(stat, rho - 10, rho, xtol=1e-15) - 1, brentq(stat, rho, rho + 10, xtol=1e-15) - 1]
    g = (z * sc / mc) ** 2
    theta = sm.OLS(post, sm.add_constant(pre)).fit().params[1]
    frame = pd.DataFrame({"arm": arm, "adj": post - theta * (pre - pre.mean())})
    groups = frame.groupby("arm")["adj"]
    arms = [[int(groups.count()[a]), float(groups.mean()[a]), float(groups.var(ddof=1)[a])] for a in (0, 1)]
    return {
        "lift": {"control": fl(c), "treatment": fl(t), "lift": lift, "se": se,
                 "ci95": [float(ci[0]), float(ci[1])], "fieller95": fl(fieller), "g": float(g)},
        "cuped": {"post": [fl(post[arm == 0]), fl(post[arm == 1])], "pre": [fl(pre[arm == 0]), fl(pre[arm == 1])],
                  "theta": float(theta), "arms": arms},
    }


def ratio():
    """Ratio metrics (clicks / impressions per user): per arm, R = sum(y)/sum(x) is statsmodels'
    WLS mean of y/x with weights x, and its HC1 sandwich variance is the delta-method variance
    of Deng et al. (2018); the linearized values' mean; and winsorizing caps by numpy.percentile
    (linear interpolation) with numpy.clip."""
    rng = np.random.default_rng(20261130)
    cases = []
    for name, n, p_click in [("small", 40, 0.05), ("overdispersed", 3000, 0.03)]:
        arms = []
        for shift in (0.0, 0.004):
            x = 1 + rng.poisson(rng.lognormal(2.0, 1.0, n))  # impressions, heavy-tailed
            p_u = np.clip(rng.beta(2, 2 / (p_click + shift) - 2, n), 0, 1)  # per-user CTR
            y = rng.binomial(x, p_u).astype(float)
            fit = sm.WLS(y / x, np.ones(n), weights=x).fit(cov_type="HC1")
            xbar, r = x.mean(), y.sum() / x.sum()
            lin = r + (y - r * x) / xbar
            arms.append({"y": fl(y), "x": fl(x.astype(float)), "ratio": float(fit.params[0]),
                         "se": float(fit.bse[0]), "linearized_mean": float(np.mean(lin))})
        cases.append({"name": name, "arms": arms})
    money = rng.lognormal(3.0, 1.5, 500)
    money[::97] *= 50  # a few whales
    caps = {str(q): float(np.percentile(money, q)) for q in (90.0, 99.0, 99.9)}
    clipped = {str(q): float(np.clip(money, None, np.percentile(money, q)).mean()) for q in (90.0, 99.0, 99.9)}
    return {"cases": cases, "winsorize": {"values": fl(money), "caps": caps, "capped_means": clipped}}


def hac():
    """Correlational evidence from history: a KPI series regressed on an SLI series with
    hour-of-week dummies and Newey-West errors, statsmodels OLS(...).fit(cov_type="HAC",
    cov_kwds={"maxlags": L, "use_correction": True}) with L = floor(4 (n/100)^(2/9)); 14 days of 15-minute windows with
    daily seasonality in both, AR(1) noise and a few incidents; and the same at a 3-window lag."""
    rng = np.random.default_rng(20261201)
    n = 14 * 96
    t = np.arange(n)
    hour_of_week = (t // 4) % 168
    daily = np.sin(2 * np.pi * t / 96)
    noise = np.zeros(n)
    for i in range(1, n):
        noise[i] = 0.7 * noise[i - 1] + rng.normal(0, 8)
    p95 = 300 + 40 * daily + noise
    for start in rng.integers(0, n - 8, 6):
        p95[start:start + 8] += 150
    kpi_noise = np.zeros(n)
    for i in range(1, n):
        kpi_noise[i] = 0.5 * kpi_noise[i - 1] + rng.normal(0, 0.002)
    conversion = 0.05 + 0.004 * daily - 0.00002 * (p95 - 300) + kpi_noise
    cases = []
    for lag in (0, 3):
        y, x, g = conversion[lag:], p95[:n - lag], hour_of_week[lag:]
        dummies = pd.get_dummies(pd.Series(g), drop_first=True, dtype=float).to_numpy()
        design = np.column_stack([np.ones(len(y)), x, dummies])
        maxlags = int(np.floor(4 * (len(y) / 100) ** (2 / 9)))
        r = sm.OLS(y, design).fit(cov_type="HAC", cov_kwds={"maxlags": maxlags, "use_correction": True})
        ci = r.conf_int(0.05)[1]
        cases.append({"lag": lag, "y": fl(y), "x": fl(x), "groups": [int(v) for v in g], "maxlags": maxlags,
                      "slope": float(r.params[1]), "se": float(r.bse[1]), "p": float(r.pvalues[1]),
                      "ci95": [float(ci[0]), float(ci[1])]})
    return {"cases": cases}


def hac_lag_sum():
    """The long-run effect of a distributed lag: y_t on x_t..x_{t-J} (J = 3) with hour-of-week
    dummies, statsmodels OLS(...).fit(cov_type="HAC", cov_kwds={"maxlags": L, "use_correction":
    True}); theta = the sum of the lag coefficients, its standard error sqrt(1' V 1) from
    cov_params(). 14 days of 15-minute windows where conversion responds to p95 over three
    windows (-1e-5 each at lags 0, 1, 2); in levels and in first differences."""
    rng = np.random.default_rng(20261203)
    n = 14 * 96
    t = np.arange(n)
    hour_of_week = (t // 4) % 168
    daily = np.sin(2 * np.pi * t / 96)
    noise = np.zeros(n)
    for i in range(1, n):
        noise[i] = 0.8 * noise[i - 1] + rng.normal(0, 10)
    p95 = 300 + 40 * daily + noise
    lagged = sum(np.roll(p95, j) for j in range(3))
    conversion = 0.05 + 0.004 * daily - 0.00001 * (lagged - 900) + rng.normal(0, 0.002, n)
    cases = []
    J = 3
    for transform in ("levels", "differences"):
        xs_full = p95
        if transform == "differences":
            xs_full = np.concatenate([[np.nan], np.diff(p95)])
        start = J + (1 if transform == "differences" else 0) + 3
        idx = np.arange(start, n)
        y = (np.diff(conversion, prepend=np.nan) if transform == "differences" else conversion)[idx]
        cols = [xs_full[idx - j] for j in range(J + 1)]
        g = hour_of_week[idx]
        dummies = pd.get_dummies(pd.Series(g), drop_first=True, dtype=float).to_numpy()
        design = np.column_stack([np.ones(len(y))] + cols + [dummies])
        maxlags = int(np.floor(4 * (len(y) / 100) ** (2 / 9)))
        r = sm.OLS(y, design).fit(cov_type="HAC", cov_kwds={"maxlags": maxlags, "use_correction": True})
        cov = np.asarray(r.cov_params())[1:J + 2, 1:J + 2]
        theta = float(np.sum(r.params[1:J + 2]))
        se = float(np.sqrt(np.ones(J + 1) @ cov @ np.ones(J + 1)))
        cases.append({"transform": transform, "y": fl(y), "lags": [fl(c) for c in cols],
                      "groups": [int(v) for v in g], "maxlags": maxlags, "theta": theta, "se": se})
    return {"cases": cases}


def hac_mean():
    """The Newey-West variance of a mean over autocorrelated windows (AR(1) 0.6, heavy-tailed
    shocks, 60 and 500 windows): statsmodels OLS(x, ones).fit(cov_type="HAC",
    cov_kwds={"maxlags": L, "use_correction": False}) with L = floor(4 (n/100)^(2/9))."""
    rng = np.random.default_rng(20261130)
    cases = []
    for n in (60, 500):
        u = np.zeros(n)
        for i in range(1, n):
            u[i] = 0.6 * u[i - 1] + rng.standard_t(4)
        x = 0.05 + 0.002 * u
        L = int(np.floor(4 * (n / 100) ** (2 / 9)))
        r = sm.OLS(x, np.ones(n)).fit(cov_type="HAC", cov_kwds={"maxlags": L, "use_correction": False})
        cases.append({"x": fl(x), "maxlags": L, "variance": float(r.bse[0] ** 2)})
    return {"cases": cases}


def lead_lag():
    """Leading indicators: one day of 1-minute windows of three SLIs as good shares. The target
    (checkout success share) follows the cache hit share 10 windows earlier (a saturating
    response with heavy-tailed noise); two SLIs are unrelated, one of them a random walk with
    AR(2) steps (so AIC picks an interior order, not the cap). On the first differences:
    the AR order of the candidate by ar_select_order(maxlag=24, ic="aic", trend="c"), its
    AutoReg fit, the candidate's residuals and the target filtered by scipy.signal.lfilter,
    ccf(target, candidate, adjusted=False) at lags 0..60. The deciding max test, written with
    numpy's vector sums on the same pre-whitened pair, centred; z(k) = sum(y[t+k] x[t]) / sqrt(sum(y[t+k]^2 x[t]^2)) over the
    pairs in range, k = -60..60; the best lag in 1..60 by |z|; the Sidak p-values of the
    largest |z| over 1..60 and over 0, -1..-60 from scipy.stats.norm.sf. At the best lag:
    grangercausalitytests(np.column_stack([dy, dx]), [best]) ssr_ftest and the single-lag
    regression: OLS of dy on its own lags and dx at the best lag, cov_type="HC1". Holm across
    the candidates' Sidak p-values (multipletests; the service decides on block-permutation
    p-values, which no reference computes, and reports the Sidak one beside them)."""
    from scipy.signal import lfilter
    from statsmodels.tsa.ar_model import AutoReg, ar_select_order
    from statsmodels.tsa.stattools import ccf, grangercausalitytests
    rng = np.random.default_rng(20261130)
    n, lead, max_lag, max_p = 1440, 10, 60, 24
    start = 1_795_000_000 - 1_795_000_000 % 60

    def ar1(rho, sd):
        u = np.zeros(n)
        for i in range(1, n):
            u[i] = rho * u[i - 1] + rng.standard_t(4) * sd
        return u

    hit = np.clip(0.9 + ar1(0.85, 0.01), 0.0, 1.0)
    unrelated = np.clip(0.97 + ar1(0.7, 0.004), 0.0, 1.0)
    steps = np.zeros(n)
    for i in range(2, n):
        steps[i] = 0.5 * steps[i - 1] - 0.3 * steps[i - 2] + rng.normal(0, 0.0006)
    drifting = np.clip(0.9 + np.cumsum(steps), 0.0, 1.0)
    past = np.concatenate([np.full(lead, 0.9), hit[:-lead]])
    # Success saturates: a miss costs more when the cache is already cold.
    success = 0.985 - 0.2 * np.maximum(0.0, 0.93 - past) ** 1.2 * 10 + ar1(0.5, 0.012)
    success = np.clip(success, 0.0, 1.0)
    dy = np.diff(success)
    cases = []
    own = len(ar_select_order(dy, maxlag=max_p, ic="aic", trend="c").ar_lags or [])
    for key, level in (("cache_hit_2", hit), ("ledger_sync_ok", unrelated), ("queue_ok_3", drifting)):
        dx = np.diff(level)
        p = len(ar_select_order(dx, maxlag=max_p, ic="aic", trend="c").ar_lags or [])
        fit = AutoReg(dx, lags=p, trend="c").fit()
        phi = np.asarray(fit.params[1:])
        ex = np.asarray(fit.resid)
        ey = lfilter(np.concatenate([[1.0], -phi]), [1.0], dy)[p:]
        r = ccf(ey, ex, adjusted=False, nlags=max_lag + 1)
        sy, sx = ey - ey.mean(), ex - ex.mean()
        K = max_lag

        def zk(k):
            a, b = (sy[k:], sx[:len(sx) - k]) if k >= 0 else (sy[:k], sx[-k:])
            return float(np.sum(a * b) / np.sqrt(np.sum(a * a * b * b)))

        def sidak(v, m):
            q = 2 * stats.norm.sf(abs(v))
            return float(-np.expm1(m * np.log1p(-q)))
        z_lead = [zk(k) for k in range(0, K + 1)]
        z_rev = [zk(-k) for k in range(1, K + 1)]
        best = int(np.argmax(np.abs(z_lead[1:])) + 1)
        other = [z_lead[0]] + z_rev
        p_lead = sidak(z_lead[best], K)
        p_other = sidak(max(other, key=abs), K + 1)
        g = grangercausalitytests(np.column_stack([dy, dx]), [best])[best][0]["ssr_ftest"]
        # Reported beside it: dx at lag best added to dy's own lags (order by AIC on dy), HC1.
        h = max(own, best)
        idx = np.arange(h, len(dy))
        design = np.column_stack([np.ones(len(idx))] + [dy[idx - i] for i in range(1, own + 1)] + [dx[idx - best]])
        w = sm.OLS(dy[idx], design).fit(cov_type="HC1")
        cases.append({"key": key, "values": fl(level), "order": p, "constant": float(fit.params[0]),
                      "phi": fl(phi), "r": fl(r), "best_lag": best, "f": float(g[0]), "p": float(g[1]),
                      "df_den": float(g[2]), "df_num": int(g[3]), "own": own,
                      "lag_estimate": float(w.params[-1]), "lag_se": float(w.bse[-1]),
                      "lag_p": float(w.pvalues[-1]),
                      "z_lead": fl(z_lead), "z_reverse": fl(z_rev), "p_lead": p_lead,
                      "p_other": p_other})
    holm = multipletests([c["p_lead"] for c in cases], method="holm")[1]
    for c, h in zip(cases, holm):
        c["p_holm"] = float(h)
    return {"start": int(start), "seconds": 60, "lead": lead, "max_lag": max_lag, "max_p": max_p,
            "target": {"key": "checkout_success_1", "values": fl(success)}, "candidates": cases}


def iv_two_slis():
    """2SLS with two endogenous SLIs (retrieval precision@5 and time to first token) moved by a
    2x2 factorial of arms, against linearmodels IV2SLS (params, unadjusted and robust errors,
    debiased and not, first-stage F and partial R^2 per endogenous regressor). Sanderson-
    Windmeijer conditional F: linearmodels' 2SLS of each SLI on the other (same instruments)
    gives the residual, whose instruments' F test (numerator df q - p + 1) comes from statsmodels
    OLS fits of it on the constant and on the instruments. A second design whose arms move both
    SLIs in proportion (rank 1 in the first stage) has small SW F for both."""
    rng = np.random.default_rng(20261202)
    out = {}
    for design, shifts in [("factorial", [(0.0, 0.0), (-0.10, 0.0), (0.0, 400.0), (-0.10, 400.0)]),
                           ("collinear", [(0.0, 0.0), (-0.05, 200.0), (-0.10, 400.0), (-0.102, 395.0)])]:
        n = 4000
        arm = rng.integers(0, 4, n)
        confounder = rng.normal(0, 1, n)
        precision = np.clip(0.8 + np.array([s[0] for s in shifts])[arm] + 0.05 * confounder + rng.normal(0, 0.1, n), 0, 1)
        ttft = rng.lognormal(np.log(600), 0.5, n) + np.array([s[1] for s in shifts])[arm] + 50 * confounder
        minutes = 12 - 20 * (precision - 0.8) + 0.004 * (ttft - 600) + 1.5 * confounder + rng.normal(0, 3, n)
        d = pd.DataFrame({"y": minutes, "const": 1.0, "precision": precision, "ttft": ttft,
                          "d1": (arm == 1) * 1.0, "d2": (arm == 2) * 1.0, "d3": (arm == 3) * 1.0})
        Z = ["d1", "d2", "d3"]
        case = {"y": fl(minutes), "precision": fl(precision), "ttft": fl(ttft),
                "d1": fl(d["d1"]), "d2": fl(d["d2"]), "d3": fl(d["d3"]), "linearmodels": {}}
        for cov in ["unadjusted", "robust"]:
            for debiased in [True, False]:
                r = IV2SLS(d["y"], d[["const"]], d[["precision", "ttft"]], d[Z]).fit(cov_type=cov, debiased=debiased)
                case["linearmodels"][f"{cov}-{'small' if debiased else 'asymptotic'}"] = {
                    "params": fl(r.params), "std_errors": fl(r.std_errors)}
        r = IV2SLS(d["y"], d[["const"]], d[["precision", "ttft"]], d[Z]).fit(cov_type="unadjusted", debiased=True)
        diag = r.first_stage.diagnostics
        case["first_stage_f"] = [float(diag.loc[v, "f.stat"]) for v in ("precision", "ttft")]
        case["partial_r2"] = [float(diag.loc[v, "partial.rsquared"]) for v in ("precision", "ttft")]
        case["sargan"] = [float(r.sargan.stat), float(r.sargan.pval)]
        sw = []
        for j, other in [("precision", "ttft"), ("ttft", "precision")]:
            e = IV2SLS(d[j], d[["const"]], d[[other]], d[Z]).fit().resids
            rss_r = sm.OLS(e, d[["const"]]).fit().ssr
            rss_u = sm.OLS(e, d[["const"] + Z]).fit().ssr
            sw.append(float(((rss_r - rss_u) / (3 - 1)) / (rss_u / (n - 4))))
        case["sw_f"] = sw
        out[design] = case
    return out


def ols():
    from statsmodels.regression.tests.results.results_regression import Longley
    data = sm.datasets.longley.load_pandas()
    X = sm.add_constant(data.exog, prepend=False)
    nist = Longley()
    names = list(X.columns)
    fits = {c: sm.OLS(data.endog, X).fit(cov_type=c) for c in ["nonrobust", "HC0", "HC1", "HC3"]}
    longley = {"names": names, "x": {n: fl(X[n]) for n in names}, "y": fl(data.endog),
               "nist_params": fl(nist.params), "nist_bse": fl(nist.bse), "nist_rsquared": float(nist.rsquared),
               "nist_ssr": float(nist.ssr),
               "statsmodels": {c: {"params": fl(f.params), "bse": fl(f.bse), "pvalues": fl(f.pvalues)} for c, f in fits.items()}}
    rng = np.random.default_rng(42)
    n = 500
    x1 = rng.normal(0, 1, n)
    x2 = rng.uniform(0, 10, n)
    y = 1.5 + 2 * x1 - 0.3 * x2 + rng.normal(0, 1, n) * (0.5 + np.abs(x1))
    Xs = np.column_stack([np.ones(n), x1, x2])
    sim = {"names": ["const", "x1", "x2"], "x": {"const": fl(Xs[:, 0]), "x1": fl(x1), "x2": fl(x2)}, "y": fl(y),
           "statsmodels": {}}
    for c in ["nonrobust", "HC0", "HC1", "HC3"]:
        f = sm.OLS(y, Xs).fit(cov_type=c)
        ci = f.conf_int(0.05)
        sim["statsmodels"][c] = {"params": fl(f.params), "bse": fl(f.bse), "pvalues": fl(f.pvalues),
                                 "ci95": [fl(ci[:, 0]), fl(ci[:, 1])], "rsquared": float(f.rsquared),
                                 "rsquared_adj": float(f.rsquared_adj)}
    return {"longley": longley, "heteroskedastic": sim}


def stata_housing_published():
    path = os.path.join(os.path.dirname(linearmodels.__file__), "tests", "iv", "results", "stata-iv-housing-results.txt")
    blocks, current = {}, None
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("##########"):
            current = line.strip("# !")
            blocks[current] = []
        elif current:
            blocks[current].append(line)
    out = {}
    for key in ["2sls-unadjusted-small", "2sls-robust-small"]:
        lines = blocks[key]
        b = float(lines[lines.index("hsngval\t.00223983298")].split("\t")[1])
        t = float(lines[lines.index("hsngval\t.00223983298") + 1].strip())
        out[key] = {"hsngval": b, "hsngval_t": t}
    return out


def iv():
    path = os.path.join(os.path.dirname(linearmodels.__file__), "tests", "iv", "results", "housing.csv")
    h = pd.read_csv(path, index_col=0)
    regions = pd.get_dummies(h["region"], drop_first=True, dtype=float)
    exog = sm.add_constant(h[["pcturban"]])
    instr = pd.concat([h[["faminc"]], regions], axis=1)
    housing = {"y": fl(h["rent"]), "const": fl(exog["const"]), "pcturban": fl(h["pcturban"]),
               "endog": fl(h["hsngval"]), "instruments": {c: fl(instr[c]) for c in instr.columns},
               "published_stata": stata_housing_published(), "linearmodels": {}}
    for cov in ["unadjusted", "robust"]:
        for debiased in [True, False]:
            r = IV2SLS(h["rent"], exog, h[["hsngval"]], instr).fit(cov_type=cov, debiased=debiased)
            fs = r.first_stage.diagnostics.loc["hsngval"]
            housing["linearmodels"][f"{cov}-{'small' if debiased else 'asymptotic'}"] = {
                "names": list(r.params.index), "params": fl(r.params), "std_errors": fl(r.std_errors),
                "tstats": fl(r.tstats), "pvalues": fl(r.pvalues), "first_stage_f": float(fs["f.stat"]),
                "first_stage_f_pval": float(fs["f.pval"]), "partial_rsquared": float(fs["partial.rsquared"])}
    # Simulated latency injection: 3 arms, dose 0/100/200 ms, unit latency = baseline + dose + noise,
    # conversion-like outcome falling with latency, and a confounder that raises both.
    rng = np.random.default_rng(2026)
    n = 3000
    arm = rng.integers(0, 3, n)
    dose = np.array([0.0, 100.0, 200.0])[arm]
    confounder = rng.normal(0, 1, n)
    latency = rng.lognormal(5.6, 0.3, n) + dose + 40 * confounder
    y = 0.3 - 0.0004 * latency + 0.05 * confounder + rng.normal(0, 0.2, n)
    d1, d2 = (arm == 1).astype(float), (arm == 2).astype(float)
    df = pd.DataFrame({"y": y, "const": 1.0, "latency": latency, "d1": d1, "d2": d2})
    sim = {"y": fl(y), "latency": fl(latency), "d1": fl(d1), "d2": fl(d2), "true_slope": -0.0004, "linearmodels": {}}
    for cov in ["unadjusted", "robust"]:
        for debiased in [True, False]:
            r = IV2SLS(df["y"], df[["const"]], df[["latency"]], df[["d1", "d2"]]).fit(cov_type=cov, debiased=debiased)
            fs = r.first_stage.diagnostics.loc["latency"]
            ci = r.conf_int(0.95)
            sim["linearmodels"][f"{cov}-{'small' if debiased else 'asymptotic'}"] = {
                "params": fl(r.params), "std_errors": fl(r.std_errors), "pvalues": fl(r.pvalues),
                "ci95": [fl(ci["lower"]), fl(ci["upper"])], "first_stage_f": float(fs["f.stat"]),
                "partial_rsquared": float(fs["partial.rsquared"]), "sargan": float(r.sargan.stat),
                "sargan_p": float(r.sargan.pval)}
    # classical first-stage F of the excluded instruments
    Z = sm.add_constant(np.column_stack([d1, d2]))
    fsr = sm.OLS(latency, Z).fit()
    sim["first_stage_classical_f"] = float(fsr.f_test("x1 = 0, x2 = 0").fvalue)
    return {"housing": housing, "latency_injection": sim}


def bootstrap():
    # scipy's test_bootstrap_against_R data and its published acceleration values
    x = np.array([10, 12, 12.5, 12.5, 13.9, 15, 21, 22, 23, 34, 50, 81, 89, 121, 134, 213], float)
    y = np.array([10, 27, 31, 40, 46, 50, 52, 104, 146], float)
    z = np.array([16, 23, 38, 94, 99, 141, 197], float)
    from scipy.stats._resampling import _bca_interval
    alpha = 0.05
    res = stats.bootstrap((x,), np.mean, confidence_level=0.95, method="BCa", n_resamples=99999, random_state=0)
    _, _, a_one = _bca_interval((x,), lambda s, axis=-1: np.mean(s, axis=axis), axis=-1, alpha=alpha,
                               theta_hat_b=np.array([np.mean(x)] * 3 + [0.0]), batch=None, xp=np)
    def stat2(a, b, axis=-1):
        return np.mean(a, axis=axis) - np.mean(b, axis=axis)
    _, _, a_two = _bca_interval((z, y), stat2, axis=-1, alpha=alpha,
                               theta_hat_b=np.array([stat2(z, y)] * 3 + [0.0]), batch=None, xp=np)
    out = {"x": fl(x), "y": fl(y), "z": fl(z), "scipy_acceleration_one_sample": float(np.squeeze(a_one)),
           "scipy_acceleration_two_sample": float(np.squeeze(a_two)),
           "scipy_bca_99999": [float(res.confidence_interval.low), float(res.confidence_interval.high)]}
    for method in ["percentile", "basic"]:
        r = stats.bootstrap((x,), np.mean, confidence_level=0.95, method=method, n_resamples=99999, random_state=0)
        out[f"scipy_{method}_99999"] = [float(r.confidence_interval.low), float(r.confidence_interval.high)]
    return out


def hinge_ssr(x, y, psi):
    X = np.column_stack([np.ones_like(x), x, np.maximum(x - psi, 0)])
    return sm.OLS(y, X).fit().ssr


def exact_hinge(x, y):
    """Least-squares breakpoint: statsmodels OLS on a 20,001-point grid between the 5th and 95th
    percentiles, refined by scipy's bounded scalar minimiser between the best point's neighbours."""
    from scipy.optimize import minimize_scalar
    lo, hi = np.percentile(x, [5, 95])
    grid = np.linspace(lo, hi, 20001)
    ssr = np.array([hinge_ssr(x, y, g) for g in grid])
    i = int(np.argmin(ssr))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    r = minimize_scalar(lambda p: hinge_ssr(x, y, p), bounds=(a, b), method="bounded", options={"xatol": 1e-10})
    psi = float(r.x) if r.fun <= ssr[i] else float(grid[i])
    X = np.column_stack([np.ones_like(x), x, np.maximum(x - psi, 0)])
    f = sm.OLS(y, X).fit()
    return {"breakpoint": psi, "params": fl(f.params), "bse": fl(f.bse), "ssr": float(f.ssr)}


def knee():
    import piecewise_regression
    from piecewise_regression.davies import davies_test
    rng = np.random.default_rng(11)
    out = []
    for name, n, psi, b1, b2, noise in [("knee_at_400", 800, 400.0, -0.00002, -0.0004, 0.02),
                                         ("knee_at_300_noisy", 400, 300.0, 0.0, -0.0005, 0.05),
                                         ("no_knee", 600, None, -0.0002, 0.0, 0.05)]:
        x = np.sort(rng.uniform(100, 800, n))
        y = 0.1 + b1 * x + (b2 * np.maximum(x - psi, 0) if psi else 0) + rng.normal(0, noise, n)
        case = {"name": name, "x": fl(x), "y": fl(y), "true_breakpoint": psi,
                "davies_p": float(davies_test(x, y, k=10)), "least_squares": exact_hinge(x, y)}
        fit = piecewise_regression.Fit(list(x), list(y), n_breakpoints=1, max_iterations=100)
        r = fit.get_results()
        if r["converged"]:
            est = r["estimates"]
            case["piecewise_regression"] = {"breakpoint": est["breakpoint1"]["estimate"],
                                            "alpha1": est["alpha1"]["estimate"], "alpha2": est["alpha2"]["estimate"],
                                            "beta1": est["beta1"]["estimate"], "rss": r["rss"]}
        out.append(case)
    return out


def hist_count_at_or_below(bounds, cumulative, t):
    """Events at or below t: numpy.interp over the piecewise-linear cumulative count through
    (0, 0), (b0, c0), (b1, c1), ... (Prometheus's first bucket spans [0, b0] when b0 > 0; when
    b0 <= 0 it is the point b0, so the count jumps from 0 to c0 there). Below the curve 0; beyond
    the last finite bound the last finite cumulative count (+Inf events lie above t)."""
    b, c = np.asarray(bounds, float), np.asarray(cumulative, float)
    x, y = (np.concatenate([[0.0], b]), np.concatenate([[0.0], c])) if b[0] > 0 else (b, c)
    return float(np.interp(t, x, y, left=0.0, right=c[-1]))


def hist_quantile(q, bounds, cumulative, total):
    """Prometheus `histogram_quantile`: rank q * total; the last finite bound when the rank lies
    in +Inf; otherwise the first bucket whose cumulative count reaches the rank (searchsorted,
    side='left': the lower end of a flat run) and numpy.interp inside that bucket."""
    b, c = np.asarray(bounds, float), np.asarray(cumulative, float)
    rank = q * total
    assert total > 0 and rank > 0
    if rank > c[-1]:
        return float(b[-1])
    x, y = (np.concatenate([[0.0], b]), np.concatenate([[0.0], c])) if b[0] > 0 else (b, c)
    j = int(np.searchsorted(y, rank, side="left"))
    if j == 0:  # first bound <= 0 and the rank within its point mass
        return float(b[0])
    return float(np.interp(rank, y[j - 1:j + 1], x[j - 1:j + 1]))


LIVE_QS = [0.05, 0.25, 0.5, 0.9, 0.95, 0.99]


def live_histograms(rng):
    """Histograms (finite bounds, cumulative counts, total = +Inf count) with count_at_or_below
    at points inside buckets, at bounds, below the first bound and beyond the last, and
    quantiles."""
    cases = []
    bounds = [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0]
    edges = np.concatenate([[0.0], bounds, [np.inf]])
    probs = np.diff(stats.lognorm.cdf(edges, s=0.8, scale=60.0))
    counts = rng.multinomial(5000, probs)
    cases.append(("lognormal_latency_ms", bounds, np.cumsum(counts[:-1]), counts.sum()))
    # Empty buckets, the first among them: flat runs of the cumulative count.
    counts = np.array([0, 3, 0, 0, 7, 0, 2, 0, 1])
    cases.append(("empty_buckets", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], np.cumsum(counts[:-1]), counts.sum()))
    # Ranks q * total land exactly on the start of flat runs (50, 90, 95) and in +Inf (99).
    cases.append(("rank_on_flat_runs", [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                  np.array([10, 50, 50, 90, 90, 95, 95]), 100))
    # Every event above the last finite bound.
    cases.append(("all_in_inf", [100.0, 200.0, 400.0], np.array([0, 0, 0]), 20))
    # A first bound of 0: the first bucket is the point 0.
    cases.append(("zero_first_bound", [0.0, 50.0, 100.0, 200.0], np.array([4, 10, 30, 38]), 40))
    # Sparse counts from a heavy tail, with random bounds.
    bounds = np.sort(rng.choice(np.arange(1, 400), 12, replace=False)).astype(float) * 2.5
    probs = np.diff(stats.lognorm.cdf(np.concatenate([[0.0], bounds, [np.inf]]), s=1.2, scale=150.0))
    counts = rng.multinomial(37, probs)
    cases.append(("sparse_random_bounds", list(bounds), np.cumsum(counts[:-1]), counts.sum()))
    out = []
    for name, bounds, cumulative, total in cases:
        b = np.asarray(bounds, float)
        mids = (b[:-1] + b[1:]) / 2
        ts = np.concatenate([[-1.0, 0.0, b[0] * 0.3 if b[0] > 0 else -0.5], b, mids, [b[-1] * 1.5],
                             rng.uniform(b[0] - 1, b[-1] * 1.1, 4)])
        out.append({"name": name, "bounds": fl(b), "cumulative": fl(cumulative), "total": float(total),
                    "count_at_or_below": [{"t": float(t), "value": hist_count_at_or_below(b, cumulative, t)}
                                          for t in ts],
                    "quantile": [{"q": q, "value": hist_quantile(q, b, cumulative, float(total))}
                                 for q in LIVE_QS]})
    return out


def live_series(rng):
    """600 one-minute histogram windows of a latency SLI in ms: log-normal (sigma 0.55) around a
    median that swings over four hours and doubles during an incident, Poisson-many events per
    window drawn by numpy's multinomial, scattered missing windows, an 8-minute gap, and empty
    windows (one right after the gap, so its trailing 5 minutes hold no event)."""
    bounds = np.array([100.0, 200.0, 300.0, 400.0, 500.0, 750.0, 1000.0, 2000.0])
    n, step, start0 = 600, 60, 1_767_225_600  # 2026-01-01T00:00Z
    minute = np.arange(n)
    median = 165.0 * (1 + 0.25 * np.sin(2 * np.pi * minute / 240))
    median[300:345] *= 2.0
    edges = np.concatenate([[0.0], bounds, [np.inf]])
    events = rng.poisson(150, n)
    counts = np.array([rng.multinomial(k, np.diff(stats.lognorm.cdf(edges, s=0.55, scale=m)))
                       for k, m in zip(events, median)])
    counts[[500, 458]] = 0
    missing = set(range(450, 458)) | set(int(i) for i in rng.choice(np.arange(10, 440), 6, replace=False))
    keep = np.array([i for i in range(n) if i not in missing])
    counts = counts[keep]
    return {"starts": start0 + step * keep, "cumulative": np.cumsum(counts[:, :-1], axis=1),
            "count": counts.sum(axis=1), "bounds": bounds, "step": step}


def live_windows_evaluation(series, threshold, at_times, baseline, slope, q=0.95, slo_seconds=300):
    """Windows evaluation, "p95 < T in 99% of 5-minute windows": at the end of every present
    window, the windows starting in the trailing 5 minutes summed by a pandas time-based rolling
    sum; bad when the share at or below T is under q; no evaluation when the sum holds no event.
    Cost: sum over bad evaluations of |r| * max(0, p95 - baseline) * (window / day)."""
    b, step = series["bounds"], series["step"]
    cols = [f"c{i}" for i in range(len(b))]
    frame = pd.DataFrame(series["cumulative"], columns=cols, index=pd.to_datetime(series["starts"], unit="s"))
    frame["count"] = series["count"]
    # Time-based rolling windows are (s - 300 s, s]: with starts on the minute grid, the windows
    # starting in [t - 300, t) for t = s + 60.
    agg = frame.rolling(f"{slo_seconds}s").sum()
    ends = series["starts"] + step
    rows = []
    for end, (_, row) in zip(ends, agg.iterrows()):
        total = row["count"]
        if total <= 0:
            continue
        cumulative = row[cols].to_numpy(float)
        share = hist_count_at_or_below(b, cumulative, threshold) / total
        assert abs(share - q) > 1e-9, "a share this close to q would make the reference fragile"
        rows.append((int(end), float(share < q), hist_quantile(0.95, b, cumulative, total)))
    ev = pd.DataFrame(rows, columns=["end", "bad", "p95"])
    # A window cannot lose more than all of its KPI: the relative loss is capped at 1.
    loss = np.minimum(1.0, slope * np.maximum(0.0, ev["p95"] - baseline))
    cost = float((ev["bad"] * loss * (step / 86_400)).sum())
    ratios = []
    for at in at_times:
        for seconds in (3600, 6 * 3600):
            sel = ev[(ev["end"] > at - seconds) & (ev["end"] <= at)]
            ratio = float(sel["bad"].mean()) if len(sel) else None
            ratios.append({"at": int(at), "seconds": seconds, "ratio": ratio,
                           "burn_rate": None if ratio is None else ratio / 0.01})
    return {"threshold": threshold, "target": 0.99, "percentile": 95, "window_minutes": slo_seconds // 60,
            "evaluations": len(ev), "bad": float(ev["bad"].sum()), "attainment": float(1 - ev["bad"].mean()),
            "loss_days": cost, "ends": [int(e) for e in ev["end"]], "bad_flags": fl(ev["bad"]),
            "p95": fl(ev["p95"]), "error_ratios": ratios}


def live_requests_evaluation(series, threshold, at_times):
    """Requests evaluation, "T for 99% of requests": each window with events contributes
    total - count_at_or_below(T) bad events and weighs its events; a range's error ratio is the
    sum of bad events over the sum of events."""
    b, step = series["bounds"], series["step"]
    present = series["count"] > 0
    ends = (series["starts"] + step)[present]
    total = series["count"][present].astype(float)
    good = np.array([hist_count_at_or_below(b, c, threshold) for c in series["cumulative"][present]])
    bad = total - good
    ratios = []
    for at in at_times:
        for seconds in (3600, 6 * 3600):
            m = (ends > at - seconds) & (ends <= at)
            ratio = float(bad[m].sum() / total[m].sum()) if total[m].sum() > 0 else None
            ratios.append({"at": int(at), "seconds": seconds, "ratio": ratio,
                           "burn_rate": None if ratio is None else ratio / 0.01})
    return {"threshold": threshold, "target": 0.99, "evaluations": int(present.sum()), "bad": float(bad.sum()),
            "weight": float(total.sum()), "attainment": float(1 - bad.sum() / total.sum()), "error_ratios": ratios}


def live():
    """Live SLO numerics: histogram shares and quantiles (Prometheus semantics) and the
    evaluations of windows and requests SLOs on a simulated production series."""
    rng = np.random.default_rng(20260111)
    histograms = live_histograms(rng)
    series = live_series(rng)
    s0, step = int(series["starts"][0]), series["step"]
    end = lambda minute: s0 + step * (minute + 1)
    # Before any data (no evaluation), the first window, partial hours, the incident, inside and
    # after the gap, the last window, and times between window ends.
    at_times = [s0 - 60, end(0), end(30), end(59) + 17, end(200), end(320), end(344), end(360) + 59,
                end(455), end(459), end(520) + 1, end(599), end(599) + 3600 * 2]
    baseline, r = 400.0, -0.002  # SLI at the baseline (ms), relative KPI change per ms
    return {
        "histogram": histograms,
        "timeline": {
            "window_seconds": step, "bounds": fl(series["bounds"]),
            "windows": [{"start": int(s), "count": float(n), "cumulative": fl(c)}
                        for s, n, c in zip(series["starts"], series["count"], series["cumulative"])],
            "cost": {"baseline": baseline, "relative_kpi_change_per_unit": r},
            "windows_evaluation": [live_windows_evaluation(series, t, at_times, baseline, abs(r))
                                   for t in (500.0, 600.0)],
            "requests_evaluation": [live_requests_evaluation(series, t, at_times) for t in (500.0, 600.0)],
        },
    }


GENERATORS = [
    ("t_dist", t_dist),
    ("tests", lambda: {**descriptive_and_tests(), "proportions": proportions(), "srm": srm(),
                       "multiple": multiple(), "power": power()}),
    ("lift_cuped", lift_and_cuped),
    ("ols", ols),
    ("iv", iv),
    ("bootstrap", bootstrap),
    ("knee", lambda: {"cases": knee()}),
    ("missingness", lambda: {"cases": missingness()}),
    ("homogeneity", lambda: {"cases": homogeneity()}),
    ("arm_intervals", arm_intervals),
    ("log_p", lambda: {"cases": log_p()}),
    ("effective_f", lambda: {"cases": effective_f()}),
    ("anderson_rubin", lambda: {"cases": anderson_rubin()}),
    ("live", live),
    ("ratio", ratio),
    ("hac", hac),
    ("hac_lag_sum", hac_lag_sum),
    ("iv_two_slis", iv_two_slis),
    ("lead_lag", lead_lag),
    ("hac_mean", hac_mean),
    ("ratio_ci", ratio_ci),
]


def main(names):
    """Writes every fixture, or only those named (`generate.py live`)."""
    known = [n for n, _ in GENERATORS]
    unknown = [n for n in names if n not in known]
    if unknown:
        sys.exit(f"unknown fixture(s) {unknown}; known: {known}")
    os.makedirs(OUT, exist_ok=True)
    for name, generate in GENERATORS:
        if not names or name in names:
            write(name, generate())


if __name__ == "__main__":
    main(sys.argv[1:])
