//! Crash safety: the real binary is killed with SIGKILL while a large upload streams in, and
//! at moments while it is being written; after a restart on the same database the upload is
//! either wholly stored or absent. SQLite always; PostgreSQL when `SLOPROOF_TEST_POSTGRES_URL`
//! is set.

// A failed unwrap is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::stream;
use serde_json::{json, Value};

const TOKEN: &str = "sp_crash_admin_token_0123456789abcdef";
/// Rows per upload: several staged batches (50,000 each).
const ROWS: usize = 300_000;

struct Server {
    child: Child,
    base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(db_url: &str) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_sloproof"))
        .arg("serve")
        .env("SLOPROOF_DATABASE_URL", db_url)
        .env("SLOPROOF_BIND", format!("127.0.0.1:{port}"))
        .env("SLOPROOF_ADMIN_TOKEN", TOKEN)
        .env("SLOPROOF_LOG", "warn")
        .env("SLOPROOF_WRITE_RATE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sloproof");
    let base = format!("http://127.0.0.1:{port}");
    let client = awc::Client::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "sloproof did not become ready");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    Server { child, base }
}

impl Server {
    fn kill(&mut self) {
        // SIGKILL: no shutdown handler runs.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    async fn post(&self, path: &str, body: &Value) -> u16 {
        awc::Client::default()
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send_json(body)
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn assigned(&self, key: &str) -> i64 {
        let mut r = awc::Client::default()
            .get(format!("{}/api/v1/experiments/{key}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        body["data"]["assigned_units"].as_i64().unwrap()
    }
}

async fn experiment(server: &Server, key: &str) {
    for m in [
        json!({"key": "conv_1", "name": "Conversion", "kind": "kpi", "value_type": "binary", "unit": "", "direction": "higher_is_better", "layer": "business"}),
        json!({"key": "lat_ms", "name": "Latency", "kind": "sli", "value_type": "continuous", "unit": "ms", "direction": "lower_is_better", "layer": "journey"}),
    ] {
        let s = server.post("/api/v1/metrics", &m).await;
        assert!(s == 201 || s == 409, "{s}");
    }
    let e = json!({"key": key, "name": "Crash", "hypothesis": "none", "sli": "lat_ms", "kpis": ["conv_1"],
                   "variants": [{"key": "a", "weight": 0.5, "control": true, "dose": 0},
                                {"key": "b", "weight": 0.5, "dose": 100}]});
    assert_eq!(server.post("/api/v1/experiments", &e).await, 201);
}

/// The upload's body in chunks of 10,000 rows.
fn chunks() -> Vec<Vec<u8>> {
    (0..ROWS)
        .collect::<Vec<_>>()
        .chunks(10_000)
        .map(|c| {
            c.iter()
                .map(|i| {
                    format!(
                        "{{\"unit_id\":\"unité {i}\",\"variant\":\"{}\"}}\n",
                        ["a", "b"][i % 2]
                    )
                })
                .collect::<String>()
                .into_bytes()
        })
        .collect()
}

/// When the server is killed: after this many chunks of the body were sent, or this long after
/// the whole body was sent (the rows are then being staged or written).
#[derive(Debug, Clone, Copy)]
enum KillAt {
    Chunk(usize),
    AfterBody(Duration),
    /// Not killed: measures how long the server takes from the end of the body to its answer.
    Never,
}

async fn crash_round(db_url: &str, key: &str, at: KillAt) -> Duration {
    let mut server = start(db_url).await;
    experiment(&server, key).await;
    let parts = chunks();
    let total = parts.len();
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let body = stream::iter(parts.into_iter().enumerate().map(move |(i, c)| {
        let _ = sent_tx.send(i + 1);
        Ok::<_, std::io::Error>(actix_web::web::Bytes::from(c))
    }));
    let url = format!("{}/api/v1/experiments/{key}/assignments", server.base);
    let upload = actix_web::rt::spawn(async move {
        awc::Client::builder()
            .timeout(Duration::from_secs(300))
            .finish()
            .post(url)
            .bearer_auth(TOKEN)
            .insert_header(("content-type", "application/x-ndjson"))
            .send_stream(body)
            .await
            .map(|r| r.status().as_u16())
    });
    let threshold = match at {
        KillAt::Chunk(n) => n,
        KillAt::AfterBody(_) | KillAt::Never => total,
    };
    while let Some(n) = sent_rx.recv().await {
        if n >= threshold {
            break;
        }
    }
    let body_sent = Instant::now();
    if let KillAt::Never = at {
        assert!(matches!(upload.await.unwrap(), Ok(200)));
        let took = body_sent.elapsed();
        server.kill();
        return took;
    }
    if let KillAt::AfterBody(wait) = at {
        actix_web::rt::time::sleep(wait).await;
    }
    server.kill();
    let answered = upload.await.unwrap();
    let server = start(db_url).await;
    let stored = server.assigned(key).await;
    assert!(
        stored == 0 || stored == ROWS as i64,
        "{at:?}: {stored} of {ROWS} rows stored after the crash (answer {answered:?})"
    );
    eprintln!("{at:?}: answer {answered:?}, {stored} rows stored");
    // A 200 that reached the client means the rows were committed.
    if matches!(answered, Ok(200)) {
        assert_eq!(stored, ROWS as i64, "{at:?}: acknowledged but not stored");
    }
    let mut server = server;
    server.kill();
    body_sent.elapsed()
}

/// Kills during the body, then at fractions of the time a whole upload takes to be staged and
/// written after its body ends (measured first on this machine and build), so the kills fall
/// into staging, the batch writes and the commit.
async fn crash_rounds(db_url: &str) {
    let took = crash_round(db_url, "calibration", KillAt::Never).await;
    let mut points = vec![KillAt::Chunk(3), KillAt::Chunk(20)];
    for f in [0.0, 0.2, 0.4, 0.6, 0.75, 0.9, 0.97, 1.05] {
        points.push(KillAt::AfterBody(took.mul_f64(f)));
    }
    for (i, at) in points.into_iter().enumerate() {
        crash_round(db_url, &format!("crash-{i}"), at).await;
    }
}

#[actix_web::test]
async fn a_killed_upload_is_stored_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    crash_rounds(path.to_str().unwrap()).await;
    if let Some(pg) = common::PgScratch::new("crash") {
        crash_rounds(&pg.url).await;
    }
}
