//! Integer unit ids: each experiment's text unit ids are stored once (`units`), numbered 1, 2,
//! ... in the order uploads first name them; assignments and observations carry the numbers.

use diesel::prelude::*;
use rustc_hash::FxHashMap;

use super::schema::units::dsl as u;
use super::upsert::MAX_BINDS_PER_STATEMENT;
use super::{with_backend, DbConnection};
use crate::error::AppResult;

#[derive(Insertable)]
#[diesel(table_name = super::schema::units)]
#[diesel(treat_none_as_default_value = false)]
struct NewUnit<'a> {
    experiment_id: i64,
    id: i64,
    key: &'a str,
}

/// Keys looked up, or rows inserted, per statement.
const KEYS_PER_STATEMENT: usize = MAX_BINDS_PER_STATEMENT / 3;

/// Numbers the unit ids of one upload. Made inside the upload's transaction, after its lock
/// (`upsert::commit_upload`), so no other writer numbers units of the experiment meanwhile.
pub struct UnitNumbers {
    experiment_id: i64,
    /// The number the next new unit gets.
    next: i64,
}

impl UnitNumbers {
    /// Starts numbering after the experiment's stored units.
    pub fn start(conn: &mut DbConnection, experiment_id: i64) -> AppResult<UnitNumbers> {
        let last: Option<i64> = u::units
            .filter(u::experiment_id.eq(experiment_id))
            .select(diesel::dsl::max(u::id))
            .first(conn)?;
        Ok(UnitNumbers {
            experiment_id,
            next: last.unwrap_or(0) + 1,
        })
    }

    /// The number of each of `keys` (in their order), storing a new number for each key the
    /// experiment has not seen. Keys may repeat.
    pub fn resolve(&mut self, conn: &mut DbConnection, keys: &[&str]) -> AppResult<Vec<i64>> {
        let mut numbers: FxHashMap<&str, i64> = FxHashMap::default();
        let mut distinct: Vec<&str> = Vec::new();
        for &k in keys {
            numbers.entry(k).or_insert_with(|| {
                distinct.push(k);
                0
            });
        }
        // A new experiment has nothing to look up (the first upload of every experiment).
        if self.next > 1 {
            for chunk in distinct.chunks(KEYS_PER_STATEMENT) {
                let stored: Vec<(String, i64)> = with_backend!(conn, |c| u::units
                    .filter(u::experiment_id.eq(self.experiment_id))
                    .filter(u::key.eq_any(chunk))
                    .select((u::key, u::id))
                    .load(c))?;
                for (key, id) in stored {
                    if let Some(n) = numbers.get_mut(key.as_str()) {
                        *n = id;
                    }
                }
            }
        }
        let mut new_units = Vec::new();
        for k in distinct {
            match numbers.get_mut(k) {
                Some(n) if *n == 0 => {
                    *n = self.next;
                    self.next += 1;
                    new_units.push(NewUnit {
                        experiment_id: self.experiment_id,
                        id: *n,
                        key: k,
                    });
                }
                _ => {}
            }
        }
        self.store(conn, new_units)?;
        Ok(keys.iter().map(|k| numbers[k]).collect())
    }

    /// Stores new units: on PostgreSQL by one `COPY`, on SQLite by multi-row inserts.
    fn store(&self, conn: &mut DbConnection, rows: Vec<NewUnit>) -> AppResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        match conn {
            DbConnection::Postgresql(c) => {
                diesel::copy_from(u::units)
                    .from_insertable(&rows)
                    .execute(c)?;
            }
            DbConnection::Sqlite(c) => {
                for chunk in rows.chunks(KEYS_PER_STATEMENT) {
                    diesel::insert_into(u::units).values(chunk).execute(c)?;
                }
            }
        }
        Ok(())
    }
}

/// Calls `f(number, key)` for every unit of the experiment whose number is in [`from`, `to`)
/// (`None`: unbounded), in no particular order.
pub fn for_each_key(
    conn: &mut DbConnection,
    experiment_id: i64,
    from: Option<i64>,
    to: Option<i64>,
    mut f: impl FnMut(i64, &str),
) -> AppResult<()> {
    use diesel::connection::{DefaultLoadingMode, LoadConnection};
    use diesel::row::{Field, Row};

    let (from, to) = (from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX));
    let query = u::units
        .filter(u::experiment_id.eq(experiment_id))
        .filter(u::id.ge(from))
        .filter(u::id.lt(to))
        .select((u::id, u::key));
    match conn {
        DbConnection::Sqlite(c) => {
            // The key is borrowed from the row instead of copied.
            for row in c.load(query)? {
                let row = row?;
                let (Some(id), Some(key)) = (row.get(0), row.get(1)) else {
                    return Err(super::analyses::missing_column());
                };
                let (Some(mut id), Some(mut key)) = (id.value(), key.value()) else {
                    return Err(super::analyses::missing_column());
                };
                f(id.read_long(), key.read_text());
            }
        }
        DbConnection::Postgresql(c) => {
            for row in query.load_iter::<(i64, String), DefaultLoadingMode>(c)? {
                let (id, key) = row?;
                f(id, &key);
            }
        }
    }
    Ok(())
}
