//! The `fraud-recall` scenario: a payment-fraud model whose decision threshold is loosened in
//! two arms, so fewer high-risk transactions are caught.
//!
//! Data-generating process, per unit i (a merchant over the experiment):
//! - arm a(i) uniformly among control (dose 0), `threshold-0.6` (−0.03: three points less
//!   recall) and `threshold-0.7` (−0.08);
//! - a baseline recall ρᵢ ~ Beta(85, 15) (mean 0.85), shared by the pre and post periods;
//! - 2,000 transactions, of which nᵢ = 1 + Poisson(19) are high-risk; Binomial(nᵢ,
//!   clamp(ρᵢ + dₐ, 0, 1)) are caught, and the SLI `fraud_recall_v2` is the caught share
//!   (higher is better);
//! - every missed fraud charges back a ticket ~ LogNormal(ln 80, 1.0) dollars (heavy-tailed:
//!   mean $132, a few in the thousands), and the KPI `chargeback_loss_per_1k` is the merchant's
//!   chargebacks per 1,000 transactions (lower is better).
//!
//! So the KPI moves mechanically with the missed share: its true slope on recall is
//! −(nᵢ's mean 20)·132/2 ≈ −1,319 dollars per 1,000 transactions per unit of recall (−13.2 per
//! point); `--effect-per-100ms` does not apply.

use rand_distr::{Beta, Distribution, LogNormal};
use serde_json::{json, Value};

use super::shares::{build, share, Design};
use super::{SimConfig, Simulated};

/// Catalog entries of the scenario.
pub fn metrics() -> Vec<Value> {
    vec![
        json!({"key": "chargeback_loss_per_1k", "name": "Chargeback loss per 1,000 transactions", "kind": "kpi",
               "value_type": "continuous", "unit": "USD", "direction": "lower_is_better", "layer": "business"}),
        json!({"key": "fraud_recall_v2", "name": "Fraud recall on high-risk transactions", "kind": "sli",
               "value_type": "continuous", "unit": "share", "direction": "higher_is_better", "layer": "platform",
               "parents": ["chargeback_loss_per_1k"]}),
    ]
}

/// Generates the scenario (see the module doc).
pub fn generate(c: &SimConfig) -> anyhow::Result<Simulated> {
    let recall = Beta::new(85.0, 15.0)?;
    let ticket = LogNormal::new(80f64.ln(), 1.0)?;
    let design = Design {
        key: "fraud-recall-sim",
        name: "Fraud decision thresholds (simulated)",
        hypothesis: "Missing more high-risk transactions raises chargeback losses",
        journey: "payment → authorisation → settlement",
        sli: "fraud_recall_v2",
        kpis: &["chargeback_loss_per_1k"],
        arms: &[
            ("control", 0.0),
            ("threshold-0.6", -0.03),
            ("threshold-0.7", -0.08),
        ],
        metrics: metrics(),
        true_slope: -20.0 * 80.0 * 0.5f64.exp() / 2.0,
    };
    build(
        c,
        design,
        |rng| Ok(recall.sample(rng)),
        |rng, &rho, dose| {
            let (s, n) = share(rng, 20.0, rho + dose)?;
            let missed = n - (s * n as f64).round() as u64;
            let lost: f64 = (0..missed).map(|_| ticket.sample(rng)).sum();
            // Per 1,000 of the merchant's 2,000 transactions, in cents.
            let per_1k = (lost / 2.0 * 100.0).round() / 100.0;
            Ok(vec![
                ("fraud_recall_v2", s),
                ("chargeback_loss_per_1k", per_1k),
            ])
        },
    )
}
