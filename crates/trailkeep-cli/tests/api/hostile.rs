//! The hostile-input catalogue: a table of named hostile HTTP requests against the real server, each with
//! the status, error code and field it must be answered with.
//!
//! Every request is written byte for byte to a TCP connection, so nothing between the test and the server
//! tidies it up: paths keep their `../` and `%2e%2e`, headers keep their control bytes, bodies their
//! invalid UTF-8. After each case the snapshot of what the server holds — every organisation's event
//! count and newest seq (the platform log included, where every change made inside Trailkeep is
//! recorded), the keys and the organisations — must be unchanged, and `/healthz` must still answer. A few
//! requests are refused by the HTTP parser before any handler runs; those answer a bare 4xx without the
//! envelope, and their cases say so with [`Expect::Bare`]. A last table holds hostile text that is valid
//! search input — SQL and FTS5 syntax in a full-text search — which must be answered 200 with nothing
//! found, and store nothing either.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trailkeep_wire::CreateKeyRequest;

use crate::helpers::{TestApp, spawn_app};

/// Where the caller's key goes in a request's bytes.
const KEY: &str = "{KEY}";
const EVENT_ID: &str = "0190f2a4-3b1c-7def-8abc-1234567890ab";

/// What a case must be answered with.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// The JSON error envelope: status, code and the field it names (if any).
    Error(u16, &'static str, Option<&'static str>),
    /// A bare answer of the HTTP parser, before any handler ran.
    Bare(u16),
    /// Valid, if hostile, input: this status, with nothing found.
    Found(u16, usize),
}

/// Who sends a case.
#[derive(Debug, Clone, Copy)]
enum Caller {
    Admin,
    /// A key of `acme` allowed to write and read its events.
    Org,
    Anonymous,
}

struct Case {
    name: &'static str,
    /// The request line, headers and body, with [`KEY`] for the caller's key.
    bytes: Vec<u8>,
    caller: Caller,
    expect: Expect,
}

/// A request being built: method, target, headers and body; `Content-Length`, `Host` and
/// `Connection: close` are added when it is written.
struct Req {
    method: &'static str,
    target: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    caller: Caller,
}

fn req(method: &'static str, target: impl AsRef<[u8]>) -> Req {
    Req { method, target: target.as_ref().to_vec(), headers: Vec::new(), body: Vec::new(), caller: Caller::Admin }
}

fn get(target: impl AsRef<[u8]>) -> Req {
    req("GET", target)
}

/// `POST path` with a JSON body.
fn post(path: &str, body: impl AsRef<[u8]>) -> Req {
    req("POST", path).header("content-type", "application/json").body(body)
}

/// `POST /v1/events` with a JSON body.
fn ingest(body: impl AsRef<[u8]>) -> Req {
    post("/v1/events", body)
}

/// A valid event for `acme` with `extra` merged over it, as JSON text.
fn ev(extra: Value) -> String {
    let mut event = json!({"organization_id": "acme", "action": "user.login"});
    for (k, v) in extra.as_object().unwrap() {
        event[k] = v.clone();
    }
    event.to_string()
}

/// `GET /v1/events` for `acme` with `query` appended.
fn list(query: &str) -> Req {
    get(format!("/v1/events?organization_id=acme&{query}"))
}

fn cursor(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

impl Req {
    fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Req {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    /// A header added beside any of the same name.
    fn also(mut self, name: &str, value: impl AsRef<[u8]>) -> Req {
        self.headers.push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    fn body(mut self, body: impl AsRef<[u8]>) -> Req {
        self.body = body.as_ref().to_vec();
        self
    }

    fn by(mut self, caller: Caller) -> Req {
        self.caller = caller;
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(b" HTTP/1.1\r\nhost: trailkeep.test\r\nconnection: close\r\n");
        let custom = self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("authorization"));
        if !matches!(self.caller, Caller::Anonymous) && !custom {
            out.extend_from_slice(format!("authorization: Bearer {KEY}\r\n").as_bytes());
        }
        let mut sized = false;
        for (name, value) in &self.headers {
            sized |= name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if !sized && (!self.body.is_empty() || self.method == "POST" || self.method == "PUT") {
            out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    fn err(self, name: &'static str, status: u16, code: &'static str, field: &'static str) -> Case {
        let field = (!field.is_empty()).then_some(field);
        Case { name, bytes: self.bytes(), caller: self.caller, expect: Expect::Error(status, code, field) }
    }

    fn found(self, name: &'static str, status: u16, events: usize) -> Case {
        Case { name, bytes: self.bytes(), caller: self.caller, expect: Expect::Found(status, events) }
    }
}

/// A request written out by hand, for bytes no builder would produce.
fn raw(name: &'static str, bytes: impl AsRef<[u8]>, expect: Expect) -> Case {
    Case { name, bytes: bytes.as_ref().to_vec(), caller: Caller::Admin, expect }
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

fn ingest_cases() -> Vec<Case> {
    let deep_array = ev(json!({})).replace("}", &format!(",\"metadata\":{{\"x\":{}}}}}", nested(20_000)));
    let deep_object =
        ev(json!({})).replace("}", &format!(",\"metadata\":{}1{}}}", "{\"a\":".repeat(10_000), "}".repeat(10_000)));
    let in_metadata =
        |literal: &str| format!(r#"{{"organization_id":"acme","action":"a.b","metadata":{{"x":{literal}}}}}"#);
    let in_cost =
        |literal: &str| format!(r#"{{"organization_id":"acme","action":"a.b","ai":{{"cost_usd":{literal}}}}}"#);
    let wrong_types: Vec<Value> = (0..10_000).map(|i| json!(i)).collect();
    vec![
        // Sizes and nesting.
        ingest(&deep_array).err("metadata nested 20,000 arrays deep", 400, "invalid_json", "metadata"),
        ingest(&deep_object).err("metadata nested 10,000 objects deep", 400, "invalid_json", "metadata"),
        ingest(format!("{{\"events\":{}}}", nested(10_000))).err(
            "events nested 10,000 arrays deep",
            422,
            "invalid_field",
            "events[0]",
        ),
        ingest(ev(json!({"targets": wrong_types}))).err(
            "10,000 numbers as targets",
            422,
            "invalid_field",
            "targets[0]",
        ),
        ingest(ev(json!({"description": "d".repeat(300 * 1024)}))).err(
            "an event of 300 KiB",
            413,
            "event_too_large",
            "",
        ),
        ingest(ev(json!({"metadata": {"blob": "m".repeat(70 * 1024)}}))).err(
            "70 KiB of metadata",
            413,
            "metadata_too_large",
            "metadata",
        ),
        ingest(format!("{{\"events\":[{}]}}", vec![ev(json!({})); 1001].join(","))).err(
            "1,001 events in one batch",
            413,
            "batch_too_large",
            "events",
        ),
        ingest(ev(json!({"ai": {"model": "m".repeat(2048)}}))).err(
            "a 2 KiB model name",
            413,
            "field_too_long",
            "ai.model",
        ),
        ingest(ev(json!({"ai": {"provider": ""}}))).err("an empty provider", 422, "empty_field", "ai.provider"),
        // Encodings.
        ingest(b"{\"organization_id\":\"acme\",\"action\":\"a.b\",\"metadata\":{\"\xff\":1}}").err(
            "invalid UTF-8 in a metadata key",
            400,
            "invalid_json",
            "",
        ),
        ingest(b"{\"organization_id\":\"acme\",\"action\":\"a.b\",\"description\":\"\xc0\xaf\"}").err(
            "an overlong UTF-8 slash",
            400,
            "invalid_json",
            "",
        ),
        ingest(b"{\"organization_id\":\"acme\",\"action\":\"a.b\",\"description\":\"\xed\xa0\x80\"}").err(
            "a UTF-8 encoded surrogate",
            400,
            "invalid_json",
            "",
        ),
        ingest(r#"{"organization_id":"acme","action":"a.b","description":"\ud800"}"#).err(
            "a lone surrogate escape",
            400,
            "invalid_json",
            "description",
        ),
        ingest(format!("\u{feff}{}", ev(json!({})))).err("a byte order mark before the JSON", 400, "invalid_json", ""),
        ingest(b"\x00{\"organization_id\":\"acme\",\"action\":\"a.b\"}").err(
            "a NUL byte before the JSON",
            400,
            "invalid_json",
            "",
        ),
        ingest(ev(json!({})).encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>()).err(
            "the event in UTF-16",
            400,
            "invalid_json",
            "",
        ),
        // Numbers.
        ingest(in_cost("NaN")).err("NaN as a cost", 400, "invalid_json", ""),
        ingest(in_cost("Infinity")).err("Infinity as a cost", 400, "invalid_json", ""),
        ingest(in_cost("-Infinity")).err("minus Infinity as a cost", 400, "invalid_json", ""),
        ingest(in_cost("1e400")).err("a cost beyond f64", 400, "invalid_json", "ai.cost_usd"),
        ingest(in_metadata("NaN")).err("NaN in metadata", 400, "invalid_json", ""),
        ingest(in_metadata("1e400")).err("a number beyond f64 in metadata", 400, "invalid_json", "metadata"),
        ingest(in_metadata("-1e400")).err("a negative number beyond f64 in metadata", 400, "invalid_json", "metadata"),
        ingest(in_metadata("0x10")).err("a hexadecimal number in metadata", 400, "invalid_json", ""),
        ingest(in_metadata("01")).err("a leading zero in metadata", 400, "invalid_json", ""),
        ingest(ev(json!({"ai": {"usage": {"input_tokens": 1.5}}}))).err(
            "a fractional token count",
            422,
            "invalid_field",
            "ai.usage.input_tokens",
        ),
        ingest(r#"{"organization_id":"acme","action":"a.b","ai":{"usage":{"output_tokens":18446744073709551616}}}"#)
            .err("a token count beyond u64", 422, "invalid_field", "ai.usage.output_tokens"),
        ingest(ev(json!({"ai": {"latency_ms": -5}}))).err("a negative latency", 422, "invalid_field", "ai.latency_ms"),
        ingest(ev(json!({"ai": {"status_code": "200"}}))).err(
            "a status code as text",
            422,
            "invalid_field",
            "ai.status_code",
        ),
        // Duplicate and unknown fields.
        ingest(r#"{"organization_id":"acme","organization_id":"globex","action":"a.b"}"#).err(
            "two organisations in one event",
            422,
            "invalid_field",
            "organization_id",
        ),
        ingest(format!(r#"{{"events":[{}],"events":[{}]}}"#, ev(json!({})), ev(json!({"organization_id": "globex"}))))
            .err("two event lists in one batch", 422, "invalid_field", "events"),
        ingest(r#"{"organization_id":"acme","action":"a.b","ai":{"model":"a","model":"b"}}"#).err(
            "a repeated model",
            422,
            "invalid_field",
            "ai.model",
        ),
        ingest(ev(json!({"ai": {"modle": "gpt-4o"}}))).err(
            "an unknown field in the ai block",
            422,
            "invalid_field",
            "ai.modle",
        ),
        ingest(ev(json!({"ai": {"usage": {"tokens": 5}}}))).err(
            "an unknown field in the usage",
            422,
            "invalid_field",
            "ai.usage.tokens",
        ),
        ingest(ev(json!({"changes": [{"field": "role", "old": "a", "new": "b"}]}))).err(
            "an unknown field in a change",
            422,
            "invalid_field",
            "changes[0].old",
        ),
        ingest(ev(json!({"__proto__": {"admin": true}}))).err("a __proto__ field", 422, "invalid_field", "__proto__"),
        // Arrays where objects belong: serde would read a struct from its fields in order.
        ingest(r#"{"events":[[null,"acme",null,"user.login"]]}"#).err(
            "an event written as an array",
            422,
            "invalid_field",
            "events[0]",
        ),
        ingest(ev(json!({"actor": ["user", "u_1"]}))).err(
            "an actor written as an array",
            422,
            "invalid_field",
            "actor",
        ),
        ingest(ev(json!({"ai": ["openai", "gpt-4o"]}))).err(
            "an AI block written as an array",
            422,
            "invalid_field",
            "ai",
        ),
        ingest(ev(json!({"changes": [["role", "a", "b"]]}))).err(
            "a change written as an array",
            422,
            "invalid_field",
            "changes[0]",
        ),
        // Wrong types.
        ingest(ev(json!({"organization_id": ["acme"]}))).err(
            "a list as the organisation",
            422,
            "invalid_field",
            "organization_id",
        ),
        ingest(ev(json!({"id": {"uuid": EVENT_ID}}))).err("an object as the event id", 422, "invalid_field", "id"),
        ingest(ev(json!({"metadata": true}))).err("true as the metadata", 422, "invalid_metadata", "metadata"),
        ingest(ev(json!({"context": "203.0.113.7"}))).err("a string as the context", 422, "invalid_field", "context"),
        ingest(ev(json!({"changes": {"field": "role"}}))).err(
            "an object as the changes",
            422,
            "invalid_field",
            "changes",
        ),
        ingest(ev(json!({"outcome": false}))).err("false as the outcome", 422, "invalid_field", "outcome"),
        ingest(r#"{"events":null}"#).err("null as the event list", 400, "invalid_json", "events"),
        ingest("null").err("a JSON null", 400, "invalid_json", ""),
        ingest("12345").err("a JSON number", 400, "invalid_json", ""),
        ingest("   \n\t ").err("only white space", 400, "invalid_json", ""),
        ingest(r#"{"organization_id":"acme","action":"a.b",}"#).err("a trailing comma", 400, "invalid_json", ""),
        ingest(r#"{/* why not */"organization_id":"acme","action":"a.b"}"#).err("a comment", 400, "invalid_json", ""),
        ingest("{'organization_id':'acme','action':'a.b'}").err("single quotes", 400, "invalid_json", ""),
        // Hostile strings.
        ingest(ev(json!({"action": "'; DROP TABLE events; --"}))).err(
            "SQL as the action",
            422,
            "invalid_action",
            "action",
        ),
        ingest(ev(json!({"action": "user.login\u{0}"}))).err("a NUL in the action", 422, "invalid_action", "action"),
        ingest(ev(json!({"organization_id": "acme\u{0}"}))).err(
            "a NUL in the organisation",
            422,
            "invalid_organization_id",
            "organization_id",
        ),
        ingest(ev(json!({"organization_id": "%2e%2e%2fglobex"}))).err(
            "an encoded traversal as the organisation",
            422,
            "invalid_organization_id",
            "organization_id",
        ),
        ingest(ev(json!({"organization_id": "a".repeat(10_000)}))).err(
            "a 10,000-character organisation",
            422,
            "invalid_organization_id",
            "organization_id",
        ),
        ingest(ev(json!({"project_id": "../../etc"}))).err(
            "a traversal as the project",
            422,
            "invalid_project_id",
            "project_id",
        ),
        ingest(ev(json!({"category": "billing' OR '1'='1"}))).err(
            "SQL as the category",
            422,
            "invalid_category",
            "category",
        ),
        ingest(ev(json!({"actor": {"type": "user", "email": "a@b.c\r\nBcc: x@evil.test"}}))).err(
            "CR LF in an email",
            422,
            "invalid_email",
            "actor.email",
        ),
        ingest(ev(json!({"actor": {"type": "user\u{0}"}}))).err(
            "a NUL in the actor type",
            422,
            "invalid_actor_type",
            "actor.type",
        ),
        ingest(ev(json!({"context": {"ip": "fe80::1%eth0"}}))).err(
            "an address with a zone",
            422,
            "invalid_ip",
            "context.ip",
        ),
        ingest(ev(json!({"context": {"ip": "[::1]:80"}}))).err(
            "an address with a port",
            422,
            "invalid_ip",
            "context.ip",
        ),
        ingest(ev(json!({"context": {"ip": "010.0.0.1"}}))).err(
            "an address with a leading zero",
            422,
            "invalid_ip",
            "context.ip",
        ),
        ingest(ev(json!({"context": {"ip": "0x7f.0.0.1"}}))).err(
            "a hexadecimal address",
            422,
            "invalid_ip",
            "context.ip",
        ),
        ingest(ev(json!({"occurred_at": "+10000-01-01T00:00:00Z"}))).err(
            "occurred_at in year 10000",
            422,
            "invalid_timestamp",
            "occurred_at",
        ),
        ingest(ev(json!({"occurred_at": "1700000000"}))).err(
            "occurred_at as epoch seconds",
            422,
            "invalid_timestamp",
            "occurred_at",
        ),
        ingest(ev(json!({"occurred_at": "2026-02-30T00:00:00Z"}))).err(
            "occurred_at on 30 February",
            422,
            "invalid_timestamp",
            "occurred_at",
        ),
        ingest(ev(json!({"id": "00000000-0000-0000-0000-00000000000g"}))).err(
            "an event id with a g",
            422,
            "invalid_id",
            "id",
        ),
        // Content types and encodings.
        ingest(ev(json!({}))).header("content-type", "application/xml").err(
            "an XML content type",
            415,
            "unsupported_media_type",
            "",
        ),
        ingest(ev(json!({}))).header("content-type", "application/json-patch+json").err(
            "a JSON patch content type",
            415,
            "unsupported_media_type",
            "",
        ),
        ingest(ev(json!({}))).header("content-type", "application/jsonp").err(
            "a JSONP content type",
            415,
            "unsupported_media_type",
            "",
        ),
        ingest(ev(json!({}))).header("content-type", "multipart/form-data; boundary=x").err(
            "a multipart content type",
            415,
            "unsupported_media_type",
            "",
        ),
        ingest(ev(json!({}))).header("content-type", "").err(
            "an empty content type",
            415,
            "unsupported_media_type",
            "",
        ),
        ingest(ev(json!({}))).header("content-type", b"application/json\xff").err(
            "a content type with a byte beyond ASCII",
            415,
            "unsupported_media_type",
            "",
        ),
        ingest(ev(json!({}))).header("content-encoding", "gzip").err(
            "a gzip content encoding over plain JSON",
            415,
            "unsupported_media_type",
            "",
        ),
        ingest(ev(json!({}))).header("content-encoding", "br").err(
            "a brotli content encoding",
            415,
            "unsupported_media_type",
            "",
        ),
        // Idempotency keys.
        ingest(ev(json!({}))).header("idempotency-key", "").err(
            "an empty Idempotency-Key",
            400,
            "invalid_idempotency_key",
            "Idempotency-Key",
        ),
        ingest(ev(json!({}))).header("idempotency-key", "a\tb").err(
            "a tab in the Idempotency-Key",
            400,
            "invalid_idempotency_key",
            "Idempotency-Key",
        ),
        ingest(ev(json!({}))).header("idempotency-key", "clé-1".as_bytes()).err(
            "a UTF-8 Idempotency-Key",
            400,
            "invalid_idempotency_key",
            "Idempotency-Key",
        ),
        ingest(ev(json!({}))).header("idempotency-key", "k".repeat(4096)).err(
            "a 4 KiB Idempotency-Key",
            400,
            "invalid_idempotency_key",
            "Idempotency-Key",
        ),
        ingest(ev(json!({}))).header("idempotency-key", "first").also("idempotency-key", "second").err(
            "two Idempotency-Keys",
            400,
            "invalid_idempotency_key",
            "Idempotency-Key",
        ),
        // Who may write.
        ingest(ev(json!({}))).by(Caller::Anonymous).err("no key", 401, "unauthorized", ""),
        ingest(ev(json!({"organization_id": "globex"}))).by(Caller::Org).err(
            "another organisation's event with an org key",
            403,
            "forbidden",
            "organization_id",
        ),
        ingest(ev(json!({}))).header("authorization", "Basic YWRtaW46YWRtaW4=").err(
            "basic credentials",
            401,
            "unauthorized",
            "",
        ),
        ingest(ev(json!({}))).header("authorization", format!("Bearer {}", "k".repeat(8192))).err(
            "an 8 KiB bearer key",
            401,
            "unauthorized",
            "",
        ),
        ingest(ev(json!({}))).header("authorization", "Bearer ' OR 1=1 --").err(
            "SQL as the bearer key",
            401,
            "unauthorized",
            "",
        ),
    ]
}

fn transport_cases() -> Vec<Case> {
    let event = ev(json!({}));
    let bad = ev(json!({"action": "Not.Valid"}));
    let with = |headers: &str, body: &str| {
        format!(
            "POST /v1/events HTTP/1.1\r\nhost: t\r\nconnection: close\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\n{headers}\r\n{body}"
        )
    };
    let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    vec![
        raw("a NUL in the request line", "GET /v1/events\0 HTTP/1.1\r\nhost: t\r\n\r\n", Expect::Bare(400)),
        raw("a space in the path", "GET /v1/ev ents HTTP/1.1\r\nhost: t\r\n\r\n", Expect::Bare(400)),
        raw(
            "a bare CR inside a header",
            with(&format!("x-note: a\rb\r\ncontent-length: {}\r\n", event.len()), &event),
            Expect::Bare(400),
        ),
        raw(
            "a header line without a colon",
            with(&format!("injected\r\ncontent-length: {}\r\n", event.len()), &event),
            Expect::Bare(400),
        ),
        raw(
            "a space inside a header name",
            with(&format!("x bad: 1\r\ncontent-length: {}\r\n", event.len()), &event),
            Expect::Bare(400),
        ),
        raw("200 headers", with(&format!("{many}content-length: {}\r\n", event.len()), &event), Expect::Bare(431)),
        raw(
            "a 512 KiB header",
            with(&format!("x-big: {}\r\ncontent-length: {}\r\n", "a".repeat(512 * 1024), event.len()), &event),
            Expect::Bare(431),
        ),
        raw(
            "both Content-Length and chunked",
            with(
                "content-length: 5\r\ntransfer-encoding: chunked\r\n",
                &format!("{:x}\r\n{bad}\r\n0\r\n\r\n", bad.len()),
            ),
            // The chunked body is the one read (and refused); the Content-Length is ignored.
            Expect::Error(422, "invalid_action", Some("action")),
        ),
        raw(
            "two different Content-Lengths",
            with(&format!("content-length: {}\r\ncontent-length: 3\r\n", event.len()), &event),
            Expect::Bare(400),
        ),
        raw("a negative Content-Length", with("content-length: -1\r\n", &event), Expect::Bare(400)),
        raw(
            "a chunk size that is not hexadecimal",
            with("transfer-encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n"),
            Expect::Error(400, "invalid_body", None),
        ),
        raw("an unknown transfer coding", with("transfer-encoding: gzip\r\n", &event), Expect::Bare(400)),
    ]
}

fn path_cases() -> Vec<Case> {
    vec![
        get("/v1/events/..%2f..%2fkeys?organization_id=acme").err(
            "an encoded traversal as the event id",
            400,
            "invalid_parameter",
            "id",
        ),
        get("/v1/events/%2e%2e?organization_id=acme").err(
            "an encoded dot-dot as the event id",
            400,
            "invalid_parameter",
            "id",
        ),
        get("/v1/events/../keys").err("a raw traversal out of /v1/events", 404, "not_found", ""),
        get("/v1/events/%00?organization_id=acme").err("a NUL as the event id", 400, "invalid_parameter", "id"),
        get(format!("/v1/events/{EVENT_ID}%00?organization_id=acme")).err(
            "an event id with a NUL after it",
            400,
            "invalid_parameter",
            "id",
        ),
        get(format!("/v1/events/{}?organization_id=acme", "a".repeat(10_000))).err(
            "a 10,000-character event id",
            400,
            "invalid_parameter",
            "id",
        ),
        get("/v1/events/%ff?organization_id=acme").err("invalid UTF-8 as the event id", 400, "bad_request", ""),
        get("/v1/events/'%20OR%201=1--?organization_id=acme").err(
            "SQL as the event id",
            400,
            "invalid_parameter",
            "id",
        ),
        get(format!("/v1/events/{EVENT_ID}/proof?organization_id=acme/../globex")).err(
            "a traversal as the proof's organisation",
            400,
            "invalid_parameter",
            "organization_id",
        ),
        get("/v1/orgs/..%2fglobex").err(
            "an encoded traversal as the path's organisation",
            400,
            "invalid_parameter",
            "org",
        ),
        get("/v1/orgs/%00").err("a NUL as the organisation", 400, "invalid_parameter", "org"),
        get("/v1/orgs/acme%2fprojects").err("an encoded slash in the organisation", 400, "invalid_parameter", "org"),
        req("DELETE", "/v1/keys/..%2f..%2fadmin").err("a traversal as the key id", 404, "not_found", ""),
        req("DELETE", "/v1/keys/'%3B%20DROP%20TABLE%20api_keys%3B--").err("SQL as the key id", 404, "not_found", ""),
        req("DELETE", "/v1/orgs/acme/legal-holds/%2e%2e").err("a dot-dot as the legal hold id", 404, "not_found", ""),
        get("//v1//events?organization_id=acme").err("doubled slashes", 404, "not_found", ""),
        get(format!("/v1/{}", "x/".repeat(4000))).err("a path of 4,000 segments", 404, "not_found", ""),
        req("PUT", "/v1/events").header("content-type", "application/json").body("{}").err(
            "PUT on the event log",
            405,
            "method_not_allowed",
            "",
        ),
        req("DELETE", "/v1/events").err("DELETE on the event log", 405, "method_not_allowed", ""),
        req("TRACE", "/v1/events").err("TRACE", 405, "method_not_allowed", ""),
        req("OPTIONS", "/v1/events").err("OPTIONS", 405, "method_not_allowed", ""),
        req("PATCH", format!("/v1/events/{EVENT_ID}")).err("PATCH on an event", 405, "method_not_allowed", ""),
        req("DELETE", format!("/v1/events/{EVENT_ID}?organization_id=acme")).err(
            "DELETE on an event",
            405,
            "method_not_allowed",
            "",
        ),
    ]
}

fn query_cases() -> Vec<Case> {
    let terms: String = (0..5_000).map(|i| format!("w{i} ")).collect();
    let actions: String = (0..5_000).map(|i| format!("a.b{i}")).collect::<Vec<_>>().join(",");
    vec![
        list("q=%22unterminated").err("an unterminated quote", 400, "invalid_query", "q"),
        list("q=action:%27%3B%20DROP%20TABLE%20events%3B--").err("SQL as an action pattern", 400, "invalid_query", "q"),
        list("q=acton:x").err("a misspelt key", 400, "invalid_query", "q"),
        list("q=cost:%3ENaN").err("a cost above NaN", 400, "invalid_query", "q"),
        list("q=cost:%3E1e400").err("a cost above 1e400", 400, "invalid_query", "q"),
        list("q=created:%3E%3D99999-01-01").err("a five-digit year", 400, "invalid_query", "q"),
        list("q=seq:%3E18446744073709551616").err("a seq beyond u64", 400, "invalid_query", "q"),
        list("q=tokens:5..1").err("a range that ends before it starts", 400, "invalid_query", "q"),
        list("q=status:%3E400").err("a comparison on an equality key", 400, "invalid_query", "q"),
        list(&format!("q=metadata.{}:x", "k".repeat(65))).err("a 65-character metadata key", 400, "invalid_query", "q"),
        list("q=metadata.a%27b:x").err("a quote in a metadata key", 400, "invalid_query", "q"),
        list("q=created:now-99999999999999d..now").err(
            "a relative time beyond the calendar",
            400,
            "invalid_query",
            "q",
        ),
        list("q=--x").err("a doubled negation", 400, "invalid_query", "q"),
        list("q=%22a%5Cqb%22").err("an unknown escape in a phrase", 400, "invalid_query", "q"),
        list(&format!("q={}", terms.replace(' ', "%20"))).err("5,000 terms", 400, "invalid_query", "q"),
        list(&format!("action={actions}")).err("5,000 actions in one list", 400, "invalid_parameter", "action"),
        list("ip=999.0.0.1").err("an address out of range", 400, "invalid_parameter", "ip"),
        list("ip=10.0.0.0/33").err("a prefix beyond 32 bits", 400, "invalid_parameter", "ip"),
        list("from=yesterday").err("a time in words", 400, "invalid_parameter", "from"),
        list("from=2026-02-01&to=2026-01-01").err(
            "a time range that ends before it starts",
            400,
            "invalid_parameter",
            "from",
        ),
        list("range=24h&from=2026-01-01").err("a range and a start together", 400, "invalid_parameter", "range"),
        list("range=-5h").err("a negative range", 400, "invalid_parameter", "range"),
        list("range=99999999999999d").err("a range beyond the calendar", 400, "invalid_parameter", "range"),
        list("from=-99999-01-01").err("a start before year 1", 400, "invalid_parameter", "from"),
        list("cost_min=abc").err("a minimum cost in words", 400, "invalid_parameter", "cost_min"),
        list("cost_min=5&cost_max=1").err("a minimum cost above the maximum", 400, "invalid_parameter", "cost_min"),
        list("limit=0").err("a limit of 0", 400, "invalid_parameter", "limit"),
        list("limit=1001").err("a limit of 1001", 400, "invalid_parameter", "limit"),
        list("limit=-1").err("a negative limit", 400, "invalid_parameter", "limit"),
        list("limit=99999999999999999999999").err("a limit beyond u64", 400, "invalid_parameter", "limit"),
        list("order=sideways").err("an unknown order", 400, "invalid_parameter", "order"),
        list("cursor=garbage!").err("a cursor that is not base64", 400, "invalid_parameter", "cursor"),
        list(&format!("cursor={}", cursor("1a5:1"))).err(
            "a cursor of the other order",
            400,
            "invalid_parameter",
            "cursor",
        ),
        list(&format!("cursor={}", cursor("1d9223372036854775807:18446744073709551615"))).err(
            "a cursor with a seq beyond i64",
            400,
            "invalid_parameter",
            "cursor",
        ),
        list(&format!("cursor={}", cursor("1d99999999999999999999:1"))).err(
            "a cursor with a time beyond i64",
            400,
            "invalid_parameter",
            "cursor",
        ),
        list(&format!("cursor={}", cursor("1d5:1' OR '1'='1"))).err(
            "SQL in a cursor",
            400,
            "invalid_parameter",
            "cursor",
        ),
        list("organisation_id=globex").err("a misspelt parameter", 400, "invalid_parameter", "organisation_id"),
        list("organization_id=globex").err("two organisations", 400, "invalid_parameter", "organization_id"),
        get("/v1/events").err("no organisation with a platform key", 400, "invalid_parameter", "organization_id"),
        get("/v1/events?organization_id=..%2fglobex").err(
            "a traversal as the organisation",
            400,
            "invalid_parameter",
            "organization_id",
        ),
        list("").by(Caller::Anonymous).err("reading without a key", 401, "unauthorized", ""),
        get("/v1/events?organization_id=globex").by(Caller::Org).err(
            "another organisation's log with an org key",
            403,
            "forbidden",
            "organization_id",
        ),
        get(format!("/v1/events/{EVENT_ID}?organization_id=acme&proof=maybe")).err(
            "proof=maybe",
            400,
            "invalid_parameter",
            "proof",
        ),
        get("/v1/checkpoint?organization_id=acme%00").err(
            "a NUL in the checkpoint's organisation",
            400,
            "invalid_parameter",
            "organization_id",
        ),
        get("/v1/proofs/consistency?organization_id=acme&from=5&to=2").err(
            "a consistency proof backwards",
            400,
            "invalid_parameter",
            "from",
        ),
        get("/v1/proofs/consistency?organization_id=acme&from=-1&to=2").err(
            "a negative tree size",
            400,
            "invalid_parameter",
            "from",
        ),
        get("/v1/proofs/consistency?organization_id=acme&from=1&to=18446744073709551616").err(
            "a tree size beyond u64",
            400,
            "invalid_parameter",
            "to",
        ),
        get("/v1/bundle?organization_id=acme&from_seq=0").err(
            "a bundle from seq 0",
            400,
            "invalid_parameter",
            "from_seq",
        ),
        get("/v1/bundle?organization_id=acme&from_seq=1&to_seq=18446744073709551615").err(
            "a bundle to the last u64",
            400,
            "invalid_parameter",
            "to_seq",
        ),
        get("/v1/bundle?organization_id=acme&q=acton:x").err(
            "a bundle with a misspelt query",
            400,
            "invalid_query",
            "q",
        ),
        get("/v1/export?organization_id=acme&format=exe").err(
            "an export as an executable",
            400,
            "invalid_parameter",
            "format",
        ),
        get("/v1/export?organization_id=acme&format=csv&q=%22").err(
            "an export with a broken query",
            400,
            "invalid_query",
            "q",
        ),
        get("/v1/export?organization_id=acme&format=csv&include_ai_text=perhaps").err(
            "an export with include_ai_text=perhaps",
            400,
            "invalid_parameter",
            "include_ai_text",
        ),
    ]
}

fn admin_cases() -> Vec<Case> {
    let key = |body: Value| post("/v1/keys", body.to_string());
    vec![
        key(json!({"name": "k", "permissions": ["root"]})).err("a key with an unknown permission", 422, "invalid_permission", "permissions[0]"),
        key(json!({"name": "k", "permissions": []})).err("a key with no permission", 422, "invalid_field", "permissions"),
        key(json!({"name": "x".repeat(100_000), "permissions": ["admin"]})).err("a 100,000-character key name", 422, "invalid_field", "name"),
        key(json!({"name": "a\u{0}b", "permissions": ["admin"]})).err("a NUL in a key name", 422, "invalid_field", "name"),
        key(json!({"name": "k", "organization_id": "../x", "permissions": ["admin"]}))
            .err("a traversal as a key's organisation", 422, "invalid_organization_id", "organization_id"),
        key(json!({"name": "k", "permissions": ["admin"], "scopes": ["*"]})).err("an unknown field in a key", 400, "invalid_json", "scopes"),
        key(json!({"name": 5, "permissions": ["admin"]})).err("a number as a key name", 400, "invalid_json", "name"),
        post("/v1/keys", "{\"name\":").err("a truncated key body", 400, "invalid_json", "name"),
        post("/v1/keys", json!({"name": "k", "permissions": ["admin"]}).to_string())
            .header("content-type", "text/plain")
            .err("a key body as text", 415, "unsupported_media_type", ""),
        post("/v1/keys", json!({"name": "k", "permissions": ["admin"]}).to_string())
            .by(Caller::Org)
            .err("a platform key made with an org key", 403, "forbidden", ""),
        post("/v1/orgs", json!({"id": "'; DROP TABLE orgs;--", "name": "x"}).to_string())
            .err("SQL as a new organisation's id", 422, "invalid_field", "id"),
        post("/v1/orgs", json!({"id": "_platform", "name": "x"}).to_string()).err("the reserved platform organisation", 422, "invalid_field", "id"),
        req("PATCH", "/v1/orgs/acme")
            .header("content-type", "application/json")
            .body(json!({"plan": "platinum"}).to_string())
            .err("an unknown plan", 422, "invalid_field", "plan"),
        req("PUT", "/v1/orgs/acme/retention")
            .header("content-type", "application/json")
            .body(json!({"days": -1}).to_string())
            .err("a negative retention", 400, "invalid_json", "days"),
        req("PUT", "/v1/orgs/acme/retention")
            .header("content-type", "application/json")
            .body(r#"{"days": 1e400}"#)
            .err("a retention beyond f64", 400, "invalid_json", "days"),
        post("/v1/orgs/acme/legal-holds", json!({"reason": "r", "from": "2026-02-01", "to": "2026-01-01"}).to_string())
            .err("a legal hold that ends before it starts", 422, "invalid_field", "to"),
        post("/v1/orgs/acme/legal-holds", json!({"reason": "", "actor": "x"}).to_string())
            .err("a legal hold without a reason", 422, "invalid_field", "reason"),
        post("/v1/orgs/acme/members", json!({"email": "not-an-email", "role": "admin"}).to_string())
            .err("a member without an email address", 422, "invalid_field", "email"),
        post("/v1/orgs/acme/members", json!({"email": "a@example.com", "role": "root"}).to_string())
            .err("a member with an unknown role", 422, "invalid_field", "role"),
        post(
            "/v1/portal-links",
            json!({"organization_id": "acme", "user": {"email": "a@example.com"}, "role": "root", "intent": "audit_logs"}).to_string(),
        )
        .err("a portal link for an unknown role", 422, "invalid_field", "role"),
        post(
            "/v1/portal-links",
            json!({"organization_id": "../globex", "user": {"email": "a@example.com"}, "role": "admin", "intent": "audit_logs"})
                .to_string(),
        )
        .err("a portal link for a traversal", 422, "invalid_organization_id", "organization_id"),
        post("/v1/checkpoint-key/rotate", json!({"overlap": "forever"}).to_string())
            .err("a rotation overlap of forever", 422, "invalid_field", "overlap"),
        post("/v1/checkpoint-key/rotate", json!({"overlap": "1h", "now": true}).to_string())
            .err("an unknown field in a rotation", 400, "unknown_field", "now"),
        post("/v1/operators", json!({"email": "op@example.com", "password": "short"}).to_string())
            .err("an operator with a short password", 422, "invalid_field", "password"),
    ]
}

/// Hostile text that is valid search input: found nothing, stored nothing.
fn search_cases() -> Vec<Case> {
    vec![
        list("text=%22").found("a lone quote as search text", 200, 0),
        list("text=*").found("a star as search text", 200, 0),
        list("text=NEAR(a%20b%2C%202)").found("an FTS5 NEAR group as search text", 200, 0),
        list("text=a%22%20OR%20%22b").found("quotes and OR as search text", 200, 0),
        list("text=%27%3B%20DROP%20TABLE%20events%3B%20--").found("SQL as search text", 200, 0),
        list("text=description:x").found("an FTS5 column filter as search text", 200, 0),
        list("text=%5Eprefix").found("an FTS5 caret as search text", 200, 0),
        list("text=a%00b").found("a NUL in search text", 200, 0),
        list("text=%ff%fe").found("percent-encoded bytes that are not UTF-8 as search text", 200, 0),
        list("q=%22NEAR(x%20y)%20AND%20*%22").found("FTS5 syntax in a quoted phrase", 200, 0),
        list("q=OR%20AND%20NOT").found("FTS5 operators as bare words", 200, 0),
        list("q=actor:%22%27%20OR%201%3D1%20--%22").found("SQL as an actor", 200, 0),
        list("q=metadata.plan:%22%27%3B%20DROP%20TABLE%20events%22").found("SQL as a metadata value", 200, 0),
    ]
}

/// What the server holds, as far as a caller can see: each organisation's event count and newest seq, the
/// keys, and the organisations.
async fn snapshot(app: &TestApp) -> Vec<String> {
    let mut out = Vec::new();
    for org in ["acme", "globex", "_platform"] {
        let events = app.admin.list_all_events(&[("organization_id", org), ("limit", "1000")]).await.unwrap();
        let newest = events.iter().map(|e| e.seq).max().unwrap_or(0);
        out.push(format!("{org}: {} events, newest seq {newest}", events.len()));
    }
    out.push(format!("{} keys", app.admin.list_keys(None).await.unwrap().len()));
    let orgs: Value = app.admin.get_json("/v1/orgs").await.unwrap();
    out.push(format!("orgs: {}", orgs["data"]));
    out
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Writes `bytes` to a new connection and reads the answer until the server closes it.
async fn exchange(addr: &str, bytes: Vec<u8>) -> Result<Reply, String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let (mut reader, mut writer) = stream.into_split();
    // The server may answer (and close) before reading everything; a failed write is not the verdict.
    let write = tokio::spawn(async move {
        let _ = writer.write_all(&bytes).await;
        // No half-close: the server takes a closed read side for a client gone, and drops the request.
        writer
    });
    let mut answer = Vec::new();
    // A bound on a hang, not a timing assertion: every case answers at once or not at all.
    tokio::time::timeout(Duration::from_secs(90), reader.read_to_end(&mut answer))
        .await
        .map_err(|_| "no answer within 90 s".to_owned())?
        .map_err(|e| format!("read: {e} after {} bytes", answer.len()))?;
    write.abort();
    parse_reply(&answer)
}

fn parse_reply(answer: &[u8]) -> Result<Reply, String> {
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status =
        status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(format!("bad status line {status_line}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = answer[split + 4..].to_vec();
    if headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked")) {
        body = dechunk(&body)?;
    }
    Ok(Reply { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n").ok_or("a chunk without its size line")?;
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).map_err(|e| e.to_string())?;
        data = &data[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or("a chunk cut short")?);
        data = data.get(size + 2..).ok_or("a chunk cut short")?;
    }
}

/// Checks one answer against its case; the problem, if any.
fn judge(case: &Case, reply: &Reply) -> Option<String> {
    let is_json = reply.headers.iter().any(|(n, v)| n == "content-type" && v.starts_with("application/json"));
    match case.expect {
        Expect::Error(status, code, field) => {
            let body: Value = match serde_json::from_slice(&reply.body) {
                Ok(body) if is_json => body,
                _ => {
                    return Some(format!(
                        "{} without the JSON envelope: {}",
                        reply.status,
                        String::from_utf8_lossy(&reply.body)
                    ));
                }
            };
            let error = &body["error"];
            let got =
                (reply.status, error["code"].as_str().unwrap_or_default(), error.get("field").and_then(Value::as_str));
            if got != (status, code, field) {
                return Some(format!("answered {got:?}: {}", error["message"]));
            }
            if error["message"].as_str().is_none_or(str::is_empty) {
                return Some("an error without a message".into());
            }
            None
        }
        Expect::Bare(status) => (reply.status != status)
            .then(|| format!("answered {}: {}", reply.status, String::from_utf8_lossy(&reply.body))),
        Expect::Found(status, events) => {
            let body: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
            let found = body["data"].as_array().map(Vec::len);
            (reply.status != status || found != Some(events)).then(|| {
                format!("answered {} with {found:?} events: {}", reply.status, String::from_utf8_lossy(&reply.body))
            })
        }
    }
}

#[tokio::test]
async fn each_hostile_request_gets_a_clear_4xx_and_stores_nothing() {
    let app = spawn_app().await;
    let admin_key = std::fs::read_to_string(app.data_dir.join("admin.key")).unwrap().trim().to_owned();
    let org_key = app
        .admin
        .create_key(&CreateKeyRequest {
            name: "acme writer".into(),
            organization_id: Some("acme".into()),
            permissions: vec!["events:write".into(), "events:read".into()],
        })
        .await
        .unwrap()
        .key;
    // Both organisations hold events, so "unchanged" is not "still empty".
    let seed: Vec<Value> = (0..3)
        .flat_map(|i| {
            [
                json!({"organization_id": "acme", "action": "user.login", "description": format!("seed {i}")}),
                json!({"organization_id": "globex", "action": "user.login"}),
            ]
        })
        .collect();
    app.admin.send_events(&seed).await.unwrap();
    let addr = app.base_url.trim_start_matches("http://").to_owned();

    let hostile: Vec<Case> =
        [ingest_cases(), transport_cases(), path_cases(), query_cases(), admin_cases()].into_iter().flatten().collect();
    assert!(hostile.len() >= 100, "the catalogue holds {} hostile requests", hostile.len());
    let mut names = std::collections::HashSet::new();
    let cases: Vec<Case> = hostile.into_iter().chain(search_cases()).collect();
    for case in &cases {
        assert!(names.insert(case.name), "two cases are named {:?}", case.name);
    }

    let mut before = snapshot(&app).await;
    let mut failures = Vec::new();
    for case in &cases {
        let key = match case.caller {
            Caller::Org => org_key.as_str(),
            _ => admin_key.as_str(),
        };
        let bytes = replace(&case.bytes, KEY.as_bytes(), key.as_bytes());
        match exchange(&addr, bytes).await {
            Ok(reply) => {
                if let Some(problem) = judge(case, &reply) {
                    failures.push(format!("{}: {problem}", case.name));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
        let health = app.admin.raw(trailkeep_client::Method::GET, "/healthz", None, &[]).await;
        assert!(health.is_ok_and(|r| r.status == 200), "{}: the server is no longer healthy", case.name);
        let now = snapshot(&app).await;
        if now != before {
            failures.push(format!("{}: something was stored: {before:?} became {now:?}", case.name));
            before = now;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases were answered wrongly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Still whole: it accepts a good event, and reads it back.
    app.admin.ready().await.unwrap();
    let sent = app.admin.send_events(&[json!({"organization_id": "acme", "action": "after.all"})]).await.unwrap();
    assert_eq!(sent.acks.len(), 1);
    assert_eq!(
        app.admin.list_all_events(&[("organization_id", "acme"), ("action", "after.all")]).await.unwrap().len(),
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn a_json_media_type_is_matched_without_its_parameters_and_regardless_of_case() {
    let app = spawn_app().await;
    for content_type in ["application/json", "Application/JSON; charset=UTF-8", "application/json;charset=utf-8"] {
        let body = ev(json!({"description": content_type})).into_bytes();
        let r = app
            .admin
            .raw(trailkeep_client::Method::POST, "/v1/events", Some(body), &[("content-type", content_type)])
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{content_type}: {}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(app.admin.list_all_events(&[("organization_id", "acme")]).await.unwrap().len(), 3);
    app.stop().await;
}

/// Percent-encodes every byte but the unreserved ones, and `&` and `=` when `keep_pairs`.
fn percent(bytes: &[u8], keep_pairs: bool) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            b'&' | b'=' if keep_pairs => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The fuzz corpus of the query language — real queries and the mutations that made the parser answer
/// differently — and 1,000 fresh mutations of it from a fixed seed, sent to the real server and its store
/// as `q` and as filter parameters: whatever the parser accepts, the store must answer; whatever it
/// refuses, with a 400 and the envelope.
#[tokio::test]
async fn every_query_of_the_fuzz_corpus_and_its_mutations_is_answered_by_the_real_store_without_a_5xx() {
    let app = spawn_app().await;
    let seed: Vec<Value> = (0..20)
        .map(|i| {
            json!({"organization_id": "acme", "action": "ai.request", "description": format!("rotated key {i}"),
                "actor": {"type": "user", "id": format!("u_{i}"), "email": "alice@example.com"},
                "context": {"ip": "10.0.0.7"}, "metadata": {"plan": "pro"},
                "ai": {"model": "gpt-4o", "cost_usd": 0.1 * i as f64, "usage": {"input_tokens": i * 10}, "status_code": 200 + i}})
        })
        .collect();
    app.admin.send_events(&seed).await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/query");
    let mut queries: Vec<Vec<u8>> =
        std::fs::read_dir(&dir).expect("the query corpus").map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect();
    queries.sort();
    assert!(queries.len() >= 9, "the query corpus holds {} inputs", queries.len());
    let target = trailkeep_fuzz::by_name("query").unwrap();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(20_261_123);
    let corpus = queries.clone();
    for i in 0..1_000 {
        let mut query = corpus[i % corpus.len()].clone();
        trailkeep_fuzz::mutate::mutate(&mut rng, &mut query, 1 + i % 4, target.dictionary(), &corpus, 4096);
        queries.push(query);
    }
    let (mut answered, mut refused) = (0, 0);
    for query in &queries {
        for target in [
            format!("/v1/events?organization_id=acme&q={}", percent(query, false)),
            format!("/v1/events?organization_id=acme&{}", percent(query, true)),
        ] {
            let r = app.admin.raw(trailkeep_client::Method::GET, &target, None, &[]).await.unwrap();
            let body: Value = r.json().unwrap_or_else(|e| panic!("{target}: {} is not JSON: {e}", r.status));
            match r.status {
                200 => {
                    assert!(body["data"].is_array(), "{target}: {body}");
                    answered += 1;
                }
                400 => {
                    let error = &body["error"];
                    assert!(error["code"].is_string() && error["message"].is_string(), "{target}: {body}");
                    refused += 1;
                }
                other => panic!("{target}: answered {other}: {body}"),
            }
        }
    }
    assert!(answered > 0 && refused > 0, "{answered} answered, {refused} refused");
    assert_eq!(app.admin.list_all_events(&[("organization_id", "acme")]).await.unwrap().len(), 20);
    app.stop().await;
}

/// The event corpus of the fuzzer and 1,000 seeded mutations of it, sent by an `acme` key to the real
/// server: each body is stored whole (201, every event acknowledged) or refused with a 4xx and the
/// envelope, never a 5xx; afterwards the log holds exactly what was acknowledged, every accepted event is
/// sealed, and the bundle of the whole log verifies offline — whatever odd but valid content it holds.
#[tokio::test]
async fn every_event_of_the_fuzz_corpus_and_its_mutations_is_stored_whole_or_refused_and_the_log_verifies() {
    let app = spawn_app().await;
    let acme = app.org_client("acme", &["events:write", "events:read"]).await;
    let baseline = app.admin.list_all_events(&[("organization_id", "acme")]).await.unwrap().len();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/event");
    let mut bodies: Vec<Vec<u8>> =
        std::fs::read_dir(&dir).expect("the event corpus").map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect();
    bodies.sort();
    let target = trailkeep_fuzz::by_name("event").unwrap();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(20_261_123);
    let corpus = bodies.clone();
    for i in 0..1_000 {
        let mut body = corpus[i % corpus.len()].clone();
        trailkeep_fuzz::mutate::mutate(&mut rng, &mut body, 1 + i % 4, target.dictionary(), &corpus, 64 * 1024);
        bodies.push(body);
    }
    let (mut acknowledged, mut refused) = (0, 0);
    for body in &bodies {
        let r = acme
            .raw(
                trailkeep_client::Method::POST,
                "/v1/events",
                Some(body.clone()),
                &[("content-type", "application/json")],
            )
            .await
            .unwrap();
        let answer: Value =
            r.json().unwrap_or_else(|e| panic!("{} is not JSON ({e}) for {}", r.status, String::from_utf8_lossy(body)));
        match r.status {
            201 => acknowledged += answer["events"].as_array().map_or(0, Vec::len),
            400..=499 => {
                assert!(answer["error"]["code"].is_string(), "{answer}");
                refused += 1;
            }
            other => panic!("answered {other}: {answer} for {}", String::from_utf8_lossy(body)),
        }
    }
    assert!(acknowledged > 0 && refused > 0, "{acknowledged} acknowledged, {refused} refused");
    let stored = app.admin.list_all_events(&[("organization_id", "acme"), ("limit", "1000")]).await.unwrap();
    assert_eq!(stored.len(), baseline + acknowledged, "the log holds exactly what was acknowledged");

    // Every event sealed, and the bundle of the whole log verifies.
    let size = stored.len() as u64;
    let mut checkpoint = Value::Null;
    for _ in 0..800 {
        let r = app.admin.raw(trailkeep_client::Method::GET, "/v1/checkpoint?organization_id=acme", None, &[]).await;
        checkpoint = r.unwrap().json().unwrap_or(Value::Null);
        if checkpoint["size"].as_u64().is_some_and(|n| n >= size) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(checkpoint["size"].as_u64().is_some_and(|n| n >= size), "not sealed: {checkpoint}");
    let key = trailkeep_core::checkpoint::Verifier::parse(app.admin.checkpoint_key().await.unwrap().trim()).unwrap();
    let mut bundle = Vec::new();
    app.admin
        .download("/v1/bundle?organization_id=acme", |chunk| {
            bundle.extend_from_slice(chunk);
            Ok(())
        })
        .await
        .unwrap();
    let mut verifier = trailkeep_core::bundle::BundleVerifier::new(vec![key], None);
    for line in String::from_utf8(bundle).unwrap().lines() {
        verifier.line(line).unwrap();
    }
    let report = verifier.finish().unwrap();
    assert!(report.is_valid(), "{:?}", report.problems);
    assert!(report.verified >= size, "{} verified of {size}", report.verified);
    app.stop().await;
}

fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}
