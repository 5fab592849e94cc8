//! Organisations, projects and members through the admin API, and the events that record every change
//! in the organisation's own log.

use serde_json::{Value, json};
use trailkeep_client::{Client, Method};

use crate::helpers::{TestApp, event, spawn_app};

async fn call(client: &Client, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| serde_json::to_vec(&b).unwrap());
    let headers: &[(&str, &str)] = &[("content-type", "application/json"), ("user-agent", "orgs-test/1.0")];
    let r = client.raw(method, path, body, headers).await.unwrap();
    (r.status, r.json().unwrap_or(Value::Null))
}

async fn ok(client: &Client, method: Method, path: &str, body: Option<Value>) -> Value {
    let (status, body) = call(client, method.clone(), path, body).await;
    assert!((200..300).contains(&status), "{method} {path}: {status} {body}");
    body
}

/// The organisation's events with this action, oldest first.
async fn events(app: &TestApp, org: &str, action: &str) -> Vec<Value> {
    let page = app
        .admin
        .list_events(&[("organization_id", org), ("action", action), ("order", "asc"), ("limit", "100")])
        .await
        .unwrap();
    page.data.iter().map(|e| serde_json::to_value(e).unwrap()).collect()
}

fn change<'a>(event: &'a Value, field: &str) -> &'a Value {
    event["changes"].as_array().unwrap().iter().find(|c| c["field"] == field).unwrap_or(&Value::Null)
}

#[tokio::test]
async fn the_platform_creates_an_organisation_with_projects_and_members_and_each_change_is_recorded() {
    let app = spawn_app().await;
    let created =
        ok(&app.admin, Method::POST, "/v1/orgs", Some(json!({"id": "acme", "name": "Acme Corp", "plan": "pro"}))).await;
    assert_eq!(
        (created["id"].as_str(), created["name"].as_str(), created["plan"].as_str()),
        (Some("acme"), Some("Acme Corp"), Some("pro"))
    );
    ok(&app.admin, Method::POST, "/v1/orgs/acme/projects", Some(json!({"id": "billing", "name": "Billing"}))).await;
    ok(
        &app.admin,
        Method::POST,
        "/v1/orgs/acme/members",
        Some(json!({"email": "Ada@Acme.test", "role": "owner", "status": "active"})),
    )
    .await;
    let invited = ok(
        &app.admin,
        Method::POST,
        "/v1/orgs/acme/members",
        Some(json!({"email": "bo@acme.test", "name": "Bo", "role": "project_admin", "projects": ["billing"]})),
    )
    .await;
    assert_eq!((invited["status"].as_str(), invited["projects"].clone()), (Some("invited"), json!(["billing"])));

    let org = ok(&app.admin, Method::GET, "/v1/orgs/acme", None).await;
    assert_eq!(org["name"], "Acme Corp");
    let projects = ok(&app.admin, Method::GET, "/v1/orgs/acme/projects", None).await;
    assert_eq!(projects["data"][0]["id"], "billing");
    let members = ok(&app.admin, Method::GET, "/v1/orgs/acme/members", None).await;
    let emails: Vec<&str> = members["data"].as_array().unwrap().iter().map(|m| m["email"].as_str().unwrap()).collect();
    assert_eq!(emails, vec!["ada@acme.test", "bo@acme.test"], "emails are kept lowercase");

    // Each change is an event in acme's own log, the organisation's creation first.
    let first = app.admin.list_events(&[("organization_id", "acme"), ("order", "asc"), ("limit", "1")]).await.unwrap();
    assert_eq!(first.data[0].action.as_str(), "organization.created");
    assert_eq!(first.data[0].seq, 1);
    let invited = &events(&app, "acme", "member.invited").await[0];
    assert_eq!(invited["actor"]["type"], "api_key");
    assert_eq!(invited["context"]["ip"], "127.0.0.1");
    assert_eq!(invited["context"]["user_agent"], "orgs-test/1.0");
    assert_eq!(invited["targets"][0]["id"], "bo@acme.test");
    assert_eq!(change(invited, "role")["after"], "project_admin");
    assert_eq!(change(invited, "projects")["after"], json!(["billing"]));
    assert_eq!(events(&app, "acme", "member.added").await.len(), 1);
    let project = &events(&app, "acme", "project.created").await[0];
    assert_eq!(project["project_id"], "billing", "a project's changes belong to the project");
    app.stop().await;
}

#[tokio::test]
async fn updates_record_before_and_after_and_the_plan_is_the_platforms() {
    let app = spawn_app().await;
    ok(&app.admin, Method::POST, "/v1/orgs", Some(json!({"id": "acme"}))).await;
    let org_admin = app.org_client("acme", &["admin"]).await;

    let renamed = ok(&org_admin, Method::PATCH, "/v1/orgs/acme", Some(json!({"name": "Acme Ltd"}))).await;
    assert_eq!(renamed["name"], "Acme Ltd");
    let (status, body) = call(&org_admin, Method::PATCH, "/v1/orgs/acme", Some(json!({"plan": "enterprise"}))).await;
    assert_eq!((status, body["error"]["field"].as_str()), (403, Some("plan")), "{body}");
    ok(&app.admin, Method::PATCH, "/v1/orgs/acme", Some(json!({"plan": "enterprise"}))).await;

    let updated = &events(&app, "acme", "organization.updated").await[0];
    assert_eq!(
        (change(updated, "name")["before"].as_str(), change(updated, "name")["after"].as_str()),
        (Some("acme"), Some("Acme Ltd"))
    );
    let plan = &events(&app, "acme", "organization.plan_changed").await[0];
    assert_eq!(
        (change(plan, "plan")["before"].as_str(), change(plan, "plan")["after"].as_str()),
        (Some("free"), Some("enterprise"))
    );
    // A change to nothing records nothing.
    ok(&org_admin, Method::PATCH, "/v1/orgs/acme", Some(json!({"name": "Acme Ltd"}))).await;
    assert_eq!(events(&app, "acme", "organization.updated").await.len(), 1);

    // Members: role changes, project admins need projects, the last owner stays.
    ok(&org_admin, Method::POST, "/v1/orgs/acme/members", Some(json!({"email": "ada@acme.test", "role": "owner"})))
        .await;
    ok(&org_admin, Method::POST, "/v1/orgs/acme/members", Some(json!({"email": "cy@acme.test", "role": "viewer"})))
        .await;
    let (status, body) =
        call(&org_admin, Method::PATCH, "/v1/orgs/acme/members/cy@acme.test", Some(json!({"role": "project_admin"})))
            .await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("projects")), "{body}");
    let cy = ok(
        &org_admin,
        Method::PATCH,
        "/v1/orgs/acme/members/CY@acme.test",
        Some(json!({"role": "project_admin", "projects": ["web", "web"]})),
    )
    .await;
    assert_eq!(cy["projects"], json!(["web"]));
    let role = &events(&app, "acme", "member.role_changed").await[0];
    assert_eq!(
        (change(role, "role")["before"].as_str(), change(role, "role")["after"].as_str()),
        (Some("viewer"), Some("project_admin"))
    );
    for (method, body) in [(Method::PATCH, Some(json!({"role": "admin"}))), (Method::DELETE, None)] {
        let (status, answer) = call(&org_admin, method, "/v1/orgs/acme/members/ada@acme.test", body).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("last_owner")), "{answer}");
    }
    ok(&org_admin, Method::DELETE, "/v1/orgs/acme/members/cy@acme.test", None).await;
    assert_eq!(events(&app, "acme", "member.removed").await[0]["targets"][0]["id"], "cy@acme.test");
    let (status, _) = call(&org_admin, Method::GET, "/v1/orgs/acme/members/cy@acme.test", None).await;
    assert_eq!(status, 404);

    // Projects: renamed and deleted, each recorded.
    ok(&org_admin, Method::POST, "/v1/orgs/acme/projects", Some(json!({"id": "web"}))).await;
    ok(&org_admin, Method::PATCH, "/v1/orgs/acme/projects/web", Some(json!({"name": "Website"}))).await;
    ok(&org_admin, Method::DELETE, "/v1/orgs/acme/projects/web", None).await;
    let deleted = &events(&app, "acme", "project.deleted").await[0];
    assert_eq!(change(deleted, "name")["before"], "Website");
    app.stop().await;
}

#[tokio::test]
async fn an_organisation_named_by_an_event_is_created_and_the_platform_log_records_it() {
    let app = spawn_app().await;
    app.admin.send_events(&[event("zeta", "user.signed_in"), event("zeta", "user.signed_out")]).await.unwrap();
    let zeta = ok(&app.admin, Method::GET, "/v1/orgs/zeta", None).await;
    assert_eq!((zeta["name"].as_str(), zeta["plan"].as_str()), (Some("zeta"), Some("free")));
    let own = app.admin.list_events(&[("organization_id", "zeta"), ("order", "asc")]).await.unwrap();
    assert_eq!(
        own.data.iter().map(|e| (e.seq, e.action.as_str())).collect::<Vec<_>>(),
        vec![(1, "user.signed_in"), (2, "user.signed_out")]
    );
    let created = events(&app, "_platform", "organization.created").await;
    let zeta_created: Vec<&Value> = created.iter().filter(|e| e["targets"][0]["id"] == "zeta").collect();
    assert_eq!(zeta_created.len(), 1, "created once, by the first event");
    assert_eq!(zeta_created[0]["actor"]["type"], "system");
    assert_eq!(zeta_created[0]["metadata"]["source"], "ingest");
    app.admin.send_events(&[event("zeta", "user.signed_in")]).await.unwrap();
    assert_eq!(events(&app, "_platform", "organization.created").await.len(), created.len());

    // A deleted organisation is gone from the API; its events stay; its id cannot be reused.
    ok(&app.admin, Method::DELETE, "/v1/orgs/zeta", None).await;
    let (status, _) = call(&app.admin, Method::GET, "/v1/orgs/zeta", None).await;
    assert_eq!(status, 404);
    let listed = ok(&app.admin, Method::GET, "/v1/orgs", None).await;
    assert!(listed["data"].as_array().unwrap().iter().all(|o| o["id"] != "zeta"));
    assert_eq!(events(&app, "zeta", "organization.deleted").await.len(), 1);
    let (status, body) = call(&app.admin, Method::POST, "/v1/orgs", Some(json!({"id": "zeta"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("already_exists")));
    app.stop().await;
}

#[tokio::test]
async fn only_platform_keys_and_the_organisations_admins_manage_it() {
    let app = spawn_app().await;
    for org in ["acme", "globex"] {
        ok(&app.admin, Method::POST, "/v1/orgs", Some(json!({"id": org}))).await;
    }
    let acme_admin = app.org_client("acme", &["admin"]).await;
    let acme_reader = app.org_client("acme", &["events:read", "events:write"]).await;

    let mine = ok(&acme_admin, Method::GET, "/v1/orgs", None).await;
    assert_eq!(
        mine["data"].as_array().unwrap().iter().map(|o| o["id"].clone()).collect::<Vec<_>>(),
        vec![json!("acme")]
    );
    for (method, path, body) in [
        (Method::GET, "/v1/orgs/globex", None),
        (Method::PATCH, "/v1/orgs/globex", Some(json!({"name": "x"}))),
        (Method::GET, "/v1/orgs/globex/members", None),
        (Method::POST, "/v1/orgs/globex/members", Some(json!({"email": "a@b.c", "role": "owner"}))),
        (Method::DELETE, "/v1/orgs/globex/projects/p", None),
        (Method::POST, "/v1/orgs", Some(json!({"id": "newco"}))),
        (Method::DELETE, "/v1/orgs/acme", None),
    ] {
        let (status, answer) = call(&acme_admin, method.clone(), path, body).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
    }
    for (method, path) in
        [(Method::GET, "/v1/orgs"), (Method::GET, "/v1/orgs/acme"), (Method::GET, "/v1/orgs/acme/members")]
    {
        let (status, _) = call(&acme_reader, method.clone(), path, None).await;
        assert_eq!(status, 403, "{method} {path} without the admin permission");
    }
    let (status, _) = call(&app.admin, Method::GET, "/v1/orgs", None).await;
    assert_eq!(status, 200);
    // Nothing above changed globex.
    assert_eq!(ok(&app.admin, Method::GET, "/v1/orgs/globex/members", None).await["data"], json!([]));
    assert_eq!(ok(&app.admin, Method::GET, "/v1/orgs/globex", None).await["name"], "globex");
    // Key changes are recorded with where they came from, like every other change.
    let created = events(&app, "acme", "api_key.created").await;
    assert_eq!(created.len(), 2);
    assert!(created.iter().all(|e| e["context"]["ip"] == "127.0.0.1"), "{created:?}");
    app.stop().await;
}

#[tokio::test]
async fn bad_input_names_the_field_and_changes_nothing() {
    let app = spawn_app().await;
    ok(&app.admin, Method::POST, "/v1/orgs", Some(json!({"id": "acme"}))).await;
    let cases = [
        ("/v1/orgs", json!({"id": "_reserved"}), 422, "id"),
        ("/v1/orgs", json!({"id": "has space"}), 422, "id"),
        ("/v1/orgs", json!({"id": "ok", "plan": "gold"}), 422, "plan"),
        ("/v1/orgs", json!({"id": "ok", "name": ""}), 422, "name"),
        ("/v1/orgs", json!({"id": "acme"}), 409, ""),
        ("/v1/orgs/acme/projects", json!({"name": "no id"}), 422, "id"),
        ("/v1/orgs/acme/members", json!({"email": "not-an-email", "role": "admin"}), 422, "email"),
        ("/v1/orgs/acme/members", json!({"email": "a@b.c", "role": "king"}), 422, "role"),
        ("/v1/orgs/acme/members", json!({"email": "a@b.c", "role": "viewer", "projects": ["p"]}), 422, "projects"),
        (
            "/v1/orgs/acme/members",
            json!({"email": "a@b.c", "role": "project_admin", "projects": ["bad id"]}),
            422,
            "projects[0]",
        ),
        ("/v1/orgs/acme/members", json!({"email": "a@b.c", "role": "admin", "status": "gone"}), 422, "status"),
    ];
    for (path, body, status, field) in cases {
        let (got, answer) = call(&app.admin, Method::POST, path, Some(body.clone())).await;
        assert_eq!(got, status, "{path} {body}: {answer}");
        if !field.is_empty() {
            assert_eq!(answer["error"]["field"], field, "{path} {body}: {answer}");
        }
    }
    let (status, _) = call(&app.admin, Method::POST, "/v1/orgs", Some(json!({"id": "x", "colour": "red"}))).await;
    assert_eq!(status, 400, "unknown fields are refused");
    assert_eq!(ok(&app.admin, Method::GET, "/v1/orgs", None).await["data"].as_array().unwrap().len(), 1);
    assert_eq!(ok(&app.admin, Method::GET, "/v1/orgs/acme/members", None).await["data"], json!([]));
    let recorded = app.admin.list_events(&[("organization_id", "acme")]).await.unwrap();
    assert_eq!(recorded.data.len(), 1, "only the creation was recorded");
    app.stop().await;
}

/// Runs the binary on a blocking thread (so the in-process server keeps serving).
async fn trailkeep(app: &TestApp, args: &[&str]) -> std::process::Output {
    let url = app.base_url.clone();
    let key = std::fs::read_to_string(app.data_dir.join("admin.key")).unwrap().trim().to_owned();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_trailkeep"))
            .args(&args)
            .env("TRAILKEEP_URL", url)
            .env("TRAILKEEP_API_KEY", key)
            .output()
            .expect("run trailkeep")
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_manages_organisations_projects_and_members() {
    let app = spawn_app().await;
    for args in [
        &["orgs", "create", "acme", "--name", "Acme Corp", "--plan", "pro"][..],
        &["projects", "create", "--org", "acme", "web", "--name", "Website"],
        &["members", "add", "--org", "acme", "ada@acme.test", "--role", "owner", "--active"],
        &["members", "add", "--org", "acme", "bo@acme.test", "--role", "project_admin", "--projects", "web"],
        &["members", "update", "--org", "acme", "bo@acme.test", "--role", "viewer"],
    ] {
        let out = trailkeep(&app, args).await;
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = trailkeep(&app, &["members", "list", "--org", "acme", "--json"]).await;
    let members: Value = serde_json::from_slice(&out.stdout).unwrap();
    let roles: Vec<(&str, &str)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(roles, vec![("ada@acme.test", "owner"), ("bo@acme.test", "viewer")]);
    let out = trailkeep(&app, &["orgs", "list"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("Acme Corp"));

    let out = trailkeep(&app, &["members", "add", "--org", "acme", "cy@acme.test", "--role", "king"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("role must be one of") && err.contains("field `role`"), "{err}");
    assert_eq!(events(&app, "acme", "member.role_changed").await.len(), 1);
    app.stop().await;
}
