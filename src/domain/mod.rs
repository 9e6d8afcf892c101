//! Validated domain types. Requests are parsed into these before anything is stored, so the rest
//! of the code never sees a malformed key, an unknown enum value or an inconsistent experiment.

pub mod access;
pub mod calendar;
pub mod document;
pub mod experiment;
pub mod metric;
pub mod review;
pub mod series;
pub mod upload;

use crate::error::Issue;

/// A validated identifier: 1 to 64 characters of `a-z`, `0-9`, `_`, `-`, `.`, starting with a
/// letter or digit. Used for metric, experiment and variant keys, and safe in URLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(String);

impl Slug {
    pub fn parse(field: &str, raw: &str) -> Result<Slug, Issue> {
        let ok_len = !raw.is_empty() && raw.len() <= 64;
        let ok_first = raw
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let ok_chars = raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'));
        if ok_len && ok_first && ok_chars {
            Ok(Slug(raw.to_owned()))
        } else {
            Err(Issue::field(
                field,
                format!(
                    "'{raw}' is not a valid key: use 1-64 characters of a-z, 0-9, '_', '-', '.', starting with a letter or digit"
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Keyset pagination: items after `after_id`, `limit` per page. List queries fetch `limit + 1`
/// rows; the API trims the extra one and turns it into the next cursor (`api::pagination::page_of`).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub after_id: i64,
    pub limit: i64,
}

/// A required, trimmed, non-empty text of at most `max` characters.
pub fn required_text(field: &str, raw: &str, max: usize, issues: &mut Vec<Issue>) -> String {
    let t = raw.trim();
    if t.is_empty() {
        issues.push(Issue::field(field, "must not be empty"));
    } else if t.chars().count() > max {
        issues.push(Issue::field(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    t.to_owned()
}

/// A required text (see [`required_text`]) that also refuses control characters (but tabs) and
/// bidirectional overrides, which would garble logs and pages it is shown in.
pub fn plain_text(field: &str, raw: &str, max: usize, issues: &mut Vec<Issue>) -> String {
    let t = required_text(field, raw, max, issues);
    if t.chars().any(|c| {
        (c.is_control() && c != '\t')
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    }) {
        issues.push(Issue::field(
            field,
            "must not contain control characters or bidirectional overrides",
        ));
    }
    t
}

/// A stored text that is not a value of the enum it should be.
#[derive(Debug, thiserror::Error)]
#[error("'{value}' is not a {type_name}")]
pub struct UnknownText {
    pub type_name: &'static str,
    pub value: String,
}

/// Declares a string-valued enum stored as TEXT and exchanged as snake_case JSON.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Reads a stored value (diesel `deserialize_as = String`): text the enum does not
        /// know is an error naming the type and the value, never a silent default.
        impl TryFrom<String> for $name {
            type Error = $crate::domain::UnknownText;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                $name::parse(&s).ok_or($crate::domain::UnknownText {
                    type_name: stringify!($name),
                    value: s,
                })
            }
        }
    };
}
pub(crate) use text_enum;
