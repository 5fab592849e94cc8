//! The few server-rendered HTML pages outside the dashboard: the operator sign-in form and the pages a
//! portal link or a sign-in ends on when it cannot start a session.
//!
//! Pages are askama templates (`templates/`), which escape every value; no HTML is built with
//! `format!`. Every page is sent with a Content-Security-Policy of `default-src 'self'` (no inline script
//! or style runs), `frame-ancestors 'none'`, no referrer (a portal link's token must not travel in a
//! `Referer`) and `Cache-Control: no-store`.

use std::time::Duration;

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const CSP: &str = "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
    link: Option<&'a str>,
    link_text: &'a str,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    error: Option<&'a str>,
    email: &'a str,
    organization_id: &'a str,
}

/// An HTML answer with the headers every page carries.
pub fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn render(status: StatusCode, page: impl Template) -> Response {
    match page.render() {
        Ok(body) => html(status, body),
        Err(e) => crate::error::ApiError::internal(format!("cannot render a page: {e}")).into_response(),
    }
}

/// A page that says what happened and, optionally, where to go next.
pub fn message(status: StatusCode, title: &str, message: &str, link: Option<(&str, &str)>) -> Response {
    let (link, link_text) = match link {
        Some((href, text)) => (Some(href), text),
        None => (None, ""),
    };
    render(status, MessagePage { title, message, link, link_text })
}

/// The operator sign-in form, with a problem to show when there is one.
pub fn login(status: StatusCode, error: Option<&str>, email: &str, organization_id: &str) -> Response {
    render(status, LoginPage { error, email, organization_id })
}

/// 429 with `Retry-After`, for too many failed sign-ins.
pub fn too_many_attempts(retry_after: Duration) -> Response {
    let mut response = login(
        StatusCode::TOO_MANY_REQUESTS,
        Some("Too many failed sign-ins. Wait a few minutes before trying again."),
        "",
        "",
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_in_every_page() {
        let page = MessagePage {
            title: "<script>alert(1)</script>",
            message: "\"quoted\" & 'single'",
            link: Some("/x?a=1&b=\"2\""),
            link_text: "<b>go</b>",
        };
        let body = page.render().unwrap();
        assert!(!body.contains("<script>") && body.contains("&#60;script&#62;"), "{body}");
        assert!(!body.contains("<b>go</b>"));
        assert!(!body.contains("\"quoted\""));
        let login =
            LoginPage { error: Some("<i>no</i>"), email: "\"><script>", organization_id: "a\"b" }.render().unwrap();
        assert!(!login.contains("<i>no</i>") && !login.contains("\"><script>") && !login.contains("a\"b"), "{login}");
        assert!(!login.contains("<script"), "no inline script, escaped or not: {login}");
    }
}
