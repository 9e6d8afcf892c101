//! Experiments, their metrics and their variants.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::metrics::{self, unique_or_internal};
use super::schema::{experiment_metrics, experiment_slis, experiments, variant_doses, variants};
use super::{now, DbConnection, Page};
use crate::domain::experiment::{Experiment, MetricRole, NewExperiment, Variant};
use crate::domain::metric::{Metric, MetricKind};
use crate::domain::Slug;
use crate::error::{AppError, AppResult, Issue};

/// An `experiments` row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = experiments)]
struct ExperimentRow {
    id: i64,
    key: String,
    name: String,
    hypothesis: String,
    journey: Option<String>,
    sli_metric_id: i64,
    created_at: NaiveDateTime,
}

/// A `variants` row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = variants)]
struct VariantRow {
    experiment_id: i64,
    id: i64,
    key: String,
    weight: f64,
    is_control: bool,
    dose: f64,
}

/// An `experiment_metrics` row: a KPI or guardrail of an experiment.
#[derive(Queryable, Selectable)]
#[diesel(table_name = experiment_metrics)]
struct ExperimentMetricRow {
    experiment_id: i64,
    metric_id: i64,
    #[diesel(deserialize_as = String)]
    role: MetricRole,
}

/// What does not fit among the experiment's metrics: unknown keys, wrong kinds, a ratio of one
/// of its own SLIs.
fn metric_issues(
    e: &NewExperiment,
    ids: &HashMap<String, i64>,
    found: &HashMap<i64, Metric>,
) -> Vec<Issue> {
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
    for (i, k) in e.extra_slis.iter().enumerate() {
        check(format!("extra_slis[{i}]"), k, Some(MetricKind::Sli));
    }
    for (i, k) in e.kpis.iter().enumerate() {
        check(format!("kpis[{i}]"), k, Some(MetricKind::Kpi));
    }
    for (i, k) in e.guardrails.iter().enumerate() {
        check(format!("guardrails[{i}]"), k, None);
    }
    let listed = e.kpis.iter().map(|k| ("kpis", k));
    for (i, (role, k)) in listed
        .enumerate()
        .chain(e.guardrails.iter().map(|k| ("guardrails", k)).enumerate())
    {
        let ratio = ids
            .get(k.as_str())
            .and_then(|id| found.get(id)?.ratio.as_ref());
        let own_sli = std::iter::once(&e.sli).chain(&e.extra_slis).find(|s| {
            ratio.is_some_and(|r| r.numerator == s.as_str() || r.denominator == s.as_str())
        });
        if let Some(sli) = own_sli {
            issues.push(Issue::field(
                format!("{role}[{i}]"),
                format!("'{k}' is a ratio of the SLI '{sli}' itself: the arms would change it mechanically, not through the business"),
            ));
        }
    }
    issues
}

/// The extra SLIs of experiments `ids` as (experiment, metric) in order, and the variants'
/// doses of them by (variant, metric).
#[allow(clippy::type_complexity)]
fn extra_slis(
    conn: &mut DbConnection,
    ids: &[i64],
    vrows: &[VariantRow],
) -> AppResult<(Vec<(i64, i64)>, HashMap<(i64, i64), f64>)> {
    let extra: Vec<(i64, i64)> = experiment_slis::table
        .filter(experiment_slis::experiment_id.eq_any(ids))
        .order((experiment_slis::experiment_id, experiment_slis::position))
        .select((experiment_slis::experiment_id, experiment_slis::metric_id))
        .load(conn)?;
    let variant_ids: Vec<i64> = vrows.iter().map(|v| v.id).collect();
    let doses: HashMap<(i64, i64), f64> = variant_doses::table
        .filter(variant_doses::variant_id.eq_any(&variant_ids))
        .select((
            variant_doses::variant_id,
            variant_doses::metric_id,
            variant_doses::dose,
        ))
        .load::<(i64, i64, f64)>(conn)?
        .into_iter()
        .map(|(v, m, d)| ((v, m), d))
        .collect();
    Ok((extra, doses))
}

/// Stores a new experiment; 409 if the key exists, 422 if a metric is missing or of the wrong kind.
pub fn create(conn: &mut DbConnection, e: &NewExperiment) -> AppResult<Experiment> {
    super::serializable(conn, |conn| {
        let keys: Vec<&str> = e.metric_keys().map(Slug::as_str).collect();
        let ids = metrics::ids_by_key(conn, &keys)?;
        let found = metrics::by_ids(conn, &ids.values().copied().collect::<Vec<_>>())?;
        let issues = metric_issues(e, &ids, &found);
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
            .map(|k| (MetricRole::Kpi, k))
            .chain(e.guardrails.iter().map(|k| (MetricRole::Guardrail, k)));
        for (pos, (role, k)) in roles.enumerate() {
            diesel::insert_into(experiment_metrics::table)
                .values((
                    experiment_metrics::experiment_id.eq(id),
                    experiment_metrics::metric_id.eq(ids[k.as_str()]),
                    experiment_metrics::role.eq(role.as_str()),
                    experiment_metrics::position.eq(pos as i32),
                ))
                .execute(conn)?;
        }
        for (pos, k) in e.extra_slis.iter().enumerate() {
            diesel::insert_into(experiment_slis::table)
                .values((
                    experiment_slis::experiment_id.eq(id),
                    experiment_slis::metric_id.eq(ids[k.as_str()]),
                    experiment_slis::position.eq(pos as i32 + 1),
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
            if e.extra_slis.is_empty() {
                continue;
            }
            let variant_id: i64 = variants::table
                .filter(variants::experiment_id.eq(id))
                .filter(variants::key.eq(v.key.as_str()))
                .select(variants::id)
                .first(conn)?;
            for (k, dose) in e.extra_slis.iter().zip(&v.extra_doses) {
                diesel::insert_into(variant_doses::table)
                    .values((
                        variant_doses::variant_id.eq(variant_id),
                        variant_doses::metric_id.eq(ids[k.as_str()]),
                        variant_doses::dose.eq(dose),
                    ))
                    .execute(conn)?;
            }
        }
        get(conn, e.key.as_str())
    })
}

/// Adds the numerators and denominators of the ratio metrics in `metrics` to it; returns their
/// ids by key.
fn with_ratio_parts(
    conn: &mut DbConnection,
    metrics: &mut HashMap<i64, Metric>,
) -> AppResult<HashMap<String, i64>> {
    let part_keys: Vec<&str> = metrics
        .values()
        .filter_map(|m| m.ratio.as_ref())
        .flat_map(|r| [r.numerator.as_str(), r.denominator.as_str()])
        .collect();
    if part_keys.is_empty() {
        return Ok(HashMap::new());
    }
    let ids = metrics::ids_by_key(conn, &part_keys)?;
    let missing: Vec<i64> = ids
        .values()
        .copied()
        .filter(|id| !metrics.contains_key(id))
        .collect();
    metrics.extend(metrics::by_ids(conn, &missing)?);
    Ok(ids)
}

/// The parts of the listed ratio metrics that the experiment does not list itself, once each.
fn components_of(
    sli: i64,
    listed: &[&Metric],
    parts: &HashMap<String, i64>,
    metric: &dyn Fn(&i64) -> AppResult<Metric>,
) -> AppResult<Vec<Metric>> {
    let mut out: Vec<Metric> = Vec::new();
    for ratio in listed.iter().filter_map(|m| m.ratio.as_ref()) {
        for k in [&ratio.numerator, &ratio.denominator] {
            let id = parts
                .get(k.as_str())
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("ratio part '{k}' vanished")))?;
            let known =
                *id == sli || listed.iter().any(|m| m.id == *id) || out.iter().any(|c| c.id == *id);
            if !known {
                out.push(metric(id)?);
            }
        }
    }
    Ok(out)
}

/// Resolves metrics and variants of experiment rows with three queries in all.
fn hydrate(conn: &mut DbConnection, rows: Vec<ExperimentRow>) -> AppResult<Vec<Experiment>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let links = experiment_metrics::table
        .filter(experiment_metrics::experiment_id.eq_any(&ids))
        .order((
            experiment_metrics::experiment_id,
            experiment_metrics::position,
        ))
        .select(ExperimentMetricRow::as_select())
        .load(conn)?;
    let vrows = variants::table
        .filter(variants::experiment_id.eq_any(&ids))
        .order((variants::experiment_id, variants::position))
        .select(VariantRow::as_select())
        .load(conn)?;
    let (extra, doses) = extra_slis(conn, &ids, &vrows)?;
    let mut metric_ids: Vec<i64> = links
        .iter()
        .map(|l| l.metric_id)
        .chain(rows.iter().map(|r| r.sli_metric_id))
        .chain(extra.iter().map(|x| x.1))
        .collect();
    metric_ids.sort_unstable();
    metric_ids.dedup();
    let mut metrics = metrics::by_ids(conn, &metric_ids)?;
    let parts = with_ratio_parts(conn, &mut metrics)?;
    let metric = |id: &i64| {
        metrics
            .get(id)
            .cloned()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("metric {id} vanished")))
    };
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut kpis = Vec::new();
        let mut guardrails = Vec::new();
        for l in links.iter().filter(|l| l.experiment_id == r.id) {
            let m = metric(&l.metric_id)?;
            match l.role {
                MetricRole::Kpi => kpis.push(m),
                MetricRole::Guardrail => guardrails.push(m),
                MetricRole::Sli => {
                    return Err(AppError::Internal(anyhow::anyhow!(
                        "experiment {} lists its SLI among its KPIs and guardrails",
                        r.key
                    )))
                }
            }
        }
        let extra_ids: Vec<i64> = extra.iter().filter(|x| x.0 == r.id).map(|x| x.1).collect();
        let variants = vrows
            .iter()
            .filter(|v| v.experiment_id == r.id)
            .map(|v| Variant {
                id: v.id,
                key: v.key.clone(),
                weight: v.weight,
                control: v.is_control,
                dose: v.dose,
                extra_doses: extra_ids
                    .iter()
                    .map(|m| doses.get(&(v.id, *m)).copied().unwrap_or(0.0))
                    .collect(),
            })
            .collect();
        let extra_slis = extra_ids
            .iter()
            .map(&metric)
            .collect::<AppResult<Vec<_>>>()?;
        let listed: Vec<&Metric> = kpis.iter().chain(&guardrails).collect();
        let components = components_of(r.sli_metric_id, &listed, &parts, &metric)?;
        out.push(Experiment {
            id: r.id,
            key: r.key,
            name: r.name,
            hypothesis: r.hypothesis,
            journey: r.journey,
            sli: metric(&r.sli_metric_id)?,
            extra_slis,
            kpis,
            guardrails,
            variants,
            created_at: r.created_at,
            components,
        });
    }
    Ok(out)
}

/// The experiment with this key, or 404.
pub fn get(conn: &mut DbConnection, key: &str) -> AppResult<Experiment> {
    let row = experiments::table
        .filter(experiments::key.eq(key))
        .select(ExperimentRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("experiment", key))?;
    hydrate(conn, vec![row])?
        .pop()
        .ok_or_else(|| AppError::not_found("experiment", key))
}

/// Experiments in creation order, one page (`limit + 1` rows) at a time.
pub fn list(conn: &mut DbConnection, page: Page) -> AppResult<Vec<Experiment>> {
    let rows = experiments::table
        .filter(experiments::id.gt(page.after_id))
        .order(experiments::id)
        .limit(page.limit + 1)
        .select(ExperimentRow::as_select())
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
