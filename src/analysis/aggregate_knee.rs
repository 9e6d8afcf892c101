//! The thresholds (knees) of a summary, from units streamed past instead of held
//! (`analysis::threshold` has the methods). Two reads of the units: the first counts the
//! assigned units' pre-period SLI values (less the SLI's shift) into cells, whose quantiles are
//! the baseline strata's edges ([`threshold::strata_edges`], the same edges the analysis
//! takes), and finds the least SLI value; the second counts each KPI's population (units with
//! the SLI and the KPI) into
//! - one pool of (SLI less its least value, KPI less its shift) rows, at most
//!   [`OBSERVED_CELL_CAP`] cells, with the KPI's exact Σ and Σ² (its spread within cells), on which the
//!   observational knee (hinge and Davies test over all units) is fitted and bootstrapped
//!   (`stats::knee::hinge_analysis_cells`); it needs no baseline;
//! - for the causal threshold, each unit with a baseline into its arm × stratum cell, keeping
//!   there exact shifted sums (n, Σu, Σv, Σu², Σv², Σuv of u = SLI − shift, v = KPI − shift),
//!   from which each stratum's 2SLS slope for the no-threshold test is the analysis's to
//!   rounding, and the (SLI less its least value, KPI) rows counted into at most [`CELL_CAP`]
//!   cells, on which the hinge is fitted and bootstrapped
//!   (`stats::iv::IvHingeData::from_cells`).
//!
//! Above the least value the cells bin the spread, not the level. Either hinge is the
//! analysis's when the cells are exact, and within the binning bound of `stats::cells`
//! otherwise.
//!
//! Memory: strata × arms × KPIs cells of at most `CELL_CAP` rows and a pool of at most
//! `OBSERVED_CELL_CAP` per KPI, whatever the number of units.

use super::aggregate_cells::CELL_CAP;
use super::threshold::{self, stratum_of, StratifiedKpi};
use crate::domain::metric::Metric;
use crate::stats::cells::{CellCounter, Cells};
use crate::stats::exact_sum::ExactSum;
use crate::stats::iv::{two_sls_from_arm_moments, ArmMoments, IvHingeData, TwoSls};
use crate::stats::StatsResult;

/// Most cells of a KPI's observational pool (all its units' (SLI, KPI) rows). Both columns are
/// binned at one resolution, so a continuous KPI's bins take room from the SLI's: at 60,000
/// units 4,096 cells left ψ̂'s bootstrap spread 15% short of the units' and the Davies test's
/// ln p 17% off, 16,384 cells 6% and under 0.1% (`stats_simulation::observational_hinge_on_\
/// counted_cells_matches_the_units`). One pool per KPI and unit range: about 5 MB each.
const OBSERVED_CELL_CAP: usize = 1 << 16;

/// One KPI slot of the second read.
#[derive(Debug, Clone)]
pub struct KneeKpi {
    /// The KPI's slot among the streamed values.
    pub slot: usize,
    /// A missing KPI value counts as 0 (the missing-outcome rule), instead of leaving the unit out.
    pub zero: bool,
    /// The shifts of the SLI's and the KPI's values in the exact sums.
    pub shifts: (f64, f64),
}

/// One arm × stratum cell of a KPI.
#[derive(Debug, Clone)]
struct KneeCell {
    units: i64,
    /// Σu, Σv, Σu², Σv², Σuv.
    sums: [ExactSum; 5],
    rows: CellCounter<2>,
}

impl KneeCell {
    fn new() -> KneeCell {
        KneeCell {
            units: 0,
            sums: Default::default(),
            rows: CellCounter::new(CELL_CAP),
        }
    }

    fn merge(&mut self, other: KneeCell) {
        self.units += other.units;
        for (a, b) in self.sums.iter_mut().zip(&other.sums) {
            a.merge(b);
        }
        self.rows.merge(other.rows);
    }
}

/// A KPI's cells in the second read.
#[derive(Debug, Clone)]
struct KpiCells {
    kpi: KneeKpi,
    /// Units with an SLI value and a KPI value (after the rule): the causal population.
    analysed: u64,
    /// The analysed units' (SLI less its least value, KPI less its shift) rows, all arms
    /// together: the observational knee's sample, with the exact Σv and Σv² of v = KPI less
    /// its shift (the spread of the KPI within binned cells).
    observed: CellCounter<2>,
    observed_sums: [ExactSum; 2],
    /// cells[stratum × arms + arm], of the analysed units with a baseline (none without strata).
    cells: Vec<KneeCell>,
}

/// The strata of the first read: their edges (`None` when no assigned unit has a baseline),
/// and the least SLI value of an assigned unit, which the hinges' cells count values above
/// (`analysis::threshold::hinge_offset`).
#[derive(Debug, Clone, PartialEq)]
pub struct KneeStrata {
    pub edges: Option<Vec<f64>>,
    pub x_offset: f64,
}

/// What a read of the units collects for the causal threshold.
#[derive(Debug, Clone)]
pub struct KneeBuilder(Phase);

#[derive(Debug, Clone)]
enum Phase {
    /// First read: the assigned units' pre-period SLI values less `shift`, and the least SLI
    /// value.
    Baselines(CellCounter<1>, f64, f64),
    /// Second read: the KPIs' observational cells and arm × stratum cells, by the strata's
    /// `edges`.
    Cells {
        arms: usize,
        edges: Option<Vec<f64>>,
        x_offset: f64,
        kpis: Vec<KpiCells>,
    },
}

impl KneeBuilder {
    /// The first read's builder; `shift` is the SLI's (`UnitData::sli_shift`).
    pub fn baselines(shift: f64) -> KneeBuilder {
        KneeBuilder(Phase::Baselines(
            CellCounter::new(CELL_CAP),
            shift,
            f64::INFINITY,
        ))
    }

    /// The second read's builder, for `arms` arms and the first read's strata.
    pub fn cells(arms: usize, strata: KneeStrata, kpis: &[KneeKpi]) -> KneeBuilder {
        let KneeStrata { edges, x_offset } = strata;
        let strata = edges.as_ref().map_or(0, |e| e.len() - 1);
        KneeBuilder(Phase::Cells {
            arms,
            edges,
            x_offset,
            kpis: kpis
                .iter()
                .map(|k| KpiCells {
                    kpi: k.clone(),
                    analysed: 0,
                    observed: CellCounter::new(OBSERVED_CELL_CAP),
                    observed_sums: Default::default(),
                    cells: vec![KneeCell::new(); strata * arms],
                })
                .collect(),
        })
    }

    /// One assigned unit of arm `arm`, with its value of each slot (`post`, slot 0 the SLI)
    /// and its pre-period value of each (`pre`); NaN: none.
    pub fn unit(&mut self, arm: usize, post: &[f64], pre: &[f64]) {
        match &mut self.0 {
            Phase::Baselines(c, shift, least) => {
                if !pre[0].is_nan() {
                    c.add([pre[0] - *shift], 1);
                }
                *least = least.min(post[0]);
            }
            Phase::Cells {
                arms,
                edges,
                x_offset,
                kpis,
            } => {
                let (x, baseline) = (post[0], pre[0]);
                if x.is_nan() {
                    return;
                }
                for k in kpis.iter_mut() {
                    let y = match post[k.kpi.slot] {
                        y if !y.is_nan() => y,
                        _ if k.kpi.zero => 0.0,
                        _ => continue,
                    };
                    k.analysed += 1;
                    // Above the least SLI value and less the KPI's shift, so the cells bin the
                    // spread, not the level.
                    let v = y - k.kpi.shifts.1;
                    k.observed.add([x - *x_offset, v], 1);
                    k.observed_sums[0].add(v);
                    k.observed_sums[1].add(v * v);
                    let Some(edges) = edges.as_ref().filter(|_| !baseline.is_nan()) else {
                        continue;
                    };
                    let s = stratum_of(edges, baseline) as usize;
                    let cell = &mut k.cells[s * *arms + arm];
                    let u = x - k.kpi.shifts.0;
                    cell.units += 1;
                    for (sum, t) in cell.sums.iter_mut().zip([u, v, u * u, v * v, u * v]) {
                        sum.add(t);
                    }
                    // The KPI less its shift too: the hinge's slopes and ψ do not depend on
                    // y's level, and its bootstrap keeps y's spread within cells.
                    cell.rows.add([x - *x_offset, v], 1);
                }
            }
        }
    }

    /// Adds another range's units (a builder of the same read).
    pub fn merge(self, other: KneeBuilder) -> KneeBuilder {
        KneeBuilder(match (self.0, other.0) {
            (Phase::Baselines(mut a, shift, x), Phase::Baselines(b, _, y)) => {
                a.merge(b);
                Phase::Baselines(a, shift, x.min(y))
            }
            (
                Phase::Cells {
                    arms,
                    edges,
                    x_offset,
                    mut kpis,
                },
                Phase::Cells { kpis: theirs, .. },
            ) => {
                for (mine, other) in kpis.iter_mut().zip(theirs) {
                    mine.analysed += other.analysed;
                    mine.observed.merge(other.observed);
                    for (a, b) in mine.observed_sums.iter_mut().zip(&other.observed_sums) {
                        a.merge(b);
                    }
                    for (a, b) in mine.cells.iter_mut().zip(other.cells) {
                        a.merge(b);
                    }
                }
                Phase::Cells {
                    arms,
                    edges,
                    x_offset,
                    kpis,
                }
            }
            (mine, _) => mine,
        })
    }

    /// The first read's strata (`None` after a second read).
    pub fn strata(self) -> Option<KneeStrata> {
        match self.0 {
            Phase::Baselines(c, shift, least) => Some(KneeStrata {
                edges: threshold::strata_edges(&c.finish(), shift),
                x_offset: if least.is_finite() { least } else { 0.0 },
            }),
            Phase::Cells { .. } => None,
        }
    }

    /// What the second read found for each KPI (in the order given): its observational cells
    /// and its causal threshold input, or the reason when too few of its units have a baseline.
    /// `metrics[i]` is KPI i.
    pub fn finish<'a>(
        self,
        sli: &'a Metric,
        metrics: &[&'a Metric],
        control: usize,
    ) -> Vec<KneeFound<'a>> {
        let Phase::Cells {
            arms,
            edges,
            x_offset,
            kpis,
        } = self.0
        else {
            return Vec::new();
        };
        kpis.into_iter()
            .zip(metrics)
            .map(|(k, kpi)| {
                let with_baseline: i64 = k.cells.iter().map(|c| c.units).sum();
                let causal =
                    match threshold::too_few_baselines(sli, with_baseline as u64, k.analysed) {
                        Some(reason) => Err(reason),
                        None => Ok(Stratified {
                            sli,
                            kpi,
                            edges: edges.clone().unwrap_or_default(),
                            arms,
                            control,
                            shifts: k.kpi.shifts,
                            x_offset,
                            cells: k.cells,
                        }),
                    };
                KneeFound {
                    observed: k.observed.finish(),
                    offsets: (x_offset, k.kpi.shifts.1),
                    observed_sums: k.observed_sums.map(|s| s.value()),
                    causal,
                }
            })
            .collect()
    }
}

/// A KPI's findings after the second read.
pub struct KneeFound<'a> {
    /// The (SLI − `offsets.0`, KPI − `offsets.1`) rows of its units and their Σ and Σ² of
    /// KPI − `offsets.1`, for the observational knee.
    pub observed: Cells<2>,
    pub offsets: (f64, f64),
    pub observed_sums: [f64; 2],
    /// Its stratified cells, or why it has none.
    pub causal: Result<Stratified<'a>, String>,
}

/// A KPI's stratified cells after the second read.
pub struct Stratified<'a> {
    sli: &'a Metric,
    kpi: &'a Metric,
    edges: Vec<f64>,
    arms: usize,
    control: usize,
    shifts: (f64, f64),
    x_offset: f64,
    cells: Vec<KneeCell>,
}

impl<'a> Stratified<'a> {
    /// The input of [`threshold::causal_from_strata`].
    pub fn input(&'a self) -> StratifiedKpi<'a> {
        let strata = self.edges.len() - 1;
        let slopes = (0..strata).map(|s| self.slope(s)).collect();
        let rows: Vec<Cells<2>> = self.cells.iter().map(|c| c.rows.clone().finish()).collect();
        StratifiedKpi {
            sli: self.sli,
            kpi: self.kpi,
            edges: &self.edges,
            slopes,
            hinge: Box::new(move || IvHingeData::from_cells(&rows, self.arms, strata)),
            x_offset: self.x_offset,
        }
    }

    /// Stratum `s`'s units and its 2SLS fit from the arms' exact sums.
    fn slope(&self, s: usize) -> (u64, StatsResult<TwoSls>) {
        let cells = &self.cells[s * self.arms..(s + 1) * self.arms];
        let moments: Vec<ArmMoments> = cells
            .iter()
            .map(|c| {
                let v = |i: usize| c.sums[i].value();
                ArmMoments::from_shifted_sums(
                    c.units as f64,
                    [v(0), v(1), v(2), v(3), v(4)],
                    self.shifts,
                )
            })
            .collect();
        let units = cells.iter().map(|c| c.units as u64).sum();
        (
            units,
            two_sls_from_arm_moments(&moments, "sli", self.control, true),
        )
    }
}
