//! One Poisson-bootstrap pass shared by every bootstrap of an analysis.
//!
//! When every unit has an SLI value and every KPI/guardrail is defined for every unit (the usual
//! case with `missing_outcomes = zero`), the replicates of all arm differences and all causal
//! slopes come from per-arm weighted sums of the same weights. Columns are processed in chunks
//! of [SLI, up to three metrics] (the sums kernel takes four columns), each chunk with its own
//! stream; a slope's Σw, Σw·x and Σw·y always come from one chunk. Ratio metrics are left out:
//! their comparisons and slopes resample their own units (those with a denominator).

use super::data::UnitData;
use super::report::Parameters;
use super::seed_for;
use crate::stats::bootstrap::poisson_sums;
use crate::stats::StatsResult;

pub struct SharedPass {
    /// For each metric index: (chunk, column within the chunk); None for a ratio metric.
    slot: Vec<Option<(usize, usize)>>,
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
        let mut slot = vec![None; d.metrics.len()];
        for (mi, m) in d.metrics.iter().enumerate() {
            if m.parts.is_some() {
                continue;
            }
            let c: Option<Vec<f64>> = (0..d.len())
                .map(|i| m.outcome(i, p.missing_outcomes))
                .collect();
            match c {
                Some(c) => {
                    slot[mi] = Some((cols.len() / 3, cols.len() % 3 + 2));
                    cols.push(c);
                }
                None => return Ok(None),
            }
        }
        let mut chunks = Vec::new();
        for (k, group) in cols.chunks(3).enumerate() {
            let mut values: Vec<&[f64]> = vec![&d.sli];
            values.extend(group.iter().map(Vec::as_slice));
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

    /// Replicates of mean(metric | arm) − mean(metric | control); None for a ratio metric.
    pub fn difference(&self, metric: usize, arm: usize, control: usize) -> Option<Vec<f64>> {
        let (k, c) = self.slot[metric]?;
        Some(
            self.chunks[k]
                .iter()
                .map(|r| r[arm][c] / r[arm][0] - r[control][c] / r[control][0])
                .collect(),
        )
    }

    /// Per-arm [Σw, Σw·sli, Σw·metric] for each replicate; None for a ratio metric.
    pub fn slope_sums(&self, metric: usize) -> Option<Vec<Vec<[f64; 3]>>> {
        let (k, c) = self.slot[metric]?;
        Some(
            self.chunks[k]
                .iter()
                .map(|r| r.iter().map(|g| [g[0], g[1], g[c]]).collect())
                .collect(),
        )
    }
}
