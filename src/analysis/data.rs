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
use crate::error::{AppError, AppResult};
use crate::store::analyses::{for_each_assignment, for_each_observation, unit_split};
use crate::store::experiments::{data_version, Experiment};
use crate::store::metrics::Metric;
use crate::store::{snapshot, Db};

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

/// SplitMix64's finaliser: a strong mix of 64 bits.
fn mix(mut v: u64) -> u64 {
    v = (v ^ (v >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    v = (v ^ (v >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    v ^ (v >> 31)
}

/// FxHash (fast, weakly mixed) finished with [`mix`].
fn hash_of(value: impl Hash) -> u64 {
    let mut h = FxHasher::default();
    value.hash(&mut h);
    mix(h.finish())
}

/// Order-independent fingerprint: wrapping sum and xor of a hash of every row, with counts, so
/// it does not depend on the order (or the parallel split) in which rows are read. An assignment
/// row hashes as `hash_of(("a", unit, arm key))`; an observation row as
/// `mix(mix(hash_of(unit) ^ hash_of((metric key, period))) ^ value bits)`, so a unit's hash is
/// computed once for its consecutive rows.
#[derive(Default, Clone, Copy)]
struct Fingerprint {
    sum: u64,
    xor: u64,
    rows: u64,
}

impl Fingerprint {
    fn add(&mut self, h: u64) {
        self.sum = self.sum.wrapping_add(h);
        self.xor ^= h.rotate_left(17);
        self.rows += 1;
    }

    fn add_observation(&mut self, unit: u64, metric_period: u64, value: f64) {
        self.add(mix(mix(unit ^ metric_period) ^ value.to_bits()));
    }

    fn merge(self, o: Fingerprint) -> Fingerprint {
        Fingerprint {
            sum: self.sum.wrapping_add(o.sum),
            xor: self.xor ^ o.xor,
            rows: self.rows + o.rows,
        }
    }

    fn render(&self) -> String {
        format!("v2-{:016x}{:016x}-{}", self.sum, self.xor, self.rows)
    }
}

/// Per-unit value planes, in this order: SLI post, SLI pre, then post and pre of each metric
/// column. An observation of metric slot `s` (0 = the SLI) and period `pre` goes to plane
/// `2·s + pre`.
fn plane(slot: usize, pre: bool) -> usize {
    2 * slot + usize::from(pre)
}

/// What one range reader found: its units (bytewise order), their value planes, and the
/// observations of units it does not know.
struct Part {
    /// The experiment's data version in the reader's snapshot.
    version: i64,
    units: Vec<(String, u32)>,
    planes: Vec<Vec<f64>>,
    unassigned_observations: u64,
    unassigned: FxHashSet<String>,
    fp: Fingerprint,
}

/// What a range reader needs to place rows: arm of each variant id, arm keys, metric slots as
/// (metric id, slot, hash of (key, period) for post and pre) — a handful of entries, scanned
/// linearly per row — and the keys of the experiment's other metrics.
struct Layout<'a> {
    arm_of_variant: HashMap<i64, u32>,
    arm_keys: Vec<&'a str>,
    slots: Vec<(i64, usize, [u64; 2])>,
    other_keys: HashMap<i64, &'a str>,
}

/// Reads the assignments and then the observations of units in [`from`, `to`) in one snapshot.
fn read_range(
    db: &Db,
    experiment_id: i64,
    layout: &Layout,
    from: Option<&str>,
    to: Option<&str>,
) -> AppResult<Part> {
    snapshot(&mut *db.conn()?, |conn| {
        let version = data_version(conn, experiment_id)?;
        let mut fp = Fingerprint::default();
        let mut units: Vec<(String, u32)> = Vec::new();
        for_each_assignment(conn, experiment_id, from, to, |unit, variant| {
            let arm = layout.arm_of_variant.get(&variant).copied().unwrap_or(0);
            fp.add(hash_of(("a", unit, layout.arm_keys[arm as usize])));
            units.push((unit.to_owned(), arm));
        })?;
        if !units.is_sorted_by(|a, b| a.0 <= b.0) {
            units.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        let mut part = Part {
            version,
            planes: vec![vec![f64::NAN; units.len()]; 2 * layout.slots.len()],
            units,
            unassigned_observations: 0,
            unassigned: FxHashSet::default(),
            fp,
        };
        let (units, planes) = (&part.units, &mut part.planes);
        // Index and hash of the unit of the previous row.
        let (mut cursor, mut cursor_hash) = (0usize, units.first().map(|u| hash_of(&u.0)));
        for_each_observation(
            conn,
            experiment_id,
            from,
            to,
            |unit, metric_id, pre, value| {
                let slot = layout.slots.iter().find(|s| s.0 == metric_id);
                let metric_period = match slot {
                    Some(s) => s.2[usize::from(pre)],
                    None => hash_of((
                        layout.other_keys.get(&metric_id).copied().unwrap_or(""),
                        pre,
                    )),
                };
                let (found, unit_hash) = match cursor_hash {
                    Some(h) if units[cursor].0 == unit => (Some(cursor), h),
                    _ => {
                        let h = hash_of(unit);
                        let found = if units.get(cursor + 1).is_some_and(|u| u.0 == unit) {
                            Some(cursor + 1)
                        } else {
                            units.binary_search_by(|u| u.0.as_str().cmp(unit)).ok()
                        };
                        if let Some(i) = found {
                            (cursor, cursor_hash) = (i, Some(h));
                        }
                        (found, h)
                    }
                };
                part.fp.add_observation(unit_hash, metric_period, value);
                match (found, slot) {
                    (Some(i), Some(s)) => planes[plane(s.1, pre)][i] = value,
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
    })
}

/// Reads of a changing experiment before giving up.
const READ_ATTEMPTS: u32 = 3;

/// Units at which the read is split into two parallel range reads.
const PARALLEL_LOAD_UNITS: usize = 100_000;

/// Reads the experiment's data. Large experiments are read as two unit-id ranges on two
/// connections at once; each range reader reads its assignments, then its observations, which
/// it matches to units by a merge join on the sorted unit ids (rows arrive in key order, so the
/// next row is almost always the same or the next unit), falling back to binary search.
pub fn load(db: &Db, e: &Experiment) -> AppResult<UnitData> {
    load_split(db, e, PARALLEL_LOAD_UNITS)
}

/// [`load`], split in two ranges from `split_from` assigned units on. Every choice gives the
/// same data (tests compare them on small experiments).
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
    let metrics: Vec<(&Metric, Role)> = e
        .kpis
        .iter()
        .map(|m| (m, Role::Kpi))
        .chain(e.guardrails.iter().map(|m| (m, Role::Guardrail)))
        .collect();
    let layout = Layout {
        arm_of_variant: e
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| (v.id, i as u32))
            .collect(),
        arm_keys: e.variants.iter().map(|v| v.key.as_str()).collect(),
        slots: std::iter::once(&e.sli)
            .chain(metrics.iter().map(|(m, _)| *m))
            .enumerate()
            .map(|(s, m)| {
                let key = m.key.as_str();
                (m.id, s, [hash_of((key, false)), hash_of((key, true))])
            })
            .collect(),
        other_keys: e.metrics().map(|m| (m.id, m.key.as_str())).collect(),
    };
    let read = |from: Option<&str>, to: Option<&str>| read_range(db, e.id, &layout, from, to);
    // The two ranges are two snapshots: an upload committed between them would mix two states
    // of the data, which their data versions reveal; then the read is repeated.
    let mut attempt = 0;
    let parts: Vec<Part> = loop {
        let (count, middle) = unit_split(&mut *db.conn()?, e.id)?;
        let parts = match middle {
            Some(key) if count as usize >= split_from.max(2) => {
                let (a, b) = rayon::join(|| read(None, Some(&key)), || read(Some(&key), None));
                vec![a?, b?]
            }
            _ => vec![read(None, None)?],
        };
        if parts.iter().all(|p| p.version == parts[0].version) {
            break parts;
        }
        attempt += 1;
        tracing::info!(experiment = %e.key, attempt, "data changed during the read; reading again");
        if attempt == READ_ATTEMPTS {
            return Err(AppError::Conflict(format!(
                "the data of experiment '{}' kept changing while it was read ({READ_ATTEMPTS} \
                 attempts); retry when the uploads are done",
                e.key
            )));
        }
    };
    let n: usize = parts.iter().map(|p| p.units.len()).sum();
    let mut units: Vec<(String, u32)> = Vec::with_capacity(n);
    let mut planes: Vec<Vec<f64>> = vec![Vec::with_capacity(n); 2 * layout.slots.len()];
    let mut unassigned: FxHashSet<String> = FxHashSet::default();
    let mut unassigned_observations = 0;
    let mut fp = Fingerprint::default();
    for part in parts {
        units.extend(part.units);
        for (all, mine) in planes.iter_mut().zip(part.planes) {
            all.extend(mine);
        }
        unassigned_observations += part.unassigned_observations;
        unassigned.extend(part.unassigned);
        fp = fp.merge(part.fp);
    }
    // Both ranges follow the database's collation; when it is not bytewise (PostgreSQL with a
    // linguistic collation), the joined units are put in bytewise order here.
    if !units.is_sorted_by(|a, b| a.0 <= b.0) {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_unstable_by(|&a, &b| units[a].0.cmp(&units[b].0));
        units = order
            .iter()
            .map(|&i| std::mem::take(&mut units[i]))
            .collect();
        for p in &mut planes {
            *p = order.iter().map(|&i| p[i]).collect();
        }
    }
    let fingerprint = fp.render();
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
