//! `GET /v1/export`: an organisation's events, filtered as `GET /v1/events` filters them, as CSV, JSON,
//! NDJSON or Parquet.
//!
//! The export streams in constant memory through three stages: a task pages through the timeline with
//! cursors (the store's read pool parses each page), a blocking thread encodes the pages, and the body
//! sends the encoded chunks as they come. Bounded channels join the stages, so a slow client slows the
//! reading down instead of letting pages pile up, and a client that goes away stops all three. Parquet
//! keeps at most one row group in memory before it is written out.
//!
//! What may be exported follows the organisation's plan; platform keys (and operators) may always
//! export. Every export is recorded in the organisation's log as `audit_log.exported` before its first
//! byte leaves. CSV is for people and spreadsheets: it is cut at `export_csv_max_rows` (stated up front in
//! `X-Trailkeep-Row-Limit` and, when it happens, in a last line), it leaves AI prompts and responses out
//! unless an administrator asks for them, and no cell can start a spreadsheet formula. JSON, NDJSON and
//! Parquet carry every field.

use std::borrow::Cow;
use std::io::Write;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::Value;
use tokio::sync::mpsc;
use trailkeep_core::cursor::Order;
use trailkeep_core::plans::ExportFormat;
use trailkeep_core::{Event, Filter, OrgId};
use trailkeep_store::{EventQuery, ReadScope};

use crate::audit::Origin;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::{AppState, now_ms};

/// The export's own parameters; every other one must be a filter of `GET /v1/events`.
const EXPORT_PARAMS: &[&str] = &["organization_id", "format", "order", "include_ai_text"];
/// Events read per store call.
const PAGE: usize = 1000;
/// Pages read ahead of the encoder.
const PAGES_AHEAD: usize = 2;
/// Encoded bytes gathered before a chunk goes to the body.
const CHUNK: usize = 256 * 1024;
/// Rows buffered (encoded) before a Parquet row group is written out.
pub const PARQUET_ROW_GROUP: usize = 10_000;
/// The header stating a CSV export's row limit before the first row.
pub const ROW_LIMIT_HEADER: &str = "x-trailkeep-row-limit";

/// The columns of a CSV export, in order; a Parquet export has the same columns, typed.
pub const COLUMNS: [&str; 44] = [
    "id",
    "seq",
    "occurred_at",
    "received_at",
    "organization_id",
    "project_id",
    "action",
    "category",
    "outcome",
    "error",
    "actor_type",
    "actor_id",
    "actor_name",
    "actor_email",
    "target_type",
    "target_id",
    "target_name",
    "targets",
    "ip",
    "user_agent",
    "location",
    "request_id",
    "session_id",
    "trace_id",
    "description",
    "metadata",
    "changes",
    "ai_provider",
    "ai_model",
    "ai_api_key_id",
    "ai_user_id",
    "ai_session_id",
    "ai_status_code",
    "ai_input_tokens",
    "ai_output_tokens",
    "ai_total_tokens",
    "ai_cost_usd",
    "ai_latency_ms",
    "ai_error",
    "ai_parameters",
    "ai_security",
    "ai_prompt_injection_score",
    "ai_prompt",
    "ai_response",
];

/// `GET /v1/export?format=csv|json|ndjson|parquet` and any filter of `GET /v1/events`.
pub async fn get_export(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    caller: Origin,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = crate::query_pairs(params)?;
    let ExportRequest { scope, format, order, include_ai_text, filter, filter_text } =
        ExportRequest::parse(&principal, &params, now_ms())?;
    allowed_by_plan(&state, &principal, &scope.org, format).await?;
    let row_limit = (format == ExportFormat::Csv).then_some(state.export_csv_max_rows);

    record_export(&state, &principal, &caller, &scope, format, order, &filter_text, row_limit, include_ai_text).await?;
    metrics::counter!("trailkeep_exports_total", "format" => format.as_str()).increment(1);

    let (pages_tx, pages_rx) = mpsc::channel::<Batch>(PAGES_AHEAD);
    let (body_tx, body_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(read_pages(state.clone(), scope.clone(), filter, order, row_limit, pages_tx));
    let options = EncodeOptions { format, include_ai_text, row_limit: row_limit.unwrap_or(0) };
    tokio::task::spawn_blocking(move || encode(options, pages_rx, body_tx));

    let body =
        Body::from_stream(futures::stream::unfold(body_rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }));
    let (content_type, extension) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ExportFormat::Json => ("application/json", "json"),
        ExportFormat::Ndjson => ("application/x-ndjson", "ndjson"),
        _ => ("application/vnd.apache.parquet", "parquet"),
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", file_name(&scope.org, extension))),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        body,
    )
        .into_response();
    if let Some(limit) = row_limit {
        response.headers_mut().insert(HeaderName::from_static(ROW_LIMIT_HEADER), HeaderValue::from(limit));
    }
    Ok(response)
}

/// What an export asks for, read from its parameters (a query string, or an export job's body turned
/// into the same pairs) and checked against the caller.
pub(crate) struct ExportRequest {
    pub scope: ReadScope,
    pub format: ExportFormat,
    pub order: Order,
    /// Only ever true for CSV asked for by someone who administers the organisation.
    pub include_ai_text: bool,
    pub filter: Filter,
    /// The filters as `name=value&…`, for the audit event.
    pub filter_text: String,
}

impl ExportRequest {
    pub(crate) fn parse(
        principal: &Principal,
        params: &[(String, String)],
        now: i64,
    ) -> Result<ExportRequest, ApiError> {
        if let Some((key, _)) = params.iter().find(|(k, _)| {
            !EXPORT_PARAMS.contains(&k.as_str()) && !trailkeep_core::filter::FILTER_PARAMS.contains(&k.as_str())
        }) {
            return Err(ApiError::bad_param(key, format!("unknown parameter `{key}`; see docs/api.md#exports")));
        }
        let scope = principal.events_reader(params)?;
        let format = export_format(crate::param(params, "format"))?;
        let order = match crate::param(params, "order") {
            None => Order::Desc,
            Some(o) => Order::parse(o).ok_or_else(|| ApiError::bad_param("order", "order must be `asc` or `desc`"))?,
        };
        let include_ai_text = match crate::param(params, "include_ai_text") {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(ApiError::bad_param("include_ai_text", "include_ai_text must be `true` or `false`")),
        };
        let filter = Filter::from_params(params, now).map_err(|e| {
            let code = if e.field == "q" { "invalid_query" } else { "invalid_parameter" };
            ApiError::new(StatusCode::BAD_REQUEST, code, e.message.clone()).with_field(e.field.clone())
        })?;
        // Prompts and responses may hold anything a user typed: in a CSV, only for those who administer the
        // organisation, and only when they ask. The other formats are for machines and carry every field.
        let include_ai_text = include_ai_text && format == ExportFormat::Csv;
        if include_ai_text {
            principal.administers(&scope.org).map_err(|_| {
                ApiError::forbidden("only the organisation's owners and admins may export prompt and response text")
                    .with_field("include_ai_text")
            })?;
        }
        let filter_text = params
            .iter()
            .filter(|(k, v)| !EXPORT_PARAMS.contains(&k.as_str()) && !v.trim().is_empty())
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        Ok(ExportRequest { scope, format, order, include_ai_text, filter, filter_text })
    }
}

fn export_format(value: Option<&str>) -> Result<ExportFormat, ApiError> {
    const CHOICES: &str = "`csv`, `json`, `ndjson` or `parquet`";
    match value.map(ExportFormat::parse) {
        None => Err(ApiError::bad_param("format", format!("say which format to export: format={CHOICES}"))),
        Some(Some(ExportFormat::Bundle)) => Err(ApiError::bad_param(
            "format",
            format!("self-proving bundles come from GET /v1/bundle; here format is {CHOICES}"),
        )),
        Some(Some(format)) => Ok(format),
        Some(None) => Err(ApiError::bad_param("format", format!("format must be {CHOICES}"))),
    }
}

/// Whether the organisation's plan includes `format`. Platform keys and operators, who run the
/// deployment, may always export; an organisation not created yet is on the plan it would get, `free`.
pub(crate) async fn allowed_by_plan(
    state: &AppState,
    principal: &Principal,
    org: &OrgId,
    format: ExportFormat,
) -> Result<(), ApiError> {
    if principal.own_org().is_none() {
        return Ok(());
    }
    let plan_name = state.store.get_org(org).await?.map(|o| o.plan).unwrap_or_else(|| "free".to_owned());
    let plan = state.plans.iter().find(|p| p.name == plan_name);
    if plan.is_some_and(|p| p.allows(format)) {
        return Ok(());
    }
    let allowed: Vec<&str> = plan
        .map(|p| p.exports.iter().filter(|f| **f != ExportFormat::Bundle).map(|f| f.as_str()).collect())
        .unwrap_or_default();
    let allowed = if allowed.is_empty() { "no exports".to_owned() } else { format!("only {}", allowed.join(", ")) };
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "export_not_allowed",
        format!(
            "the `{plan_name}` plan does not include {} exports (it allows {allowed}); the platform can move the organisation to a plan that does",
            format.as_str()
        ),
    )
    .with_field("format"))
}

/// Records the export in the organisation's log before the first byte leaves.
#[allow(clippy::too_many_arguments)]
async fn record_export(
    state: &AppState,
    principal: &Principal,
    origin: &Origin,
    scope: &ReadScope,
    format: ExportFormat,
    order: Order,
    filter: &str,
    row_limit: Option<u64>,
    include_ai_text: bool,
) -> Result<(), ApiError> {
    let mut metadata = serde_json::Map::new();
    metadata.insert("format".into(), format.as_str().into());
    metadata.insert("filter".into(), filter.into());
    metadata.insert("order".into(), if order == Order::Asc { "asc" } else { "desc" }.into());
    if let Some(limit) = row_limit {
        metadata.insert("row_limit".into(), limit.into());
        metadata.insert("include_ai_text".into(), include_ai_text.into());
    }
    if let Some(projects) = &scope.projects {
        metadata.insert("projects".into(), projects.iter().map(|p| Value::from(p.to_string())).collect());
    }
    let what = if filter.is_empty() { "the audit log".to_owned() } else { format!("the audit log ({filter})") };
    let event = crate::audit::export_event(
        &scope.org,
        format!("An export of {what} as {} was downloaded", format.as_str().to_uppercase()),
        metadata,
        principal.actor(),
        origin,
    );
    state.store.append(trailkeep_store::AppendRequest { events: vec![event], idempotency: None }).await?;
    Ok(())
}

/// `acme-audit-log-20260102T030405Z.csv`, with anything but letters, digits, `.`, `_` and `-` in the
/// organisation id replaced, so the name is safe on every file system.
pub(crate) fn file_name(org: &OrgId, extension: &str) -> String {
    let org: String =
        org.as_str().chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    format!("{org}-audit-log-{stamp}.{extension}")
}

/// What the reading task hands the encoder.
enum Batch {
    Events(Vec<Event>),
    /// Every matching event was sent, or the row limit was reached and more would have followed.
    End {
        truncated: bool,
    },
    Failed(String),
}

/// Pages through the scope's timeline, at most `row_limit` events when one is given.
async fn read_pages(
    state: Arc<AppState>,
    scope: ReadScope,
    filter: Filter,
    order: Order,
    row_limit: Option<u64>,
    tx: mpsc::Sender<Batch>,
) {
    let mut query = EventQuery { filter, order, limit: PAGE, after: None };
    let mut sent = 0u64;
    loop {
        if let Some(max) = row_limit {
            // One more than the limit leaves, to tell a cut export from one that just fits.
            query.limit = PAGE.min(usize::try_from(max - sent + 1).unwrap_or(PAGE));
        }
        let page = match state.store.list_events(&scope, &query).await {
            Ok(page) => page,
            Err(e) => {
                let _ = tx.send(Batch::Failed(e.to_string())).await;
                return;
            }
        };
        let mut events = page.events;
        let mut truncated = false;
        if let Some(max) = row_limit
            && sent + events.len() as u64 > max
        {
            events.truncate((max - sent) as usize);
            truncated = true;
        }
        sent += events.len() as u64;
        if !events.is_empty() && tx.send(Batch::Events(events)).await.is_err() {
            return; // The client went away.
        }
        match page.next {
            Some(next) if !truncated => query.after = Some(next),
            _ => {
                let _ = tx.send(Batch::End { truncated }).await;
                return;
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct EncodeOptions {
    format: ExportFormat,
    include_ai_text: bool,
    row_limit: u64,
}

/// Sends what is written to it to the response body in chunks of [`CHUNK`] bytes, waiting while the
/// body is full; writing fails once the client has gone.
struct ChunkWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
    sent: u64,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + 4096)));
        self.sent += chunk.len() as u64;
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// One export format's encoding of pages of events into a writer `W`.
trait Encoder<W> {
    fn events(&mut self, events: &[Event]) -> std::io::Result<()>;
    /// Writes what closes the file and hands back the writer, flushed.
    fn finish(self: Box<Self>, truncated: bool) -> std::io::Result<W>;
}

/// The encoder of `options.format` writing into `out`.
fn encoder<W: Write + Send + 'static>(options: EncodeOptions, out: W) -> std::io::Result<Box<dyn Encoder<W> + Send>> {
    Ok(match options.format {
        ExportFormat::Csv => Box::new(CsvEncoder::new(out, options)?),
        ExportFormat::Json => Box::new(JsonEncoder { out, first: true, started: false }),
        ExportFormat::Ndjson => Box::new(NdjsonEncoder { out }),
        _ => Box::new(ParquetEncoder::new(out).map_err(std::io::Error::other)?),
    })
}

/// An export file being written: the encoding `GET /v1/export` streams, written into any writer — a file
/// for an export job, a compressed buffer for a scheduled export.
pub struct FileEncoder<W> {
    inner: Box<dyn Encoder<W> + Send>,
}

impl<W: Write + Send + 'static> FileEncoder<W> {
    /// CSV leaves AI prompts and responses out unless `include_ai_text`, and a cut CSV (`row_limit`)
    /// ends with a line saying so.
    pub fn new(format: ExportFormat, include_ai_text: bool, row_limit: u64, out: W) -> std::io::Result<FileEncoder<W>> {
        let options = EncodeOptions { format, include_ai_text, row_limit };
        Ok(FileEncoder { inner: encoder(options, out)? })
    }

    pub fn write(&mut self, events: &[Event]) -> std::io::Result<()> {
        self.inner.events(events)
    }

    /// Closes the file and hands back the writer, flushed.
    pub fn finish(self, truncated: bool) -> std::io::Result<W> {
        self.inner.finish(truncated)
    }
}

/// Encodes the pages `rx` brings into the body `tx` feeds, on a blocking thread. A failure ends the body
/// with an error, so the client sees a broken transfer rather than a file that looks complete.
fn encode(options: EncodeOptions, mut rx: mpsc::Receiver<Batch>, tx: mpsc::Sender<Result<Bytes, std::io::Error>>) {
    let fail_tx = tx.clone();
    let fail = |what: String| {
        tracing::error!(error = %what, format = options.format.as_str(), "an export stopped half-way");
        let _ = fail_tx.blocking_send(Err(std::io::Error::other(what)));
    };
    let out = ChunkWriter { tx, buf: Vec::with_capacity(CHUNK + 4096), sent: 0 };
    let mut encoder = match encoder(options, out) {
        Ok(e) => e,
        Err(e) => return fail(e.to_string()),
    };
    loop {
        let result = match rx.blocking_recv() {
            Some(Batch::Events(events)) => encoder.events(&events),
            Some(Batch::End { truncated }) => {
                if let Err(e) = encoder.finish(truncated) {
                    fail(e.to_string());
                }
                return;
            }
            Some(Batch::Failed(e)) => return fail(e),
            None => return fail("the reading task stopped without finishing".into()),
        };
        if let Err(e) = result {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                fail(e.to_string());
            }
            return;
        }
    }
}

struct NdjsonEncoder<W> {
    out: W,
}

impl<W: Write> Encoder<W> for NdjsonEncoder<W> {
    fn events(&mut self, events: &[Event]) -> std::io::Result<()> {
        for event in events {
            serde_json::to_writer(&mut self.out, event)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>, _: bool) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One JSON array, one event per line.
struct JsonEncoder<W> {
    out: W,
    first: bool,
    started: bool,
}

impl<W: Write> Encoder<W> for JsonEncoder<W> {
    fn events(&mut self, events: &[Event]) -> std::io::Result<()> {
        if !self.started {
            self.out.write_all(b"[")?;
            self.started = true;
        }
        for event in events {
            self.out.write_all(if self.first { b"\n" } else { b",\n" })?;
            self.first = false;
            serde_json::to_writer(&mut self.out, event)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>, _: bool) -> std::io::Result<W> {
        let end: &[u8] = if self.started { b"\n]\n" } else { b"[]\n" };
        self.out.write_all(end)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

struct CsvEncoder<W: Write> {
    out: csv::Writer<W>,
    options: EncodeOptions,
}

impl<W: Write> CsvEncoder<W> {
    fn new(out: W, options: EncodeOptions) -> std::io::Result<CsvEncoder<W>> {
        let mut out = csv::WriterBuilder::new().from_writer(out);
        out.write_record(COLUMNS)?;
        Ok(CsvEncoder { out, options })
    }
}

impl<W: Write> Encoder<W> for CsvEncoder<W> {
    fn events(&mut self, events: &[Event]) -> std::io::Result<()> {
        for event in events {
            let row = csv_row(event, self.options.include_ai_text);
            self.out.write_record(row.iter().map(|cell| match neutralise(cell) {
                Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
                Cow::Owned(text) => Cow::Owned(text.into_bytes()),
            }))?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>, truncated: bool) -> std::io::Result<W> {
        let mut out = self.out.into_inner().map_err(|e| std::io::Error::other(e.error().to_string()))?;
        if truncated {
            writeln!(out, "# truncated at {} rows; narrow the filters or export NDJSON", self.options.row_limit)?;
        }
        out.flush()?;
        Ok(out)
    }
}

/// A cell that a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, or a tab or carriage return
/// before one) gets a leading `'`, which makes it text (OWASP's advice on CSV injection).
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The event's cells in [`COLUMNS`] order; prompts and responses are empty unless `ai_text`.
fn csv_row(e: &Event, ai_text: bool) -> Vec<String> {
    let text = |v: Option<&String>| v.cloned().unwrap_or_default();
    let num = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    let actor = e.actor.as_ref();
    let target = e.primary_target();
    let ai = e.ai.as_ref();
    let usage = ai.and_then(|a| a.usage.as_ref());
    let c = &e.context;
    vec![
        e.id.to_string(),
        e.seq.to_string(),
        trailkeep_core::time::format_millis(e.occurred_at),
        trailkeep_core::time::format_millis(e.received_at),
        e.organization_id.to_string(),
        e.project_id.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        e.action.to_string(),
        e.category.clone(),
        e.outcome.as_str().to_owned(),
        text(e.error.as_ref()),
        actor.map(|a| a.actor_type.as_str().to_owned()).unwrap_or_default(),
        text(actor.and_then(|a| a.id.as_ref())),
        text(actor.and_then(|a| a.name.as_ref())),
        text(actor.and_then(|a| a.email.as_ref())),
        target.map(|t| t.target_type.clone()).unwrap_or_default(),
        target.map(|t| t.id.clone()).unwrap_or_default(),
        text(target.and_then(|t| t.name.as_ref())),
        if e.targets.len() > 1 { json_text(&e.targets) } else { String::new() },
        c.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        text(c.user_agent.as_ref()),
        text(c.location.as_ref()),
        text(c.request_id.as_ref()),
        text(c.session_id.as_ref()),
        text(c.trace_id.as_ref()),
        text(e.description.as_ref()),
        if e.metadata.is_empty() { String::new() } else { json_text(&e.metadata) },
        if e.changes.is_empty() { String::new() } else { json_text(&e.changes) },
        text(ai.and_then(|a| a.provider.as_ref())),
        text(ai.and_then(|a| a.model.as_ref())),
        text(ai.and_then(|a| a.api_key_id.as_ref())),
        text(ai.and_then(|a| a.user_id.as_ref())),
        text(ai.and_then(|a| a.session_id.as_ref())),
        num(ai.and_then(|a| a.status_code).map(u64::from)),
        num(usage.and_then(|u| u.input_tokens)),
        num(usage.and_then(|u| u.output_tokens)),
        num(ai.and_then(|a| a.total_tokens())),
        ai.and_then(|a| a.cost_usd).map(|c| c.to_string()).unwrap_or_default(),
        num(ai.and_then(|a| a.latency_ms)),
        text(ai.and_then(|a| a.error.as_ref())),
        ai.filter(|a| !a.parameters.is_empty()).map(|a| json_text(&a.parameters)).unwrap_or_default(),
        ai.and_then(|a| a.security.as_ref()).map(json_text).unwrap_or_default(),
        ai.and_then(|a| a.security.as_ref()?.prompt_injection_score).map(|s| s.to_string()).unwrap_or_default(),
        if ai_text { text(ai.and_then(|a| a.prompt.as_ref())) } else { String::new() },
        if ai_text { text(ai.and_then(|a| a.response.as_ref())) } else { String::new() },
    ]
}

/// Parquet through arrow: pages become record batches, which the writer gathers into row groups of
/// [`PARQUET_ROW_GROUP`] rows and writes out as each fills.
struct ParquetEncoder<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: Arc<Schema>,
}

impl<W: Write + Send> ParquetEncoder<W> {
    fn new(out: W) -> parquet::errors::Result<ParquetEncoder<W>> {
        let schema = parquet_schema();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP))
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("trailkeep {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(out, schema.clone(), Some(properties))?;
        Ok(ParquetEncoder { writer, schema })
    }
}

impl<W: Write + Send> Encoder<W> for ParquetEncoder<W> {
    fn events(&mut self, events: &[Event]) -> std::io::Result<()> {
        let columns = parquet_columns(events).into_iter().map(|(_, array)| array).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(std::io::Error::other)?;
        self.writer.write(&batch).map_err(std::io::Error::other)
    }

    fn finish(self: Box<Self>, _: bool) -> std::io::Result<W> {
        let mut out = self.writer.into_inner().map_err(std::io::Error::other)?;
        out.flush()?;
        Ok(out)
    }
}

/// The schema of a Parquet export: [`COLUMNS`], typed.
pub fn parquet_schema() -> Arc<Schema> {
    Arc::new(Schema::new(parquet_columns(&[]).into_iter().map(|(field, _)| field).collect::<Vec<_>>()))
}

/// Each column's field and values for `events`: timestamps in UTC milliseconds, numbers as 64-bit
/// signed integers (warehouses load unsigned ones badly) or doubles, nested values as JSON text.
fn parquet_columns(events: &[Event]) -> Vec<(Field, ArrayRef)> {
    fn text<'a>(events: &'a [Event], f: impl Fn(&'a Event) -> Option<Cow<'a, str>>) -> ArrayRef {
        Arc::new(events.iter().map(f).collect::<StringArray>())
    }
    fn int(events: &[Event], f: impl Fn(&Event) -> Option<u64>) -> ArrayRef {
        Arc::new(events.iter().map(|e| f(e).map(|n| i64::try_from(n).unwrap_or(i64::MAX))).collect::<Int64Array>())
    }
    fn time(events: &[Event], f: impl Fn(&Event) -> i64) -> ArrayRef {
        Arc::new(events.iter().map(|e| Some(f(e))).collect::<TimestampMillisecondArray>().with_timezone("UTC"))
    }
    fn float(events: &[Event], f: impl Fn(&Event) -> Option<f64>) -> ArrayRef {
        Arc::new(events.iter().map(f).collect::<Float64Array>())
    }
    fn json<'a, T: serde::Serialize + 'a>(events: &'a [Event], f: impl Fn(&'a Event) -> Option<&'a T>) -> ArrayRef {
        text(events, |e| f(e).map(|v| Cow::Owned(json_text(v))))
    }
    fn s(v: &Option<String>) -> Option<Cow<'_, str>> {
        v.as_deref().map(Cow::Borrowed)
    }
    let utf8 = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let i64_field = |name: &str| Field::new(name, DataType::Int64, true);
    let ts = |name: &str| Field::new(name, DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false);
    vec![
        (utf8("id", false), text(events, |e| Some(Cow::Owned(e.id.to_string())))),
        (Field::new("seq", DataType::Int64, false), int(events, |e| Some(e.seq))),
        (ts("occurred_at"), time(events, |e| e.occurred_at)),
        (ts("received_at"), time(events, |e| e.received_at)),
        (utf8("organization_id", false), text(events, |e| Some(Cow::Borrowed(e.organization_id.as_str())))),
        (utf8("project_id", true), text(events, |e| e.project_id.as_ref().map(|p| Cow::Borrowed(p.as_str())))),
        (utf8("action", false), text(events, |e| Some(Cow::Borrowed(e.action.as_str())))),
        (utf8("category", false), text(events, |e| Some(Cow::Borrowed(e.category.as_str())))),
        (utf8("outcome", false), text(events, |e| Some(Cow::Borrowed(e.outcome.as_str())))),
        (utf8("error", true), text(events, |e| s(&e.error))),
        (utf8("actor_type", true), text(events, |e| e.actor.as_ref().map(|a| Cow::Borrowed(a.actor_type.as_str())))),
        (utf8("actor_id", true), text(events, |e| e.actor.as_ref().and_then(|a| s(&a.id)))),
        (utf8("actor_name", true), text(events, |e| e.actor.as_ref().and_then(|a| s(&a.name)))),
        (utf8("actor_email", true), text(events, |e| e.actor.as_ref().and_then(|a| s(&a.email)))),
        (
            utf8("target_type", true),
            text(events, |e| e.primary_target().map(|t| Cow::Borrowed(t.target_type.as_str()))),
        ),
        (utf8("target_id", true), text(events, |e| e.primary_target().map(|t| Cow::Borrowed(t.id.as_str())))),
        (utf8("target_name", true), text(events, |e| e.primary_target().and_then(|t| s(&t.name)))),
        (utf8("targets", true), json(events, |e| (e.targets.len() > 1).then_some(&e.targets))),
        (utf8("ip", true), text(events, |e| e.context.ip.map(|ip| Cow::Owned(ip.to_string())))),
        (utf8("user_agent", true), text(events, |e| s(&e.context.user_agent))),
        (utf8("location", true), text(events, |e| s(&e.context.location))),
        (utf8("request_id", true), text(events, |e| s(&e.context.request_id))),
        (utf8("session_id", true), text(events, |e| s(&e.context.session_id))),
        (utf8("trace_id", true), text(events, |e| s(&e.context.trace_id))),
        (utf8("description", true), text(events, |e| s(&e.description))),
        (utf8("metadata", true), json(events, |e| (!e.metadata.is_empty()).then_some(&e.metadata))),
        (utf8("changes", true), json(events, |e| (!e.changes.is_empty()).then_some(&e.changes))),
        (utf8("ai_provider", true), text(events, |e| e.ai.as_ref().and_then(|a| s(&a.provider)))),
        (utf8("ai_model", true), text(events, |e| e.ai.as_ref().and_then(|a| s(&a.model)))),
        (utf8("ai_api_key_id", true), text(events, |e| e.ai.as_ref().and_then(|a| s(&a.api_key_id)))),
        (utf8("ai_user_id", true), text(events, |e| e.ai.as_ref().and_then(|a| s(&a.user_id)))),
        (utf8("ai_session_id", true), text(events, |e| e.ai.as_ref().and_then(|a| s(&a.session_id)))),
        (
            Field::new("ai_status_code", DataType::Int32, true),
            Arc::new(
                events.iter().map(|e| e.ai.as_ref().and_then(|a| a.status_code).map(i32::from)).collect::<Int32Array>(),
            ),
        ),
        (i64_field("ai_input_tokens"), int(events, |e| e.ai.as_ref()?.usage.as_ref()?.input_tokens)),
        (i64_field("ai_output_tokens"), int(events, |e| e.ai.as_ref()?.usage.as_ref()?.output_tokens)),
        (i64_field("ai_total_tokens"), int(events, |e| e.ai.as_ref()?.total_tokens())),
        (Field::new("ai_cost_usd", DataType::Float64, true), float(events, |e| e.ai.as_ref()?.cost_usd)),
        (i64_field("ai_latency_ms"), int(events, |e| e.ai.as_ref()?.latency_ms)),
        (utf8("ai_error", true), text(events, |e| e.ai.as_ref().and_then(|a| s(&a.error)))),
        (
            utf8("ai_parameters", true),
            json(events, |e| e.ai.as_ref().filter(|a| !a.parameters.is_empty()).map(|a| &a.parameters)),
        ),
        (utf8("ai_security", true), json(events, |e| e.ai.as_ref()?.security.as_ref())),
        (
            Field::new("ai_prompt_injection_score", DataType::Float64, true),
            float(events, |e| e.ai.as_ref()?.security.as_ref()?.prompt_injection_score),
        ),
        (utf8("ai_prompt", true), text(events, |e| e.ai.as_ref().and_then(|a| s(&a.prompt)))),
        (utf8("ai_response", true), text(events, |e| e.ai.as_ref().and_then(|a| s(&a.response)))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_parquet_have_the_same_columns_in_the_same_order() {
        let names: Vec<String> = parquet_schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, COLUMNS);
        let event: Event = serde_json::from_value(serde_json::json!({
            "id": "0190f8a4-7f3c-7cc0-8000-000000000001", "seq": 1, "received_at": "2026-01-02T03:04:05.678Z",
            "organization_id": "acme", "action": "a.b", "category": "a", "occurred_at": "2026-01-02T03:04:05.000Z",
            "outcome": "success",
        }))
        .unwrap();
        assert_eq!(csv_row(&event, false).len(), COLUMNS.len());
    }

    #[test]
    fn cells_that_would_start_a_formula_become_text() {
        for hostile in ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"] {
            assert_eq!(neutralise(hostile), format!("'{hostile}"));
        }
        for fine in ["alice", "1-2", "a=b", "", "{\"a\":1}"] {
            assert_eq!(neutralise(fine), fine);
        }
    }
}
