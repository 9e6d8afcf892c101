#!/usr/bin/env python3
"""The whole flow through a Python client generated from openapi/openapi.json.

Generates the client with openapi-python-client (pinned in scripts/requirements-ci.txt), starts
the release binary on a loopback port with a fresh SQLite file, and runs metrics → experiment →
JSON uploads → analysis → recommendation → approval → SLO → exports through the generated code.
Every response must parse into its generated model (a model that rejects what the server sends,
e.g. an enum value the document does not declare, fails the run); the YAML exports, which the
generator leaves as raw bytes, must parse as YAML.

Usage: python3 scripts/client_flow.py [path/to/sloproof]   (CI runs it after the tests)
"""

import importlib
import math
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fail(msg):
    sys.exit(f"client flow FAILED: {msg}")


def generate_client(out):
    subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", os.path.join(ROOT, "openapi/openapi.json"),
         "--output-path", out, "--meta", "none"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sys.path.insert(0, os.path.dirname(out))
    return os.path.basename(out)


def start_server(binary, workdir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "client-flow-" + secrets.token_hex(16)
    env = dict(os.environ, SLOPROOF_ADMIN_TOKEN=token, SLOPROOF_BIND=f"127.0.0.1:{port}",
               SLOPROOF_DATABASE_URL=os.path.join(workdir, "sloproof.db"), SLOPROOF_LOG="warn")
    proc = subprocess.Popen([binary, "serve"], env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/readyz", timeout=1)
            return proc, base, token
        except OSError:
            time.sleep(0.1)
    proc.kill()
    fail("the server did not become ready")


def call(module, expected_type, status, **kwargs):
    """Calls a generated operation; the answer must have `status` and parse as `expected_type`."""
    r = module.sync_detailed(**kwargs)
    if r.status_code != status:
        fail(f"{module.__name__}: HTTP {int(r.status_code)}: {r.content[:500]!r}")
    if expected_type is not None and not isinstance(r.parsed, expected_type):
        fail(f"{module.__name__}: parsed as {type(r.parsed).__name__}, not {expected_type.__name__}")
    return r.parsed


def simulated_rows(units, seed):
    """A three-arm latency injection (+0/+100/+200 ms): log-normal latency (median 300 ms,
    sigma 0.5), conversion 10% falling 8% per +100 ms; unit ids with spaces and unicode."""
    rng = random.Random(seed)
    arms = [("control", 0.0), ("plus-100", 100.0), ("plus-200", 200.0)]
    assignments, observations = [], []
    for i in range(units):
        unit = f"user {i:06d} ü"
        arm, dose = arms[rng.randrange(3)]
        latency = round(300.0 * math.exp(rng.gauss(0.0, 0.5)) + dose, 2)
        p = max(0.0, 0.10 * (1.0 - 0.0008 * (latency - 300.0)))
        converted = 1.0 if rng.random() < min(p, 1.0) else 0.0
        assignments.append({"unit_id": unit, "variant": arm})
        observations.append({"unit_id": unit, "metric": "checkout_latency_ms", "value": latency})
        observations.append({"unit_id": unit, "metric": "checkout_conversion", "value": converted})
    return assignments, observations


def production_rows(hours, seed):
    """Histogram windows of one minute for the last `hours` whole hours: log-normal latency
    (median 320 ms, sigma 0.6), 600 requests a minute, over the metric's declared bounds."""
    rng = random.Random(seed)
    bounds = list(range(50, 2001, 50))
    end = int(time.time()) // 3600 * 3600
    rows = []
    for k in range(hours * 60):
        start = end - hours * 3600 + 60 * k
        values = [320.0 * math.exp(rng.gauss(0.0, 0.6)) for _ in range(600)]
        counts = [sum(1 for v in values if v <= b) for b in bounds]
        buckets = [{"le": b, "count": c} for b, c in zip(bounds, counts)] + [{"le": "+Inf", "count": 600}]
        rows.append({"start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)), "seconds": 60,
                     "count": 600, "sum": round(sum(values), 3), "buckets": buckets})
    return rows, end


def live_flow(c, m, api, admin, reviewer, slo, rec):
    """Past publication: production series, live status and its series, a replay, a
    re-validation, and a sync from a Prometheus that is not there (a declared 502)."""
    series, slos = api("series"), api("slos")
    rows, end = production_rows(3, 11)
    s = call(series.ingest_series, m.IngestSummary, 200, client=admin, key="checkout_latency_ms",
             body=[m.SeriesRow.from_dict(r) for r in rows])
    if s.inserted != len(rows):
        fail(f"inserted {s.inserted} of {len(rows)} windows")
    info = call(series.get_series, m.SeriesInfo, 200, client=reviewer, key="checkout_latency_ms")
    if info.windows != len(rows):
        fail(f"the series reports {info.windows} windows")
    st = call(slos.get_slo_status, m.SloLiveStatus, 200, client=reviewer, id=slo.id)
    if st.data_windows != len(rows):
        fail(f"the status saw {st.data_windows} windows")
    frm = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end - 3 * 3600))
    to = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end))
    import datetime
    parse = datetime.datetime.fromisoformat
    pts = call(slos.get_slo_status_series, m.StatusSeries, 200, client=reviewer, id=slo.id,
               from_=parse(frm.replace("Z", "+00:00")), to=parse(to.replace("Z", "+00:00")), step=600)
    if len(pts.items) != 19:
        fail(f"the status series has {len(pts.items)} points")
    call(slos.replay_recommendation, m.Replay, 200, client=reviewer, id=rec.id,
         body=m.ReplayRequest.from_dict({"from": frm, "to": to}))
    rv = call(slos.create_revalidation, m.Revalidation, 201, client=admin, id=slo.id,
              body=m.RevalidationRequest.from_dict({"experiment": "client-flow",
                                                    "analysis": {"bootstrap": {"resamples": 300, "seed": 4}}}))
    if str(rv.outcome) not in ("confirmed", "stale", "ValidationState.CONFIRMED", "ValidationState.STALE"):
        fail(f"revalidation outcome {rv.outcome}")
    call(slos.list_revalidations, m.RevalidationList, 200, client=reviewer, id=slo.id)
    call(api("metrics").create_metric, m.Metric, 201, client=admin, body=m.CreateMetric.from_dict({
        "key": "remote_latency_ms", "name": "Remote latency", "kind": "sli", "value_type": "continuous",
        "unit": "ms", "direction": "lower_is_better", "layer": "platform",
        "prometheus": {"source": {"url": "http://127.0.0.1:9", "buckets": "remote_latency_seconds_bucket"}}}))
    call(series.sync_series, m.Problem, 502, client=admin, key="remote_latency_ms",
         body=m.SyncRequest.from_dict({"from": frm}))


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/sloproof")
    with tempfile.TemporaryDirectory() as tmp:
        pkg = generate_client(os.path.join(tmp, "sloproof_flow_client"))
        c = importlib.import_module(pkg)
        m = importlib.import_module(pkg + ".models")

        class Group:
            """The operations of one tag, imported on first use."""

            def __init__(self, tag):
                self.tag = tag

            def __getattr__(self, op):
                return importlib.import_module(f"{pkg}.api.{self.tag}.{op}")

        api = Group
        metrics, experiments, ingestion = api("metrics"), api("experiments"), api("ingestion")
        analyses, slos, tokens = api("analyses"), api("slos"), api("tokens")
        proc, base, token = start_server(binary, tmp)
        try:
            admin = c.AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True,
                                          timeout=300.0)
            for body in [
                {"key": "checkout_conversion", "name": "Checkout conversion", "kind": "kpi",
                 "value_type": "binary", "unit": "", "direction": "higher_is_better", "layer": "business"},
                {"key": "checkout_latency_ms", "name": "Checkout latency", "kind": "sli",
                 "value_type": "continuous", "unit": "ms", "direction": "lower_is_better",
                 "layer": "journey", "parents": ["checkout_conversion"],
                 "prometheus": {"buckets": list(range(50, 2001, 50))}},
            ]:
                call(metrics.create_metric, m.Metric, 201, client=admin,
                     body=m.CreateMetric.from_dict(body))
            call(metrics.list_metrics, m.MetricList, 200, client=admin)
            call(experiments.create_experiment, m.Experiment, 201, client=admin,
                 body=m.CreateExperiment.from_dict({
                     "key": "client-flow", "name": "Client flow", "hypothesis": "Latency lowers conversion",
                     "sli": "checkout_latency_ms", "kpis": ["checkout_conversion"],
                     "variants": [{"key": "control", "weight": 1 / 3, "control": True, "dose": 0},
                                  {"key": "plus-100", "weight": 1 / 3, "dose": 100},
                                  {"key": "plus-200", "weight": 1 / 3, "dose": 200}]}))
            assignments, observations = simulated_rows(60_000, 7)
            s = call(ingestion.ingest_assignments, m.IngestSummary, 200, client=admin, key="client-flow",
                     body=[m.AssignmentRow.from_dict(a) for a in assignments])
            if s.inserted != len(assignments):
                fail(f"inserted {s.inserted} of {len(assignments)} assignments")
            call(ingestion.ingest_observations, m.IngestSummary, 200, client=admin, key="client-flow",
                 body=[m.ObservationRow.from_dict(o) for o in observations])
            e = call(experiments.get_experiment, m.Experiment, 200, client=admin, key="client-flow")
            if e.data.assigned_units != len(assignments):
                fail(f"experiment reports {e.data.assigned_units} units")
            a = call(analyses.create_analysis, m.Analysis, 201, client=admin, key="client-flow",
                     body=m.AnalysisRequest.from_dict({"bootstrap": {"resamples": 300, "seed": 3}}))
            if not a.verdicts[0].validated:
                fail(f"the effect was not validated: {a.summary}")
            call(analyses.get_analysis, m.Analysis, 200, client=admin, id=a.id)
            call(analyses.list_analyses, m.AnalysisList, 200, client=admin, key="client-flow")
            rec = call(slos.create_recommendation, m.Recommendation, 201, client=admin, id=a.id,
                       body=m.CreateRecommendation.from_dict({"max_relative_kpi_loss": 0.1,
                                                              "value_per_kpi_unit": 40, "units_per_day": 50000}))
            created = call(tokens.create_token, m.CreatedToken, 201, client=admin,
                           body=m.CreateToken.from_dict({"name": "pm-client", "role": "reviewer"}))
            reviewer = c.AuthenticatedClient(base_url=base, token=created.token, raise_on_unexpected_status=True)
            decided = call(slos.decide_recommendation, m.Recommendation, 200, client=reviewer, id=rec.id,
                           body=m.DecisionRequest.from_dict({"decision": "approve", "comment": "client flow"}))
            call(slos.get_recommendation_history, m.History, 200, client=reviewer, id=rec.id)
            call(slos.list_recommendations, m.RecommendationList, 200, client=reviewer)
            slo = call(slos.get_slo, m.Slo, 200, client=reviewer, id=decided.slo_id)
            call(slos.list_slos, m.SloList, 200, client=reviewer)
            call(tokens.list_tokens, m.TokenList, 200, client=admin)
            # The generator leaves YAML answers undeclared, so this client must not raise on them.
            raw = c.AuthenticatedClient(base_url=base, token=created.token)
            for op, kind in [(slos.get_slo_openslo, "SLO"), (slos.get_slo_prometheus_rules, None)]:
                r = op.sync_detailed(client=raw, id=slo.id)
                if r.status_code != 200:
                    fail(f"{op.__name__}: HTTP {int(r.status_code)}")
                doc = yaml.safe_load(r.content)
                if kind and doc.get("kind") != kind:
                    fail(f"{op.__name__}: not an OpenSLO SLO document")
                if not kind and not doc.get("groups"):
                    fail(f"{op.__name__}: no rule groups")
            live_flow(c, m, api, admin, reviewer, slo, rec)
            print(f"client flow passed: {slo.slo.statement}")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
