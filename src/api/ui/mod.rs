//! Web pages under `/ui/`, rendered on the server (maud) with SVG charts (plotters), every
//! asset embedded: they work offline and behind a firewall.
//!
//! A browser signs in once with an API token ([`crate::access::session`]); the session cookie is
//! HttpOnly, SameSite=Strict, Secure when the page is served over https, and lasts
//! [`SESSION_HOURS`](crate::access::session::SESSION_HOURS). Every form carries the session's
//! CSRF token and every POST checks it. A page's caller is a [`Caller`] with the token's role,
//! so the API's role rules apply unchanged: a viewer sees no approve button, and a POST forged
//! with a viewer's cookie is refused with a 403.

mod analyses;
mod charts;
mod dose;
mod experiments;
mod forest;
mod recommendations;
mod sign_in;
mod slos;

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::caller::Caller;
use super::AppState;
use crate::access::session;
use crate::error::AppError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "sloproof_session";

/// Registers the pages.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::redirect("/ui", "/ui/")).service(
        web::scope("/ui")
            .app_data(
                web::FormConfig::default()
                    .limit(64 << 10)
                    .error_handler(form_error),
            )
            .app_data(web::PathConfig::default().error_handler(path_error))
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .service(get_page("/", home))
            .service(get_page("/style.css", style))
            .service(
                web::resource("/sign-in")
                    .route(web::get().to(sign_in::form))
                    .route(web::head().to(sign_in::form))
                    .route(web::post().to(sign_in::submit))
                    .default_service(web::to(|| not_allowed("GET, HEAD, POST"))),
            )
            .service(post_form("/sign-out", sign_in::sign_out))
            .service(get_page("/recommendations", recommendations::inbox))
            .service(get_page("/recommendations/{id}", recommendations::detail))
            .service(post_form(
                "/recommendations/{id}/decision",
                recommendations::decide,
            ))
            .service(get_page("/slos", slos::list))
            .service(get_page("/slos/{id}", slos::detail))
            .service(get_page("/experiments", experiments::list))
            .service(get_page("/experiments/{key}", experiments::detail))
            .service(get_page("/analyses/{id}", analyses::detail))
            .default_service(web::to(not_found)),
    );
}

/// A page read with GET (and HEAD, which answers the same headers without the body); any
/// other method gets a 405 page naming the allowed ones.
fn get_page<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(web::to(|| not_allowed("GET, HEAD")))
}

/// A form's target, POST only; any other method gets a 405 page.
fn post_form<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::post().to(handler))
        .default_service(web::to(|| not_allowed("POST")))
}

/// A 405 page with the `Allow` header.
async fn not_allowed(allow: &'static str) -> HttpResponse {
    let mut r = message_page(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("this address answers {allow} only"),
        None,
    );
    r.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    r
}

/// Any other path under `/ui/`: a 404 page.
async fn not_found(req: HttpRequest) -> HttpResponse {
    PageError(AppError::not_found("page", shown_path(&req))).error_response()
}

/// The address as a page may show it (see [`shown`]).
fn shown_path(req: &HttpRequest) -> String {
    shown(req.path(), 120)
}

/// Text from the request as a page may show it: without control characters or bidirectional
/// overrides (which would reorder the page's text), at most `max` characters.
fn shown(text: &str, max: usize) -> String {
    let clean: String = text
        .chars()
        .filter(|c| {
            !c.is_control() && !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    if clean.chars().count() > max {
        format!("{}…", clean.chars().take(max - 1).collect::<String>())
    } else {
        clean
    }
}

/// An id that is not a number names no page: a 404 page.
fn path_error(e: actix_web::error::PathError, req: &HttpRequest) -> actix_web::Error {
    tracing::debug!(error = %e, "page path not matched");
    PageError(AppError::not_found("page", shown_path(req))).into()
}

/// A query parameter that cannot be read: a 400 page.
fn query_error(e: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    tracing::debug!(error = %e, "page query not read");
    PageError(AppError::BadRequest(
        "the address's parameters cannot be read: a paging parameter (after, before, proposed_after, decided_after) must be a whole number, given once".into(),
    ))
    .into()
}

async fn home() -> HttpResponse {
    see_other("/ui/recommendations")
}

async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=3600"))
        .body(include_str!("style.css"))
}

/// A 303 to `location`.
fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Whether the request came over https (directly or through a proxy that says so).
fn https(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// A cookie for `path`: HttpOnly, SameSite=Strict, Secure over https.
fn cookie<'a>(
    req: &HttpRequest,
    (name, path): (&'a str, &'a str),
    value: String,
    max_age_hours: i64,
) -> Cookie<'a> {
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(https(req))
        .max_age(actix_web::cookie::time::Duration::hours(max_age_hours))
        .finish()
}

/// The session cookie goes to the whole site: the pages, and the API's read-only GETs that
/// the pages link to (raw JSON, exports), which accept it in place of a bearer token.
pub const SESSION_PATH: &str = "/";

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The signed-in caller of a page and its session's CSRF token. Without a live session a
/// page redirects to the sign-in form.
pub struct PageCaller {
    pub caller: Caller,
    pub csrf: String,
}

impl PageCaller {
    /// Ok when a form's CSRF token is the session's; otherwise a 403.
    fn check_csrf(&self, sent: &str) -> Result<(), PageError> {
        if same_secret(sent, &self.csrf) {
            Ok(())
        } else {
            Err(PageError(AppError::Forbidden(
                "the form's CSRF token is missing or not this session's; reload the page".into(),
            )))
        }
    }
}

impl FromRequest for PageCaller {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<PageCaller, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let id = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let writes = req.method() == actix_web::http::Method::POST;
        // After signing in, the page asked for (a GET) opens.
        let back = (req.method() == actix_web::http::Method::GET)
            .then(|| req.uri().path_and_query().map(|p| p.as_str().to_owned()))
            .flatten()
            .filter(|p| sign_in::local(p))
            .map_or_else(String::new, |p| {
                format!(
                    "?next={}",
                    url::form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>()
                )
            });
        Box::pin(async move {
            let sign_in = || {
                actix_web::error::InternalError::from_response(
                    "sign in first",
                    see_other(&format!("/ui/sign-in{back}")),
                )
                .into()
            };
            let (Some(id), Some(state)) = (id, state) else {
                return Err(sign_in());
            };
            let found = state
                .run(move |db| session::find(db, &id))
                .await
                .map_err(PageError)?;
            let s = found.ok_or_else(sign_in)?;
            // A page's POST spends its token's write budget, as the same write through the
            // API does.
            if writes {
                state.spend_write(s.token.id).map_err(PageError)?;
            }
            Ok(PageCaller {
                caller: Caller {
                    token_id: s.token.id,
                    name: s.token.name,
                    role: s.token.role,
                },
                csrf: s.csrf,
            })
        })
    }
}

/// An error shown as a page: the problem's status and message (internal errors stay opaque
/// problems, logged, as in the API).
#[derive(Debug)]
pub struct PageError(pub AppError);

impl From<AppError> for PageError {
    fn from(e: AppError) -> PageError {
        PageError(e)
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            return self.0.error_response();
        }
        message_page(status, &shown(&self.0.to_string(), 600), Some(&self.0))
    }
}

/// A page that says what went wrong (with the fields at fault for a 422).
fn message_page(status: StatusCode, message: &str, error: Option<&AppError>) -> HttpResponse {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = layout(
        title,
        None,
        html! {
            h1 { (title) }
            p role="alert" { (message) }
            @if let Some(AppError::Invalid { issues, .. }) = error {
                ul { @for i in issues { li { @if let Some(f) = &i.field { code { (f) } ": " } (i.message) } } }
            }
            p { "Go back to correct it, or " a href="/ui/recommendations" { "return to the recommendations" } "." }
        },
    );
    let mut r = HttpResponse::build(status);
    protect(&mut r);
    r.content_type(ContentType::html()).body(body.into_string())
}

/// The page frame: navigation, the signed-in caller and sign-out.
fn layout(title: &str, who: Option<&PageCaller>, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · sloproof" }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                header {
                    nav aria-label="Main" {
                        a.brand href="/ui/" { "sloproof" }
                        a href="/ui/recommendations" { "Recommendations" }
                        a href="/ui/slos" { "SLOs" }
                        a href="/ui/experiments" { "Experiments" }
                        a href="/docs/" { "API" }
                    }
                    @if let Some(p) = who {
                        form.signout method="post" action="/ui/sign-out" {
                            span { (p.caller.name) " (" (p.caller.role.as_str()) ")" }
                            input type="hidden" name="csrf" value=(p.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (main) }
            }
        }
    }
}

/// Headers of every page: not cached, not framed by other sites, no content sniffing, and
/// nothing loaded from elsewhere (every asset is the service's own).
fn protect(r: &mut actix_web::HttpResponseBuilder) {
    r.insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
             script-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ));
}

/// A rendered page.
fn page(title: &str, who: &PageCaller, main: Markup) -> HttpResponse {
    let mut r = HttpResponse::Ok();
    protect(&mut r);
    r.content_type(ContentType::html())
        .body(layout(title, Some(who), main).into_string())
}

/// The form parser's errors (a missing field, a body too large) as pages.
fn form_error(e: actix_web::error::UrlencodedError, _: &HttpRequest) -> actix_web::Error {
    let message = match &e {
        actix_web::error::UrlencodedError::Overflow { .. } => {
            "the form is larger than 64 KiB".to_owned()
        }
        other => format!("the form cannot be read: {other}"),
    };
    PageError(AppError::BadRequest(message)).into()
}

/// A number with `digits` significant digits, without trailing zeros.
fn num(x: f64, digits: usize) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let magnitude = x.abs().log10().floor() as i64;
    let decimals = (digits as i64 - 1 - magnitude).clamp(0, 12) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// An amount of money, rounded to whole units with thousands separators, followed by its
/// currency code when it has one.
fn money(x: f64, currency: Option<&str>) -> String {
    let amount = whole_units(x);
    match currency {
        Some(c) => format!("{amount} {c}"),
        None => amount,
    }
}

fn whole_units(x: f64) -> String {
    let whole = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 {
        format!("−{out}")
    } else {
        out
    }
}

/// "3 h ago", "2 d ago".
fn age(t: chrono::DateTime<chrono::Utc>) -> String {
    let s = (chrono::Utc::now() - t).num_seconds().max(0);
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        7200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// The SLI step a relative effect is stated per: 100 units (ms, minutes), or one point
/// (0.01) of a share.
fn per_step(unit: &str) -> (f64, String) {
    if unit == "share" {
        (0.01, "point (0.01 share)".to_owned())
    } else {
        (100.0, format!("100 {unit}"))
    }
}

/// "3 h ago" for a time stored without zone (UTC).
fn age_naive(t: chrono::NaiveDateTime) -> String {
    age(t.and_utc())
}

/// Raw SVG produced by [`charts`] (numbers and escaped labels only).
fn svg(s: &str) -> PreEscaped<&str> {
    PreEscaped(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(num(0.012_345, 3), "0.0123");
        assert_eq!(num(473.82, 3), "474");
        assert_eq!(num(2.0, 3), "2");
        assert_eq!(money(1_234_567.4, None), "1,234,567");
        assert_eq!(money(-950.0, Some("EUR")), "−950 EUR");
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
