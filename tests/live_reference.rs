//! Live-SLO numerics against an independent reference: tests/fixtures/stats/live.json, written
//! by `python3 scripts/reference/generate.py live` with numpy and pandas (numpy.interp over the
//! cumulative counts for shares and quantiles, a pandas time-based rolling sum for the trailing
//! SLO windows, numpy masks for ranges of evaluations) on seeded simulated histograms.
//!
//! Tolerance: 1e-9 relative for every number; counts of evaluations, their ends and whether
//! each is bad exactly.

// A failed unwrap is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use sloproof::domain::series::{SeriesKind, SeriesLayout, SeriesWindow, WindowData};
use sloproof::slo::live::{burn_rate, CostModel, Timeline};
use sloproof::slo::model::{Comparison, Evaluation, SloSpec};
use sloproof::stats::histogram::{count_at_or_below, quantile};

const REL: f64 = 1e-9;

fn fixture() -> Value {
    let path = format!(
        "{}/tests/fixtures/stats/live.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn vec(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap()
}

/// |got − want| ≤ 1e-9·|want|.
#[track_caller]
fn close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= REL * want.abs(),
        "{what}: got {got}, want {want} (rel {REL})"
    );
}

/// Both absent, or both present and close.
#[track_caller]
fn close_opt(what: &str, got: Option<f64>, want: &Value) {
    match (got, want.as_f64()) {
        (None, None) => {}
        (Some(g), Some(w)) => close(what, g, w),
        (g, _) => panic!("{what}: got {g:?}, want {want}"),
    }
}

#[test]
fn histogram_shares_and_quantiles_match_numpy_interp() {
    let data = fixture();
    let cases = data["histogram"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (bounds, cumulative, total) = (
            vec(&case["bounds"]),
            vec(&case["cumulative"]),
            f(&case["total"]),
        );
        for p in case["count_at_or_below"].as_array().unwrap() {
            let t = f(&p["t"]);
            close(
                &format!("{name}: count_at_or_below({t})"),
                count_at_or_below(&bounds, &cumulative, t),
                f(&p["value"]),
            );
        }
        for p in case["quantile"].as_array().unwrap() {
            let q = f(&p["q"]);
            close(
                &format!("{name}: quantile({q})"),
                quantile(q, &bounds, &cumulative, total),
                f(&p["value"]),
            );
        }
    }
}

/// The fixture's series: its layout and windows.
fn series(timeline: &Value) -> (SeriesLayout, Vec<SeriesWindow>) {
    let layout = SeriesLayout {
        kind: SeriesKind::Histogram,
        seconds: u32::try_from(int(&timeline["window_seconds"])).unwrap(),
        bounds: vec(&timeline["bounds"]),
    };
    let windows = timeline["windows"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, w)| SeriesWindow {
            row: i as u64 + 1,
            start: int(&w["start"]),
            data: WindowData::Histogram {
                count: f(&w["count"]),
                sum: None,
                cumulative: vec(&w["cumulative"]),
            },
        })
        .collect();
    (layout, windows)
}

fn spec(case: &Value, evaluation: Evaluation) -> SloSpec {
    let windows = evaluation == Evaluation::Windows;
    SloSpec {
        sli: "latency".to_owned(),
        sli_name: "Latency".to_owned(),
        kpi: "conversion".to_owned(),
        percentile: windows.then(|| u32::try_from(int(&case["percentile"])).unwrap()),
        comparison: Comparison::Lt,
        threshold: f(&case["threshold"]),
        unit: "ms".to_owned(),
        target: f(&case["target"]),
        window_days: 28,
        evaluation,
        window_minutes: windows.then(|| u32::try_from(int(&case["window_minutes"])).unwrap()),
        statement: "reference".to_owned(),
        baseline_share: None,
    }
}

fn cost(timeline: &Value) -> CostModel {
    CostModel {
        baseline: f(&timeline["cost"]["baseline"]),
        relative_slope: f(&timeline["cost"]["relative_kpi_change_per_unit"]).abs(),
        degradation: 50.0,
    }
}

/// Error ratios and burn rates (budget 1 − target) at the fixture's times.
fn check_ranges(what: &str, tl: &Timeline, case: &Value) {
    let budget = 1.0 - f(&case["target"]);
    for r in case["error_ratios"].as_array().unwrap() {
        let (at, seconds) = (int(&r["at"]), int(&r["seconds"]));
        let window = match seconds {
            3600 => "1h",
            21_600 => "6h",
            s => panic!("no window of {s} s"),
        };
        close_opt(
            &format!("{what}: error ratio over {window} at {at}"),
            tl.error_ratio(at, seconds),
            &r["ratio"],
        );
        close_opt(
            &format!("{what}: burn rate over {window} at {at}"),
            burn_rate(tl, at, window, budget),
            &r["burn_rate"],
        );
    }
}

#[test]
fn windows_slo_matches_pandas_rolling_evaluations() {
    let data = fixture();
    let timeline = &data["timeline"];
    let (layout, windows) = series(timeline);
    for case in timeline["windows_evaluation"].as_array().unwrap() {
        let what = format!("p95 < {} ms", f(&case["threshold"]));
        let tl = Timeline::build(
            &spec(case, Evaluation::Windows),
            &layout,
            &windows,
            &cost(timeline),
        );
        assert!(tl.notes.is_empty(), "{what}: {:?}", tl.notes);
        // Evaluation by evaluation: where, whether bad, and the window's p95.
        let ends: Vec<i64> = case["ends"].as_array().unwrap().iter().map(int).collect();
        assert_eq!(tl.t, ends, "{what}: evaluation ends");
        assert_eq!(tl.bad, vec(&case["bad_flags"]), "{what}: bad evaluations");
        for ((t, got), want) in tl.t.iter().zip(&tl.value).zip(vec(&case["p95"])) {
            close(&format!("{what}: p95 of the window ending {t}"), *got, want);
        }
        let all = tl.sums(i64::MIN, i64::MAX);
        let evaluations = usize::try_from(int(&case["evaluations"])).unwrap();
        assert_eq!(all.evaluations, evaluations, "{what}: evaluations");
        close(&format!("{what}: bad"), all.bad, f(&case["bad"]));
        close(&format!("{what}: weight"), all.weight, evaluations as f64);
        close(
            &format!("{what}: attainment"),
            1.0 - all.bad / all.weight,
            f(&case["attainment"]),
        );
        close(
            &format!("{what}: cost (loss × days)"),
            all.loss_days,
            f(&case["loss_days"]),
        );
        check_ranges(&what, &tl, case);
    }
}

#[test]
fn requests_slo_matches_numpy_sums() {
    let data = fixture();
    let timeline = &data["timeline"];
    let (layout, windows) = series(timeline);
    for case in timeline["requests_evaluation"].as_array().unwrap() {
        let what = format!("{} ms for 99% of requests", f(&case["threshold"]));
        let tl = Timeline::build(
            &spec(case, Evaluation::Requests),
            &layout,
            &windows,
            &cost(timeline),
        );
        let all = tl.sums(i64::MIN, i64::MAX);
        assert_eq!(
            all.evaluations,
            usize::try_from(int(&case["evaluations"])).unwrap(),
            "{what}: evaluations"
        );
        close(&format!("{what}: bad events"), all.bad, f(&case["bad"]));
        close(&format!("{what}: events"), all.weight, f(&case["weight"]));
        close(
            &format!("{what}: attainment"),
            1.0 - all.error_ratio().unwrap(),
            f(&case["attainment"]),
        );
        check_ranges(&what, &tl, case);
    }
}
