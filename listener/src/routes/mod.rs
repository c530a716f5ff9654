//! The HTTP surface: webhook endpoints, the JSON API, health, metrics, the status page and the
//! recipes' badges.
//!
//! A webhook is verified and parsed into a typed delivery by the extractor in [`delivery`] before
//! its handler ([`hooks`]) journals it; every other handler only reads. Work happens in the
//! worker. Every route shares one [`AppState`]. Reads other than the probes pass
//! [`access::admin`] first; the badges are public too (a README's image carries no token).

pub mod access;
pub mod api;
pub mod badge;
pub mod delivery;
pub mod drone_config;
pub mod hooks;
pub mod status;
pub mod sweeps;
pub mod tag_sources;

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};

use canon_shared::recipe::Enrollment;
use canon_shared::secret::Secret;
use canon_shared::state::StateDir;
use tokio::sync::Notify;
use warp::http::StatusCode;
use warp::Filter;

use crate::journal::{DeliveryRow, Journal};
use crate::metrics::Metrics;

/// How many rejected deliveries are kept in memory for `/api/deliveries` (never stored).
const REJECTED_KEPT: usize = 200;
/// How many of them may share one reason: a flood of one kind (unsigned deliveries) keeps its
/// newest few and never pushes the other rejections out.
const REJECTED_PER_REASON: usize = 20;
/// At most one log line per rejection reason this often, with how many it stands for.
const REJECTED_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// How many reasons the log summary tells apart; rejections for more share one line.
const REJECTED_REASONS: usize = 32;
/// The summary key of rejections past [`REJECTED_REASONS`].
const OTHER_REASONS: &str = "other reasons";

/// What every route shares.
pub struct AppState {
    /// Webhook secrets (any one verifies).
    pub secrets: Vec<Secret>,
    /// The enrolled recipes.
    pub enrollment: Arc<Enrollment>,
    /// The state directory (canonicals).
    pub state: StateDir,
    /// The journal.
    pub journal: Journal,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Wakes the worker when a job is accepted.
    pub notify: Arc<Notify>,
    admin_token: OnceLock<Secret>,
    /// The git state repository the canonical records are in, when one is configured.
    state_repo: OnceLock<Arc<dyn canon_shared::state::StateStore>>,
    rejected: Mutex<VecDeque<DeliveryRow>>,
    rejected_log: Mutex<HashMap<String, RejectedSince>>,
    drone_config: OnceLock<drone_config::DroneConfig>,
    poll_interval: OnceLock<std::time::Duration>,
    sweeps: sweeps::SweepRecord,
}

impl AppState {
    /// Builds the shared state.
    pub fn new(
        secrets: Vec<Secret>,
        enrollment: Arc<Enrollment>,
        state: StateDir,
        journal: Journal,
        metrics: Arc<Metrics>,
        notify: Arc<Notify>,
    ) -> Self {
        Self {
            secrets,
            enrollment,
            state,
            journal,
            metrics,
            notify,
            admin_token: OnceLock::new(),
            state_repo: OnceLock::new(),
            rejected: Mutex::new(VecDeque::new()),
            rejected_log: Mutex::new(HashMap::new()),
            drone_config: OnceLock::new(),
            poll_interval: OnceLock::new(),
            sweeps: sweeps::SweepRecord::default(),
        }
    }

    /// Reads canonical records from `store` (a state repository) instead of the state dir.
    pub fn read_records_from(&self, store: Arc<dyn canon_shared::state::StateStore>) {
        let _ = self.state_repo.set(store);
    }

    /// Returns the state repository the records are read from, when one is configured.
    pub fn state_repo(&self) -> Option<Arc<dyn canon_shared::state::StateStore>> {
        self.state_repo.get().cloned()
    }

    /// Requires `token` (when given) as a bearer token on `/`, `/api/*` and `/metrics`. Called
    /// once, before serving; a token once set is never replaced or removed.
    pub fn require_admin_token(&self, token: Option<Secret>) {
        if let Some(token) = token {
            // Only a second call fails, and the first token must stay.
            let _ = self.admin_token.set(token);
        }
    }

    /// Returns the admin token, when one is required.
    pub fn admin_token(&self) -> Option<&Secret> {
        self.admin_token.get()
    }

    /// Serves Drone's configuration extension at `/drone/config` with `config`. Called once,
    /// before serving.
    pub fn serve_drone_config(&self, config: drone_config::DroneConfig) {
        let _ = self.drone_config.set(config);
    }

    /// Returns the configuration extension's settings, when it is served.
    pub fn drone_config(&self) -> Option<&drone_config::DroneConfig> {
        self.drone_config.get()
    }

    /// Records that upstreams are polled every `interval` (zero: never). Called once, before
    /// serving.
    pub fn poll_every(&self, interval: std::time::Duration) {
        let _ = self.poll_interval.set(interval);
    }

    /// Returns true when upstreams without webhooks are polled.
    pub fn polling(&self) -> bool {
        self.poll_interval.get().is_some_and(|d| !d.is_zero())
    }

    /// Returns what the sweeps reported.
    pub fn sweeps(&self) -> &sweeps::SweepRecord {
        &self.sweeps
    }

    /// Keeps a rejected delivery in memory (rejections are never journaled): the newest
    /// [`REJECTED_PER_REASON`] of each reason, [`REJECTED_KEPT`] in all.
    pub fn remember_rejected(&self, row: DeliveryRow) {
        let mut q = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        let same = q.iter().filter(|r| r.reason == row.reason).count();
        if same >= REJECTED_PER_REASON {
            if let Some(oldest) = q.iter().position(|r| r.reason == row.reason) {
                q.remove(oldest);
            }
        } else if q.len() >= REJECTED_KEPT {
            q.pop_front();
        }
        q.push_back(row);
    }

    /// Counts one rejection for `reason` and returns whether a log line is due for it: at most
    /// one per reason every [`REJECTED_LOG_EVERY`], standing for every rejection since the last
    /// one (`Some(count)`); `None` while the line is not due.
    pub fn rejection_to_log(&self, reason: &str) -> Option<u64> {
        let now = std::time::Instant::now();
        let mut log = self.rejected_log.lock().unwrap_or_else(|p| p.into_inner());
        let key = if log.contains_key(reason) || log.len() < REJECTED_REASONS {
            reason
        } else {
            OTHER_REASONS
        };
        let since = log.entry(key.to_string()).or_insert(RejectedSince {
            logged: None,
            count: 0,
        });
        since.count += 1;
        match since.logged {
            Some(at) if now.duration_since(at) < REJECTED_LOG_EVERY => None,
            _ => {
                since.logged = Some(now);
                Some(std::mem::take(&mut since.count))
            }
        }
    }

    /// Returns the rejected deliveries kept in memory, newest first.
    pub fn rejected(&self) -> Vec<DeliveryRow> {
        let q = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        q.iter().rev().cloned().collect()
    }
}

/// Rejections of one reason since its last log line.
struct RejectedSince {
    logged: Option<std::time::Instant>,
    count: u64,
}

/// A boxed reply, so every handler returns one type.
pub type Reply = Box<dyn warp::Reply>;

/// Returns a JSON reply with `status`.
pub fn reply_json<T: serde::Serialize>(status: StatusCode, body: &T) -> Reply {
    Box::new(warp::reply::with_status(warp::reply::json(body), status))
}

fn with_state(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Returns every route.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Reply,), Error = Infallible> + Clone + Send + Sync + 'static {
    // Verified and parsed by the extractor; the handler only journals.
    let rejected_state = state.clone();
    let hooks = delivery::delivery(state.clone())
        .and(with_state(state.clone()))
        .and_then(hooks::handle)
        .recover(move |r| delivery::answer_rejected(rejected_state.clone(), r))
        .unify();
    // The path first, then the method: a path no route serves is a 404 whatever the method,
    // and a served path asked with the wrong method a 405. Every GET route answers HEAD too.
    let get =
        |p: warp::filters::BoxedFilter<()>| p.and(get_or_head()).and(with_state(state.clone()));
    // Behind the admin token, when one is set.
    let read = |p: warp::filters::BoxedFilter<()>| {
        p.and(get_or_head())
            .and(access::admin(state.clone()))
            .and(with_state(state.clone()))
    };
    let query = || warp::query::<HashMap<String, String>>();
    let healthz = get(warp::path!("healthz").boxed()).and_then(api::healthz);
    let readyz = get(warp::path!("readyz").boxed()).and_then(api::readyz);
    let metrics = read(warp::path!("metrics").boxed()).and_then(api::metrics);
    let jobs = read(warp::path!("api" / "jobs").boxed())
        .and(query())
        .and_then(api::jobs);
    let deliveries = read(warp::path!("api" / "deliveries").boxed())
        .and(query())
        .and_then(api::deliveries);
    let job_for_tag = warp::path!("api" / "recipes" / String / "tags" / String / "job")
        .and(get_or_head())
        .and(access::admin(state.clone()))
        .and(with_state(state.clone()))
        .and_then(api::job_for_tag);
    let sweep_report = warp::path!("api" / "sweeps")
        .and(warp::post())
        .and(access::admin(state.clone()))
        .and(warp::body::content_length_limit(drone_config::MAX_BODY))
        .and(warp::body::bytes())
        .and(with_state(state.clone()))
        .and_then(sweeps::report);
    let page = read(warp::path::end().boxed()).and_then(status::page);
    let badge = warp::path!("badge" / String)
        .and(get_or_head())
        .and(warp::header::optional::<String>("if-none-match"))
        .and(with_state(state.clone()))
        .and_then(badge::handle);
    let drone_config = warp::path!("drone" / "config")
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(warp::body::content_length_limit(drone_config::MAX_BODY))
        .and(warp::body::bytes())
        .and(with_state(state.clone()))
        .and_then(drone_config::handle);
    hooks
        .or(drone_config)
        .unify()
        .or(healthz)
        .unify()
        .or(readyz)
        .unify()
        .or(metrics)
        .unify()
        .or(jobs)
        .unify()
        .or(deliveries)
        .unify()
        .or(job_for_tag)
        .unify()
        .or(sweep_report)
        .unify()
        .or(page)
        .unify()
        .or(badge)
        .unify()
        .recover(recover)
        .unify()
}

/// Matches GET and HEAD (the server sends a HEAD answer's status and headers, not its body).
fn get_or_head() -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

async fn recover(r: warp::Rejection) -> Result<Reply, Infallible> {
    if r.find::<access::Unauthorized>().is_some() {
        return access::unauthorized();
    }
    let (status, msg) = if r.is_not_found() {
        (StatusCode::NOT_FOUND, "not found")
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else {
        (StatusCode::BAD_REQUEST, "bad request")
    };
    Ok(reply_json(status, &serde_json::json!({ "error": msg })))
}
