//! The Co-op Cloud recipe, read and never run: what a recipe checkout declares and what a deploy
//! of it would use. No child process, no Docker, no settings: the runners, `recipe plan` and tag
//! mode's release check all read a recipe through this module, so they agree on what it says.
//!
//! # Layout
//! - [`env_sample`]: `.env.sample` (and the `export` lines of `abra.sh`) with godotenv's rules,
//!   as abra reads an app's `.env`.
//! - [`interpolate`]: docker compose's variable substitution, the one canon uses for every
//!   compose value it computes.
//! - [`compose`]: the one compose model, a folder: the model types (`mod.rs`), the forms compose
//!   writes values in (`forms`), one file read (`parse`), several files merged and interpolated
//!   (`merge`), and the facts the runners read from it (`view`).
//! - [`files`]: a checkout read for one stack ([`files::RecipeFiles`]): its env and its compose
//!   files.
//! - [`version`]: the version label and the release check (the label must name the tag).
//! - [`secrets`]: a secret's version (its name after the last `_`) and how its value is made
//!   (`length=`, `charset=`, `generate=`), and making it.
//! - [`backupbot`]: what backupbot backs up, read from the services' labels.
//! - [`timeout`]: the one deploy-timeout rule (enrollment, then the recipe's
//!   `coop-cloud.<stack>.timeout` label, then the default) and the stability window's default.
//! - [`plan`]: the deploy plan of a checkout (version, compose files, timeout, secrets, backup),
//!   the one the docker runner deploys with and `recipe plan` prints.
//! - [`names`]: the names of a cold run's stack and of the warm canonical (never longer than
//!   abra's for the same recipe), and the default domain suffix of a run's apps.
//! - [`release_notes`]: the `release/<version>` and `release/next` notes an upgrade reads, and
//!   whether one names a secret.
//! - [`lint`]: the checks `abra recipe lint` makes, each with a stable id: the first stage of
//!   every run, and part of `recipe plan`.
//! - [`policy`]: the deploy policy, what in the compose model reaches into the host, and whether
//!   the enrollment's `host_access:` allows it.
//! - [`routes`]: the HTTP routes the services' traefik labels declare (hosts, path prefix,
//!   port): what the serving check requests and `recipe plan` prints.
//! - `real_shapes` (tests only): the model read on recipes trimmed from public repositories.

pub mod backupbot;
pub mod compose;
pub mod env_sample;
pub mod files;
pub mod interpolate;
pub mod lint;
pub mod names;
pub mod plan;
pub mod policy;
#[cfg(test)]
mod real_shapes;
pub mod release_notes;
pub mod routes;
pub mod secrets;
pub mod timeout;
pub mod version;
