//! An experiment's assigned units one row each (arm and one value per metric), read through a
//! server-side cursor in batches, so a caller can fold any number of units in bounded memory.
//! PostgreSQL only: the embedded SQLite streams the observations themselves
//! (`analysis::aggregate_stream`).

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Nullable};

use super::DbConnection;
use crate::error::{AppError, AppResult};

/// Rows fetched from the cursor at a time.
const BATCH: usize = 20_000;

#[derive(QueryableByName)]
struct UnitRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    v: Option<i64>,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Array<Nullable<Double>>)]
    y: Vec<Option<f64>>,
}

/// Calls `f(variant id, rows, values)` once per unit of `range` that is assigned or has
/// observations of the experiment (the variant id is `None` for a unit never assigned; `rows`
/// counts its observations, 0 for an assigned unit without any), with its experiment-period
/// value of each metric of `metric_ids` in that order, then its pre-period value of each (NaN:
/// none), in no particular unit order. Run it inside one snapshot (`read_snapshot`).
pub fn for_each_unit(
    conn: &mut DbConnection,
    experiment_id: i64,
    metric_ids: &[i64],
    range: super::aggregates::UnitRange,
    mut f: impl FnMut(Option<i64>, i64, &[f64]),
) -> AppResult<()> {
    let DbConnection::Postgresql(pg) = conn else {
        return Err(AppError::Internal(anyhow::anyhow!(
            "unit rows are read by cursor on PostgreSQL only"
        )));
    };
    let columns: Vec<String> = ["y", "x"]
        .iter()
        .flat_map(|name| (0..metric_ids.len()).map(move |k| format!("q.{name}{k}")))
        .collect();
    diesel::sql_query(format!(
        "DECLARE sloproof_units NO SCROLL CURSOR FOR \
         SELECT q.v, CAST(COALESCE(q.n, 0) AS BIGINT) AS n, ARRAY[{}]::DOUBLE PRECISION[] AS y FROM ({}) q",
        columns.join(", "),
        super::aggregates::unit_pivot(experiment_id, metric_ids, range)
    ))
    .execute(pg)?;
    let mut values = vec![f64::NAN; 2 * metric_ids.len()];
    loop {
        let rows: Vec<UnitRow> =
            diesel::sql_query(format!("FETCH FORWARD {BATCH} FROM sloproof_units")).load(pg)?;
        for r in &rows {
            for (slot, y) in values.iter_mut().zip(&r.y) {
                *slot = y.unwrap_or(f64::NAN);
            }
            f(r.v, r.n, &values);
        }
        if rows.len() < BATCH {
            break;
        }
    }
    diesel::sql_query("CLOSE sloproof_units").execute(pg)?;
    Ok(())
}
