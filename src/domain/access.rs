//! Who may do what: the roles of API tokens, and a token as stored (its secret never is).

use chrono::NaiveDateTime;

use super::text_enum;

text_enum! {
    /// What a token may do: `viewer` reads; `analyst` also creates metrics, experiments,
    /// uploads, analyses and recommendations; `reviewer` reads and decides on recommendations;
    /// `admin` does everything, including managing tokens.
    Role { Viewer => "viewer", Analyst => "analyst", Reviewer => "reviewer", Admin => "admin" }
}

/// An API token as stored: its name is the actor recorded for what it does.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}
