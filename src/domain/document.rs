//! Stored JSON documents (analyses, recommendations) without floating-point noise.
//!
//! Statistics carry far fewer than 12 significant digits of meaning, while a double prints up to
//! 17 (`1 − 0.99` is `0.010000000000000009`). Documents are written with every non-integral
//! number rounded to 12 significant digits, so they read as computed and stay byte-identical
//! for the same inputs.

use serde::Serialize;
use serde_json::{Number, Value};

/// Significant digits kept in stored documents.
pub const SIGNIFICANT_DIGITS: usize = 12;

/// x rounded to [`SIGNIFICANT_DIGITS`] significant digits (by decimal formatting, so the result
/// is the double nearest the rounded decimal).
pub fn round_significant(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 || x.fract() == 0.0 {
        return x;
    }
    format!("{:.*e}", SIGNIFICANT_DIGITS - 1, x)
        .parse()
        .unwrap_or(x)
}

fn tidy(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(r) = n.as_f64().map(round_significant).and_then(Number::from_f64) {
                *n = r;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(tidy),
        Value::Object(o) => o.values_mut().for_each(tidy),
        _ => {}
    }
}

/// The document's JSON text with its numbers rounded (see the module documentation).
pub fn to_document<T: Serialize>(doc: &T) -> serde_json::Result<String> {
    let mut v = serde_json::to_value(doc)?;
    tidy(&mut v);
    serde_json::to_string(&v)
}

/// Why a document cannot be stored.
#[derive(Debug)]
pub enum DocumentError {
    /// Serialization failed (a bug).
    Json(serde_json::Error),
    /// A number overflowed to infinity or NaN, which JSON writes as `null`: the document could
    /// never be read back as its type.
    NotFinite,
}

/// [`to_document`] for a document that is read back later: refused when it would not read
/// back as `T` (a non-finite number where the type declares one).
pub fn to_stored_document<T: Serialize + serde::de::DeserializeOwned>(
    doc: &T,
) -> Result<String, DocumentError> {
    let text = to_document(doc).map_err(DocumentError::Json)?;
    serde_json::from_str::<T>(&text).map_err(|_| DocumentError::NotFinite)?;
    Ok(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_rounded_and_integers_kept() {
        assert_eq!(round_significant(1.0 - 0.99), 0.01);
        assert_eq!(round_significant(0.010000000000000007), 0.01);
        assert_eq!(round_significant(6000.0), 6000.0);
        assert_eq!(round_significant(-2.5e-310), -2.5e-310);
        let doc = serde_json::json!({"a": [0.1 + 0.2, 3], "b": {"c": 1e-5 * 3.0}});
        assert_eq!(
            to_document(&doc).ok().as_deref(),
            Some(r#"{"a":[0.3,3],"b":{"c":0.00003}}"#)
        );
    }
}
