//! The metric catalog.

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::schema::{metric_parents, metrics};
use super::{now, DbConnection, Page};
use crate::domain::metric::{
    Direction, Layer, Metric, MetricKind, NewMetric, PrometheusQueries, ValueType,
};
use crate::domain::Slug;
use crate::error::{AppError, AppResult, Issue};

/// A `metrics` row; enums are read through their `TryFrom<String>` (an unknown stored text is
/// an error, never a default).
#[derive(Queryable, Selectable)]
#[diesel(table_name = metrics)]
struct MetricRow {
    id: i64,
    key: String,
    name: String,
    description: Option<String>,
    #[diesel(deserialize_as = String)]
    kind: MetricKind,
    #[diesel(deserialize_as = String)]
    value_type: ValueType,
    unit: String,
    #[diesel(deserialize_as = String)]
    direction: Direction,
    #[diesel(deserialize_as = String)]
    layer: Layer,
    created_at: NaiveDateTime,
    prometheus_good_events: Option<String>,
    prometheus_total_events: Option<String>,
    /// JSON array of bucket bounds.
    prometheus_buckets: Option<String>,
    /// JSON of the Prometheus source of its production series.
    prometheus_source: Option<String>,
    /// JSON of a ratio metric's parts.
    ratio_of: Option<String>,
    /// JSON of an ordinal metric's scale.
    ordinal_scale: Option<String>,
}

/// Reads a stored JSON column of metric `key`; unreadable JSON is an internal error.
fn stored<T: serde::de::DeserializeOwned>(
    key: &str,
    what: &str,
    text: Option<&str>,
) -> AppResult<Option<T>> {
    text.map(serde_json::from_str).transpose().map_err(|e| {
        AppError::Internal(anyhow::anyhow!(
            "stored {what} of metric '{key}' cannot be read: {e}"
        ))
    })
}

/// A value as stored JSON text.
fn json<T: serde::Serialize>(v: Option<&T>) -> AppResult<Option<String>> {
    v.map(serde_json::to_string)
        .transpose()
        .map_err(|e| AppError::Internal(e.into()))
}

impl MetricRow {
    fn into_metric(self, parents: Vec<String>) -> AppResult<Metric> {
        let key = self.key.as_str();
        let buckets = stored(key, "buckets", self.prometheus_buckets.as_deref())?;
        let source = stored(key, "Prometheus source", self.prometheus_source.as_deref())?;
        let ratio = stored(key, "ratio parts", self.ratio_of.as_deref())?;
        let scale = stored(key, "ordinal scale", self.ordinal_scale.as_deref())?;
        Ok(Metric {
            id: self.id,
            key: self.key,
            name: self.name,
            description: self.description,
            kind: self.kind,
            value_type: self.value_type,
            unit: self.unit,
            direction: self.direction,
            layer: self.layer,
            parents,
            created_at: self.created_at,
            prometheus: PrometheusQueries {
                good_events: self.prometheus_good_events,
                total_events: self.prometheus_total_events,
                buckets,
                source,
            },
            ratio,
            scale,
        })
    }
}

/// Maps a unique-key violation to a 409 with `message`, anything else to an internal error.
pub(crate) fn unique_or_internal(e: DieselError, message: String) -> AppError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            AppError::Conflict(message)
        }
        other => other.into(),
    }
}

/// Ids of the metrics with the given keys (missing keys are absent from the map).
pub fn ids_by_key(conn: &mut DbConnection, keys: &[&str]) -> AppResult<HashMap<String, i64>> {
    let mut out = HashMap::new();
    for chunk in keys.chunks(500) {
        let rows: Vec<(String, i64)> = metrics::table
            .filter(metrics::key.eq_any(chunk))
            .select((metrics::key, metrics::id))
            .load(conn)?;
        out.extend(rows);
    }
    Ok(out)
}

/// Stores a new metric; 409 if the key exists, 422 if a parent does not exist.
pub fn create(conn: &mut DbConnection, m: &NewMetric) -> AppResult<Metric> {
    super::serializable(conn, |conn| {
        let parent_keys: Vec<&str> = m.parents.iter().map(Slug::as_str).collect();
        let parent_ids = ids_by_key(conn, &parent_keys)?;
        let missing: Vec<Issue> = m
            .parents
            .iter()
            .enumerate()
            .filter(|(_, p)| !parent_ids.contains_key(p.as_str()))
            .map(|(i, p)| {
                Issue::field(
                    format!("parents[{i}]"),
                    format!("no metric with key '{p}'; create parents first"),
                )
            })
            .collect();
        if !missing.is_empty() {
            return Err(AppError::invalid(
                "the metric names parents that do not exist",
                missing,
            ));
        }
        check_ratio_parts(conn, m)?;
        let conflict = || format!("a metric with key '{}' already exists", m.key);
        let buckets = json(m.prometheus.buckets.as_ref())?;
        let source = json(m.prometheus.source.as_ref())?;
        diesel::insert_into(metrics::table)
            .values((
                metrics::key.eq(m.key.as_str()),
                metrics::name.eq(&m.name),
                metrics::description.eq(&m.description),
                metrics::kind.eq(m.kind.as_str()),
                metrics::value_type.eq(m.value_type.as_str()),
                metrics::unit.eq(&m.unit),
                metrics::direction.eq(m.direction.as_str()),
                metrics::layer.eq(m.layer.as_str()),
                metrics::created_at.eq(now()),
                metrics::prometheus_good_events.eq(&m.prometheus.good_events),
                metrics::prometheus_total_events.eq(&m.prometheus.total_events),
                metrics::prometheus_buckets.eq(buckets),
                metrics::prometheus_source.eq(source),
                metrics::ratio_of.eq(json(m.ratio.as_ref())?),
                metrics::ordinal_scale.eq(json(m.scale.as_ref())?),
            ))
            .execute(conn)
            .map_err(|e| unique_or_internal(e, conflict()))?;
        let id: i64 = metrics::table
            .filter(metrics::key.eq(m.key.as_str()))
            .select(metrics::id)
            .first(conn)?;
        for (pos, p) in m.parents.iter().enumerate() {
            diesel::insert_into(metric_parents::table)
                .values((
                    metric_parents::metric_id.eq(id),
                    metric_parents::parent_id.eq(parent_ids[p.as_str()]),
                    metric_parents::position.eq(pos as i32),
                ))
                .execute(conn)?;
        }
        get(conn, m.key.as_str())
    })
}

/// A ratio's numerator and denominator must be catalog metrics with values of their own.
fn check_ratio_parts(conn: &mut DbConnection, m: &NewMetric) -> AppResult<()> {
    let Some(r) = &m.ratio else {
        return Ok(());
    };
    let keys = [r.numerator.as_str(), r.denominator.as_str()];
    let rows: Vec<(String, String)> = metrics::table
        .filter(metrics::key.eq_any(keys))
        .select((metrics::key, metrics::value_type))
        .load(conn)?;
    let mut issues = Vec::new();
    for (field, k) in [("ratio.numerator", keys[0]), ("ratio.denominator", keys[1])] {
        match rows.iter().find(|(key, _)| key == k) {
            None => issues.push(Issue::field(
                field,
                format!("no metric with key '{k}'; create the parts first"),
            )),
            Some((_, vt)) if vt == ValueType::Ratio.as_str() => issues.push(Issue::field(
                field,
                format!("'{k}' is itself a ratio; name metrics with values of their own"),
            )),
            Some(_) => {}
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(AppError::invalid("the ratio's parts do not fit", issues))
    }
}

/// Parent keys of each of the given metric ids.
fn parents_of(conn: &mut DbConnection, ids: &[i64]) -> AppResult<HashMap<i64, Vec<String>>> {
    let rows: Vec<(i64, String)> = metric_parents::table
        .inner_join(metrics::table.on(metrics::id.eq(metric_parents::parent_id)))
        .filter(metric_parents::metric_id.eq_any(ids))
        .order((metric_parents::metric_id, metric_parents::position))
        .select((metric_parents::metric_id, metrics::key))
        .load(conn)?;
    let mut out: HashMap<i64, Vec<String>> = HashMap::new();
    for (id, key) in rows {
        out.entry(id).or_default().push(key);
    }
    Ok(out)
}

/// The metric with this key, or 404.
pub fn get(conn: &mut DbConnection, key: &str) -> AppResult<Metric> {
    let row = metrics::table
        .filter(metrics::key.eq(key))
        .select(MetricRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("metric", key))?;
    let mut parents = parents_of(conn, &[row.id])?;
    let p = parents.remove(&row.id).unwrap_or_default();
    row.into_metric(p)
}

/// Metrics in creation order, one page (`limit + 1` rows) at a time.
pub fn list(conn: &mut DbConnection, page: Page) -> AppResult<Vec<Metric>> {
    let rows = metrics::table
        .filter(metrics::id.gt(page.after_id))
        .order(metrics::id)
        .limit(page.limit + 1)
        .select(MetricRow::as_select())
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut parents = parents_of(conn, &ids)?;
    rows.into_iter()
        .map(|r| {
            let p = parents.remove(&r.id).unwrap_or_default();
            r.into_metric(p)
        })
        .collect()
}

/// The metrics with these ids, by id.
pub fn by_ids(conn: &mut DbConnection, ids: &[i64]) -> AppResult<HashMap<i64, Metric>> {
    let rows = metrics::table
        .filter(metrics::id.eq_any(ids))
        .select(MetricRow::as_select())
        .load(conn)?;
    let mut parents = parents_of(conn, ids)?;
    rows.into_iter()
        .map(|r| {
            let p = parents.remove(&r.id).unwrap_or_default();
            r.into_metric(p).map(|m| (m.id, m))
        })
        .collect()
}

/// Keys of the metrics that name a Prometheus source, in creation order.
pub fn with_source(conn: &mut DbConnection) -> AppResult<Vec<String>> {
    Ok(metrics::table
        .filter(metrics::prometheus_source.is_not_null())
        .order(metrics::id)
        .select(metrics::key)
        .load(conn)?)
}

/// Every SLI whose ancestors (through `parents`, any depth) include `key`, in key order.
pub fn slis_under(conn: &mut DbConnection, key: &str) -> AppResult<Vec<Metric>> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = list(
            conn,
            Page {
                after_id: after,
                limit: 500,
            },
        )?;
        let more = page.len() > 500;
        after = page.iter().take(500).map(|m| m.id).max().unwrap_or(after);
        all.extend(page.into_iter().take(500));
        if !more {
            break;
        }
    }
    let mut children: HashMap<&str, Vec<&Metric>> = HashMap::new();
    for m in &all {
        for p in &m.parents {
            children.entry(p.as_str()).or_default().push(m);
        }
    }
    let (mut seen, mut queue, mut out) = (HashSet::new(), VecDeque::from([key]), Vec::new());
    while let Some(k) = queue.pop_front() {
        for c in children.get(k).into_iter().flatten() {
            if seen.insert(c.key.as_str()) {
                queue.push_back(c.key.as_str());
                if c.kind == MetricKind::Sli {
                    out.push((*c).clone());
                }
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}
