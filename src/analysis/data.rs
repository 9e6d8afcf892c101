//! Loads an experiment's assignments and observations into per-unit columns.
//!
//! Units are ordered by their id (bytewise), so an analysis does not depend on the order the
//! database returns rows in. Missing values are NaN inside this module's columns only; every
//! consumer filters them before computing anything.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use rustc_hash::{FxHashMap, FxHashSet, FxHasher};

use super::report::{MissingOutcomes, Role};
use crate::domain::metric::ValueType;
use crate::error::AppResult;
use crate::store::analyses::{for_each_assignment, for_each_observation};
use crate::store::experiments::Experiment;
use crate::store::metrics::Metric;
use crate::store::Db;

/// One arm.
#[derive(Debug, Clone)]
pub struct Arm {
    pub key: String,
    pub dose: f64,
    pub weight: f64,
    pub control: bool,
}

/// A KPI or guardrail column.
#[derive(Debug, Clone)]
pub struct MetricColumn {
    pub metric: Metric,
    pub role: Role,
    /// Experiment-period value per unit; NaN = missing (before the missing-outcome rule).
    pub post: Vec<f64>,
    /// Pre-period value per unit; NaN = missing.
    pub pre: Vec<f64>,
}

impl MetricColumn {
    pub fn units_post(&self) -> u64 {
        self.post.iter().filter(|v| !v.is_nan()).count() as u64
    }

    pub fn units_pre(&self) -> u64 {
        self.pre.iter().filter(|v| !v.is_nan()).count() as u64
    }

    /// Value for analysis under the missing-outcome rule: `None` means the unit is excluded.
    pub fn outcome(&self, i: usize, rule: MissingOutcomes) -> Option<f64> {
        let v = self.post[i];
        if !v.is_nan() {
            Some(v)
        } else if rule == MissingOutcomes::Zero {
            Some(0.0)
        } else {
            None
        }
    }

    pub fn is_binary(&self) -> bool {
        self.metric.value_type == ValueType::Binary
    }
}

/// The experiment's data, one entry per assigned unit.
#[derive(Debug, Clone)]
pub struct UnitData {
    pub arms: Vec<Arm>,
    pub control: usize,
    /// Arm index per unit.
    pub arm: Vec<u32>,
    pub sli: Vec<f64>,
    pub sli_pre: Vec<f64>,
    pub sli_metric: Metric,
    /// KPIs (in the experiment's order) then guardrails.
    pub metrics: Vec<MetricColumn>,
    pub unassigned_observations: u64,
    pub unassigned_units: u64,
    pub fingerprint: String,
}

impl UnitData {
    pub fn len(&self) -> usize {
        self.arm.len()
    }

    pub fn is_empty(&self) -> bool {
        self.arm.is_empty()
    }

    pub fn arm_counts(&self) -> Vec<u64> {
        let mut c = vec![0u64; self.arms.len()];
        for &a in &self.arm {
            c[a as usize] += 1;
        }
        c
    }

    pub fn kpis(&self) -> impl Iterator<Item = (usize, &MetricColumn)> {
        self.metrics
            .iter()
            .enumerate()
            .filter(|(_, m)| m.role == Role::Kpi)
    }
}

/// Order-independent fingerprint: wrapping sum and xor of a hash of every row, with counts, so
/// it does not depend on the order (or the parallel split) in which rows are read.
#[derive(Default, Clone, Copy)]
struct Fingerprint {
    sum: u64,
    xor: u64,
    rows: u64,
}

impl Fingerprint {
    fn add(&mut self, row: impl Hash) {
        let mut h = FxHasher::default();
        row.hash(&mut h);
        // FxHash is fast but weakly mixed: finish with SplitMix64's finaliser.
        let mut v = h.finish();
        v = (v ^ (v >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        v = (v ^ (v >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        v ^= v >> 31;
        self.sum = self.sum.wrapping_add(v);
        self.xor ^= v.rotate_left(17);
        self.rows += 1;
    }

    fn merge(self, o: Fingerprint) -> Fingerprint {
        Fingerprint {
            sum: self.sum.wrapping_add(o.sum),
            xor: self.xor ^ o.xor,
            rows: self.rows + o.rows,
        }
    }
}

/// Where an observation goes: the SLI (`None`) or a metric column.
type Slot = Option<usize>;

/// What one range reader found.
#[derive(Default)]
struct Part {
    /// (unit index, slot, is_pre, value).
    values: Vec<(u32, Slot, bool, f64)>,
    unassigned_observations: u64,
    unassigned: FxHashSet<String>,
    fp: Fingerprint,
}

/// Units at which the observation scan is split into parallel range reads.
const PARALLEL_LOAD_UNITS: usize = 100_000;

/// Reads the experiment's data. Observations of large experiments are read as two unit-id ranges
/// on two connections at once.
pub fn load(db: &Db, e: &Experiment) -> AppResult<UnitData> {
    let arms: Vec<Arm> = e
        .variants
        .iter()
        .map(|v| Arm {
            key: v.key.clone(),
            dose: v.dose,
            weight: v.weight,
            control: v.control,
        })
        .collect();
    let control = e.variants.iter().position(|v| v.control).unwrap_or(0);
    let arm_of_variant: HashMap<i64, u32> = e
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| (v.id, i as u32))
        .collect();
    let mut fp = Fingerprint::default();

    let mut units: Vec<(String, u32)> = Vec::new();
    for_each_assignment(&mut *db.conn()?, e.id, |unit, variant| {
        let arm = arm_of_variant.get(&variant).copied().unwrap_or(0);
        fp.add(("a", unit.as_str(), arms[arm as usize].key.as_str()));
        units.push((unit, arm));
    })?;
    units.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let index: FxHashMap<&str, u32> = units
        .iter()
        .enumerate()
        .map(|(i, (u, _))| (u.as_str(), i as u32))
        .collect();
    let n = units.len();

    let mut columns: Vec<MetricColumn> = e
        .kpis
        .iter()
        .map(|m| (m, Role::Kpi))
        .chain(e.guardrails.iter().map(|m| (m, Role::Guardrail)))
        .map(|(m, role)| MetricColumn {
            metric: m.clone(),
            role,
            post: vec![f64::NAN; n],
            pre: vec![f64::NAN; n],
        })
        .collect();
    let slot: HashMap<i64, Slot> = std::iter::once((e.sli.id, None))
        .chain(
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| (c.metric.id, Some(i))),
        )
        .collect();
    let metric_key: HashMap<i64, &str> = e.metrics().map(|m| (m.id, m.key.as_str())).collect();
    let read = |from: Option<&str>, to: Option<&str>| -> AppResult<Part> {
        let mut part = Part::default();
        for_each_observation(
            &mut *db.conn()?,
            e.id,
            from,
            to,
            |unit, metric_id, pre, value| {
                part.fp.add((
                    "o",
                    unit,
                    metric_key.get(&metric_id).copied().unwrap_or(""),
                    pre,
                    value.to_bits(),
                ));
                match (index.get(unit), slot.get(&metric_id)) {
                    (Some(&i), Some(&s)) => part.values.push((i, s, pre, value)),
                    (Some(_), None) => {}
                    (None, _) => {
                        part.unassigned_observations += 1;
                        if !part.unassigned.contains(unit) {
                            part.unassigned.insert(unit.to_owned());
                        }
                    }
                }
            },
        )?;
        Ok(part)
    };
    let parts: Vec<Part> = if n >= PARALLEL_LOAD_UNITS {
        let mid = units[n / 2].0.as_str();
        let (a, b) = rayon::join(|| read(None, Some(mid)), || read(Some(mid), None));
        vec![a?, b?]
    } else {
        vec![read(None, None)?]
    };
    let mut sli = vec![f64::NAN; n];
    let mut sli_pre = vec![f64::NAN; n];
    let mut unassigned: FxHashSet<String> = FxHashSet::default();
    let mut unassigned_observations = 0;
    for part in parts {
        for (i, s, pre, v) in part.values {
            let i = i as usize;
            match (s, pre) {
                (None, true) => sli_pre[i] = v,
                (None, false) => sli[i] = v,
                (Some(c), true) => columns[c].pre[i] = v,
                (Some(c), false) => columns[c].post[i] = v,
            }
        }
        unassigned_observations += part.unassigned_observations;
        unassigned.extend(part.unassigned);
        fp = fp.merge(part.fp);
    }
    let fingerprint = format!("v1-{:016x}{:016x}-{}", fp.sum, fp.xor, fp.rows);
    Ok(UnitData {
        arms,
        control,
        arm: units.iter().map(|u| u.1).collect(),
        sli,
        sli_pre,
        sli_metric: e.sli.clone(),
        metrics: columns,
        unassigned_observations,
        unassigned_units: unassigned.len() as u64,
        fingerprint,
    })
}
