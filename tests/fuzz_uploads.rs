//! Fuzzing of the upload readers (JSON array, NDJSON, CSV) with proptest: arbitrary bytes, and
//! valid uploads mutated byte by byte (flips, cuts, insertions, duplications), fed to the same
//! reading and validation the endpoints use. No input may panic, and every rejection must be a
//! client error (400 syntax / 422 rule), never an internal one.
//!
//! CI runs a short pass (`FUZZ_CASES`, default 2,000 per property). A long run:
//! `FUZZ_CASES=1000000 cargo test --release --test fuzz_uploads -- --nocapture`.

// A failed unwrap is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use sloproof::domain::experiment::{Experiment, Variant};
use sloproof::domain::metric::{
    Direction, Layer, Metric, MetricKind, PrometheusQueries, ValueType,
};
use sloproof::error::AppError;
use sloproof::ingest::read::Format;

fn metric(id: i64, key: &str, kind: MetricKind, value_type: ValueType) -> Metric {
    Metric {
        id,
        key: key.into(),
        name: key.into(),
        description: None,
        kind,
        value_type,
        unit: String::new(),
        direction: Direction::LowerIsBetter,
        layer: Layer::Journey,
        parents: vec![],
        created_at: chrono::NaiveDateTime::default(),
        prometheus: PrometheusQueries::default(),
        ratio: None,
        scale: None,
    }
}

fn experiment() -> Experiment {
    let variant = |id: i64, key: &str, control: bool| Variant {
        id,
        key: key.into(),
        weight: 0.5,
        control,
        dose: if control { 0.0 } else { 100.0 },
        extra_doses: vec![],
    };
    Experiment {
        id: 1,
        key: "fuzz".into(),
        name: "Fuzz".into(),
        hypothesis: String::new(),
        journey: None,
        sli: metric(1, "lat_ms", MetricKind::Sli, ValueType::Continuous),
        extra_slis: vec![],
        kpis: vec![
            metric(2, "conv_1", MetricKind::Kpi, ValueType::Binary),
            metric(3, "orders", MetricKind::Kpi, ValueType::Count),
        ],
        guardrails: vec![],
        variants: vec![variant(1, "control", true), variant(2, "plus_100", false)],
        created_at: chrono::NaiveDateTime::default(),
        components: vec![],
    }
}

const FORMATS: [Format; 3] = [Format::Json, Format::Ndjson, Format::Csv];

/// Valid uploads in every format: the seeds that mutations start from.
fn seeds() -> Vec<(Format, &'static str, Vec<u8>)> {
    let json_a = r#"[{"unit_id":"u 1","variant":"control","assigned_at":"2026-11-01T10:00:00Z"},{"unit_id":2,"variant":"plus_100"}]"#;
    let ndjson_a = "{\"unit_id\":\"ü 1\",\"variant\":\"control\"}\n{\"unit_id\":\"u2\",\"variant\":\"plus_100\"}\n";
    let csv_a =
        "unit_id,variant,assigned_at\nu 1,control,2026-11-01T10:00:00Z\n\"u,2\",plus_100,\n";
    let json_o = r#"[{"unit_id":"u 1","metric":"lat_ms","value":412.5,"period":"pre"},{"unit_id":"u 1","metric":"conv_1","value":1}]"#;
    let ndjson_o = "{\"unit_id\":\"u 1\",\"metric\":\"orders\",\"value\":3}\n{\"unit_id\":\"u 2\",\"metric\":\"lat_ms\",\"value\":1e3,\"observed_at\":\"2026-11-01T10:00:00+01:00\"}\n";
    let csv_o = "unit_id,metric,value,period\nu 1,lat_ms,250.25,post\nu 2,conv_1,0,pre\n";
    vec![
        (Format::Json, "assignments", json_a.into()),
        (Format::Ndjson, "assignments", ndjson_a.into()),
        (Format::Csv, "assignments", csv_a.into()),
        (Format::Json, "observations", json_o.into()),
        (Format::Ndjson, "observations", ndjson_o.into()),
        (Format::Csv, "observations", csv_o.into()),
    ]
}

/// Reads `bytes` as an upload of `what`; panics (failing the case) on an internal error.
fn read(e: &Experiment, what: &str, format: Format, bytes: &[u8]) -> Result<u64, TestCaseError> {
    let outcome = if what == "assignments" {
        sloproof::ingest::assignments(e, bytes, format).map(|v| v.received)
    } else {
        sloproof::ingest::observations(e, bytes, format).map(|v| v.received)
    };
    match outcome {
        Ok(n) => Ok(n),
        Err(AppError::Invalid { issues, .. }) => {
            prop_assert!(!issues.is_empty(), "a 422 must name what is wrong");
            Ok(0)
        }
        Err(AppError::BadRequest(m)) => {
            prop_assert!(!m.is_empty());
            Ok(0)
        }
        Err(other) => Err(TestCaseError::fail(format!(
            "{what} as {format:?}: not a client error: {other:?}"
        ))),
    }
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, Vec<u8>),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let interesting = prop::sample::select(vec![
        b"\"".to_vec(),
        b",".to_vec(),
        b"\n".to_vec(),
        b"\r\n".to_vec(),
        b"{".to_vec(),
        b"]".to_vec(),
        b"\0".to_vec(),
        vec![0xff, 0xfe],
        vec![0xc3],
        "é".as_bytes().to_vec(),
        b"1e999".to_vec(),
        b"-0".to_vec(),
        b"NaN".to_vec(),
        b" ".to_vec(),
        b"\\u0000".to_vec(),
        b"\\ud800".to_vec(),
        b"99999999999999999999".to_vec(),
    ]);
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        any::<usize>().prop_map(Edit::Cut),
        (
            any::<usize>(),
            prop_oneof![interesting, prop::collection::vec(any::<u8>(), 1..8)]
        )
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len().max(1);
        match e {
            Edit::Flip(i, b) => {
                if !bytes.is_empty() {
                    bytes[i % len] = *b;
                }
            }
            Edit::Cut(i) => bytes.truncate(i % len),
            Edit::Insert(i, b) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Edit::Duplicate(i, n) => {
                let from = i % len;
                let to = (from + n % 64).min(bytes.len());
                let copy = bytes[from.min(bytes.len())..to].to_vec();
                bytes.splice(to..to, copy);
            }
        }
    }
    bytes
}

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary bytes in every format, as assignments and as observations.
    #[test]
    fn arbitrary_bytes_are_read_or_refused_as_client_errors(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        format in 0usize..3,
        observations in any::<bool>(),
    ) {
        let what = if observations { "observations" } else { "assignments" };
        read(&experiment(), what, FORMATS[format], &bytes)?;
    }

    /// Valid uploads after up to six edits: deep into the parsers and validation.
    #[test]
    fn mutated_uploads_are_read_or_refused_as_client_errors(
        seed in 0usize..6,
        edits in prop::collection::vec(edit(), 1..7),
    ) {
        let (format, what, bytes) = seeds().swap_remove(seed);
        read(&experiment(), what, format, &apply(bytes, &edits))?;
    }
}

/// The seeds themselves are valid, so the mutations start from inputs that pass.
#[test]
fn the_seeds_are_valid() {
    for (format, what, bytes) in seeds() {
        assert_eq!(
            read(&experiment(), what, format, &bytes).unwrap(),
            2,
            "{what} {format:?}"
        );
    }
}
