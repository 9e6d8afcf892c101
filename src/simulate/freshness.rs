//! The `marketing-freshness` scenario: ads ranked with user-profile features that a pipeline
//! delays, so the features are staler and ads less relevant; the KPI is click-through rate, a
//! ratio metric (clicks / impressions per user).
//!
//! Data-generating process, per unit i (a user over the experiment):
//! - arm a(i) uniformly among control (dose 0), `delay-10min` (+10) and `delay-30min` (+30);
//! - a baseline feature age bᵢ ~ LogNormal(ln 5, 0.6) minutes (median 5, heavy right tail) and
//!   a click propensity πᵢ ~ LogNormal(−s²/2, s), s = 0.5 (mean 1), shared by the pre and post
//!   periods;
//! - the SLI `profile_feature_freshness_min` is the unit's mean feature age when served,
//!   xᵢ = bᵢ·εᵢ + dₐ with εᵢ ~ LogNormal(−0.1²/2, 0.1), rounded to 0.1 minute (lower is better);
//! - impressions nᵢ = 1 + Poisson(λᵢ), λᵢ ~ LogNormal(ln 15, 0.8) (a few heavy users), and
//!   clicks ~ Binomial(nᵢ, clamp(p₀·πᵢ·(1 − r·(xᵢ − 5)/10), 0, 1)) with p₀ = 0.04 and
//!   r = |effect| (`--effect-per-100ms`, default 0.05): each +10 minutes of staleness costs r
//!   of the click-through rate, relative;
//! - the KPI `ad_ctr` is the ratio metric Σ clicks / Σ impressions (parts `ad_clicks_v2` and
//!   `ad_impressions_v2`, uploaded per unit).
//!
//! So the true slope of the CTR on freshness is −p₀·r/10 per minute (−0.0002 at r = 0.05):
//! πᵢ and nᵢ are independent of xᵢ, so Σ nᵢ·p(xᵢ) / Σ nᵢ is linear in the arm's mean age.

use rand_distr::{Binomial, Distribution, LogNormal, Poisson};
use serde_json::{json, Value};

use super::shares::{build, Design};
use super::{SimConfig, Simulated};

const BASE_CTR: f64 = 0.04;
const MEDIAN_AGE_MIN: f64 = 5.0;

/// Catalog entries of the scenario: the ratio's parts before the ratio.
pub fn metrics() -> Vec<Value> {
    vec![
        json!({"key": "ad_clicks_v2", "name": "Ad clicks", "kind": "kpi", "value_type": "count",
               "unit": "clicks", "direction": "higher_is_better", "layer": "business"}),
        json!({"key": "ad_impressions_v2", "name": "Ad impressions", "kind": "kpi", "value_type": "count",
               "unit": "impressions", "direction": "higher_is_better", "layer": "business"}),
        json!({"key": "ad_ctr", "name": "Ad click-through rate", "kind": "kpi", "value_type": "ratio",
               "unit": "clicks per impression", "direction": "higher_is_better", "layer": "business",
               "ratio": {"numerator": "ad_clicks_v2", "denominator": "ad_impressions_v2"}}),
        json!({"key": "profile_feature_freshness_min", "name": "Profile feature freshness", "kind": "sli",
               "value_type": "continuous", "unit": "min", "direction": "lower_is_better", "layer": "platform",
               "parents": ["ad_ctr"]}),
    ]
}

/// Generates the scenario (see the module doc).
pub fn generate(c: &SimConfig) -> anyhow::Result<Simulated> {
    let r = c.effect_per_100ms.abs();
    let age = LogNormal::new(MEDIAN_AGE_MIN.ln(), 0.6)?;
    let jitter = LogNormal::new(-0.005, 0.1)?;
    let s = 0.5f64;
    let propensity = LogNormal::new(-s * s / 2.0, s)?;
    let activity = LogNormal::new(15f64.ln(), 0.8)?;
    let design = Design {
        key: "marketing-freshness-sim",
        name: "Profile feature freshness (simulated)",
        hypothesis:
            "Staler profile features make ads less relevant and lower the click-through rate",
        journey: "feature pipeline → ad ranking → click",
        sli: "profile_feature_freshness_min",
        kpis: &["ad_ctr"],
        arms: &[
            ("control", 0.0),
            ("delay-10min", 10.0),
            ("delay-30min", 30.0),
        ],
        metrics: metrics(),
        true_slope: -BASE_CTR * r / 10.0,
    };
    build(
        c,
        design,
        |rng| Ok((age.sample(rng), propensity.sample(rng))),
        |rng, &(b, pi), dose| {
            let x = ((b * jitter.sample(rng) + dose) * 10.0).round() / 10.0;
            let n = 1 + Poisson::new(activity.sample(rng))?.sample(rng) as u64;
            let p = (BASE_CTR * pi * (1.0 - r * (x - MEDIAN_AGE_MIN) / 10.0)).clamp(0.0, 1.0);
            let clicks = Binomial::new(n, p)?.sample(rng);
            Ok(vec![
                ("profile_feature_freshness_min", x),
                ("ad_clicks_v2", clicks as f64),
                ("ad_impressions_v2", n as f64),
            ])
        },
    )
}
