//! Loads an experiment's assignments and observations into per-unit columns.
//!
//! Units are ordered by their id (bytewise), so an analysis does not depend on the order the
//! database returns rows in. Missing values are NaN inside this module's columns only; every
//! consumer filters them before computing anything.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use rustc_hash::{FxHashSet, FxHasher};

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

/// Per-unit value planes, in this order: SLI post, SLI pre, then post and pre of each metric
/// column. An observation of metric slot `s` (0 = the SLI) and period `pre` goes to plane
/// `2·s + pre`.
fn plane(slot: usize, pre: bool) -> usize {
    2 * slot + usize::from(pre)
}

/// What one range reader found besides the values it wrote into its planes.
#[derive(Default)]
struct Part {
    /// Values of assigned units outside the reader's unit range (global index, plane, value).
    /// Empty on SQLite, whose range order is the units' bytewise order.
    stray: Vec<(usize, usize, f64)>,
    unassigned_observations: u64,
    unassigned: FxHashSet<String>,
    fp: Fingerprint,
}

/// A reader's share of the units: `units[offset..offset + planes[k].len()]`.
struct Range<'a> {
    offset: usize,
    planes: Vec<&'a mut [f64]>,
}

/// Units at which the observation scan is split into parallel range reads.
const PARALLEL_LOAD_UNITS: usize = 100_000;

/// Reads the experiment's data. Observations of large experiments are read as two unit-id ranges
/// on two connections at once, each writing straight into its half of the unit columns. Rows are
/// matched to units by a merge join on the sorted unit ids (rows arrive in key order, so the
/// next row is almost always the same or the next unit), falling back to binary search.
pub fn load(db: &Db, e: &Experiment) -> AppResult<UnitData> {
    load_split(db, e, PARALLEL_LOAD_UNITS)
}

/// [`load`], splitting the observation read in two from `split_from` assigned units on. Every
/// choice gives the same data (tests compare them on small experiments).
pub fn load_split(db: &Db, e: &Experiment, split_from: usize) -> AppResult<UnitData> {
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
    if !units.is_sorted_by(|a, b| a.0 <= b.0) {
        units.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }
    let n = units.len();

    let metrics: Vec<(&Metric, Role)> = e
        .kpis
        .iter()
        .map(|m| (m, Role::Kpi))
        .chain(e.guardrails.iter().map(|m| (m, Role::Guardrail)))
        .collect();
    // (metric id, slot, key): a handful of entries, scanned linearly per row.
    let slots: Vec<(i64, usize, &str)> = std::iter::once(&e.sli)
        .chain(metrics.iter().map(|(m, _)| *m))
        .enumerate()
        .map(|(s, m)| (m.id, s, m.key.as_str()))
        .collect();
    let other_keys: HashMap<i64, &str> = e.metrics().map(|m| (m.id, m.key.as_str())).collect();
    let mut planes: Vec<Vec<f64>> = vec![vec![f64::NAN; n]; 2 * slots.len()];

    let read = |from: Option<&str>, to: Option<&str>, mut range: Range| -> AppResult<Part> {
        let mut part = Part::default();
        let mine = &units[range.offset..range.offset + range.planes[0].len()];
        // Local index of the unit of the previous row.
        let mut cursor = 0usize;
        for_each_observation(
            &mut *db.conn()?,
            e.id,
            from,
            to,
            |unit, metric_id, pre, value| {
                let slot = slots.iter().find(|s| s.0 == metric_id);
                let key = match slot {
                    Some(s) => s.2,
                    None => other_keys.get(&metric_id).copied().unwrap_or(""),
                };
                part.fp.add(("o", unit, key, pre, value.to_bits()));
                let local = if mine.get(cursor).is_some_and(|u| u.0 == unit) {
                    Some(cursor)
                } else if mine.get(cursor + 1).is_some_and(|u| u.0 == unit) {
                    Some(cursor + 1)
                } else {
                    mine.binary_search_by(|u| u.0.as_str().cmp(unit)).ok()
                };
                if let Some(i) = local {
                    cursor = i;
                    if let Some(s) = slot {
                        range.planes[plane(s.1, pre)][i] = value;
                    }
                } else if let Ok(i) = units.binary_search_by(|u| u.0.as_str().cmp(unit)) {
                    if let Some(s) = slot {
                        part.stray.push((i, plane(s.1, pre), value));
                    }
                } else {
                    part.unassigned_observations += 1;
                    if !part.unassigned.contains(unit) {
                        part.unassigned.insert(unit.to_owned());
                    }
                }
            },
        )?;
        Ok(part)
    };
    let parts: Vec<Part> = if n >= split_from.max(2) {
        let mid = n / 2;
        let (low, high): (Vec<&mut [f64]>, Vec<&mut [f64]>) =
            planes.iter_mut().map(|p| p.split_at_mut(mid)).unzip();
        let key = units[mid].0.as_str();
        let (a, b) = rayon::join(
            || {
                read(
                    None,
                    Some(key),
                    Range {
                        offset: 0,
                        planes: low,
                    },
                )
            },
            || {
                read(
                    Some(key),
                    None,
                    Range {
                        offset: mid,
                        planes: high,
                    },
                )
            },
        );
        vec![a?, b?]
    } else {
        let all = planes.iter_mut().map(Vec::as_mut_slice).collect();
        vec![read(
            None,
            None,
            Range {
                offset: 0,
                planes: all,
            },
        )?]
    };
    let mut unassigned: FxHashSet<String> = FxHashSet::default();
    let mut unassigned_observations = 0;
    for part in parts {
        for (i, k, v) in part.stray {
            planes[k][i] = v;
        }
        unassigned_observations += part.unassigned_observations;
        unassigned.extend(part.unassigned);
        fp = fp.merge(part.fp);
    }
    let fingerprint = format!("v1-{:016x}{:016x}-{}", fp.sum, fp.xor, fp.rows);
    let mut planes = planes.into_iter();
    let mut next = || planes.next().unwrap_or_default();
    let (sli, sli_pre) = (next(), next());
    let columns = metrics
        .into_iter()
        .map(|(m, role)| MetricColumn {
            metric: m.clone(),
            role,
            post: next(),
            pre: next(),
        })
        .collect();
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
