//! The `moderation-precision` scenario: a hate-speech classifier loosened in two arms, so more
//! of its flags hit users who did nothing wrong.
//!
//! Data-generating process, per unit i (a user flagged at least once during the experiment):
//! - arm a(i) uniformly among control (dose 0), `looser-0.5` (−0.05: five points less
//!   precision) and `looser-0.4` (−0.10);
//! - a baseline precision πᵢ ~ Beta(18, 2) (mean 0.90), shared by the pre and post periods;
//! - nᵢ = 1 + Poisson(2) flags, of which Binomial(nᵢ, clamp(πᵢ + dₐ, 0, 1)) are correct; the
//!   SLI `hate_flag_precision` is the correct share (higher is better);
//! - 30-day retention ~ Bernoulli(0.60 · (1 + sᵢ − 0.90)) (in [0.06, 0.66]): every wrong flag
//!   drives users away (`retention_30d`, binary, higher is better). `--effect-per-100ms` does
//!   not apply.
//!
//! So the true slope of retention on precision is 0.60 per unit of share (0.006 per point),
//! the same at every precision (a kink would make the arms depart from a line, which the
//! analysis's linearity test detects and a recommendation then refuses).

use rand::Rng;
use rand_distr::{Beta, Distribution};
use serde_json::{json, Value};

use super::shares::{build, share, Design};
use super::{SimConfig, Simulated};

/// Catalog entries of the scenario.
pub fn metrics() -> Vec<Value> {
    vec![
        json!({"key": "retention_30d", "name": "30-day retention of flagged users", "kind": "kpi",
               "value_type": "binary", "unit": "", "direction": "higher_is_better", "layer": "business"}),
        json!({"key": "hate_flag_precision", "name": "Hate-speech flag precision", "kind": "sli",
               "value_type": "continuous", "unit": "share", "direction": "higher_is_better", "layer": "platform",
               "parents": ["retention_30d"]}),
    ]
}

/// Generates the scenario (see the module doc).
pub fn generate(c: &SimConfig) -> anyhow::Result<Simulated> {
    let precision = Beta::new(18.0, 2.0)?;
    let design = Design {
        key: "moderation-precision-sim",
        name: "Looser hate-speech classifiers (simulated)",
        hypothesis: "Wrong flags drive flagged users away",
        journey: "post → review → flag",
        sli: "hate_flag_precision",
        kpis: &["retention_30d"],
        arms: &[
            ("control", 0.0),
            ("looser-0.5", -0.05),
            ("looser-0.4", -0.10),
        ],
        metrics: metrics(),
        true_slope: 0.60,
    };
    build(
        c,
        design,
        |rng| Ok(precision.sample(rng)),
        |rng, &p, dose| {
            let (s, _) = share(rng, 3.0, p + dose)?;
            let keep = 0.60 * (1.0 + s - 0.90);
            let retained = f64::from(u8::from(rng.random::<f64>() < keep));
            Ok(vec![
                ("hate_flag_precision", s),
                ("retention_30d", retained),
            ])
        },
    )
}
