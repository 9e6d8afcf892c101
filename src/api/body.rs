//! The JSON request-body extractor. Like `web::Json` (same media types and size limit), but a
//! body that parses and does not fit the schema is a 422 naming the field it is about
//! (`variants[1].weight`, `bootstrap.seed`), found with `serde_path_to_error`.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{mime, web, FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::AppState;
use crate::error::{AppError, Issue};

/// Default body limit when the state is missing (as `SLOPROOF_JSON_BODY_LIMIT`'s default).
const DEFAULT_LIMIT: usize = 1 << 20;

/// A JSON request body of type `T`.
pub struct Body<T>(pub T);

impl<T> Body<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Body<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// `application/json` or any `+json` media type.
pub fn is_json(req: &HttpRequest) -> bool {
    req.mime_type().ok().flatten().is_some_and(|m| {
        (m.type_() == mime::APPLICATION && m.subtype() == mime::JSON)
            || m.suffix() == Some(mime::JSON)
    })
}

/// Parses a JSON document into `T`: malformed JSON (or trailing characters) is a 400; a
/// document that does not fit `T` (a missing, unknown or mistyped field) is a 422 naming the
/// field by its path.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            let message = inner.to_string();
            // A missing field is reported at its parent: name the field itself.
            let missing = message
                .strip_prefix("missing field `")
                .and_then(|m| m.split('`').next());
            let field = match (path.as_str(), missing) {
                (".", Some(name)) => Some(name.to_owned()),
                (".", None) => None,
                (parent, Some(name)) => Some(format!("{parent}.{name}")),
                (at, None) => Some(at.to_owned()),
            };
            let issue = Issue {
                row: None,
                field,
                message,
            };
            AppError::invalid("the request body does not match the schema", vec![issue])
        } else {
            AppError::BadRequest(format!("malformed JSON body: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| AppError::BadRequest(format!("malformed JSON body: {e}")))?;
    Ok(value)
}

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map_or(DEFAULT_LIMIT, |s| s.limits.json_body_bytes);
        let json = is_json(req);
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !json {
                return Err(AppError::UnsupportedMediaType {
                    got: "(missing or not JSON)".into(),
                    expected: "application/json",
                }
                .into());
            }
            if declared.is_some_and(|n| n > limit) {
                return Err(AppError::PayloadTooLarge { limit }.into());
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    AppError::BadRequest(format!("cannot read the request body: {e}"))
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(AppError::PayloadTooLarge { limit }.into());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Body(parse(&body)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        weight: f64,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        variants: Vec<Inner>,
    }

    fn field_of(body: &str) -> Option<String> {
        match parse::<Outer>(body.as_bytes()) {
            Err(AppError::Invalid { issues, .. }) => issues[0].field.clone(),
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn a_body_that_does_not_fit_names_the_field() {
        let wrong_type = r#"{"name": "a", "variants": [{"weight": 1}, {"weight": "x"}]}"#;
        assert_eq!(field_of(wrong_type).as_deref(), Some("variants[1].weight"));
        let unknown = r#"{"name": "a", "variants": [], "colour": 1}"#;
        assert_eq!(field_of(unknown).as_deref(), Some("colour"));
        assert_eq!(field_of(r#"{"variants": []}"#).as_deref(), Some("name"));
        let missing = r#"{"name": "a", "variants": [{}]}"#;
        assert_eq!(field_of(missing).as_deref(), Some("variants[0].weight"));
        assert_eq!(field_of("[]"), None);
        assert!(matches!(
            parse::<Outer>(b"{\"name\": "),
            Err(AppError::BadRequest(_))
        ));
        assert!(matches!(
            parse::<Outer>(br#"{"name": "a", "variants": []} x"#),
            Err(AppError::BadRequest(_))
        ));
    }
}
