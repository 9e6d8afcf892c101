//! Signing in with an API token, and out.
//!
//! The sign-in form is protected against login CSRF by a double-submit token: the form's
//! hidden field must equal a short-lived HttpOnly, SameSite=Strict cookie set with the form.

use actix_web::cookie::Cookie;
use actix_web::http::header::ContentType;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;
use serde::Deserialize;

use super::{
    cookie, layout, protect, same_secret, see_other, PageCaller, PageError, SESSION_COOKIE,
};
use crate::access::session::{self, SESSION_HOURS};
use crate::api::AppState;
use crate::error::AppError;

const FORM_COOKIE: &str = "sloproof_sign_in";

/// Whether `path` is a page of this service to return to after signing in (not another
/// site: no `//host`, no backslashes).
pub fn local(path: &str) -> bool {
    // Control characters cannot go into a Location header.
    path.starts_with("/ui/")
        && !path.chars().any(char::is_control)
        && !path.starts_with("/ui/sign-")
        && !path.contains("//")
        && !path.contains('\\')
        && path.len() <= 512
}

/// Where to go after signing in.
#[derive(Debug, Deserialize)]
pub struct Next {
    #[serde(default)]
    next: Option<String>,
}

/// The sign-in form (with `error` above it after a refused token).
fn form_page(
    req: &HttpRequest,
    next: Option<&str>,
    error: Option<&str>,
    status: actix_web::http::StatusCode,
) -> HttpResponse {
    let nonce = crate::access::generate();
    let body = layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            p { "Paste an API token once; this browser then keeps a session for "
                (SESSION_HOURS) " hours. The token's role decides what you may do here, as in the API." }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            form method="post" action="/ui/sign-in" {
                input type="hidden" name="csrf" value=(nonce);
                @if let Some(n) = next.filter(|n| local(n)) {
                    input type="hidden" name="next" value=(n);
                }
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="off" required;
                button type="submit" { "Sign in" }
            }
        },
    );
    let mut r = HttpResponse::build(status);
    protect(&mut r);
    r.content_type(ContentType::html())
        .cookie(cookie(req, (FORM_COOKIE, "/ui"), nonce, 1))
        .body(body.into_string())
}

pub async fn form(req: HttpRequest, q: web::Query<Next>) -> HttpResponse {
    form_page(
        &req,
        q.next.as_deref(),
        None,
        actix_web::http::StatusCode::OK,
    )
}

#[derive(Debug, Deserialize)]
pub struct SignIn {
    token: String,
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Form<SignIn>,
) -> Result<HttpResponse, PageError> {
    let sent = body.into_inner();
    let expected = req.cookie(FORM_COOKIE).map(|c| c.value().to_owned());
    if !expected.is_some_and(|e| same_secret(&e, &sent.csrf)) {
        return Err(PageError(AppError::Forbidden(
            "the sign-in form expired or was not sent by this page; reload it".into(),
        )));
    }
    let token = sent.token;
    // Signing in again replaces this browser's earlier session.
    let earlier = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    let signed = state
        .run(move |db| {
            if let Some(id) = earlier {
                session::sign_out(db, &id)?;
            }
            session::sign_in(db, &token)
        })
        .await;
    let next = sent.next.filter(|n| local(n));
    match signed {
        Ok((id, _)) => {
            let mut done = Cookie::new(FORM_COOKIE, "");
            done.set_path("/ui");
            done.make_removal();
            let mut r = see_other(next.as_deref().unwrap_or("/ui/recommendations"));
            r.add_cookie(&cookie(
                &req,
                (SESSION_COOKIE, super::SESSION_PATH),
                id,
                SESSION_HOURS,
            ))
            .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot set the cookie: {e}")))?;
            r.add_cookie(&done)
                .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot set the cookie: {e}")))?;
            Ok(r)
        }
        Err(AppError::Unauthorized(m)) => Ok(form_page(
            &req,
            next.as_deref(),
            Some(&m),
            actix_web::http::StatusCode::UNAUTHORIZED,
        )),
        Err(e) => Err(PageError(e)),
    }
}

#[derive(Debug, Deserialize)]
pub struct SignOut {
    csrf: String,
}

pub async fn sign_out(
    req: HttpRequest,
    who: PageCaller,
    state: web::Data<AppState>,
    body: web::Form<SignOut>,
) -> Result<HttpResponse, PageError> {
    who.check_csrf(&body.csrf)?;
    if let Some(id) = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()) {
        state.run(move |db| session::sign_out(db, &id)).await?;
    }
    let mut gone = Cookie::new(SESSION_COOKIE, "");
    gone.set_path(super::SESSION_PATH);
    gone.make_removal();
    let mut r = see_other("/ui/sign-in");
    r.add_cookie(&gone)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot clear the cookie: {e}")))?;
    Ok(r)
}
