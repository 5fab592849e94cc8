//! Rate limits on a real server: a key over its burst is told to wait and others are not; one address
//! cannot try keys without end; health endpoints are never limited; refusals are counted.
//!
//! The limits here are small, but each test only asserts outcomes (a refusal comes, a wait ends it),
//! never how many milliseconds anything took. Requests go through `raw`, which does not retry on 429.

use std::time::Duration;

use trailkeep_client::{Client, Method, RawResponse};

use crate::helpers::spawn_app_with;

/// Sends `GET /v1/events` with `client` until one answers 429, up to `attempts` times; the answers before
/// it must all be `expected`. Returns the 429 and how many requests passed before it.
async fn until_refused(client: &Client, attempts: usize, expected: u16) -> (RawResponse, usize) {
    for passed in 0..attempts {
        let r = client.raw(Method::GET, "/v1/events", None, &[]).await.unwrap();
        if r.status == 429 {
            return (r, passed);
        }
        assert_eq!(r.status, expected, "before the limit: {}", String::from_utf8_lossy(&r.body));
    }
    panic!("no 429 after {attempts} requests");
}

/// The whole seconds a 429 asks to wait.
fn retry_after(r: &RawResponse) -> u64 {
    let secs: u64 = r.header("retry-after").expect("a 429 carries Retry-After").parse().expect("whole seconds");
    assert!(secs >= 1, "Retry-After is at least one second, got {secs}");
    secs
}

#[tokio::test]
async fn a_key_over_its_burst_gets_429_with_retry_after_while_another_key_is_unaffected() {
    // One request a second after a burst of five: far slower than a loop on loopback, so the sixth
    // request or one soon after it is refused however slow the machine.
    let app = spawn_app_with(|c| {
        c.rate_limit_per_key = 1;
        c.rate_limit_per_key_burst = Some(5);
        c.rate_limit_per_ip = 0;
    })
    .await;
    let busy = app.org_client("acme", &["events:read"]).await;
    let other = app.org_client("acme", &["events:read"]).await;

    let (refused, passed) = until_refused(&busy, 50, 200).await;
    assert!(passed >= 5, "the burst of five passed first, but only {passed} did");
    let waited = retry_after(&refused);
    let body = refused.json().unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("API key") && message.contains("retry in"), "{message}");

    // A throttled ingest stores nothing.
    let event = serde_json::to_vec(&crate::helpers::event("acme", "limited.event")).unwrap();
    let writer = app.org_client("acme", &["events:write"]).await;
    until_refused(&writer, 50, 403).await;
    let post =
        writer.raw(Method::POST, "/v1/events", Some(event), &[("content-type", "application/json")]).await.unwrap();
    assert_eq!(post.status, 429);

    let fine = other.raw(Method::GET, "/v1/events", None, &[]).await.unwrap();
    assert_eq!(fine.status, 200, "another key has its own bucket");
    let page = app.admin.list_events(&[("organization_id", "acme"), ("action", "limited.event")]).await.unwrap();
    assert!(page.data.is_empty(), "a refused request stored an event");

    // Waiting what Retry-After says lets the key in again (polled, with a bound, never timed).
    let mut wait = waited;
    let mut recovered = false;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(wait)).await;
        let r = busy.raw(Method::GET, "/v1/events", None, &[]).await.unwrap();
        if r.status == 200 {
            recovered = true;
            break;
        }
        assert_eq!(r.status, 429);
        wait = retry_after(&r);
    }
    assert!(recovered, "the key stayed refused after waiting Retry-After");

    let metrics = app.admin.metrics().await.unwrap();
    assert!(metrics.contains("trailkeep_rate_limited_total{limit=\"key\"}"), "/metrics lacks the key counter");
    app.stop().await;
}

#[tokio::test]
async fn one_address_trying_bad_keys_gets_429_after_its_burst_instead_of_endless_401s() {
    let app = spawn_app_with(|c| {
        c.rate_limit_per_ip = 1;
        c.rate_limit_per_ip_burst = Some(10);
    })
    .await;
    let guesser = Client::new(&app.base_url, Some("tk_not-a-real-key-0000000000000000000000000".into())).unwrap();
    let (refused, passed) = until_refused(&guesser, 100, 401).await;
    assert!(passed >= 10, "the burst of ten was answered first, but only {passed} were");
    retry_after(&refused);
    let body = refused.json().unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("client address"), "{message}");
    assert!(!message.contains("tk_"), "the message echoes the key: {message}");

    // The bucket is the address's, whatever it sends: no key and the valid admin key are refused too.
    let anonymous = Client::new(&app.base_url, None).unwrap();
    assert_eq!(anonymous.raw(Method::GET, "/v1/events", None, &[]).await.unwrap().status, 429);
    assert_eq!(app.admin.raw(Method::GET, "/v1/keys", None, &[]).await.unwrap().status, 429);

    // Probes and scrapes still answer while the address is throttled.
    for _ in 0..30 {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let r = anonymous.raw(Method::GET, path, None, &[]).await.unwrap();
            assert_eq!(r.status, 200, "{path} was limited");
        }
    }
    let metrics = app.admin.metrics().await.unwrap();
    assert!(metrics.contains("trailkeep_rate_limited_total{limit=\"ip\"}"), "/metrics lacks the address counter");
    let throttled = "trailkeep_http_requests_total{method=\"GET\",route=\"/v1/events\",status=\"429\"}";
    assert!(metrics.contains(throttled), "/metrics lacks the 429s by route");
    app.stop().await;
}
