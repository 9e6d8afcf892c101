//! The `ecommerce-latency` scenario (its process is in the parent module's doc), generated block
//! by block of units: [`generate`] makes one block of all units, [`blocks`] any number of
//! smaller ones from the same draws, so the data is the same however it is cut.

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::{json, Value};

use super::{assignment_row, g, metrics, observation_row, Block, Curve, SimConfig, Simulated};

/// The scenario's draws, carried from one block of units to the next.
struct Latency {
    c: SimConfig,
    rng: Xoshiro256PlusPlus,
    keys: Vec<String>,
    base: LogNormal<f64>,
    jitter: LogNormal<f64>,
    propensity: LogNormal<f64>,
    value: LogNormal<f64>,
    /// The first unit of the next block.
    next: usize,
}

/// The arms: control first, named by their dose when the doses differ.
fn variants(c: &SimConfig) -> Vec<Value> {
    let weight = 1.0 / c.doses.len().max(2) as f64;
    let distinct = c
        .doses
        .iter()
        .enumerate()
        .all(|(i, d)| !c.doses[..i].contains(d));
    c.doses
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let key = match i {
                0 => "control".to_owned(),
                _ if distinct => format!("plus-{d}ms"),
                _ => format!("arm-{i}"),
            };
            json!({"key": key, "weight": weight, "control": i == 0, "dose": if i == 0 { 0.0 } else { *d }})
        })
        .collect()
}

/// The experiment's creation body.
fn experiment(c: &SimConfig) -> Value {
    let kpis: &[&str] = if c.revenue {
        &["checkout-conversion", "revenue-per-user"]
    } else {
        &["checkout-conversion"]
    };
    json!({
        "key": c.key, "name": "Checkout latency injection (simulated)",
        "hypothesis": if c.revenue {
            "Added checkout latency lowers conversion and revenue"
        } else {
            "Added checkout latency lowers conversion"
        },
        "journey": "search → product → cart → checkout",
        "sli": "checkout-latency", "kpis": kpis,
        "variants": variants(c)
    })
}

impl Latency {
    fn new(c: &SimConfig) -> anyhow::Result<Self> {
        let s = 0.5f64;
        let keys = variants(c)
            .iter()
            .map(|v| v["key"].as_str().unwrap_or("").to_owned())
            .collect();
        Ok(Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(c.seed),
            keys,
            base: LogNormal::new(c.median_ms.ln(), c.sigma)?,
            jitter: LogNormal::new(-0.05f64 * 0.05 / 2.0, 0.05)?,
            propensity: LogNormal::new(-s * s / 2.0, s)?,
            value: LogNormal::new(50f64.ln(), 0.5)?,
            next: 0,
            c: c.clone(),
        })
    }

    /// The next `n` units (fewer at the end) as NDJSON assignment and observation rows.
    fn block(&mut self, n: usize) -> Block {
        let c = &self.c;
        let end = (self.next + n).min(c.units);
        let rows = end - self.next;
        let k = c.doses.len().max(2);
        let mut assignments = String::with_capacity(rows * 90);
        let mut observations = String::with_capacity(rows * if c.pre_period { 400 } else { 200 });
        let mut push = |unit: &str, metric: &str, v: f64, pre: bool| {
            let period = if pre { ",\"period\":\"pre\"" } else { "" };
            observation_row(&mut observations, unit, metric, v, period);
        };
        let rng = &mut self.rng;
        for i in self.next..end {
            let arm = rng.random_range(0..k);
            let unit = format!("u{i:08}");
            let dropped = arm == k - 1 && c.drop_share > 0.0 && rng.random::<f64>() < c.drop_share;
            if !dropped {
                assignment_row(&mut assignments, &unit, &self.keys[arm], i, c.units);
            }
            let b = self.base.sample(rng);
            let pi = self.propensity.sample(rng);
            let value = &self.value;
            let outcome = |x: f64, rng: &mut Xoshiro256PlusPlus| {
                let p = (c.conversion * pi * g(c, x)).min(1.0);
                let conv = rng.random::<f64>() < p;
                let revenue = if conv {
                    (value.sample(rng) * 100.0).round() / 100.0
                } else {
                    0.0
                };
                (f64::from(u8::from(conv)), revenue)
            };
            let dose = if arm == 0 { 0.0 } else { c.doses[arm] };
            let x = (b * self.jitter.sample(rng) + dose).max(0.0);
            let x = (x * 100.0).round() / 100.0;
            let (conv, revenue) = outcome(x, rng);
            push(&unit, "checkout-latency", x, false);
            push(&unit, "checkout-conversion", conv, false);
            if c.revenue {
                push(&unit, "revenue-per-user", revenue, false);
            }
            if c.pre_period {
                let xp = ((b * self.jitter.sample(rng)) * 100.0).round() / 100.0;
                let (cp, rp) = outcome(xp, rng);
                push(&unit, "checkout-latency", xp, true);
                push(&unit, "checkout-conversion", cp, true);
                if c.revenue {
                    push(&unit, "revenue-per-user", rp, true);
                }
            }
        }
        self.next = end;
        (assignments.into_bytes(), observations.into_bytes())
    }
}

/// The whole experiment in memory.
pub(super) fn generate(c: &SimConfig) -> anyhow::Result<Simulated> {
    let (assignments_ndjson, observations_ndjson) = Latency::new(c)?.block(c.units);
    let true_conversion_slope = match c.curve {
        Curve::Linear => c.conversion * c.effect_per_100ms / 100.0,
        Curve::Knee => f64::NAN,
    };
    Ok(Simulated {
        metrics: metrics(),
        experiment: experiment(c),
        assignments_ndjson,
        observations_ndjson,
        true_conversion_slope,
    })
}

/// The experiment's creation body and its rows in blocks of `size` units: the same rows as
/// [`generate`]'s, in the same order.
pub(super) fn blocks(
    c: &SimConfig,
    size: usize,
) -> anyhow::Result<(Value, impl Iterator<Item = Block>)> {
    let mut g = Latency::new(c)?;
    let size = size.max(1);
    let blocks = std::iter::from_fn(move || (g.next < g.c.units).then(|| g.block(size)));
    Ok((experiment(c), blocks))
}

#[cfg(test)]
mod tests {
    use super::{blocks, generate};
    use crate::simulate::SimConfig;

    #[test]
    fn blocks_hold_the_rows_of_the_whole_experiment() {
        for revenue in [true, false] {
            let c = SimConfig {
                units: 1_003,
                drop_share: 0.2,
                revenue,
                ..SimConfig::default()
            };
            let whole = generate(&c).unwrap();
            let (experiment, parts) = blocks(&c, 100).unwrap();
            let parts: Vec<_> = parts.collect();
            assert_eq!(parts.len(), 11);
            let (a, o): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
            assert_eq!(a.concat(), whole.assignments_ndjson);
            assert_eq!(o.concat(), whole.observations_ndjson);
            assert_eq!(experiment, whole.experiment);
            let text = String::from_utf8(whole.observations_ndjson).unwrap();
            let per_unit = if revenue { 6 } else { 4 };
            assert_eq!(text.lines().count(), 1_003 * per_unit);
            assert_eq!(text.contains("revenue-per-user"), revenue);
            assert_eq!(
                experiment["kpis"].as_array().unwrap().len(),
                1 + usize::from(revenue)
            );
        }
    }
}
