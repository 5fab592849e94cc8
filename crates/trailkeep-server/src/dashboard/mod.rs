//! The dashboard: an organisation's timeline at `/`, a project's at `/projects/{id}` and the AI requests
//! at `/ai`, for a browser holding a dashboard session (from a portal link or an operator's sign-in).
//!
//! Pages are rendered on the server through askama templates (`templates/dashboard/`), which escape
//! every value; [`view`] makes each value inert and cuts it to size before a template sees it. A small
//! hand-written script and stylesheet (`assets/`, embedded, see [`assets`]) add what a browser can do
//! better: local times, filters that apply as you type, rows that expand in place, copying, keyboard
//! navigation and themes. The script asks for the same pages' fragments (`/ui/…`), rendered by the same
//! templates, and for `GET /v1/events/{id}?proof=true`, whose values it writes with `textContent` only.
//! Every page works without it.
//!
//! Reads go through [`Principal::events_reader`] like every API read, so the dashboard shows exactly
//! what `GET /v1/events` would: owners and admins their organisation, project admins their projects,
//! operators any organisation, and members and viewers nothing. Filters are the API's own
//! ([`Filter::from_params`]), so a dashboard URL's parameters mean what they mean to the API and to
//! exports. Pages carry the Content-Security-Policy of [`crate::pages`]: no inline script or style runs.

pub mod assets;
pub mod view;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use trailkeep_core::cursor::{Cursor, Order};
use trailkeep_core::filter::{FILTER_PARAMS, StatusMatch};
use trailkeep_core::plans::{ExportFormat, Plan};
use trailkeep_core::{Event, Filter, Predicate, ProjectId, Term};
use trailkeep_store::sessions::SessionRole;
use trailkeep_store::{EventQuery, ReadScope};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::sessions::SessionAuth;
use crate::{AppState, now_ms, pages};
use view::{AiRow, Detail, EventRow, query_string};

/// Rows per page, and per "load more".
pub const PAGE_SIZE: usize = 50;

/// The dashboard's routes; `lib.rs` merges them into the one router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(get_timeline))
        .route("/projects/{project}", get(get_project_timeline))
        .route("/ai", get(get_ai_requests))
        .route("/ui/rows/events", get(get_event_rows))
        .route("/ui/rows/ai", get(get_ai_rows))
        .route("/ui/ai-totals", get(get_ai_totals))
        .route("/ui/events/{id}", get(get_event_detail))
        .route("/assets/{file}", get(assets::get_asset))
}

type Auth = Result<Principal, ApiError>;
type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Which listing a page or fragment shows.
#[derive(Clone)]
enum ViewKind {
    Timeline,
    Project(ProjectId),
    Ai,
}

impl ViewKind {
    fn name(&self) -> &'static str {
        match self {
            ViewKind::Timeline => "timeline",
            ViewKind::Project(_) => "project",
            ViewKind::Ai => "ai",
        }
    }

    /// The terms the view adds to the visitor's filter.
    fn terms(&self) -> Vec<Term> {
        let predicate = match self {
            ViewKind::Timeline => return Vec::new(),
            ViewKind::Project(p) => Predicate::Project(vec![p.to_string()]),
            // Every AI request has a status, success or error; no other event has one.
            ViewKind::Ai => Predicate::Status(vec![StatusMatch::Success, StatusMatch::Error]),
        };
        vec![Term { negated: false, predicate }]
    }

    /// The same terms as query parameters, for links to other endpoints (exports).
    fn extra_params(&self) -> String {
        match self {
            ViewKind::Timeline => String::new(),
            ViewKind::Project(p) => query_string([("project_id", p.as_str())]),
            ViewKind::Ai => "status=success,error".to_owned(),
        }
    }
}

/// A visitor who may read events: their session and what they may read.
struct Viewer {
    session: Arc<SessionAuth>,
    scope: ReadScope,
    /// The `organization_id` of the URL, which every link and fetch carries on (operators choose one).
    org_param: Option<String>,
}

/// Why a visitor sees no events, as a page or a fragment says it.
struct Refusal {
    status: StatusCode,
    title: &'static str,
    message: String,
    /// Point to sign-in.
    sign_in: bool,
}

impl Refusal {
    fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Refusal {
        Refusal { status, title, message: message.into(), sign_in: false }
    }

    fn sign_in(message: impl Into<String>) -> Refusal {
        Refusal { sign_in: true, ..Refusal::new(StatusCode::UNAUTHORIZED, "Sign in to see the audit log", message) }
    }

    fn page(self) -> Response {
        render(
            self.status,
            NoticePage {
                title: self.title,
                message: &self.message,
                sign_in: self.sign_in,
                // A way back where there is one: not from a refusal, which the timeline would repeat.
                back: self.status == StatusCode::NOT_FOUND || self.status == StatusCode::BAD_REQUEST,
                css: assets::css_url(),
            },
        )
    }

    fn fragment(self) -> Response {
        render(self.status, ErrorFragment { message: &self.message, sign_in: self.sign_in })
    }
}

fn render(status: StatusCode, page: impl Template) -> Response {
    match page.render() {
        Ok(body) => pages::html(status, body),
        Err(e) => ApiError::internal(format!("cannot render a dashboard page: {e}")).into_response(),
    }
}

fn store_failure(e: impl Into<ApiError>) -> Refusal {
    // Logged with its detail by the conversion; the visitor learns only that it failed.
    let e: ApiError = e.into();
    tracing::error!(message = %e.message, "dashboard read failed");
    Refusal::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The audit log could not be read just now. Try again in a moment.",
    )
}

/// Parameters a dashboard URL may carry: the filters, the organisation (for operators) and the cursor.
fn check_params(params: Params) -> Result<Vec<(String, String)>, Refusal> {
    let params = crate::query_pairs(params)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "This link is malformed", e.message))?;
    if let Some((name, _)) =
        params.iter().find(|(k, _)| !FILTER_PARAMS.contains(&k.as_str()) && k != "organization_id" && k != "cursor")
    {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "This link is malformed",
            format!("The parameter `{}` is not a filter of the audit log.", view::cell(name)),
        ));
    }
    Ok(params)
}

/// The session behind a request and what it may read; a refusal for anyone else.
fn viewer(auth: Auth, params: &[(String, String)]) -> Result<Viewer, Refusal> {
    let principal = auth.map_err(|e| {
        if e.status == StatusCode::UNAUTHORIZED {
            Refusal::sign_in(
                "You are not signed in, or your session has ended. Open the audit log again from the application that sent you here, or sign in.",
            )
        } else {
            Refusal::new(e.status, "The audit log cannot be shown", e.message)
        }
    })?;
    let Some(session) = principal.session.clone() else {
        return Err(Refusal::sign_in(
            "The dashboard is for people: open it from the link your platform gives you, or sign in as an operator. API keys read the log through /v1/events.",
        ));
    };
    let scope = principal.events_reader(params).map_err(|e| match e.status {
        StatusCode::FORBIDDEN => Refusal::new(StatusCode::FORBIDDEN, "You cannot read this audit log", e.message),
        _ => Refusal::new(e.status, "Choose an organisation", e.message),
    })?;
    let org_param = crate::param(params, "organization_id").filter(|v| !v.is_empty()).map(str::to_owned);
    Ok(Viewer { session, scope, org_param })
}

/// The filter of a dashboard URL — the API's reading of its parameters, plus the view's own terms —
/// or the message explaining why it is not one. `range=custom` is the form's way of saying "use from
/// and to": not a filter.
fn dashboard_filter(params: &[(String, String)], kind: &ViewKind) -> Result<Filter, String> {
    let params: Vec<(String, String)> =
        params.iter().filter(|(k, v)| !(k == "range" && v == "custom")).cloned().collect();
    let filter = Filter::from_params(&params, now_ms()).map_err(|e| format!("{}: {}", e.field, e.message))?;
    Ok(filter.and(Filter { terms: kind.terms() }))
}

/// One page of events, or why there is none.
struct Listing {
    events: Vec<Event>,
    next_cursor: Option<String>,
    /// The filter's problem, shown beside the form.
    error: Option<String>,
}

async fn list(
    state: &AppState,
    viewer: &Viewer,
    params: &[(String, String)],
    kind: &ViewKind,
) -> Result<Listing, Refusal> {
    let empty = |error: String| Listing { events: Vec::new(), next_cursor: None, error: Some(error) };
    let filter = match dashboard_filter(params, kind) {
        Ok(f) => f,
        Err(message) => return Ok(empty(message)),
    };
    let after = match crate::param(params, "cursor").filter(|c| !c.is_empty()).map(|c| Cursor::decode(c, Order::Desc)) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => return Ok(empty(format!("cursor: {e}"))),
    };
    let query = EventQuery { filter, order: Order::Desc, limit: PAGE_SIZE, after };
    let started = std::time::Instant::now();
    let page = state.store.list_events(&viewer.scope, &query).await.map_err(store_failure)?;
    metrics::histogram!("trailkeep_dashboard_query_seconds").record(started.elapsed().as_secs_f64());
    Ok(Listing { events: page.events, next_cursor: page.next.map(|c| c.encode()), error: None })
}

/// A choice in a select box.
struct Opt {
    value: String,
    label: String,
    selected: bool,
}

/// The filter form's values, as the URL has them.
#[derive(Default)]
struct FormValues {
    category: String,
    range: String,
    from: String,
    to: String,
    project_id: String,
    actor: String,
    resource_type: String,
    action: String,
    text: String,
    q: String,
    model: String,
    status: String,
    api_key_id: String,
    cost_min: String,
    cost_max: String,
}

impl FormValues {
    fn new(params: &[(String, String)]) -> FormValues {
        let get = |name: &str| crate::param(params, name).unwrap_or("").to_owned();
        let mut range = get("range");
        if range.is_empty() {
            range = if get("from").is_empty() && get("to").is_empty() { "all".into() } else { "custom".into() };
        }
        FormValues {
            category: get("category"),
            range,
            from: get("from"),
            to: get("to"),
            project_id: get("project_id"),
            actor: get("actor"),
            resource_type: get("resource_type"),
            action: get("action"),
            text: get("text"),
            q: get("q"),
            model: get("model"),
            status: get("status"),
            api_key_id: get("api_key_id"),
            cost_min: get("cost_min"),
            cost_max: get("cost_max"),
        }
    }

    fn ranges(&self) -> Vec<Opt> {
        [
            ("1h", "Last hour"),
            ("24h", "Last 24 hours"),
            ("7d", "Last 7 days"),
            ("30d", "Last 30 days"),
            ("all", "All time"),
            ("custom", "Custom range"),
        ]
        .iter()
        .map(|(value, label)| Opt { value: (*value).into(), label: (*label).into(), selected: self.range == *value })
        .collect()
    }
}

/// An export button: a link to `GET /v1/export` with the view's filters, or why the plan has none.
struct ExportLink {
    format: &'static str,
    label: &'static str,
    href: String,
    /// Empty when the organisation's plan includes the format.
    refusal: String,
}

/// The plan whose exports the organisation's people may use, as `GET /v1/export` decides; `None` for an
/// operator, who may always export.
async fn export_plan(state: &AppState, viewer: &Viewer) -> Result<Option<Plan>, Refusal> {
    if viewer.session.record.role == SessionRole::Operator {
        return Ok(None);
    }
    let name = state.store.get_org(&viewer.scope.org).await.map_err(store_failure)?.map(|o| o.plan);
    let name = name.unwrap_or_else(|| "free".to_owned());
    let plan = state.plans.iter().find(|p| p.name == name).cloned();
    Ok(Some(plan.unwrap_or(Plan { name, retention_days: 0, exports: Vec::new() })))
}

/// A project the visitor may look at.
struct ProjectLink {
    id: String,
    name: String,
    href: String,
}

/// What every page shows around its content.
struct Chrome {
    title: String,
    view: &'static str,
    org: String,
    /// `?organization_id=…` when the URL names the organisation, for links; otherwise empty.
    org_query: String,
    org_param: String,
    user: String,
    role: &'static str,
    csrf: String,
    css: String,
    js: String,
    projects: Vec<ProjectLink>,
    current_project: String,
}

async fn chrome(state: &AppState, viewer: &Viewer, title: String, kind: &ViewKind) -> Result<Chrome, Refusal> {
    let org_query =
        viewer.org_param.as_deref().map(|o| format!("?{}", query_string([("organization_id", o)]))).unwrap_or_default();
    let mut projects: Vec<ProjectLink> = state
        .store
        .list_projects(&viewer.scope.org)
        .await
        .map_err(store_failure)?
        .into_iter()
        .filter(|p| viewer.scope.projects.as_ref().is_none_or(|mine| mine.contains(&p.id)))
        .map(|p| ProjectLink {
            href: format!("/projects/{}{org_query}", view::url_encode(p.id.as_str())),
            name: view::cell(&p.name),
            id: p.id.to_string(),
        })
        .collect();
    // A project admin's projects are theirs to see even before the organisation records them.
    if let Some(mine) = &viewer.scope.projects {
        for p in mine {
            if !projects.iter().any(|l| l.id == p.as_str()) {
                projects.push(ProjectLink {
                    href: format!("/projects/{}{org_query}", view::url_encode(p.as_str())),
                    name: p.to_string(),
                    id: p.to_string(),
                });
            }
        }
    }
    let session = &viewer.session.record;
    Ok(Chrome {
        title,
        view: kind.name(),
        org: viewer.scope.org.to_string(),
        org_param: viewer.org_param.clone().unwrap_or_default(),
        org_query,
        user: view::cell(session.user.name.as_deref().unwrap_or(&session.user.email)),
        role: session.role.as_str(),
        csrf: viewer.session.csrf_token.clone(),
        css: assets::css_url(),
        js: assets::js_url(),
        projects,
        current_project: match kind {
            ViewKind::Project(p) => p.to_string(),
            _ => String::new(),
        },
    })
}

#[derive(Template)]
#[template(path = "dashboard/timeline.html")]
struct TimelinePage {
    chrome: Chrome,
    form: FormValues,
    ranges: Vec<Opt>,
    project_options: Vec<Opt>,
    rows: Vec<EventRow>,
    error: Option<String>,
    next_cursor: String,
    next_href: String,
    exports: Vec<ExportLink>,
    export_extra: String,
    path: String,
}

#[derive(Template)]
#[template(path = "dashboard/ai.html")]
struct AiPage {
    chrome: Chrome,
    form: FormValues,
    ranges: Vec<Opt>,
    project_options: Vec<Opt>,
    rows: Vec<AiRow>,
    error: Option<String>,
    next_cursor: String,
    next_href: String,
    exports: Vec<ExportLink>,
    export_extra: String,
    path: String,
}

#[derive(Template)]
#[template(path = "dashboard/notice.html")]
struct NoticePage<'a> {
    title: &'a str,
    message: &'a str,
    sign_in: bool,
    back: bool,
    css: String,
}

#[derive(Template)]
#[template(path = "dashboard/orgs.html")]
struct OrgsPage {
    orgs: Vec<(String, String)>,
    css: String,
}

#[derive(Template)]
#[template(path = "dashboard/event_rows_fragment.html")]
struct EventRowsFragment {
    rows: Vec<EventRow>,
    next_cursor: String,
}

#[derive(Template)]
#[template(path = "dashboard/ai_rows_fragment.html")]
struct AiRowsFragment {
    rows: Vec<AiRow>,
    next_cursor: String,
}

#[derive(Template)]
#[template(path = "dashboard/error_fragment.html")]
struct ErrorFragment<'a> {
    message: &'a str,
    sign_in: bool,
}

#[derive(Template)]
#[template(path = "dashboard/detail.html")]
struct DetailFragment {
    d: Detail,
}

/// `GET /`: the organisation's timeline, across its projects.
pub async fn get_timeline(State(state): State<Arc<AppState>>, auth: Auth, params: Params) -> Response {
    page(&state, auth, params, ViewKind::Timeline).await.unwrap_or_else(Refusal::page)
}

/// `GET /projects/{project}`: one project's timeline.
pub async fn get_project_timeline(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(project): Path<String>,
    params: Params,
) -> Response {
    let not_found = || {
        Refusal::new(
            StatusCode::NOT_FOUND,
            "No such project",
            "There is no project by that name among those you may see.",
        )
    };
    let Ok(project) = ProjectId::parse(&project) else { return not_found().page() };
    page(&state, auth, params, ViewKind::Project(project)).await.unwrap_or_else(Refusal::page)
}

/// `GET /ai`: the AI requests.
pub async fn get_ai_requests(State(state): State<Arc<AppState>>, auth: Auth, params: Params) -> Response {
    page(&state, auth, params, ViewKind::Ai).await.unwrap_or_else(Refusal::page)
}

/// An operator picks an organisation here: when none was chosen at sign-in and the URL names none, or
/// when the URL asks for the choice with an empty `organization_id=`.
async fn choose_org(state: &AppState, auth: &Auth, params: &[(String, String)]) -> Option<Response> {
    let session = auth.as_ref().ok()?.session.as_ref()?;
    let choosing = match crate::param(params, "organization_id") {
        Some(named) => named.is_empty(),
        None => session.record.org.is_none(),
    };
    if session.record.role != SessionRole::Operator || !choosing {
        return None;
    }
    let orgs = match state.store.list_orgs(None, 1000).await {
        Ok(orgs) => orgs,
        Err(e) => return Some(store_failure(e).page()),
    };
    let orgs = orgs
        .into_iter()
        .map(|o| {
            (
                format!("/?{}", query_string([("organization_id", o.id.as_str())])),
                view::cell(&format!("{} ({})", o.name, o.id)),
            )
        })
        .collect();
    Some(render(StatusCode::OK, OrgsPage { orgs, css: assets::css_url() }))
}

async fn page(state: &AppState, auth: Auth, params: Params, kind: ViewKind) -> Result<Response, Refusal> {
    let params = check_params(params)?;
    if let Some(response) = choose_org(state, &auth, &params).await {
        return Ok(response);
    }
    let viewer = viewer(auth, &params)?;
    if let (ViewKind::Project(p), Some(mine)) = (&kind, &viewer.scope.projects)
        && !mine.contains(p)
    {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "No such project",
            "There is no project by that name among those you may see.",
        ));
    }
    let listing = list(state, &viewer, &params, &kind).await?;
    let title = match &kind {
        ViewKind::Timeline => format!("Audit log · {}", viewer.scope.org),
        ViewKind::Project(p) => format!("Project {p} · {}", viewer.scope.org),
        ViewKind::Ai => format!("AI requests · {}", viewer.scope.org),
    };
    let chrome = chrome(state, &viewer, title, &kind).await?;
    let form = FormValues::new(&params);
    let project_options = std::iter::once(Opt {
        value: String::new(),
        label: "All projects".into(),
        selected: form.project_id.is_empty(),
    })
    .chain(chrome.projects.iter().map(|p| Opt {
        value: p.id.clone(),
        label: p.name.clone(),
        selected: form.project_id == p.id,
    }))
    .collect();
    // Links keep the URL's parameters (less the cursor), which are the filters and the organisation.
    let kept: Vec<(&str, &str)> =
        params.iter().filter(|(k, _)| k != "cursor").map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let path = match &kind {
        ViewKind::Timeline => "/".to_owned(),
        ViewKind::Project(p) => format!("/projects/{}", view::url_encode(p.as_str())),
        ViewKind::Ai => "/ai".to_owned(),
    };
    let next_cursor = listing.next_cursor.unwrap_or_default();
    let next_href = if next_cursor.is_empty() {
        String::new()
    } else {
        let mut pairs = kept.clone();
        pairs.push(("cursor", &next_cursor));
        format!("{path}?{}", query_string(pairs))
    };
    let export_extra = kind.extra_params();
    let export = |format: &str| {
        let filters = query_string(kept.iter().copied().filter(|(k, v)| !(*k == "range" && *v == "custom")));
        [format!("/v1/export?format={format}"), filters, export_extra.clone()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("&")
    };
    let plan = export_plan(state, &viewer).await?;
    let exports = [(ExportFormat::Csv, "CSV"), (ExportFormat::Json, "JSON")]
        .into_iter()
        .map(|(format, label)| ExportLink {
            format: format.as_str(),
            label,
            href: export(format.as_str()),
            refusal: match &plan {
                Some(p) if !p.allows(format) => {
                    format!("The {} plan does not include {label} exports.", view::cell(&p.name))
                }
                _ => String::new(),
            },
        })
        .collect();
    let status = if listing.error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let ranges = form.ranges();
    Ok(match kind {
        ViewKind::Ai => render(
            status,
            AiPage {
                chrome,
                ranges,
                form,
                project_options,
                rows: listing.events.iter().map(AiRow::new).collect(),
                error: listing.error,
                next_cursor,
                next_href,
                exports,
                export_extra,
                path,
            },
        ),
        _ => render(
            status,
            TimelinePage {
                chrome,
                ranges,
                form,
                project_options,
                rows: listing.events.iter().map(EventRow::new).collect(),
                error: listing.error,
                next_cursor,
                next_href,
                exports,
                export_extra,
                path,
            },
        ),
    })
}

/// The rows of a page of events, for the script to put in place: `GET /ui/rows/events` takes the
/// filters of `/` (a project page sends its project as `project_id`).
pub async fn get_event_rows(State(state): State<Arc<AppState>>, auth: Auth, params: Params) -> Response {
    rows(&state, auth, params, ViewKind::Timeline).await.unwrap_or_else(Refusal::fragment)
}

/// `GET /ui/rows/ai`: the rows of a page of AI requests.
pub async fn get_ai_rows(State(state): State<Arc<AppState>>, auth: Auth, params: Params) -> Response {
    rows(&state, auth, params, ViewKind::Ai).await.unwrap_or_else(Refusal::fragment)
}

async fn rows(state: &AppState, auth: Auth, params: Params, kind: ViewKind) -> Result<Response, Refusal> {
    let params = check_params(params)?;
    let viewer = viewer(auth, &params)?;
    let listing = list(state, &viewer, &params, &kind).await?;
    if let Some(error) = listing.error {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "Filter", error));
    }
    let next_cursor = listing.next_cursor.unwrap_or_default();
    Ok(match kind {
        ViewKind::Ai => render(
            StatusCode::OK,
            AiRowsFragment { rows: listing.events.iter().map(AiRow::new).collect(), next_cursor },
        ),
        _ => render(
            StatusCode::OK,
            EventRowsFragment { rows: listing.events.iter().map(EventRow::new).collect(), next_cursor },
        ),
    })
}

/// `GET /ui/ai-totals`: requests, tokens and cost of every AI request the filters select, not only the
/// page in view; JSON, with the figures also spelt out for display.
pub async fn get_ai_totals(State(state): State<Arc<AppState>>, auth: Auth, params: Params) -> Response {
    let result = async {
        let params = check_params(params)?;
        let viewer = viewer(auth, &params)?;
        let filter = dashboard_filter(&params, &ViewKind::Timeline)
            .map_err(|m| Refusal::new(StatusCode::BAD_REQUEST, "Filter", m))?;
        state.store.ai_totals(&viewer.scope, &filter).await.map_err(store_failure)
    }
    .await;
    let mut response = match result {
        Ok(t) => axum::Json(json!({
            "requests": t.requests,
            "tokens": t.tokens,
            "cost_usd": t.cost_usd,
            "text": {
                "requests": view::thousands(t.requests),
                "tokens": view::thousands(t.tokens),
                "cost_usd": view::dollars(t.cost_usd),
            },
        }))
        .into_response(),
        Err(r) => (r.status, axum::Json(json!({ "error": { "message": r.message } }))).into_response(),
    };
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}

/// `GET /ui/events/{id}`: the expanded row of one event the visitor may read.
pub async fn get_event_detail(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> Response {
    let result = async {
        let params = check_params(params)?;
        let viewer = viewer(auth, &params)?;
        let event = crate::fetch_event(&state, &viewer.scope, &id).await.map_err(|e| match e.status {
            StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST => {
                Refusal::new(StatusCode::NOT_FOUND, "No such event", "This event is not in the log you may read.")
            }
            _ => store_failure(e),
        })?;
        Ok::<_, Refusal>(render(StatusCode::OK, DetailFragment { d: Detail::new(&event) }))
    }
    .await;
    result.unwrap_or_else(Refusal::fragment)
}
