//! Wiring: open the journal, load the enrollment, build the clients, serve until shutdown.
//!
//! [`start`] returns a [`Running`] listener bound to its address, used by `main` and by tests
//! (bind `127.0.0.1:0`). Shutdown order: stop accepting connections and finish requests in
//! flight (at most `CANON_SHUTDOWN_DEADLINE`, see [`crate::server`]), stop the worker (attempts in flight get a grace period, then stay `running` in the
//! journal and resume at the next start), then let the journal writer commit what is queued.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use canon_shared::drone::{DroneClient, DroneError};
use canon_shared::forge::{self, ForgeError, ForgeKind};
use canon_shared::mirror::Credentials;
use canon_shared::recipe::{Enrollment, EnrollmentError};
use canon_shared::secret::Secret;
use canon_shared::state::StateDir;
use tokio::sync::{watch, Notify};

use crate::config::Settings;
use crate::journal::{retention, Journal, JournalError};
use crate::metrics::Metrics;
use crate::routes::{self, AppState};
use crate::server;
use crate::worker::{self, WorkerCtx};

/// How long attempts in flight may finish after a shutdown request.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The enrollment file is unusable.
    #[error(transparent)]
    Enrollment(#[from] EnrollmentError),
    /// The journal cannot be opened.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The Drone settings are unusable.
    #[error(transparent)]
    Drone(#[from] DroneError),
    /// The forge settings are unusable.
    #[error("forge: {0}")]
    Forge(#[from] ForgeError),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The state directory cannot be created.
    #[error("state directory {path}: {source}")]
    StateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A started listener.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The shared state (journal, metrics).
    pub state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    worker: tokio::task::JoinHandle<()>,
    writer: std::thread::JoinHandle<()>,
}

impl Running {
    /// Stops gracefully: no new connections, requests in flight finish (up to the shutdown
    /// deadline, then their connections are dropped) and attempts in flight too (up to the grace
    /// period), queued journal writes are committed.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        let _ = self.worker.await;
        let _ = self.state.journal.flush().await;
        let Running { state, writer, .. } = self;
        drop(state);
        // The writer ends when the last journal handle is gone; the worker and routes hold the
        // others, and both are finished by now.
        let joined = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::task::spawn_blocking(move || writer.join()),
        )
        .await;
        if joined.is_err() {
            tracing::warn!("The journal writer did not stop in time; every acknowledged write is already durable.");
        }
    }
}

/// Opens everything and starts serving on `settings.bind`.
pub async fn start(settings: &Settings, grace: Duration) -> Result<Running, StartError> {
    let enrollment = Arc::new(Enrollment::load(&settings.enrollment)?);
    std::fs::create_dir_all(&settings.state_dir).map_err(|source| StartError::StateDir {
        path: settings.state_dir.clone(),
        source,
    })?;
    let (journal, writer) = Journal::open(&settings.journal_path())?;
    let drone = DroneClient::new(
        &settings.drone.server,
        settings.drone.token.clone(),
        &settings.drone.repo,
    )?;
    let forge = forge_client(&settings.forge_url, &settings.forge_token)?;
    let mirror_forge = forge_client(&settings.mirror_url, &settings.mirror_token)?;
    let metrics = Arc::new(Metrics::default());
    let notify = Arc::new(Notify::new());
    let state = StateDir::new(&settings.state_dir);
    let credentials = Credentials {
        upstream_token: settings.forge_token.clone(),
        mirror_token: settings.mirror_token.clone(),
        ssh_key: settings.ssh_key.clone(),
        known_hosts: settings.known_hosts.clone(),
        // The forge token is for CANON_FORGE_URL alone (a setting checks one is set with it);
        // git reaches the mirrors with the mirror token only on the enrollment's mirror forge
        // (where its `owner/name` mirrors live), else on CANON_MIRROR_URL.
        upstream_base: settings.forge_url.clone(),
        mirror_base: enrollment
            .forges
            .mirror
            .clone()
            .or_else(|| settings.mirror_url.clone())
            .or_else(|| enrollment.token_bases().mirror),
    };
    let records: Arc<dyn canon_shared::state::StateStore> =
        Arc::from(canon_shared::state::open_store(
            &settings.state_dir,
            settings
                .state_repo
                .as_deref()
                .map(|url| credentials.state_remote(url)),
        ));
    let app = Arc::new(AppState::new(
        settings.webhook_secrets.clone(),
        enrollment.clone(),
        state.clone(),
        journal.clone(),
        metrics.clone(),
        notify.clone(),
    ));
    app.require_admin_token(settings.admin_token.clone());
    app.poll_every(settings.poll_interval);
    if let Some(secret) = &settings.drone_config_secret {
        app.serve_drone_config(routes::drone_config::DroneConfig {
            secret: secret.clone(),
            pipelines: settings.pipelines.clone(),
            drone_repo: settings.drone.repo.clone(),
            drone_branch: settings.drone.branch.clone(),
            public_url: settings.public_url.clone(),
        });
    }
    if settings.state_repo.is_some() {
        app.read_records_from(records.clone());
    }
    let ctx = Arc::new(WorkerCtx {
        enrollment,
        state,
        records,
        forge,
        forge_base: settings.forge_url.clone(),
        mirror_forge,
        credentials,
        drone,
        drone_branch: settings.drone.branch.clone(),
        retry: settings.retry,
        metrics,
    });
    let listener = tokio::net::TcpListener::bind(settings.bind)
        .await
        .map_err(|source| StartError::Bind {
            addr: settings.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: settings.bind,
        source,
    })?;
    let (shutdown, rx) = watch::channel(false);
    let mut limits = settings.http;
    limits.max_connections = server::connection_cap(limits.max_connections);
    let service =
        hyper_util::service::TowerToHyperService::new(warp::service(routes::routes(app.clone())));
    let server = tokio::spawn(server::serve(listener, service, limits, rx.clone()));
    let pruning = retention::run(
        journal.clone(),
        settings.retention,
        retention::PRUNE_EVERY,
        rx.clone(),
    );
    let polling = crate::poll::run(
        app.clone(),
        ctx.credentials.clone(),
        settings.poll_interval,
        rx.clone(),
    );
    let work = worker::run(ctx, journal, settings.workers, notify, rx, grace);
    // All hold a journal handle and end on shutdown; one task so `stop` waits for all.
    let worker = tokio::spawn(async move {
        tokio::join!(work, pruning, polling);
    });
    tracing::info!(%addr, max_connections = limits.max_connections, recipes = app.enrollment.recipes.len(), journal = %app.journal.path().display(), "Listening.");
    Ok(Running {
        addr,
        state: app,
        shutdown,
        server,
        worker,
        writer,
    })
}

/// Returns a client for the forge at `url` when both it and a token are configured.
fn forge_client(
    url: &Option<String>,
    token: &Option<Secret>,
) -> Result<Option<Arc<dyn forge::Forge>>, ForgeError> {
    match (url, token) {
        (Some(url), Some(token)) => {
            forge::client(ForgeKind::guess(url), url, Some(token.clone())).map(Some)
        }
        _ => Ok(None),
    }
}
