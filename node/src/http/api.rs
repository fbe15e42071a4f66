//! The JSON API and the routes of the HTTP listener.
//!
//! Every data handler calls the node's gRPC service in-process ([`as_caller`]): the request
//! carries the person as a [`Peer`] whose certificate-like identity is an operator identity
//! with the account's name, role and division (an anonymous local reader is a viewer of the
//! node's division). The services apply their rules to it exactly as to a certificate, so a
//! viewer's `verify` is refused by the same check, with the same message and the same audit
//! line, as a viewer certificate's over gRPC. Replies are the gRPC messages as JSON.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bottomline_proto::v1 as pb;
use bottomline_proto::v1::sync_server::Sync as _;
use bottomline_proto::v1::tickets_server::Tickets as _;
use serde::Deserialize;
use serde_json::json;

use super::accounts::Account;
use super::{assets, HttpState};
use crate::division::{Code, Level};
use crate::security::tls::Peer;
use crate::security::{CertInfo, Identity, Role};

/// The session cookie's name.
pub const COOKIE: &str = "bl_session";

type St = State<Arc<HttpState>>;

/// The routes: the dashboard's files, the JSON API, `/metrics`.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{file}", get(assets::file))
        .route("/metrics", get(metrics))
        .route("/api/me", get(me))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/tree", get(tree))
        .route("/api/report", get(report))
        .route("/api/stats", get(stats))
        .route("/api/tickets", get(tickets))
        .route("/api/ticket", get(ticket))
        .route("/api/tickets/act", post(act))
        .route("/api/tickets/inventory", post(inventory))
        .route("/api/progress", get(progress))
        .route("/api/health", get(health))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Count and time every request for `/metrics` (by route, not by raw path).
async fn observe(
    State(state): St,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let res = next.run(req).await;
    state
        .metrics
        .observe_http(&route, res.status().as_u16(), started.elapsed());
    res
}

/// An API error: an HTTP status and a message for the person (`{"error": "…"}`).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> ApiError {
        use tonic::Code as C;
        let status = match s.code() {
            C::InvalidArgument | C::OutOfRange => StatusCode::BAD_REQUEST,
            C::PermissionDenied => StatusCode::FORBIDDEN,
            C::Unauthenticated => StatusCode::UNAUTHORIZED,
            C::NotFound => StatusCode::NOT_FOUND,
            C::AlreadyExists | C::FailedPrecondition | C::Aborted => StatusCode::CONFLICT,
            C::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            C::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            C::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, s.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(s) = self.retry_after {
            body["retry_after_secs"] = json!(s);
        }
        let mut res = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        res
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok<T: serde::Serialize>(v: T) -> ApiResult {
    Ok(Json(v).into_response())
}

/// Who is asking: the account of a valid session, else an anonymous local reader where the
/// listener allows one (`None`), else 401.
fn who(state: &HttpState, headers: &HeaderMap) -> Result<Option<Account>, ApiError> {
    if let Some(token) = session_token(headers) {
        if let Some(account) = state.sessions.get(&token) {
            // The account may have been removed or changed since the login.
            match state.accounts.get(&account.name) {
                Some(now) if now == account => return Ok(Some(account)),
                _ => state.sessions.remove(&token),
            }
        }
    }
    if state.anonymous {
        Ok(None)
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "log in first: this node's dashboard needs an account",
        ))
    }
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The identity a person acts under in the node's services.
fn identity(state: &HttpState, account: Option<&Account>) -> Identity {
    match account {
        Some(a) => Identity::Operator {
            name: a.name.clone(),
            division: a.division,
            role: a.role,
        },
        None => Identity::Operator {
            name: "anonymous".to_string(),
            division: state.division(),
            role: Role::Viewer,
        },
    }
}

/// A gRPC request carrying the person as its caller.
fn as_caller<T>(
    state: &HttpState,
    account: Option<&Account>,
    addr: SocketAddr,
    message: T,
) -> tonic::Request<T> {
    let id = identity(state, account);
    let serial = match &id {
        Identity::Operator { name, .. } => format!("http:{name}"),
        other => format!("http:{other}"),
    };
    let mut req = tonic::Request::new(message);
    req.extensions_mut().insert(Peer {
        addr: Some(addr),
        cert: Some(Arc::new(CertInfo {
            identity: id,
            serial,
            not_before: 0,
            not_after: i64::MAX,
        })),
    });
    req
}

fn user_json(a: &Account) -> serde_json::Value {
    json!({ "name": a.name, "role": a.role.as_str(), "division": a.division.to_string() })
}

fn division_json(state: &HttpState, code: Code) -> serde_json::Value {
    json!({
        "division": code.to_string(),
        "name": state.handle.ledger.registry().name(code),
        "level": code.level().as_str(),
    })
}

/// The levels whose figures this node holds, from its own down.
fn holds_levels(me: Code) -> Vec<&'static str> {
    let deepest = crate::regions::deepest(me);
    [
        Level::Nation,
        Level::Province,
        Level::City,
        Level::County,
        Level::Town,
        Level::Village,
    ]
    .into_iter()
    .filter(|l| *l >= me.level() && *l <= deepest)
    .map(Level::as_str)
    .collect()
}

async fn me(State(state): St, headers: HeaderMap) -> ApiResult {
    let user = who(&state, &headers).unwrap_or_default();
    ok(json!({
        "node": division_json(&state, state.division()),
        "user": user.as_ref().map(user_json),
        "anonymous": state.anonymous,
        "today": crate::period::today_in_china().to_string(),
        "holds_levels": holds_levels(state.division()),
    }))
}

#[derive(Deserialize)]
struct LoginBody {
    name: String,
    password: String,
}

async fn login(
    State(state): St,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Json(body): Json<LoginBody>,
) -> ApiResult {
    let now = Instant::now();
    if let Err(wait) = state.limiter.check(&body.name, addr.ip(), now) {
        tracing::warn!(
            user = %body.name, client = %addr,
            "login refused: too many failed logins, retry in {} s", wait.as_secs().max(1)
        );
        return Err(ApiError {
            retry_after: Some(wait.as_secs().max(1)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many failed logins: try again in {} s",
                    wait.as_secs().max(1)
                ),
            )
        });
    }
    // argon2 takes tens of milliseconds of CPU: off the async threads.
    let st = state.clone();
    let name = body.name.clone();
    let verified = tokio::task::spawn_blocking(move || st.accounts.verify(&name, &body.password))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let Some(account) = verified else {
        state.limiter.failed(&body.name, addr.ip(), Instant::now());
        crate::security::audit(
            &format!("http login {:?} ({addr})", body.name),
            "-",
            "log in to the dashboard",
            "wrong name or password",
        );
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong name or password",
        ));
    };
    state.limiter.succeeded(&account.name, addr.ip());
    let token = state.sessions.create(account.clone());
    tracing::info!(user = %account.name, role = %account.role, client = %addr, "logged in");
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
    let mut res = Json(json!({ "user": user_json(&account) })).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::bad(e.to_string()))?,
    );
    Ok(res)
}

async fn logout(State(state): St, headers: HeaderMap) -> ApiResult {
    if let Some(t) = session_token(&headers) {
        state.sessions.remove(&t);
    }
    let mut res = Json(json!({})).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("bl_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    Ok(res)
}

#[derive(Deserialize)]
struct DivisionQuery {
    #[serde(default)]
    division: String,
}

fn parse_division(state: &HttpState, raw: &str) -> Result<Code, ApiError> {
    if raw.is_empty() {
        return Ok(state.division());
    }
    Code::parse(raw).map_err(|e| ApiError::bad(format!("division {raw:?}: {e}")))
}

/// The region tree around one division: the path from the node's division down to it and
/// its children, each marked whether this node holds its figures (a drill-down goes there).
async fn tree(State(state): St, headers: HeaderMap, Query(q): Query<DivisionQuery>) -> ApiResult {
    let account = who(&state, &headers)?;
    let division = parse_division(&state, &q.division)?;
    let me = state.division();
    let scope = account.as_ref().map_or(me, |a| a.division);
    if !me.contains(division) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{division} is outside this node's subtree ({me})"),
        ));
    }
    if !scope.contains(division) && !division.contains(scope) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("you may read only within {scope}, not {division}"),
        ));
    }
    let registry = state.handle.ledger.registry();
    let deepest = crate::regions::deepest(me);
    let path: Vec<_> = division
        .lineage(me)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|c| division_json(&state, c))
        .collect();
    let mut children: std::collections::BTreeSet<Code> =
        registry.children(division).map(|d| d.code).collect();
    if division == me {
        let ledger = state.handle.ledger.clone();
        let known = tokio::task::spawn_blocking(move || ledger.known_children())
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        children.extend(known.into_iter().map(|k| k.division));
    }
    let children: Vec<_> = children
        .into_iter()
        .filter(|c| scope.contains(*c) || c.contains(scope))
        .map(|c| {
            let mut v = division_json(&state, c);
            v["drill"] = json!(c.level() <= deepest);
            v
        })
        .collect();
    let mut out = division_json(&state, division);
    out["path"] = json!(path);
    out["children"] = json!(children);
    ok(out)
}

#[derive(Deserialize)]
struct ReportQuery {
    #[serde(default)]
    division: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    level: String,
    period: Option<String>,
    #[serde(default)]
    until: String,
    #[serde(default)]
    each: String,
}

fn current_month() -> String {
    let d = crate::period::today_in_china();
    format!("{:04}-{:02}", d.year(), d.month())
}

async fn report(
    State(state): St,
    headers: HeaderMap,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(q): Query<ReportQuery>,
) -> ApiResult {
    let account = who(&state, &headers)?;
    let scope = match q.scope.as_str() {
        "" | "children" => pb::ReportScope::Children,
        "level" => pb::ReportScope::Level,
        "division" => pb::ReportScope::Division,
        other => {
            return Err(ApiError::bad(format!(
                "scope {other:?}: children, level or division"
            )))
        }
    };
    let req = pb::ReportRequest {
        division: q.division,
        scope: scope as i32,
        level: q.level,
        period: q.period.unwrap_or_else(current_month),
        until: q.until,
        each: q.each,
    };
    let reply = state
        .sync
        .report(as_caller(&state, account.as_ref(), addr, req))
        .await?;
    ok(reply.into_inner())
}

#[derive(Deserialize)]
struct StatsQuery {
    #[serde(default)]
    division: String,
    period: Option<String>,
}

async fn stats(
    State(state): St,
    headers: HeaderMap,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(q): Query<StatsQuery>,
) -> ApiResult {
    let account = who(&state, &headers)?;
    let req = pb::StatsRequest {
        division: q.division,
        period: q.period.unwrap_or_else(current_month),
    };
    let reply = state
        .sync
        .stats(as_caller(&state, account.as_ref(), addr, req))
        .await?;
    ok(reply.into_inner())
}

#[derive(Deserialize)]
struct TicketsQuery {
    #[serde(default)]
    target: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    inventory: String,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    overdue: bool,
    #[serde(default)]
    limit: Option<u32>,
}

async fn tickets(
    State(state): St,
    headers: HeaderMap,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(q): Query<TicketsQuery>,
) -> ApiResult {
    let account = who(&state, &headers)?;
    let req = pb::ListRequest {
        state: q.state,
        target: q.target,
        inventory: q.inventory,
        overdue: q.overdue,
        issuer: q.issuer,
        limit: q.limit.unwrap_or(500),
    };
    let reply = state
        .tickets
        .list(as_caller(&state, account.as_ref(), addr, req))
        .await?;
    ok(reply.into_inner())
}

#[derive(Deserialize)]
struct TicketQuery {
    key: String,
}

async fn ticket(
    State(state): St,
    headers: HeaderMap,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(q): Query<TicketQuery>,
) -> ApiResult {
    let account = who(&state, &headers)?;
    let reply = state
        .tickets
        .show(as_caller(
            &state,
            account.as_ref(),
            addr,
            pb::ShowRequest { key: q.key },
        ))
        .await?;
    ok(reply.into_inner())
}

/// An action needs a person who logged in (an anonymous local reader never acts).
fn logged_in(state: &HttpState, headers: &HeaderMap, what: &str) -> Result<Account, ApiError> {
    match who(state, headers)? {
        Some(a) => Ok(a),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!("log in as an operator to {what}"),
        )),
    }
}

#[derive(Deserialize)]
struct ActBody {
    keys: Vec<String>,
    action: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    into: Vec<String>,
    #[serde(default)]
    actor: String,
}

async fn act(
    State(state): St,
    headers: HeaderMap,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Json(b): Json<ActBody>,
) -> ApiResult {
    let account = logged_in(&state, &headers, &format!("{} tickets", b.action))?;
    let req = pb::ActRequest {
        keys: b.keys,
        action: b.action,
        note: b.note,
        reason: b.reason,
        into: b.into,
        actor: b.actor,
    };
    let reply = state
        .tickets
        .act(as_caller(&state, Some(&account), addr, req))
        .await?;
    ok(reply.into_inner())
}

#[derive(Deserialize)]
struct InventoryBody {
    inventory: String,
    csv: String,
    #[serde(default)]
    actor: String,
}

/// Issue an inventory of tickets (its CSV as in `bottomline tickets inventory`).
async fn inventory(
    State(state): St,
    headers: HeaderMap,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Json(b): Json<InventoryBody>,
) -> ApiResult {
    let account = logged_in(&state, &headers, "issue tickets")?;
    let req = pb::InventoryRequest {
        csv: b.csv.into_bytes(),
        inventory: b.inventory,
        actor: b.actor,
    };
    let reply = state
        .tickets
        .inventory(as_caller(&state, Some(&account), addr, req))
        .await?;
    ok(reply.into_inner())
}

#[derive(Deserialize)]
struct ProgressQuery {
    #[serde(default)]
    division: String,
    #[serde(default)]
    inventory: String,
}

async fn progress(
    State(state): St,
    headers: HeaderMap,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(q): Query<ProgressQuery>,
) -> ApiResult {
    let account = who(&state, &headers)?;
    let req = pb::ProgressRequest {
        division: q.division,
        inventory: q.inventory,
    };
    let reply = state
        .tickets
        .progress(as_caller(&state, account.as_ref(), addr, req))
        .await?;
    ok(reply.into_inner())
}

/// The node's links (what `bottomline status` shows), with the time it was taken.
async fn health(
    State(state): St,
    headers: HeaderMap,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
) -> ApiResult {
    let account = who(&state, &headers)?;
    let reply = state
        .sync
        .status(as_caller(
            &state,
            account.as_ref(),
            addr,
            pb::StatusRequest {},
        ))
        .await?;
    let mut v = serde_json::to_value(reply.into_inner())
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    v["now_unix_ms"] = json!(crate::ledger::unix_ms_now());
    ok(v)
}

/// `/metrics`: the Prometheus text format, or OpenMetrics when the scraper asks for it
/// (operational figures only, no statistics and no personal data, so it is served without a
/// session, as scrapers expect).
async fn metrics(State(state): St, headers: HeaderMap) -> ApiResult {
    let st = state.clone();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (content_type, text) = tokio::task::spawn_blocking(move || {
        let view = super::metrics::node_view(&st.handle, st.silent_after, st.stalled_after)?;
        Ok::<_, anyhow::Error>(st.metrics.render_for(&view, accept.as_deref()))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}
