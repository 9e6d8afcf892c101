//! Recommendations, their review history, and published SLOs.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{recommendation_events as ev, recommendations as rec, slos};
use super::{now, with_backend, DbConnection};
use crate::error::{AppError, AppResult};

/// A stored recommendation; `document` is the JSON body the `slo` module defines.
#[derive(Debug, Clone, PartialEq)]
pub struct RecommendationRow {
    pub id: i64,
    pub analysis_id: i64,
    pub sli_metric_id: i64,
    pub kpi_metric_id: i64,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub created_by: String,
    pub document: String,
    pub slo_id: Option<i64>,
}

type RecRow = (i64, i64, i64, i64, String, NaiveDateTime, String, String);

/// A recorded transition.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub at: NaiveDateTime,
    pub actor: String,
    pub action: String,
    pub comment: Option<String>,
}

/// A published SLO with its recommendation.
#[derive(Debug, Clone, PartialEq)]
pub struct SloRow {
    pub id: i64,
    pub status: String,
    pub published_at: NaiveDateTime,
    pub superseded_at: Option<NaiveDateTime>,
    pub superseded_by: Option<i64>,
    pub recommendation: RecommendationRow,
}

type SloDbRow = (
    i64,
    i64,
    i64,
    i64,
    String,
    NaiveDateTime,
    Option<NaiveDateTime>,
    Option<i64>,
);

fn event(
    conn: &mut DbConnection,
    id: i64,
    actor: &str,
    action: &str,
    comment: Option<&str>,
) -> AppResult<()> {
    diesel::insert_into(ev::table)
        .values((
            ev::recommendation_id.eq(id),
            ev::at.eq(now()),
            ev::actor.eq(actor),
            ev::action.eq(action),
            ev::comment.eq(comment),
        ))
        .execute(conn)?;
    Ok(())
}

fn slo_of(conn: &mut DbConnection, recommendation_id: i64) -> AppResult<Option<i64>> {
    Ok(slos::table
        .filter(slos::recommendation_id.eq(recommendation_id))
        .select(slos::id)
        .first(conn)
        .optional()?)
}

fn from_row(conn: &mut DbConnection, r: RecRow) -> AppResult<RecommendationRow> {
    let slo_id = slo_of(conn, r.0)?;
    Ok(RecommendationRow {
        id: r.0,
        analysis_id: r.1,
        sli_metric_id: r.2,
        kpi_metric_id: r.3,
        status: r.4,
        created_at: r.5,
        created_by: r.6,
        document: r.7,
        slo_id,
    })
}

/// Stores a proposed recommendation and records who proposed it.
pub fn insert(
    conn: &mut DbConnection,
    analysis_id: i64,
    sli_metric_id: i64,
    kpi_metric_id: i64,
    actor: &str,
    document: impl FnOnce(i64) -> AppResult<String>,
) -> AppResult<RecommendationRow> {
    conn.transaction(|conn| {
        let values = (
            rec::analysis_id.eq(analysis_id),
            rec::sli_metric_id.eq(sli_metric_id),
            rec::kpi_metric_id.eq(kpi_metric_id),
            rec::status.eq("proposed"),
            rec::created_at.eq(now()),
            rec::created_by.eq(actor),
            rec::document.eq(""),
        );
        let id: i64 = with_backend!(conn, |c| diesel::insert_into(rec::table)
            .values(values)
            .returning(rec::id)
            .get_result(c))?;
        let doc = document(id)?;
        diesel::update(rec::table.find(id))
            .set(rec::document.eq(&doc))
            .execute(conn)?;
        event(conn, id, actor, "proposed", None)?;
        get(conn, id)
    })
}

/// The recommendation with this id, or 404.
pub fn get(conn: &mut DbConnection, id: i64) -> AppResult<RecommendationRow> {
    let r: RecRow = rec::table
        .find(id)
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("recommendation", id))?;
    from_row(conn, r)
}

/// Recommendations in creation order, optionally with one status.
pub fn list(
    conn: &mut DbConnection,
    status: Option<&str>,
    after_id: i64,
    limit: i64,
) -> AppResult<Vec<RecommendationRow>> {
    let mut q = rec::table.filter(rec::id.gt(after_id)).into_boxed();
    if let Some(s) = status {
        q = q.filter(rec::status.eq(s));
    }
    let rows: Vec<RecRow> = q.order(rec::id).limit(limit).load(conn)?;
    rows.into_iter().map(|r| from_row(conn, r)).collect()
}

/// Approves or rejects a proposed recommendation. Approval publishes an SLO and marks the
/// active SLO of the same SLI and KPI (if any) superseded. 409 unless the recommendation is proposed.
pub fn decide(
    conn: &mut DbConnection,
    id: i64,
    approve: bool,
    actor: &str,
    comment: Option<&str>,
) -> AppResult<RecommendationRow> {
    conn.transaction(|conn| {
        let r = get(conn, id)?;
        if r.status != "proposed" {
            return Err(AppError::Conflict(format!(
                "recommendation {id} is already {}; only proposed ones can be decided",
                r.status
            )));
        }
        let status = if approve { "approved" } else { "rejected" };
        let changed = diesel::update(rec::table.find(id).filter(rec::status.eq("proposed")))
            .set(rec::status.eq(status))
            .execute(conn)?;
        if changed != 1 {
            return Err(AppError::Conflict(format!(
                "recommendation {id} was decided concurrently"
            )));
        }
        event(conn, id, actor, status, comment)?;
        if approve {
            let at = now();
            let previous: Vec<(i64, i64)> = slos::table
                .filter(slos::sli_metric_id.eq(r.sli_metric_id))
                .filter(slos::kpi_metric_id.eq(r.kpi_metric_id))
                .filter(slos::status.eq("active"))
                .select((slos::id, slos::recommendation_id))
                .load(conn)?;
            let values = (
                slos::recommendation_id.eq(id),
                slos::sli_metric_id.eq(r.sli_metric_id),
                slos::kpi_metric_id.eq(r.kpi_metric_id),
                slos::status.eq("active"),
                slos::published_at.eq(at),
            );
            let slo_id: i64 = with_backend!(conn, |c| diesel::insert_into(slos::table)
                .values(values)
                .returning(slos::id)
                .get_result(c))?;
            event(
                conn,
                id,
                actor,
                "published",
                Some(&format!("published as SLO {slo_id}")),
            )?;
            for (old, old_rec) in previous {
                diesel::update(slos::table.find(old))
                    .set((
                        slos::status.eq("superseded"),
                        slos::superseded_at.eq(at),
                        slos::superseded_by.eq(slo_id),
                    ))
                    .execute(conn)?;
                event(
                    conn,
                    old_rec,
                    actor,
                    "superseded",
                    Some(&format!("SLO {old} superseded by SLO {slo_id}")),
                )?;
            }
        }
        get(conn, id)
    })
}

/// Every transition of a recommendation, oldest first.
pub fn history(conn: &mut DbConnection, id: i64) -> AppResult<Vec<EventRow>> {
    get(conn, id)?;
    let rows: Vec<(NaiveDateTime, String, String, Option<String>)> = ev::table
        .filter(ev::recommendation_id.eq(id))
        .order(ev::id)
        .select((ev::at, ev::actor, ev::action, ev::comment))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(at, actor, action, comment)| EventRow {
            at,
            actor,
            action,
            comment,
        })
        .collect())
}

fn slo_from(conn: &mut DbConnection, s: SloDbRow) -> AppResult<SloRow> {
    let recommendation = get(conn, s.1)?;
    Ok(SloRow {
        id: s.0,
        status: s.4,
        published_at: s.5,
        superseded_at: s.6,
        superseded_by: s.7,
        recommendation,
    })
}

/// The published SLO with this id, or 404.
pub fn get_slo(conn: &mut DbConnection, id: i64) -> AppResult<SloRow> {
    let s: SloDbRow = slos::table
        .find(id)
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("SLO", id))?;
    slo_from(conn, s)
}

/// Published SLOs in publication order.
pub fn list_slos(conn: &mut DbConnection, after_id: i64, limit: i64) -> AppResult<Vec<SloRow>> {
    let rows: Vec<SloDbRow> = slos::table
        .filter(slos::id.gt(after_id))
        .order(slos::id)
        .limit(limit)
        .load(conn)?;
    rows.into_iter().map(|s| slo_from(conn, s)).collect()
}
