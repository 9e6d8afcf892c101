#!/usr/bin/env python3
"""Benchmark (not a test): ingest 1,000,000 observations over HTTP as NDJSON into SQLite or PostgreSQL.

Starts the release binary on a fresh database, creates a catalog and an experiment, posts
1,000,000 NDJSON observation rows in one request and prints rows/s. For comparison it then
inserts the same rows with Python's sqlite3.executemany into the same tables (created by the
same migration SQL, same pragmas: the units numbered, then the rows), or on PostgreSQL with
psql's \\copy of the same units and rows as CSV into the service's own tables (a second
experiment), and prints that rate too.

Usage: cargo build --release && python3 scripts/bench_ingest.py [--rows N]
           [--postgres postgres://USER:PASSWORD@HOST:PORT/DB]  (a role that may create databases;
            the benchmark creates and drops a database of its own)
Only the Python standard library (and psql for PostgreSQL) is needed.
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
MIGRATIONS = os.path.join(ROOT, "migrations", "sqlite")
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


def bench_service(rows, database_url):
    port = free_port()
    env = dict(os.environ, SLOPROOF_DATABASE_URL=database_url,
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
        start = time.perf_counter()
        again = request(port, "POST", "/api/v1/experiments/bench/observations", body, "application/x-ndjson")
        resent = time.perf_counter() - start
        assert again["duplicates"] == len(rows), again
        return elapsed, resent, len(body), peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait()


def bench_executemany(rows):
    tmp = tempfile.mkdtemp()
    db = sqlite3.connect(os.path.join(tmp, "py.db"))
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    for name in sorted(os.listdir(MIGRATIONS)):
        db.executescript(open(os.path.join(MIGRATIONS, name, "up.sql")).read())
    db.execute("INSERT INTO metrics (key, name, kind, value_type, unit, direction, layer, created_at) "
               "VALUES ('m', 'm', 'kpi', 'continuous', '', 'higher_is_better', 'business', '2026-01-01')")
    db.execute("INSERT INTO experiments (key, name, hypothesis, sli_metric_id, created_at) VALUES ('e', 'e', 'h', 1, '2026-01-01')")
    db.commit()
    # one metric id per metric name keeps the primary key unique, as in the service
    numbers = {}
    for u, _, _ in rows:
        numbers.setdefault(u, len(numbers) + 1)
    params = [(1, numbers[u], METRICS.index(m) + 1, "post", v, None) for u, m, v in rows]
    for i in range(2, len(METRICS) + 1):
        db.execute("INSERT INTO metrics (key, name, kind, value_type, unit, direction, layer, created_at) "
                   f"VALUES ('m{i}', 'm', 'kpi', 'continuous', '', 'higher_is_better', 'business', '2026-01-01')")
    db.commit()
    start = time.perf_counter()
    db.executemany("INSERT INTO units (experiment_id, id, key) VALUES (1, ?, ?)",
                   [(n, u) for u, n in numbers.items()])
    db.executemany("INSERT INTO observations (experiment_id, unit_id, metric_id, period, value, observed_at) "
                   "VALUES (?, ?, ?, ?, ?, ?)", params)
    db.commit()
    return time.perf_counter() - start


def psql(url, *args, stdin=None):
    subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-q", url, *args], input=stdin, check=True)


def bench_psql_copy(rows, url):
    """psql's \\copy of the same units and rows, as CSV, into the tables the service created."""
    psql(url, "-c", "INSERT INTO experiments (key, name, hypothesis, sli_metric_id, created_at) "
                    "SELECT 'copy', 'copy', 'h', sli_metric_id, created_at FROM experiments WHERE key = 'bench'")
    ids = subprocess.run(["psql", "-tA", url, "-c", "SELECT key, id FROM metrics"], capture_output=True,
                         text=True, check=True).stdout.split()
    metric = dict(line.split("|") for line in ids)
    copy = ("\\copy observations (experiment_id, unit_id, metric_id, period, value) FROM STDIN "
            "WITH (FORMAT csv)")
    # the 'copy' experiment has the largest id; COPY cannot fill a constant column, so it is sent per row
    exp = subprocess.run(["psql", "-tA", url, "-c", "SELECT max(id) FROM experiments"], capture_output=True,
                         text=True, check=True).stdout.strip()
    numbers = {}
    for u, _, _ in rows:
        numbers.setdefault(u, len(numbers) + 1)
    units = "".join(f"{exp},{n},{u}\n" for u, n in numbers.items()).encode()
    csv = "".join(f"{exp},{numbers[u]},{metric[m]},post,{v!r}\n" for u, m, v in rows).encode()
    start = time.perf_counter()
    psql(url, "-c", "\\copy units (experiment_id, id, key) FROM STDIN WITH (FORMAT csv)", stdin=units)
    psql(url, "-c", copy, stdin=csv)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--postgres", help="admin URL of a PostgreSQL role that may create databases")
    args = ap.parse_args()
    rows = make_rows(args.rows)
    if args.postgres:
        base, _, _ = args.postgres.rpartition("/")
        name = f"sloproof_bench_{os.getpid()}"
        psql(args.postgres, "-c", f"CREATE DATABASE {name}")
        url = f"{base}/{name}?sslmode=disable"
        try:
            elapsed, resent, size, peak = bench_service(rows, url)
            py = bench_psql_copy(rows, url)
        finally:
            psql(args.postgres, "-c", f"DROP DATABASE {name}")
        backend, reference = "PostgreSQL", "psql \\copy (CSV), same table"
    else:
        elapsed, resent, size, peak = bench_service(rows, os.path.join(tempfile.mkdtemp(), "bench.db"))
        py = bench_executemany(rows)
        backend, reference = "SQLite", "Python sqlite3.executemany, same table"
    print(f"sloproof NDJSON over HTTP into {backend}: {len(rows)} rows ({size / 1e6:.1f} MB) in {elapsed:.2f} s "
          f"= {len(rows) / elapsed:,.0f} rows/s; the same upload again (all duplicates) {resent:.2f} s; "
          f"server peak RSS {peak:.0f} MB")
    print(f"{reference}: {len(rows)} rows in {py:.2f} s = {len(rows) / py:,.0f} rows/s")


if __name__ == "__main__":
    main()
