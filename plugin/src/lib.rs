//! canon-plugin: the Drone plugin and CLI.
//!
//! # Layout
//! - [`cli`]: the command line (clap) and Drone's way in: the one place that reads the settings
//!   and picks the mode.
//! - [`cmd`]: subcommand glue, one file per subcommand (`versions`, `canonical`, `mirror-sync`,
//!   `recipe`, `run`, `sweep`).
//! - [`exit`]: exit codes and error printing, the leaf every mode uses.
//! - [`settings`]: `PLUGIN_*`, `DRONE_*` and flags into validated settings; the settings table
//!   (`settings/table.rs`) that the flags, the variables, the defaults and the README rows come from.
//! - [`tag_mode`]: verify the tag, a cold run through a runner, the gate, the promote.
//! - [`sweep`]: the weekly sweep: decide for every recipe, then start Drone builds or run tag
//!   mode inline.
//! - [`remotes`]: the run's git credentials, with the SSH key written to a private file.
//! - [`checkout`]: fresh per-run checkouts of a recipe's mirror.
//! - [`compose`]: a recipe's `compose.yml` as a typed model; the version-label check.
//! - [`report`]: the step log's summary and the JSON report of a run.
//! - [`runners`]: the stage ladder, the child-process executor, and the command, docker and abra
//!   runners.
//!
//! The promote itself is decided in `canon_shared::gate`; this crate gathers the facts and acts.

pub mod checkout;
pub mod cli;
pub mod cmd;
pub mod compose;
pub mod exit;
pub mod remotes;
pub mod report;
pub mod runners;
pub mod settings;
pub mod sweep;
pub mod tag_mode;
