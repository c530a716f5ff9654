//! canon-shared: the domain of canon and its clients, with no process or environment access
//! except [`process_env`], which both binaries call first thing in `main`.
//!
//! # Layout
//! - [`build_info`]: the release version and the commit `--version` prints.
//! - [`version`]: Co-op Cloud release tags (`<recipe-semver>+<upstream>`): parse, order, latest.
//! - [`recipe`]: `RecipeName` (a path-safe name) and the enrollment file.
//! - [`commit`]: `CommitId`, a full git commit id validated where it enters canon.
//! - [`state`]: the canonical record, the decision history and the per-recipe lock on disk, and
//!   the host-local holds on a recipe's warm data ([`state::holds`]); record and report times
//!   ([`state::now`], [`state::rfc3339`]).
//! - [`gate`]: every decision over a recipe's canonical, as pure functions over facts: the promote
//!   gate, whether a tag is built at all (listener and sweep), the sweep's pick.
//! - [`badge`]: where a canonical stands against newer tags, and the one badge SVG renderer.
//! - [`secret`]: a string that never prints.
//! - [`settings`]: what both binaries' settings share: every problem reported at once, raw
//!   values from `(name, value)` pairs, and one parser per kind of value (no environment access).
//! - [`console`]: the binaries' stdout and stderr lines; a closed pipe ends a command as SIGPIPE
//!   would, never with a panic.
//! - [`error_chain`]: an error and its causes as text, the one way every binary prints errors.
//! - [`fault`]: test-only fault points (debug builds abort where a test says, like `kill -9`).
//! - [`mirror`]: faithful git mirror sync (git2), the credentials every remote is built from, and
//!   SSH host key checking against an explicit OpenSSH `known_hosts` file
//!   ([`mirror::known_hosts`]).
//! - [`forge`]: Gitea/Forgejo (reqwest) and GitHub (octocrab) behind one small trait.
//! - [`drone`]: the Drone REST client (start a build, list builds).
//! - [`trigger`]: the one trigger path the listener, the sweep and `mirror-sync` share: sync and
//!   tidy a recipe's mirror (closing PRs merged upstream), start a recipe's Drone build once.
//! - [`http_client`]: the HTTP client of every API canon calls with a credential: timeouts, and
//!   redirects only within the configured origin.
//! - [`process_env`]: canon's own environment read once, credentials taken out of it and out of
//!   `/proc/<pid>/environ`, the process made non-dumpable; what a child may inherit.
//! - [`listener_api`]: the listener's HTTP API answers (the contract) and a client for them.
//! - [`preflight`]: the offline checks of `check` (enrollment, credential files, state dir).

pub mod badge;
pub mod bounded_read;
pub mod build_info;
pub mod commit;
pub mod console;
pub mod drone;
pub mod error_chain;
pub mod fault;
pub mod forge;
pub mod gate;
pub mod http_client;
pub mod listener_api;
pub mod mirror;
pub mod preflight;
pub mod process_env;
pub mod recipe;
pub mod secret;
pub mod settings;
pub mod state;
pub mod trigger;
pub mod version;
