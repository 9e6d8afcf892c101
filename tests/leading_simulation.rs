//! Leading indicators by simulation, with fixed seeds: how often `leads` is reported when
//! nothing leads — unrelated persistent series with t(4) and t(1.5) shocks, independent and
//! shared random-walk stochastic volatility, a shared daily variance cycle, a shared signal
//! measured more sharply, a follower — and how often a known lead is found where it is.
//!
//! The decision is the robust max test over lags 1 … K (`stats::robust_ccf`), Holm-corrected
//! across the candidates (`analysis::leading`). Each null rate must stay within 5% plus two Monte-Carlo
//! standard errors of its runs; `cargo test --test leading_simulation -- --nocapture` prints
//! the rates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

#[path = "support/sim.rs"]
mod sim;

use rand_distr::{Distribution, StandardNormal, StudentT};
use rand_xoshiro::Xoshiro256PlusPlus;
use sim::{normal, rng, within};
use sloproof::analysis::leading::{analyse, GridSeries, LeadStatus, LeadingIndicator};

/// One-minute windows from 0.
fn grid(key: &str, v: &[f64]) -> GridSeries {
    GridSeries {
        key: key.to_owned(),
        statistic: "p95".to_owned(),
        points: v
            .iter()
            .enumerate()
            .map(|(i, x)| (60 * i as i64, *x))
            .collect(),
    }
}

/// The target against the candidates, lags 1 … `max_lag`, alpha 0.05.
fn run(y: &[f64], candidates: &[&[f64]], max_lag: usize) -> Vec<LeadingIndicator> {
    let cands: Vec<GridSeries> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| grid(&format!("c{i}"), c))
        .collect();
    analyse(&grid("y", y), &cands, 60, max_lag, 0.05)
}

fn any_leads(out: &[LeadingIndicator]) -> bool {
    out.iter().any(|l| l.status == LeadStatus::Leads)
}

/// A random walk whose steps are AR(1) (0.6) with the shocks drawn by `shock`.
fn persistent(n: usize, mut shock: impl FnMut() -> f64) -> Vec<f64> {
    let (mut level, mut step) = (0.0, 0.0);
    (0..n)
        .map(|_| {
            step = 0.6 * step + shock();
            level += step;
            level
        })
        .collect()
}

fn t_shocks(r: &mut Xoshiro256PlusPlus, n: usize, dof: f64) -> Vec<f64> {
    let t = StudentT::new(dof).unwrap();
    (0..n).map(|_| t.sample(r)).collect()
}

/// A log-volatility random walk: hₜ = hₜ₋₁ + 0.1·N(0, 1), from 0.
fn log_volatility(r: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f64> {
    let mut h = 0.0;
    (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(r);
            h += 0.1 * z;
            h
        })
        .collect()
}

/// The accepted range of a null rate over `trials` runs: 0 to 5% plus two standard errors.
fn level_bound(trials: usize) -> f64 {
    0.05 + 2.0 * (0.05 * 0.95 / trials as f64).sqrt()
}

/// Unrelated persistent series (t(4) shocks, two candidates, 20 lags) are reported as leading
/// at most at the level; a 7-window lead buried in noise three times the candidate's step is
/// found at 7 in nearly every run.
#[test]
fn the_lead_test_holds_its_level_and_finds_a_known_lead() {
    let mut r = rng(20261130);
    let n = 600;
    let trials = 400;
    let (mut reported, mut found) = (0, 0);
    for _ in 0..trials {
        let mut draws = t_shocks(&mut r, 3 * n, 4.0).into_iter();
        let y = persistent(n, || draws.next().unwrap());
        let a = persistent(n, || draws.next().unwrap());
        let b = persistent(n, || draws.next().unwrap());
        if any_leads(&run(&y, &[&a, &b], 20)) {
            reported += 1;
        }
        let noise = normal(&mut r, n, 0.0, 3.0);
        let mut y2 = vec![0.0; n];
        for t in 1..n {
            let push = if t >= 8 { a[t - 7] - a[t - 8] } else { 0.0 };
            y2[t] = y2[t - 1] + push + noise[t];
        }
        let out = run(&y2, &[&a], 20);
        if out[0].status == LeadStatus::Leads && out[0].lead_windows == Some(7) {
            found += 1;
        }
    }
    let rate = |k: usize| k as f64 / trials as f64;
    within(
        "leads reported, unrelated series",
        rate(reported),
        0.0,
        level_bound(trials),
    );
    within("known lead found at 7 windows", rate(found), 0.9, 1.0);
}

/// The nulls that broke the earlier decision (a Bonferroni-corrected single-lag regression test
/// with HC1 errors: 8% and 7.5%): changes with t(1.5) shocks
/// (infinite variance) at 60 lags, and random-walk stochastic volatility at 10 lags, both
/// independent per series and shared by the two (as traffic moves every SLI's noise).
#[test]
fn the_lead_test_holds_its_level_under_heavy_tails_and_changing_volatility() {
    let mut r = rng(20261205);
    let n = 600;
    let trials = 400;
    let mut leads = [0usize; 3];
    for _ in 0..trials {
        let mut draws = t_shocks(&mut r, 2 * n, 1.5).into_iter();
        let y = persistent(n, || draws.next().unwrap());
        let x = persistent(n, || draws.next().unwrap());
        leads[0] += usize::from(any_leads(&run(&y, &[&x], 60)));

        let (hy, hx) = (log_volatility(&mut r, n), log_volatility(&mut r, n));
        let (ey, ex) = (normal(&mut r, n, 0.0, 1.0), normal(&mut r, n, 0.0, 1.0));
        let walk = |h: &[f64], e: &[f64]| {
            let mut it = h.iter().zip(e).map(|(h, e)| h.exp() * e);
            persistent(n, || it.next().unwrap())
        };
        leads[1] += usize::from(any_leads(&run(&walk(&hy, &ey), &[&walk(&hx, &ex)], 10)));
        leads[2] += usize::from(any_leads(&run(&walk(&hy, &ey), &[&walk(&hy, &ex)], 10)));
    }
    let bound = level_bound(trials);
    let rate = |k: usize| leads[k] as f64 / trials as f64;
    within("leads, t(1.5) shocks, 60 lags", rate(0), 0.0, bound);
    within(
        "leads, independent stochastic volatility",
        rate(1),
        0.0,
        bound,
    );
    within("leads, shared stochastic volatility", rate(2), 0.0, bound);
}

/// The nulls real SLIs produce: independent series whose changes share a daily variance cycle
/// (3 times the spread at peak, as percentiles' noise follows traffic); a shared signal the
/// candidate measures with less noise than the target, with no lead; the same with AR(1)
/// (0.9) changes and a target twenty times noisier, over 2,000 windows and 60 lags (a target
/// whitened by its own AR "followed" the candidate here in over half the runs); and a
/// candidate that follows the target by 3 windows.
#[test]
fn the_lead_test_is_not_fooled_by_traffic_shared_signals_or_followers() {
    let mut r = rng(20261201);
    let n = 600;
    let cycle = |t: usize| 2.0 + (2.0 * std::f64::consts::PI * t as f64 / 200.0).sin();
    let trials = 300;
    let mut leads = [0usize; 4];
    for _ in 0..trials {
        let long = 2000;
        let (shock, ny, nx) = (
            normal(&mut r, long, 0.0, 1.0),
            normal(&mut r, long, 0.0, 5.0),
            normal(&mut r, long, 0.0, 0.25),
        );
        let (mut step, mut level) = (0.0, 0.0);
        let signal: Vec<f64> = shock
            .iter()
            .map(|e| {
                step = 0.9 * step + e;
                level += step;
                level
            })
            .collect();
        let noisy: Vec<f64> = signal.iter().zip(&ny).map(|(s, e)| s + e).collect();
        let sharp: Vec<f64> = signal.iter().zip(&nx).map(|(s, e)| s + e).collect();
        leads[3] += usize::from(any_leads(&run(&noisy, &[&sharp], 60)));
        let e = normal(&mut r, 3 * n, 0.0, 1.0);
        let walk = |off: usize| {
            let mut level = 0.0;
            (0..n)
                .map(|t| {
                    level += cycle(t) * e[off + t];
                    level
                })
                .collect::<Vec<f64>>()
        };
        let (y, x) = (walk(0), walk(n));
        let mut s = vec![0.0; n];
        for t in 1..n {
            s[t] = 0.95 * s[t - 1] + e[2 * n + t];
        }
        let (ny, nx) = (normal(&mut r, n, 0.0, 1.0), normal(&mut r, n, 0.0, 0.25));
        let target: Vec<f64> = (0..n).map(|t| s[t] + ny[t]).collect();
        let sharp: Vec<f64> = (0..n).map(|t| s[t] + nx[t]).collect();
        let follower: Vec<f64> = (0..n)
            .map(|t| if t >= 3 { target[t - 3] } else { 0.0 } + nx[t])
            .collect();
        for (i, (a, b)) in [(&y, &x), (&target, &sharp), (&target, &follower)]
            .iter()
            .enumerate()
        {
            leads[i] += usize::from(any_leads(&run(a, &[b], 20)));
        }
    }
    let bound = level_bound(trials);
    let rate = |k: usize| leads[k] as f64 / trials as f64;
    within(
        "leads, series sharing a variance cycle",
        rate(0),
        0.0,
        bound,
    );
    within(
        "leads, a shared signal measured more sharply",
        rate(1),
        0.0,
        bound,
    );
    within(
        "leads, a candidate 3 windows behind the target",
        rate(2),
        0.0,
        bound,
    );
    within(
        "leads, a persistent shared signal under a noisy target",
        rate(3),
        0.0,
        bound,
    );
}

/// The target against the candidates on a grid of `step` seconds.
fn run_step(y: &[f64], candidates: &[&[f64]], max_lag: usize, step: i64) -> Vec<LeadingIndicator> {
    let at = |key: &str, v: &[f64]| GridSeries {
        key: key.to_owned(),
        statistic: "p95".to_owned(),
        points: v
            .iter()
            .enumerate()
            .map(|(i, x)| (step * i as i64, *x))
            .collect(),
    };
    let cands: Vec<GridSeries> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| at(&format!("c{i}"), c))
        .collect();
    analyse(&at("y", y), &cands, step, max_lag, 0.05)
}

/// The nulls a normal approximation gets wrong (a reviewer's replication: 11–14% and up to
/// 100% significant): skewed changes — AR(0.6) steps with centred log-normal (σ = 1) shocks,
/// 2,000 windows, 20 lags — and two independent daily profiles (two harmonics with random
/// phases, strong next to their noise) on 5-minute windows over 10 days, 60 lags. The block
/// shuffles calibrate both: the profiles' blocks are whole days, so each shuffle keeps the
/// time of day aligned. Neither may be significant (`leads` or `coincident`) more often than
/// the level allows.
#[test]
fn the_lead_test_holds_its_level_under_skew_and_daily_profiles() {
    use rand::Rng;
    use rand_distr::LogNormal;
    let mut r = rng(20261207);
    let trials = 200;
    let mut significant = [0usize; 2];
    // The same decisions by the Šidák p-value (normal z's), to show the nulls bite.
    let mut normal_theory = [0usize; 2];
    let sidak = |out: &[LeadingIndicator]| {
        out.iter()
            .any(|l| l.lead_test.as_ref().is_some_and(|t| t.p_lead_sidak < 0.05))
    };
    let ln = LogNormal::new(0.0, 1.0).unwrap();
    let mean = 0.5f64.exp();
    let flagged = |out: &[LeadingIndicator]| {
        out.iter()
            .any(|l| matches!(l.status, LeadStatus::Leads | LeadStatus::Coincident))
    };
    for _ in 0..trials {
        let mut draws: Vec<f64> = (0..4000).map(|_| ln.sample(&mut r) - mean).collect();
        let x = persistent(2000, || draws.pop().unwrap());
        let y = persistent(2000, || draws.pop().unwrap());
        let out = run(&y, &[&x], 20);
        significant[0] += usize::from(flagged(&out));
        normal_theory[0] += usize::from(sidak(&out));

        let day = 288;
        let n = 10 * day;
        let mut profile = || {
            let (p1, p2): (f64, f64) = (r.random::<f64>(), r.random::<f64>());
            // A random walk whose steps are about as large as the profile's (its changes are
            // then about a third profile).
            let mut walk = 0.0;
            let noise: Vec<f64> = normal(&mut r, n, 0.0, 0.02)
                .into_iter()
                .map(|e| {
                    walk += e;
                    walk
                })
                .collect();
            (0..n)
                .map(|t| {
                    let phase = std::f64::consts::TAU * (t % day) as f64 / day as f64;
                    (phase + p1 * std::f64::consts::TAU).sin()
                        + 0.5 * (2.0 * phase + p2 * std::f64::consts::TAU).sin()
                        + noise[t]
                })
                .collect::<Vec<f64>>()
        };
        let (a, b) = (profile(), profile());
        let out = run_step(&a, &[&b], 60, 300);
        significant[1] += usize::from(flagged(&out));
        normal_theory[1] += usize::from(sidak(&out));
    }
    let bound = level_bound(trials);
    let rate = |k: usize| significant[k] as f64 / trials as f64;
    within(
        "significant, skewed (log-normal) changes",
        rate(0),
        0.0,
        bound,
    );
    within(
        "significant, independent daily profiles",
        rate(1),
        0.0,
        bound,
    );
    let rate = |k: usize| normal_theory[k] as f64 / trials as f64;
    within("Šidák p < 0.05, skewed changes", rate(0), 0.08, 1.0);
    within(
        "Šidák p < 0.05, independent daily profiles",
        rate(1),
        0.2,
        1.0,
    );
}
