//! Paging through an organisation's timeline with `limit` and `cursor`.
//!
//! The timeline is ordered by `(occurred_at, seq)`. The fixtures here give many events the same
//! `occurred_at` and send them out of time order, so that a cursor must break ties by `seq` to return
//! each event exactly once. One test pages while another task keeps appending events into the very
//! stretch of time being paged, and checks that no event that existed before paging began is skipped
//! or repeated.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use trailkeep_client::{Client, ClientError};
use trailkeep_wire::Event;
use uuid::Uuid;

use crate::helpers::spawn_app;

const ORG: &str = "acme";
const MINUTE: i64 = 60_000;

fn ts(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An event stored by a test, as far as ordering is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    at: i64,
    seq: u64,
    id: Uuid,
}

/// Event `i` of a fixture: eleven distinct times, visited out of order, so many events share a time.
fn fixture_event(i: usize, base: i64) -> Value {
    let at = base + ((i * 7) % 11) as i64 * MINUTE;
    let action = match i % 3 {
        0 => "page.third",
        _ => "page.other",
    };
    json!({"organization_id": ORG, "action": action, "occurred_at": ts(at), "metadata": {"i": i}})
}

/// Sends `n` fixture events in batches and returns them as stored, in the order sent.
async fn seed(client: &Client, n: usize, base: i64) -> Vec<Stored> {
    let events: Vec<Value> = (0..n).map(|i| fixture_event(i, base)).collect();
    let mut stored = Vec::new();
    for chunk in events.chunks(17) {
        let sent = client.send_events(chunk).await.unwrap();
        for (e, ack) in chunk.iter().zip(sent.acks) {
            let at = chrono::DateTime::parse_from_rfc3339(e["occurred_at"].as_str().unwrap()).unwrap();
            stored.push(Stored { at: at.timestamp_millis(), seq: ack.seq, id: ack.id });
        }
    }
    stored
}

/// The ids of `events` in timeline order: newest first for `desc`, oldest first for `asc`.
fn in_order(events: &[Stored], order: &str) -> Vec<Uuid> {
    let mut sorted = events.to_vec();
    sorted.sort_by_key(|e| (e.at, e.seq));
    if order == "desc" {
        sorted.reverse();
    }
    sorted.iter().map(|e| e.id).collect()
}

/// Follows cursors to the end; asserts every page but the last is full and none is over the limit.
async fn page_through(client: &Client, order: &str, limit: usize, extra: &[(&str, &str)]) -> (Vec<Event>, usize) {
    let limit_text = limit.to_string();
    let mut all = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("organization_id", ORG), ("order", order), ("limit", limit_text.as_str())];
        params.extend_from_slice(extra);
        if let Some(c) = &cursor {
            params.push(("cursor", c));
        }
        let page = client.list_events(&params).await.unwrap();
        pages += 1;
        assert!(page.data.len() <= limit, "a page holds at most `limit` events");
        let last = page.next_cursor.is_none();
        if !last {
            assert_eq!(page.data.len(), limit, "only the last page may be short");
        }
        all.extend(page.data);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return (all, pages),
        }
    }
}

fn ids(events: &[Event]) -> Vec<Uuid> {
    events.iter().map(|e| e.id).collect()
}

fn refusal(e: ClientError) -> (u16, String, Option<String>, String) {
    match e {
        ClientError::Api { status, code, message, field } => (status, code, field, message),
        other => panic!("expected an error answer, got {other}"),
    }
}

#[tokio::test]
async fn paging_newest_first_returns_each_event_exactly_once_in_timeline_order() {
    let app = spawn_app().await;
    let base = Utc::now().timestamp_millis() - 2 * 24 * 60 * MINUTE;
    let stored = seed(&app.admin, 60, base).await;
    let want = in_order(&stored, "desc");
    for limit in [1, 7, 10, 59, 60, 61, 1000] {
        let (got, pages) = page_through(&app.admin, "desc", limit, &[]).await;
        assert_eq!(ids(&got), want, "limit {limit}");
        assert_eq!(pages, stored.len().div_ceil(limit), "limit {limit}: no empty page at the end");
    }
    app.stop().await;
}

#[tokio::test]
async fn paging_oldest_first_returns_each_event_exactly_once_in_timeline_order() {
    let app = spawn_app().await;
    let base = Utc::now().timestamp_millis() - 2 * 24 * 60 * MINUTE;
    let stored = seed(&app.admin, 60, base).await;
    let want = in_order(&stored, "asc");
    for limit in [1, 7, 10, 60, 1000] {
        let (got, pages) = page_through(&app.admin, "asc", limit, &[]).await;
        assert_eq!(ids(&got), want, "limit {limit}");
        assert_eq!(pages, stored.len().div_ceil(limit), "limit {limit}");
    }
    app.stop().await;
}

#[tokio::test]
async fn paging_a_filtered_listing_returns_exactly_the_matching_events() {
    let app = spawn_app().await;
    let base = Utc::now().timestamp_millis() - 2 * 24 * 60 * MINUTE;
    let events: Vec<Value> = (0..45).map(|i| fixture_event(i, base)).collect();
    let stored = seed(&app.admin, 45, base).await;
    let thirds: Vec<Stored> =
        stored.iter().zip(&events).filter(|(_, e)| e["action"] == "page.third").map(|(s, _)| *s).collect();
    assert_eq!(thirds.len(), 15);
    for order in ["desc", "asc"] {
        let (got, pages) = page_through(&app.admin, order, 4, &[("action", "page.third")]).await;
        assert_eq!(ids(&got), in_order(&thirds, order), "{order}");
        assert_eq!(pages, 4);
        let (got, _) = page_through(&app.admin, order, 4, &[("q", "-action:page.third")]).await;
        let others: Vec<Stored> = stored.iter().filter(|s| !thirds.contains(s)).copied().collect();
        assert_eq!(ids(&got), in_order(&others, order), "{order}");
    }
    app.stop().await;
}

#[tokio::test]
async fn appends_during_paging_cause_no_duplicate_and_no_skip_among_earlier_events() {
    let app = spawn_app().await;
    let base = Utc::now().timestamp_millis() - 2 * 24 * 60 * MINUTE;
    let before = seed(&app.admin, 120, base).await;

    for order in ["desc", "asc"] {
        // The writer appends into the same eleven minutes being paged, and at the present, until told to
        // stop; it announces each stored batch so the pager can wait for one between pages.
        let stop = Arc::new(AtomicBool::new(false));
        let (progress_tx, mut progress_rx) = tokio::sync::watch::channel(0usize);
        let writer = {
            let client = app.admin.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut appended = 0usize;
                let mut round = 0usize;
                // Bounded, so that an oldest-first pager chasing the newest events always reaches the end.
                while !stop.load(Ordering::SeqCst) && round < 100 {
                    let batch: Vec<Value> = (0..5)
                        .map(|j| {
                            let i = round * 5 + j;
                            if j == 4 {
                                json!({"organization_id": ORG, "action": "page.late"})
                            } else {
                                fixture_event(i, base)
                            }
                        })
                        .collect();
                    client.send_events(&batch).await.unwrap();
                    appended += batch.len();
                    round += 1;
                    progress_tx.send_replace(appended);
                }
                appended
            })
        };

        let mut seen: Vec<Event> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut interleaved = 0;
        loop {
            let mut params = vec![("organization_id", ORG), ("order", order), ("limit", "9")];
            if let Some(c) = &cursor {
                params.push(("cursor", c));
            }
            let page = app.admin.list_events(&params).await.unwrap();
            progress_rx.borrow_and_update();
            seen.extend(page.data);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
            // While the writer runs, at least one batch lands between this page and the next.
            if progress_rx.changed().await.is_ok() {
                interleaved += 1;
            }
        }
        stop.store(true, Ordering::SeqCst);
        let appended = writer.await.unwrap();
        assert!(appended > 0 && interleaved > 0, "{order}: appends should land between pages");

        let unique: HashSet<Uuid> = seen.iter().map(|e| e.id).collect();
        assert_eq!(unique.len(), seen.len(), "{order}: an event was returned twice");
        for pair in seen.windows(2) {
            let (a, b) = ((pair[0].occurred_at, pair[0].seq), (pair[1].occurred_at, pair[1].seq));
            assert!(if order == "desc" { a > b } else { a < b }, "{order}: {a:?} then {b:?} is out of order");
        }
        let earlier: HashSet<Uuid> = before.iter().map(|e| e.id).collect();
        let seen_earlier: Vec<Uuid> = seen.iter().map(|e| e.id).filter(|id| earlier.contains(id)).collect();
        assert_eq!(seen_earlier, in_order(&before, order), "{order}: every earlier event once, in order");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_cursor_used_with_the_other_order_or_a_garbage_cursor_is_refused_with_400() {
    let app = spawn_app().await;
    let base = Utc::now().timestamp_millis() - 24 * 60 * MINUTE;
    seed(&app.admin, 5, base).await;
    for (issued, other) in [("desc", "asc"), ("asc", "desc")] {
        let page = app.admin.list_events(&[("organization_id", ORG), ("order", issued), ("limit", "2")]).await.unwrap();
        let cursor = page.next_cursor.expect("more than one page");
        let err = app
            .admin
            .list_events(&[("organization_id", ORG), ("order", other), ("limit", "2"), ("cursor", &cursor)])
            .await
            .unwrap_err();
        let (status, code, field, message) = refusal(err);
        assert_eq!((status, code.as_str(), field.as_deref()), (400, "invalid_parameter", Some("cursor")));
        assert!(message.contains("other order"), "{message}");
        // The same cursor with its own order still works.
        let next = app
            .admin
            .list_events(&[("organization_id", ORG), ("order", issued), ("limit", "2"), ("cursor", &cursor)])
            .await
            .unwrap();
        assert_eq!(next.data.len(), 2);
    }
    // Without `order` the listing is newest first, so an oldest-first cursor does not fit it either.
    let asc = app.admin.list_events(&[("organization_id", ORG), ("order", "asc"), ("limit", "1")]).await.unwrap();
    let err =
        app.admin.list_events(&[("organization_id", ORG), ("cursor", &asc.next_cursor.unwrap())]).await.unwrap_err();
    assert_eq!(refusal(err).2.as_deref(), Some("cursor"));

    for garbage in ["garbage", "!!!", "MWQxMjM", "MWR4OjE", "MmQxOjE", "MWQxOjE6Mg"] {
        let err = app.admin.list_events(&[("organization_id", ORG), ("cursor", garbage)]).await.unwrap_err();
        let (status, code, field, _) = refusal(err);
        assert_eq!(
            (status, code.as_str(), field.as_deref()),
            (400, "invalid_parameter", Some("cursor")),
            "{garbage:?}"
        );
    }
    app.stop().await;
}
