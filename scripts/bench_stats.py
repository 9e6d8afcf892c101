#!/usr/bin/env python3
"""Benchmark (not a test): the statistics core against the Python reference stack.

Simulates the same experiment shape as `sloproof bench-stats` (1,000,000 units, 3 arms with
+0/+100/+200 ms of latency, revenue falling with latency) and times:
  Welch t (scipy.stats.ttest_ind), OLS with HC1 errors (statsmodels), 2SLS with robust errors
  (linearmodels IV2SLS; sloproof's general QR fit, and separately the per-arm-moment fit that
  analyses use), and a 2,000-resample percentile bootstrap of the treatment − control
  difference in means (scipy.stats.bootstrap),
then runs `target/release/sloproof bench-stats` and prints both.

Usage: cargo build --release && python3 scripts/bench_stats.py [--units N] [--resamples B]
Needs: pip install -r scripts/reference/requirements.txt
"""
import argparse
import json
import os
import subprocess
import time

import numpy as np
import pandas as pd
import statsmodels.api as sm
from linearmodels.iv import IV2SLS
from scipy import stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=1_000_000)
    ap.add_argument("--resamples", type=int, default=2000)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    n = args.units
    arm = rng.integers(0, 3, n)
    latency = rng.lognormal(5.6, 0.3, n) + 100.0 * arm
    revenue = 20 - 0.01 * latency + 5 * rng.normal(size=n)
    d1, d2 = (arm == 1).astype(float), (arm == 2).astype(float)
    treat, ctrl = revenue[arm == 1], revenue[arm == 0]
    X = np.column_stack([np.ones(n), d1, d2])
    df = pd.DataFrame({"y": revenue, "const": 1.0, "latency": latency, "d1": d1, "d2": d2})
    python = {
        "welch": timed(lambda: stats.ttest_ind(treat, ctrl, equal_var=False)),
        "ols_hc1": timed(lambda: sm.OLS(revenue, X).fit(cov_type="HC1")),
        "two_sls_robust": timed(lambda: IV2SLS(df["y"], df[["const"]], df[["latency"]], df[["d1", "d2"]]).fit(cov_type="robust", debiased=True)),
        "bootstrap_percentile": timed(lambda: stats.bootstrap(
            (treat, ctrl), lambda a, b, axis=-1: a.mean(axis=axis) - b.mean(axis=axis), n_resamples=args.resamples,
            method="percentile", vectorized=True, batch=50, random_state=1)),
    }
    out = subprocess.run([os.path.join(ROOT, "target", "release", "sloproof"), "bench-stats", "--units", str(n),
                          "--resamples", str(args.resamples)], check=True, capture_output=True, text=True).stdout
    rust = {s["name"]: s["seconds"] for s in json.loads(out)}
    print(f"{'step':32} {'sloproof (s)':>13} {'Python (s)':>11}")
    pairs = [("welch", "welch"), ("ols_hc1", "ols_hc1"), ("two_sls_robust", "two_sls_robust"),
             ("bootstrap_poisson_percentile", "bootstrap_percentile")]
    for r, p in pairs:
        print(f"{r:32} {rust[r]:13.3f} {python[p]:11.3f}")
    print(f"{'total':32} {sum(rust[r] for r, _ in pairs):13.3f} {sum(python.values()):11.3f}")
    print(f"{'two_sls_arms_robust':32} {rust['two_sls_arms_robust']:13.3f} {python['two_sls_robust']:11.3f}"
          "  (the per-arm-moment 2SLS analyses use; not in the total)")


if __name__ == "__main__":
    main()
