//! Asking the Docker engine through the docker CLI: run one docker command, list and inspect
//! objects, read their labels; the swarm check every docker entry point makes first, the node's
//! name and the swarm secrets.
//!
//! Separate from the command lines ([`super::cmd`], pure data) and from what the runners do with
//! the answers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use super::cmd::{self, Kind};
use super::labels::label_map;
use super::EngineError;
use crate::process::exec::{self, Cmd, Output};
use crate::process::ProcessError;

/// The limit on one docker command (deploys return at once; waits poll).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The limit on a stack's containers going away after `docker stack rm`.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one docker command within [`COMMAND_TIMEOUT`]; a non-zero exit is an error.
pub fn docker(cmd: &Cmd) -> Result<Output, EngineError> {
    Ok(exec::run_ok(cmd, COMMAND_TIMEOUT)?)
}

/// Runs one docker command within [`COMMAND_TIMEOUT`] and returns its output whatever its exit
/// code (the caller reads the error text: "No such volume", "in use").
pub fn run(cmd: &Cmd) -> Result<Output, EngineError> {
    Ok(exec::run(cmd, COMMAND_TIMEOUT)?)
}

/// Returns the non-empty lines of a command's standard output.
pub fn lines(output: &Output) -> Vec<String> {
    output
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Returns the ids (names for volumes) of the objects of `kind` carrying `label`.
pub fn list_ids(kind: Kind, label: &str) -> Result<Vec<String>, EngineError> {
    Ok(lines(&docker(&cmd::list(kind, label))?))
}

/// Returns `docker <kind> inspect` of `ids` as JSON; objects gone meanwhile are left out.
pub fn inspect_json(kind: Kind, ids: &[String]) -> Result<Vec<Value>, EngineError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let out = run(&cmd::inspect(kind, ids))?;
    // An object can vanish between list and inspect; inspect still prints the others.
    match serde_json::from_str::<Vec<Value>>(&out.stdout) {
        Ok(v) => Ok(v),
        Err(_) if !out.success() => Ok(Vec::new()),
        Err(source) => Err(EngineError::Json {
            command: format!("docker {} inspect", kind.as_str()),
            source,
        }),
    }
}

/// Fails with a clear message unless a Docker engine answers and is a swarm manager.
pub fn ensure_swarm() -> Result<(), EngineError> {
    let out = exec::run(&cmd::swarm_state(), Duration::from_secs(30)).map_err(|e| match e {
        ProcessError::Spawn { .. } => EngineError::NoCli,
        other => other.into(),
    })?;
    if !out.success() {
        return Err(EngineError::NoEngine {
            stderr: out.stderr.trim().to_string(),
        });
    }
    match out.stdout.trim() {
        "active" => Ok(()),
        state => Err(EngineError::NotSwarm {
            state: state.to_string(),
        }),
    }
}

/// Returns the name of the Docker node this engine is (where the volumes it creates live).
pub fn node_name() -> Result<String, EngineError> {
    let out = exec::run(&cmd::node_name(), Duration::from_secs(30))?;
    let name = out.stdout.trim();
    if !out.success() || name.is_empty() {
        return Err(EngineError::NodeName {
            stderr: out.stderr.trim().to_string(),
        });
    }
    Ok(name.to_string())
}

/// Returns the labels of `volume`.
pub fn volume_labels(volume: &str) -> Result<BTreeMap<String, String>, EngineError> {
    let info = inspect_json(Kind::Volume, &[volume.to_string()])?;
    Ok(info
        .first()
        .map(|i| label_map(&i["Labels"]))
        .unwrap_or_default())
}

/// Returns the names of every swarm secret on the engine.
pub fn secret_names() -> Result<BTreeSet<String>, EngineError> {
    Ok(lines(&docker(&cmd::secret_names())?).into_iter().collect())
}
