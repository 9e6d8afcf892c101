#!/usr/bin/env python3
"""Benchmark (not a test): one analysis request on a 1,000,000-unit experiment.

Starts the release binary on a fresh SQLite file, loads `sloproof simulate --units N` (3 arms
+0/+100/+200 ms, 2 KPIs, pre-period data) through the API, times
`POST /experiments/{key}/analyses` with 2,000 BCa resamples, and reads the server's peak
memory (VmHWM). Then it reads the same data from the SQLite file and times the main statistics
in the Python reference stack: per arm × KPI the z-test / Welch t and Mann-Whitney (scipy,
statsmodels), 2SLS with robust errors per KPI (linearmodels), and a 2,000-resample percentile
bootstrap of each arm × KPI difference (scipy; BCa's jackknife is O(n²) there at this size).

With --postgres URL (a role that may create databases) it runs on a fresh PostgreSQL database
of its own instead, dropped afterwards, and the reference reads the rows through psql.
It also times the upload (`simulate`: assignments, then observations, through the API).

With --one-kpi --no-pre-period the experiment has conversion alone and no pre-period data
(2 observations per unit: the issue's 100M-unit PostgreSQL benchmark, `--units 100000000
--no-reference --postgres URL`, needs about 48 GB of disk and 20 minutes of upload).

Usage: cargo build --release && python3 scripts/bench_analysis.py [--units N] [--postgres URL]
           [--one-kpi] [--no-pre-period] [--no-reference]
"""
import argparse
import io
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
from linearmodels.iv import IV2SLS
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "sloproof")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vmhwm(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=1_000_000)
    ap.add_argument("--postgres", help="admin URL of a PostgreSQL role that may create databases")
    ap.add_argument("--no-reference", action="store_true", help="skip the Python reference (it needs ~40 GB at 10M units)")
    ap.add_argument("--one-kpi", action="store_true", help="conversion alone (simulate --revenue false)")
    ap.add_argument("--no-pre-period", action="store_true", help="no pre-period data (simulate --pre-period false)")
    args = ap.parse_args()
    if (args.one_kpi or args.no_pre_period) and not args.no_reference:
        ap.error("the Python reference compares both KPIs with pre-period data: add --no-reference")
    if args.postgres:
        name = f"sloproof_bench_{os.getpid()}"
        subprocess.run(["psql", "-q", args.postgres, "-c", f"CREATE DATABASE {name}"], check=True)
        db = f"{args.postgres.rpartition('/')[0]}/{name}?sslmode=disable"
        try:
            run(args, db)
        finally:
            subprocess.run(["psql", "-q", args.postgres, "-c", f"DROP DATABASE {name}"], check=True)
    else:
        tmp = tempfile.mkdtemp()
        try:
            run(args, os.path.join(tmp, "bench.db"))
        finally:
            shutil.rmtree(tmp)


def read_sql(db, sql):
    """A query's rows as a DataFrame, from the SQLite file or through psql."""
    if db.startswith("postgres"):
        out = subprocess.run(["psql", "-q", db, "-c", f"\\copy ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)"],
                             check=True, capture_output=True).stdout
        return pd.read_csv(io.BytesIO(out))
    return pd.read_sql(sql, sqlite3.connect(db))


def run(args, db):
    port = free_port()
    token = "bench-admin-token-0123456789"
    env = dict(os.environ, SLOPROOF_DATABASE_URL=db, SLOPROOF_BIND=f"127.0.0.1:{port}", SLOPROOF_LOG=os.environ.get("BENCH_LOG", "warn"),
               SLOPROOF_ADMIN_TOKEN=token)
    server = subprocess.Popen([BINARY, "serve"], env=env)
    try:
        time.sleep(1)
        api = f"http://127.0.0.1:{port}"
        t = time.perf_counter()
        shape = (["--revenue", "false"] if args.one_kpi else []) + (["--pre-period", "false"] if args.no_pre_period else [])
        subprocess.run([BINARY, "simulate", "--api", api, "--token", token, "--units", str(args.units), "--key", "bench", *shape],
                       check=True, stdout=subprocess.DEVNULL)
        load = time.perf_counter() - t
        # Restart so the peak memory measured is the analysis's own, not the upload's.
        server.terminate()
        server.wait()
        server = subprocess.Popen([BINARY, "serve"], env=env)
        time.sleep(1)
        before = vmhwm(server.pid)
        req = urllib.request.Request(f"{api}/api/v1/experiments/bench/summary",
                                     headers={"authorization": f"Bearer {token}"})
        t = time.perf_counter()
        summary = json.load(urllib.request.urlopen(req, timeout=600))
        in_db = time.perf_counter() - t
        summary_peak = vmhwm(server.pid)
        slope = summary["causal"][0]
        req = urllib.request.Request(f"{api}/api/v1/experiments/bench/summary?resamples=2000&seed=1",
                                     headers={"authorization": f"Bearer {token}"})
        t = time.perf_counter()
        booted = json.load(urllib.request.urlopen(req, timeout=600))
        in_db_boot = time.perf_counter() - t
        boot_peak = vmhwm(server.pid)
        req = urllib.request.Request(f"{api}/api/v1/experiments/bench/analyses", method="POST",
                                     data=json.dumps({"bootstrap": {"seed": 1}}).encode(),
                                     headers={"content-type": "application/json", "authorization": f"Bearer {token}"})
        t = time.perf_counter()
        try:
            analysis = json.load(urllib.request.urlopen(req, timeout=3600))
        except urllib.error.HTTPError as e:
            # Over SLOPROOF_MAX_ANALYSIS_UNITS the analysis is refused (422) before any read.
            analysis = {"refused": e.code, "problem": json.load(e)}
        rust = time.perf_counter() - t
        peak = vmhwm(server.pid)
    finally:
        server.terminate()
        server.wait()
    backend = "PostgreSQL" if db.startswith("postgres") else "SQLite"
    if db.startswith("postgres"):
        size = subprocess.run(["psql", "-qtA", db, "-c", "SELECT pg_database_size(current_database())"],
                              check=True, capture_output=True, text=True).stdout
        print(f"database size: {int(size) / 1e9:.2f} GB")
    else:
        print(f"database size: {sum(os.path.getsize(p) for p in [db, db + '-wal'] if os.path.exists(p)) / 1e9:.2f} GB")
    per_unit = (2 if args.one_kpi else 3) * (1 if args.no_pre_period else 2)
    print(f"{backend}: simulate + upload of {args.units:,} units (assignments, then {per_unit} observations per unit) "
          f"{load:.1f} s")
    print(f"sloproof summary from the database's per-arm sums (GET .../summary): {in_db:.2f} s; server peak RSS "
          f"{summary_peak:.0f} MB; slope of {slope['kpi']} {slope['slope']['estimate']:.6g} per ms; "
          f"CUPED {'on' if summary['cuped'] else 'off'}")
    cells = booted["bootstrap"]["cells"]
    print(f"sloproof summary with a 2,000-resample BCa bootstrap on counted cells (?resamples=2000): "
          f"{in_db_boot:.2f} s; server peak RSS {boot_peak:.0f} MB; at most {max(c['cells'] for c in cells)} cells "
          f"per arm and metric, largest relative error {max(c['relative_error'] for c in cells):.2g}")
    if "refused" in analysis:
        print(f"sloproof analysis of {args.units:,} units: refused with {analysis['refused']} in {rust:.2f} s: "
              f"{analysis['problem']['errors'][0]['message']}")
        return
    print(f"sloproof analysis of {args.units:,} units: {rust:.2f} s; server peak RSS {peak:.0f} MB "
          f"({before:.0f} MB before the requests)")
    print("  " + analysis["summary"])
    for e in analysis["kpi_effects"]:
        got = next(x for x in booted["effects"] if x["variant"] == e["variant"] and x["metric"] == e["metric"])
        want = e["alternatives"]["bootstrap"]
        print(f"  {e['variant']} {e['metric']}: bootstrap interval per unit [{want['ci_low']:.6g}, {want['ci_high']:.6g}]"
              f", from cells [{got['bootstrap']['ci_low']:.6g}, {got['bootstrap']['ci_high']:.6g}]; "
              f"{e['primary']['method']} {e['primary']['estimate']:.10g} per unit, "
              f"{got['difference']['method']} {got['difference']['estimate']:.10g} from sums")
    for c in analysis["causal_effects"]:
        got = next(x for x in booted["causal"] if x["kpi"] == c["kpi"])
        print(f"  slope of {c['kpi']}: bootstrap interval per unit [{c['bootstrap']['ci_low']:.6g}, "
              f"{c['bootstrap']['ci_high']:.6g}], from cells [{got['bootstrap']['ci_low']:.6g}, {got['bootstrap']['ci_high']:.6g}]")
    if args.no_reference:
        return

    a = read_sql(db, "select a.unit_id, v.key as arm from assignments a join variants v on v.id = a.variant_id")
    o = read_sql(db, "select o.unit_id, m.key as metric, o.value from observations o join metrics m on m.id = o.metric_id "
                     "where o.period = 'post'")
    wide = o.pivot(index="unit_id", columns="metric", values="value").join(a.set_index("unit_id"), how="inner")
    arms = sorted(wide["arm"].unique(), key=lambda k: (k != "control", k))
    t = time.perf_counter()
    ctrl = wide[wide.arm == "control"]
    for arm in arms[1:]:
        tr = wide[wide.arm == arm]
        c, tt = ctrl["checkout-conversion"].to_numpy(), tr["checkout-conversion"].to_numpy()
        proportions_ztest([tt.sum(), c.sum()], [len(tt), len(c)])
        r, rc = tr["revenue-per-user"].to_numpy(), ctrl["revenue-per-user"].to_numpy()
        stats.ttest_ind(r, rc, equal_var=False)
        stats.mannwhitneyu(r, rc, method="asymptotic")
        stats.ttest_ind(tr["checkout-latency"].to_numpy(), ctrl["checkout-latency"].to_numpy(), equal_var=False)
    tests = time.perf_counter() - t
    t = time.perf_counter()
    d = pd.get_dummies(wide["arm"], dtype=float).drop(columns="control")
    d["const"] = 1.0
    for kpi in ["checkout-conversion", "revenue-per-user"]:
        IV2SLS(wide[kpi], d[["const"]], wide[["checkout-latency"]], d.drop(columns="const")).fit(cov_type="robust", debiased=True)
    iv = time.perf_counter() - t
    t = time.perf_counter()
    for arm in arms[1:]:
        tr = wide[wide.arm == arm]
        for kpi in ["checkout-conversion", "revenue-per-user"]:
            stats.bootstrap((tr[kpi].to_numpy(), ctrl[kpi].to_numpy()),
                            lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis), n_resamples=2000,
                            method="percentile", vectorized=True, batch=50, random_state=1)
    boot = time.perf_counter() - t
    print(f"Python reference, same data: tests {tests:.2f} s, 2SLS {iv:.2f} s, bootstrap of 4 differences {boot:.2f} s, "
          f"total {tests + iv + boot:.2f} s (without the slope and p95 bootstraps, CUPED, thresholds)")


if __name__ == "__main__":
    main()
