//! A typed async client for Trailkeep's HTTP API.
//!
//! Every ingest call carries an `Idempotency-Key`, generated unless the caller gives one, and is retried
//! with the same key on connection failures, 429 and 503 (honouring `Retry-After`), so a retry can never
//! store a batch twice. [`Batcher`] groups single events into batches of up to 1,000. The CLI and the
//! integration tests use this crate, so it is exercised by every test.

use std::time::Duration;

pub use reqwest::Method;
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use trailkeep_wire::{
    CheckpointKeyInfo, CheckpointKeyList, CreateEventsResponse, CreateKeyRequest, CreatedKey, ErrorBody, Event,
    EventAck, EventPage, KeyInfo, KeyList, RotateCheckpointKeyRequest, RotatedCheckpointKey,
};
use uuid::Uuid;

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The service answered with an error envelope.
    #[error("{status}: {code}: {message}{}", field.as_ref().map(|f| format!(" (field `{f}`)")).unwrap_or_default())]
    Api { status: u16, code: String, message: String, field: Option<String> },
    /// The service could not be reached, or the connection broke.
    #[error("cannot reach {url}: {message}")]
    Transport { url: String, message: String },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the service: {0}")]
    Decode(String),
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// How ingest calls are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy { attempts: 8, first_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(5) }
    }
}

/// An answer as it came, for callers (and tests) that want the status and headers.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<serde_json::Value, ClientError> {
        serde_json::from_slice(&self.body).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

/// The outcome of one ingest call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub acks: Vec<EventAck>,
    /// The service recognised the idempotency key and stored nothing new.
    pub replayed: bool,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never print it.
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Client {
    /// A client for the service at `base_url` (`http://127.0.0.1:8080`), authenticating with `api_key`.
    pub fn new(base_url: &str, api_key: Option<String>) -> Result<Client, ClientError> {
        let base = base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Invalid(format!(
                "the server URL must start with http:// or https://, not `{base}`"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        Ok(Client { http, base, key: api_key, retry: RetryPolicy::default() })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    pub fn with_key(&self, api_key: impl Into<String>) -> Client {
        Client { key: Some(api_key.into()), ..self.clone() }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends a request and returns whatever came back, without interpreting the status.
    pub async fn raw(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<RawResponse, ClientError> {
        let url = format!("{}{}", self.base, path_and_query);
        let mut request = self.http.request(method, &url);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Transport { url: self.base.clone(), message: error_chain(&e) })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let body = response
            .bytes()
            .await
            .map_err(|e| ClientError::Transport { url: self.base.clone(), message: error_chain(&e) })?
            .to_vec();
        Ok(RawResponse { status, headers, body })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let headers: &[(&str, &str)] = if body.is_some() { &[("content-type", "application/json")] } else { &[] };
        let response = self.raw(method, path, body, headers).await?;
        decode(&response)
    }

    /// Sends one batch (up to 1,000 events) with a fresh idempotency key, retrying safely.
    pub async fn send_events<T: Serialize>(&self, events: &[T]) -> Result<Sent, ClientError> {
        let key = Uuid::now_v7().to_string();
        self.send_events_with_key(events, &key).await
    }

    /// Sends one batch under the caller's idempotency key, retrying with the same key.
    pub async fn send_events_with_key<T: Serialize>(
        &self,
        events: &[T],
        idempotency_key: &str,
    ) -> Result<Sent, ClientError> {
        #[derive(Serialize)]
        struct Batch<'a, T> {
            events: &'a [T],
        }
        let body = serde_json::to_vec(&Batch { events }).map_err(|e| ClientError::Invalid(e.to_string()))?;
        self.send_body(body, idempotency_key).await
    }

    /// Sends an already-serialised body (one event or `{"events": [...]}`), retrying with the same key.
    pub async fn send_body(&self, body: Vec<u8>, idempotency_key: &str) -> Result<Sent, ClientError> {
        let mut backoff = self.retry.first_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .raw(
                    Method::POST,
                    "/v1/events",
                    Some(body.clone()),
                    &[("content-type", "application/json"), ("idempotency-key", idempotency_key)],
                )
                .await;
            let wait = match &result {
                Err(ClientError::Transport { .. }) => Some(backoff),
                Ok(r) if r.status == 429 || r.status == 503 => {
                    let hinted = r.header("retry-after").and_then(|v| v.parse::<u64>().ok()).map(Duration::from_secs);
                    Some(hinted.unwrap_or(backoff).min(self.retry.max_backoff))
                }
                _ => None,
            };
            match wait {
                Some(wait) if attempt < self.retry.attempts => {
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(self.retry.max_backoff);
                }
                _ => {
                    let response = result?;
                    let replayed = response.header("idempotent-replayed") == Some("true");
                    let parsed: CreateEventsResponse = decode(&response)?;
                    return Ok(Sent { acks: parsed.events, replayed });
                }
            }
        }
    }

    /// One page of events; `params` are the query parameters of `GET /v1/events`.
    pub async fn list_events(&self, params: &[(&str, &str)]) -> Result<EventPage, ClientError> {
        self.call(Method::GET, &format!("/v1/events{}", query_string(params)), None).await
    }

    /// Every event matching `params`, following cursors page by page.
    pub async fn list_all_events(&self, params: &[(&str, &str)]) -> Result<Vec<Event>, ClientError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut p: Vec<(&str, &str)> = params.to_vec();
            if let Some(c) = &cursor {
                p.push(("cursor", c));
            }
            let page = self.list_events(&p).await?;
            all.extend(page.data);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(all),
            }
        }
    }

    pub async fn get_event(&self, id: &str, organization_id: Option<&str>) -> Result<Event, ClientError> {
        let params: Vec<(&str, &str)> = organization_id.map(|o| ("organization_id", o)).into_iter().collect();
        self.call(Method::GET, &format!("/v1/events/{}{}", encode(id), query_string(&params)), None).await
    }

    pub async fn create_key(&self, request: &CreateKeyRequest) -> Result<CreatedKey, ClientError> {
        let body = serde_json::to_vec(request).map_err(|e| ClientError::Invalid(e.to_string()))?;
        self.call(Method::POST, "/v1/keys", Some(body)).await
    }

    pub async fn list_keys(&self, organization_id: Option<&str>) -> Result<Vec<KeyInfo>, ClientError> {
        let params: Vec<(&str, &str)> = organization_id.map(|o| ("organization_id", o)).into_iter().collect();
        let list: KeyList = self.call(Method::GET, &format!("/v1/keys{}", query_string(&params)), None).await?;
        Ok(list.data)
    }

    pub async fn revoke_key(&self, id: &str) -> Result<KeyInfo, ClientError> {
        self.call(Method::DELETE, &format!("/v1/keys/{}", encode(id)), None).await
    }

    /// The verifier key of the deployment's checkpoint signing key, one line in signed-note format.
    pub async fn checkpoint_key(&self) -> Result<String, ClientError> {
        let r = self.raw(Method::GET, "/v1/checkpoint-key", None, &[]).await?;
        if r.status != 200 {
            return decode::<serde_json::Value>(&r).map(|_| String::new());
        }
        String::from_utf8(r.body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Every key that ever signed the deployment's checkpoints, oldest first, the active one included.
    pub async fn checkpoint_keys(&self) -> Result<Vec<CheckpointKeyInfo>, ClientError> {
        let list: CheckpointKeyList = self.call(Method::GET, "/v1/checkpoint-keys", None).await?;
        Ok(list.data)
    }

    /// Replaces the checkpoint signing key (platform admin key only); the old key keeps signing next to
    /// the new one for `overlap` (seconds, or a duration such as `24h`; the service's default when `None`).
    pub async fn rotate_checkpoint_key(&self, overlap: Option<&str>) -> Result<RotatedCheckpointKey, ClientError> {
        let request = RotateCheckpointKeyRequest { overlap: overlap.map(str::to_owned) };
        let body = serde_json::to_vec(&request).map_err(|e| ClientError::Invalid(e.to_string()))?;
        self.call(Method::POST, "/v1/checkpoint-key/rotate", Some(body)).await
    }

    /// The newest signed checkpoint of the organisation (`GET /v1/checkpoint`): `size`, `root_hash`, `note`.
    pub async fn checkpoint(&self, organization_id: Option<&str>) -> Result<serde_json::Value, ClientError> {
        let query = organization_id.map(|o| format!("?organization_id={}", encode(o))).unwrap_or_default();
        self.call(Method::GET, &format!("/v1/checkpoint{query}"), None).await
    }

    /// The proof that the tree of `from` events is a prefix of the tree of `to` events.
    pub async fn consistency_proof(
        &self,
        from: u64,
        to: u64,
        organization_id: Option<&str>,
    ) -> Result<serde_json::Value, ClientError> {
        let org = organization_id.map(|o| format!("&organization_id={}", encode(o))).unwrap_or_default();
        self.call(Method::GET, &format!("/v1/proofs/consistency?from={from}&to={to}{org}"), None).await
    }

    /// Streams the body of a `GET` to `sink` as it arrives, for bundles and exports of any size: no total
    /// time limit applies, and nothing is held in memory. Returns the bytes received.
    pub async fn download(
        &self,
        path_and_query: &str,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<u64, ClientError> {
        let url = format!("{}{}", self.base, path_and_query);
        let transport = |e: reqwest::Error| ClientError::Transport { url: self.base.clone(), message: error_chain(&e) };
        let mut request = self.http.get(&url).timeout(Duration::from_secs(7 * 24 * 3600));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let body = response.bytes().await.map_err(transport)?.to_vec();
            return decode::<serde_json::Value>(&RawResponse { status, headers: Vec::new(), body }).map(|_| 0);
        }
        let mut received = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            sink(&chunk).map_err(|e| ClientError::Invalid(format!("cannot write what was received: {e}")))?;
            received += chunk.len() as u64;
        }
        Ok(received)
    }

    /// A `GET` of the admin API (organisations, projects, members), decoded.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None).await
    }

    /// A `POST`, `PUT` or `PATCH` of the admin API with a JSON body, decoded.
    pub async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Invalid(e.to_string()))?;
        self.call(method, path, Some(body)).await
    }

    /// A `DELETE`; any 2xx answer is success.
    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        let r = self.raw(Method::DELETE, path, None, &[]).await?;
        if (200..300).contains(&r.status) { Ok(()) } else { decode::<serde_json::Value>(&r).map(|_| ()) }
    }

    /// `GET /readyz` answered 200.
    pub async fn ready(&self) -> Result<(), ClientError> {
        let r = self.raw(Method::GET, "/readyz", None, &[]).await?;
        if r.status == 200 { Ok(()) } else { decode::<serde_json::Value>(&r).map(|_| ()) }
    }

    /// The Prometheus metrics text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let r = self.raw(Method::GET, "/metrics", None, &[]).await?;
        String::from_utf8(r.body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// A batcher that sends through this client.
    pub fn batcher(&self, batch_size: usize) -> Batcher {
        Batcher { client: self.clone(), batch_size: batch_size.clamp(1, 1000), pending: Vec::new(), acks: Vec::new() }
    }
}

/// Collects events and sends them in batches of `batch_size`.
pub struct Batcher {
    client: Client,
    batch_size: usize,
    pending: Vec<serde_json::Value>,
    acks: Vec<EventAck>,
}

impl Batcher {
    /// Queues one event, sending a batch when enough have gathered; returns how many were sent.
    pub async fn push(&mut self, event: serde_json::Value) -> Result<usize, ClientError> {
        self.pending.push(event);
        if self.pending.len() >= self.batch_size { self.flush().await } else { Ok(0) }
    }

    /// Sends whatever is queued; returns how many were sent.
    pub async fn flush(&mut self) -> Result<usize, ClientError> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        let sent = self.client.send_events(&self.pending).await?;
        let n = self.pending.len();
        self.pending.clear();
        self.acks.extend(sent.acks);
        Ok(n)
    }

    /// The acknowledgements of every event sent so far.
    pub fn acks(&self) -> &[EventAck] {
        &self.acks
    }
}

fn decode<T: DeserializeOwned>(response: &RawResponse) -> Result<T, ClientError> {
    if (200..300).contains(&response.status) {
        return serde_json::from_slice(&response.body).map_err(|e| ClientError::Decode(e.to_string()));
    }
    match serde_json::from_slice::<ErrorBody>(&response.body) {
        Ok(e) => Err(ClientError::Api {
            status: response.status,
            code: e.error.code,
            message: e.error.message,
            field: e.error.field,
        }),
        Err(_) => Err(ClientError::Api {
            status: response.status,
            code: StatusCode::from_u16(response.status).map(|s| s.to_string()).unwrap_or_default(),
            message: String::from_utf8_lossy(&response.body).chars().take(200).collect(),
            field: None,
        }),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// Percent-encodes a query value or path segment.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query_string(params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    format!("?{}", parts.join("&"))
}
