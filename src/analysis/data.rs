//! An experiment's assignments and observations as per-unit columns, built from the rows a
//! reader hands over (see `analysis::service` for the reading).
//!
//! Units are ordered by their id (bytewise), so an analysis does not depend on the order the
//! database returns rows in. Missing values are NaN inside this module's columns only; every
//! consumer filters them before computing anything.

use std::collections::HashMap;

use super::report::{MetricRole, MissingOutcomes};
use crate::domain::experiment::Experiment;
use crate::domain::metric::{Metric, ValueType};

/// One arm.
#[derive(Debug, Clone)]
pub struct Arm {
    pub key: String,
    /// Planned change of the (focused) SLI.
    pub dose: f64,
    pub weight: f64,
    pub control: bool,
    /// Planned changes of the extra SLIs, in the order of [`UnitData::extra_slis`].
    pub extra_doses: Vec<f64>,
}

/// An extra SLI's values per unit (experiments whose arms change several SLIs).
#[derive(Debug, Clone)]
pub struct SliColumn {
    pub metric: Metric,
    pub post: Vec<f64>,
    pub pre: Vec<f64>,
}

/// A KPI or guardrail column.
#[derive(Debug, Clone)]
pub struct MetricColumn {
    pub metric: Metric,
    pub role: MetricRole,
    /// Experiment-period value per unit; NaN = missing (before the missing-outcome rule).
    pub post: Vec<f64>,
    /// Pre-period value per unit; NaN = missing.
    pub pre: Vec<f64>,
    /// A ratio metric's numerator and denominator per unit (NaN for a unit without a
    /// denominator, which is excluded; a missing numerator is 0). Its `post` then holds the
    /// linearized values (`stats::ratio::linearize`) and `pre` is empty of values.
    pub parts: Option<RatioParts>,
}

/// A ratio metric's per-unit numerators and denominators.
#[derive(Debug, Clone)]
pub struct RatioParts {
    pub num: Vec<f64>,
    pub den: Vec<f64>,
    /// Units with a numerator but no denominator (or a zero one): clicks without impressions,
    /// which no ratio can hold; excluded and counted.
    pub orphans: u64,
}

/// Fewest units with a positive denominator an arm needs for a ratio's variance: with fewer,
/// the delta method's variance (and the 2SLS's, on linearized values) is not to be trusted.
pub const MIN_RATIO_UNITS: usize = 20;

impl RatioParts {
    /// Builds the parts from the numerator's and denominator's experiment-period columns.
    fn of(num: &[f64], den: &[f64]) -> RatioParts {
        let mut orphans = 0;
        let mut den = den.to_vec();
        let num = num
            .iter()
            .zip(den.iter_mut())
            .map(|(y, x)| match (y.is_nan(), x.is_nan()) {
                (true, true) => f64::NAN,
                (false, true) => {
                    orphans += u64::from(*y != 0.0);
                    f64::NAN
                }
                (true, false) => 0.0,
                (false, false) if *x == 0.0 && *y != 0.0 => {
                    orphans += 1;
                    *x = f64::NAN;
                    f64::NAN
                }
                (false, false) => *y,
            })
            .collect();
        RatioParts { num, den, orphans }
    }

    /// The first arm (key, units) with fewer than [`MIN_RATIO_UNITS`] units with a positive
    /// denominator among the units `keep` admits.
    pub fn thin_arm(&self, d: &UnitData, keep: impl Fn(usize) -> bool) -> Option<(String, usize)> {
        let mut n = vec![0usize; d.arms.len()];
        for i in (0..d.len()).filter(|&i| self.den[i] > 0.0 && keep(i)) {
            n[d.arm[i] as usize] += 1;
        }
        n.iter()
            .position(|c| *c < MIN_RATIO_UNITS)
            .map(|a| (d.arms[a].key.clone(), n[a]))
    }

    /// Linearized values of the units `idx` (each with a denominator), per arm:
    /// ℓᵢ = R_a + (yᵢ − R_a xᵢ)/x̄_a with R_a and x̄_a over the arm's units among `idx`, so an
    /// arm's mean of ℓ is exactly its ratio and its variance the delta method's (Deng et al.
    /// 2018 §4). NaN for the units of an arm whose denominators sum to 0.
    pub fn linearized(&self, idx: &[usize], arm_of: &[u32], arms: usize) -> Vec<f64> {
        let mut y = vec![Vec::new(); arms];
        let mut x = vec![Vec::new(); arms];
        for &i in idx {
            y[arm_of[i] as usize].push(self.num[i]);
            x[arm_of[i] as usize].push(self.den[i]);
        }
        let mut per_arm: Vec<std::vec::IntoIter<f64>> = y
            .iter()
            .zip(&x)
            .map(|(y, x)| {
                crate::stats::ratio::linearize(y, x)
                    .unwrap_or_else(|| vec![f64::NAN; y.len()])
                    .into_iter()
            })
            .collect();
        idx.iter()
            .map(|&i| per_arm[arm_of[i] as usize].next().unwrap_or(f64::NAN))
            .collect()
    }

    /// The (numerators, denominators) of the units in each arm.
    pub fn by_arm(&self, d: &UnitData) -> Vec<(Vec<f64>, Vec<f64>)> {
        let mut out = vec![(Vec::new(), Vec::new()); d.arms.len()];
        for (i, a) in d.arm.iter().enumerate() {
            if !self.den[i].is_nan() {
                out[*a as usize].0.push(self.num[i]);
                out[*a as usize].1.push(self.den[i]);
            }
        }
        out
    }
}

/// A metric's missing-outcome rule: `Zero` or `Exclude`. Ordinal scores and ratios are never
/// imputed: an unanswered survey is not a score of 0, and a ratio's units are those with a
/// denominator.
pub fn missing_rule(m: &Metric, rule: MissingOutcomes) -> MissingOutcomes {
    match m.value_type {
        ValueType::Ordinal | ValueType::Ratio => MissingOutcomes::Exclude,
        vt => rule.for_value_type(vt),
    }
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
        } else if self.missing_rule(rule) == MissingOutcomes::Zero {
            Some(0.0)
        } else {
            None
        }
    }

    /// The missing-outcome rule for this metric (see [`missing_rule`]).
    pub fn missing_rule(&self, rule: MissingOutcomes) -> MissingOutcomes {
        missing_rule(&self.metric, rule)
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
    /// The experiment's other SLIs (empty for a one-SLI experiment).
    pub extra_slis: Vec<SliColumn>,
    /// KPIs (in the experiment's order) then guardrails.
    pub metrics: Vec<MetricColumn>,
    pub unassigned_observations: u64,
    pub unassigned_units: u64,
    pub fingerprint: String,
    /// A central value of the SLI (the summary's shift, `store::aggregates::shift_of`): the
    /// baseline strata's cells count values less it (`analysis::threshold::strata_edges`), so
    /// their resolution follows the spread, not the magnitude. 0 when not looked up.
    pub sli_shift: f64,
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

    /// The keys of every SLI, joined with "and" (`latency` or `precision and latency`).
    pub fn sli_keys(&self) -> String {
        std::iter::once(self.sli_metric.key.as_str())
            .chain(self.extra_slis.iter().map(|c| c.metric.key.as_str()))
            .collect::<Vec<_>>()
            .join(" and ")
    }

    /// The number of SLIs (1 + extra).
    pub fn sli_count(&self) -> usize {
        1 + self.extra_slis.len()
    }

    /// The same data seen from SLI `j` (0 = as is): SLI `j` becomes `sli` with its doses as the
    /// arms' `dose`, and the first SLI takes its place among the extra ones. Clones the columns.
    pub fn focus(&self, j: usize) -> UnitData {
        let mut out = self.clone();
        if j == 0 || j > self.extra_slis.len() {
            return out;
        }
        let col = &mut out.extra_slis[j - 1];
        std::mem::swap(&mut out.sli, &mut col.post);
        std::mem::swap(&mut out.sli_pre, &mut col.pre);
        std::mem::swap(&mut out.sli_metric, &mut col.metric);
        for arm in &mut out.arms {
            std::mem::swap(&mut arm.dose, &mut arm.extra_doses[j - 1]);
        }
        out
    }

    /// Units with a value (not NaN) in `values`, per arm.
    pub fn values_per_arm(&self, values: &[f64]) -> Vec<u64> {
        let mut c = vec![0u64; self.arms.len()];
        for (a, v) in self.arm.iter().zip(values) {
            c[*a as usize] += u64::from(!v.is_nan());
        }
        c
    }

    pub fn kpis(&self) -> impl Iterator<Item = (usize, &MetricColumn)> {
        self.metrics
            .iter()
            .enumerate()
            .filter(|(_, m)| m.role == MetricRole::Kpi)
    }
}

use super::hash::{mix, StableHash};

/// The stable hash of a unit id.
fn unit_hash(unit: &str) -> u64 {
    StableHash::default().text(unit).finish()
}

/// The stable hash of an assignment row.
fn assignment_hash(unit: &str, arm_key: &str) -> u64 {
    StableHash::default()
        .text("a")
        .text(unit)
        .text(arm_key)
        .finish()
}

/// The stable hash of a metric key and period.
fn metric_period_hash(key: &str, pre: bool) -> u64 {
    StableHash::default().text(key).int(u64::from(pre)).finish()
}

/// Order-independent fingerprint: wrapping sum and xor of a hash of every row, with counts, so
/// it does not depend on the order (or the parallel split) in which rows are read. Hashes are
/// [`StableHash`]es: an assignment row hashes as `("a", unit, arm key)`; an observation row as
/// `mix(mix(hash(unit) ^ hash(metric key, period)) ^ value bits)`, so a unit's hash is computed
/// once for its consecutive rows. Version 3 (`v3-`): stable hashes (v2 used FxHash).
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
        format!("v3-{:016x}{:016x}-{}", self.sum, self.xor, self.rows)
    }
}

/// Per-unit value planes, in this order: SLI post, SLI pre, then post and pre of each metric
/// column. An observation of metric slot `s` (0 = the SLI) and period `pre` goes to plane
/// `2·s + pre`.
fn plane(slot: usize, pre: bool) -> usize {
    2 * slot + usize::from(pre)
}

/// What one range reader found: its assigned units (key and arm, in the order their assignments
/// were read), their value planes, and the observations of units it knows no assignment of.
pub struct Part {
    /// The experiment's data version in the reader's snapshot.
    version: i64,
    units: Vec<(String, u32)>,
    planes: Vec<Vec<f64>>,
    unassigned_observations: u64,
    /// Units with observations but no assignment.
    unassigned_units: u64,
    /// Rows whose unit number has no text id (none in consistent data).
    orphan_rows: u64,
    fp: Fingerprint,
}

/// What a range reader needs to place rows: arm of each variant id, arm keys, metric slots as
/// (metric id, slot, hash of (key, period) for post and pre) — a handful of entries, scanned
/// linearly per row — and the keys of the experiment's other metrics.
pub struct Layout<'a> {
    arm_of_variant: HashMap<i64, u32>,
    arm_keys: Vec<&'a str>,
    slots: Vec<(i64, usize, [u64; 2])>,
    other_keys: HashMap<i64, &'a str>,
}

impl<'a> Layout<'a> {
    /// The layout of an experiment's data: SLI, then KPIs, then guardrails.
    pub fn of(e: &'a Experiment) -> Layout<'a> {
        Layout {
            arm_of_variant: e
                .variants
                .iter()
                .enumerate()
                .map(|(i, v)| (v.id, i as u32))
                .collect(),
            arm_keys: e.variants.iter().map(|v| v.key.as_str()).collect(),
            slots: e
                .metrics()
                .enumerate()
                .map(|(s, m)| {
                    let key = m.key.as_str();
                    (
                        m.id,
                        s,
                        [
                            metric_period_hash(key, false),
                            metric_period_hash(key, true),
                        ],
                    )
                })
                .collect(),
            other_keys: e.metrics().map(|m| (m.id, m.key.as_str())).collect(),
        }
    }
}

/// Not assigned (in [`Known::place`]).
const NO_PLACE: u32 = u32::MAX;

/// The units of a range, in number order: their text ids and hashes, and where each
/// assigned unit's values go.
#[derive(Default)]
struct Known {
    numbers: Vec<i64>,
    keys: Vec<String>,
    hashes: Vec<u64>,
    /// Index in the part's planes, or [`NO_PLACE`].
    place: Vec<u32>,
    /// Whether an unassigned unit has had an observation.
    seen: Vec<bool>,
    /// Position of the last unit found (rows come in number order).
    cursor: usize,
}

impl Known {
    /// The position of unit `number`, looked for from the last one found on.
    fn find(&mut self, number: i64) -> Option<usize> {
        let at = |i: usize| self.numbers.get(i).copied();
        let i = if at(self.cursor) == Some(number) {
            self.cursor
        } else if at(self.cursor + 1) == Some(number) {
            self.cursor + 1
        } else {
            self.numbers.binary_search(&number).ok()?
        };
        self.cursor = i;
        Some(i)
    }
}

/// Builds one range reader's [`Part`] from its rows: first its units (number and text id, any
/// order), then its assignments, then its observations, each matched to its unit by number.
pub struct PartBuilder<'l, 'a> {
    layout: &'l Layout<'a>,
    part: Part,
    known: Known,
}

impl<'l, 'a> PartBuilder<'l, 'a> {
    /// A builder for a reader that saw the experiment at data version `version`.
    pub fn new(layout: &'l Layout<'a>, version: i64) -> Self {
        PartBuilder {
            layout,
            part: Part {
                version,
                units: Vec::new(),
                planes: Vec::new(),
                unassigned_observations: 0,
                unassigned_units: 0,
                orphan_rows: 0,
                fp: Fingerprint::default(),
            },
            known: Known::default(),
        }
    }

    /// Unit number `number` has the text id `key`.
    pub fn unit(&mut self, number: i64, key: &str) {
        self.known.numbers.push(number);
        self.known.keys.push(key.to_owned());
    }

    /// Ends the units: orders them by number.
    pub fn units_done(&mut self) {
        let k = &mut self.known;
        if !k.numbers.is_sorted() {
            let mut order: Vec<usize> = (0..k.numbers.len()).collect();
            order.sort_unstable_by_key(|&i| k.numbers[i]);
            k.numbers = order.iter().map(|&i| k.numbers[i]).collect();
            k.keys = order
                .iter()
                .map(|&i| std::mem::take(&mut k.keys[i]))
                .collect();
        }
        k.hashes = k.keys.iter().map(|key| unit_hash(key)).collect();
        k.place = vec![NO_PLACE; k.numbers.len()];
        k.seen = vec![false; k.numbers.len()];
    }

    /// Unit `number` was assigned to the variant with id `variant`.
    pub fn assignment(&mut self, number: i64, variant: i64) {
        let layout = self.layout;
        let arm = layout.arm_of_variant.get(&variant).copied().unwrap_or(0);
        let Some(i) = self.known.find(number) else {
            self.part.orphan_rows += 1;
            return;
        };
        // The key moves to the part: observations need only its hash, already computed.
        let key = std::mem::take(&mut self.known.keys[i]);
        self.part
            .fp
            .add(assignment_hash(&key, layout.arm_keys[arm as usize]));
        self.known.place[i] = self.part.units.len() as u32;
        self.part.units.push((key, arm));
    }

    /// Ends the assignments: makes room for the assigned units' values.
    pub fn assignments_done(&mut self) {
        let n = self.part.units.len();
        self.part.planes = vec![vec![f64::NAN; n]; 2 * self.layout.slots.len()];
        self.known.cursor = 0;
    }

    /// The value of metric `metric_id` for unit `number` in the pre (`pre`) or post period.
    pub fn observation(&mut self, number: i64, metric_id: i64, pre: bool, value: f64) {
        let layout = self.layout;
        let part = &mut self.part;
        let slot = layout.slots.iter().find(|s| s.0 == metric_id);
        let metric_period = match slot {
            Some(s) => s.2[usize::from(pre)],
            None => metric_period_hash(
                layout.other_keys.get(&metric_id).copied().unwrap_or(""),
                pre,
            ),
        };
        let known = &mut self.known;
        let Some(i) = known.find(number) else {
            part.orphan_rows += 1;
            return;
        };
        part.fp
            .add_observation(known.hashes[i], metric_period, value);
        let place = known.place[i];
        match slot {
            _ if place == NO_PLACE => {
                part.unassigned_observations += 1;
                if !known.seen[i] {
                    known.seen[i] = true;
                    part.unassigned_units += 1;
                }
            }
            Some(s) => part.planes[plane(s.1, pre)][place as usize] = value,
            None => {}
        }
    }

    pub fn finish(self) -> Part {
        self.part
    }
}

impl Part {
    /// The experiment's data version in the reader's snapshot.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Rows whose unit number had no text id: every upload stores its units with its rows in
    /// one transaction, so any is a broken database, not data to analyse.
    pub fn orphan_rows(&self) -> u64 {
        self.orphan_rows
    }
}

/// An experiment's KPIs (in its order), then its guardrails, with their roles.
pub fn outcome_metrics(e: &Experiment) -> impl Iterator<Item = (&Metric, MetricRole)> {
    e.kpis
        .iter()
        .map(|m| (m, MetricRole::Kpi))
        .chain(e.guardrails.iter().map(|m| (m, MetricRole::Guardrail)))
}

/// Joins the parts of consecutive unit ranges into the experiment's unit columns.
pub fn assemble(e: &Experiment, parts: Vec<Part>) -> UnitData {
    let arms: Vec<Arm> = e
        .variants
        .iter()
        .map(|v| Arm {
            key: v.key.clone(),
            dose: v.dose,
            weight: v.weight,
            control: v.control,
            extra_doses: v.extra_doses.clone(),
        })
        .collect();
    let control = e.variants.iter().position(|v| v.control).unwrap_or(0);
    let n: usize = parts.iter().map(|p| p.units.len()).sum();
    let slots = e.metrics().count();
    let mut units: Vec<(String, u32)> = Vec::with_capacity(n);
    let mut planes: Vec<Vec<f64>> = vec![Vec::with_capacity(n); 2 * slots];
    let mut unassigned_units = 0;
    let mut unassigned_observations = 0;
    let mut fp = Fingerprint::default();
    for part in parts {
        units.extend(part.units);
        for (all, mine) in planes.iter_mut().zip(part.planes) {
            all.extend(mine);
        }
        unassigned_observations += part.unassigned_observations;
        unassigned_units += part.unassigned_units;
        fp = fp.merge(part.fp);
    }
    bytewise_order(&mut units, &mut planes);
    let mut planes = planes.into_iter();
    let mut next = || planes.next().unwrap_or_default();
    let (sli, sli_pre) = (next(), next());
    let extra_slis: Vec<SliColumn> = e
        .extra_slis
        .iter()
        .map(|m| SliColumn {
            metric: m.clone(),
            post: next(),
            pre: next(),
        })
        .collect();
    let mut columns: Vec<MetricColumn> = outcome_metrics(e)
        .map(|(m, role)| MetricColumn {
            metric: m.clone(),
            role,
            post: next(),
            pre: next(),
            parts: None,
        })
        .collect();
    let components: Vec<(String, Vec<f64>)> = e
        .components
        .iter()
        .map(|m| {
            let post = next();
            next();
            (m.key.clone(), post)
        })
        .collect();
    let arm: Vec<u32> = units.iter().map(|u| u.1).collect();
    ratio_columns(&mut columns, &components, (&arm, arms.len()));
    UnitData {
        arms,
        control,
        arm: units.iter().map(|u| u.1).collect(),
        sli,
        sli_pre,
        sli_metric: e.sli.clone(),
        extra_slis,
        metrics: columns,
        unassigned_observations,
        unassigned_units,
        fingerprint: fp.render(),
        sli_shift: 0.0,
    }
}

/// Fills each ratio column's parts from its numerator's and denominator's columns (listed by
/// the experiment, or among its `components`) and replaces its values with the linearized ones.
fn ratio_columns(
    columns: &mut [MetricColumn],
    components: &[(String, Vec<f64>)],
    (arm, arms): (&[u32], usize),
) {
    for c in 0..columns.len() {
        let Some(r) = columns[c].metric.ratio.clone() else {
            continue;
        };
        let find = |key: &str| {
            columns
                .iter()
                .map(|m| (m.metric.key.as_str(), &m.post))
                .chain(components.iter().map(|(k, v)| (k.as_str(), v)))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
        };
        let n = columns[c].post.len();
        let num = find(&r.numerator).unwrap_or_else(|| vec![f64::NAN; n]);
        let den = find(&r.denominator).unwrap_or_else(|| vec![f64::NAN; n]);
        let parts = RatioParts::of(&num, &den);
        let idx: Vec<usize> = (0..n).filter(|&i| !parts.den[i].is_nan()).collect();
        let mut post = vec![f64::NAN; n];
        for (i, l) in idx.iter().zip(parts.linearized(&idx, arm, arms)) {
            post[*i] = l;
        }
        let col = &mut columns[c];
        col.post = post;
        col.pre = vec![f64::NAN; n];
        col.parts = Some(parts);
    }
}

/// Puts joined units (and their values) in bytewise order of their text ids. Ranges come in the
/// order the database returns assignments (unit-number order on SQLite, the order uploads first
/// named the units); ordering by text id makes every result independent of the upload order.
fn bytewise_order(units: &mut Vec<(String, u32)>, planes: &mut [Vec<f64>]) {
    if units.is_sorted_by(|a, b| a.0 <= b.0) {
        return;
    }
    let mut order: Vec<usize> = (0..units.len()).collect();
    order.sort_unstable_by(|&a, &b| units[a].0.cmp(&units[b].0));
    *units = order
        .iter()
        .map(|&i| std::mem::take(&mut units[i]))
        .collect();
    for p in planes {
        *p = order.iter().map(|&i| p[i]).collect();
    }
}
