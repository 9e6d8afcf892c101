//! The seam of early warnings (`slo::early_warning`): the lead found again on the SLO's SLI as
//! the SLO governs it (its percentile per window), among every upstream SLI of it plus the
//! indicator (so the Holm correction counts the whole family), the level derived and replayed,
//! and the rule stored with the SLO.

use chrono::Utc;

use super::early_warning::{
    derive, statement, Derived, EarlyWarning, EarlyWarningRequest, LevelSource, Objective,
};
use super::model::{Evaluation, Slo, SloStatus};
use crate::analysis::indicators::{
    compute, sli_with_series, Candidate, Reading, Scope, MAX_CANDIDATES,
};
use crate::analysis::leading::LeadStatus;
use crate::domain::metric::Metric;
use crate::domain::series::SeriesKind;
use crate::error::{AppError, AppResult, Issue};
use crate::store::{early_warnings as store, metrics, series, Db, DbConnection};

fn invalid(field: &str, message: impl Into<String>) -> AppError {
    AppError::invalid(
        "the early warning cannot be attached",
        vec![Issue::field(field, message)],
    )
}

fn parse(text: &str) -> AppResult<EarlyWarning> {
    serde_json::from_str(text).map_err(|e| {
        AppError::Internal(anyhow::anyhow!("stored early warning cannot be read: {e}"))
    })
}

/// The SLI's upstream SLIs with series, and the indicator among them.
fn family(
    conn: &mut DbConnection,
    target: &Metric,
    indicator: &Metric,
) -> AppResult<Vec<Candidate>> {
    let mut out = Vec::new();
    let mut slis = metrics::slis_under(conn, &target.key)?;
    if !slis.iter().any(|m| m.id == indicator.id) {
        slis.push(indicator.clone());
    }
    for m in slis {
        let l = series::layout(conn, m.id)?.filter(|l| l.kind != SeriesKind::Values);
        out.push((m, l));
    }
    if out.len() > MAX_CANDIDATES {
        return Err(invalid(
            "indicator",
            format!(
                "'{}' has {} upstream SLIs with series; at most {MAX_CANDIDATES} are compared",
                target.key,
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// The percentile an active SLO governs and its window in seconds (409 for a superseded
/// SLO, 422 for one that counts requests or events).
fn governed(slo: &Slo) -> AppResult<(u32, i64)> {
    if slo.status != SloStatus::Active {
        return Err(AppError::Conflict(format!(
            "SLO {} is {}; attach the warning to its successor{}",
            slo.id,
            slo.status,
            slo.superseded_by
                .map_or(String::new(), |s| format!(" (SLO {s})"))
        )));
    }
    match (slo.slo.evaluation, slo.slo.percentile) {
        (Evaluation::Windows, Some(p)) => {
            Ok((p, i64::from(slo.slo.window_minutes.unwrap_or(1)) * 60))
        }
        _ => Err(invalid(
            "id",
            "early warnings predict bad windows of a percentile; this SLO counts requests or events",
        )),
    }
}

/// A share is read from the metric's event templates; ones written for an SLO's threshold (a
/// bucket at `{{le}}`) have no meaning without one. A share's level is in [0, 1].
fn check_indicator(ind: &Metric, share: bool, level: Option<f64>) -> AppResult<()> {
    let templates = [&ind.prometheus.good_events, &ind.prometheus.total_events];
    if share
        && templates
            .iter()
            .filter_map(|t| t.as_deref())
            .any(|t| t.contains("{{threshold") || t.contains("{{le"))
    {
        return Err(invalid(
            "indicator",
            "its PromQL event templates depend on an SLO's threshold (`{{threshold…}}` or `{{le…}}`); an early warning reads its good share without one",
        ));
    }
    if share && level.is_some_and(|l| !(0.0..=1.0).contains(&l)) {
        return Err(invalid("level", "a good share's level is in [0, 1]"));
    }
    Ok(())
}

const ONE_WINDOW: &str = "it leads by one window only, which cannot be told from the two series being sampled at slightly different times; an early warning needs a lead of two windows or more";

/// A learned warning must show its worth on the history it was not learned on: some bad
/// windows warned, and a precision above chance.
fn shows_its_worth(d: &Derived) -> AppResult<()> {
    let h = &d.held_out;
    match (h.precision, h.chance_precision) {
        _ if d.source == LevelSource::Given => {}
        (Some(p), Some(c)) if h.warned_bad_windows > 0 && p > c => {}
        _ => {
            return Err(invalid(
                "indicator",
                format!(
                    "on the held-out last third of the history the rule does not beat chance: {} of {} bad windows warned, precision {} against {} for warnings at random",
                    h.warned_bad_windows,
                    h.bad_windows,
                    h.precision.map_or("—".to_owned(), |p| format!("{:.0}%", 100.0 * p)),
                    h.chance_precision
                        .map_or("—".to_owned(), |p| format!("{:.0}%", 100.0 * p)),
                ),
            ))
        }
    }
    Ok(())
}

/// Attaches (or replaces) SLO `slo_id`'s early warning on SLI `indicator`; true when new.
pub fn put(
    db: &Db,
    slo_id: i64,
    indicator: &str,
    r: &EarlyWarningRequest,
    actor: &str,
) -> AppResult<(EarlyWarning, bool)> {
    let slo = super::service::slo(db, slo_id)?;
    let (percentile, window_seconds) = governed(&slo)?;
    let scope = Scope::parse(&r.max_lag, (r.from, r.to), r.alpha)?;
    let conn = &mut *db.conn()?;
    let (target, layout) = sli_with_series(conn, "id", &slo.slo.sli)?;
    if layout.kind != SeriesKind::Histogram {
        return Err(invalid(
            "id",
            "the SLO's SLI has no histogram series to read its percentile from",
        ));
    }
    let (ind, ind_layout) = sli_with_series(conn, "indicator", indicator)?;
    if ind.id == target.id {
        return Err(invalid("indicator", "is the SLO's own SLI"));
    }
    let reading_is_share = ind_layout.kind == SeriesKind::Events;
    check_indicator(&ind, reading_is_share, r.level)?;
    let cands = family(conn, &target, &ind)?;
    let reading = Reading::percentile(f64::from(percentile) / 100.0);
    if window_seconds % i64::from(layout.seconds) != 0 {
        return Err(invalid(
            "id",
            format!(
                "the SLO's {window_seconds}-second windows are not whole windows of its SLI's {}-second series",
                layout.seconds
            ),
        ));
    }
    // The SLI is read per SLO window, as the SLO judges it: bad windows are the SLO's.
    let f = compute(
        conn,
        (&target, &layout),
        &reading,
        &cands,
        scope,
        window_seconds,
    )?;
    let li = f
        .indicators
        .iter()
        .find(|l| l.sli == ind.key)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("the indicator was not compared")))?;
    let (Some(lead), Some(p_holm), Some(rho), LeadStatus::Leads) =
        (li.lead_windows, li.p_holm, li.r, li.status)
    else {
        return Err(invalid("indicator", li.summary.clone()));
    };
    if lead < 2 {
        return Err(invalid("indicator", ONE_WINDOW));
    }
    let (target_grid, cand, block) = f
        .pairs
        .get(&ind.key)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("the indicator has no grid")))?;
    let objective = Objective {
        threshold: slo.slo.threshold,
        comparison: slo.slo.comparison,
    };
    let d = derive(
        (&target_grid.points, &cand.points),
        *block,
        lead as usize,
        objective,
        r.level,
    )
    .map_err(|(field, why)| invalid(field, why))?;
    shows_its_worth(&d)?;
    let at = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap_or_default();
    let mut w = EarlyWarning {
        slo_id,
        indicator: ind.key.clone(),
        statistic: cand.statistic.clone(),
        target_statistic: reading.label.clone(),
        window_seconds: *block,
        lead_seconds: i64::from(lead) * block,
        r: rho,
        p_holm,
        level: d.level,
        when: d.when,
        level_source: d.source,
        from: li.from.unwrap_or_else(|| at(f.from)),
        to: li.to.unwrap_or_else(|| at(f.to)),
        held_out: d.held_out,
        replay: d.replay,
        statement: String::new(),
        derived_by: actor.to_owned(),
        derived_at: Utc::now(),
    };
    let unit = if reading_is_share {
        ""
    } else {
        ind.unit.as_str()
    };
    w.statement = statement(&w, &slo, unit);
    let doc = crate::domain::document::to_stored_document(&w).map_err(|e| {
        AppError::Internal(anyhow::anyhow!("the early warning cannot be stored: {e:?}"))
    })?;
    let created = store::put(conn, (slo_id, ind.id), &doc, actor)?;
    Ok((parse(&doc)?, created))
}

/// The SLO's early warnings (404 for an unknown SLO).
pub fn list(db: &Db, slo_id: i64) -> AppResult<Vec<EarlyWarning>> {
    super::service::slo(db, slo_id)?;
    store::list(&mut *db.conn()?, slo_id)?
        .iter()
        .map(|d| parse(d))
        .collect()
}

/// The SLO's early warning on `indicator` (404 when there is none).
pub fn get(db: &Db, slo_id: i64, indicator: &str) -> AppResult<EarlyWarning> {
    list(db, slo_id)?
        .into_iter()
        .find(|w| w.indicator == indicator)
        .ok_or_else(|| AppError::not_found("early warning", indicator))
}

/// Removes the SLO's early warning on `indicator` (404 when there is none).
pub fn delete(db: &Db, slo_id: i64, indicator: &str) -> AppResult<()> {
    super::service::slo(db, slo_id)?;
    let conn = &mut *db.conn()?;
    let m = metrics::get(conn, indicator)?;
    if store::delete(conn, (slo_id, m.id))? {
        Ok(())
    } else {
        Err(AppError::not_found("early warning", indicator))
    }
}

/// The SLO's early warnings with their indicators' metrics, for the rules export.
pub fn with_metrics(
    conn: &mut DbConnection,
    slo_id: i64,
) -> AppResult<Vec<(EarlyWarning, Metric)>> {
    let mut out = Vec::new();
    for d in store::list(conn, slo_id)? {
        let w = parse(&d)?;
        let m = metrics::get(conn, &w.indicator)?;
        out.push((w, m));
    }
    Ok(out)
}
