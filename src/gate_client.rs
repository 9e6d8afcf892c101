//! `sloproof gate`: asks a running sloproof's deploy gate whether a change may ship, for CI/CD
//! pipelines. Exit codes: 0 allow, 1 deny, 2 needs approval, 3 the check could not be made
//! (unreachable service, refused request).

use serde_json::{json, Value};

/// What the pipeline asks.
pub struct GateRequest<'a> {
    pub api: &'a str,
    pub token: &'a str,
    pub slos: &'a [i64],
    /// A journey's key instead of `slos`.
    pub journey: Option<&'a str>,
    pub priority: &'a str,
    pub description: &'a str,
    pub expected_budget_burn: Option<f64>,
}

/// The exit code of an answer's decision.
pub fn exit_code(decision: &str) -> i32 {
    match decision {
        "allow" => 0,
        "deny" => 1,
        "needs_approval" => 2,
        _ => 3,
    }
}

/// Posts the check and returns the answer (the decision with its reasons, as JSON), or why it
/// could not be made.
pub async fn ask(r: &GateRequest<'_>) -> anyhow::Result<Value> {
    if let Some(e) = r.expected_budget_burn.filter(|e| !e.is_finite()) {
        anyhow::bail!("--expected-budget-burn must be a finite number, not {e}");
    }
    let mut change = json!({"description": r.description, "priority": r.priority});
    if let Some(e) = r.expected_budget_burn {
        change["expected_budget_burn"] = json!(e);
    }
    let body = match r.journey {
        Some(j) => json!({"journey": j, "change": change}),
        None => json!({"slos": r.slos, "change": change}),
    };
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .bearer_auth(r.token)
        .finish();
    let url = format!("{}/api/v1/deploy-checks", r.api.trim_end_matches('/'));
    let mut resp = client
        .post(&url)
        .send_json(&body)
        .await
        .map_err(|e| anyhow::anyhow!("POST {url}: {e}"))?;
    let bytes = resp
        .body()
        .limit(4 << 20)
        .await
        .map_err(|e| anyhow::anyhow!("POST {url}: {e}"))?;
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if resp.status().as_u16() != 201 {
        anyhow::bail!(
            "the gate refused the check ({}): {}",
            resp.status(),
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(answer)
}

/// The answer in a few lines for a pipeline's log.
pub fn report(answer: &Value) -> String {
    let mut out = format!(
        "deploy check {}: {}\n",
        answer["id"],
        answer["decision"].as_str().unwrap_or("?")
    );
    for s in answer["slos"].as_array().into_iter().flatten() {
        let pct = |v: &Value| {
            v.as_f64()
                .map_or("no data".to_owned(), |x| format!("{:.1}%", 100.0 * x))
        };
        out.push_str(&format!(
            "  SLO {}: budget remaining {}, burn 1h {}, alert {}\n",
            s["id"],
            pct(&s["remaining"]),
            s["burn_1h"]
                .as_f64()
                .map_or("no data".to_owned(), |b| format!("{b:.2}")),
            s["alert"].as_str().unwrap_or("?")
        ));
    }
    for r in answer["reasons"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {}: {}\n",
            r["code"].as_str().unwrap_or("?"),
            r["message"].as_str().unwrap_or("")
        ));
    }
    out
}
