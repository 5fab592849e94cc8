//! How events map onto the `events` table: the indexed columns of every filter, plus the event's JSON,
//! inserted many rows at a time as one array per column (`INSERT … SELECT FROM unnest(…)`).
//!
//! The columns and their meaning are the SQLite engine's (`trailkeep-sqlite/src/row.rs`), so that a
//! filter selects the same events on both.

use std::net::IpAddr;

use tokio_postgres::Transaction;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use trailkeep_core::Event;

/// An address as 16 bytes, IPv4 mapped into IPv6, so that a CIDR block is one byte range.
pub fn ip_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A value for a text column. PostgreSQL's text cannot hold NUL, which event fields may (the payload
/// keeps them, escaped in its JSON): in the indexed columns, and in the values filters compare them
/// with, NUL becomes U+FFFD.
pub fn column_text(s: &str) -> String {
    if s.contains('\0') { s.replace('\0', "\u{fffd}") } else { s.to_owned() }
}

fn text(s: &Option<String>) -> Option<String> {
    s.as_deref().map(column_text)
}

fn int(v: Option<u64>) -> Option<i64> {
    v.map(|v| v.min(i64::MAX as u64) as i64)
}

/// Rows to insert, column by column.
#[derive(Default)]
pub struct EventRows {
    org_id: Vec<String>,
    seq: Vec<i64>,
    id: Vec<uuid::Uuid>,
    project_id: Vec<Option<String>>,
    action: Vec<String>,
    category: Vec<String>,
    occurred_at: Vec<i64>,
    received_at: Vec<i64>,
    actor_type: Vec<Option<String>>,
    actor_id: Vec<Option<String>>,
    actor_email: Vec<Option<String>>,
    resource_type: Vec<Option<String>>,
    resource_id: Vec<Option<String>>,
    outcome: Vec<i16>,
    ip: Vec<Option<Vec<u8>>>,
    ai_model: Vec<Option<String>>,
    ai_provider: Vec<Option<String>>,
    ai_status: Vec<Option<i64>>,
    ai_failed: Vec<Option<i16>>,
    ai_api_key: Vec<Option<String>>,
    ai_cost: Vec<Option<f64>>,
    ai_tokens: Vec<Option<i64>>,
    ai_latency: Vec<Option<i64>>,
    payload: Vec<String>,
}

const INSERT: &str = "INSERT INTO events (org_id, seq, id, project_id, action, category, occurred_at, received_at, \
     actor_type, actor_id, actor_email, resource_type, resource_id, outcome, ip, ai_model, ai_provider, ai_status, \
     ai_failed, ai_api_key, ai_cost, ai_tokens, ai_latency, payload) \
     SELECT * FROM unnest($1::text[], $2::int8[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::int8[], \
     $8::int8[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::int2[], $15::bytea[], \
     $16::text[], $17::text[], $18::int8[], $19::int2[], $20::text[], $21::float8[], $22::int8[], $23::int8[], \
     $24::text[])";

const COPY: &str = "COPY events (org_id, seq, id, project_id, action, category, occurred_at, received_at, \
     actor_type, actor_id, actor_email, resource_type, resource_id, outcome, ip, ai_model, ai_provider, ai_status, \
     ai_failed, ai_api_key, ai_cost, ai_tokens, ai_latency, payload) FROM STDIN (FORMAT binary)";

/// The types of [`COPY`]'s columns, in order.
const COPY_TYPES: [Type; 24] = [
    Type::TEXT,
    Type::INT8,
    Type::UUID,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT2,
    Type::BYTEA,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT2,
    Type::TEXT,
    Type::FLOAT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
];

impl EventRows {
    pub fn len(&self) -> usize {
        self.seq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seq.is_empty()
    }

    /// Adds a stored event and its JSON.
    pub fn push(&mut self, event: &Event, payload: String) {
        let actor = event.actor.as_ref();
        let target = event.primary_target();
        let ai = event.ai.as_ref();
        self.org_id.push(event.organization_id.to_string());
        self.seq.push(event.seq as i64);
        self.id.push(event.id);
        self.project_id.push(event.project_id.as_ref().map(|p| p.to_string()));
        self.action.push(event.action.to_string());
        self.category.push(column_text(&event.category));
        self.occurred_at.push(event.occurred_at);
        self.received_at.push(event.received_at);
        self.actor_type.push(actor.map(|a| a.actor_type.as_str().to_owned()));
        self.actor_id.push(actor.and_then(|a| text(&a.id)));
        self.actor_email.push(actor.and_then(|a| text(&a.email)));
        self.resource_type.push(target.map(|t| column_text(&t.target_type)));
        self.resource_id.push(target.map(|t| column_text(&t.id)));
        self.outcome.push(match event.outcome {
            trailkeep_core::Outcome::Success => 0,
            trailkeep_core::Outcome::Failure => 1,
        });
        self.ip.push(event.context.ip.map(|ip| ip_key(ip).to_vec()));
        self.ai_model.push(ai.and_then(|a| text(&a.model)));
        self.ai_provider.push(ai.and_then(|a| text(&a.provider)));
        self.ai_status.push(ai.and_then(|a| int(a.status_code.map(u64::from))));
        self.ai_failed.push(ai.map(|a| i16::from(a.error.is_some() || a.status_code.is_some_and(|c| c >= 400))));
        self.ai_api_key.push(ai.and_then(|a| text(&a.api_key_id)));
        self.ai_cost.push(ai.and_then(|a| a.cost_usd));
        self.ai_tokens.push(ai.and_then(|a| int(a.total_tokens())));
        self.ai_latency.push(ai.and_then(|a| int(a.latency_ms)));
        self.payload.push(payload);
    }

    /// Inserts every row in one statement.
    pub async fn insert(&self, tx: &Transaction<'_>) -> Result<u64, tokio_postgres::Error> {
        if self.is_empty() {
            return Ok(0);
        }
        tx.execute(
            INSERT,
            &[
                &self.org_id,
                &self.seq,
                &self.id,
                &self.project_id,
                &self.action,
                &self.category,
                &self.occurred_at,
                &self.received_at,
                &self.actor_type,
                &self.actor_id,
                &self.actor_email,
                &self.resource_type,
                &self.resource_id,
                &self.outcome,
                &self.ip,
                &self.ai_model,
                &self.ai_provider,
                &self.ai_status,
                &self.ai_failed,
                &self.ai_api_key,
                &self.ai_cost,
                &self.ai_tokens,
                &self.ai_latency,
                &self.payload,
            ],
        )
        .await
    }

    /// Writes every row with a binary `COPY`: the same rows [`EventRows::insert`] inserts. `COPY FROM`
    /// refuses a role that row-level security applies to, so this is for the tables' owner: a bulk load,
    /// or the benchmark's ceiling for the writer's inserts.
    pub async fn copy(&self, tx: &Transaction<'_>) -> Result<u64, tokio_postgres::Error> {
        if self.is_empty() {
            return Ok(0);
        }
        let sink = tx.copy_in(COPY).await?;
        let writer = BinaryCopyInWriter::new(sink, &COPY_TYPES);
        futures::pin_mut!(writer);
        for i in 0..self.len() {
            let row: [&(dyn ToSql + Sync); 24] = [
                &self.org_id[i],
                &self.seq[i],
                &self.id[i],
                &self.project_id[i],
                &self.action[i],
                &self.category[i],
                &self.occurred_at[i],
                &self.received_at[i],
                &self.actor_type[i],
                &self.actor_id[i],
                &self.actor_email[i],
                &self.resource_type[i],
                &self.resource_id[i],
                &self.outcome[i],
                &self.ip[i],
                &self.ai_model[i],
                &self.ai_provider[i],
                &self.ai_status[i],
                &self.ai_failed[i],
                &self.ai_api_key[i],
                &self.ai_cost[i],
                &self.ai_tokens[i],
                &self.ai_latency[i],
                &self.payload[i],
            ];
            writer.as_mut().write(&row).await?;
        }
        writer.finish().await
    }
}
