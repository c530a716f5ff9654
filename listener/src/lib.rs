//! canon-listener: receives Gitea/Forgejo/GitHub tag webhooks, journals them durably, syncs the
//! recipe's mirror and starts a Drone build.
//!
//! # Layout
//! - [`clock`]: now as unix milliseconds and as fixed-width RFC 3339 text.
//! - [`config`]: `CANON_*` settings, validated with every problem reported at once; the one table
//!   of variables (kind, default, need, meaning) in `config/table.rs`, which the listener reference rows are
//!   rendered from.
//! - [`verify`]: HMAC-SHA256 over the raw body, constant time, before any parsing.
//! - [`event`]: verified payloads parsed into one fact (new tag, deleted tag, ignored).
//! - [`routes::delivery`]: the webhook extractor, a warp filter that runs [`verify`] and
//!   [`event`] and matches the enrollment, yielding a typed delivery (a new tag is a
//!   `ReleaseVersion`) before any handler runs.
//! - [`journal`]: SQLite (WAL) with group commit; deliveries and one job per (forge, repo, tag):
//!   `intake` journals a delivery, `writer` commits, `queries` reads (jobs come back with a
//!   `RecipeName`, a `ReleaseVersion` and a `CommitId`), `schema` creates.
//! - [`worker`]: `process_one`, which resolves, syncs, asks `canon_shared::gate::build_decision`
//!   and triggers, and the loop that runs it.
//! - [`routes`]: hooks (journal a typed delivery), JSON API, health, metrics, status page, Drone's
//!   configuration extension, the sweeps' reports, how tags reach each recipe.
//! - [`metrics`]: Prometheus text.
//! - [`pipelines`]: canon's Drone pipelines, which one a build gets and its YAML, for
//!   [`routes::drone_config`] (Drone's configuration extension).
//! - [`poll`]: new release tags of upstreams without webhooks, found by listing their refs over
//!   git every `CANON_POLL_INTERVAL` and journaled as deliveries of event `poll`.
//! - [`server`]: the accept loop: connection cap, header timeout, request deadline, bounded
//!   shutdown.
//! - [`app`]: wiring and graceful shutdown.
//! - [`register`]: the `register-hooks` subcommand.

pub mod app;
pub mod clock;
pub mod config;
pub mod event;
pub mod journal;
pub mod metrics;
pub mod pipelines;
pub mod poll;
pub mod register;
pub mod routes;
pub mod server;
pub mod verify;
pub mod worker;
