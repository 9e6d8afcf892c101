//! Recommendations, their review history, and published SLOs.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{recommendation_events as ev, recommendations as rec, slos};
use super::{now, with_backend, DbConnection, Page};
use crate::domain::review::{Action, RecommendationStatus, SloStatus};
use crate::error::{AppError, AppResult};

/// A stored recommendation; `document` is the JSON body the `slo` module defines.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecommendation {
    pub id: i64,
    pub source: Source,
    pub sli_metric_id: i64,
    pub kpi_metric_id: i64,
    pub status: RecommendationStatus,
    pub created_at: NaiveDateTime,
    pub created_by: String,
    pub document: String,
    pub slo_id: Option<i64>,
}

/// What a recommendation rests on: an experiment's analysis, or an observational analysis of
/// production history (correlational evidence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Analysis(i64),
    Observational(i64),
}

/// A `recommendations` row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = rec)]
struct RecommendationRow {
    id: i64,
    analysis_id: Option<i64>,
    observational_analysis_id: Option<i64>,
    sli_metric_id: i64,
    kpi_metric_id: i64,
    #[diesel(deserialize_as = String)]
    status: RecommendationStatus,
    created_at: NaiveDateTime,
    created_by: String,
    document: String,
}

/// A recorded transition.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = ev)]
pub struct ReviewEvent {
    pub at: NaiveDateTime,
    pub actor: String,
    #[diesel(deserialize_as = String)]
    pub action: Action,
    pub comment: Option<String>,
}

/// A published SLO with its recommendation.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSlo {
    pub id: i64,
    pub status: SloStatus,
    pub published_at: NaiveDateTime,
    pub superseded_at: Option<NaiveDateTime>,
    pub superseded_by: Option<i64>,
    pub recommendation: StoredRecommendation,
    /// The latest re-validation, if any.
    pub revalidation: Option<super::revalidations::StoredRevalidation>,
    /// The key of the business calendar it follows, if any.
    pub calendar: Option<String>,
}

/// A `slos` row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = slos)]
struct SloRow {
    id: i64,
    recommendation_id: i64,
    #[diesel(deserialize_as = String)]
    status: SloStatus,
    published_at: NaiveDateTime,
    superseded_at: Option<NaiveDateTime>,
    superseded_by: Option<i64>,
    revalidation_id: Option<i64>,
    calendar_id: Option<i64>,
}

fn event(
    conn: &mut DbConnection,
    id: i64,
    actor: &str,
    action: Action,
    comment: Option<&str>,
) -> AppResult<()> {
    diesel::insert_into(ev::table)
        .values((
            ev::recommendation_id.eq(id),
            ev::at.eq(now()),
            ev::actor.eq(actor),
            ev::action.eq(action.as_str()),
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

fn with_slo(conn: &mut DbConnection, r: RecommendationRow) -> AppResult<StoredRecommendation> {
    let slo_id = slo_of(conn, r.id)?;
    let source = match (r.analysis_id, r.observational_analysis_id) {
        (Some(a), _) => Source::Analysis(a),
        (None, Some(o)) => Source::Observational(o),
        (None, None) => {
            return Err(AppError::Internal(anyhow::anyhow!(
                "recommendation {} rests on no analysis",
                r.id
            )))
        }
    };
    Ok(StoredRecommendation {
        id: r.id,
        source,
        sli_metric_id: r.sli_metric_id,
        kpi_metric_id: r.kpi_metric_id,
        status: r.status,
        created_at: r.created_at,
        created_by: r.created_by,
        document: r.document,
        slo_id,
    })
}

/// Stores a proposed recommendation and records who proposed it.
pub fn insert(
    conn: &mut DbConnection,
    source: Source,
    sli_metric_id: i64,
    kpi_metric_id: i64,
    actor: &str,
    document: impl FnOnce(i64) -> AppResult<String>,
) -> AppResult<StoredRecommendation> {
    super::transaction(conn, |conn| {
        let (analysis, observational) = match source {
            Source::Analysis(a) => (Some(a), None),
            Source::Observational(o) => (None, Some(o)),
        };
        let values = (
            rec::analysis_id.eq(analysis),
            rec::observational_analysis_id.eq(observational),
            rec::sli_metric_id.eq(sli_metric_id),
            rec::kpi_metric_id.eq(kpi_metric_id),
            rec::status.eq(RecommendationStatus::Proposed.as_str()),
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
        event(conn, id, actor, Action::Proposed, None)?;
        get(conn, id)
    })
}

/// The recommendation with this id, or 404.
pub fn get(conn: &mut DbConnection, id: i64) -> AppResult<StoredRecommendation> {
    let r = rec::table
        .find(id)
        .select(RecommendationRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("recommendation", id))?;
    with_slo(conn, r)
}

/// Recommendations in creation order, optionally with one status.
pub fn list(
    conn: &mut DbConnection,
    status: Option<RecommendationStatus>,
    page: Page,
) -> AppResult<Vec<StoredRecommendation>> {
    list_where(conn, status, false, page)
}

/// A page of the recommendations no longer proposed (decided or superseded), oldest first.
pub fn list_decided(conn: &mut DbConnection, page: Page) -> AppResult<Vec<StoredRecommendation>> {
    list_where(conn, Some(RecommendationStatus::Proposed), true, page)
}

fn list_where(
    conn: &mut DbConnection,
    status: Option<RecommendationStatus>,
    except: bool,
    page: Page,
) -> AppResult<Vec<StoredRecommendation>> {
    let mut q = rec::table.filter(rec::id.gt(page.after_id)).into_boxed();
    match (status, except) {
        (Some(s), false) => q = q.filter(rec::status.eq(s.as_str())),
        (Some(s), true) => q = q.filter(rec::status.ne(s.as_str())),
        (None, _) => {}
    }
    let rows = q
        .order(rec::id)
        .limit(page.limit + 1)
        .select(RecommendationRow::as_select())
        .load(conn)?;
    rows.into_iter().map(|r| with_slo(conn, r)).collect()
}

/// Approves or rejects a proposed recommendation. Approval publishes an SLO and marks the
/// active SLO of the same SLI and KPI (if any) superseded. 409 unless the recommendation is proposed.
pub fn decide(
    conn: &mut DbConnection,
    id: i64,
    approve: bool,
    actor: &str,
    comment: Option<&str>,
) -> AppResult<StoredRecommendation> {
    super::serializable(conn, |conn| {
        let r = get(conn, id)?;
        if r.status != RecommendationStatus::Proposed {
            return Err(AppError::Conflict(format!(
                "recommendation {id} is already {}; only proposed ones can be decided",
                r.status
            )));
        }
        let (status, action) = if approve {
            (RecommendationStatus::Approved, Action::Approved)
        } else {
            (RecommendationStatus::Rejected, Action::Rejected)
        };
        let proposed = RecommendationStatus::Proposed.as_str();
        let changed = diesel::update(rec::table.find(id).filter(rec::status.eq(proposed)))
            .set(rec::status.eq(status.as_str()))
            .execute(conn)?;
        if changed != 1 {
            return Err(AppError::Conflict(format!(
                "recommendation {id} was decided concurrently"
            )));
        }
        event(conn, id, actor, action, comment)?;
        if approve {
            let at = now();
            let previous: Vec<(i64, i64, Option<i64>)> = slos::table
                .filter(slos::sli_metric_id.eq(r.sli_metric_id))
                .filter(slos::kpi_metric_id.eq(r.kpi_metric_id))
                .filter(slos::status.eq(SloStatus::Active.as_str()))
                .select((slos::id, slos::recommendation_id, slos::calendar_id))
                .load(conn)?;
            // The successor follows its predecessor's business calendar.
            let calendar = previous.iter().find_map(|p| p.2);
            // The old SLO steps down before the new one is published: at most one SLO of a
            // pair is active at any moment (a partial unique index enforces it).
            let old_ids: Vec<i64> = previous.iter().map(|(old, _, _)| *old).collect();
            diesel::update(slos::table.filter(slos::id.eq_any(&old_ids)))
                .set((
                    slos::status.eq(SloStatus::Superseded.as_str()),
                    slos::superseded_at.eq(at),
                ))
                .execute(conn)?;
            let values = (
                slos::recommendation_id.eq(id),
                slos::sli_metric_id.eq(r.sli_metric_id),
                slos::kpi_metric_id.eq(r.kpi_metric_id),
                slos::status.eq(SloStatus::Active.as_str()),
                slos::published_at.eq(at),
                slos::calendar_id.eq(calendar),
            );
            let slo_id: i64 = with_backend!(conn, |c| diesel::insert_into(slos::table)
                .values(values)
                .returning(slos::id)
                .get_result(c))
            .map_err(|e| match e {
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) => AppError::Conflict(format!(
                    "another SLO of this SLI and KPI was published concurrently; \
                     recommendation {id} stays proposed"
                )),
                e => e.into(),
            })?;
            event(
                conn,
                id,
                actor,
                Action::Published,
                Some(&format!("published as SLO {slo_id}")),
            )?;
            diesel::update(slos::table.filter(slos::id.eq_any(&old_ids)))
                .set(slos::superseded_by.eq(slo_id))
                .execute(conn)?;
            for (old, old_rec, _) in previous {
                event(
                    conn,
                    old_rec,
                    actor,
                    Action::Superseded,
                    Some(&format!("SLO {old} superseded by SLO {slo_id}")),
                )?;
            }
        }
        get(conn, id)
    })
}

/// Every transition of a recommendation, oldest first.
pub fn history(conn: &mut DbConnection, id: i64) -> AppResult<Vec<ReviewEvent>> {
    get(conn, id)?;
    Ok(ev::table
        .filter(ev::recommendation_id.eq(id))
        .order(ev::id)
        .select(ReviewEvent::as_select())
        .load(conn)?)
}

fn slo_from(conn: &mut DbConnection, s: SloRow) -> AppResult<StoredSlo> {
    let recommendation = get(conn, s.recommendation_id)?;
    let revalidation = match s.revalidation_id {
        Some(id) => super::revalidations::get(conn, id)?,
        None => None,
    };
    let calendar = match s.calendar_id {
        Some(id) => Some(super::calendars::by_id(conn, id)?.key),
        None => None,
    };
    Ok(StoredSlo {
        calendar,
        revalidation,
        id: s.id,
        status: s.status,
        published_at: s.published_at,
        superseded_at: s.superseded_at,
        superseded_by: s.superseded_by,
        recommendation,
    })
}

/// The published SLO with this id, or 404.
pub fn get_slo(conn: &mut DbConnection, id: i64) -> AppResult<StoredSlo> {
    let s = slos::table
        .find(id)
        .select(SloRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("SLO", id))?;
    slo_from(conn, s)
}

/// Published SLOs in publication order, one page (`limit + 1` rows) at a time.
pub fn list_slos(conn: &mut DbConnection, page: Page) -> AppResult<Vec<StoredSlo>> {
    let rows = slos::table
        .filter(slos::id.gt(page.after_id))
        .order(slos::id)
        .limit(page.limit + 1)
        .select(SloRow::as_select())
        .load(conn)?;
    rows.into_iter().map(|s| slo_from(conn, s)).collect()
}

/// The active SLO of an SLI and a KPI, if any.
pub fn active_slo(
    conn: &mut DbConnection,
    (sli_metric_id, kpi_metric_id): (i64, i64),
) -> AppResult<Option<StoredSlo>> {
    let row = slos::table
        .filter(slos::sli_metric_id.eq(sli_metric_id))
        .filter(slos::kpi_metric_id.eq(kpi_metric_id))
        .filter(slos::status.eq(SloStatus::Active.as_str()))
        .select(SloRow::as_select())
        .first(conn)
        .optional()?;
    row.map(|s| slo_from(conn, s)).transpose()
}
