//! The seam between live SLOs and the store: load an SLO, its derivation and its SLI's
//! production windows, and evaluate them (status, status series, replay).

use chrono::{DateTime, Utc};

use super::replay::{replay, Replay};
use super::status::{self, SloLiveStatus, StatusContext, StatusPoint};
use super::{CostModel, Timeline};
use crate::domain::metric::Metric;
use crate::domain::series::{SeriesKind, SeriesLayout, SeriesWindow};
use crate::error::{AppError, AppResult, Issue};
use crate::slo::model::{Derivation, Slo, SloSpec};
use crate::slo::service::{recommendation_spec, slo_with_derivation};
use crate::store::series_cache::{SeriesCache, Windows};
use crate::store::{analyses, metrics, series, Db, DbConnection};

/// Most windows one evaluation holds (≈ 139 days of one-minute windows): bounds the memory of
/// a status, a status series or a replay; finer series are read in longer blocks.
pub const MAX_EVALUATED_WINDOWS: i64 = 200_000;

/// Longest range of a status series or a replay, in days.
pub const MAX_RANGE_DAYS: i64 = 92;

/// Most points of a status series.
pub const MAX_SERIES_POINTS: i64 = 5_000;

/// An SLI's production windows over a range ending at `to` (Unix seconds, exclusive).
pub struct ProductionData {
    pub layout: SeriesLayout,
    pub windows: Vec<SeriesWindow>,
    pub to: i64,
    /// How the windows were read (longer blocks for a fine series).
    pub notes: Vec<String>,
}

/// The cost model of a derivation.
pub fn cost_model(d: &Derivation) -> CostModel {
    CostModel {
        baseline: d.baseline_sli,
        relative_slope: d.relative_slope_per_unit.abs(),
        degradation: d.degradation,
    }
}

/// The window length a range of `seconds` is read at: the series' own, or, when that would
/// be more than [`MAX_EVALUATED_WINDOWS`] windows, the shortest multiple of it that keeps within
/// the bound (and divides the SLO window `slo_window` when one does), with a note.
fn read_length(
    layout: &SeriesLayout,
    seconds: i64,
    slo_window: Option<i64>,
    notes: &mut Vec<String>,
) -> i64 {
    let s = i64::from(layout.seconds).max(1);
    let need = (seconds / s + MAX_EVALUATED_WINDOWS - 1) / MAX_EVALUATED_WINDOWS;
    if need <= 1 {
        return s;
    }
    let k = slo_window
        .and_then(|w| (need..=w / s).find(|k| w % (k * s) == 0))
        .unwrap_or(need);
    notes.push(format!(
        "The series' {s}-second windows were read in blocks of {} s to keep the evaluation within {MAX_EVALUATED_WINDOWS} windows.",
        k * s
    ));
    k * s
}

/// The SLI's windows of the last `days` days of its series (plus a day before, for trailing
/// SLO windows), if it has a histogram or event series.
pub fn production(
    conn: &mut DbConnection,
    sli: &Metric,
    days: u32,
) -> AppResult<Option<ProductionData>> {
    let Some(layout) = series::layout(conn, sli.id)? else {
        return Ok(None);
    };
    let Some(latest) = series::latest_start(conn, sli.id)? else {
        return Ok(None);
    };
    let to = latest + i64::from(layout.seconds);
    let span = (i64::from(days.clamp(1, 366)) + 1) * 86_400;
    let mut notes = Vec::new();
    let block = read_length(&layout, span, None, &mut notes);
    let windows = series::windows_in_blocks(conn, sli.id, (to - span, to), block)?;
    let layout = SeriesLayout {
        seconds: block as u32,
        ..layout
    };
    Ok(Some(ProductionData {
        layout,
        windows,
        to,
        notes,
    }))
}

/// The proposed SLO replayed on the last period of `p`.
pub fn replay_last_period(spec: &SloSpec, d: &Derivation, p: &ProductionData) -> Replay {
    let tl = Timeline::build(spec, &p.layout, &p.windows, &cost_model(d));
    let period = i64::from(spec.window_days) * 86_400;
    replay(spec, &tl, &p.windows, p.to - period, p.to)
}

/// The timeline of an SLO over windows starting in [from, to).
fn timeline(
    cache: &SeriesCache,
    conn: &mut DbConnection,
    sli: &Metric,
    spec: &SloSpec,
    d: &Derivation,
    (from, to): (i64, i64),
) -> AppResult<(Timeline, Windows)> {
    let layout = series::layout(conn, sli.id)?.unwrap_or(SeriesLayout {
        kind: SeriesKind::Histogram,
        seconds: 60,
        bounds: vec![],
    });
    let mut notes = Vec::new();
    let slo_window = spec.window_minutes.map(|m| i64::from(m) * 60);
    let block = read_length(&layout, to - from, slo_window, &mut notes);
    let windows = series::windows_cached(cache, conn, &layout, sli.id, (from, to), block)?;
    let layout = SeriesLayout {
        seconds: block as u32,
        ..layout
    };
    let mut tl = Timeline::build(spec, &layout, &windows, &cost_model(d));
    tl.notes.extend(notes);
    Ok((tl, windows))
}

/// Lookback before a period for the first evaluations' trailing SLO windows.
fn lookback(spec: &SloSpec) -> i64 {
    i64::from(spec.window_minutes.unwrap_or(0)) * 60
}

/// The live status of SLO `id` at `at` (default now).
pub fn status(
    db: &Db,
    id: i64,
    at: Option<DateTime<Utc>>,
    max_evidence_age_days: f64,
) -> AppResult<SloLiveStatus> {
    let conn = &mut *db.conn()?;
    let (slo, d, inputs) = slo_with_derivation(conn, id)?;
    let sli = metrics::get(conn, &slo.slo.sli)?;
    let evidence_at = match (
        slo.evidence.analysis_id,
        slo.evidence.observational_analysis_id,
    ) {
        (Some(a), _) => analyses::created_at(conn, a)?,
        (None, Some(o)) => crate::store::observational::created_at(conn, o)?,
        (None, None) => {
            return Err(crate::error::AppError::Internal(anyhow::anyhow!(
                "SLO {id} rests on no analysis"
            )))
        }
    }
    .and_utc();
    let at = at.unwrap_or_else(Utc::now).timestamp();
    let period = i64::from(slo.slo.window_days) * 86_400;
    let range = (at - period - lookback(&slo.slo), at);
    let (tl, windows) = timeline(db.series_cache(), conn, &sli, &slo.slo, &d, range)?;
    let calendar = crate::slo::calendars::of_slo(conn, id)?;
    let cx = StatusContext {
        slo: &slo,
        control_kpi_mean: d.control_kpi_mean,
        units_per_day: inputs.units_per_day,
        value_per_kpi_unit: inputs.value_per_kpi_unit,
        evidence_at,
        max_evidence_age_days,
        calendar: calendar.as_ref(),
    };
    Ok(status::status(&cx, &tl, &windows, at))
}

/// SLO `id` and its timeline over evaluations ending in (from, to] (read with the lookback of
/// its trailing windows), e.g. as a journey's step.
pub fn slo_timeline(db: &Db, id: i64, (from, to): (i64, i64)) -> AppResult<(Slo, Timeline)> {
    let conn = &mut *db.conn()?;
    let (slo, d, _) = slo_with_derivation(conn, id)?;
    let sli = metrics::get(conn, &slo.slo.sli)?;
    let range = (from - lookback(&slo.slo), to);
    let (tl, _) = timeline(db.series_cache(), conn, &sli, &slo.slo, &d, range)?;
    Ok((slo, tl))
}

/// Checks a requested range: `from < to`, at most [`MAX_RANGE_DAYS`].
pub fn check_range(from: i64, to: i64) -> AppResult<()> {
    let problem = if to <= from {
        Some("must be later than from")
    } else if to - from > MAX_RANGE_DAYS * 86_400 {
        Some("the range may span at most 92 days")
    } else {
        None
    };
    match problem {
        Some(m) => Err(AppError::invalid(
            "the range is not valid",
            vec![Issue::field("to", m)],
        )),
        None => Ok(()),
    }
}

/// Budget remaining and 1h burn rate of SLO `id` from `from` to `to` every `step` seconds.
pub fn status_series(
    db: &Db,
    id: i64,
    from: i64,
    to: i64,
    step: i64,
) -> AppResult<Vec<StatusPoint>> {
    check_range(from, to)?;
    if step <= 0 || step > MAX_RANGE_DAYS * 86_400 || (to - from) / step >= MAX_SERIES_POINTS {
        return Err(AppError::invalid(
            "the step is not valid",
            vec![Issue::field(
                "step",
                format!("must be a positive number of seconds giving at most {MAX_SERIES_POINTS} points"),
            )],
        ));
    }
    let conn = &mut *db.conn()?;
    let (slo, d, _) = slo_with_derivation(conn, id)?;
    let sli = metrics::get(conn, &slo.slo.sli)?;
    let period = i64::from(slo.slo.window_days) * 86_400;
    let range = (from - period - lookback(&slo.slo), to);
    let (tl, _) = timeline(db.series_cache(), conn, &sli, &slo.slo, &d, range)?;
    let calendar = crate::slo::calendars::of_slo(conn, id)?;
    Ok(status::series(
        &tl,
        (slo.slo.window_days, slo.slo.target),
        calendar.as_ref(),
        (from, to),
        step,
    ))
}

/// Recommendation `id`'s SLO replayed on its SLI's windows ending in (from, to].
pub fn replay_recommendation(db: &Db, id: i64, from: i64, to: i64) -> AppResult<Replay> {
    check_range(from, to)?;
    let conn = &mut *db.conn()?;
    let (spec, d) = recommendation_spec(conn, id)?;
    let sli = metrics::get(conn, &spec.sli)?;
    let period = i64::from(spec.window_days) * 86_400;
    let range = (from - period - lookback(&spec), to);
    let (tl, windows) = timeline(db.series_cache(), conn, &sli, &spec, &d, range)?;
    Ok(replay(&spec, &tl, &windows, from, to))
}
