//! The dashboard over plain HTTP: who gets a page and who a refusal, the headers every page carries,
//! escaping of hostile content, filters read from the URL exactly as the API reads them, the embedded
//! assets and the AI totals. What needs a browser (scripts running, typing, clicking) is tested in
//! Chromium by the `browser` test binary.

use serde_json::{Value, json};
use trailkeep_client::{Method, encode};

use crate::helpers::{TestApp, spawn_app};
use crate::sessions::{Session, browser, link};

/// GET `path` with the session's cookie: status, headers and body.
async fn page(session: &Session, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = browser()
        .get(format!("{}{path}", session.base))
        .header("cookie", format!("trailkeep_session={}", session.cookie))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

fn rows(body: &str) -> usize {
    body.matches("<tr class=\"row").count()
}

async fn set_plan(app: &TestApp, org: &str, plan: &str) {
    let body = json!({ "plan": plan }).to_string().into_bytes();
    let path = format!("/v1/orgs/{org}");
    let r = app.admin.raw(Method::PATCH, &path, Some(body), &[("content-type", "application/json")]).await.unwrap();
    assert_eq!(r.status, 200);
}

async fn session(app: &TestApp, org: &str, role: &str, projects: &[&str]) -> Session {
    Session::from_link(&app.base_url, &link(&app.admin, org, &format!("{role}@{org}.example"), role, projects).await)
        .await
}

fn assert_strict_page_headers(headers: &reqwest::header::HeaderMap) {
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
}

#[tokio::test]
async fn without_a_session_every_dashboard_page_points_to_sign_in_and_api_keys_get_no_page() {
    let app = spawn_app().await;
    for path in ["/", "/ai", "/projects/web", "/ui/rows/events", "/ui/events/0195f3a1-7c2e-7000-8000-000000000001"] {
        let r = browser().get(format!("{}{path}", app.base_url)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert_strict_page_headers(r.headers());
        let body = r.text().await.unwrap();
        assert!(body.contains("sign in") || body.contains("Sign in"), "{path}: {body}");
    }
    let r = browser().get(format!("{}/", app.base_url)).header("cookie", "trailkeep_session=tks_forged").send().await;
    assert!(r.unwrap().text().await.unwrap().contains("/login"), "an ended session is pointed to sign-in");
    let key = std::fs::read_to_string(app.data_dir.join("admin.key")).unwrap();
    let r = browser().get(format!("{}/", app.base_url)).bearer_auth(key.trim()).send().await.unwrap();
    assert_eq!(r.status(), 401, "the dashboard is for sessions; keys read /v1/events");
    app.stop().await;
}

#[tokio::test]
async fn members_and_viewers_are_refused_and_project_admins_see_only_their_projects() {
    let app = spawn_app().await;
    let mut events = Vec::new();
    for project in ["web", "web", "api"] {
        events.push(json!({"organization_id": "acme", "project_id": project, "action": "deploy.started", "description": format!("deploy of {project}")}));
    }
    app.admin.send_events(&events).await.unwrap();
    for role in ["member", "viewer"] {
        let s = session(&app, "acme", role, &[]).await;
        for path in ["/", "/ai", "/projects/web", "/ui/rows/events", "/ui/rows/ai", "/ui/ai-totals"] {
            let (status, _, body) = page(&s, path).await;
            assert_eq!(status, 403, "{role} {path}");
            assert!(!body.contains("deploy of"), "{role} {path}: {body}");
        }
    }
    let pa = session(&app, "acme", "project_admin", &["web"]).await;
    let (status, headers, body) = page(&pa, "/").await;
    assert_eq!(status, 200, "{body}");
    assert_strict_page_headers(&headers);
    assert_eq!(rows(&body), 2);
    assert!(!body.contains("deploy of api"));
    assert_eq!(page(&pa, "/projects/api").await.0, 404, "another project is not theirs to open");
    let (status, _, body) = page(&pa, "/projects/web").await;
    assert_eq!((status, rows(&body)), (200, 2));
    let (_, _, body) = page(&pa, "/ui/rows/events?project_id=api").await;
    assert_eq!(rows(&body), 0, "naming another project in a filter shows nothing of it");
    let owner = session(&app, "acme", "owner", &[]).await;
    let (_, _, body) = page(&owner, "/projects/api").await;
    assert_eq!(rows(&body), 1);
    app.stop().await;
}

#[tokio::test]
async fn hostile_event_content_is_escaped_and_made_inert_in_pages_and_fragments() {
    let app = spawn_app().await;
    let hostile = json!({
        "organization_id": "evil", "action": "x.created",
        "description": "<script>alert(1)</script>",
        "actor": {"type": "user", "id": "\"><img src=x onerror=alert(2)>", "name": "a\u{202E}b"},
        "targets": [{"type": "<svg onload=alert(3)>", "id": "javascript:alert(4)"}],
        "metadata": {"x": "</pre><script>alert(5)</script>", "long": "y".repeat(60_000)},
        "changes": [{"field": "f", "before": "<b>", "after": "</b>"}],
    });
    let sent = app.admin.send_events(&[hostile]).await.unwrap();
    let id = sent.acks[0].id;
    let owner = session(&app, "evil", "owner", &[]).await;
    for path in ["/".to_owned(), "/ui/rows/events".to_owned(), format!("/ui/events/{id}")] {
        let (status, _, body) = page(&owner, &path).await;
        assert_eq!(status, 200, "{path}");
        for raw in ["<script>alert", "<img", "<svg", "</pre><script>", "<b>"] {
            assert!(!body.contains(raw), "{path} carries {raw:?} unescaped");
        }
        // Copy buttons carry values exactly as sent (escaped, in an attribute, where they do not render);
        // what is shown has its bidi overrides replaced.
        let shown: String = body.split("data-copy=\"").map(|s| s.split_once('"').map_or(s, |(_, rest)| rest)).collect();
        assert!(!shown.contains('\u{202E}'), "{path} shows a bidi override");
        assert!(!body.contains(" style=") && !body.contains(" onclick="), "no inline style or handler: {path}");
        let inline_scripts = body.matches("<script").count() - body.matches("<script src=\"/assets/app.").count();
        assert_eq!(inline_scripts, 0, "{path}");
    }
    let (_, _, detail) = page(&owner, &format!("/ui/events/{id}")).await;
    assert!(
        detail.contains("&#60;/pre&#62;&#60;script&#62;alert(5)")
            || detail.contains("&lt;/pre&gt;&lt;script&gt;alert(5)"),
        "{detail}"
    );
    assert!(detail.contains("a\u{FFFD}b"), "bidi overrides become visible");
    assert!(detail.contains(&"y".repeat(60_000)), "long values are shown whole when expanded");
    let (_, _, list) = page(&owner, "/").await;
    assert!(!list.contains(&"y".repeat(60_000)), "the table does not carry the metadata");
    app.stop().await;
}

#[tokio::test]
async fn filters_in_the_url_mean_what_they_mean_to_the_api_and_errors_show_on_the_page() {
    let app = spawn_app().await;
    let mut events = Vec::new();
    for action in [
        "api_key.created",
        "api_key.revoked",
        "organisation.user.added",
        "organisation.user.role.assigned",
        "team.member.added",
    ] {
        events.push(json!({"organization_id": "acme", "action": action, "actor": {"type": "user", "id": "u1", "email": "al@example.com"}}));
    }
    app.admin.send_events(&events).await.unwrap();
    let owner = session(&app, "acme", "owner", &[]).await;
    for (query, expected) in [
        ("action=api_key.created", 1),
        ("action=api_key.*", 2),
        ("action=organisation.*", 2),
        ("action=organisation.*.added", 1),
        ("category=team", 1),
        ("actor=al@example.com", 5),
        (&format!("q={}", encode("action:api_key.* -action:api_key.revoked")), 1),
        ("range=1h", 7),
        ("range=custom&from=now-1h", 7),
        ("range=all&action=", 7),
    ] {
        let (status, _, body) = page(&owner, &format!("/?{query}")).await;
        assert_eq!((status, rows(&body)), (200, expected), "{query}");
    }
    let api = app.admin.list_events(&[("organization_id", "acme")]).await.unwrap();
    assert_eq!(api.data.len(), 7, "five sent, the link and the session recorded");
    let (status, _, body) = page(&owner, &format!("/?q={}", encode("acton:x"))).await;
    assert_eq!(status, 400);
    assert!(body.contains("unknown key") && body.contains("did you mean"), "{body}");
    assert!(body.contains("value=\"acton:x\""), "the form keeps what was typed: {body}");
    let (status, _, body) = page(&owner, "/ui/rows/events?action=Api").await;
    assert_eq!(status, 400);
    assert!(body.contains("fragment-error") && body.contains("action"), "{body}");
    assert_eq!(page(&owner, "/?acton=x").await.0, 400, "an unknown parameter is refused, not ignored");
    // The free plan has no exports: the buttons say so instead of leading to a refusal.
    let (_, _, body) = page(&owner, "/").await;
    assert!(body.contains("aria-disabled=\"true\" title=\"The free plan does not include CSV exports.\""), "{body}");
    // On a plan with exports, the links carry the filters.
    set_plan(&app, "acme", "enterprise").await;
    let (_, _, body) = page(&owner, "/?action=api_key.*&range=24h").await;
    let href = |format: &str| format!("href=\"/v1/export?format={format}&#38;action=api_key.%2A&#38;range=24h\"");
    assert!(body.contains(&href("csv")) && body.contains(&href("json")), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn pages_follow_cursors_newest_first_without_repeating_a_row() {
    let app = spawn_app().await;
    let base = chrono::Utc::now().timestamp_millis() - 1_000_000;
    let events: Vec<Value> = (0..120)
        .map(|i| {
            let at = chrono::DateTime::from_timestamp_millis(base + i * 1000).unwrap();
            json!({"organization_id": "acme", "action": "doc.updated", "occurred_at": at.to_rfc3339(), "description": format!("n{i:03}")})
        })
        .collect();
    app.admin.send_events(&events).await.unwrap();
    let owner = session(&app, "acme", "owner", &[]).await;
    let mut seen = Vec::new();
    let mut path = "/?action=doc.updated".to_owned();
    loop {
        let (status, _, body) = page(&owner, &path).await;
        assert_eq!(status, 200);
        let ids: Vec<String> =
            body.split("data-id=\"").skip(1).map(|s| s.split('"').next().unwrap().to_owned()).collect();
        seen.extend(ids);
        let next = body
            .split("id=\"more\" href=\"")
            .nth(1)
            .map(|s| s.split('"').next().unwrap().replace("&#38;", "&").replace("&amp;", "&"));
        match next {
            Some(href) if !href.is_empty() => path = href,
            _ => break,
        }
    }
    assert_eq!(seen.len(), 120);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 120, "no row twice");
    let api: Vec<String> = app
        .admin
        .list_all_events(&[("organization_id", "acme"), ("action", "doc.updated")])
        .await
        .unwrap()
        .iter()
        .map(|e| e.id.to_string())
        .collect();
    assert_eq!(seen, api, "the same order as the API: newest first");
    app.stop().await;
}

#[tokio::test]
async fn assets_are_embedded_under_content_hashed_names_cached_for_a_year() {
    let app = spawn_app().await;
    let owner = session(&app, "acme", "owner", &[]).await;
    let (_, _, body) = page(&owner, "/").await;
    for ext in ["js", "css"] {
        let url = body
            .split('"')
            .find(|s| s.starts_with("/assets/app.") && s.ends_with(&format!(".{ext}")))
            .unwrap_or_else(|| panic!("the {ext} link: {body}"))
            .to_owned();
        let r = browser().get(format!("{}{url}", app.base_url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        let expected = if ext == "js" { "text/javascript" } else { "text/css" };
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(expected));
        let plain = browser().get(format!("{}/assets/app.{ext}", app.base_url)).send().await.unwrap();
        assert_eq!(plain.headers()["cache-control"], "no-cache");
    }
    let missing = browser().get(format!("{}/assets/app.0000.js", app.base_url)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn ai_totals_add_up_every_matching_request_not_only_the_page_in_view() {
    let app = spawn_app().await;
    let events: Vec<Value> = (0..80)
        .map(|i| {
            json!({"organization_id": "acme", "action": "ai.request", "ai": {
                "model": if i % 4 == 0 { "big" } else { "small" }, "cost_usd": 0.25, "usage": {"total_tokens": 100},
                "status_code": if i % 10 == 0 { 500 } else { 200 }, "api_key_id": "ak_1"}})
        })
        .chain([json!({"organization_id": "acme", "action": "team.member.added"})])
        .collect();
    app.admin.send_events(&events).await.unwrap();
    let owner = session(&app, "acme", "owner", &[]).await;
    let (status, _, body) = page(&owner, "/ai").await;
    assert_eq!((status, rows(&body)), (200, 50), "a page of AI requests only");
    for (query, requests, tokens, cost) in [
        ("", 80, 8000, "$20"),
        ("?model=big", 20, 2000, "$5"),
        ("?status=error", 8, 800, "$2"),
        ("?cost_min=0.3", 0, 0, "$0"),
    ] {
        let (status, totals) = owner.get(&format!("/ui/ai-totals{query}")).await;
        assert_eq!(status, 200, "{totals}");
        assert_eq!((totals["requests"].as_u64(), totals["tokens"].as_u64()), (Some(requests), Some(tokens)), "{query}");
        assert_eq!(totals["text"]["cost_usd"], cost, "{query}");
    }
    let (status, totals) = owner.get("/ui/ai-totals?q=cost:5..1").await;
    assert_eq!(status, 400, "{totals}");
    app.stop().await;
}

#[tokio::test]
async fn an_operator_chooses_an_organisation_and_reads_it() {
    let app = spawn_app().await;
    app.admin.send_events(&[json!({"organization_id": "acme", "action": "doc.created"})]).await.unwrap();
    let password = "correct horse battery staple";
    let body = json!({"email": "ops@example.com", "password": password}).to_string();
    let r =
        app.admin.raw(Method::POST, "/v1/operators", Some(body.into_bytes()), &[("content-type", "application/json")]);
    assert_eq!(r.await.unwrap().status, 201);
    let r = browser()
        .post(format!("{}/login", app.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("email=ops%40example.com&password={}", encode(password)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("trailkeep_session=")
        .to_owned();
    let operator = Session::from_cookie(&app.base_url, cookie).await;
    let (status, _, body) = page(&operator, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("Choose an organisation") && body.contains("/?organization_id=acme"), "{body}");
    let (status, _, body) = page(&operator, "/?organization_id=acme").await;
    assert_eq!((status, rows(&body)), (200, 1));
    assert!(body.contains("name=\"organization_id\" value=\"acme\""), "the form keeps the organisation");
    assert!(body.contains("data-org=\"acme\""), "and so do the script's requests");
    assert!(body.contains("href=\"/?organization_id=\">Switch organisation"), "{body}");
    let (status, _, body) = page(&operator, "/?organization_id=").await;
    assert_eq!(status, 200);
    assert!(body.contains("Choose an organisation"), "an empty organisation asks for the choice again");
    app.stop().await;
}
