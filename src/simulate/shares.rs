//! What the scenarios whose SLI is a share of good events have in common: three arms that
//! lower the share by a dose, units with a latent state shared by the pre and post periods,
//! the share drawn from a binomial number of events, and the rows to upload.

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Poisson};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::{json, Value};

use super::{assignment_row, SimConfig, Simulated};

/// A scenario's experiment, besides its data.
pub(super) struct Design {
    /// Experiment key when `--key` keeps the latency default.
    pub key: &'static str,
    pub name: &'static str,
    pub hypothesis: &'static str,
    pub journey: &'static str,
    pub sli: &'static str,
    pub kpis: &'static [&'static str],
    /// Arm keys and doses (control first, dose 0).
    pub arms: &'static [(&'static str, f64)],
    pub metrics: Vec<Value>,
    /// The true slope reported in [`Simulated::true_conversion_slope`] (see each scenario).
    pub true_slope: f64,
}

/// The share of `1 + Poisson(mean − 1)` events that are good with probability `p`, rounded to
/// 4 decimals (as an exporter would write it), and the number of events.
pub(super) fn share(rng: &mut Xoshiro256PlusPlus, mean: f64, p: f64) -> anyhow::Result<(f64, u64)> {
    let n = 1 + Poisson::new(mean - 1.0)?.sample(rng) as u64;
    let p = p.clamp(0.0, 1.0);
    let good = (0..n).filter(|_| rng.random::<f64>() < p).count();
    Ok(((good as f64 / n as f64 * 10_000.0).round() / 10_000.0, n))
}

/// Generates units: each gets an arm, a latent state from `latent`, and per period the
/// `(metric, value)` rows `outcome` gives for its dose (0 in the pre period).
pub(super) fn build<L>(
    c: &SimConfig,
    d: Design,
    latent: impl Fn(&mut Xoshiro256PlusPlus) -> anyhow::Result<L>,
    outcome: impl Fn(&mut Xoshiro256PlusPlus, &L, f64) -> anyhow::Result<Vec<(&'static str, f64)>>,
) -> anyhow::Result<Simulated> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(c.seed);
    let mut assignments = String::with_capacity(c.units * 64);
    let mut observations = String::with_capacity(c.units * 400);
    for i in 0..c.units {
        let arm = rng.random_range(0..d.arms.len());
        // Unit ids as production tools write them: a space and a non-ASCII letter.
        let unit = format!("user {i:07}-é");
        let last = arm == d.arms.len() - 1;
        if !(last && c.drop_share > 0.0 && rng.random::<f64>() < c.drop_share) {
            assignment_row(&mut assignments, &unit, d.arms[arm].0, i, c.units);
        }
        let state = latent(&mut rng)?;
        let periods: &[(f64, &str)] = if c.pre_period {
            &[(1.0, ""), (0.0, ",\"period\":\"pre\"")]
        } else {
            &[(1.0, "")]
        };
        for (dosed, period) in periods {
            for (metric, v) in outcome(&mut rng, &state, dosed * d.arms[arm].1)? {
                super::observation_row(&mut observations, &unit, metric, v, period);
            }
        }
    }
    let variants: Vec<Value> = d
        .arms
        .iter()
        .map(|(key, dose)| json!({"key": key, "weight": 1.0 / d.arms.len() as f64, "control": *dose == 0.0, "dose": dose}))
        .collect();
    Ok(Simulated {
        metrics: d.metrics,
        experiment: json!({
            // The latency scenario's default key names that scenario.
            "key": if c.key == "checkout-latency-sim" { d.key } else { c.key.as_str() },
            "name": d.name, "hypothesis": d.hypothesis, "journey": d.journey,
            "sli": d.sli, "kpis": d.kpis, "variants": variants
        }),
        assignments_ndjson: assignments.into_bytes(),
        observations_ndjson: observations.into_bytes(),
        true_conversion_slope: d.true_slope,
    })
}
