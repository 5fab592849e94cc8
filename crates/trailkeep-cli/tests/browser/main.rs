//! The dashboard in a real browser: headless Chromium against the real server on loopback, signed in
//! the way a customer is — by opening a portal link.
//!
//! The tests are few and each walks a whole path a person takes. They wait by polling the page for a
//! condition (see [`chrome::until`]) and assert nothing about timing. Screenshots of the main views are
//! saved under `target/tmp/dashboard-screenshots/`.

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod chrome;

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::emulation::{SetDeviceMetricsOverrideParams, SetTimezoneOverrideParams};
use chrono::{FixedOffset, TimeZone, Utc};
use serde_json::{Value, json};
use trailkeep_client::{Client, Method};

use chrome::{Chrome, eval, screenshot, until};
use helpers::{TestApp, spawn_app};

/// One browser at a time: the machines that run these have two cores.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A portal link for `email` with `role` in `org`, minted with the platform key.
async fn portal_link(admin: &Client, org: &str, email: &str, role: &str, projects: &[&str]) -> String {
    let mut body = json!({
        "organization_id": org,
        "user": {"email": email, "name": "Test User"},
        "role": role,
        "intent": "audit_logs",
    });
    if !projects.is_empty() {
        body["projects"] = json!(projects);
    }
    let r = admin
        .raw(
            Method::POST,
            "/v1/portal-links",
            Some(body.to_string().into_bytes()),
            &[("content-type", "application/json")],
        )
        .await
        .expect("mint a portal link");
    assert_eq!(r.status, 201, "{:?}", r.json());
    r.json().unwrap()["link"].as_str().expect("a link").to_owned()
}

async fn send(app: &TestApp, events: &[Value]) {
    for chunk in events.chunks(500) {
        app.admin.send_events(chunk).await.expect("ingest");
    }
}

/// Milliseconds since the epoch, `seconds_ago` before now, on a whole second plus 123 ms.
fn ago(seconds_ago: i64) -> i64 {
    (Utc::now().timestamp() - seconds_ago) * 1000 + 123
}

fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Opens `link` in a new tab and waits for the dashboard's script to be ready.
async fn sign_in(chrome: &Chrome, link: &str) -> Page {
    let page = chrome.tab().await;
    page.goto(link).await.expect("open the portal link");
    until(
        &page,
        "the dashboard to load",
        "document.documentElement.dataset.ready === 'true' || document.querySelector('body.notice h1')",
    )
    .await;
    page
}

async fn row_count(page: &Page) -> usize {
    eval(page, "document.querySelectorAll('#rows > tr.row').length").await
}

/// The session cookie the browser holds, for requests made outside it.
async fn session_cookie(page: &Page) -> String {
    let cookies = page.get_cookies().await.expect("the tab's cookies");
    let c = cookies.iter().find(|c| c.name == "trailkeep_session").expect("a session cookie");
    format!("trailkeep_session={}", c.value)
}

async fn get_with(base: &str, path: &str, cookie: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("a request")
}

/// Types `text` into the field matched by `selector`, one key at a time as a person would.
async fn type_into(page: &Page, selector: &str, text: &str) {
    let field = page.find_element(selector).await.unwrap_or_else(|e| panic!("{selector}: {e}"));
    field.click().await.expect("focus the field");
    field.type_str(text).await.expect("type");
}

async fn click(page: &Page, selector: &str) {
    page.find_element(selector).await.unwrap_or_else(|e| panic!("{selector}: {e}")).click().await.expect("click");
}

async fn clipboard(page: &Page) -> String {
    eval(page, "navigator.clipboard.readText()").await
}

#[tokio::test]
async fn an_admin_signs_in_by_link_filters_as_they_type_expands_copies_and_pages_through_the_timeline() {
    let _one = BROWSER.lock().await;
    let app = spawn_app().await;
    let mut events = Vec::new();
    for i in 0..30 {
        events.push(json!({
            "organization_id": "acme", "action": "api_key.created", "occurred_at": iso(ago(600 + i)),
            "actor": {"type": "user", "id": "u_alice", "email": "alice@example.com", "name": "Alice"},
            "targets": [{"type": "api_key", "id": format!("key_0195f3a1c0ffee{i:04}deadbeefcafe")}],
            "context": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (Test)"},
            "description": format!("Alice created API key {i}"),
        }));
    }
    for i in 0..25 {
        events.push(json!({
            "organization_id": "acme", "action": "team.member.added", "occurred_at": iso(ago(700 + i)),
            "actor": {"type": "user", "id": "u_bob", "name": "Bob"},
            "targets": [{"type": "user", "id": format!("u_{i}")}], "project_id": "web",
        }));
    }
    events.push(json!({
        "organization_id": "acme", "action": "organisation.user.role.assigned", "occurred_at": iso(ago(500)),
        "actor": {"type": "user", "id": "u_alice", "email": "alice@example.com"},
        "targets": [{"type": "user", "id": "u_carol"}],
        "changes": [{"field": "role", "before": "member", "after": "admin"}],
        "metadata": {"plan": "pro", "reason": "promotion"},
    }));
    let billing_at = ago(400);
    events.push(json!({"organization_id": "acme", "action": "billing.plan.changed", "occurred_at": iso(billing_at)}));
    for (i, (model, cost, tokens)) in [
        ("gpt-4o", 0.5, 1000),
        ("gpt-4o", 0.25, 500),
        ("gpt-4o", 0.25, 250),
        ("claude-3", 1.0, 2000),
        ("claude-3", 2.0, 4000),
    ]
    .into_iter()
    .enumerate()
    {
        events.push(json!({
            "organization_id": "acme", "action": "ai.request", "occurred_at": iso(ago(300 + i as i64)),
            "ai": {"provider": "test", "model": model, "cost_usd": cost, "usage": {"total_tokens": tokens},
                   "latency_ms": 800, "status_code": 200, "api_key_id": "ak_1", "prompt": "Hello", "response": "Hi"},
        }));
    }
    // Another organisation's events are never shown.
    events.push(json!({"organization_id": "globex", "action": "api_key.created", "occurred_at": iso(ago(10))}));
    send(&app, &events).await;
    // A plan with exports, so that the export buttons lead somewhere.
    let plan = json!({"plan": "enterprise"}).to_string().into_bytes();
    let r = app.admin.raw(Method::PATCH, "/v1/orgs/acme", Some(plan), &[("content-type", "application/json")]).await;
    assert_eq!(r.unwrap().status, 200);

    let chrome = Chrome::launch().await;
    chrome.allow_clipboard(&app.base_url).await;
    let link = portal_link(&app.admin, "acme", "ada@acme.example", "admin", &[]).await;
    let page = chrome.tab().await;
    page.execute(SetTimezoneOverrideParams::new("Asia/Tokyo")).await.expect("a time zone");
    page.goto(link).await.expect("open the portal link");
    until(&page, "the first page of the timeline", "document.querySelectorAll('#rows > tr.row').length === 50").await;
    assert_eq!(eval::<String>(&page, "location.pathname").await, "/", "a redeemed link lands on the timeline");

    // Local time: the row shows Tokyo's clock; "N/A" for an event without an actor.
    let tokyo = FixedOffset::east_opt(9 * 3600).unwrap().timestamp_millis_opt(billing_at).unwrap();
    let billing_row = "[...document.querySelectorAll('#rows > tr.row')].find(r => r.querySelector('.c-action').textContent.includes('billing.plan.changed'))";
    let shown: Vec<String> = eval(
        &page,
        &format!("(r => [r.querySelector('time').textContent, r.querySelector('.c-actor').textContent.trim()])({billing_row})"),
    )
    .await;
    assert_eq!(shown, [tokyo.format("%Y-%m-%d %H:%M:%S").to_string(), "N/A".to_owned()]);
    screenshot(&page, "timeline").await;

    // Load more: the next page follows the first on the same screen, and then there is no more.
    click(&page, "#more").await;
    until(
        &page,
        "the second page",
        "document.querySelectorAll('#rows > tr.row').length > 50 && document.querySelector('#more').hidden",
    )
    .await;
    let total = row_count(&page).await;
    assert_eq!(total, 65, "62 seeded for acme, the plan change, the link's portal_link.created and session.started");

    // Filters as you type: the action pattern applies while it is typed, and lives in the URL.
    type_into(&page, "#f-action", "api_key.*").await;
    until(
        &page,
        "the api_key.* filter to apply",
        "(() => { const a = [...document.querySelectorAll('#rows .c-action')].map(c => c.textContent); \
           return a.length === 30 && a.every(t => t.startsWith('api_key.')); })()",
    )
    .await;
    let url_action: String = eval(&page, "new URLSearchParams(location.search).get('action')").await;
    assert_eq!(url_action, "api_key.*");
    let export: Vec<Option<String>> = eval(
        &page,
        "(u => [u.pathname, u.searchParams.get('format'), u.searchParams.get('action')])(new URL(document.querySelector('#export-csv').href))",
    )
    .await;
    assert_eq!(
        export,
        [Some("/v1/export".into()), Some("csv".into()), Some("api_key.*".into())],
        "exports carry the filters"
    );
    // ... and so do the files: exactly the 30 events in view, as JSON and as CSV.
    let downloads = tempfile::tempdir().expect("a downloads directory");
    chrome.allow_downloads(downloads.path()).await;
    click(&page, "#export-json").await;
    let json_file = chrome::downloaded(downloads.path(), "json").await;
    let exported: Vec<Value> = serde_json::from_slice(&std::fs::read(&json_file).unwrap()).expect("a JSON array");
    assert_eq!(exported.len(), 30);
    assert!(exported.iter().all(|e| e["action"] == "api_key.created" && e["organization_id"] == "acme"));
    click(&page, "#export-csv").await;
    let csv = std::fs::read_to_string(chrome::downloaded(downloads.path(), "csv").await).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,seq,occurred_at,"), "{}", lines[0]);
    assert_eq!(lines.len(), 31, "a header and the 30 rows: {csv}");
    assert!(lines[1..].iter().all(|l| l.contains(",api_key.created,api_key,")), "{csv}");

    // The URL is the view: reloading it shows the same filter and rows.
    page.reload().await.expect("reload");
    until(&page, "the reloaded, filtered timeline", "document.documentElement.dataset.ready === 'true' && document.querySelectorAll('#rows > tr.row').length === 30").await;
    assert_eq!(eval::<String>(&page, "document.querySelector('#f-action').value").await, "api_key.*");

    // A row expands in place with the full id, the actor's address and user agent, the full local time,
    // and an integrity badge checked against the signed checkpoint.
    let first_id: String = eval(&page, "document.querySelector('#rows > tr.row').dataset.id").await;
    click(&page, "#rows > tr.row .c-action bdi").await;
    until(
        &page,
        "the integrity badge to say verified",
        "document.querySelector('.detail [data-integrity]').dataset.status === 'verified'",
    )
    .await;
    let detail: String = eval(&page, "document.querySelector('.detail').textContent").await;
    assert!(detail.contains("key_0195f3a1c0ffee0000deadbeefcafe") && detail.contains("203.0.113.7"), "{detail}");
    assert!(detail.contains("Mozilla/5.0 (Test)") && detail.contains("Alice created API key 0"), "{detail}");
    let full_time: String = eval(&page, "document.querySelector('.detail time.full').textContent").await;
    assert!(full_time.ends_with(".123 UTC+09:00"), "milliseconds and the zone: {full_time}");
    let note: String = eval(&page, "document.querySelector('.detail [data-integrity-note]').textContent").await;
    assert!(note.contains("re-checked in this browser"), "{note}");
    screenshot(&page, "expanded-row").await;

    // Copy the row as JSON, and a cell, whose copy is the full id though the cell shows it cut.
    click(&page, ".detail .copy-row").await;
    let copied = until(
        &page,
        "the row on the clipboard",
        &format!("navigator.clipboard.readText().then(t => t.includes('{first_id}') ? t : null)"),
    )
    .await;
    let row: Value = serde_json::from_str(copied.as_str().unwrap()).expect("the row is JSON");
    assert_eq!((row["id"].as_str(), row["action"].as_str()), (Some(first_id.as_str()), Some("api_key.created")));
    assert!(row.get("integrity").is_none(), "the row, not the proof");
    let shown_id: String = eval(&page, "document.querySelector('#rows > tr.row .c-rid bdi').textContent").await;
    assert!(shown_id.contains('…'), "long ids are shortened: {shown_id}");
    click(&page, "#rows > tr.row:nth-child(3) .c-rid button.copy").await;
    until(
        &page,
        "the full resource id on the clipboard",
        "navigator.clipboard.readText().then(t => /^key_0195f3a1c0ffee\\d{4}deadbeefcafe$/.test(t))",
    )
    .await;
    assert!(clipboard(&page).await.len() > shown_id.chars().count());

    // Keyboard: `/` goes to the search box, Escape leaves it, j moves down, Enter expands.
    page.find_element("h1").await.unwrap().click().await.unwrap();
    page.find_element("body").await.unwrap().press_key("/").await.unwrap();
    until(&page, "the search box to take focus", "document.activeElement.id === 'f-text'").await;
    page.find_element("#f-text").await.unwrap().press_key("Escape").await.unwrap();
    // The row expanded above is the current one; j moves to the next.
    page.find_element("body").await.unwrap().press_key("j").await.unwrap();
    until(
        &page,
        "j to move to the second row",
        "document.querySelector('#rows > tr.row.current') === document.querySelectorAll('#rows > tr.row')[1]",
    )
    .await;
    page.find_element("body").await.unwrap().press_key("Enter").await.unwrap();
    until(
        &page,
        "Enter to expand it",
        "document.querySelectorAll('#rows > tr.row')[1].getAttribute('aria-expanded') === 'true'",
    )
    .await;

    // Before and after, as a diff.
    page.goto(format!("{}/?action=organisation.user.role.assigned", app.base_url)).await.unwrap();
    until(&page, "one role change", "document.querySelectorAll('#rows > tr.row').length === 1").await;
    click(&page, "#rows > tr.row .c-action bdi").await;
    let diff: Vec<String> = until(&page, "the diff", "(d => d && [d.querySelector('.del').textContent, d.querySelector('.ins').textContent])(document.querySelector('.detail pre.diff'))")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().trim().to_owned())
        .collect();
    assert_eq!(diff, ["- \"member\"", "+ \"admin\""]);
    let metadata: String = eval(&page, "document.querySelector('.detail details.json pre').textContent").await;
    assert!(metadata.contains("\"plan\": \"pro\""), "pretty metadata JSON: {metadata}");

    // The AI requests view, with totals for the filter.
    page.goto(format!("{}/ai", app.base_url)).await.unwrap();
    until(&page, "five AI requests and their totals", "document.querySelectorAll('#rows > tr.row').length === 5 && document.querySelector('[data-total=requests]').textContent === '5'").await;
    assert_eq!(eval::<String>(&page, "document.querySelector('[data-total=tokens]').textContent").await, "7,750");
    assert_eq!(eval::<String>(&page, "document.querySelector('[data-total=cost_usd]').textContent").await, "$4");
    type_into(&page, "#f-model", "gpt-4o").await;
    until(&page, "the model filter and its totals", "document.querySelectorAll('#rows > tr.row').length === 3 && document.querySelector('[data-total=cost_usd]').textContent === '$1'").await;
    screenshot(&page, "ai-requests").await;

    // Themes: the toggle switches light and dark; phone width keeps the page within the screen.
    page.goto(format!("{}/", app.base_url)).await.unwrap();
    until(&page, "the timeline", "document.documentElement.dataset.ready === 'true'").await;
    click(&page, "#theme-toggle").await;
    click(&page, "#theme-toggle").await;
    assert_eq!(eval::<String>(&page, "document.documentElement.dataset.theme").await, "dark");
    screenshot(&page, "timeline-dark").await;
    page.execute(SetDeviceMetricsOverrideParams::new(390, 844, 2.0, true)).await.unwrap();
    until(&page, "the page to fit a phone's width", "document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await;
    screenshot(&page, "timeline-phone").await;

    // Nothing tried to run inline: no violation of the policy, which itself allows no inline code.
    let csp_violations: Vec<String> = eval(&page, "window.__tk.csp").await;
    assert!(csp_violations.is_empty(), "{csp_violations:?}");
    let cookie = session_cookie(&page).await;
    let response = get_with(&app.base_url, "/", &cookie).await;
    let csp = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("default-src 'self'") && !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );

    page.close().await.ok();
    chrome.close().await;
    app.stop().await;
}

#[tokio::test]
async fn hostile_event_content_stays_inert_text_in_the_timeline_and_in_expanded_rows() {
    let _one = BROWSER.lock().await;
    let app = spawn_app().await;
    let long_prompt = format!("{}END", "<script>alert('prompt')</script>".repeat(100_000 / 32));
    let hostile = json!({
        "organization_id": "evil", "action": "x.created", "occurred_at": iso(ago(60)),
        "description": "<script>alert('desc')</script><img src=x onerror=alert('img')>",
        "actor": {"type": "user", "id": "javascript:alert('actor')", "name": "<svg onload=alert('svg')>"},
        "targets": [{"type": "<b>bold</b>", "id": "javascript:alert(document.cookie)", "name": "\u{202E}txt.exe"}],
        "context": {"user_agent": "<script>alert('ua')</script>", "location": "\u{2066}Lisbon\u{2069}"},
        "changes": [{"field": "<i>field</i>", "before": "<img src=x onerror=alert('before')>", "after": {"a": "</pre><script>alert('after')</script>"}}],
        "metadata": {"html": "<iframe src=\"javascript:alert('iframe')\"></iframe>", "bidi": "abc\u{202E}fed", "url": "javascript:alert('url')", "style": "<style>body{display:none}</style>"},
        "ai": {"model": "<script>alert('model')</script>", "prompt": long_prompt, "response": "<img src=x onerror=alert('response')>", "error": "\u{202E}rorre"},
    });
    let plain =
        json!({"organization_id": "evil", "action": "x.updated", "occurred_at": iso(ago(120)), "description": "plain"});
    send(&app, &[hostile, plain]).await;

    let chrome = Chrome::launch().await;
    let link = portal_link(&app.admin, "evil", "owner@evil.example", "owner", &[]).await;
    let page = sign_in(&chrome, &link).await;
    until(&page, "the events", "document.querySelectorAll('#rows > tr.row').length === 4").await;
    let hostile_row = "[...document.querySelectorAll('#rows > tr.row')].find(r => r.textContent.includes('x.created'))";
    eval::<bool>(&page, &format!("({hostile_row}).querySelector('.c-action bdi').click(), true")).await;
    until(&page, "the hostile row's details and their integrity", "document.querySelector('.detail [data-integrity]') && document.querySelector('.detail [data-integrity]').dataset.status === 'verified'").await;
    // The same event on the AI view, expanded too.
    screenshot(&page, "hostile-row").await;

    let text: String = eval(&page, "document.body.textContent").await;
    for literal in [
        "<script>alert('desc')</script>",
        "<svg onload=alert('svg')>",
        "javascript:alert(document.cookie)",
        "<b>bold</b>",
        "</pre><script>alert('after')</script>",
    ] {
        assert!(text.contains(literal), "shown as text: {literal}");
    }
    assert!(text.contains("\u{FFFD}txt.exe") && !text.contains('\u{202E}'), "bidi overrides are neutralised");
    assert!(text.contains("END"), "the 100 KB prompt is shown whole");
    assert_eq!(
        eval::<usize>(&page, "document.querySelectorAll('script').length").await,
        1,
        "only the dashboard's own script"
    );
    assert_eq!(
        eval::<usize>(
            &page,
            "document.querySelectorAll('a[href^=\"javascript:\" i], [onerror], [onload], [style]').length"
        )
        .await,
        0
    );

    // Typing hostile text into the filters is as harmless.
    type_into(&page, "#f-q", "<img src=x onerror=alert('q')> acton:x").await;
    until(&page, "the query error", "!document.querySelector('#filter-error').hidden").await;
    let error: String = eval(&page, "document.querySelector('#filter-error').textContent").await;
    assert!(error.contains("unknown key") && error.contains("acton"), "{error}");

    page.goto(format!("{}/ai", app.base_url)).await.unwrap();
    until(&page, "the AI view", "document.querySelectorAll('#rows > tr.row').length === 1").await;
    click(&page, "#rows > tr.row td:nth-child(3) bdi").await;
    until(&page, "the AI details", "document.querySelector('.detail pre.long') && document.querySelector('.detail pre.long').textContent.length > 100000").await;

    let dialogs: Vec<String> = eval(&page, "window.__tk.dialogs").await;
    let elements: Vec<String> = eval(&page, "window.__tk.elements").await;
    let csp: Vec<String> = eval(&page, "window.__tk.csp").await;
    assert!(dialogs.is_empty(), "no dialog opened: {dialogs:?}");
    assert!(elements.is_empty(), "no script, frame or image was created from event data: {elements:?}");
    assert!(csp.is_empty(), "nothing even tried to run inline: {csp:?}");
    assert_eq!(eval::<usize>(&page, "document.querySelectorAll('script').length").await, 1);

    page.close().await.ok();
    chrome.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_project_admin_sees_only_their_project_and_a_member_is_refused() {
    let _one = BROWSER.lock().await;
    let app = spawn_app().await;
    let mut events = Vec::new();
    for (i, project) in ["web", "web", "web", "api", "api"].into_iter().enumerate() {
        events.push(json!({"organization_id": "acme", "project_id": project, "action": "deploy.started", "occurred_at": iso(ago(100 + i as i64)), "description": format!("deploy {project} {i}")}));
    }
    events.push(json!({"organization_id": "acme", "action": "billing.plan.changed", "occurred_at": iso(ago(50))}));
    send(&app, &events).await;
    let api_event =
        app.admin.list_events(&[("organization_id", "acme"), ("project_id", "api")]).await.unwrap().data[0].id;

    let chrome = Chrome::launch().await;
    let link = portal_link(&app.admin, "acme", "pat@acme.example", "project_admin", &["web"]).await;
    let page = sign_in(&chrome, &link).await;
    until(&page, "the project's events", "document.querySelectorAll('#rows > tr.row').length === 3").await;
    let projects: Vec<String> =
        eval(&page, "[...document.querySelectorAll('#rows .c-proj bdi')].map(c => c.textContent)").await;
    assert_eq!(projects, ["web", "web", "web"]);
    // Neither asking for the other project nor one of its events shows anything of it.
    let asked: String = eval(&page, "fetch('/ui/rows/events?project_id=api').then(r => r.text())").await;
    assert!(!asked.contains("tr class=\"row") && !asked.contains("deploy api"), "{asked}");
    let status: u16 = eval(&page, &format!("fetch('/ui/events/{api_event}').then(r => r.status)")).await;
    assert_eq!(status, 404);
    page.goto(format!("{}/projects/api", app.base_url)).await.unwrap();
    until(&page, "the other project refused", "document.querySelector('h1').textContent === 'No such project'").await;
    page.goto(format!("{}/projects/web", app.base_url)).await.unwrap();
    until(&page, "their project's page", "document.querySelectorAll('#rows > tr.row').length === 3").await;
    screenshot(&page, "project-admin").await;
    // Signing out ends the session at once: the page points to sign-in and the cookie opens nothing.
    let cookie = session_cookie(&page).await;
    click(&page, "#sign-out").await;
    until(&page, "the signed-out page", "document.querySelector('h1').textContent === 'Sign in to see the audit log'")
        .await;
    assert_eq!(get_with(&app.base_url, "/", &cookie).await.status(), 401);
    page.close().await.ok();

    let member = portal_link(&app.admin, "acme", "mo@acme.example", "member", &[]).await;
    let page = sign_in(&chrome, &member).await;
    let title: String = eval(&page, "document.querySelector('h1').textContent").await;
    assert_eq!(title, "You cannot read this audit log");
    assert_eq!(eval::<usize>(&page, "document.querySelectorAll('tr.row').length").await, 0);
    let cookie = session_cookie(&page).await;
    assert_eq!(get_with(&app.base_url, "/", &cookie).await.status(), 403);
    assert_eq!(get_with(&app.base_url, "/ui/rows/events", &cookie).await.status(), 403);
    page.close().await.ok();

    // Without a session, the dashboard points to sign-in.
    chrome.browser.clear_cookies().await.expect("forget the sessions");
    let page = chrome.tab().await;
    page.goto(format!("{}/", app.base_url)).await.unwrap();
    until(&page, "the sign-in notice", "document.querySelector('h1').textContent === 'Sign in to see the audit log'")
        .await;
    page.close().await.ok();
    chrome.close().await;
    app.stop().await;
}
