//! canon-testkit: what the tests of every canon crate share, so each fixture and stand-in exists
//! once. Dev-only (`publish = false`); it depends on no canon crate, so canon-shared's own unit
//! tests can use it too, and its stand-ins speak plain strings and JSON values.
//!
//! # Layout
//! - [`git`]: hermetic git (the machine's git configuration never leaks in), bare repositories,
//!   a work tree that commits and tags, ref listings; [`git::http`]: a git smart-HTTP server
//!   (`git http-backend` behind basic auth) on loopback.
//! - [`docs`]: the README and `docs/` as Markdown: their links and headings, the README's
//!   length.
//! - [`docker`]: the real engine under the runner tests, as a swarm, with the fixture image.
//! - [`drone`]: the Drone stand-in: records build creations and lists them, with failure
//!   injection (500s, a forced status, `null` answers).
//! - [`forge`]: Gitea/Forgejo and GitHub stand-ins over one in-memory repository (PRs, tags,
//!   comments, hooks).
//! - [`loopback`]: the HTTP server under the stand-ins, the request record they keep, and a port
//!   nothing listens on.
//! - [`process`]: child processes with a deadline, so a hung command fails its test, and their
//!   output as one text.
//! - [`workspace`]: where the workspace's own files (fixtures, scripts, README) are.
//!
//! Panicking is how a fixture reports a broken test environment, so `unwrap`/`expect` are used
//! freely here, as in tests.

pub mod docker;
pub mod docs;
pub mod drone;
pub mod forge;
pub mod git;
pub mod loopback;
pub mod process;
pub mod workspace;
