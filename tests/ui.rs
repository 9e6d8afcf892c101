//! The web pages over HTTP, as a browser uses them: sign in with a token (session cookie
//! flags, login CSRF), the inbox, a recommendation's page with its dose-response chart,
//! approval with a comment through the form (CSRF checked), the published SLO in the list;
//! a viewer sees no decision form and a decision forged with a viewer's cookie is refused.
//! The same flow runs in headless Chromium in scripts/ui (playwright, axe-core).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use std::time::Duration;

use common::{apps, TestApp};
use serde_json::json;

/// A browser's view of one response.
struct Page {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    frame_options: Option<String>,
    allow: Option<String>,
    html: String,
}

/// A minimal browser: keeps the cookies it is given, sends them back.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: Vec<(String, String)>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .disable_redirects()
            .finish();
        let m = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = client.request(m, format!("{}{path}", self.app.base));
        if !self.cookies.is_empty() {
            req = req.insert_header(("cookie", self.cookie_header()));
        }
        let mut r = match form {
            Some(f) => req.send_form(&f.to_vec()).await,
            None => req.send().await,
        }
        .expect("send");
        let set_cookies: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set_cookies {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !v.is_empty() {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
        }
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let frame_options = r
            .headers()
            .get("x-frame-options")
            .map(|v| v.to_str().unwrap().to_owned());
        let allow = r
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = r.body().limit(16 << 20).await.unwrap();
        Page {
            status: r.status().as_u16(),
            location,
            set_cookies,
            frame_options,
            allow,
            html: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send("GET", path, None).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send("POST", path, Some(form)).await
    }

    /// Signs in with `token` through the form; returns the sign-in response.
    async fn sign_in(&mut self, token: &str) -> Page {
        let form = self.get("/ui/sign-in").await;
        assert_eq!(form.status, 200, "{}", form.html);
        let csrf = hidden(&form.html, "csrf");
        self.post("/ui/sign-in", &[("token", token), ("csrf", &csrf)])
            .await
    }
}

/// The value of the hidden input `name` in `html`.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[at..].split('"').next().unwrap().to_owned()
}

async fn token(app: &TestApp, name: &str, role: &str) -> String {
    let r = app
        .post_json("/api/v1/tokens", &json!({"name": name, "role": role}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["token"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn a_reviewer_approves_in_the_pages_and_a_viewer_cannot() {
    for app in apps().await {
        let b = app.backend;
        let id = app.analysed("exp_ui_1", vec![0.0, 100.0, 200.0]).await;
        let rec = app
            .post_json(
                &format!("/api/v1/analyses/{id}/recommendations"),
                &json!({"max_relative_kpi_loss": 0.1, "value_per_kpi_unit": 50.0, "units_per_day": 100000.0}),
            )
            .await;
        assert_eq!(rec.status, 201, "{b}: {}", rec.text);
        let rid = rec.body["id"].as_i64().unwrap();
        // As HTML writes it (`<` escaped).
        let statement = rec.body["slo"]["statement"]
            .as_str()
            .unwrap()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let reviewer = token(&app, "Renée Ødegård", "reviewer").await;
        let viewer = token(&app, "viewer-1", "viewer").await;

        // Without a session every page leads to the sign-in form.
        let mut anonymous = Browser::new(&app);
        let r = anonymous.get("/ui/recommendations").await;
        assert_eq!(r.status, 303, "{b}");
        assert_eq!(
            r.location.as_deref(),
            Some("/ui/sign-in?next=%2Fui%2Frecommendations")
        );
        // A link to a page opens that page once signed in; other sites are not a destination.
        let mut linked = Browser::new(&app);
        let r = linked.get(&format!("/ui/recommendations/{rid}")).await;
        let next = format!("/ui/recommendations/{rid}");
        let form = linked.get(r.location.as_deref().unwrap()).await;
        assert_eq!(hidden(&form.html, "next"), next, "{b}");
        let csrf = hidden(&form.html, "csrf");
        let signed = linked
            .post(
                "/ui/sign-in",
                &[("token", &reviewer), ("csrf", &csrf), ("next", &next)],
            )
            .await;
        assert_eq!(signed.location.as_deref(), Some(next.as_str()), "{b}");
        let form = linked.get("/ui/sign-in?next=//evil.example/ui/").await;
        assert!(!form.html.contains("evil.example"), "{b}");
        assert_eq!(form.frame_options.as_deref(), Some("DENY"), "{b}");
        // A sign-in form posted without this page's nonce (login CSRF) is refused.
        let forged = anonymous
            .post(
                "/ui/sign-in",
                &[("token", &reviewer), ("csrf", "sp_forged")],
            )
            .await;
        assert_eq!(forged.status, 403, "{b}: {}", forged.html);
        // A wrong token is told so, with no session.
        let wrong = Browser::new(&app).sign_in("sp_not_a_token").await;
        assert_eq!(wrong.status, 401, "{b}");
        assert!(wrong.html.contains("unknown or revoked"), "{}", wrong.html);

        let mut rb = Browser::new(&app);
        let signed = rb.sign_in(&reviewer).await;
        assert_eq!(signed.status, 303, "{b}: {}", signed.html);
        let session = signed
            .set_cookies
            .iter()
            .find(|c| c.starts_with("sloproof_session="))
            .expect("a session cookie");
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/;", "Max-Age=43200"] {
            assert!(session.contains(flag), "{b}: {session} lacks {flag}");
        }
        assert!(!session.contains("Secure"), "plain http: {session}");
        assert!(!session.contains(&reviewer), "the token is not the cookie");

        // The inbox lists the proposal first, with its statement, KPI and value at risk.
        let inbox = rb.get("/ui/recommendations").await;
        assert_eq!(inbox.status, 200, "{b}");
        let waiting = inbox.html.find("Waiting for review").expect("one waits");
        let row = inbox
            .html
            .find(&statement)
            .expect("the statement is listed");
        assert!(row > waiting, "{b}");
        assert!(inbox.html.contains("per 28 days"), "{}", inbox.html);
        assert!(inbox.html.contains("Renée Ødegård"), "the caller is shown");

        // The review page draws one point per arm and offers the decision.
        let page = rb.get(&format!("/ui/recommendations/{rid}")).await;
        assert_eq!(page.status, 200, "{b}");
        let svg_at = page.html.find("<svg role=\"img\"").expect("a chart");
        let svg_end = page.html[svg_at..].find("</svg>").unwrap() + svg_at;
        assert_eq!(
            page.html[svg_at..svg_end].matches("<circle").count(),
            3,
            "{b}"
        );
        assert!(page.html.contains("What this SLO costs"), "{b}");
        assert!(page.html.contains("Approve and publish"), "{b}");
        let csrf = hidden(&page.html, "csrf");
        assert_eq!(page.frame_options.as_deref(), Some("DENY"), "{b}");

        // A comment that would reorder its history line (a bidirectional override) is refused
        // with a page naming the field.
        let url = format!("/ui/recommendations/{rid}/decision");
        let bidi = rb
            .post(
                &url,
                &[
                    ("decision", "approve"),
                    ("csrf", &csrf),
                    ("comment", "ok \u{202e}evil"),
                ],
            )
            .await;
        assert_eq!(bidi.status, 422, "{b}: {}", bidi.html);
        assert!(bidi.html.contains("bidirectional"), "{}", bidi.html);

        // A decision without the session's CSRF token is refused, and nothing changes.
        let no_csrf = rb
            .post(&url, &[("decision", "approve"), ("csrf", "sp_wrong")])
            .await;
        assert_eq!(no_csrf.status, 403, "{b}");
        let still = app.get(&format!("/api/v1/recommendations/{rid}")).await;
        assert_eq!(still.body["status"], "proposed", "{b}");

        // A viewer sees the page without the form; a decision forged with the viewer's own
        // session and CSRF token is refused by role.
        let mut vb = Browser::new(&app);
        assert_eq!(vb.sign_in(&viewer).await.status, 303);
        let vpage = vb.get(&format!("/ui/recommendations/{rid}")).await;
        assert_eq!(vpage.status, 200, "{b}");
        assert!(!vpage.html.contains("Approve and publish"), "{b}");
        let vcsrf = hidden(&vpage.html, "csrf"); // the sign-out form's
        let forged = vb
            .post(&url, &[("decision", "approve"), ("csrf", &vcsrf)])
            .await;
        assert_eq!(forged.status, 403, "{b}: {}", forged.html);
        assert!(
            forged.html.contains("role &#39;viewer&#39;") || forged.html.contains("role 'viewer'"),
            "{}",
            forged.html
        );

        // The reviewer approves with a comment; the history and the SLO list show it.
        let approved = rb
            .post(
                &url,
                &[
                    ("decision", "approve"),
                    ("csrf", &csrf),
                    ("comment", "Looks right — ship it"),
                ],
            )
            .await;
        assert_eq!(approved.status, 303, "{b}: {}", approved.html);
        let after = app.get(&format!("/api/v1/recommendations/{rid}")).await;
        assert_eq!(after.body["status"], "approved", "{b}");
        let sid = after.body["slo_id"].as_i64().unwrap();
        let page = rb.get(&format!("/ui/recommendations/{rid}")).await;
        assert!(page.html.contains("Looks right — ship it"), "{b}");
        assert!(page.html.contains("Renée Ødegård"), "{b}");
        assert!(!page.html.contains("Approve and publish"), "decided: {b}");
        let slos = rb.get("/ui/slos").await;
        assert_eq!(slos.status, 200, "{b}");
        assert!(slos.html.contains(&format!("id=\"slo-{sid}\"")), "{b}");
        assert!(slos
            .html
            .contains(&format!("/api/v1/slos/{sid}/prometheus-rules")));
        // The SLO's page draws the budget burn-down and the burn rate.
        let detail = rb.get(&format!("/ui/slos/{sid}")).await;
        assert_eq!(detail.status, 200, "{b}: {}", detail.html);
        assert_eq!(detail.html.matches("<svg role=\"img\"").count(), 2, "{b}");
        assert!(detail.html.contains("Budget burn-down"), "{b}");
        assert_eq!(rb.get("/ui/slos/999999").await.status, 404, "{b}");
        // Ids that are not numbers and unknown pages are 404 pages too, not API problems.
        for path in ["/ui/recommendations/abc", "/ui/nope", "/ui/slos/1e3"] {
            let p = rb.get(path).await;
            assert_eq!(p.status, 404, "{b}: {path}");
            assert!(
                p.html.contains("<!DOCTYPE html>"),
                "{b}: {path}: {}",
                p.html
            );
        }

        // Signing out ends the session: the old cookie no longer opens a page.
        let old = rb.cookies.clone();
        let out = rb.post("/ui/sign-out", &[("csrf", &csrf)]).await;
        assert_eq!(out.status, 303, "{b}");
        let mut replay = Browser::new(&app);
        replay.cookies = old;
        assert_eq!(replay.get("/ui/recommendations").await.status, 303, "{b}");
        // Revoking a token ends its sessions too.
        let tokens = app.get("/api/v1/tokens?limit=500").await.body;
        let vid = tokens["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "viewer-1")
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        assert_eq!(
            app.call(
                "DELETE",
                &format!("/api/v1/tokens/{vid}"),
                Some(common::ADMIN_TOKEN),
                None
            )
            .await
            .status,
            200
        );
        assert_eq!(vb.get("/ui/recommendations").await.status, 303, "{b}");
    }
}

/// The data scientist's pages: the experiments, an experiment with its analyses, and the
/// analysis as a results page (forest plot of every arm × metric, a dose-response chart per
/// KPI, the sample-ratio table, the raw JSON linked). Methods a page does not answer get a 405
/// page naming the allowed ones; HEAD answers like GET without a body. Amounts name the
/// currency the recommendation was priced in.
#[actix_web::test]
async fn data_scientists_read_experiments_and_analyses_in_the_pages() {
    for app in apps().await {
        let b = app.backend;
        let key = "exp_ui_2024_v2";
        let id = app.analysed(key, vec![0.0, 100.0, 200.0]).await;
        let doc = app.get(&format!("/api/v1/analyses/{id}")).await.body;
        let effects = doc["kpi_effects"].as_array().unwrap().len();
        let kpis = doc["causal_effects"].as_array().unwrap().len();
        assert!(effects >= 2 && kpis >= 1, "{b}: {doc}");
        let viewer = token(&app, "Zoë data 科学", "viewer").await;
        let mut vb = Browser::new(&app);
        assert_eq!(vb.sign_in(&viewer).await.status, 303, "{b}");

        let list = vb.get("/ui/experiments").await;
        assert_eq!(list.status, 200, "{b}");
        assert!(
            list.html
                .contains(&format!("href=\"/ui/experiments/{key}\"")),
            "{b}"
        );
        let exp = vb.get(&format!("/ui/experiments/{key}")).await;
        assert_eq!(exp.status, 200, "{b}: {}", exp.html);
        assert!(
            exp.html.contains(&format!("href=\"/ui/analyses/{id}\"")),
            "{b}"
        );
        assert_eq!(
            exp.html.matches("<tr>").count(),
            1 + 3 + 1 + 1,
            "header + 3 arms, header + 1 analysis: {b}"
        );

        let page = vb.get(&format!("/ui/analyses/{id}")).await;
        assert_eq!(page.status, 200, "{b}: {}", page.html);
        let forest_at = page
            .html
            .find("aria-labelledby=\"forest-title\"")
            .expect("a forest plot");
        let forest_end = page.html[forest_at..].find("</svg>").unwrap() + forest_at;
        assert_eq!(
            page.html[forest_at..forest_end]
                .matches(r#"width="10" height="10""#)
                .count(),
            effects,
            "{b}: one square per arm × metric"
        );
        assert_eq!(
            page.html.matches("<svg role=\"img\"").count(),
            1 + kpis,
            "{b}"
        );
        assert!(
            page.html
                .contains(&format!("href=\"/api/v1/analyses/{id}\"")),
            "{b}"
        );
        for section in [
            "Sample ratio",
            "Power",
            "Thresholds (knees)",
            "Verdicts",
            "Causal slope",
        ] {
            assert!(page.html.contains(section), "{b}: no {section}");
        }
        // The catalog's names label the metrics, not only their keys.
        let kpi_key = doc["causal_effects"][0]["kpi"].as_str().unwrap();
        let kpi_name = app.get(&format!("/api/v1/metrics/{kpi_key}")).await.body["name"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            page.html.contains(&format!("<h3>{kpi_name}</h3>")),
            "{b}: {kpi_name}"
        );

        // The raw JSON the page links to opens with the page's session; the session reads
        // only: a write with the cookie alone is a 401.
        let raw = vb.get(&format!("/api/v1/analyses/{id}")).await;
        assert_eq!(raw.status, 200, "{b}: {}", raw.html);
        assert!(raw.html.starts_with('{'), "{b}");
        let write = vb
            .send("POST", &format!("/api/v1/experiments/{key}/analyses"), None)
            .await;
        assert_eq!(write.status, 401, "{b}: {}", write.html);
        assert_eq!(
            Browser::new(&app)
                .get(&format!("/api/v1/analyses/{id}"))
                .await
                .status,
            401,
            "{b}"
        );

        // HEAD answers like GET, without a body; other methods get a 405 page with Allow.
        let head = vb.send("HEAD", &format!("/ui/analyses/{id}"), None).await;
        assert_eq!((head.status, head.html.len()), (200, 0), "{b}");
        let put = vb.send("PUT", &format!("/ui/analyses/{id}"), None).await;
        assert_eq!(put.status, 405, "{b}");
        assert_eq!(put.allow.as_deref(), Some("GET, HEAD"), "{b}");
        assert!(put.html.contains("<!DOCTYPE html>"), "{b}");
        let get_form = vb.get("/ui/recommendations/1/decision").await;
        assert_eq!(get_form.status, 405, "{b}");
        assert_eq!(get_form.allow.as_deref(), Some("POST"), "{b}");
        for missing in [
            "/ui/analyses/999999",
            "/ui/experiments/no_such_exp",
            "/ui/analyses/x",
        ] {
            assert_eq!(vb.get(missing).await.status, 404, "{b}: {missing}");
        }
        // An address with a bidirectional override is shown without it.
        let bidi = vb.get("/ui/experiments/%C3%A9%E2%80%AEx").await;
        assert_eq!(bidi.status, 404, "{b}");
        assert!(!bidi.html.contains('\u{202e}'), "{b}");
        // A page past the last analysis says so, and links back to the newest.
        let past = vb.get(&format!("/ui/experiments/{key}?before={id}")).await;
        assert!(
            past.html.contains("No older analyses."),
            "{b}: {}",
            past.html
        );
        let junk = vb.get("/ui/experiments?after=abc").await;
        assert_eq!(junk.status, 400, "{b}");
        assert!(junk.html.contains("whole number"), "{b}: {}", junk.html);

        // A link to a page whose address holds a control character signs in to the inbox.
        let mut fresh = Browser::new(&app);
        let form = fresh.get("/ui/sign-in").await;
        let csrf = hidden(&form.html, "csrf");
        let signed = fresh
            .post(
                "/ui/sign-in",
                &[("token", &viewer), ("csrf", &csrf), ("next", "/ui/x\ny")],
            )
            .await;
        assert_eq!(signed.status, 303, "{b}: {}", signed.html);
        assert_eq!(
            signed.location.as_deref(),
            Some("/ui/recommendations"),
            "{b}"
        );

        // A currency that is not an ISO 4217 code is refused by name; a named one is shown.
        let bad = app
            .post_json(
                &format!("/api/v1/analyses/{id}/recommendations"),
                &json!({"max_relative_kpi_loss": 0.1, "value_per_kpi_unit": 50.0, "units_per_day": 1e5, "currency": "usd"}),
            )
            .await;
        assert_eq!(bad.status, 422, "{b}: {}", bad.text);
        assert!(bad.text.contains("currency"), "{b}: {}", bad.text);
        let unpriced = app
            .post_json(
                &format!("/api/v1/analyses/{id}/recommendations"),
                &json!({"max_relative_kpi_loss": 0.1, "currency": "JPY"}),
            )
            .await;
        assert_eq!(unpriced.status, 422, "{b}: {}", unpriced.text);
        assert!(
            unpriced.text.contains("value_per_kpi_unit"),
            "{b}: {}",
            unpriced.text
        );
        let rec = app
            .post_json(
                &format!("/api/v1/analyses/{id}/recommendations"),
                &json!({"max_relative_kpi_loss": 0.1, "value_per_kpi_unit": 50.0, "units_per_day": 1e5, "currency": "EUR"}),
            )
            .await;
        assert_eq!(rec.status, 201, "{b}: {}", rec.text);
        assert_eq!(rec.body["error_budget"]["currency"], "EUR", "{b}");
        let inbox = vb.get("/ui/recommendations").await;
        assert!(
            inbox.html.contains(" EUR per 28 days"),
            "{b}: {}",
            inbox.html
        );
    }
}

/// A page's POST spends the token's write budget like the API: past the burst, a 429.
#[actix_web::test]
async fn page_writes_spend_the_tokens_write_budget() {
    let limits = sloproof::server::Limits {
        write_rate_per_second: 1,
        write_burst: 2,
        ..sloproof::server::Limits::default()
    };
    for app in common::apps_with(limits).await {
        let b = app.backend;
        let reviewer = token(&app, "rate-reviewer", "reviewer").await;
        let mut rb = Browser::new(&app);
        assert_eq!(rb.sign_in(&reviewer).await.status, 303, "{b}");
        let statuses = [
            rb.post(
                "/ui/recommendations/1/decision",
                &[("decision", "reject"), ("csrf", "x")],
            )
            .await
            .status,
            rb.post(
                "/ui/recommendations/1/decision",
                &[("decision", "reject"), ("csrf", "x")],
            )
            .await
            .status,
            rb.post(
                "/ui/recommendations/1/decision",
                &[("decision", "reject"), ("csrf", "x")],
            )
            .await
            .status,
        ];
        assert_eq!(statuses, [403, 403, 429], "{b}");
    }
}
