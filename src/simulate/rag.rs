//! The `rag-knowledge-base` scenario: a support assistant answers from a knowledge base. Two
//! SLIs matter together, retrieval quality and time to first token, and one experiment moves
//! both in a 2×2 factorial, so each SLI's effect is identified holding the other fixed.
//!
//! Data-generating process, per unit i (a user over the experiment):
//! - arm a(i) uniformly among `control` (doses 0, 0), `degraded-retrieval` (precision −0.20,
//!   TTFT 0), `slow-ttft` (0, +400 ms) and `both` (−0.20, +400 ms);
//! - latent state shared by the pre and post periods: retrieval quality qᵢ ~ Beta(14, 6)
//!   (mean 0.7), baseline TTFT bᵢ ~ LogNormal(ln 600, 0.5) ms (heavy right tail), a deflection
//!   propensity πᵢ ~ LogNormal(−s²/2, s) with s = 0.25 (mean 1) and a task length
//!   τᵢ ~ LogNormal(ln 240, 0.5) s;
//! - the SLI `retrieval_precision_at5` (higher is better) is the share of relevant passages
//!   among 5·mᵢ retrieved over mᵢ = 1 + Poisson(3) questions, each relevant with probability
//!   clamp(qᵢ + d_p, 0, 1), rounded to 4 decimals;
//! - the SLI `ttft_ms` (lower is better) is xᵢ = bᵢ·εᵢ + d_t with εᵢ ~ LogNormal(−0.05²/2,
//!   0.05), rounded to 1 ms;
//! - the KPI `ticket_deflection` (binary, higher is better) ~ Bernoulli(clamp(p₀·πᵢ·(1 +
//!   r·(precᵢ − 0.7)/0.1 − (r/5)·(xᵢ − 600)/100), 0, 1)) with p₀ = 0.4 and r = |effect|
//!   (`--effect-per-100ms`, default 0.05): each −10 points of precision costs r of deflection,
//!   each +100 ms of TTFT r/5, relative;
//! - the KPI `task_completion_time_s` (continuous, lower is better) = τᵢ·(1 + 0.03·(0.7 −
//!   precᵢ)/0.1 + 0.005·(xᵢ − 600)/100)·ηᵢ with ηᵢ ~ LogNormal(−0.2²/2, 0.2), to 0.1 s.
//!
//! So the true slopes of deflection are p₀·r/0.1 per unit of precision (+0.2 at r = 0.05) and
//! −p₀·r/500 per ms of TTFT (−0.00004), linear in each SLI and independent of the other.

use rand::{Rng, SeedableRng};
use rand_distr::{Beta, Distribution, LogNormal, Poisson};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::{json, Value};

use super::{assignment_row, observation_row, SimConfig, Simulated};

/// Baseline deflection rate p₀.
pub const BASE_DEFLECTION: f64 = 0.4;
const MEAN_PRECISION: f64 = 0.7;
const MEDIAN_TTFT_MS: f64 = 600.0;
/// Arm keys and (precision, TTFT) doses, control first.
const ARMS: [(&str, f64, f64); 4] = [
    ("control", 0.0, 0.0),
    ("degraded-retrieval", -0.2, 0.0),
    ("slow-ttft", 0.0, 400.0),
    ("both", -0.2, 400.0),
];

/// The true slopes of deflection on (precision, TTFT) at effect size `r` (module doc).
pub fn true_deflection_slopes(r: f64) -> (f64, f64) {
    (
        BASE_DEFLECTION * r.abs() / 0.1,
        -BASE_DEFLECTION * r.abs() / 500.0,
    )
}

/// Catalog entries of the scenario.
pub fn metrics() -> Vec<Value> {
    vec![
        json!({"key": "ticket_deflection", "name": "Ticket deflection", "kind": "kpi", "value_type": "binary",
               "unit": "", "direction": "higher_is_better", "layer": "business"}),
        json!({"key": "task_completion_time_s", "name": "Task completion time", "kind": "kpi",
               "value_type": "continuous", "unit": "s", "direction": "lower_is_better", "layer": "business"}),
        json!({"key": "retrieval_precision_at5", "name": "Retrieval precision@5", "kind": "sli",
               "value_type": "continuous", "unit": "share", "direction": "higher_is_better", "layer": "platform",
               "parents": ["ticket_deflection", "task_completion_time_s"]}),
        json!({"key": "ttft_ms", "name": "Time to first token", "kind": "sli", "value_type": "continuous",
               "unit": "ms", "direction": "lower_is_better", "layer": "platform",
               "parents": ["ticket_deflection", "task_completion_time_s"]}),
    ]
}

/// A unit's latent state (see the module doc).
struct Latent {
    quality: f64,
    ttft: f64,
    propensity: f64,
    task: f64,
}

/// Draws the latent state.
struct Draws {
    quality: Beta<f64>,
    ttft: LogNormal<f64>,
    jitter: LogNormal<f64>,
    propensity: LogNormal<f64>,
    task: LogNormal<f64>,
    task_noise: LogNormal<f64>,
}

impl Draws {
    fn new() -> anyhow::Result<Draws> {
        let s = 0.25f64;
        Ok(Draws {
            quality: Beta::new(14.0, 6.0)?,
            ttft: LogNormal::new(MEDIAN_TTFT_MS.ln(), 0.5)?,
            jitter: LogNormal::new(-0.05f64.powi(2) / 2.0, 0.05)?,
            propensity: LogNormal::new(-s * s / 2.0, s)?,
            task: LogNormal::new(240f64.ln(), 0.5)?,
            task_noise: LogNormal::new(-0.02, 0.2)?,
        })
    }

    fn latent(&self, rng: &mut Xoshiro256PlusPlus) -> Latent {
        Latent {
            quality: self.quality.sample(rng),
            ttft: self.ttft.sample(rng),
            propensity: self.propensity.sample(rng),
            task: self.task.sample(rng),
        }
    }

    /// The unit's (metric, value) rows at doses (precision, TTFT).
    fn outcome(
        &self,
        rng: &mut Xoshiro256PlusPlus,
        u: &Latent,
        r: f64,
        (dp, dt): (f64, f64),
    ) -> anyhow::Result<[(&'static str, f64); 4]> {
        let questions = 1 + Poisson::new(3.0)?.sample(rng) as u64;
        let p_rel = (u.quality + dp).clamp(0.0, 1.0);
        let passages = 5 * questions;
        let relevant = (0..passages)
            .filter(|_| rng.random::<f64>() < p_rel)
            .count();
        let prec = (relevant as f64 / passages as f64 * 10_000.0).round() / 10_000.0;
        let x = (u.ttft * self.jitter.sample(rng) + dt).round();
        let p = BASE_DEFLECTION
            * u.propensity
            * (1.0 + r * (prec - MEAN_PRECISION) / 0.1 - r / 5.0 * (x - MEDIAN_TTFT_MS) / 100.0);
        let deflected = rng.random::<f64>() < p.clamp(0.0, 1.0);
        let time = u.task
            * (1.0 + 0.03 * (MEAN_PRECISION - prec) / 0.1 + 0.005 * (x - MEDIAN_TTFT_MS) / 100.0)
            * self.task_noise.sample(rng);
        Ok([
            ("retrieval_precision_at5", prec),
            ("ttft_ms", x),
            ("ticket_deflection", f64::from(u8::from(deflected))),
            (
                "task_completion_time_s",
                (time.max(1.0) * 10.0).round() / 10.0,
            ),
        ])
    }
}

/// Generates the scenario (see the module doc).
pub fn generate(c: &SimConfig) -> anyhow::Result<Simulated> {
    let r = c.effect_per_100ms.abs();
    let draws = Draws::new()?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(c.seed);
    let mut assignments = String::with_capacity(c.units * 64);
    let mut observations = String::with_capacity(c.units * 600);
    for i in 0..c.units {
        let arm = rng.random_range(0..ARMS.len());
        let unit = format!("user {i:07}-é");
        let last = arm == ARMS.len() - 1;
        if !(last && c.drop_share > 0.0 && rng.random::<f64>() < c.drop_share) {
            assignment_row(&mut assignments, &unit, ARMS[arm].0, i, c.units);
        }
        let state = draws.latent(&mut rng);
        for (metric, v) in draws.outcome(&mut rng, &state, r, (ARMS[arm].1, ARMS[arm].2))? {
            observation_row(&mut observations, &unit, metric, v, "");
        }
        if c.pre_period {
            for (metric, v) in draws.outcome(&mut rng, &state, r, (0.0, 0.0))? {
                observation_row(&mut observations, &unit, metric, v, ",\"period\":\"pre\"");
            }
        }
    }
    let variants: Vec<Value> = ARMS
        .iter()
        .map(|(key, dp, dt)| {
            json!({"key": key, "weight": 0.25, "control": *key == "control",
                   "doses": {"retrieval_precision_at5": dp, "ttft_ms": dt}})
        })
        .collect();
    let key = if c.key == "checkout-latency-sim" {
        "rag-knowledge-base-sim"
    } else {
        c.key.as_str()
    };
    Ok(Simulated {
        metrics: metrics(),
        experiment: json!({
            "key": key,
            "name": "RAG knowledge base: retrieval × time to first token (simulated)",
            "hypothesis": "Worse retrieval and a slower first token each lower ticket deflection and lengthen tasks",
            "journey": "question → retrieval → first token → answer → (ticket)",
            "sli": "retrieval_precision_at5",
            "extra_slis": ["ttft_ms"],
            "kpis": ["ticket_deflection", "task_completion_time_s"],
            "variants": variants
        }),
        assignments_ndjson: assignments.into_bytes(),
        observations_ndjson: observations.into_bytes(),
        true_conversion_slope: true_deflection_slopes(r).1,
    })
}
