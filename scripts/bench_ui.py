#!/usr/bin/env python3
"""Benchmark (not a test): server-side rendering of the web pages at realistic size.

Starts the release binary on a fresh SQLite file, loads `sloproof simulate --units N`
(1,000,000 by default: 3 arms, 2 KPIs, pre-period data), analyses it (2,000 resamples), proposes
1,000 recommendations from that analysis and rejects 100 of them, signs in through the form,
then times each page over one kept-alive connection: warm-up requests, then `--requests`
timed ones; it prints the median and the 95th percentile of the wall time from the request to
the last byte (database reads, rendering, charts and transfer over loopback).

Pages: the inbox (a page of 100 proposals and 100 decided, out of 1,000), a recommendation
(dose-response chart, cost, evidence, history), the analysis page of the N-unit analysis
(forest plot, a dose-response chart per KPI, every table), the experiment page and the SLO
list.

Usage: cargo build --release && python3 scripts/bench_ui.py [--units N] [--requests R]
"""
import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "sloproof")
TOKEN = "bench-admin-token-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One kept-alive connection with a cookie jar of its own."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
        self.cookies = {}

    def send(self, method, path, body=None, headers=None):
        h = dict(headers or {})
        if self.cookies:
            h["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        self.conn.request(method, path, body=body, headers=h)
        r = self.conn.getresponse()
        data = r.read()
        for c in r.headers.get_all("set-cookie") or []:
            k, v = c.split(";", 1)[0].split("=", 1)
            self.cookies[k] = v
        return r.status, data

    def api(self, method, path, payload):
        status, data = self.send(method, f"/api/v1{path}", json.dumps(payload).encode(),
                                 {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"})
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {data[:300]!r}")
        return json.loads(data)


def sign_in(c):
    status, form = c.send("GET", "/ui/sign-in")
    csrf = re.search(rb'name="csrf" value="([^"]+)"', form).group(1).decode()
    body = urllib.parse.urlencode({"token": TOKEN, "csrf": csrf}).encode()
    status, _ = c.send("POST", "/ui/sign-in", body, {"content-type": "application/x-www-form-urlencoded"})
    assert status == 303, status


def time_page(c, path, warmup, requests):
    for _ in range(warmup):
        status, body = c.send("GET", path)
        assert status == 200, (path, status, body[:300])
    times = []
    size = 0
    for _ in range(requests):
        t = time.perf_counter()
        status, body = c.send("GET", path)
        times.append((time.perf_counter() - t) * 1000)
        assert status == 200, (path, status)
        size = len(body)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return statistics.median(times), p95, size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=1_000_000)
    ap.add_argument("--recommendations", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--effect-per-100ms", default="-0.02", help="relative KPI change per +100 ms (validated at 1M units)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    port = free_port()
    env = dict(os.environ, SLOPROOF_DATABASE_URL=os.path.join(tmp, "bench.db"), SLOPROOF_BIND=f"127.0.0.1:{port}",
               SLOPROOF_LOG="warn", SLOPROOF_ADMIN_TOKEN=TOKEN, SLOPROOF_WRITE_RATE="0")
    server = subprocess.Popen([BINARY, "serve"], env=env)
    try:
        time.sleep(1)
        api = f"http://127.0.0.1:{port}"
        t = time.perf_counter()
        subprocess.run([BINARY, "simulate", "--api", api, "--token", TOKEN, "--units", str(args.units),
                        "--key", "bench_ui_1m", "--effect-per-100ms", args.effect_per_100ms], check=True, stdout=subprocess.DEVNULL)
        c = Client(port)
        analysis = c.api("POST", "/experiments/bench_ui_1m/analyses", {"bootstrap": {"seed": 1}})
        units = sum(analysis["sample_ratio"]["observed"])
        print(f"loaded and analysed {units:,} units in {time.perf_counter() - t:.0f} s")
        ids = []
        # Losses that tolerate 50–100 ms of degradation at the simulated effect.
        base = abs(float(args.effect_per_100ms)) / 2
        for i in range(args.recommendations):
            r = c.api("POST", f"/analyses/{analysis['id']}/recommendations",
                      {"max_relative_kpi_loss": min(0.5, base * (1 + i / args.recommendations)), "value_per_kpi_unit": 40, "currency": "USD",
                       "units_per_day": 2e5})
            ids.append(r["id"])
        for rid in ids[: args.recommendations // 10]:
            c.api("POST", f"/recommendations/{rid}/decision", {"decision": "reject", "comment": "bench"})
        sign_in(c)
        pages = [
            (f"inbox ({args.recommendations:,} recommendations)", "/ui/recommendations"),
            ("recommendation", f"/ui/recommendations/{ids[-1]}"),
            (f"analysis ({units:,} units)", f"/ui/analyses/{analysis['id']}"),
            ("experiment", "/ui/experiments/bench_ui_1m"),
            ("SLO list", "/ui/slos"),
        ]
        print(f"{'page':<40} {'median ms':>10} {'p95 ms':>8} {'KiB':>7}")
        for name, path in pages:
            median, p95, size = time_page(c, path, 5, args.requests)
            print(f"{name:<40} {median:>10.2f} {p95:>8.2f} {size / 1024:>7.0f}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
