//! The `chatbot-faithfulness` scenario: a support chatbot whose answers are judged faithful to
//! the retrieved sources (an LLM judge on a sample), with arms served by weaker retrieval or a
//! weaker model.
//!
//! Data-generating process, per unit i (a user over the experiment):
//! - arm a(i) uniformly among control (dose 0), `weaker-retrieval` (−0.02: two points fewer
//!   faithful answers) and `weaker-model` (−0.05);
//! - a baseline faithfulness fᵢ ~ Beta(46, 4) (mean 0.92) and a propensity to escalate
//!   πᵢ ~ LogNormal(−s²/2, s), s = 0.5 (mean 1), both shared by the pre and post periods;
//! - nᵢ = 1 + Poisson(9) questions, of which Binomial(nᵢ, clamp(fᵢ + dₐ, 0, 1)) are answered
//!   faithfully; the SLI `answer_faithfulness` is the unit's faithful share sᵢ (higher is
//!   better, in [0, 1]);
//! - escalation to a human ~ Bernoulli(min(1, 0.10·πᵢ·(1 + 100·r·(0.92 − sᵢ)))), r = |effect|
//!   (`--effect-per-100ms`, default 0.05): each point of faithfulness lost raises escalations
//!   by r relative (lower is better);
//! - CSAT on 1–5 (an ordinal KPI; its top-2-box share, 4 or 5, is reported beside the mean)
//!   = round(3.9 + 160·r·(sᵢ − 0.92) + N(0, 0.9)) clamped to [1, 5] (higher is
//!   better): CSAT rises 0.08 points per point of faithfulness at r = 0.05 before the rounding
//!   and the clamp at 5, which flatten the observed slope (to about 0.07).
//!
//! So the true slope of escalation on the faithful share is −0.10·100·r per unit of share
//! (−0.5 at r = 0.05: −0.005 per point).

use rand::Rng;
use rand_distr::{Beta, Distribution, LogNormal, Normal};
use serde_json::{json, Value};

use super::shares::{build, share, Design};
use super::{SimConfig, Simulated};

const BASE_SHARE: f64 = 0.92;
const BASE_ESCALATION: f64 = 0.10;

/// Catalog entries of the scenario (keys with underscores and digits, as production has).
pub fn metrics() -> Vec<Value> {
    vec![
        json!({"key": "csat_1to5", "name": "Customer satisfaction (1–5)", "kind": "kpi", "value_type": "ordinal",
               "unit": "points", "direction": "higher_is_better", "layer": "business",
               "scale": {"min": 1, "max": 5, "top_box": 2}}),
        json!({"key": "escalation_to_human", "name": "Escalation to a human", "kind": "kpi", "value_type": "binary",
               "unit": "", "direction": "lower_is_better", "layer": "business"}),
        json!({"key": "answer_faithfulness", "name": "Answer faithfulness", "kind": "sli", "value_type": "continuous",
               "unit": "share", "direction": "higher_is_better", "layer": "journey",
               "parents": ["csat_1to5", "escalation_to_human"]}),
    ]
}

/// Generates the scenario (see the module doc).
pub fn generate(c: &SimConfig) -> anyhow::Result<Simulated> {
    let r = c.effect_per_100ms.abs();
    let faith = Beta::new(46.0, 4.0)?;
    let s = 0.5f64;
    let propensity = LogNormal::new(-s * s / 2.0, s)?;
    let noise = Normal::new(0.0, 0.9)?;
    let design = Design {
        key: "chatbot-faithfulness-sim",
        name: "Chatbot answer faithfulness (simulated)",
        hypothesis: "Less faithful answers lower satisfaction and send more users to a human",
        journey: "question → answer → resolution",
        sli: "answer_faithfulness",
        kpis: &["csat_1to5", "escalation_to_human"],
        arms: &[
            ("control", 0.0),
            ("weaker-retrieval", -0.02),
            ("weaker-model", -0.05),
        ],
        metrics: metrics(),
        true_slope: -BASE_ESCALATION * 100.0 * r,
    };
    build(
        c,
        design,
        |rng| Ok((faith.sample(rng), propensity.sample(rng))),
        |rng, &(f, pi), dose| {
            let (s, _) = share(rng, 10.0, f + dose)?;
            let escalate =
                (BASE_ESCALATION * pi * (1.0 + 100.0 * r * (BASE_SHARE - s))).clamp(0.0, 1.0);
            let escalated = f64::from(u8::from(rng.random::<f64>() < escalate));
            let csat = (3.9 + 160.0 * r * (s - BASE_SHARE) + noise.sample(rng))
                .round()
                .clamp(1.0, 5.0);
            Ok(vec![
                ("answer_faithfulness", s),
                ("csat_1to5", csat),
                ("escalation_to_human", escalated),
            ])
        },
    )
}
