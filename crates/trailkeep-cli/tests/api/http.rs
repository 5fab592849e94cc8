//! The HTTP surface around the resources: health, readiness, metrics, request ids, and the error
//! envelope on answers produced outside the handlers.

use trailkeep_client::Method;

use crate::helpers::{event, spawn_app};

#[tokio::test]
async fn health_readiness_and_metrics_report_ingest() {
    let app = spawn_app().await;
    let health = app.admin.raw(Method::GET, "/healthz", None, &[]).await.unwrap();
    assert_eq!((health.status, health.body.as_slice()), (200, b"ok".as_slice()));
    app.admin.ready().await.unwrap();
    let batch: Vec<_> = (0..3).map(|_| event("acme", "a.b")).collect();
    app.admin.send_events(&batch).await.unwrap();
    app.admin.list_events(&[("organization_id", "acme")]).await.unwrap();
    let metrics = app.admin.metrics().await.unwrap();
    for name in [
        "trailkeep_events_ingested_total",
        "trailkeep_ingest_requests_total",
        "trailkeep_commit_batch_events_bucket",
        "trailkeep_commit_seconds_bucket",
        "trailkeep_ingest_queue_depth",
        "trailkeep_query_seconds_bucket",
        "trailkeep_http_requests_total{method=\"POST\",route=\"/v1/events\",status=\"201\"}",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_request_id_is_echoed_or_generated() {
    let app = spawn_app().await;
    let given = app.admin.raw(Method::GET, "/healthz", None, &[("x-request-id", "trace-me-42")]).await.unwrap();
    assert_eq!(given.header("x-request-id"), Some("trace-me-42"));
    let generated = app.admin.raw(Method::GET, "/healthz", None, &[]).await.unwrap();
    assert_eq!(generated.header("x-request-id").map(str::len), Some(36));
    app.stop().await;
}

#[tokio::test]
async fn errors_outside_the_handlers_use_the_same_envelope() {
    let app = spawn_app().await;
    let wrong_method = app.admin.raw(Method::PUT, "/v1/events", Some(b"{}".to_vec()), &[]).await.unwrap();
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.json().unwrap()["error"]["code"], "method_not_allowed");
    let nowhere = app.admin.raw(Method::GET, "/v2/events", None, &[]).await.unwrap();
    assert_eq!(nowhere.status, 404);
    assert_eq!(nowhere.json().unwrap()["error"]["code"], "not_found");
    let anonymous = trailkeep_client::Client::new(&app.base_url, None).unwrap();
    let r = anonymous.raw(Method::GET, "/v1/events", None, &[]).await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(r.json().unwrap()["error"]["code"], "unauthorized");
    app.stop().await;
}
