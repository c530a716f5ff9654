//! The Docker engine, through the docker CLI: every docker command as data, the labels that make
//! canon's objects findable, running a command and reading what the engine answers (objects
//! found by label, their labels, the swarm check, the node's name, the secrets), volumes read and
//! written through helper containers, the sizes of a stack's volumes, and the cleanup of what
//! killed cold runs left behind.
//!
//! Separate from the docker runner ([`crate::runners::docker`]), which decides what to deploy and
//! when a stack is healthy, so the command runner, the sweep and the docker runner share one
//! adapter and none of them reaches into another's steps. It knows nothing of recipes, settings
//! or runs: it takes names, labels and commands as values and runs them through the executor
//! ([`crate::process::exec`]).
//!
//! # Layout
//! - this file: [`EngineError`], why the engine could not be asked or did not answer usefully.
//! - [`cmd`]: every docker command line as a pure function (plain data, unit-tested).
//! - [`labels`]: the labels on everything canon creates ([`labels::RunLabels`]) and the engine
//!   names of a stack's volumes (with a warm volume's `.prev` copy and a promote's marker).
//! - [`client`]: running one docker command, listing and inspecting objects, the swarm check,
//!   the node's name, the swarm secrets.
//! - [`stacks`]: one stack's objects found by label: stopping it, removing everything it created.
//! - [`volumes`]: reading and writing volumes through helper containers ([`volumes::Helpers`]).
//! - [`cleanup`]: removing what killed cold runs left behind ([`cleanup_stale`]) and the sizes of
//!   a stack's volumes ([`volume_sizes`]).

pub mod cleanup;
pub mod client;
pub mod cmd;
pub mod labels;
pub mod stacks;
pub mod volumes;

use std::path::PathBuf;

use crate::process::ProcessError;

pub use self::cleanup::{
    cleanup_stale, cleanup_stale_of, is_stale, parse_size, volume_sizes, CleanupReport, VolumeSize,
};
pub use self::client::ensure_swarm;

/// Why a question to the Docker engine got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A docker command could not run, timed out or exited non-zero.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// There is no docker CLI.
    #[error(
        "the docker runner needs the docker CLI and a Docker engine; `docker` is not installed"
    )]
    NoCli,
    /// `docker info` failed: no engine answers.
    #[error("the docker runner needs a Docker engine, and `docker info` failed: {stderr}")]
    NoEngine {
        /// What `docker info` printed on standard error.
        stderr: String,
    },
    /// The engine is not a swarm manager, so `docker stack deploy` cannot work.
    #[error(
        "the docker runner deploys with `docker stack deploy` and needs a swarm manager, but the \
         engine's swarm state is {state:?}; run `docker swarm init --advertise-addr 127.0.0.1`"
    )]
    NotSwarm {
        /// The engine's `Swarm.LocalNodeState`.
        state: String,
    },
    /// `docker info` did not name the node.
    #[error("cannot tell the Docker node's name: {stderr}")]
    NodeName {
        /// What `docker info` printed on standard error.
        stderr: String,
    },
    /// A command that prints JSON printed something else.
    #[error("{command} printed invalid JSON: {source}")]
    Json {
        /// The command (`docker volume inspect`, `docker system df`).
        command: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A stopped stack's containers, services or networks did not go away in time.
    #[error("timed out after {seconds}s: stack {stack} to stop ({left} containers/services/networks left)")]
    StopTimeout {
        /// The stack.
        stack: String,
        /// How many containers, services and networks were left.
        left: usize,
        /// The limit.
        seconds: u64,
    },
    /// A file a helper container copies in or out could not be read or written.
    #[error("could not {action} {}: {source}", path.display())]
    File {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
