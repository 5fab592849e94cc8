//! Handlers for the verifiable log: the latest signed checkpoint, inclusion proofs for events, and
//! consistency proofs between tree sizes. Proofs are computed by `trailkeep_core::merkle` from the
//! O(log n) tree nodes the store returns; hashes travel as standard base64.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use trailkeep_core::checkpoint::{Verifier, open_note};
use trailkeep_core::leaf::event_leaf_hash;
use trailkeep_core::merkle::{self, Hash, NodeId};
use trailkeep_core::time::format_millis;
use trailkeep_core::{Event, OrgId};
use trailkeep_store::{Receipt, StoredCheckpoint};

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

fn b64(hash: &Hash) -> String {
    STANDARD.encode(hash)
}

pub(crate) fn size_param(params: &[(String, String)], name: &str) -> Result<Option<u64>, ApiError> {
    crate::param(params, name)
        .map(|v| {
            v.parse::<u64>().map_err(|_| ApiError::bad_param(name, format!("{name} must be a whole number of events")))
        })
        .transpose()
}

fn checkpoint_json(org: &OrgId, c: &StoredCheckpoint) -> Value {
    json!({
        "organization_id": org.as_str(),
        "size": c.size,
        "root_hash": b64(&c.root),
        "note": c.note,
        "created_at": format_millis(c.created_at),
    })
}

pub(crate) async fn latest(state: &AppState, org: &OrgId) -> Result<StoredCheckpoint, ApiError> {
    state.store.latest_checkpoint(org).await?.ok_or_else(|| {
        ApiError::not_found(
            "this organisation has no signed checkpoint yet; one follows its first event within a second",
        )
    })
}

/// The checkpoint's origin, once its note is seen to verify with this deployment's keys. A note that does
/// not was altered in the ledger: the service refuses to hand it out as its own.
pub(crate) fn checked_checkpoint(state: &AppState, checkpoint: &StoredCheckpoint) -> Result<String, ApiError> {
    // Every key the deployment ever signed with: an old checkpoint carries only its own key's signature.
    let verifiers: Vec<Verifier> =
        state.signing.list(crate::now_ms()).iter().filter_map(|k| Verifier::parse(&k.verifier_key).ok()).collect();
    match open_note(&checkpoint.note, &verifiers) {
        Ok((body, _)) if body.size == checkpoint.size && body.root == checkpoint.root => Ok(body.origin),
        Ok(_) | Err(_) => {
            tracing::error!(size = checkpoint.size, "a stored checkpoint does not verify: the ledger was altered");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "checkpoint_invalid",
                format!(
                    "the stored checkpoint of {} events does not verify with this deployment's signing key; the ledger was altered — restore it from a backup",
                    checkpoint.size
                ),
            ))
        }
    }
}

/// Reads the named nodes, all of which a sealed tree of the sizes involved must hold.
pub(crate) async fn nodes(state: &AppState, org: &OrgId, ids: Vec<NodeId>) -> Result<HashMap<NodeId, Hash>, ApiError> {
    let found = state.store.tree_nodes(org, &ids).await?;
    ids.into_iter()
        .zip(found)
        .map(|(id, hash)| {
            hash.map(|h| (id, h))
                .ok_or_else(|| ApiError::internal(format!("tree node {id:?} of {org} is missing from the ledger")))
        })
        .collect()
}

pub(crate) fn within(size: u64, newest: &StoredCheckpoint, field: &str) -> Result<(), ApiError> {
    if size == 0 || size > newest.size {
        return Err(ApiError::bad_param(
            field,
            format!("{field} must lie between 1 and {}, the size of the newest checkpoint", newest.size),
        ));
    }
    Ok(())
}

/// `GET /v1/checkpoint`: the newest signed checkpoint of the caller's organisation.
pub async fn get_checkpoint(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = crate::query_pairs(params)?;
    // Project admins too: a checkpoint shows the log's size and root, which their inclusion proofs need.
    let org = principal.events_reader(&params)?.org;
    let checkpoint = latest(&state, &org).await?;
    checked_checkpoint(&state, &checkpoint)?;
    Ok(Json(checkpoint_json(&org, &checkpoint)))
}

/// How an event as stored now compares with what the log sealed for it.
fn status(receipt: &Receipt, event: Option<&Event>) -> Result<&'static str, ApiError> {
    Ok(match event {
        None => "missing",
        Some(e) if e.id == receipt.id && e.seq == receipt.seq => {
            if event_leaf_hash(e).map_err(ApiError::internal)? == receipt.leaf { "verified" } else { "altered" }
        }
        Some(_) => "altered",
    })
}

/// The inclusion proof of the sealed event `receipt` in the tree of `size` events, with the root it leads
/// to, the signed checkpoint of that size (when one was issued) and whether the event as stored now
/// (`event`, `None` when its row is gone) still hashes to its receipt.
pub async fn inclusion(
    state: &AppState,
    org: &OrgId,
    receipt: &Receipt,
    event: Option<&Event>,
    size: u64,
) -> Result<Value, ApiError> {
    let index = receipt.seq - 1;
    let mut ids = merkle::inclusion_proof_nodes(index, size).map_err(ApiError::internal)?;
    ids.extend(merkle::root_nodes(size));
    let map = nodes(state, org, ids).await?;
    let proof = merkle::inclusion_proof(index, size, &map).map_err(ApiError::internal)?;
    let root = merkle::root_at(size, &map).map_err(ApiError::internal)?;
    let checkpoint = state.store.checkpoint_at(org, size).await?;
    if let Some(c) = &checkpoint {
        checked_checkpoint(state, c)?;
    }
    let mut status = status(receipt, event)?;
    // An event retention deleted is pruned, not missing: the log says so in the event that recorded it.
    let mut pruned_by = None;
    if event.is_none() {
        pruned_by = state.store.sealed_events(org, receipt.seq, receipt.seq).await?.iter().find_map(|s| s.pruned_by);
        if pruned_by.is_some() {
            status = "pruned";
        }
    }
    Ok(json!({
        "id": receipt.id,
        "seq": receipt.seq,
        "status": status,
        "pruned_by": pruned_by,
        "leaf_index": index,
        "tree_size": size,
        "leaf_hash": b64(&receipt.leaf),
        // The stored event as it is now hashes to its receipt: it has not been altered since it was sealed.
        "event_matches_leaf": status == "verified",
        "root_hash": b64(&root),
        "proof": proof.iter().map(b64).collect::<Vec<_>>(),
        "checkpoint": checkpoint.map(|c| c.note),
    }))
}

/// What a proof request says of an event that has no receipt although a checkpoint covers its seq: the
/// log never held it.
fn not_in_log(event: &Event, size: u64) -> Value {
    json!({
        "id": event.id,
        "seq": event.seq,
        "status": "not_in_log",
        "tree_size": size,
        "event_matches_leaf": false,
    })
}

/// The proof of `event` against the newest checkpoint, or `None` while no checkpoint covers it yet.
pub async fn newest_inclusion(state: &AppState, org: &OrgId, event: &Event) -> Result<Option<Value>, ApiError> {
    let Some(newest) = state.store.latest_checkpoint(org).await? else { return Ok(None) };
    match state.store.receipt(org, event.id).await? {
        Some(r) if r.seq <= newest.size => Ok(Some(inclusion(state, org, &r, Some(event), newest.size).await?)),
        None if event.seq <= newest.size => Ok(Some(not_in_log(event, newest.size))),
        _ => Ok(None),
    }
}

/// `GET /v1/events/{id}/proof?tree_size=N`: the inclusion proof of one event in the tree of `N` events
/// (by default the newest checkpoint's). The event's receipt is the authority: an event whose row was
/// deleted still has its proof (`status: missing`), one whose row was altered is `altered`, and a row
/// the log never sealed is `not_in_log`.
pub async fn get_event_proof(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = crate::query_pairs(params)?;
    let scope = principal.events_reader(&params)?;
    let org = scope.org.clone();
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::bad_param("id", "an event id is a UUID"))?;
    let receipt = state.store.receipt(&org, id).await?;
    let event = state.store.get_event(&scope, id).await?;
    if scope.projects.is_some() && event.is_none() {
        // A receipt names no project: a project-limited reader is shown only events it can read.
        return Err(ApiError::not_found("no such event in this organisation"));
    }
    let Some(seq) = receipt.map(|r| r.seq).or(event.as_ref().map(|e| e.seq)) else {
        return Err(ApiError::not_found("no such event in this organisation"));
    };
    let newest = latest(&state, &org).await?;
    let size = size_param(&params, "tree_size")?.unwrap_or(newest.size);
    within(size, &newest, "tree_size")?;
    if seq > size {
        return Err(ApiError::bad_param(
            "tree_size",
            format!("event {id} has seq {seq}, beyond a tree of {size} events"),
        ));
    }
    match (receipt, event) {
        (Some(r), event) => Ok(Json(inclusion(&state, &org, &r, event.as_ref(), size).await?)),
        (None, Some(event)) => Ok(Json(not_in_log(&event, size))),
        (None, None) => Err(ApiError::not_found("no such event in this organisation")),
    }
}

/// `GET /v1/proofs/consistency?from=M&to=N`: the proof that the tree of `M` events is a prefix of the
/// tree of `N` events.
pub async fn get_consistency_proof(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = crate::query_pairs(params)?;
    let org = crate::auth::whole_log(principal.events_reader(&params)?)?;
    let newest = latest(&state, &org).await?;
    let from = size_param(&params, "from")?.ok_or_else(|| ApiError::bad_param("from", "from is required"))?;
    let to = size_param(&params, "to")?.unwrap_or(newest.size);
    within(from, &newest, "from")?;
    within(to, &newest, "to")?;
    if from > to {
        return Err(ApiError::bad_param("from", "from must not exceed to"));
    }
    let mut ids = merkle::consistency_proof_nodes(from, to).map_err(ApiError::internal)?;
    ids.extend(merkle::root_nodes(from));
    ids.extend(merkle::root_nodes(to));
    let map = nodes(&state, &org, ids).await?;
    let proof = merkle::consistency_proof(from, to, &map).map_err(ApiError::internal)?;
    Ok(Json(json!({
        "from": from,
        "to": to,
        "from_root_hash": b64(&merkle::root_at(from, &map).map_err(ApiError::internal)?),
        "to_root_hash": b64(&merkle::root_at(to, &map).map_err(ApiError::internal)?),
        "proof": proof.iter().map(b64).collect::<Vec<_>>(),
    })))
}
