//! Ingest: acknowledgements, sequence numbers, idempotency and client-supplied ids.

use serde_json::json;

use crate::helpers::{event, spawn_app};

#[tokio::test]
async fn create_events_acknowledges_each_event_with_a_contiguous_seq() {
    let app = spawn_app().await;
    let batch: Vec<_> = (0..5).map(|_| event("acme", "team.member.added")).collect();
    let sent = app.admin.send_events(&batch).await.unwrap();
    assert_eq!(sent.acks.iter().map(|a| a.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    let one = app.admin.send_events(&[event("acme", "team.member.removed")]).await.unwrap();
    assert_eq!(one.acks[0].seq, 6);
    let other = app.admin.send_events(&[event("globex", "team.member.removed")]).await.unwrap();
    assert_eq!(other.acks[0].seq, 1, "each organisation has its own sequence");
    let stored = app.admin.get_event(&one.acks[0].id.to_string(), Some("acme")).await.unwrap();
    assert_eq!(stored.action.as_str(), "team.member.removed");
    assert_eq!(stored.category, "team");
    app.stop().await;
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_returns_the_original_response_and_stores_nothing() {
    let app = spawn_app().await;
    let batch = vec![event("acme", "a.b"), json!({"organization_id": "acme", "action": "c.d"})];
    let first = app.admin.send_events_with_key(&batch, "retry-1").await.unwrap();
    let again = app.admin.send_events_with_key(&batch, "retry-1").await.unwrap();
    assert!(!first.replayed);
    assert!(again.replayed);
    assert_eq!(first.acks, again.acks);
    let all = app.admin.list_all_events(&[("organization_id", "acme")]).await.unwrap();
    assert_eq!(all.len(), 2);

    let different = vec![event("acme", "x.y")];
    let err = app.admin.send_events_with_key(&different, "retry-1").await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert_eq!(err.code(), Some("idempotency_conflict"));
    assert_eq!(app.admin.list_all_events(&[("organization_id", "acme")]).await.unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_client_supplied_id_already_stored_is_not_stored_twice() {
    let app = spawn_app().await;
    let id = "0190f8a4-7f3c-7cc0-8000-00000000abcd";
    let e = json!({"id": id, "organization_id": "acme", "action": "a.b"});
    let first = app.admin.send_events(std::slice::from_ref(&e)).await.unwrap();
    let second = app.admin.send_events(&[e.clone(), event("acme", "c.d")]).await.unwrap();
    assert_eq!(second.acks[0], first.acks[0]);
    assert_eq!(second.acks[1].seq, 2);
    let all = app.admin.list_all_events(&[("organization_id", "acme")]).await.unwrap();
    assert_eq!(all.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_single_event_requests_get_unique_gap_free_seqs() {
    let app = spawn_app().await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let client = app.admin.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for _ in 0..20 {
                let org = if i % 2 == 0 { "acme" } else { "globex" };
                let sent = client.send_events(&[event(org, "ai.request")]).await.unwrap();
                seqs.push((org, sent.acks[0].seq));
            }
            seqs
        }));
    }
    let mut acme = Vec::new();
    let mut globex = Vec::new();
    for t in tasks {
        for (org, seq) in t.await.unwrap() {
            if org == "acme" { acme.push(seq) } else { globex.push(seq) }
        }
    }
    acme.sort();
    globex.sort();
    assert_eq!(acme, (1..=320).collect::<Vec<_>>());
    assert_eq!(globex, (1..=320).collect::<Vec<_>>());
    app.stop().await;
}

#[tokio::test]
async fn a_full_ingest_queue_answers_503_with_retry_after_and_drops_nothing_acknowledged() {
    let app = crate::helpers::spawn_app_with(|c| c.queue_capacity = 1).await;
    let client = app.admin.clone().with_retry(trailkeep_client::RetryPolicy {
        attempts: 1,
        first_backoff: std::time::Duration::from_millis(1),
        max_backoff: std::time::Duration::from_millis(1),
    });
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let batch: Vec<_> = (0..200).map(|_| event("acme", "a.b")).collect();
            let body = serde_json::to_vec(&serde_json::json!({ "events": batch })).unwrap();
            client
                .raw(trailkeep_client::Method::POST, "/v1/events", Some(body), &[("content-type", "application/json")])
                .await
                .unwrap()
        }));
    }
    let mut acked = 0;
    let mut refused = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 => acked += 200,
            503 => {
                assert_eq!(r.header("retry-after"), Some("1"));
                assert_eq!(r.json().unwrap()["error"]["code"], "overloaded");
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused > 0, "a queue of one must refuse some of 64 concurrent batches");
    let stored = app.admin.list_all_events(&[("organization_id", "acme"), ("limit", "1000")]).await.unwrap();
    assert_eq!(stored.len(), acked);
    app.stop().await;
}

#[tokio::test]
async fn the_client_batcher_sends_full_batches_and_flushes_the_rest() {
    let app = spawn_app().await;
    let mut batcher = app.admin.batcher(10);
    let mut sent_on_push = 0;
    for i in 0..25 {
        sent_on_push +=
            batcher.push(json!({"organization_id": "acme", "action": "a.b", "metadata": {"i": i}})).await.unwrap();
    }
    assert_eq!(sent_on_push, 20, "two full batches go out as they fill");
    assert_eq!(batcher.flush().await.unwrap(), 5);
    assert_eq!(batcher.flush().await.unwrap(), 0);
    assert_eq!(batcher.acks().iter().map(|a| a.seq).collect::<Vec<_>>(), (1..=25).collect::<Vec<_>>());
    let stored = app.admin.list_all_events(&[("organization_id", "acme"), ("order", "asc")]).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| e.metadata["i"].as_u64().unwrap()).collect::<Vec<_>>(),
        (0..25).collect::<Vec<_>>()
    );
    app.stop().await;
}
