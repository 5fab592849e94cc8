//! Self-proving exports and the offline verifier, end to end: bundles downloaded from the real server
//! and checked by the real `trailkeep verify`, then the data files changed behind the stopped service's
//! back — an event's metadata rewritten, a row deleted, two payloads swapped, a row forged, the tail cut,
//! a checkpoint's signature corrupted, the whole history resealed — each caught by `verify` and by the
//! proof endpoint, naming the event.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use trailkeep_client::{Client, Method};

use crate::helpers::{TestApp, spawn_app};

const ORG: &str = "acme";

/// Runs the binary on a blocking thread (so the in-process server keeps serving).
async fn trailkeep(app: &TestApp, args: &[&str]) -> Output {
    let (url, key) = (app.base_url.clone(), admin_secret(app));
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

fn admin_secret(app: &TestApp) -> String {
    std::fs::read_to_string(app.data_dir.join("admin.key")).unwrap().trim().to_owned()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `count` events for the org, in batches of `batch`, each with its number in metadata.
async fn send(app: &TestApp, first: u64, count: u64) {
    let events: Vec<Value> = (first..first + count)
        .map(|i| json!({ "organization_id": ORG, "action": "invoice.paid", "metadata": { "n": i, "amount": i * 10 } }))
        .collect();
    app.admin.send_events(&events).await.unwrap();
}

/// The newest checkpoint once it covers at least `size` events.
async fn wait_sealed(client: &Client, size: u64) -> Value {
    let mut last = Value::Null;
    for _ in 0..400 {
        let r = client.raw(Method::GET, &format!("/v1/checkpoint?organization_id={ORG}"), None, &[]).await.unwrap();
        last = r.json().unwrap_or(Value::Null);
        // Exports are recorded as events too, so the log may have grown past `size` by then.
        if r.status == 200 && last["size"].as_u64().is_some_and(|n| n >= size) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no checkpoint of {size} events; last answer {last}");
}

/// An app whose org holds `size` events, all sealed, and the file of its verifier keys.
async fn sealed_app(size: u64) -> (TestApp, PathBuf, tempfile::TempDir) {
    let app = spawn_app().await;
    send(&app, 1, size).await;
    wait_sealed(&app.admin, size).await;
    let files = tempfile::tempdir().unwrap();
    let keys = files.path().join("keys.txt");
    std::fs::write(&keys, app.admin.checkpoint_key().await.unwrap()).unwrap();
    (app, keys, files)
}

/// The event ids of the org by seq (index 0 is seq 1).
async fn ids(app: &TestApp) -> Vec<String> {
    let events = app.admin.list_all_events(&[("organization_id", ORG), ("order", "asc")]).await.unwrap();
    let mut by_seq: Vec<(u64, String)> = events.iter().map(|e| (e.seq, e.id.to_string())).collect();
    by_seq.sort();
    by_seq.into_iter().map(|(_, id)| id).collect()
}

async fn export(app: &TestApp, dir: &Path, name: &str, extra: &[&str]) -> (Output, PathBuf) {
    let out = dir.join(name);
    let mut args = vec!["export", "--verifiable", "--org", ORG, "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    (trailkeep(app, &args).await, out)
}

async fn verify(app: &TestApp, bundle: &Path, keys: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["verify", bundle.to_str().unwrap(), "--key", keys.to_str().unwrap()];
    args.extend_from_slice(extra);
    trailkeep(app, &args).await
}

async fn proof_status(app: &TestApp, id: &str) -> (u16, Value) {
    let r =
        app.admin.raw(Method::GET, &format!("/v1/events/{id}/proof?organization_id={ORG}"), None, &[]).await.unwrap();
    (r.status, r.json().unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_range_export_verifies_offline_and_a_selection_says_what_it_proves() {
    let (app, keys, files) = sealed_app(40).await;
    let (out, bundle) = export(&app, files.path(), "all.jsonl", &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let lines = std::fs::read_to_string(&bundle).unwrap();
    assert_eq!(lines.lines().count(), 43, "manifest, proofs, 40 entries, end");
    let verdict = verify(&app, &bundle, &keys, &[]).await;
    assert_eq!(verdict.status.code(), Some(0), "{}", text(&verdict));
    assert!(text(&verdict).contains("VERIFIED  acme: events 1–40 of 40, complete and unaltered"), "{}", text(&verdict));

    // A part of the range.
    let (out, part) = export(&app, files.path(), "part.jsonl", &["--from-seq", "17", "--to-seq", "29"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let verdict = verify(&app, &part, &keys, &["--json"]).await;
    assert_eq!(verdict.status.code(), Some(0), "{}", text(&verdict));
    let report: Value = serde_json::from_slice(&verdict.stdout).unwrap();
    assert_eq!(
        (report["from_seq"].as_u64(), report["to_seq"].as_u64(), report["verified"].as_u64()),
        (Some(17), Some(29), Some(13))
    );

    // A filtered selection proves each event, and says it does not prove completeness.
    let (out, selection) = export(&app, files.path(), "sel.jsonl", &["-q", "seq:>35 action:invoice.paid"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let manifest: Value =
        serde_json::from_str(std::fs::read_to_string(&selection).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(manifest["kind"], "selection");
    assert!(manifest["proves"].as_str().unwrap().contains("does not prove that no event is missing"));
    let verdict = verify(&app, &selection, &keys, &[]).await;
    assert_eq!(verdict.status.code(), Some(0), "{}", text(&verdict));
    assert!(text(&verdict).contains("5 selected events"), "{}", text(&verdict));
    assert!(text(&verdict).contains("completeness is not proven"), "{}", text(&verdict));

    // Bad requests are refused with the field named, and nothing is written.
    for (params, field) in [
        ("from_seq=0", "from_seq"),
        ("to_seq=41", "to_seq"),
        ("tree_size=99", "tree_size"),
        ("since_size=50", "since_size"),
        ("from_seq=2&action=x.y", "from_seq"),
        ("colour=red", "colour"),
    ] {
        let r =
            app.admin.raw(Method::GET, &format!("/v1/bundle?organization_id={ORG}&{params}"), None, &[]).await.unwrap();
        assert_eq!(r.status, 400, "{params}");
        assert_eq!(r.json().unwrap()["error"]["field"], field, "{params}");
    }
    let (out, missing) = export(&app, files.path(), "bad.jsonl", &["--to-seq", "99"]).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("to_seq"), "{}", text(&out));
    assert!(!missing.exists());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_extends_a_checkpoint_kept_from_earlier_and_a_witness_follows_the_log() {
    let (app, keys, files) = sealed_app(20).await;
    let kept = files.path().join("kept.note");
    std::fs::write(&kept, wait_sealed(&app.admin, 20).await["note"].as_str().unwrap()).unwrap();
    let state = files.path().join("witness.note");
    let witness_args = |app: &TestApp, state: &Path| {
        vec![
            "verify".to_owned(),
            "--server".into(),
            app.base_url.clone(),
            "--state".into(),
            state.to_str().unwrap().into(),
            "--key".into(),
            keys.to_str().unwrap().into(),
            "--org".into(),
            ORG.into(),
        ]
    };
    let args = witness_args(&app, &state);
    let first = trailkeep(&app, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(text(&first).contains("first checkpoint"));

    send(&app, 21, 15).await;
    wait_sealed(&app.admin, 35).await;
    // From seq 1 the earlier root is recomputed; a later range needs the proof asked for at export.
    let (_, whole) = export(&app, files.path(), "whole.jsonl", &[]).await;
    let verdict = verify(&app, &whole, &keys, &["--since", kept.to_str().unwrap()]).await;
    assert_eq!(verdict.status.code(), Some(0), "{}", text(&verdict));
    assert!(text(&verdict).contains("consistent with the earlier checkpoint of 20 events"), "{}", text(&verdict));
    let (_, tail) = export(&app, files.path(), "tail.jsonl", &["--from-seq", "30"]).await;
    let verdict = verify(&app, &tail, &keys, &["--since", kept.to_str().unwrap()]).await;
    assert_eq!(verdict.status.code(), Some(4), "{}", text(&verdict));
    let (_, tail) =
        export(&app, files.path(), "tail2.jsonl", &["--from-seq", "30", "--since", kept.to_str().unwrap()]).await;
    let verdict = verify(&app, &tail, &keys, &["--since", kept.to_str().unwrap()]).await;
    assert_eq!(verdict.status.code(), Some(0), "{}", text(&verdict));

    let again = trailkeep(&app, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains("grew from 20 to"), "{}", text(&again));

    // Someone with the files and the key rewrites event 3 and has the whole log resealed: the signatures
    // are all valid, but the witness and the kept checkpoint expose the fork.
    let id3 = ids(&app).await[2].clone();
    let app = app
        .tamper(
            "UPDATE events SET payload = json_set(payload, '$.metadata.amount', 0) WHERE seq = 3; \
             DELETE FROM ledger.receipts; DELETE FROM ledger.tree_nodes; DELETE FROM ledger.checkpoints; \
             UPDATE ledger.watermark SET pos = 0;",
            "UPDATE trailkeep.events SET payload = jsonb_set(payload::jsonb, '{metadata,amount}', '0')::text \
             WHERE org_id = 'acme' AND seq = 3; \
             DELETE FROM trailkeep.receipts WHERE org_id = 'acme'; \
             DELETE FROM trailkeep.tree_nodes WHERE org_id = 'acme'; \
             DELETE FROM trailkeep.checkpoints WHERE org_id = 'acme'; \
             UPDATE trailkeep.follower_heads SET done = 0 WHERE follower = 'seal' AND org_id = 'acme';",
        )
        .await;
    wait_sealed(&app.admin, 35).await;
    let args = witness_args(&app, &state);
    let forked = trailkeep(&app, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(forked.status.code(), Some(4), "{}", text(&forked));
    assert!(text(&forked).contains("FORKED HISTORY"), "{}", text(&forked));
    let (_, resealed) = export(&app, files.path(), "resealed.jsonl", &[]).await;
    let verdict = verify(&app, &resealed, &keys, &[]).await;
    assert_eq!(verdict.status.code(), Some(0), "a resealed log is self-consistent: {}", text(&verdict));
    let verdict = verify(&app, &resealed, &keys, &["--since", kept.to_str().unwrap()]).await;
    assert_eq!(verdict.status.code(), Some(4), "{}", text(&verdict));
    assert!(text(&verdict).contains("inconsistent history"), "{}", text(&verdict));
    assert_eq!(proof_status(&app, &id3).await.1["status"], "verified", "the resealed event matches its new leaf");
    app.stop().await;
}

/// One way of tampering with the stored events, in each store's SQL, and what must be noticed.
struct Tamper {
    name: &'static str,
    /// On the embedded store's main database file.
    sqlite: &'static str,
    /// On the PostgreSQL database, as its superuser; `None` where its constraints forbid the change.
    postgres: Option<&'static str>,
    /// Lines the verifier must print, given the event ids by seq.
    verdict: fn(&[String]) -> Vec<String>,
    /// (seq whose id to ask about, expected proof status)
    proofs: &'static [(usize, &'static str)],
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_stored_events_are_caught_and_the_event_named() {
    let cases = [
        Tamper {
            name: "metadata rewritten",
            sqlite: "UPDATE events SET payload = json_set(payload, '$.metadata.amount', 1) WHERE seq = 4",
            postgres: Some(
                "UPDATE trailkeep.events SET payload = jsonb_set(payload::jsonb, '{metadata,amount}', '1')::text \
                 WHERE org_id = 'acme' AND seq = 4",
            ),
            verdict: |ids| vec![format!("altered: seq 4 id {}", ids[3])],
            proofs: &[(4, "altered"), (5, "verified")],
        },
        Tamper {
            name: "row deleted",
            sqlite: "DELETE FROM events WHERE seq = 6",
            postgres: Some("DELETE FROM trailkeep.events WHERE org_id = 'acme' AND seq = 6"),
            verdict: |ids| vec![format!("missing: seq 6 id {}", ids[5])],
            proofs: &[(6, "missing")],
        },
        Tamper {
            name: "payloads swapped",
            sqlite: "CREATE TEMP TABLE pair AS SELECT seq, payload FROM events WHERE seq IN (3, 8); \
                     UPDATE events SET payload = (SELECT payload FROM pair WHERE pair.seq = 11 - events.seq) \
                     WHERE seq IN (3, 8)",
            postgres: Some(
                "UPDATE trailkeep.events e SET payload = p.payload \
                 FROM (SELECT seq, payload FROM trailkeep.events WHERE org_id = 'acme' AND seq IN (3, 8)) p \
                 WHERE e.org_id = 'acme' AND e.seq IN (3, 8) AND p.seq = 11 - e.seq",
            ),
            verdict: |ids| {
                vec![
                    format!("reordered: seq 3 id {} — holds the event sealed as seq 8", ids[2]),
                    format!("reordered: seq 8 id {} — holds the event sealed as seq 3", ids[7]),
                ]
            },
            proofs: &[(3, "altered"), (8, "altered")],
        },
        Tamper {
            name: "forged row",
            sqlite: "DROP INDEX events_org_seq; \
                     INSERT INTO events (org_id, seq, id, action, category, occurred_at, received_at, outcome, payload) \
                     SELECT org_id, seq, X'0190000000007000800000000000f00d', action, category, occurred_at, received_at, outcome, \
                            json_set(json_set(payload, '$.id', '01900000-0000-7000-8000-00000000f00d'), '$.metadata.amount', 5) \
                     FROM events WHERE seq = 5",
            // The partitioned table's unique key on (org_id, seq) cannot be dropped from one partition.
            postgres: None,
            verdict: |_| vec!["inserted: seq 5 id 01900000-0000-7000-8000-00000000f00d".to_owned()],
            proofs: &[(5, "verified")],
        },
        Tamper {
            name: "tail cut",
            sqlite: "DELETE FROM events WHERE seq > 9",
            postgres: Some("DELETE FROM trailkeep.events WHERE org_id = 'acme' AND seq > 9"),
            verdict: |ids| (10..=12).map(|s| format!("missing: seq {s} id {}", ids[s - 1])).collect(),
            proofs: &[(12, "missing")],
        },
    ];
    for case in cases {
        if crate::helpers::on_postgres() && case.postgres.is_none() {
            continue;
        }
        let (app, keys, files) = sealed_app(12).await;
        let ids = ids(&app).await;
        let app = app.tamper(case.sqlite, case.postgres.unwrap_or_default()).await;
        let (out, bundle) = export(&app, files.path(), "bundle.jsonl", &[]).await;
        assert!(out.status.success(), "{}: {}", case.name, text(&out));
        let verdict = verify(&app, &bundle, &keys, &[]).await;
        assert_eq!(verdict.status.code(), Some(1), "{}: {}", case.name, text(&verdict));
        for line in (case.verdict)(&ids) {
            assert!(text(&verdict).contains(&line), "{}: `{line}` not in\n{}", case.name, text(&verdict));
        }
        for (seq, status) in case.proofs {
            let (code, body) = proof_status(&app, &ids[seq - 1]).await;
            assert_eq!((code, body["status"].as_str()), (200, Some(*status)), "{} seq {seq}: {body}", case.name);
            assert_eq!(body["event_matches_leaf"], *status == "verified", "{}", case.name);
        }
        // Every export is recorded in the log it exports; after a cut tail, new events are numbered after
        // the sealed ones, never in the gap.
        let exported =
            app.admin.list_events(&[("organization_id", ORG), ("action", "audit_log.exported")]).await.unwrap();
        assert_eq!(exported.data.len(), 1, "{}", case.name);
        assert_eq!(exported.data[0].seq, 13, "{}", case.name);
        if case.name == "forged row" {
            let (code, body) = proof_status(&app, "01900000-0000-7000-8000-00000000f00d").await;
            assert_eq!((code, body["status"].as_str()), (200, Some("not_in_log")), "{body}");
        }
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_checkpoint_signature_is_refused_by_the_service_and_the_verifier() {
    let (app, keys, files) = sealed_app(10).await;
    let (_, bundle) = export(&app, files.path(), "good.jsonl", &[]).await;
    // Change one character of the signature's base64.
    let app = app
        .tamper(
            "UPDATE ledger.checkpoints SET note = substr(note, 1, length(note) - 8) || \
             CASE substr(note, length(note) - 7, 1) WHEN 'A' THEN 'B' ELSE 'A' END || substr(note, length(note) - 6)",
            "UPDATE trailkeep.checkpoints SET note = substr(note, 1, length(note) - 8) || \
             CASE substr(note, length(note) - 7, 1) WHEN 'A' THEN 'B' ELSE 'A' END || substr(note, length(note) - 6)",
        )
        .await;
    let r = app.admin.raw(Method::GET, &format!("/v1/checkpoint?organization_id={ORG}"), None, &[]).await.unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(r.json().unwrap()["error"]["code"], "checkpoint_invalid");
    let id = ids(&app).await[0].clone();
    assert_eq!(proof_status(&app, &id).await.0, 500);
    let (out, refused) = export(&app, files.path(), "refused.jsonl", &[]).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("does not verify"), "{}", text(&out));
    assert!(!refused.exists());

    // The same corruption in a bundle already exported: exit 3.
    let lines: Vec<String> = std::fs::read_to_string(&bundle).unwrap().lines().map(str::to_owned).collect();
    let mut proof: Value = serde_json::from_str(&lines[1]).unwrap();
    let note = proof["checkpoint"].as_str().unwrap().to_owned();
    let at = note.len() - 8;
    let flipped = if &note[at..at + 1] == "A" { "B" } else { "A" };
    proof["checkpoint"] = Value::String(format!("{}{flipped}{}", &note[..at], &note[at + 1..]));
    let mut tampered = lines.clone();
    tampered[1] = proof.to_string();
    let path = files.path().join("tampered.jsonl");
    std::fs::write(&path, tampered.join("\n") + "\n").unwrap();
    let verdict = verify(&app, &path, &keys, &[]).await;
    assert_eq!(verdict.status.code(), Some(3), "{}", text(&verdict));
    assert!(text(&verdict).contains("BAD SIGNATURE"), "{}", text(&verdict));

    // A bundle cut short: exit 5.
    let path = files.path().join("short.jsonl");
    std::fs::write(&path, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let verdict = verify(&app, &path, &keys, &[]).await;
    assert_eq!(verdict.status.code(), Some(5), "{}", text(&verdict));
    app.stop().await;
}
