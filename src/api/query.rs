//! The query-string extractor. Like `web::Query`, but a parameter that does not parse (a
//! mistyped value, an unknown or repeated parameter) is a 400 problem whose `errors` name the
//! parameter, found with `serde_path_to_error`.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use crate::error::{AppError, Issue};

/// The query string parsed into `T`.
pub struct Query<T>(pub T);

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Parses a query string into `T`, naming the parameter a failure is about when serde knows it.
pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, AppError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // Unknown and repeated parameters are reported at the top: their message names them.
        let named = ["unknown field `", "duplicate field `"]
            .iter()
            .find_map(|p| message.strip_prefix(p).and_then(|m| m.split('`').next()));
        let field = match (path.as_str(), named) {
            (_, Some(name)) => Some(name.to_owned()),
            (".", None) => None,
            (at, None) => Some(at.to_owned()),
        };
        let detail = match &field {
            Some(f) => format!("invalid query parameter '{f}': {message}"),
            None => format!("invalid query string: {message}"),
        };
        AppError::BadQuery {
            detail,
            issues: vec![Issue {
                row: None,
                field,
                message,
            }],
        }
    })
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse(req.query_string()).map(Query).map_err(Into::into))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Q {
        resamples: Option<u32>,
        seed: Option<u64>,
    }

    fn field(query: &str) -> Option<String> {
        match parse::<Q>(query) {
            Err(AppError::BadQuery { issues, .. }) => issues[0].field.clone(),
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn failures_name_the_parameter() {
        assert_eq!(field("resamples=abc"), Some("resamples".into()));
        assert_eq!(field("seed=-1"), Some("seed".into()));
        assert_eq!(field("resamples=200&seed=1.5"), Some("seed".into()));
        assert_eq!(field("foo=1"), Some("foo".into()));
        assert_eq!(field("seed=1&seed=2"), Some("seed".into()));
        let q: Q = parse("resamples=200&seed=3").unwrap();
        assert_eq!((q.resamples, q.seed), (Some(200), Some(3)));
    }
}
