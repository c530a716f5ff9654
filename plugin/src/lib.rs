//! canon-plugin: the Drone plugin and CLI.
//!
//! # Layout
//! - [`cli`]: the command line (clap) and the dispatch to each mode.
//! - [`versions_cmd`]: `versions sort|latest|check`, release-tag tools for people and checks.
//! - [`canonical_cmd`]: `canonical show|pin|unpin`, the state of one recipe's canonical.
//! - [`mirror_cmd`]: `mirror-sync`, one repo pair or every enrolled recipe.
//! - [`run`]: tag mode: verify the tag, cold run through a runner, the gate, the promote.
//! - [`settings`]: `PLUGIN_*`, `DRONE_*` and flags into validated settings; the settings table.
//! - [`checkout`]: fresh per-run checkouts of a recipe's mirror.
//! - [`compose`]: a recipe's `compose.yml` as a typed model; the version-label check.
//! - [`report`]: the step log's summary and the JSON report of a run.
//! - [`runners`]: the runner seam and its implementations.
//! - [`sweep`]: the weekly sweep.

pub mod canonical_cmd;
pub mod checkout;
pub mod cli;
pub mod compose;
pub mod mirror_cmd;
pub mod report;
pub mod run;
pub mod runners;
pub mod settings;
pub mod sweep;
pub mod versions_cmd;
