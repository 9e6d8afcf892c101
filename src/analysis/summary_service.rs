//! The summary's seam to the store: the per-arm sums of an experiment read by the database
//! (SQL `GROUP BY` over unit ranges, or on PostgreSQL with a bootstrap a cursor over each
//! range's units) or by streaming its rows in key order (SQLite), then summarised.

use super::aggregate::AggregateSummary;
use super::aggregate_boot::BootSettings;
use super::aggregate_knee::{KneeBuilder, KneeKpi, KneeStrata};
use super::aggregate_stream::{Streamed, SumsBuilder};
use super::data::missing_rule;
use super::report::MissingOutcomes;
use super::service::{read_in_ranges, PARALLEL_LOAD_UNITS};
use super::threshold::{self, KneeSettings, CAUSAL_KNEE_RESAMPLES};
use crate::domain::experiment::Experiment;
use crate::domain::metric::Metric;
use crate::error::{AppError, AppResult};
use crate::stats::knee::CountedSample;
use crate::store::aggregates::{arm_sums, ArmSums, Slot, UnitRange};
use crate::store::analyses::{for_each_assignment, for_each_observation};
use crate::store::experiments::data_version;
use crate::store::{read_snapshot, Backend, Db, DbConnection};

/// Longest a summary's aggregation query may run on PostgreSQL.
const SUMMARY_TIMEOUT_SECONDS: u32 = 300;

/// What a summary is asked for: its confidence, the missing-outcome rule, and optionally a
/// bootstrap run on counted cells (`aggregate_boot`).
#[derive(Debug, Clone, Copy)]
pub struct SummaryRequest {
    pub confidence: f64,
    pub rule: super::report::MissingOutcomes,
    /// Multiple-testing correction of the p-values (as an analysis's `correction`).
    pub correction: super::report::Correction,
    pub bootstrap: Option<BootSettings>,
    /// Adjust with each metric's pre-period values (default: when any KPI or guardrail has
    /// them).
    pub cuped: Option<bool>,
    /// The KPIs' observational and causal thresholds (`aggregate_knee`).
    pub thresholds: Option<KneeRequest>,
}

/// How a summary's thresholds are tested and bootstrapped.
#[derive(Debug, Clone, Copy)]
pub struct KneeRequest {
    /// Level of the no-threshold test (as an analysis's `alpha`).
    pub alpha: f64,
    pub seed: u64,
}

/// Summarises an experiment from per-arm sums (see `aggregate`): on PostgreSQL the server
/// computes them (`GROUP BY`, one snapshot); on the embedded SQLite the rows stream through
/// [`SumsBuilder`] in key order, as two unit ranges read at once (as [`load_split`] does),
/// which is faster in-process; the SQL path is its fallback. Neither keeps units' values.
/// A bootstrap counts the units' values into cells as they stream past (SQLite) or from a
/// cursor over the units in the same snapshot as the sums (PostgreSQL); thresholds read the
/// units twice that way (`aggregate_knee`).
pub fn summary(db: &Db, e: &Experiment, r: SummaryRequest) -> AppResult<AggregateSummary> {
    summary_split(db, e, r, PARALLEL_LOAD_UNITS)
}

/// [`summary`], streaming two ranges from `split_from` assigned units on (tests compare).
pub fn summary_split(
    db: &Db,
    e: &Experiment,
    r: SummaryRequest,
    split_from: usize,
) -> AppResult<AggregateSummary> {
    use crate::store::aggregates::{shift_of, slot_of};
    // Sums are of values shifted by a median of observed values of each metric and period
    // (`shift_of`), so the variances computed from them keep their digits (see
    // `ArmMoments::from_shifted_sums`). The SLI's pre-period values enter no sum.
    let (sli, ids) = read_snapshot(&mut *db.conn()?, |conn| {
        pg_summary_settings(conn)?;
        let sli = (e.sli.id, shift_of(conn, e.id, e.sli.id, "post")?, 0.0);
        let ids = (e.kpis.iter().chain(&e.guardrails))
            .map(|m| slot_of(conn, e.id, m.id))
            .collect::<AppResult<Vec<Slot>>>()?;
        Ok((sli, ids))
    })?;
    let slots = (sli, ids.as_slice());
    let knee_kpis = match r.thresholds {
        Some(_) => knee_kpis(e, slots, r.rule),
        None => Vec::new(),
    };
    let paired: Vec<i64> = e.kpis.iter().map(|m| m.id).collect();
    let per_unit = r.bootstrap.is_some() || !knee_kpis.is_empty();
    let read = |edges: &Option<KneeStrata>| {
        let builder = || {
            let mut b = SumsBuilder::new(variant_ids(e), sli, &ids);
            if r.bootstrap.is_some() {
                b = b.with_cells(&paired);
            }
            if let Some(edges) = edges {
                let kpis: Vec<KneeKpi> = knee_kpis.iter().map(|k| k.0.clone()).collect();
                b = b.with_knees(KneeBuilder::cells(e.variants.len(), edges.clone(), &kpis));
            }
            b
        };
        match db.backend() == Backend::Sqlite || per_unit {
            true => read_units(db, e, split_from, builder),
            false => Ok(None),
        }
    };
    let (edges, streamed) = match knee_kpis.is_empty() {
        true => (Baselines::NotAsked, read(&None)?),
        false => read_with_edges(db, e, (sli, split_from), read)?,
    };
    let (sums, cells, knees) = match streamed {
        Some((_, s)) => (s.sums.into_sums(), s.cells, s.knees),
        None => (sql_sums(db, e, slots, split_from)?, None, None),
    };
    let mut out = super::aggregate::summarise(e, &sums, (r.confidence, r.rule), r.cuped)?;
    super::aggregate::adjust(&mut out, r.correction);
    if let Some(b) = r.bootstrap {
        match cells {
            Some(cells) => super::aggregate_boot::attach(&mut out, e, &cells.finish(), &b, r.rule),
            None => out.not_summarised.push(unread(&e.sli.key, "no bootstrap")),
        }
    }
    if let Some(k) = r.thresholds {
        let kpis: Vec<&Metric> = knee_kpis.iter().map(|k| k.1).collect();
        // As an analysis seeds and bounds them: (observational, causal).
        let settings = |m: &Metric| {
            let resamples = r.bootstrap.map_or(CAUSAL_KNEE_RESAMPLES, |b| {
                b.resamples.min(CAUSAL_KNEE_RESAMPLES)
            }) as usize;
            let of = |tag: &str| KneeSettings {
                alpha: k.alpha,
                confidence: r.confidence,
                resamples,
                seed: super::seed_of(k.seed, &format!("{tag}:{}", m.key), 0),
            };
            (of("knee"), of("causal-knee"))
        };
        // As in an analysis, a KPI without a causal slope has no threshold (`not_summarised`
        // says why); its hinge is not fitted.
        let causal: Vec<String> = out.causal.iter().map(|c| c.kpi.clone()).collect();
        let keep = |m: &Metric| causal.contains(&m.key);
        out.thresholds = Some(match (edges, knees) {
            // No KPI can have one here (ratio metrics, several SLIs: `not_summarised`).
            (Baselines::NotAsked, _) => Vec::new(),
            (Baselines::Read, Some(k)) => thresholds(e, &kpis, k, keep, settings),
            (Baselines::Unread | Baselines::Read, _) => {
                out.not_summarised.push(unread(&e.sli.key, "no thresholds"));
                Vec::new()
            }
        });
        for m in e.kpis.iter().filter(|m| m.ratio.is_some()) {
            out.not_summarised.push(super::aggregate::NotSummarised {
                metric: m.key.clone(),
                reason: "its causal threshold needs the ratio linearized per unit; see the \
                         full analysis"
                    .into(),
            });
        }
    }
    Ok(out)
}

/// What is missing when the SQLite rows did not stream in key order.
fn unread(metric: &str, what: &str) -> super::aggregate::NotSummarised {
    super::aggregate::NotSummarised {
        metric: metric.to_owned(),
        reason: format!("{what}: the rows did not stream in key order; see the full analysis"),
    }
}

fn variant_ids(e: &Experiment) -> Vec<i64> {
    e.variants.iter().map(|v| v.id).collect()
}

/// The KPIs whose causal threshold a summary can find: those it has a slope for (not ratio
/// metrics, and not with several SLIs), each with its slot and shifts.
fn knee_kpis<'e>(
    e: &'e Experiment,
    (sli, ids): (Slot, &[Slot]),
    rule: MissingOutcomes,
) -> Vec<(KneeKpi, &'e Metric)> {
    if !e.extra_slis.is_empty() {
        return Vec::new();
    }
    // The builder's slots: the SLI, then the KPIs and guardrails other than the SLI.
    let slot_ids: Vec<i64> = std::iter::once(sli.0)
        .chain(ids.iter().map(|s| s.0).filter(|id| *id != sli.0))
        .collect();
    e.kpis
        .iter()
        .filter(|m| m.ratio.is_none())
        .filter_map(|m| {
            let slot = slot_ids.iter().position(|id| *id == m.id)?;
            let shift = ids.iter().find(|s| s.0 == m.id).map_or(0.0, |s| s.1);
            let kpi = KneeKpi {
                slot,
                zero: missing_rule(m, rule) == MissingOutcomes::Zero,
                shifts: (sli.1, shift),
            };
            Some((kpi, m))
        })
        .collect()
}

/// The observational and the causal threshold, as an analysis gives them, from the second
/// read's cells of each KPI that `keep` accepts.
fn thresholds(
    e: &Experiment,
    kpis: &[&Metric],
    knees: KneeBuilder,
    keep: impl Fn(&Metric) -> bool,
    settings: impl Fn(&Metric) -> (KneeSettings, KneeSettings),
) -> Vec<super::report::Threshold> {
    let control = e.variants.iter().position(|v| v.control).unwrap_or(0);
    let found = knees.finish(&e.sli, kpis, control);
    let mut out = Vec::new();
    for (f, m) in found.iter().zip(kpis).filter(|(_, m)| keep(m)) {
        let (observational, causal) = settings(m);
        let sample = CountedSample {
            cells: &f.observed,
            offsets: f.offsets,
            y_sums: f.observed_sums,
        };
        out.push(threshold::observational_from_cells(
            (&e.sli, m),
            sample,
            observational,
        ));
        out.push(match &f.causal {
            Ok(s) => threshold::causal_from_strata(s.input(), causal),
            Err(reason) => {
                let mut t = threshold::empty_of(&e.sli, m, super::report::Evidence::Causal);
                t.reason = Some(reason.clone());
                t
            }
        });
    }
    out
}

/// Reads the experiment's units into a fresh `builder()` per unit range, from `split_from`
/// assigned units on as two ranges on two connections at once ([`read_in_ranges`]), and adds
/// the ranges' results: on SQLite the rows stream in key order; on PostgreSQL each range's
/// units are read whole by cursor on the summary's fixed plan. `None` when a range's SQLite
/// rows came out of key order (or assigned a unit twice): the caller falls back to SQL.
fn read_units(
    db: &Db,
    e: &Experiment,
    split_from: usize,
    builder: impl Fn() -> SumsBuilder + Sync,
) -> AppResult<Option<(i64, Streamed)>> {
    let postgres = db.backend() == Backend::Postgres;
    let range = |from: Option<i64>, to: Option<i64>| {
        read_snapshot(&mut *db.conn()?, |conn| {
            let version = data_version(conn, e.id)?;
            let mut b = builder();
            if postgres {
                pg_summary_settings(conn)?;
                unit_cursor(conn, e, &mut b, (from, to))?;
            } else {
                for_each_assignment(conn, e.id, from, to, |u, v| b.assignment(u, v))?;
                b.assignments_done();
                for_each_observation(conn, e.id, from, to, |u, m, pre, v| {
                    b.observation(u, m, pre, v)
                })?;
            }
            let found = b.finish();
            if postgres && found.is_none() {
                return Err(AppError::Internal(anyhow::anyhow!(
                    "a unit row of experiment {} had an unknown variant",
                    e.key
                )));
            }
            Ok((version, found.map(|f| (version, f))))
        })
    };
    // The ranges saw one data version (`read_in_ranges` checks), kept with the result.
    let parts: Option<Vec<(i64, Streamed)>> = read_in_ranges(db, e, split_from, range)?
        .into_iter()
        .collect();
    Ok(parts.and_then(|p| {
        p.into_iter()
            .reduce(|(v, a), (_, b)| (v, Streamed::merge(a, b)))
    }))
}

/// The SLI's shift (the median of a few of its values, `shift_of`), as the summary's sums and
/// the baseline strata's cells use it.
pub(super) fn sli_shift(db: &Db, e: &Experiment) -> AppResult<f64> {
    read_snapshot(&mut *db.conn()?, |conn| {
        pg_summary_settings(conn)?;
        crate::store::aggregates::shift_of(conn, e.id, e.sli.id, "post")
    })
}

/// What the first read of the thresholds found.
enum Baselines {
    NotAsked,
    /// The rows did not stream in key order (SQLite).
    Unread,
    /// The strata (when there are baselines) and the least SLI value.
    Read,
}

/// The thresholds' two reads: the baselines' strata edges, then `read(edges)`, which must see
/// the same data version (an upload between them would mix two states of the data and the
/// strata would not be the analysis's); otherwise both are repeated (409 after three tries).
fn read_with_edges(
    db: &Db,
    e: &Experiment,
    (sli, split_from): (Slot, usize),
    read: impl Fn(&Option<KneeStrata>) -> AppResult<Option<(i64, Streamed)>>,
) -> AppResult<(Baselines, Option<(i64, Streamed)>)> {
    const ATTEMPTS: usize = 3;
    for _ in 0..ATTEMPTS {
        // Of the SLI alone: the cursor then carries one metric's values.
        let first = read_units(db, e, split_from, || {
            SumsBuilder::new(variant_ids(e), sli, &[]).with_knees(KneeBuilder::baselines(sli.1))
        })?;
        let Some((version, first)) = first else {
            return Ok((Baselines::Unread, read(&None)?));
        };
        let edges = first.knees.and_then(KneeBuilder::strata);
        let second = read(&edges)?;
        if second.as_ref().is_some_and(|(v, _)| *v != version) {
            continue;
        }
        return Ok((Baselines::Read, second));
    }
    Err(AppError::Conflict(format!(
        "the data of experiment '{}' kept changing between the reads of its thresholds \
         ({ATTEMPTS} attempts); retry when the uploads are done",
        e.key
    )))
}

/// The per-arm sums computed by the database, from `split_from` assigned units on as two unit
/// ranges on two connections at once (see [`read_in_ranges`]; one process each on PostgreSQL,
/// [`pg_summary_settings`]).
fn sql_sums(
    db: &Db,
    e: &Experiment,
    (sli, ids): (Slot, &[Slot]),
    split_from: usize,
) -> AppResult<ArmSums> {
    let range = |from: Option<i64>, to: Option<i64>| {
        read_snapshot(&mut *db.conn()?, |conn| {
            let version = data_version(conn, e.id)?;
            pg_summary_settings(conn)?;
            Ok((version, arm_sums(conn, e.id, sli, ids, (from, to))?))
        })
    };
    let parts = read_in_ranges(db, e, split_from, range)?;
    parts
        .into_iter()
        .reduce(ArmSums::merge)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no unit range of {} was read", e.key)))
}

/// The plan of a summary's query on PostgreSQL, fixed: each unit range is read by one process
/// through the primary keys, in unit order, grouped by unit as it streams, merge-joined with the
/// assignments and summed per arm in a small hash table. Linear in the rows, never spilling the
/// grouping to disk, and the parallelism comes from the ranges on separate connections. Left to
/// itself the planner errs: right after a bulk upload its statistics are stale and it may join
/// every assignment with every observation by nested loops (20 minutes for 220,000 units);
/// with fresh statistics it still underestimates the units (n_distinct 685,276 for 10M) and
/// sorts or hashes every observation with spills to disk (10M units: 25–35 s instead of about
/// 11). The timeout bounds the request whatever happens.
fn pg_summary_settings(conn: &mut DbConnection) -> AppResult<()> {
    use diesel::RunQueryDsl;
    if let DbConnection::Postgresql(c) = conn {
        for setting in [
            "enable_nestloop = off",
            "enable_hashjoin = off",
            "enable_seqscan = off",
            "enable_bitmapscan = off",
            "max_parallel_workers_per_gather = 0",
        ] {
            diesel::sql_query(format!("SET LOCAL {setting}")).execute(c)?;
        }
        diesel::sql_query(format!(
            "SET LOCAL statement_timeout = '{SUMMARY_TIMEOUT_SECONDS}s'"
        ))
        .execute(c)?;
    }
    Ok(())
}

/// Feeds one range's units, read whole by cursor (PostgreSQL), to `b`.
fn unit_cursor(
    conn: &mut DbConnection,
    e: &Experiment,
    b: &mut SumsBuilder,
    range: UnitRange,
) -> AppResult<()> {
    let slots = b.slot_ids();
    crate::store::unit_rows::for_each_unit(conn, e.id, &slots, range, |variant, rows, values| {
        b.unit(variant, rows, values)
    })
}
