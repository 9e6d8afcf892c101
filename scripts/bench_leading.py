#!/usr/bin/env python3
"""Times GET /api/v1/metrics/{key}/leading-indicators on a running sloproof at its limits: one
target and six upstream SLIs with 50,000 one-minute event windows each (about 35 days).

    SLOPROOF_ADMIN_TOKEN=bench_token_0123456789 SLOPROOF_DATABASE_URL=/tmp/bench.db \\
        SLOPROOF_BIND=127.0.0.1:18181 target/release/sloproof serve &
    python3 scripts/bench_leading.py http://127.0.0.1:18181 bench_token_0123456789

Prints the seconds each query took (client side) and its summary. A benchmark, not a test.
"""
import json
import math
import random
import sys
import time
import urllib.error
import urllib.request

BASE, TOKEN = sys.argv[1], sys.argv[2]
API = BASE + "/api/v1"
HEADERS = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
N, START = 50_000, 1_790_000_000 - 1_790_000_000 % 60


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(API + path, data=data, headers=HEADERS, method=method)
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def sli(key, parents):
    call("POST", "/metrics", {"key": key, "name": key, "kind": "sli", "value_type": "continuous",
                              "unit": "", "direction": "higher_is_better", "layer": "platform",
                              "parents": parents})


def post(key, values):
    for off in range(0, N, 10_000):
        rows = [{"start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START + 60 * i)),
                 "seconds": 60, "good": v, "total": 1}
                for i, v in list(enumerate(values))[off:off + 10_000]]
        status, body = call("POST", f"/metrics/{key}/series", rows)
        assert status == 200, body[:300]


random.seed(1)
sli("target_1", [])
post("target_1", [min(1, max(0, 0.5 + 0.1 * math.sin(i / 50) + random.gauss(0, 0.05))) for i in range(N)])
for c in range(6):
    sli(f"cand_{c}", ["target_1"])
    post(f"cand_{c}", [min(1, max(0, 0.5 + random.gauss(0, 0.1))) for _ in range(N)])
frm = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START))
for q in ("max_lag=60m&candidates=cand_0", "max_lag=120m&candidates=cand_0", "max_lag=60m", "max_lag=120m"):
    t0 = time.monotonic()
    status, body = call("GET", f"/metrics/target_1/leading-indicators?{q}&from={frm}")
    doc = json.loads(body)
    print(f"{q}: {time.monotonic() - t0:.2f} s, {status}: {doc.get('summary') or doc.get('errors')}")
