//! Counted cells of an experiment's values per arm, for a summary's bootstrap without units
//! (`stats::cells`, `stats::compressed`): per arm and metric the distinct values with their
//! counts, and per arm and KPI the distinct (SLI, KPI) pairs of the units with an SLI value.
//! Values are counted less their metric's shift (the summary's, a median of a few values) and
//! the shift added back to the finished cells, so the cells' resolution follows the values'
//! spread, not their level: counted raw, a KPI of 1e6 ± 5 fell into 2 cells per arm and its
//! bootstrap intervals were 5–6 times too narrow (an outside tester's finding; tested).
//! Memory is bounded by the cells' cap, whatever the number of units.

use crate::stats::cells::{CellCounter, Cells};

/// Most cells per arm and metric (and per arm and SLI–KPI pair): each bootstrap replicate
/// draws one weight per cell.
pub const CELL_CAP: usize = 4096;

/// Accumulates cells unit by unit.
#[derive(Debug, Clone)]
pub struct CellsBuilder {
    /// The metric id of each slot.
    slots: Vec<i64>,
    /// The shift of each slot's values.
    shifts: Vec<f64>,
    /// values[arm][slot]
    values: Vec<Vec<CellCounter<1>>>,
    /// pairs[arm][slot], for the paired slots.
    pairs: Vec<Vec<Option<CellCounter<2>>>>,
}

/// The counted cells of every arm.
#[derive(Debug, Clone)]
pub struct UnitCells {
    /// The metric id of each slot (slot 0: the SLI).
    pub slots: Vec<i64>,
    /// values[arm][slot]: the units with a value of the slot's metric.
    pub values: Vec<Vec<Cells<1>>>,
    /// pairs[arm][slot]: (SLI, value) of the units with an SLI value; the value is NaN for a
    /// unit without one. `None` for slots not paired.
    pub pairs: Vec<Vec<Option<Cells<2>>>>,
}

impl CellsBuilder {
    /// Cells for `arms` arms of the metrics `slots` (ids; slot 0 the SLI) with values less
    /// `shifts` (one per slot), with (SLI, value) pairs of the metrics `paired` (ids).
    pub fn new(arms: usize, slots: Vec<i64>, shifts: Vec<f64>, paired: &[i64]) -> CellsBuilder {
        CellsBuilder {
            shifts,
            values: vec![vec![CellCounter::new(CELL_CAP); slots.len()]; arms],
            pairs: vec![
                slots
                    .iter()
                    .map(|id| paired.contains(id).then(|| CellCounter::new(CELL_CAP)))
                    .collect();
                arms
            ],
            slots,
        }
    }

    /// One assigned unit of `arm` with a value per slot (NaN: none; slot 0 is the SLI).
    pub fn unit(&mut self, arm: usize, values: &[f64]) {
        let s = values[0] - self.shifts[0];
        for (k, v) in values.iter().enumerate() {
            let v = v - self.shifts[k];
            if !v.is_nan() {
                self.values[arm][k].add([v], 1);
            }
            if let (false, Some(p)) = (s.is_nan(), self.pairs[arm][k].as_mut()) {
                p.add([s, v], 1);
            }
        }
    }

    /// Adds the cells of a disjoint set of units.
    pub fn merge(mut self, other: CellsBuilder) -> CellsBuilder {
        for (mine, theirs) in self.values.iter_mut().zip(other.values) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                m.merge(t);
            }
        }
        for (mine, theirs) in self.pairs.iter_mut().zip(other.pairs) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                if let (Some(m), Some(t)) = (m.as_mut(), t) {
                    m.merge(t);
                }
            }
        }
        self
    }

    /// The cells, with their values back on the metrics' scales.
    pub fn finish(self) -> UnitCells {
        let shifts = &self.shifts;
        let values = (self.values.into_iter())
            .map(|a| {
                (a.into_iter().zip(shifts))
                    .map(|(c, shift)| unshift(c.finish(), [*shift]))
                    .collect()
            })
            .collect();
        let pairs = (self.pairs.into_iter())
            .map(|a| {
                (a.into_iter().zip(shifts))
                    .map(|(p, shift)| p.map(|p| unshift(p.finish(), [shifts[0], *shift])))
                    .collect()
            })
            .collect();
        UnitCells {
            slots: self.slots,
            values,
            pairs,
        }
    }
}

/// Cells counted less `shifts`, back on the values' scales (the rows keep their order: adding
/// one constant per column is monotone).
fn unshift<const C: usize>(mut cells: Cells<C>, shifts: [f64; C]) -> Cells<C> {
    for row in &mut cells.rows {
        for (v, shift) in row.iter_mut().zip(shifts) {
            *v += shift;
        }
    }
    cells
}
