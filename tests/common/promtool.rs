//! `promtool test rules` against the exported rules: the service's alerts at checkpoints must
//! be the ones Prometheus fires on the same data as counters.

use std::process::Command;

/// The first of `names` that runs (`--version`).
pub fn which(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
        .map(|p| p.to_string())
}

/// A number as PromQL label values write it (no trailing zeros).
pub fn format_num(x: f64) -> String {
    let s = format!("{x:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn alert_case(
    alertname: &str,
    severity: &str,
    firing: bool,
    (name, statement): (&str, &str),
    minute: usize,
) -> String {
    // A correlational SLO's alerts say so.
    let evidence = if statement.ends_with("(evidence: correlational)") {
        "\n              sloproof_evidence: correlational"
    } else {
        ""
    };
    let expected = if firing {
        format!(
            r#"
          - exp_labels:
              severity: {severity}
              sloproof_severity: {severity}
              sloproof_slo: {name}
            exp_annotations:{evidence}
              summary: "{statement} is burning its error budget too fast"
              title: "(severity {severity}) {name} error budget burn rate is too high""#
        )
    } else {
        " []".to_owned()
    };
    format!(
        "      - eval_time: {minute}m\n        alertname: {alertname}\n        exp_alerts:{expected}\n"
    )
}

/// Runs `promtool test rules` on `rules` with `series` (name with labels, one value per
/// `interval_minutes` from minute 0) and asserts that at each (minute, page, ticket) checkpoint exactly the
/// service's alerts fire. Without promtool it is skipped, unless SLOPROOF_REQUIRE_PROMTOOL=1.
pub fn promtool_agrees(
    backend: &str,
    rules: &str,
    (series, interval_minutes): (&[(String, Vec<u64>)], u32),
    checks: &[(usize, bool, bool)],
    slo: (&str, &str),
) {
    let Some(promtool) = which(&["promtool", "/usr/bin/promtool"]) else {
        let required = std::env::var("SLOPROOF_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1");
        assert!(!required, "promtool is required but not installed");
        eprintln!("promtool not installed; the comparison is skipped");
        return;
    };
    let join = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
    let mut test = format!("rule_files:\n  - rules.yaml\nevaluation_interval: 1m\ntests:\n  - interval: {interval_minutes}m\n    input_series:\n");
    for (name, values) in series {
        test.push_str(&format!(
            "      - series: '{name}'\n        values: '{}'\n",
            join(values)
        ));
    }
    test.push_str("    alert_rule_test:\n");
    for (minute, page, ticket) in checks {
        test.push_str(&alert_case(
            "SloproofErrorBudgetBurnPage",
            "page",
            *page,
            slo,
            *minute,
        ));
        test.push_str(&alert_case(
            "SloproofErrorBudgetBurnTicket",
            "ticket",
            *ticket,
            slo,
            *minute,
        ));
    }
    run_promtool(backend, &promtool, rules, &test);
}

/// `promtool test rules` of a test file (which names `rules.yaml`) against `rules`; asserts it
/// passes.
pub fn run_promtool(backend: &str, promtool: &str, rules: &str, test: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), rules).unwrap();
    std::fs::write(dir.path().join("test.yaml"), test).unwrap();
    let out = Command::new(promtool)
        .current_dir(dir.path())
        .args(["test", "rules", "test.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{backend}: promtool disagrees with the service:\n{}{}\n{test}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The promtool binary, or None (then the caller skips) unless SLOPROOF_REQUIRE_PROMTOOL=1.
pub fn promtool() -> Option<String> {
    let found = which(&["promtool", "/usr/bin/promtool"]);
    let required = std::env::var("SLOPROOF_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1");
    assert!(
        found.is_some() || !required,
        "promtool is required but not installed"
    );
    found
}
