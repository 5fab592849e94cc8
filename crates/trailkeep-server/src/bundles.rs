//! `GET /v1/bundle`: self-proving exports (the format is `trailkeep_core::bundle`'s).
//!
//! Without filters the bundle is a *range*: every event of `from_seq..=to_seq` (by default the whole
//! tree of the newest checkpoint) with the range proof that recomputes the checkpoint's root from their
//! receipts. With any filter it is a *selection*: the matching events, each with its own inclusion proof.
//! The body is streamed, page by page, so a bundle of millions of events costs constant memory; a store
//! failure half-way ends the stream without its end line, which every verifier notices.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use trailkeep_core::bundle::{self, BundleKind, ConsistencyProof, Manifest, ProofLine, Receipt, entry_line};
use trailkeep_core::cursor::Order;
use trailkeep_core::merkle::{self, Hash, NodeId};
use trailkeep_core::time::format_millis;
use trailkeep_core::{Event, Filter, OrgId};
use trailkeep_store::{EventQuery, ReadScope, SealedEvent, StoredCheckpoint};

use crate::audit::Origin;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::proofs::{checked_checkpoint, latest, nodes, size_param, within};
use crate::{AppState, now_ms};

/// Seqs read per store call while streaming a range.
const PAGE: u64 = 2000;

/// The bundle's own parameters; every other one must be a filter.
const BUNDLE_PARAMS: &[&str] = &["organization_id", "from_seq", "to_seq", "tree_size", "since_size"];

type Line = Result<String, std::io::Error>;

fn receipt(r: &trailkeep_store::Receipt) -> Receipt {
    Receipt { seq: r.seq, id: r.id, received_at: format_millis(r.received_at), leaf_hash: r.leaf }
}

/// The canonical bytes of a stored payload. A store that keeps payloads in canonical form (SQLite does)
/// hands over the leaf data itself, which its leaf hash confirms at a fraction of the cost of
/// canonicalising again; any other payload is canonicalised, and one that no longer parses is exported
/// as it is, and fails verification, which is the truth about it.
fn canonical<'a>(payload: &'a str, leaf: &Hash) -> Cow<'a, [u8]> {
    if merkle::leaf_hash(payload.as_bytes()) == *leaf {
        return Cow::Borrowed(payload.as_bytes());
    }
    serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .map(|v| Cow::Owned(trailkeep_core::leaf::canonical(&v)))
        .unwrap_or(Cow::Borrowed(payload.as_bytes()))
}

/// `GET /v1/bundle`.
pub async fn get_bundle(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    caller: Origin,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = crate::query_pairs(params)?;
    if let Some((key, _)) = params.iter().find(|(k, _)| {
        !BUNDLE_PARAMS.contains(&k.as_str()) && !trailkeep_core::filter::FILTER_PARAMS.contains(&k.as_str())
    }) {
        return Err(ApiError::bad_param(key, format!("unknown parameter `{key}`; see docs/api.md")));
    }
    let scope = principal.events_reader(&params)?;
    let org = scope.org.clone();
    // A project admin may export a selection of their projects' events, each with its own proof; a range
    // or a consistency proof spans every project's events.
    let is_selection = params.iter().any(|(k, v)| !BUNDLE_PARAMS.contains(&k.as_str()) && !v.trim().is_empty());
    if !is_selection || crate::param(&params, "since_size").is_some() {
        crate::auth::whole_log(scope.clone())?;
    }
    let newest = latest(&state, &org).await?;
    let checkpoint = match size_param(&params, "tree_size")? {
        None => newest.clone(),
        Some(size) => {
            within(size, &newest, "tree_size")?;
            state.store.checkpoint_at(&org, size).await?.ok_or_else(|| {
                ApiError::bad_param("tree_size", format!("no checkpoint was signed for exactly {size} events"))
            })?
        }
    };
    let origin = checked_checkpoint(&state, &checkpoint)?;
    let size = checkpoint.size;

    let mut consistency = Vec::new();
    for (_, value) in params.iter().filter(|(k, _)| k == "since_size") {
        let from =
            value.parse::<u64>().ok().filter(|m| (1..=size).contains(m)).ok_or_else(|| {
                ApiError::bad_param("since_size", format!("since_size must lie between 1 and {size}"))
            })?;
        let map = nodes(&state, &org, merkle::consistency_proof_nodes(from, size).map_err(ApiError::internal)?).await?;
        let proof = merkle::consistency_proof(from, size, &map).map_err(ApiError::internal)?;
        consistency.push(ConsistencyProof { from_size: from, proof: proof.iter().map(bundle::encode_hash).collect() });
    }

    let filter_params: Vec<(String, String)> =
        params.iter().filter(|(k, v)| !BUNDLE_PARAMS.contains(&k.as_str()) && !v.trim().is_empty()).cloned().collect();
    let selection = !filter_params.is_empty();
    let mut manifest = Manifest {
        format: bundle::FORMAT.to_owned(),
        version: bundle::VERSION,
        organization_id: org.to_string(),
        origin,
        kind: BundleKind::Range,
        proves: BundleKind::Range.proves().to_owned(),
        tree_size: size,
        from_seq: None,
        to_seq: None,
        filter: None,
        created_at: format_millis(now_ms()),
    };
    let mut proof_line = ProofLine { checkpoint: checkpoint.note.clone(), range_proof: None, consistency };

    let (tx, rx) = tokio::sync::mpsc::channel::<Line>(16);
    let file_name;
    if selection {
        if crate::param(&params, "from_seq").is_some() || crate::param(&params, "to_seq").is_some() {
            return Err(ApiError::bad_param(
                "from_seq",
                "a seq range exports every event of the range; filters choose events instead — use one or the other",
            ));
        }
        let filter = Filter::from_params(&filter_params, now_ms()).map_err(|e| {
            let code = if e.field == "q" { "invalid_query" } else { "invalid_parameter" };
            ApiError::new(StatusCode::BAD_REQUEST, code, e.message.clone()).with_field(e.field.clone())
        })?;
        manifest.kind = BundleKind::Selection;
        manifest.proves = BundleKind::Selection.proves().to_owned();
        manifest.filter = Some(filter_params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"));
        file_name = format!("{org}-selection-{size}.bundle.jsonl");
        record_export(&state, &principal, &caller, &manifest).await?;
        send_head(&tx, &manifest, &proof_line).await;
        tokio::spawn(stream_selection(state.clone(), scope, checkpoint, filter, tx));
    } else {
        let from = size_param(&params, "from_seq")?.unwrap_or(1);
        let to = size_param(&params, "to_seq")?.unwrap_or(size);
        if from == 0 || from > size {
            return Err(ApiError::bad_param("from_seq", format!("from_seq must lie between 1 and {size}")));
        }
        if to < from || to > size {
            return Err(ApiError::bad_param("to_seq", format!("to_seq must lie between from_seq and {size}")));
        }
        let map =
            nodes(&state, &org, merkle::range_proof_nodes(from - 1, to, size).map_err(ApiError::internal)?).await?;
        let proof = merkle::range_proof(from - 1, to, size, &map).map_err(ApiError::internal)?;
        proof_line.range_proof = Some(proof.iter().map(bundle::encode_hash).collect());
        manifest.from_seq = Some(from);
        manifest.to_seq = Some(to);
        file_name = format!("{org}-{from}-{to}.bundle.jsonl");
        record_export(&state, &principal, &caller, &manifest).await?;
        send_head(&tx, &manifest, &proof_line).await;
        tokio::spawn(stream_range(state.clone(), org, from, to, tx));
    }

    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|l| (l, rx)) }));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file_name}\"")),
        ],
        body,
    )
        .into_response())
}

/// Every export of the log is itself recorded in it, before the first byte leaves.
async fn record_export(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    manifest: &Manifest,
) -> Result<(), ApiError> {
    let org = OrgId::parse(&manifest.organization_id).map_err(ApiError::internal)?;
    let mut metadata = serde_json::Map::new();
    metadata.insert("format".into(), "bundle".into());
    metadata.insert("kind".into(), serde_json::to_value(manifest.kind).map_err(ApiError::internal)?);
    metadata.insert("tree_size".into(), manifest.tree_size.into());
    for (key, value) in [("from_seq", manifest.from_seq), ("to_seq", manifest.to_seq)] {
        if let Some(v) = value {
            metadata.insert(key.into(), v.into());
        }
    }
    if let Some(filter) = &manifest.filter {
        metadata.insert("filter".into(), filter.clone().into());
    }
    let description = format!("A verifiable export of {} events was downloaded", manifest.tree_size);
    let event = crate::audit::export_event(&org, description, metadata, principal.actor(), origin);
    state.store.append(trailkeep_store::AppendRequest { events: vec![event], idempotency: None }).await?;
    Ok(())
}

async fn send_head(tx: &tokio::sync::mpsc::Sender<Line>, manifest: &Manifest, proofs: &ProofLine) {
    for line in [serde_json::to_string(manifest), serde_json::to_string(proofs)] {
        // Serialising plain structs of strings and numbers cannot fail.
        let _ = tx.send(Ok(line.unwrap_or_default() + "\n")).await;
    }
}

async fn fail(tx: &tokio::sync::mpsc::Sender<Line>, what: impl std::fmt::Display) {
    tracing::error!(error = %what, "a bundle export stopped half-way");
    let _ = tx.send(Err(std::io::Error::other(what.to_string()))).await;
}

async fn stream_range(state: Arc<AppState>, org: OrgId, from: u64, to: u64, tx: tokio::sync::mpsc::Sender<Line>) {
    let mut count = 0u64;
    let mut start = from;
    while start <= to {
        let end = to.min(start + PAGE - 1);
        let page: Vec<SealedEvent> = match state.store.sealed_events(&org, start, end).await {
            Ok(page) => page,
            Err(e) => return fail(&tx, e).await,
        };
        let mut chunk = String::with_capacity(page.len() * 700);
        for sealed in &page {
            let line = match (&sealed.payload, sealed.pruned_by) {
                (None, Some(by)) => bundle::pruned_entry_line(&receipt(&sealed.receipt), by),
                (payload, _) => {
                    let bytes = payload.as_deref().map(|p| canonical(p, &sealed.receipt.leaf));
                    entry_line(&receipt(&sealed.receipt), None, bytes.as_deref())
                }
            };
            chunk.push_str(&line);
            chunk.push('\n');
            count += 1;
        }
        if tx.send(Ok(chunk)).await.is_err() {
            return; // The client went away.
        }
        start = end + 1;
    }
    let _ = tx.send(Ok(bundle::end_line(count) + "\n")).await;
}

async fn stream_selection(
    state: Arc<AppState>,
    scope: ReadScope,
    checkpoint: StoredCheckpoint,
    filter: Filter,
    tx: tokio::sync::mpsc::Sender<Line>,
) {
    let size = checkpoint.size;
    let org = scope.org.clone();
    let mut query = EventQuery { filter, order: Order::Asc, limit: 500, after: None };
    let mut count = 0u64;
    loop {
        let page = match state.store.list_events(&scope, &query).await {
            Ok(page) => page,
            Err(e) => return fail(&tx, e).await,
        };
        let mut chunk = String::new();
        for event in &page.events {
            match selected_entry(&state, &org, event, size).await {
                Ok(Some(line)) => {
                    chunk.push_str(&line);
                    chunk.push('\n');
                    count += 1;
                }
                // Not sealed into this checkpoint's tree (newer, or never): not part of the bundle.
                Ok(None) => {}
                Err(e) => return fail(&tx, e.message).await,
            }
        }
        if !chunk.is_empty() && tx.send(Ok(chunk)).await.is_err() {
            return;
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    let _ = tx.send(Ok(bundle::end_line(count) + "\n")).await;
}

/// The entry of one selected event: its receipt, its inclusion proof in the tree of `size` events, and
/// its canonical bytes as stored.
async fn selected_entry(state: &AppState, org: &OrgId, event: &Event, size: u64) -> Result<Option<String>, ApiError> {
    let Some(r) = state.store.receipt(org, event.id).await? else { return Ok(None) };
    if r.seq > size {
        return Ok(None);
    }
    let map: HashMap<NodeId, Hash> =
        nodes(state, org, merkle::inclusion_proof_nodes(r.seq - 1, size).map_err(ApiError::internal)?).await?;
    let proof = merkle::inclusion_proof(r.seq - 1, size, &map).map_err(ApiError::internal)?;
    let bytes = trailkeep_core::leaf::leaf_bytes(event).map_err(ApiError::internal)?;
    Ok(Some(entry_line(&receipt(&r), Some(&proof), Some(&bytes))))
}
