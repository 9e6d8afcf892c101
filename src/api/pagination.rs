//! Keyset pagination shared by every list endpoint: `?limit=` (default 50, max 500) and an
//! opaque `?cursor=` taken from the previous page's `next_cursor`.

use serde::Deserialize;
use utoipa::IntoParams;

use crate::domain::Page;
use crate::error::{AppError, AppResult, Issue};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// Paging parameters of list endpoints.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page, 1 to 500 (default 50).
    // Read as i64 so that 0, -1 or 2³² get the range's 422, not a 400 for the type.
    #[param(minimum = 1, maximum = 500, value_type = Option<u32>)]
    pub limit: Option<i64>,
    /// Opaque cursor from the previous page's `next_cursor`.
    #[param(min_length = 2, max_length = 17, pattern = "^c[0-9a-f]{1,16}$")]
    pub cursor: Option<String>,
}

impl ListQuery {
    pub fn page(&self) -> AppResult<Page> {
        let limit = self.limit.unwrap_or(i64::from(DEFAULT_LIMIT));
        if !(1..=i64::from(MAX_LIMIT)).contains(&limit) {
            return Err(AppError::invalid(
                "invalid paging parameters",
                vec![Issue::field(
                    "limit",
                    format!("must be between 1 and {MAX_LIMIT}"),
                )],
            ));
        }
        let after_id = match &self.cursor {
            None => 0,
            Some(c) => decode_cursor(c).ok_or_else(|| {
                AppError::invalid(
                    "invalid paging parameters",
                    vec![Issue::field(
                        "cursor",
                        "is not a cursor returned by this endpoint",
                    )],
                )
            })?,
        };
        Ok(Page { after_id, limit })
    }
}

/// Cursors are `c` followed by the last id in hexadecimal: opaque to clients, cheap to check.
pub fn encode_cursor(id: i64) -> String {
    format!("c{id:x}")
}

/// The id a cursor points after. Any cursor the declared pattern admits is accepted: one past
/// every id (up to 16 hex digits) simply gives an empty page.
fn decode_cursor(c: &str) -> Option<i64> {
    c.strip_prefix('c')
        .filter(|h| (1..=16).contains(&h.len()))
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .map(|id| i64::try_from(id).unwrap_or(i64::MAX))
}

/// Turns rows fetched with `limit + 1` into a page of items and the next cursor.
pub fn page_of<R, T>(
    rows: Vec<R>,
    limit: i64,
    id: impl Fn(&R) -> i64,
    map: impl FnMut(R) -> crate::error::AppResult<T>,
) -> crate::error::AppResult<(Vec<T>, Option<String>)> {
    let more = rows.len() as i64 > limit;
    let mut rows = rows;
    rows.truncate(limit.max(0) as usize);
    let next = if more {
        rows.last().map(|r| encode_cursor(id(r)))
    } else {
        None
    };
    Ok((
        rows.into_iter()
            .map(map)
            .collect::<crate::error::AppResult<Vec<T>>>()?,
        next,
    ))
}
