#!/usr/bin/env python3
"""Benchmark (not a test): ingest 1,000,000 observations over HTTP as NDJSON into SQLite.

Starts the release binary on a fresh SQLite file, creates a catalog and an experiment, posts
1,000,000 NDJSON observation rows in one request and prints rows/s. For comparison it then
inserts the same rows with Python's sqlite3.executemany into the same table (created by the
same migration SQL, same pragmas) and prints that rate too.

Usage: cargo build --release && python3 scripts/bench_ingest.py [--rows N]
Only the Python standard library is needed.
"""
import argparse
import http.client
import json
import os
import random
import socket
import sqlite3
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "sloproof")
MIGRATION = os.path.join(ROOT, "migrations", "sqlite", "2026-11-28-000001_init", "up.sql")
METRICS = ["latency", "conversion", "revenue", "orders"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TOKEN = "bench-admin-token-0123456789"


def request(port, method, path, body=None, content_type="application/json"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request(method, path, body=body, headers={"content-type": content_type, "authorization": f"Bearer {TOKEN}"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status >= 300:
        raise SystemExit(f"{method} {path} -> {resp.status}: {data[:500]!r}")
    return json.loads(data) if data else None


def make_rows(n, seed=7):
    rng = random.Random(seed)
    rows = []
    units = n // len(METRICS) + 1
    for u in range(units):
        unit = f"u{u:07d}"
        values = [rng.lognormvariate(5.5, 0.4), float(rng.random() < 0.05), round(rng.expovariate(0.1), 2), float(rng.randrange(4))]
        for metric, value in zip(METRICS, values):
            rows.append((unit, metric, value))
            if len(rows) == n:
                return rows
    return rows


def peak_rss_mb(pid):
    """The server's peak resident memory (Linux), in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench_service(rows):
    tmp = tempfile.mkdtemp()
    port = free_port()
    env = dict(os.environ, SLOPROOF_DATABASE_URL=os.path.join(tmp, "bench.db"),
               SLOPROOF_BIND=f"127.0.0.1:{port}", SLOPROOF_LOG=os.environ.get("SLOPROOF_LOG", "warn"),
               SLOPROOF_ADMIN_TOKEN=TOKEN, SLOPROOF_WRITE_RATE="0")
    proc = subprocess.Popen([BINARY, "serve"], env=env)
    try:
        for _ in range(100):
            try:
                request(port, "GET", "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        kinds = {"latency": ("sli", "continuous", "lower_is_better", "journey"),
                 "conversion": ("kpi", "binary", "higher_is_better", "business"),
                 "revenue": ("kpi", "continuous", "higher_is_better", "business"),
                 "orders": ("kpi", "count", "higher_is_better", "business")}
        for key, (kind, vt, direction, layer) in kinds.items():
            request(port, "POST", "/api/v1/metrics", json.dumps({
                "key": key, "name": key, "kind": kind, "value_type": vt, "unit": "",
                "direction": direction, "layer": layer}))
        request(port, "POST", "/api/v1/experiments", json.dumps({
            "key": "bench", "name": "bench", "hypothesis": "h", "sli": "latency",
            "kpis": ["conversion", "revenue"], "guardrails": ["orders"],
            "variants": [{"key": "control", "weight": 0.5, "control": True, "dose": 0},
                         {"key": "treat", "weight": 0.5, "dose": 100}]}))
        body = "".join(json.dumps({"unit_id": u, "metric": m, "value": v}) + "\n" for u, m, v in rows).encode()
        start = time.perf_counter()
        summary = request(port, "POST", "/api/v1/experiments/bench/observations", body, "application/x-ndjson")
        elapsed = time.perf_counter() - start
        assert summary["inserted"] == len(rows), summary
        return elapsed, len(body), peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait()


def bench_executemany(rows):
    tmp = tempfile.mkdtemp()
    db = sqlite3.connect(os.path.join(tmp, "py.db"))
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.executescript(open(MIGRATION).read())
    db.execute("INSERT INTO metrics (key, name, kind, value_type, unit, direction, layer, created_at) "
               "VALUES ('m', 'm', 'kpi', 'continuous', '', 'higher_is_better', 'business', '2026-01-01')")
    db.execute("INSERT INTO experiments (key, name, hypothesis, sli_metric_id, created_at) VALUES ('e', 'e', 'h', 1, '2026-01-01')")
    db.commit()
    # one metric id per metric name keeps the primary key unique, as in the service
    params = [(1, u, METRICS.index(m) + 1, "post", v, None) for u, m, v in rows]
    for i in range(2, len(METRICS) + 1):
        db.execute("INSERT INTO metrics (key, name, kind, value_type, unit, direction, layer, created_at) "
                   f"VALUES ('m{i}', 'm', 'kpi', 'continuous', '', 'higher_is_better', 'business', '2026-01-01')")
    db.commit()
    start = time.perf_counter()
    db.executemany("INSERT INTO observations (experiment_id, unit_id, metric_id, period, value, observed_at) "
                   "VALUES (?, ?, ?, ?, ?, ?)", params)
    db.commit()
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    rows = make_rows(args.rows)
    elapsed, size, peak = bench_service(rows)
    print(f"sloproof NDJSON over HTTP into SQLite: {len(rows)} rows ({size / 1e6:.1f} MB) in {elapsed:.2f} s "
          f"= {len(rows) / elapsed:,.0f} rows/s; server peak RSS {peak:.0f} MB")
    py = bench_executemany(rows)
    print(f"Python sqlite3.executemany, same table: {len(rows)} rows in {py:.2f} s = {len(rows) / py:,.0f} rows/s")


if __name__ == "__main__":
    main()
