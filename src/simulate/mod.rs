//! Simulated experiments with a known truth, for demos and end-to-end tests: one preset per
//! use case (`--scenario`). The default, `ecommerce-latency`, is below (generated in `latency`,
//! block by block of units, so `stream` can load experiments larger than memory); the others
//! document their process in their modules.
//!
//! Data-generating process of `ecommerce-latency`, per unit i (defaults in
//! [`SimConfig::default`]):
//! - arm a(i) with probability ∝ weight, dose dₐ ms (0 for control);
//! - a baseline latency bᵢ ~ LogNormal(ln(median), σ) and a propensity πᵢ ~ LogNormal(−s²/2, s)
//!   (mean 1) shared by the pre and post periods;
//! - experienced latency xᵢ = bᵢ·εᵢ + dₐ with εᵢ ~ LogNormal(−0.05²/2, 0.05) (pre: bᵢ·ε'ᵢ);
//! - conversion ~ Bernoulli(min(1, p₀·πᵢ·g(xᵢ))) with g(x) = max(0, 1 + r·(x − m)/100) for the
//!   linear curve (m = the median) or max(0, 1 + r·max(0, x − knee)/100) for the knee curve;
//! - revenue = conversion × order value, order value ~ LogNormal(ln 50, 0.5);
//! - units enrol evenly over 14 days from 2026-11-01 (`assigned_at`).
//!
//! So r is the relative change of conversion (and revenue) per +100 ms: the true 2SLS slope of
//! conversion on latency is p₀·r/100 per ms for the linear curve.

use serde_json::{json, Value};

/// Enrolment period of simulated units: 14 days.
const ENROLMENT_SECONDS: u64 = 14 * 86_400;

mod chatbot;
mod fraud;
mod freshness;
mod latency;
mod moderation;
pub mod rag;
mod shares;

/// A preset use case: what the arms change and which KPIs they move (each documented with its
/// data-generating process in its module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Recommendation latency (lower is better) +0/+100/+200 ms → cart conversion and revenue.
    EcommerceLatency,
    /// Share of answers judged faithful (higher is better), arms −2 and −5 points → CSAT
    /// (1–5) and escalation to a human (lower is better). See [`chatbot`].
    ChatbotFaithfulness,
    /// Recall on high-risk transactions (higher is better), looser decision thresholds −3 and
    /// −8 points → chargeback loss per 1,000 transactions in dollars (heavy-tailed, lower is
    /// better). See [`fraud`].
    FraudRecall,
    /// Precision of hate-speech flags (higher is better), looser classifiers −5 and −10
    /// points → 30-day retention of flagged users (binary). See [`moderation`].
    ModerationPrecision,
    /// Profile feature freshness in minutes (lower is better), pipeline delays +0/+10/+30
    /// min → ad click-through rate, a ratio of clicks to impressions per user. See
    /// [`freshness`].
    MarketingFreshness,
    /// Retrieval precision@5 (higher is better) and time to first token (lower is better)
    /// together, in a 2×2 factorial (precision −0.20 × TTFT +400 ms) → ticket deflection
    /// (binary) and task completion time (lower is better): two SLOs from one experiment. See
    /// [`rag`].
    RagKnowledgeBase,
}

/// Shape of the latency → conversion curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Curve {
    Linear,
    Knee,
}

/// Simulation settings.
#[derive(Debug, Clone, clap::Args)]
pub struct SimConfig {
    /// Experiment key to create.
    #[arg(long, default_value = "checkout-latency-sim")]
    pub key: String,
    /// Units (users) in the experiment.
    #[arg(long, default_value_t = 200_000)]
    pub units: usize,
    /// Injected latency per arm in ms, control first (e.g. 0,100,200).
    #[arg(long, value_delimiter = ',', default_value = "0,100,200")]
    pub doses: Vec<f64>,
    /// Median baseline latency in ms.
    #[arg(long, default_value_t = 300.0)]
    pub median_ms: f64,
    /// Log-normal σ of baseline latency.
    #[arg(long, default_value_t = 0.35)]
    pub sigma: f64,
    /// Baseline conversion rate p₀.
    #[arg(long, default_value_t = 0.05)]
    pub conversion: f64,
    /// Relative conversion change per +100 ms (−0.05 = −5%). Published field experiments find
    /// −0.2% to −0.6% (Google, 2009); the default is stronger so a 200k-unit demo validates.
    #[arg(long, default_value_t = -0.05, allow_hyphen_values = true)]
    pub effect_per_100ms: f64,
    #[arg(long, value_enum, default_value_t = Curve::Linear)]
    pub curve: Curve,
    /// Latency (ms) above which conversion falls, for the knee curve.
    #[arg(long, default_value_t = 400.0)]
    pub knee_ms: f64,
    /// Also simulate a pre-experiment period (SLI and KPIs), for CUPED and causal thresholds.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pre_period: bool,
    /// Also record revenue per user, a second KPI (`ecommerce-latency`; `false` leaves one KPI,
    /// conversion, with the same draws).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub revenue: bool,
    /// Drop this share of one treatment arm's assignments (to demonstrate a sample-ratio mismatch).
    #[arg(long, default_value_t = 0.0)]
    pub drop_share: f64,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The use case to simulate; `--doses`, `--median-ms`, `--sigma`, `--conversion`,
    /// `--curve` and `--knee-ms` shape `ecommerce-latency` only (other scenarios have their
    /// own documented arms), while `--units`, `--effect-per-100ms` (as the effect size, see
    /// each scenario), `--pre-period`, `--drop-share`, `--seed` and `--key` apply to all.
    #[arg(long, value_enum, default_value_t = Scenario::EcommerceLatency)]
    pub scenario: Scenario,
}

/// The defaults are those of the command line, written once in the `#[arg]` attributes above.
impl Default for SimConfig {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            config: SimConfig,
        }
        <Defaults as clap::Parser>::parse_from(["simulate"]).config
    }
}

/// Request bodies that create and load the experiment.
pub struct Simulated {
    pub metrics: Vec<Value>,
    pub experiment: Value,
    pub assignments_ndjson: Vec<u8>,
    pub observations_ndjson: Vec<u8>,
    /// True slope of conversion on latency, per ms (linear curve; near the median for a knee).
    pub true_conversion_slope: f64,
}

/// Catalog entries the simulation uses (created if missing).
pub fn metrics() -> Vec<Value> {
    vec![
        json!({"key": "checkout-conversion", "name": "Checkout conversion", "kind": "kpi", "value_type": "binary",
               "unit": "", "direction": "higher_is_better", "layer": "business"}),
        json!({"key": "revenue-per-user", "name": "Revenue per user", "kind": "kpi", "value_type": "continuous",
               "unit": "USD", "direction": "higher_is_better", "layer": "business"}),
        json!({"key": "checkout-latency", "name": "checkout latency", "kind": "sli", "value_type": "continuous",
               "unit": "ms", "direction": "lower_is_better", "layer": "journey",
               "parents": ["checkout-conversion", "revenue-per-user"]}),
    ]
}

fn g(c: &SimConfig, x: f64) -> f64 {
    let excess = match c.curve {
        Curve::Linear => x - c.median_ms,
        Curve::Knee => (x - c.knee_ms).max(0.0),
    };
    (1.0 + c.effect_per_100ms * excess / 100.0).max(0.0)
}

/// Checks the settings a simulation cannot run with.
fn check(c: &SimConfig) -> anyhow::Result<()> {
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "--{name} must be a positive number, got {v}"
            ))
        }
    };
    positive("median-ms", c.median_ms)?;
    positive("sigma", c.sigma)?;
    if !(c.conversion > 0.0 && c.conversion <= 1.0) {
        anyhow::bail!("--conversion must be in (0, 1], got {}", c.conversion);
    }
    if c.doses.len() < 2 || c.doses.iter().any(|d| !d.is_finite()) {
        anyhow::bail!("--doses needs at least two finite doses, control first");
    }
    if !(0.0..1.0).contains(&c.drop_share) {
        anyhow::bail!("--drop-share must be in [0, 1), got {}", c.drop_share);
    }
    if !c.effect_per_100ms.is_finite() || !c.knee_ms.is_finite() {
        anyhow::bail!("--effect-per-100ms and --knee-ms must be finite");
    }
    Ok(())
}

/// Generates the experiment of the configured scenario; an error names a setting it cannot
/// run with.
pub fn generate(c: &SimConfig) -> anyhow::Result<Simulated> {
    check(c)?;
    match c.scenario {
        Scenario::EcommerceLatency => latency::generate(c),
        Scenario::ChatbotFaithfulness => chatbot::generate(c),
        Scenario::FraudRecall => fraud::generate(c),
        Scenario::ModerationPrecision => moderation::generate(c),
        Scenario::MarketingFreshness => freshness::generate(c),
        Scenario::RagKnowledgeBase => rag::generate(c),
    }
}

/// One observation row (`period` is empty or `,"period":"pre"`).
fn observation_row(out: &mut String, unit: &str, metric: &str, v: f64, period: &str) {
    out.push_str(&format!(
        "{{\"unit_id\":\"{unit}\",\"metric\":\"{metric}\",\"value\":{v}{period}}}\n"
    ));
}

/// Unit `i`'s assignment row: enrolment evenly over two weeks from 2026-11-01.
fn assignment_row(out: &mut String, unit: &str, arm: &str, i: usize, units: usize) {
    let second = i as u64 * ENROLMENT_SECONDS / units.max(1) as u64;
    let (day, rest) = (second / 86_400, second % 86_400);
    out.push_str(&format!(
        "{{\"unit_id\":\"{unit}\",\"variant\":\"{arm}\",\"assigned_at\":\"2026-11-{:02}T{:02}:{:02}:{:02}Z\"}}\n",
        day + 1,
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    ));
}

/// Largest upload request of `load`, in bytes (the server's default limit is 512 MiB).
const UPLOAD_CHUNK: usize = 128 << 20;

/// `body` cut into pieces of at most `max` bytes at line ends (a longer line is one piece).
fn line_chunks(body: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = body;
    while rest.len() > max {
        let cut = rest[..max].iter().rposition(|b| *b == b'\n').map_or_else(
            || {
                rest.iter()
                    .position(|b| *b == b'\n')
                    .map_or(rest.len(), |i| i + 1)
            },
            |i| i + 1,
        );
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// One block of units' rows: (assignments, observations) as NDJSON.
pub type Block = (Vec<u8>, Vec<u8>);

/// A simulation whose rows come block by block of units, so an experiment larger than memory can
/// be loaded ([`stream`]).
pub struct Streamed {
    pub metrics: Vec<Value>,
    pub experiment: Value,
    /// The rows, one block of units at a time.
    pub blocks: Box<dyn Iterator<Item = Block>>,
}

/// Units per block of [`stream`] (about 60–250 MB of NDJSON).
const STREAM_BLOCK_UNITS: usize = 500_000;

/// The configured scenario's experiment, its rows generated as they are uploaded: in blocks of
/// 500,000 units for `ecommerce-latency` (the same rows as [`generate`]'s), in one block for the
/// other scenarios.
pub fn stream(c: &SimConfig) -> anyhow::Result<Streamed> {
    check(c)?;
    if c.scenario == Scenario::EcommerceLatency {
        let (experiment, blocks) = latency::blocks(c, STREAM_BLOCK_UNITS)?;
        return Ok(Streamed {
            metrics: metrics(),
            experiment,
            blocks: Box::new(blocks),
        });
    }
    let sim = generate(c)?;
    Ok(Streamed {
        metrics: sim.metrics,
        experiment: sim.experiment,
        blocks: Box::new(std::iter::once((
            sim.assignments_ndjson,
            sim.observations_ndjson,
        ))),
    })
}

/// Posts bodies with an analyst or admin token to the API at `base`.
struct Poster {
    client: awc::Client,
    base: String,
}

impl Poster {
    fn new(base: &str, token: &str) -> Self {
        let client = awc::Client::builder()
            .timeout(std::time::Duration::from_secs(600))
            .bearer_auth(token)
            .finish();
        Self {
            client,
            base: base.to_owned(),
        }
    }

    /// The status and body text of `POST base+path`.
    async fn post(&self, path: &str, ct: &str, body: Vec<u8>) -> anyhow::Result<(u16, String)> {
        let mut r = self
            .client
            .post(format!("{}{path}", self.base))
            .insert_header(("content-type", ct))
            .send_body(body)
            .await
            .map_err(|e| anyhow::anyhow!("POST {path}: {e}"))?;
        let text = r
            .body()
            .limit(16 << 20)
            .await
            .map_err(|e| anyhow::anyhow!("POST {path}: {e}"))?;
        Ok((
            r.status().as_u16(),
            String::from_utf8_lossy(&text).into_owned(),
        ))
    }

    /// Creates the metrics (existing ones are kept) and the experiment; answers its key.
    async fn create(&self, metrics: &[Value], experiment: &Value) -> anyhow::Result<String> {
        for m in metrics {
            let (status, text) = self
                .post(
                    "/api/v1/metrics",
                    "application/json",
                    m.to_string().into_bytes(),
                )
                .await?;
            anyhow::ensure!(
                status == 201 || status == 409,
                "creating metric {}: {status} {text}",
                m["key"]
            );
        }
        let key = experiment["key"].as_str().unwrap_or_default().to_owned();
        let body = experiment.to_string().into_bytes();
        let (status, text) = self
            .post("/api/v1/experiments", "application/json", body)
            .await?;
        anyhow::ensure!(status == 201, "creating experiment {key}: {status} {text}");
        Ok(key)
    }

    /// Uploads a block's assignments, then its observations, in requests of at most
    /// UPLOAD_CHUNK bytes cut at line ends: a large simulation stays under the server's body
    /// limit (each upload is idempotent and all-or-nothing).
    async fn upload(
        &self,
        key: &str,
        assignments: &[u8],
        observations: &[u8],
    ) -> anyhow::Result<()> {
        for (what, body) in [("assignments", assignments), ("observations", observations)] {
            for chunk in line_chunks(body, UPLOAD_CHUNK) {
                let path = format!("/api/v1/experiments/{key}/{what}");
                let (status, text) = self
                    .post(&path, "application/x-ndjson", chunk.to_vec())
                    .await?;
                anyhow::ensure!(status == 200, "uploading {what}: {status} {text}");
                println!("{what}: {text}");
            }
        }
        Ok(())
    }
}

/// Creates the metrics (existing ones are kept) and the experiment, and uploads its data through
/// the HTTP API at `base` (e.g. `http://127.0.0.1:8080`) with an analyst or admin `token`.
pub async fn load(base: &str, token: &str, sim: &Simulated) -> anyhow::Result<()> {
    let poster = Poster::new(base, token);
    let key = poster.create(&sim.metrics, &sim.experiment).await?;
    poster
        .upload(&key, &sim.assignments_ndjson, &sim.observations_ndjson)
        .await
}

/// [`load`] for a [`stream`]ed simulation: each block is generated, uploaded and dropped before
/// the next, so memory stays at one block's.
pub async fn load_stream(base: &str, token: &str, sim: Streamed) -> anyhow::Result<String> {
    let poster = Poster::new(base, token);
    let key = poster.create(&sim.metrics, &sim.experiment).await?;
    for (assignments, observations) in sim.blocks {
        poster.upload(&key, &assignments, &observations).await?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::line_chunks;

    #[test]
    fn uploads_are_cut_at_line_ends_within_the_limit() {
        let body = b"aa\nbbbb\ncc\nd\neeeeeeeeee\nf".to_vec();
        let chunks = line_chunks(&body, 6);
        assert_eq!(chunks.concat(), body);
        assert_eq!(
            chunks,
            vec![&b"aa\n"[..], b"bbbb\n", b"cc\nd\n", b"eeeeeeeeee\n", b"f"]
        );
        assert_eq!(line_chunks(b"x\n", 6), vec![&b"x\n"[..]]);
        assert!(line_chunks(b"", 6).is_empty());
    }
}
