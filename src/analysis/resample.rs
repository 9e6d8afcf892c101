//! One Poisson-bootstrap pass shared by every bootstrap of an analysis.
//!
//! When every unit has an SLI value and every KPI/guardrail is defined for every unit (the usual
//! case with `missing_outcomes = zero`), the replicates of all arm differences and all causal
//! slopes come from per-arm weighted sums of the same weights. Columns are processed in chunks
//! of [SLI, up to three metrics] (the sums kernel takes four columns), each chunk with its own
//! stream; a slope's Σw, Σw·x and Σw·y always come from one chunk.

use super::data::UnitData;
use super::report::Parameters;
use super::seed_for;
use crate::stats::bootstrap::poisson_sums;
use crate::stats::StatsResult;

pub struct SharedPass {
    /// For each metric index: (chunk, column within the chunk).
    slot: Vec<(usize, usize)>,
    /// chunks[k][b][arm] = [Σw, Σw·sli, Σw·m₁, …].
    chunks: Vec<Vec<Vec<Vec<f64>>>>,
}

impl SharedPass {
    /// Builds the pass, or `None` when some unit lacks a value (then callers resample per comparison).
    pub fn build(d: &UnitData, p: &Parameters) -> StatsResult<Option<SharedPass>> {
        if d.sli.iter().any(|v| v.is_nan()) {
            return Ok(None);
        }
        let mut cols: Vec<Vec<f64>> = Vec::new();
        for m in &d.metrics {
            let c: Option<Vec<f64>> = (0..d.len())
                .map(|i| m.outcome(i, p.missing_outcomes))
                .collect();
            match c {
                Some(c) => cols.push(c),
                None => return Ok(None),
            }
        }
        let mut slot = Vec::new();
        let mut chunks = Vec::new();
        for (k, group) in cols.chunks(3).enumerate() {
            let mut values: Vec<&[f64]> = vec![&d.sli];
            values.extend(group.iter().map(Vec::as_slice));
            for j in 0..group.len() {
                slot.push((k, j + 2));
            }
            let seed = seed_for(p, "shared-pass", k);
            chunks.push(poisson_sums(
                &d.arm,
                d.arms.len(),
                &values,
                p.bootstrap.resamples as usize,
                seed,
            )?);
        }
        Ok(Some(SharedPass { slot, chunks }))
    }

    /// Replicates of mean(metric | arm) − mean(metric | control).
    pub fn difference(&self, metric: usize, arm: usize, control: usize) -> Vec<f64> {
        let (k, c) = self.slot[metric];
        self.chunks[k]
            .iter()
            .map(|r| r[arm][c] / r[arm][0] - r[control][c] / r[control][0])
            .collect()
    }

    /// Per-arm [Σw, Σw·sli, Σw·metric] for each replicate.
    pub fn slope_sums(&self, metric: usize) -> Vec<Vec<[f64; 3]>> {
        let (k, c) = self.slot[metric];
        self.chunks[k]
            .iter()
            .map(|r| r.iter().map(|g| [g[0], g[1], g[c]]).collect())
            .collect()
    }
}
