//! Portal links, dashboard sessions and operator sign-in, attacked the way a browser-borne attacker
//! would: forged, expired and replayed links; session fixation; cross-site requests without the CSRF
//! token or from another origin; a key revoked while its sessions are open; password guessing; and a
//! look at the server's own log output for any secret that went through it.
//!
//! Constant-time comparison, by design rather than by stopwatch (no timing assertion here): API keys,
//! portal link tokens and session cookies are looked up by their SHA-256 (an index lookup, so no
//! secret-dependent comparison happens outside SHA-256); CSRF tokens are compared with `subtle`'s
//! `ct_eq` (`trailkeep-server/src/sessions.rs`); passwords with argon2's `verify_password`, against a
//! dummy hash when the email is unknown (`trailkeep-server/src/operators.rs`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use trailkeep_client::{Client, Method, encode};
use trailkeep_wire::CreateKeyRequest;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

pub const ALL: &[&str] = &["events:write", "events:read", "admin"];
const UA: &str = "trailkeep-test-browser/1.0";

/// An HTTP client that behaves like a browser without a cookie jar: it follows no redirect, so a test
/// sees each 303 and `Set-Cookie` itself.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).user_agent(UA).build().expect("http client")
}

/// Mints a portal link with `issuer` (a platform or organisation admin key).
pub async fn mint(issuer: &Client, body: Value) -> (u16, Value) {
    let r = issuer
        .raw(
            Method::POST,
            "/v1/portal-links",
            Some(body.to_string().into_bytes()),
            &[("content-type", "application/json")],
        )
        .await
        .unwrap();
    (r.status, r.json().unwrap_or(Value::Null))
}

pub fn link_body(org: &str, email: &str, role: &str, projects: &[&str]) -> Value {
    let mut body = json!({
        "organization_id": org,
        "user": {"email": email, "name": "Test User"},
        "role": role,
        "intent": "audit_logs",
    });
    if !projects.is_empty() {
        body["projects"] = json!(projects);
    }
    body
}

/// A portal link's URL, minted by `issuer`.
pub async fn link(issuer: &Client, org: &str, email: &str, role: &str, projects: &[&str]) -> String {
    let (status, body) = mint(issuer, link_body(org, email, role, projects)).await;
    assert_eq!(status, 201, "{body}");
    body["link"].as_str().expect("a link").to_owned()
}

/// Opens `url` as a browser would, sending `cookie` along when given.
pub async fn open(url: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = browser().get(url);
    if let Some(c) = cookie {
        request = request.header("cookie", format!("trailkeep_session={c}"));
    }
    request.send().await.expect("open the link")
}

/// The session cookie a response sets, with its attributes.
pub fn set_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_owned())
}

fn cookie_value(set_cookie: &str) -> String {
    let first = set_cookie.split(';').next().unwrap();
    first.strip_prefix("trailkeep_session=").expect("the session cookie").to_owned()
}

/// A browser holding a dashboard session.
pub struct Session {
    pub base: String,
    pub cookie: String,
    pub csrf: String,
    pub info: Value,
}

impl Session {
    /// Redeems `link` and reads the session it started.
    pub async fn from_link(base: &str, link: &str) -> Session {
        let r = open(link, None).await;
        assert_eq!(r.status(), 303, "{:?}", r.text().await);
        let cookie = cookie_value(&set_cookie(&r).expect("a session cookie"));
        Session::from_cookie(base, cookie).await
    }

    pub async fn from_cookie(base: &str, cookie: String) -> Session {
        let mut s = Session { base: base.to_owned(), cookie, csrf: String::new(), info: Value::Null };
        let (status, info) = s.get("/v1/session").await;
        assert_eq!(status, 200, "{info}");
        s.csrf = info["csrf_token"].as_str().unwrap().to_owned();
        s.info = info;
        s
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = browser()
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("trailkeep_session={}", self.cookie))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A POST with the session cookie and the given extra headers.
    pub async fn post(&self, path: &str, body: Option<&str>, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut request = browser()
            .post(format!("{}{path}", self.base))
            .header("cookie", format!("trailkeep_session={}", self.cookie));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(b) = body {
            request = request.header("content-type", "application/json").body(b.to_owned());
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

/// A new key of `org` with all permissions, and its client.
pub async fn org_admin(app: &TestApp, org: &str) -> (String, Client) {
    let created = app
        .admin
        .create_key(&CreateKeyRequest {
            name: format!("{org} admin"),
            organization_id: Some(org.into()),
            permissions: ALL.iter().map(|p| p.to_string()).collect(),
        })
        .await
        .unwrap();
    (created.info.id.clone(), app.admin.with_key(created.key))
}

#[tokio::test]
async fn a_portal_link_starts_one_session_with_a_hardened_cookie_and_cannot_be_replayed() {
    let app = spawn_app().await;
    let (_, acme) = org_admin(&app, "acme").await;
    let (status, minted) = mint(&acme, link_body("acme", "Ada@Example.com", "admin", &[])).await;
    assert_eq!(status, 201, "{minted}");
    let url = minted["link"].as_str().unwrap();
    let token = url.strip_prefix(&format!("{}/portal/", app.base_url)).expect("the link is on the service");
    assert!(token.starts_with("tkp_") && token.len() >= 40, "256 random bits: {token}");
    let expires = chrono::DateTime::parse_from_rfc3339(minted["expires_at"].as_str().unwrap()).unwrap();
    let left = expires.signed_duration_since(chrono::Utc::now());
    assert!(left <= chrono::TimeDelta::seconds(300) && left > chrono::TimeDelta::seconds(200), "{left}");

    let r = open(url, None).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    let cookie = set_cookie(&r).expect("a session cookie");
    let attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
    assert!(attributes.contains(&"HttpOnly") && attributes.contains(&"SameSite=Strict"), "{cookie}");
    assert!(attributes.contains(&"Path=/"), "{cookie}");
    let max_age: u64 = attributes.iter().find_map(|a| a.strip_prefix("Max-Age=")).unwrap().parse().unwrap();
    assert!(max_age > 0 && max_age <= 8 * 3600, "{cookie}");
    assert!(!attributes.contains(&"Secure"), "plain http: a Secure cookie would never come back");
    assert!(!cookie.contains(token), "the session id is not the link token");

    let session = Session::from_cookie(&app.base_url, cookie_value(&cookie)).await;
    assert_eq!(session.info["user"]["email"], "ada@example.com");
    assert_eq!(session.info["organization_id"], "acme");
    assert_eq!(session.info["role"], "admin");
    assert!(session.info["csrf_token"].as_str().unwrap().len() >= 40);
    let (status, page) = session.get("/v1/events").await;
    assert_eq!(status, 200, "an admin's session reads the organisation's log: {page}");

    // Replayed: the link worked once and never again, and the page gives nothing away.
    for _ in 0..2 {
        let again = open(url, None).await;
        assert_eq!(again.status(), 410);
        assert!(set_cookie(&again).is_none());
        assert!(again.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let body = again.text().await.unwrap();
        assert!(body.contains("can no longer be used") && !body.contains(token), "{body}");
    }

    // The streams intent lands on the streams page.
    let mut body = link_body("acme", "ada@example.com", "admin", &[]);
    body["intent"] = json!("log_streams");
    let streams = mint(&acme, body).await.1["link"].as_str().unwrap().to_owned();
    assert_eq!(open(&streams, None).await.headers()["location"], "/streams");
    app.stop().await;
}

#[tokio::test]
async fn forged_links_answer_404_and_expired_ones_410_on_an_escaped_page() {
    let app = spawn_app_with(|c| c.portal_link_lifetime_secs = 1).await;
    let forged = [
        format!("tkp_{}", "A".repeat(43)),
        "tkp_short".to_owned(),
        "not-a-token".to_owned(),
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_owned(),
        format!("tkp_{}", "x".repeat(500)),
    ];
    for token in &forged {
        let r = open(&format!("{}/portal/{token}", app.base_url), None).await;
        assert_eq!(r.status(), 404, "{token}");
        assert!(set_cookie(&r).is_none());
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert_eq!(r.headers()["referrer-policy"], "no-referrer");
        let body = r.text().await.unwrap();
        assert!(body.contains("This link is not valid"), "{body}");
        assert!(!body.contains("<script>alert") && !body.contains("tkp_"), "the token is not echoed: {body}");
    }

    let url = link(&app.admin, "acme", "ada@example.com", "owner", &[]).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = open(&url, None).await;
    assert_eq!(r.status(), 410, "a link past its lifetime");
    assert!(set_cookie(&r).is_none());
    app.stop().await;
}

#[tokio::test]
async fn a_cookie_sent_while_redeeming_a_link_is_ignored_and_replaced_by_a_new_session() {
    let app = spawn_app().await;
    // The attacker holds a session of their own and plants its cookie (or a made-up one) in the victim's
    // browser before the victim opens their link.
    let attacker =
        Session::from_link(&app.base_url, &link(&app.admin, "acme", "mallory@example.com", "viewer", &[]).await).await;
    for planted in [attacker.cookie.clone(), format!("tks_{}", "f".repeat(43))] {
        let victim_link = link(&app.admin, "acme", "victim@example.com", "owner", &[]).await;
        let r = open(&victim_link, Some(&planted)).await;
        assert_eq!(r.status(), 303);
        let issued = cookie_value(&set_cookie(&r).expect("a new cookie"));
        assert_ne!(issued, planted, "the session id is always new");
        let victim = Session::from_cookie(&app.base_url, issued).await;
        assert_eq!(victim.info["user"]["email"], "victim@example.com");
    }
    // The planted cookies gained nothing: the attacker's is still the attacker's viewer session, the
    // made-up one is no session at all.
    let (_, mine) = attacker.get("/v1/session").await;
    assert_eq!((mine["user"]["email"].as_str(), mine["role"].as_str()), (Some("mallory@example.com"), Some("viewer")));
    assert_eq!(attacker.get("/v1/events").await.0, 403, "a viewer reads nothing");
    let made_up = Session { cookie: format!("tks_{}", "f".repeat(43)), ..attacker };
    assert_eq!(made_up.get("/v1/session").await.0, 401);
    app.stop().await;
}

#[tokio::test]
async fn state_changing_session_requests_need_the_csrf_token_and_the_same_origin_and_keys_do_not() {
    let app = spawn_app().await;
    let session =
        Session::from_link(&app.base_url, &link(&app.admin, "acme", "ada@example.com", "owner", &[]).await).await;
    let origin = app.base_url.as_str();
    let refused: [&[(&str, &str)]; 4] = [
        &[],
        &[("x-csrf-token", "wrong")],
        &[("origin", origin)],
        &[("x-csrf-token", &session.csrf), ("origin", "https://evil.example")],
    ];
    for headers in refused {
        let (status, body) = session.post("/v1/session/logout", None, headers).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("csrf_failed")), "{headers:?}");
        assert_eq!(session.get("/v1/session").await.0, 200, "a refused logout leaves the session");
    }
    // Not even an ingest reaches its permission check without the token.
    let event = json!({"organization_id": "acme", "action": "doc.created"}).to_string();
    let (status, body) = session.post("/v1/events", Some(&event), &[]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("csrf_failed")));
    // With the token, it does, and a session may not write events.
    let (status, body) = session.post("/v1/events", Some(&event), &[("x-csrf-token", &session.csrf)]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");

    // Bearer calls carry no CSRF token and need none, whatever Origin they claim.
    let r = app
        .admin
        .raw(
            Method::POST,
            "/v1/events",
            Some(event.clone().into_bytes()),
            &[("content-type", "application/json"), ("origin", "https://evil.example")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);

    let (status, _) =
        session.post("/v1/session/logout", None, &[("x-csrf-token", &session.csrf), ("origin", origin)]).await;
    assert_eq!(status, 204);
    assert_eq!(session.get("/v1/session").await.0, 401, "a logged-out session is over");
    assert_eq!(session.get("/v1/events").await.0, 401);
    app.stop().await;
}

#[tokio::test]
async fn revoking_the_key_that_issued_a_link_ends_its_sessions_and_voids_its_unused_links() {
    let app = spawn_app().await;
    let (key_id, acme) = org_admin(&app, "acme").await;
    let session = Session::from_link(&app.base_url, &link(&acme, "acme", "ada@example.com", "admin", &[]).await).await;
    let unused = link(&acme, "acme", "bob@example.com", "admin", &[]).await;
    let other =
        Session::from_link(&app.base_url, &link(&app.admin, "acme", "cy@example.com", "admin", &[]).await).await;
    assert_eq!(session.get("/v1/events").await.0, 200);

    app.admin.revoke_key(&key_id).await.unwrap();
    let (status, body) = session.get("/v1/events").await;
    assert_eq!(status, 401, "mid-session, at once: {body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("revoked"), "{body}");
    assert_eq!(session.get("/v1/session").await.0, 401);
    assert_eq!(open(&unused, None).await.status(), 410);
    assert_eq!(other.get("/v1/events").await.0, 200, "sessions from other keys go on");
    app.stop().await;
}

#[tokio::test]
async fn a_session_ends_when_its_lifetime_is_over() {
    let app = spawn_app_with(|c| c.session_lifetime_secs = 1).await;
    let r = open(&link(&app.admin, "acme", "ada@example.com", "admin", &[]).await, None).await;
    let cookie = set_cookie(&r).unwrap();
    assert!(cookie.contains("Max-Age=1"), "{cookie}");
    let session = Session::from_cookie(&app.base_url, cookie_value(&cookie)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(session.get("/v1/events").await.0, 401);
    app.stop().await;
}

#[tokio::test]
async fn only_the_platform_or_the_organisations_admin_key_issues_links_and_bad_requests_name_the_field() {
    let app = spawn_app().await;
    let (_, acme) = org_admin(&app, "acme").await;
    let reader = app.org_client("acme", &["events:read", "events:write"]).await;
    let (_, globex) = org_admin(&app, "globex").await;
    let body = link_body("acme", "ada@example.com", "admin", &[]);
    assert_eq!(mint(&reader, body.clone()).await.0, 403, "events keys issue no links");
    assert_eq!(mint(&globex, body.clone()).await.0, 403, "another organisation's admin key");
    let viewer = Session::from_link(&app.base_url, &link(&acme, "acme", "v@example.com", "owner", &[]).await).await;
    let (status, _) = viewer.post("/v1/portal-links", Some(&body.to_string()), &[("x-csrf-token", &viewer.csrf)]).await;
    assert_eq!(status, 403, "a session, even an owner's, issues no links");

    let cases = [
        (link_body("acme", "ada@example.com", "project_admin", &[]), 422, "projects"),
        (link_body("acme", "ada@example.com", "admin", &["p1"]), 422, "projects"),
        (link_body("acme", "ada@example.com", "root", &[]), 422, "role"),
        (link_body("acme", "not-an-email", "admin", &[]), 422, "user.email"),
        (link_body("_platform", "ada@example.com", "admin", &[]), 422, "organization_id"),
        (json!({"organization_id": "acme", "user": {"email": "a@b.c"}, "role": "admin", "intent": "x"}), 422, "intent"),
    ];
    for (body, status, field) in cases {
        let (got, answer) = mint(&acme, body.clone()).await;
        assert_eq!((got, answer["error"]["field"].as_str()), (status, Some(field)), "{body} -> {answer}");
    }
    let mut unknown = link_body("acme", "ada@example.com", "admin", &[]);
    unknown["lifetime"] = json!(86400);
    assert_eq!(mint(&acme, unknown).await.0, 400, "unknown fields are refused, a lifetime above all");
    app.stop().await;
}

#[tokio::test]
async fn links_and_sessions_are_recorded_in_the_organisations_log_with_actor_address_and_user_agent() {
    let app = spawn_app().await;
    let (key_id, acme) = org_admin(&app, "acme").await;
    let session =
        Session::from_link(&app.base_url, &link(&acme, "acme", "ada@example.com", "project_admin", &["p1"]).await)
            .await;
    let (status, _) = session.post("/v1/session/logout", None, &[("x-csrf-token", &session.csrf)]).await;
    assert_eq!(status, 204);

    let find = |action: &'static str| {
        let admin = app.admin.clone();
        async move {
            let found = admin.list_all_events(&[("organization_id", "acme"), ("action", action)]).await.unwrap();
            assert_eq!(found.len(), 1, "{action}");
            serde_json::to_value(&found[0]).unwrap()
        }
    };
    let minted = find("portal_link.created").await;
    assert_eq!(minted["actor"]["type"], "api_key");
    assert_eq!(minted["actor"]["id"], key_id.as_str());
    assert_eq!(minted["targets"][0]["id"], "ada@example.com");
    assert_eq!(minted["metadata"]["role"], "project_admin");
    assert_eq!(minted["metadata"]["projects"], json!(["p1"]));
    assert_eq!(minted["context"]["ip"], "127.0.0.1");

    let started = find("session.started").await;
    assert_eq!(started["actor"]["type"], "user");
    assert_eq!(started["actor"]["email"], "ada@example.com");
    assert_eq!(started["context"]["ip"], "127.0.0.1");
    assert_eq!(started["context"]["user_agent"], UA);
    assert_eq!(started["context"]["session_id"], session.info["id"]);
    assert_eq!(started["metadata"]["issued_by"], key_id.as_str());
    let ended = find("session.ended").await;
    assert_eq!(ended["context"]["session_id"], session.info["id"]);

    // Nothing secret is in the log: neither the link token nor the cookie nor the CSRF token.
    let text =
        serde_json::to_string(&app.admin.list_all_events(&[("organization_id", "acme")]).await.unwrap()).unwrap();
    assert!(!text.contains("tkp_") && !text.contains(&session.cookie) && !text.contains(&session.csrf));
    app.stop().await;
}

/// Runs the `trailkeep` binary against `app` with `stdin` as its standard input.
async fn trailkeep(app: &TestApp, args: &[&str], stdin: &str) -> std::process::Output {
    let key = std::fs::read_to_string(app.data_dir.join("admin.key")).unwrap().trim().to_owned();
    let (url, args, stdin) =
        (app.base_url.clone(), args.iter().map(|s| s.to_string()).collect::<Vec<_>>(), stdin.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_trailkeep"))
            .args(&args)
            .env("TRAILKEEP_URL", url)
            .env("TRAILKEEP_API_KEY", key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

async fn login(base: &str, email: &str, password: &str, org: &str) -> reqwest::Response {
    browser()
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("email={}&password={}&organization_id={}", encode(email), encode(password), encode(org)))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_operator_created_with_the_command_signs_in_and_reads_any_organisation() {
    let app = spawn_app().await;
    app.admin.send_events(&[json!({"organization_id": "acme", "action": "doc.created"})]).await.unwrap();
    let password = "correct horse battery staple";
    let created =
        trailkeep(&app, &["users", "create", "--email", "Ops@Example.com", "--name", "Ops"], &format!("{password}\n"))
            .await;
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let printed = String::from_utf8_lossy(&created.stdout).into_owned();
    assert!(printed.contains("ops@example.com") && !printed.contains(password), "{printed}");
    let listed = trailkeep(&app, &["users", "list", "--json"], "").await;
    let list: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("argon2"), "no hash leaves the service");
    let again = trailkeep(&app, &["users", "create", "--email", "ops@example.com"], &format!("{password}\n")).await;
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("operator_exists"));
    let short = trailkeep(&app, &["users", "create", "--email", "x@example.com"], "short\n").await;
    assert!(!short.status.success());

    let form =
        browser().get(format!("{}/login?organization_id=%22%3E%3Cscript%3E", app.base_url)).send().await.unwrap();
    assert_eq!(form.status(), 200);
    assert!(form.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    let page = form.text().await.unwrap();
    assert!(page.contains("<form") && !page.contains("\"><script>") && !page.contains("<script"), "{page}");

    // A wrong password and an unknown email answer alike.
    let wrong = login(&app.base_url, "ops@example.com", "not the password", "acme").await;
    let unknown = login(&app.base_url, "nobody@example.com", "not the password", "acme").await;
    assert_eq!((wrong.status().as_u16(), unknown.status().as_u16()), (401, 401));
    assert!(set_cookie(&wrong).is_none() && set_cookie(&unknown).is_none());
    let (wrong, unknown) = (wrong.text().await.unwrap(), unknown.text().await.unwrap());
    assert_eq!(wrong.replace("ops@example.com", "X"), unknown.replace("nobody@example.com", "X"));

    let ok = login(&app.base_url, "OPS@example.com", password, "acme").await;
    assert_eq!(ok.status(), 303);
    let session = Session::from_cookie(&app.base_url, cookie_value(&set_cookie(&ok).unwrap())).await;
    assert_eq!(
        (session.info["role"].as_str(), session.info["organization_id"].as_str()),
        (Some("operator"), Some("acme"))
    );
    let (status, page) = session.get("/v1/events").await;
    assert_eq!(status, 200, "the chosen organisation by default: {page}");
    assert_eq!(page["data"][0]["organization_id"], "acme");
    assert_eq!(session.get("/v1/events?organization_id=globex").await.0, 200, "any organisation");
    assert_eq!(session.get("/v1/keys").await.0, 403, "an operator reads; it manages nothing");

    let platform = app.admin.list_all_events(&[("organization_id", "_platform")]).await.unwrap();
    let actions: Vec<String> = platform.iter().map(|e| e.action.to_string()).collect();
    assert!(actions.contains(&"operator.created".into()) && actions.contains(&"session.started".into()), "{actions:?}");
    app.stop().await;
}

#[tokio::test]
async fn five_failed_sign_ins_lock_the_email_and_the_address_out_with_429_and_retry_after() {
    let app = spawn_app().await;
    let body = json!({"email": "ops@example.com", "password": "correct horse battery staple"}).to_string();
    let r =
        app.admin.raw(Method::POST, "/v1/operators", Some(body.into_bytes()), &[("content-type", "application/json")]);
    assert_eq!(r.await.unwrap().status, 201);
    for _ in 0..5 {
        assert_eq!(login(&app.base_url, "ops@example.com", "guess", "").await.status(), 401);
    }
    for (email, password) in [("ops@example.com", "correct horse battery staple"), ("other@example.com", "x")] {
        let locked = login(&app.base_url, email, password, "").await;
        assert_eq!(locked.status(), 429, "{email}");
        let retry: u64 = locked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry > 0 && retry <= 15 * 60, "{retry}");
        assert!(set_cookie(&locked).is_none());
    }
    app.stop().await;
}

#[tokio::test]
async fn only_platform_admin_keys_manage_operators() {
    let app = spawn_app().await;
    let (_, acme) = org_admin(&app, "acme").await;
    let body = json!({"email": "ops@example.com", "password": "correct horse battery staple"}).to_string();
    for client in [&acme, &app.org_client("acme", &["events:read"]).await] {
        let r = client
            .raw(
                Method::POST,
                "/v1/operators",
                Some(body.clone().into_bytes()),
                &[("content-type", "application/json")],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 403);
        assert_eq!(client.raw(Method::GET, "/v1/operators", None, &[]).await.unwrap().status, 403);
    }
    let listed = app.admin.raw(Method::GET, "/v1/operators", None, &[]).await.unwrap();
    assert_eq!(listed.json().unwrap(), json!({"data": []}));
    app.stop().await;
}

#[tokio::test]
async fn no_key_token_cookie_or_password_reaches_the_servers_log() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let log_path = dir.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_trailkeep"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--data-dir"])
        .arg(&data_dir)
        .env("TRAILKEEP_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("the server printed its address").unwrap();
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let admin_key = std::fs::read_to_string(data_dir.join("admin.key")).unwrap().trim().to_owned();
    let admin = Client::new(&base, Some(admin_key.clone())).unwrap();

    let created = admin
        .create_key(&CreateKeyRequest {
            name: "acme admin".into(),
            organization_id: Some("acme".into()),
            permissions: ALL.iter().map(|p| p.to_string()).collect(),
        })
        .await
        .unwrap();
    let acme = admin.with_key(created.key.clone());
    acme.send_events(&[json!({"action": "doc.created"})]).await.unwrap();
    let url = link(&acme, "acme", "ada@example.com", "owner", &[]).await;
    let token = url.rsplit('/').next().unwrap().to_owned();
    let session = Session::from_link(&base, &url).await;
    session.post("/v1/session/logout", None, &[("x-csrf-token", "a-wrong-csrf-token-value")]).await;
    session.get("/v1/events").await;
    let password = "a very secret operator password";
    let body = json!({"email": "ops@example.com", "password": password}).to_string();
    admin
        .raw(Method::POST, "/v1/operators", Some(body.into_bytes()), &[("content-type", "application/json")])
        .await
        .unwrap();
    let wrong_password = "a wrong but also secret password";
    login(&base, "ops@example.com", wrong_password, "").await;
    let ok = login(&base, "ops@example.com", password, "").await;
    let operator_cookie = cookie_value(&set_cookie(&ok).unwrap());
    let unknown_key = format!("tk_{}", "Z".repeat(43));
    Client::new(&base, Some(unknown_key.clone())).unwrap().list_events(&[]).await.unwrap_err();
    session.post("/v1/session/logout", None, &[("x-csrf-token", &session.csrf)]).await;

    child.kill().unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("portal link issued") && log.contains("session started"), "the log was captured: {log}");
    let secrets = [
        ("the bootstrap key", admin_key.as_str()),
        ("a created key", created.key.as_str()),
        ("an unknown key", unknown_key.as_str()),
        ("a portal link token", token.as_str()),
        ("a session cookie", session.cookie.as_str()),
        ("a CSRF token", session.csrf.as_str()),
        ("an operator's cookie", operator_cookie.as_str()),
        ("a password", password),
        ("a wrong password", wrong_password),
    ];
    for (what, secret) in secrets {
        // The whole secret, and any long part of it (a key's short display prefix is not secret).
        let body = secret.trim_start_matches("tk_").trim_start_matches("tkp_").trim_start_matches("tks_");
        for part in [secret, &body[..16.min(body.len())], &body[body.len().saturating_sub(16)..]] {
            assert!(!log.contains(part), "{what} appears in the server's log");
        }
    }
}

async fn call(client: &Client, method: Method, path: &str, body: Option<Value>) -> u16 {
    let body = body.map(|b| b.to_string().into_bytes());
    client.raw(method, path, body, &[("content-type", "application/json")]).await.unwrap().status
}

#[tokio::test]
async fn a_session_stops_when_its_membership_is_removed_or_its_organisation_deleted() {
    let app = spawn_app().await;
    assert_eq!(call(&app.admin, Method::POST, "/v1/orgs", Some(json!({"id": "acme"}))).await, 201);
    let member = json!({"email": "ada@example.com", "role": "admin", "status": "active"});
    assert_eq!(call(&app.admin, Method::POST, "/v1/orgs/acme/members", Some(member)).await, 201);
    let bound =
        Session::from_link(&app.base_url, &link(&app.admin, "acme", "Ada@example.com", "admin", &[]).await).await;
    let unbound =
        Session::from_link(&app.base_url, &link(&app.admin, "acme", "guest@example.com", "admin", &[]).await).await;
    assert_eq!((bound.get("/v1/events").await.0, unbound.get("/v1/events").await.0), (200, 200));

    // An owner or admin session administers its organisation (with the CSRF token).
    let (status, _) = bound
        .post("/v1/orgs/acme/projects", Some(&json!({"id": "web"}).to_string()), &[("x-csrf-token", &bound.csrf)])
        .await;
    assert_eq!(status, 201);

    assert_eq!(call(&app.admin, Method::DELETE, "/v1/orgs/acme/members/ada@example.com", None).await, 204);
    let (status, body) = bound.get("/v1/events").await;
    assert_eq!(status, 401, "the membership it started with is gone: {body}");
    assert_eq!(unbound.get("/v1/events").await.0, 200, "a portal user who was never a member goes on");

    assert_eq!(call(&app.admin, Method::DELETE, "/v1/orgs/acme", None).await, 200);
    assert_eq!(unbound.get("/v1/events").await.0, 401, "its organisation is gone");
    app.stop().await;
}
