//! canon-plugin: the Drone plugin and CLI.
//!
//! # Layout
//! - [`cli`]: the command line (clap) and Drone's way in: the one place that reads the settings
//!   and picks the mode.
//! - [`cmd`]: subcommand glue, one file per subcommand (`versions`, `canonical`, `mirror-sync`,
//!   `recipe`, `run`, `sweep`).
//! - [`exit`]: exit codes and error printing, the leaf every mode uses.
//! - [`settings`]: `PLUGIN_*`, `DRONE_*` and flags into validated settings; the settings table
//!   (`settings/table.rs`) that the flags, the variables, the defaults and the settings reference rows come from.
//! - [`tag_mode`]: one folder of steps that each return what they established (verify the tag,
//!   prepare the checkout and the one run context, run the runner, promote under the lock), and
//!   one function that assembles the report from them.
//! - [`sweep`]: the weekly sweep: decide for every recipe, then start Drone builds or run tag
//!   mode inline.
//! - [`remotes`]: the run's git credentials, with the SSH key written to a private file.
//! - [`checkout`]: fresh per-run checkouts of a recipe's mirror.
//! - [`recipe`]: the Co-op Cloud recipe, pure: `.env.sample` and `abra.sh`, interpolation, the
//!   one compose model, the version label, secrets, backupbot labels, the deploy timeout and
//!   the deploy plan, the stack names and the apps' default domain suffix. Reads files, runs
//!   nothing. The compose model is a folder of its own (`recipe/compose/`).
//! - [`report`]: the step log's summary and the JSON report of a run.
//! - [`runners`]: the runner interface, the stage ladder, the warm runs' copies every runner
//!   shares (`runners/warm.rs`), and the command, docker and abra runners, none importing
//!   another; one small file builds the runner the settings name.
//! - [`engine`]: the Docker engine through the docker CLI (command lines, labels, objects found
//!   by label, helper containers for volumes, stale-object cleanup, volume sizes), with its own
//!   error; used by the runners, the sweep's upkeep and nothing else.
//! - [`process`]: the one child-process executor and the run's transcript, the bottom layer:
//!   it takes values and imports nothing of this crate above it.
//!
//! Imports run down only: modes (`cli`, `cmd`, `tag_mode`, `sweep`) -> `runners` -> `engine` ->
//! `process`; `scripts/module-cycles.py` checks there is no circle, also inside each folder.
//!
//! The promote itself is decided in `canon_shared::gate`; this crate gathers the facts and acts.

pub mod checkout;
pub mod cli;
pub mod cmd;
pub mod engine;
pub mod exit;
pub mod process;
pub mod recipe;
pub mod remotes;
pub mod report;
pub mod runners;
pub mod settings;
pub mod sweep;
pub mod tag_mode;
