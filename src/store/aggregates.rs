//! Per-arm sufficient statistics of an experiment, computed by the database (`GROUP BY`), so a
//! summary of any size reads a few rows per arm and metric instead of every unit.
//!
//! The SQL is plain and the same on both backends, and reads the units of one range of unit
//! numbers, so a large experiment is summed as two ranges on two connections at once (one
//! process each on PostgreSQL; the analysis service fixes the plan, see its
//! `pg_summary_settings`) and the ranges' sums are added ([`ArmSums::merge`]). Ids are
//! formatted into the statement: they are integers.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double};

use super::DbConnection;
use crate::error::AppResult;

/// One arm's sums of one metric's experiment-period values y, over the arm's units that have
/// the metric, and the same restricted to units that also have the SLI value s. Sums are of
/// shifted values y − `shift` and s − `sli_shift` (see [`shift_of`]), so variances computed
/// from them keep their digits.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct MetricArmSums {
    #[diesel(sql_type = BigInt)]
    pub variant_id: i64,
    #[diesel(sql_type = BigInt)]
    pub metric_id: i64,
    /// Units with a value.
    #[diesel(sql_type = BigInt)]
    pub units: i64,
    /// Units whose value is exactly 1 (the successes of a binary metric).
    #[diesel(sql_type = BigInt)]
    pub ones: i64,
    #[diesel(sql_type = Double)]
    pub value_sum: f64,
    #[diesel(sql_type = Double)]
    pub value_sq: f64,
    /// Units with a value and an SLI value.
    #[diesel(sql_type = BigInt)]
    pub with_sli: i64,
    /// Σy and Σy² over the units with an SLI value.
    #[diesel(sql_type = Double)]
    pub sum_with_sli: f64,
    #[diesel(sql_type = Double)]
    pub sq_with_sli: f64,
    /// Σs, Σs² and Σs·y over the same units.
    #[diesel(sql_type = Double)]
    pub sli_sum: f64,
    #[diesel(sql_type = Double)]
    pub sli_sq: f64,
    #[diesel(sql_type = Double)]
    pub sli_cross: f64,
    /// Units with a value and a pre-period value x of the same metric (CUPED's covariate,
    /// shifted by `pre_shift`): their count, Σx, Σx², Σx·y and Σy.
    #[diesel(sql_type = BigInt)]
    pub pre_units: i64,
    #[diesel(sql_type = Double)]
    pub pre_sum: f64,
    #[diesel(sql_type = Double)]
    pub pre_sq: f64,
    #[diesel(sql_type = Double)]
    pub pre_cross: f64,
    #[diesel(sql_type = Double)]
    pub value_sum_with_pre: f64,
    /// Units with a pre-period value but no experiment-period value: count, Σx, Σx² (they
    /// count where a missing value counts as 0).
    #[diesel(sql_type = BigInt)]
    pub pre_only_units: i64,
    #[diesel(sql_type = Double)]
    pub pre_only_sum: f64,
    #[diesel(sql_type = Double)]
    pub pre_only_sq: f64,
    #[diesel(sql_type = Double)]
    pub shift: f64,
    /// The shift of the pre-period values (one of them: a metric's level may move between
    /// periods; and a constant covariate then sums to exactly 0 spread).
    #[diesel(sql_type = Double)]
    pub pre_shift: f64,
    #[diesel(sql_type = Double)]
    pub sli_shift: f64,
}

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = Double)]
    value: f64,
}

/// A metric's id and the shifts its sums are taken from: (metric id, experiment-period shift,
/// pre-period shift); see [`shift_of`].
pub type Slot = (i64, f64, f64);

/// Units whose median value is a metric's shift.
const SHIFT_SAMPLE: usize = 101;

/// Units (the first by text id) among which the shift's values are looked for.
const SHIFT_SCAN: usize = 10_000;

/// The shift of a metric's values in `period` (`post` or `pre`): the median (the lower middle
/// value) of the first [`SHIFT_SAMPLE`] assigned units by text id that have one, among the
/// first [`SHIFT_SCAN`] units by text id (0 when none has). Chosen by the data alone, not by
/// the order uploads numbered the units, and near the bulk of the values even when the first
/// unit is an outlier (a 1e12 whale as the only shift cancelled every digit of the variances).
///
/// Bounded whatever the statistics say: the units are walked in key order through their
/// unique index and each one's assignment and value looked up by primary key (scalar
/// subqueries, which no planner turns into a join over the whole experiment; a join planned
/// from stale statistics took minutes right after a bulk upload).
pub fn shift_of(
    conn: &mut DbConnection,
    experiment_id: i64,
    metric_id: i64,
    period: &str,
) -> AppResult<f64> {
    let period = if period == "pre" { "pre" } else { "post" };
    let e = experiment_id;
    let found: Vec<Value> = diesel::sql_query(format!(
        "SELECT q.value FROM (SELECT k.key, \
         (SELECT a.variant_id FROM assignments a WHERE a.experiment_id = CAST({e} AS BIGINT) \
         AND a.unit_id = k.id) AS variant, \
         (SELECT o.value FROM observations o WHERE o.experiment_id = CAST({e} AS BIGINT) \
         AND o.unit_id = k.id AND o.metric_id = {metric_id} AND o.period = '{period}') AS value \
         FROM (SELECT u.id, u.key FROM units u WHERE u.experiment_id = CAST({e} AS BIGINT) \
         ORDER BY u.key LIMIT {SHIFT_SCAN}) k) q \
         WHERE q.variant IS NOT NULL AND q.value IS NOT NULL ORDER BY q.key LIMIT {SHIFT_SAMPLE}"
    ))
    .load(conn)?;
    let mut values: Vec<f64> = found.into_iter().map(|v| v.value).collect();
    values.sort_unstable_by(f64::total_cmp);
    Ok(values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0))
}

/// A metric's [`Slot`]: its id and both periods' shifts.
pub fn slot_of(conn: &mut DbConnection, experiment_id: i64, metric_id: i64) -> AppResult<Slot> {
    Ok((
        metric_id,
        shift_of(conn, experiment_id, metric_id, "post")?,
        shift_of(conn, experiment_id, metric_id, "pre")?,
    ))
}

/// What the database summarised: assigned units per variant id, and per (variant, metric)
/// the sums of [`MetricArmSums`] (every metric with experiment-period values, the SLI too).
#[derive(Debug, Clone, PartialEq)]
pub struct ArmSums {
    pub assigned: Vec<(i64, i64)>,
    pub metrics: Vec<MetricArmSums>,
    /// Observations of units without an assignment (not in any sum).
    pub unassigned_observations: i64,
}

impl ArmSums {
    /// The sums of one arm (variant id) and metric (id); `None` when no unit of the arm has a
    /// value of it (nor a pre-period value).
    pub fn of(&self, variant: i64, metric: i64) -> Option<&MetricArmSums> {
        self.metrics
            .iter()
            .find(|r| r.variant_id == variant && r.metric_id == metric)
    }
}

impl MetricArmSums {
    /// Adds another range's sums of the same arm and metric (same shifts).
    fn add(&mut self, o: &MetricArmSums) {
        for (a, b) in [
            (&mut self.units, o.units),
            (&mut self.ones, o.ones),
            (&mut self.with_sli, o.with_sli),
            (&mut self.pre_units, o.pre_units),
            (&mut self.pre_only_units, o.pre_only_units),
        ] {
            *a += b;
        }
        for (a, b) in [
            (&mut self.value_sum, o.value_sum),
            (&mut self.value_sq, o.value_sq),
            (&mut self.sum_with_sli, o.sum_with_sli),
            (&mut self.sq_with_sli, o.sq_with_sli),
            (&mut self.sli_sum, o.sli_sum),
            (&mut self.sli_sq, o.sli_sq),
            (&mut self.sli_cross, o.sli_cross),
            (&mut self.pre_sum, o.pre_sum),
            (&mut self.pre_sq, o.pre_sq),
            (&mut self.pre_cross, o.pre_cross),
            (&mut self.value_sum_with_pre, o.value_sum_with_pre),
            (&mut self.pre_only_sum, o.pre_only_sum),
            (&mut self.pre_only_sq, o.pre_only_sq),
        ] {
            *a += b;
        }
    }
}

impl ArmSums {
    /// The sums of two disjoint unit ranges' units (read with the same shifts), in
    /// (variant, metric) order.
    pub fn merge(mut self, other: ArmSums) -> ArmSums {
        for (variant, units) in other.assigned {
            match self.assigned.iter_mut().find(|a| a.0 == variant) {
                Some(a) => a.1 += units,
                None => self.assigned.push((variant, units)),
            }
        }
        self.assigned.sort_unstable();
        for m in other.metrics {
            let key = (m.variant_id, m.metric_id);
            match (self.metrics.iter_mut()).find(|x| (x.variant_id, x.metric_id) == key) {
                Some(x) => x.add(&m),
                None => self.metrics.push(m),
            }
        }
        self.metrics.sort_by_key(|m| (m.variant_id, m.metric_id));
        self.unassigned_observations += other.unassigned_observations;
        self
    }
}

/// A range of unit numbers, [from, to) (`None`: unbounded).
pub type UnitRange = (Option<i64>, Option<i64>);

/// The SQL conditions `AND column >= from AND column < to` of a range.
fn in_range(column: &str, (from, to): UnitRange) -> String {
    let from = from.map(|f| format!(" AND {column} >= {f}"));
    let to = to.map(|t| format!(" AND {column} < {t}"));
    format!("{}{}", from.unwrap_or_default(), to.unwrap_or_default())
}

/// `expr`, or 0 where its magnitude is below 1e-150 (a factor of a product).
fn no_underflow(expr: &str) -> String {
    format!("(CASE WHEN ABS({expr}) < 1e-150 THEN 0.0 ELSE {expr} END)")
}

fn sum(expr: &str) -> String {
    format!("CAST(COALESCE(SUM({expr}), 0) AS DOUBLE PRECISION)")
}

/// SQL for one row per unit of `range` that is assigned or has any observation of the
/// experiment: `v`, its variant (NULL when the unit was never assigned), `n`, its observation
/// rows (NULL when it has none), and per metric id of `ids` in that order its
/// experiment-period value `y{k}` and pre-period value `x{k}` (NULL: none).
///
/// The observations are grouped by unit first (a unit's rows are one range of the primary
/// key) and the assignments joined to the groups by a full join, both in unit order, so every
/// row is read once, and the arms' units and the unassigned units' rows are counted in the
/// same pass.
pub fn unit_pivot(experiment_id: i64, ids: &[i64], range: UnitRange) -> String {
    let e = experiment_id;
    let mut inner = String::new();
    let mut outer = String::new();
    for (k, id) in ids.iter().enumerate() {
        for (name, period) in [("y", "post"), ("x", "pre")] {
            inner.push_str(&format!(
                ", MAX(CASE WHEN o.metric_id = {id} AND o.period = '{period}' THEN o.value END) \
                 AS {name}{k}"
            ));
            outer.push_str(&format!(", p.{name}{k}"));
        }
    }
    // The experiment id is cast to the column's type, and the assignments are filtered in a
    // subquery, so the planner knows both index scans deliver rows in unit order and joins
    // them by merging.
    format!(
        "SELECT a.variant_id AS v, p.n{outer} FROM (SELECT o.unit_id, COUNT(*) AS n{inner} \
         FROM observations o WHERE o.experiment_id = CAST({e} AS BIGINT){} GROUP BY o.unit_id) p \
         FULL JOIN (SELECT a.unit_id, a.variant_id FROM assignments a \
         WHERE a.experiment_id = CAST({e} AS BIGINT){}) a ON a.unit_id = p.unit_id",
        in_range("o.unit_id", range),
        in_range("a.unit_id", range)
    )
}

/// The sums of [`MetricArmSums`], in its order after the metric id.
const FIELDS: [&str; 18] = [
    "units",
    "ones",
    "value_sum",
    "value_sq",
    "with_sli",
    "sum_with_sli",
    "sq_with_sli",
    "sli_sum",
    "sli_sq",
    "sli_cross",
    "pre_units",
    "pre_sum",
    "pre_sq",
    "pre_cross",
    "value_sum_with_pre",
    "pre_only_units",
    "pre_only_sum",
    "pre_only_sq",
];

/// The shifted values of slot `k` of the pivot, each computed once per unit: `dy{k}` and
/// `dx{k}`, the values less `shift` and `pre_shift`, `ds` (slot 0) the SLI's less `ks`, and as
/// `c…` the same as factors of products. PostgreSQL refuses a product that underflows ("value
/// out of range"): factors below 1e-150 count as 0 in products (values are at most 1e15, so
/// what that drops is below 1e-134 per unit).
fn shifted(k: usize, (_, shift, pre_shift): Slot, ks: &str) -> String {
    let ky = format!("CAST({shift:?} AS DOUBLE PRECISION)");
    let kx = format!("CAST({pre_shift:?} AS DOUBLE PRECISION)");
    // The SLI's pre-period values (slot 0) enter no sum the summary uses.
    let xk = match k {
        0 => "CAST(NULL AS DOUBLE PRECISION)".to_owned(),
        _ => format!("x{k}"),
    };
    let (y, x) = (format!("(y{k} - {ky})"), format!("({xk} - {kx})"));
    let mut out = format!(
        ", {y} AS dy{k}, {} AS cy{k}, {x} AS dx{k}, {} AS cx{k}",
        no_underflow(&y),
        no_underflow(&x)
    );
    if k == 0 {
        let s = format!("(y0 - {ks})");
        out.push_str(&format!(", {s} AS ds, {} AS cs", no_underflow(&s)));
    }
    out
}

/// The aggregates of one metric's [`FIELDS`] (slot `k` of the pivot, its shifted values from
/// [`shifted`]) over pivot rows, each named `{field}_{k}`.
fn metric_sums(k: usize) -> Vec<String> {
    let (y, s, x) = (format!("dy{k}"), "ds".to_owned(), format!("dx{k}"));
    let (py, ps, px) = (format!("cy{k}"), "cs".to_owned(), format!("cx{k}"));
    let xk = match k {
        0 => "CAST(NULL AS DOUBLE PRECISION)".to_owned(),
        _ => format!("x{k}"),
    };
    let yk = format!("y{k}");
    let count = |cond: &str| format!("CAST(SUM(CASE WHEN {cond} THEN 1 ELSE 0 END) AS BIGINT)");
    let exprs = [
        format!("CAST(COUNT({yk}) AS BIGINT)"),
        count(&format!("{yk} = 1")),
        sum(&y),
        sum(&format!("{py} * {py}")),
        count(&format!("{yk} IS NOT NULL AND y0 IS NOT NULL")),
        sum(&format!("CASE WHEN y0 IS NOT NULL THEN {y} END")),
        sum(&format!("CASE WHEN y0 IS NOT NULL THEN {py} * {py} END")),
        sum(&format!("CASE WHEN {yk} IS NOT NULL THEN {s} END")),
        sum(&format!("CASE WHEN {yk} IS NOT NULL THEN {ps} * {ps} END")),
        sum(&format!("{ps} * {py}")),
        count(&format!("{yk} IS NOT NULL AND {xk} IS NOT NULL")),
        sum(&format!("CASE WHEN {yk} IS NOT NULL THEN {x} END")),
        sum(&format!("CASE WHEN {yk} IS NOT NULL THEN {px} * {px} END")),
        sum(&format!("{px} * {py}")),
        sum(&format!("CASE WHEN {xk} IS NOT NULL THEN {y} END")),
        count(&format!("{yk} IS NULL AND {xk} IS NOT NULL")),
        sum(&format!("CASE WHEN {yk} IS NULL THEN {x} END")),
        sum(&format!("CASE WHEN {yk} IS NULL THEN {px} * {px} END")),
    ];
    (FIELDS.iter().zip(exprs))
        .map(|(name, expr)| format!("{expr} AS {name}_{k}"))
        .collect()
}

/// A row of [`arm_sums`]'s query: one arm's and metric's sums, the arm's assigned units, and
/// the unassigned units' rows.
#[derive(QueryableByName)]
struct SumsRow {
    #[diesel(embed)]
    sums: MetricArmSums,
    #[diesel(sql_type = BigInt)]
    assigned: i64,
    #[diesel(sql_type = BigInt)]
    unassigned: i64,
}

/// Reads the per-arm sums of the metrics `metrics` (both periods' values) over the units of
/// `range`; `sli` is the SLI the cross-products pair with. Call it inside one snapshot
/// (`read_snapshot`) so the parts agree.
///
/// One pass pivots each unit's values into a row ([`unit_pivot`], with a row for each assigned
/// unit without observations too, so the arms' units are counted in the same pass), computes
/// the shifted values once per unit ([`shifted`]; a subquery PostgreSQL does not flatten into
/// the aggregates, where each would be computed a dozen times), and one `GROUP BY` of those
/// rows by arm computes every metric's sums at once (the unassigned units are the NULL arm);
/// the few grouped rows are then unfolded into one row per arm and metric. Arms and metrics
/// without any value in the range have no row, as in [`ArmSums::of`].
pub fn arm_sums(
    conn: &mut DbConnection,
    experiment_id: i64,
    sli: Slot,
    metrics: &[Slot],
    range: UnitRange,
) -> AppResult<ArmSums> {
    let e = experiment_id;
    let (sli_metric_id, sli_shift, _) = sli;
    let mut ids = vec![sli];
    ids.extend(metrics.iter().filter(|m| m.0 != sli_metric_id));
    let ks = format!("CAST({sli_shift:?} AS DOUBLE PRECISION)");
    let grouped: Vec<String> = (0..ids.len()).flat_map(metric_sums).collect();
    let shifts: String = (ids.iter().enumerate())
        .map(|(k, m)| shifted(k, *m, &ks))
        .collect();
    // OFFSET 0 keeps PostgreSQL from pulling the subquery up into the aggregates.
    let fence = match conn {
        DbConnection::Postgresql(_) => " OFFSET 0",
        DbConnection::Sqlite(_) => "",
    };
    // One SELECT per metric unfolds the grouped row's columns `{field}_{k}` (a UNION ALL, not
    // a join, so no nested loop is planned for it).
    let double = "DOUBLE PRECISION";
    let unfolded: Vec<String> = (ids.iter().enumerate())
        .map(|(k, (id, shift, pre_shift))| {
            let sums: Vec<String> = (FIELDS.iter())
                .map(|name| format!("g.{name}_{k} AS {name}"))
                .collect();
            format!(
                "SELECT g.v AS variant_id, CAST({id} AS BIGINT) AS metric_id, {}, \
                 CAST({shift:?} AS {double}) AS shift, CAST({pre_shift:?} AS {double}) AS pre_shift, \
                 {ks} AS sli_shift, g.assigned AS assigned, \
                 (SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM g \
                 WHERE v IS NULL) AS unassigned FROM g WHERE g.v IS NOT NULL",
                sums.join(", ")
            )
        })
        .collect();
    let slot_ids: Vec<i64> = ids.iter().map(|m| m.0).collect();
    let query = format!(
        "WITH g AS MATERIALIZED (SELECT u.v, SUM(u.n) AS n, CAST(COUNT(*) AS BIGINT) AS assigned, \
         {} FROM (SELECT q.*{shifts} FROM ({}) q{fence}) u GROUP BY u.v) \
         SELECT * FROM ({}) s ORDER BY variant_id, metric_id",
        grouped.join(", "),
        unit_pivot(e, &slot_ids, range),
        unfolded.join(" UNION ALL ")
    );
    let rows: Vec<SumsRow> = diesel::sql_query(query).load(conn)?;
    let mut assigned: Vec<(i64, i64)> = rows
        .iter()
        .map(|r| (r.sums.variant_id, r.assigned))
        .collect();
    assigned.dedup();
    // Without an assigned unit there is no row to carry the count.
    let unassigned_observations = match rows.first() {
        Some(r) => r.unassigned,
        None => unassigned_observations(conn, e, range)?,
    };
    Ok(ArmSums {
        assigned,
        metrics: (rows.into_iter().map(|r| r.sums))
            .filter(|m| m.units > 0 || m.pre_only_units > 0)
            .collect(),
        unassigned_observations,
    })
}

/// Observations (of either period) of units the experiment never assigned.
pub fn unassigned_observations(
    conn: &mut DbConnection,
    experiment_id: i64,
    range: UnitRange,
) -> AppResult<i64> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let e = experiment_id;
    let found: Count = diesel::sql_query(format!(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM observations o WHERE o.experiment_id = {e}{} \
         AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.experiment_id = {e} \
         AND a.unit_id = o.unit_id)",
        in_range("o.unit_id", range)
    ))
    .get_result(conn)?;
    Ok(found.n)
}
