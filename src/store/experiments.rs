//! Experiments, their metrics and their variants.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::metrics::{self, unique_or_internal, Metric};
use super::schema::{experiment_metrics, experiments, variants};
use super::{now, DbConnection, Page};
use crate::domain::experiment::NewExperiment;
use crate::domain::metric::MetricKind;
use crate::domain::Slug;
use crate::error::{AppError, AppResult, Issue};

/// A variant (arm) as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub id: i64,
    pub key: String,
    pub weight: f64,
    pub control: bool,
    pub dose: f64,
}

/// An experiment as stored, with its metrics resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub hypothesis: String,
    pub journey: Option<String>,
    pub sli: Metric,
    pub kpis: Vec<Metric>,
    pub guardrails: Vec<Metric>,
    pub variants: Vec<Variant>,
    pub created_at: NaiveDateTime,
}

impl Experiment {
    /// Every metric of the experiment: SLI, KPIs, guardrails.
    pub fn metrics(&self) -> impl Iterator<Item = &Metric> {
        std::iter::once(&self.sli)
            .chain(&self.kpis)
            .chain(&self.guardrails)
    }
}

type ExperimentRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    i64,
    NaiveDateTime,
    i64,
);

/// Stores a new experiment; 409 if the key exists, 422 if a metric is missing or of the wrong kind.
pub fn create(conn: &mut DbConnection, e: &NewExperiment) -> AppResult<Experiment> {
    conn.transaction(|conn| {
        let keys: Vec<&str> = e.metric_keys().map(Slug::as_str).collect();
        let ids = metrics::ids_by_key(conn, &keys)?;
        let found = metrics::by_ids(conn, &ids.values().copied().collect::<Vec<_>>())?;
        let mut issues = Vec::new();
        let mut check =
            |field: String, key: &Slug, want: Option<MetricKind>| match ids.get(key.as_str()) {
                None => issues.push(Issue::field(field, format!("no metric with key '{key}'"))),
                Some(id) => match want {
                    Some(kind) if found[id].kind != kind => issues.push(Issue::field(
                        field,
                        format!("metric '{key}' is a {}, not a {kind}", found[id].kind),
                    )),
                    _ => {}
                },
            };
        check("sli".into(), &e.sli, Some(MetricKind::Sli));
        for (i, k) in e.kpis.iter().enumerate() {
            check(format!("kpis[{i}]"), k, Some(MetricKind::Kpi));
        }
        for (i, k) in e.guardrails.iter().enumerate() {
            check(format!("guardrails[{i}]"), k, None);
        }
        if !issues.is_empty() {
            return Err(AppError::invalid(
                "the experiment names metrics that do not fit",
                issues,
            ));
        }

        diesel::insert_into(experiments::table)
            .values((
                experiments::key.eq(e.key.as_str()),
                experiments::name.eq(&e.name),
                experiments::hypothesis.eq(&e.hypothesis),
                experiments::journey.eq(&e.journey),
                experiments::sli_metric_id.eq(ids[e.sli.as_str()]),
                experiments::created_at.eq(now()),
            ))
            .execute(conn)
            .map_err(|err| {
                unique_or_internal(
                    err,
                    format!("an experiment with key '{}' already exists", e.key),
                )
            })?;
        let id: i64 = experiments::table
            .filter(experiments::key.eq(e.key.as_str()))
            .select(experiments::id)
            .first(conn)?;
        let roles = e
            .kpis
            .iter()
            .map(|k| ("kpi", k))
            .chain(e.guardrails.iter().map(|k| ("guardrail", k)));
        for (pos, (role, k)) in roles.enumerate() {
            diesel::insert_into(experiment_metrics::table)
                .values((
                    experiment_metrics::experiment_id.eq(id),
                    experiment_metrics::metric_id.eq(ids[k.as_str()]),
                    experiment_metrics::role.eq(role),
                    experiment_metrics::position.eq(pos as i32),
                ))
                .execute(conn)?;
        }
        for (pos, v) in e.variants.iter().enumerate() {
            diesel::insert_into(variants::table)
                .values((
                    variants::experiment_id.eq(id),
                    variants::key.eq(v.key.as_str()),
                    variants::weight.eq(v.weight),
                    variants::is_control.eq(v.control),
                    variants::dose.eq(v.dose),
                    variants::position.eq(pos as i32),
                ))
                .execute(conn)?;
        }
        get(conn, e.key.as_str())
    })
}

/// Resolves metrics and variants of experiment rows with three queries in all.
fn hydrate(conn: &mut DbConnection, rows: Vec<ExperimentRow>) -> AppResult<Vec<Experiment>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let links: Vec<(i64, i64, String)> = experiment_metrics::table
        .filter(experiment_metrics::experiment_id.eq_any(&ids))
        .order((
            experiment_metrics::experiment_id,
            experiment_metrics::position,
        ))
        .select((
            experiment_metrics::experiment_id,
            experiment_metrics::metric_id,
            experiment_metrics::role,
        ))
        .load(conn)?;
    let vrows: Vec<(i64, i64, String, f64, bool, f64)> = variants::table
        .filter(variants::experiment_id.eq_any(&ids))
        .order((variants::experiment_id, variants::position))
        .select((
            variants::experiment_id,
            variants::id,
            variants::key,
            variants::weight,
            variants::is_control,
            variants::dose,
        ))
        .load(conn)?;
    let mut metric_ids: Vec<i64> = links
        .iter()
        .map(|l| l.1)
        .chain(rows.iter().map(|r| r.5))
        .collect();
    metric_ids.sort_unstable();
    metric_ids.dedup();
    let metrics = metrics::by_ids(conn, &metric_ids)?;
    let metric = |id: &i64| {
        metrics
            .get(id)
            .cloned()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("metric {id} vanished")))
    };
    let mut out = Vec::with_capacity(rows.len());
    for (id, key, name, hypothesis, journey, sli_id, created_at, _data_version) in rows {
        let mut kpis = Vec::new();
        let mut guardrails = Vec::new();
        for (_, mid, role) in links.iter().filter(|l| l.0 == id) {
            let m = metric(mid)?;
            if role == "kpi" {
                kpis.push(m)
            } else {
                guardrails.push(m)
            }
        }
        let variants = vrows
            .iter()
            .filter(|v| v.0 == id)
            .map(|v| Variant {
                id: v.1,
                key: v.2.clone(),
                weight: v.3,
                control: v.4,
                dose: v.5,
            })
            .collect();
        out.push(Experiment {
            id,
            key,
            name,
            hypothesis,
            journey,
            sli: metric(&sli_id)?,
            kpis,
            guardrails,
            variants,
            created_at,
        });
    }
    Ok(out)
}

/// The experiment with this key, or 404.
pub fn get(conn: &mut DbConnection, key: &str) -> AppResult<Experiment> {
    let row: ExperimentRow = experiments::table
        .filter(experiments::key.eq(key))
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("experiment", key))?;
    hydrate(conn, vec![row])?
        .pop()
        .ok_or_else(|| AppError::not_found("experiment", key))
}

/// Experiments in creation order, one page (`limit + 1` rows) at a time.
pub fn list(conn: &mut DbConnection, page: Page) -> AppResult<Vec<Experiment>> {
    let rows: Vec<ExperimentRow> = experiments::table
        .filter(experiments::id.gt(page.after_id))
        .order(experiments::id)
        .limit(page.limit + 1)
        .load(conn)?;
    hydrate(conn, rows)
}

/// Marks the experiment's data as changed (inside the uploading transaction).
pub fn bump_data_version(conn: &mut DbConnection, experiment_id: i64) -> AppResult<()> {
    diesel::update(experiments::table.find(experiment_id))
        .set(experiments::data_version.eq(experiments::data_version + 1))
        .execute(conn)?;
    Ok(())
}

/// The experiment's data version: it changes with every upload that changes its data.
pub fn data_version(conn: &mut DbConnection, experiment_id: i64) -> AppResult<i64> {
    Ok(experiments::table
        .find(experiment_id)
        .select(experiments::data_version)
        .first(conn)?)
}

/// Variant ids by key, for resolving uploaded rows.
pub fn variant_ids(e: &Experiment) -> HashMap<String, i64> {
    e.variants.iter().map(|v| (v.key.clone(), v.id)).collect()
}
