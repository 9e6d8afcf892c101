//! The per-arm sums of `store::aggregates`, accumulated from an experiment's rows as they
//! stream past instead of by SQL: the embedded SQLite runs in this process, where a
//! `GROUP BY` pivot joined to the assignments costs ~4 s per million units and a scan of the
//! rows in key order ~1 s. Memory holds one (unit number, arm) pair per assigned unit and one
//! unit's values at a time, never the observations.
//!
//! Observations must arrive grouped by unit in order of unit number (the primary-key order);
//! a unit out of that order, or a unit assigned twice, makes [`SumsBuilder::finish`] answer
//! `None`, and the caller asks the database instead.

use super::aggregate_cells::CellsBuilder;
use super::aggregate_knee::KneeBuilder;
use crate::stats::exact_sum::ExactSum;
use crate::store::aggregates::{ArmSums, MetricArmSums, Slot};

/// One arm's and metric's running sums (the fields of [`MetricArmSums`]).
/// Sums are exact ([`ExactSum`]), so they do not depend on the order units are read in (the
/// order uploads numbered them) or on how the units were split between readers.
#[derive(Debug, Clone, Default)]
struct Acc {
    units: i64,
    ones: i64,
    with_sli: i64,
    /// Units with a value and a pre-period value; with a pre-period value only.
    pre_units: i64,
    pre_only_units: i64,
    /// Σy, Σy², Σy|s, Σy²|s, Σs|y, Σs²|y, Σs·y, then of pre-period values x: Σx|y, Σx²|y,
    /// Σx·y, Σy|x, Σx|¬y, Σx²|¬y.
    sums: [ExactSum; 13],
}

impl Acc {
    /// A unit with value `raw` (`y` = raw − shift), shifted SLI value `s` and shifted
    /// pre-period value `x` (NaN: none).
    fn add(&mut self, raw: f64, y: f64, s: f64, x: f64) {
        self.units += 1;
        self.ones += i64::from(raw == 1.0);
        self.sums[0].add(y);
        self.sums[1].add(y * y);
        if !s.is_nan() {
            self.with_sli += 1;
            for (k, v) in [y, y * y, s, s * s, s * y].into_iter().enumerate() {
                self.sums[k + 2].add(v);
            }
        }
        if !x.is_nan() {
            self.pre_units += 1;
            for (k, v) in [x, x * x, x * y, y].into_iter().enumerate() {
                self.sums[k + 7].add(v);
            }
        }
    }

    /// A unit with a shifted pre-period value `x` and no value.
    fn add_pre_only(&mut self, x: f64) {
        self.pre_only_units += 1;
        self.sums[11].add(x);
        self.sums[12].add(x * x);
    }

    /// Adds another set of units' sums.
    fn merge(&mut self, other: &Acc) {
        self.units += other.units;
        self.ones += other.ones;
        self.with_sli += other.with_sli;
        self.pre_units += other.pre_units;
        self.pre_only_units += other.pre_only_units;
        for (x, y) in self.sums.iter_mut().zip(&other.sums) {
            x.merge(y);
        }
    }
}

/// Accumulates [`ArmSums`] from assignments, then observations.
pub struct SumsBuilder {
    /// What has been summed so far.
    sums: StreamedSums,
    /// (unit number, arm index), in unit order.
    units: Vec<(i64, u32)>,
    /// Position in `units` of the first unit not before the current observation's.
    cursor: usize,
    current: Option<i64>,
    /// The current unit's value of each slot's metric, then its pre-period value of each.
    values: Vec<f64>,
    /// Rows of the current unit.
    values_seen: i64,
    broken: bool,
    /// Cells of the units' values, for a bootstrap (see [`SumsBuilder::with_cells`]).
    cells: Option<CellsBuilder>,
    /// What the causal threshold collects (see [`SumsBuilder::with_knees`]).
    knees: Option<KneeBuilder>,
}

/// What a read of some units gives: their exact sums, and the cells and threshold data asked
/// for.
pub struct Streamed {
    pub sums: StreamedSums,
    pub cells: Option<CellsBuilder>,
    pub knees: Option<KneeBuilder>,
}

impl Streamed {
    /// Two ranges' results, added.
    pub fn merge(self, other: Streamed) -> Streamed {
        fn both<T>(a: Option<T>, b: Option<T>, f: impl FnOnce(T, T) -> T) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(f(a, b)),
                (a, b) => a.or(b),
            }
        }
        Streamed {
            sums: self.sums.merge(other.sums),
            cells: both(self.cells, other.cells, CellsBuilder::merge),
            knees: both(self.knees, other.knees, KneeBuilder::merge),
        }
    }
}

impl SumsBuilder {
    /// A builder for the arms `variant_ids` (in the experiment's order) and the SLI and
    /// metrics, each as a [`Slot`]: sums are of value − shift, of the pre-period values less
    /// the pre-period shift (see `store::aggregates::shift_of`).
    pub fn new(variant_ids: Vec<i64>, sli: Slot, metrics: &[Slot]) -> SumsBuilder {
        let mut slots = vec![sli];
        slots.extend(metrics.iter().filter(|m| m.0 != sli.0));
        let arms = variant_ids.len();
        SumsBuilder {
            values: vec![f64::NAN; 2 * slots.len()],
            sums: StreamedSums {
                assigned: vec![0; arms],
                acc: vec![vec![Acc::default(); slots.len()]; arms],
                variant_ids,
                slots,
                unassigned_observations: 0,
            },
            units: Vec::new(),
            cursor: 0,
            current: None,
            values_seen: 0,
            broken: false,
            cells: None,
            knees: None,
        }
    }

    /// Also hands each assigned unit's values to `knees` (the causal threshold's reads).
    pub fn with_knees(mut self, knees: KneeBuilder) -> SumsBuilder {
        self.knees = Some(knees);
        self
    }

    /// Also counts each assigned unit's values into cells, with (SLI, value) pairs of the
    /// metrics `paired` (ids).
    pub fn with_cells(mut self, paired: &[i64]) -> SumsBuilder {
        let shifts = self.sums.slots.iter().map(|s| s.1).collect();
        self.cells = Some(CellsBuilder::new(
            self.sums.variant_ids.len(),
            self.slot_ids(),
            shifts,
            paired,
        ));
        self
    }

    pub fn assignment(&mut self, unit: i64, variant: i64) {
        match self.sums.arm_of(variant) {
            Some(a) => {
                self.units.push((unit, a as u32));
                self.sums.assigned[a] += 1;
            }
            None => self.broken = true,
        }
    }

    /// Ends the assignments: sorts the units (they usually come sorted); a unit assigned twice
    /// breaks the build.
    pub fn assignments_done(&mut self) {
        if !self.units.is_sorted() {
            self.units.sort_unstable();
        }
        if self.units.windows(2).any(|w| w[0].0 == w[1].0) {
            self.broken = true;
        }
    }

    /// One observation row.
    pub fn observation(&mut self, unit: i64, metric: i64, pre: bool, value: f64) {
        if self.current != Some(unit) {
            if let Some(prev) = self.current.take() {
                if unit < prev {
                    self.broken = true;
                }
                self.flush(prev);
            }
            self.current = Some(unit);
        }
        // Rows of unassigned units are counted at the flush, whatever their metric or period.
        self.values_seen += 1;
        if let Some(k) = self.sums.slots.iter().position(|m| m.0 == metric) {
            let period = if pre { self.sums.slots.len() } else { 0 };
            self.values[period + k] = value;
        }
    }

    fn flush(&mut self, unit: i64) {
        let rows = std::mem::take(&mut self.values_seen);
        // Observations come in unit order, so the cursor only moves forward.
        while self.units.get(self.cursor).is_some_and(|u| u.0 < unit) {
            self.cursor += 1;
        }
        match self.units.get(self.cursor) {
            Some(&(u, arm)) if u == unit => self.accumulate(arm as usize),
            _ => self.sums.unassigned_observations += rows,
        }
        self.values.iter_mut().for_each(|v| *v = f64::NAN);
    }

    /// Adds the current unit's values (`self.values`) to arm `arm`'s sums and cells.
    fn accumulate(&mut self, arm: usize) {
        let sums = &mut self.sums;
        let (post, pre) = self.values.split_at(sums.slots.len());
        let s = post[0] - sums.slots[0].1;
        let slots = sums.acc[arm].iter_mut().zip(post.iter().zip(pre));
        for (k, ((acc, (&y, &x)), (_, shift, pre_shift))) in slots.zip(&sums.slots).enumerate() {
            // The SLI's pre-period values (slot 0) enter no sum the summary uses.
            let x = if k == 0 { f64::NAN } else { x };
            if !y.is_nan() {
                acc.add(y, y - shift, s, x - pre_shift);
            } else if !x.is_nan() {
                acc.add_pre_only(x - pre_shift);
            }
        }
        if let Some(c) = self.cells.as_mut() {
            c.unit(arm, post);
        }
        if let Some(k) = self.knees.as_mut() {
            k.unit(arm, post, pre);
        }
    }

    /// One unit read whole (a row of `store::unit_rows`): its variant (`None`: never
    /// assigned, its `rows` observations are counted as unassigned), and its value of each
    /// slot's metric in slot order, then its pre-period value of each (NaN: none), instead of
    /// assignments and observations, `rows` 0 for an assigned unit without observations (it is
    /// counted in its arm). Units may come in any order.
    pub fn unit(&mut self, variant: Option<i64>, rows: i64, values: &[f64]) {
        let Some(variant) = variant else {
            self.sums.unassigned_observations += rows;
            return;
        };
        match self.sums.arm_of(variant) {
            Some(a) if values.len() == self.values.len() => {
                self.sums.assigned[a] += 1;
                // Assigned, without observations: in no sum, as in the streamed rows.
                if rows == 0 {
                    return;
                }
                self.values.copy_from_slice(values);
                self.accumulate(a);
                self.values.iter_mut().for_each(|v| *v = f64::NAN);
            }
            _ => self.broken = true,
        }
    }

    /// The metric ids of the slots, in order (slot 0 is the SLI).
    pub fn slot_ids(&self) -> Vec<i64> {
        self.sums.slots.iter().map(|s| s.0).collect()
    }

    /// The exact sums (and the cells and threshold data, when collected), or `None` when rows
    /// came out of unit order or a unit was assigned twice.
    pub fn finish(mut self) -> Option<Streamed> {
        if let Some(prev) = self.current.take() {
            self.flush(prev);
        }
        if self.broken {
            return None;
        }
        Some(Streamed {
            sums: self.sums,
            cells: self.cells,
            knees: self.knees,
        })
    }
}

/// The exact per-arm sums of some units (one reader's range, or all of them).
pub struct StreamedSums {
    variant_ids: Vec<i64>,
    /// Slot 0 is the SLI.
    slots: Vec<Slot>,
    /// Assigned units per arm.
    assigned: Vec<i64>,
    /// Per arm, per slot.
    acc: Vec<Vec<Acc>>,
    unassigned_observations: i64,
}

impl StreamedSums {
    /// The arm index of a variant id.
    fn arm_of(&self, variant: i64) -> Option<usize> {
        self.variant_ids.iter().position(|v| *v == variant)
    }

    /// The sums of both ranges' units (built for the same arms and metrics), exactly.
    pub fn merge(mut self, other: StreamedSums) -> StreamedSums {
        for (n, m) in self.assigned.iter_mut().zip(other.assigned) {
            *n += m;
        }
        for (mine, theirs) in self.acc.iter_mut().zip(&other.acc) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                a.merge(b);
            }
        }
        self.unassigned_observations += other.unassigned_observations;
        self
    }

    /// The sums, each rounded once.
    pub fn into_sums(self) -> ArmSums {
        let mut metrics = Vec::new();
        for (a, per_slot) in self.acc.iter().enumerate() {
            let kept = |acc: &&Acc| acc.units > 0 || acc.pre_only_units > 0;
            for (k, acc) in per_slot.iter().enumerate().filter(|(_, acc)| kept(acc)) {
                let v = |i: usize| acc.sums[i].value();
                metrics.push(MetricArmSums {
                    variant_id: self.variant_ids[a],
                    metric_id: self.slots[k].0,
                    units: acc.units,
                    ones: acc.ones,
                    value_sum: v(0),
                    value_sq: v(1),
                    with_sli: acc.with_sli,
                    sum_with_sli: v(2),
                    sq_with_sli: v(3),
                    sli_sum: v(4),
                    sli_sq: v(5),
                    sli_cross: v(6),
                    pre_units: acc.pre_units,
                    pre_sum: v(7),
                    pre_sq: v(8),
                    pre_cross: v(9),
                    value_sum_with_pre: v(10),
                    pre_only_units: acc.pre_only_units,
                    pre_only_sum: v(11),
                    pre_only_sq: v(12),
                    shift: self.slots[k].1,
                    pre_shift: self.slots[k].2,
                    sli_shift: self.slots[0].1,
                });
            }
        }
        ArmSums {
            assigned: self
                .variant_ids
                .iter()
                .zip(&self.assigned)
                .filter(|(_, n)| **n > 0)
                .map(|(v, n)| (*v, *n))
                .collect(),
            metrics,
            unassigned_observations: self.unassigned_observations,
        }
    }
}
