//! Talking to the Docker engine through the docker CLI: run one docker command, list and inspect
//! objects, read their labels; and the swarm check every docker runner entry point makes first.
//!
//! Separate from the command lines ([`super::cmd`], pure data) and from what the runner does
//! with the answers (stacks, volumes, the sweep).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::cmd::{self, Kind};
use crate::runners::exec::{self, Cmd};
use crate::runners::RunnerError;

/// The limit on one docker command (deploys return at once; waits poll).
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one docker command within [`COMMAND_TIMEOUT`]; a non-zero exit is an error.
pub(super) fn docker(cmd: &Cmd) -> Result<exec::Output, RunnerError> {
    exec::run_ok(cmd, COMMAND_TIMEOUT)
}

/// Returns the non-empty lines of a command's standard output.
pub(super) fn lines(output: &exec::Output) -> Vec<String> {
    output
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Returns the ids (names for volumes) of the objects of `kind` carrying `label`.
pub(super) fn list_ids(kind: Kind, label: &str) -> Result<Vec<String>, RunnerError> {
    Ok(lines(&docker(&cmd::list(kind, label))?))
}

/// Returns `docker <kind> inspect` of `ids` as JSON; objects gone meanwhile are left out.
pub(super) fn inspect_json(kind: Kind, ids: &[String]) -> Result<Vec<Value>, RunnerError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let out = exec::run(&cmd::inspect(kind, ids), COMMAND_TIMEOUT)?;
    // An object can vanish between list and inspect; inspect still prints the others.
    match serde_json::from_str::<Vec<Value>>(&out.stdout) {
        Ok(v) => Ok(v),
        Err(_) if !out.success() => Ok(Vec::new()),
        Err(e) => Err(RunnerError::Other(format!(
            "docker {} inspect printed invalid JSON: {e}",
            kind.as_str()
        ))),
    }
}

/// Returns the time in unix seconds (the `canon.created` label).
pub(super) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Returns `bytes` random bytes as hex.
pub(super) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(buf.as_mut_slice());
    hex::encode(buf)
}

/// Fails with a clear message unless a Docker engine answers and is a swarm manager.
pub fn ensure_swarm() -> Result<(), RunnerError> {
    let out = exec::run(&cmd::swarm_state(), Duration::from_secs(30)).map_err(|e| match e {
        RunnerError::Spawn { .. } => RunnerError::Other(
            "the docker runner needs the docker CLI and a Docker engine; `docker` is not installed"
                .into(),
        ),
        other => other,
    })?;
    if !out.success() {
        return Err(RunnerError::Other(format!(
            "the docker runner needs a Docker engine, and `docker info` failed: {}",
            out.stderr.trim()
        )));
    }
    match out.stdout.trim() {
        "active" => Ok(()),
        state => Err(RunnerError::Other(format!(
            "the docker runner deploys with `docker stack deploy` and needs a swarm manager, but \
             the engine's swarm state is {state:?}; run `docker swarm init --advertise-addr 127.0.0.1`"
        ))),
    }
}

/// Returns the name of the Docker node this engine is (where the volumes it creates live).
pub(super) fn node_name() -> Result<String, RunnerError> {
    let out = exec::run(&cmd::node_name(), Duration::from_secs(30))?;
    let name = out.stdout.trim();
    if !out.success() || name.is_empty() {
        return Err(RunnerError::Other(format!(
            "cannot tell the Docker node's name: {}",
            out.stderr.trim()
        )));
    }
    Ok(name.to_string())
}

/// Returns the labels of `volume`.
pub(super) fn volume_labels(volume: &str) -> Result<BTreeMap<String, String>, RunnerError> {
    let info = inspect_json(Kind::Volume, &[volume.to_string()])?;
    Ok(info
        .first()
        .map(|i| label_map(&i["Labels"]))
        .unwrap_or_default())
}

/// Returns an inspected object's labels (a JSON object of strings) as a map; empty when none.
pub(super) fn label_map(labels: &Value) -> BTreeMap<String, String> {
    labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}
