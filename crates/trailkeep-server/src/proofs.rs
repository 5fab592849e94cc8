//! Handlers for the verifiable log: the latest signed checkpoint, inclusion proofs for events, and
//! consistency proofs between tree sizes. Proofs are computed by `trailkeep_core::merkle` from the
//! O(log n) tree nodes the store returns; hashes travel as standard base64.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use trailkeep_core::leaf::event_leaf_hash;
use trailkeep_core::merkle::{self, Hash, NodeId};
use trailkeep_core::time::format_millis;
use trailkeep_core::{Event, OrgId};
use trailkeep_store::StoredCheckpoint;

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

fn b64(hash: &Hash) -> String {
    STANDARD.encode(hash)
}

fn size_param(params: &[(String, String)], name: &str) -> Result<Option<u64>, ApiError> {
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

async fn latest(state: &AppState, org: &OrgId) -> Result<StoredCheckpoint, ApiError> {
    state.store.latest_checkpoint(org).await?.ok_or_else(|| {
        ApiError::not_found(
            "this organisation has no signed checkpoint yet; one follows its first event within a second",
        )
    })
}

/// Reads the named nodes, all of which a sealed tree of the sizes involved must hold.
async fn nodes(state: &AppState, org: &OrgId, ids: Vec<NodeId>) -> Result<HashMap<NodeId, Hash>, ApiError> {
    let found = state.store.tree_nodes(org, &ids).await?;
    ids.into_iter()
        .zip(found)
        .map(|(id, hash)| {
            hash.map(|h| (id, h))
                .ok_or_else(|| ApiError::internal(format!("tree node {id:?} of {org} is missing from the ledger")))
        })
        .collect()
}

fn within(size: u64, newest: &StoredCheckpoint, field: &str) -> Result<(), ApiError> {
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
    let org = principal.events_reader(&params)?;
    let checkpoint = latest(&state, &org).await?;
    Ok(Json(checkpoint_json(&org, &checkpoint)))
}

/// The inclusion proof of `event` in the tree of `size` events, with its receipt, the root it leads to,
/// the signed checkpoint of that size (when one was issued) and whether the event as stored now still
/// hashes to its receipt.
pub async fn inclusion(state: &AppState, org: &OrgId, event: &Event, size: u64) -> Result<Value, ApiError> {
    let index = event.seq - 1;
    let mut ids = merkle::inclusion_proof_nodes(index, size).map_err(ApiError::internal)?;
    ids.extend(merkle::root_nodes(size));
    ids.push(NodeId::new(0, index));
    let map = nodes(state, org, ids).await?;
    let proof = merkle::inclusion_proof(index, size, &map).map_err(ApiError::internal)?;
    let root = merkle::root_at(size, &map).map_err(ApiError::internal)?;
    let receipt = map[&NodeId::new(0, index)];
    let current = event_leaf_hash(event).map_err(ApiError::internal)?;
    let checkpoint = state.store.checkpoint_at(org, size).await?;
    Ok(json!({
        "id": event.id,
        "seq": event.seq,
        "leaf_index": index,
        "tree_size": size,
        "leaf_hash": b64(&receipt),
        // The stored event as it is now hashes to its receipt: it has not been altered since it was sealed.
        "event_matches_leaf": current == receipt,
        "root_hash": b64(&root),
        "proof": proof.iter().map(b64).collect::<Vec<_>>(),
        "checkpoint": checkpoint.map(|c| c.note),
    }))
}

/// The proof of `event` against the newest checkpoint, or `None` while no checkpoint covers it yet.
pub async fn newest_inclusion(state: &AppState, org: &OrgId, event: &Event) -> Result<Option<Value>, ApiError> {
    match state.store.latest_checkpoint(org).await? {
        Some(newest) if newest.size >= event.seq => Ok(Some(inclusion(state, org, event, newest.size).await?)),
        _ => Ok(None),
    }
}

/// `GET /v1/events/{id}/proof?tree_size=N`: the inclusion proof of one event in the tree of `N` events
/// (by default the newest checkpoint's).
pub async fn get_event_proof(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = crate::query_pairs(params)?;
    let org = principal.events_reader(&params)?;
    let event = crate::fetch_event(&state, &org, &id).await?;
    let newest = latest(&state, &org).await?;
    let size = size_param(&params, "tree_size")?.unwrap_or(newest.size);
    within(size, &newest, "tree_size")?;
    if event.seq > size {
        return Err(ApiError::bad_param(
            "tree_size",
            format!("event {} has seq {}, beyond a tree of {size} events", event.id, event.seq),
        ));
    }
    Ok(Json(inclusion(&state, &org, &event, size).await?))
}

/// `GET /v1/proofs/consistency?from=M&to=N`: the proof that the tree of `M` events is a prefix of the
/// tree of `N` events.
pub async fn get_consistency_proof(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = crate::query_pairs(params)?;
    let org = principal.events_reader(&params)?;
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
