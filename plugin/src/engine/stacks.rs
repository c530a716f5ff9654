//! One stack's objects on the engine, found by label: stopping it (its services removed and its
//! containers and networks gone, volumes kept) and removing everything it created.
//!
//! Separate from the docker runner's stack ([`crate::runners::docker`]), which decides what to
//! deploy: this only finds the stack's objects by label and removes them, and takes the stack's
//! name as a value. The cleanup of killed runs ([`super::cleanup`]) does the same for every
//! stale stack at once.

use std::time::{Duration, Instant};

use super::client::{list_ids, run, STOP_TIMEOUT};
use super::cmd::{self, Kind};
use super::labels;
use super::EngineError;

/// Returns the label filter of what `docker stack deploy` created for `stack`.
pub fn stack_filter(stack: &str) -> String {
    format!("{}={stack}", labels::STACK_LABEL)
}

/// Returns the label filter of what canon created for `stack` (helpers included).
pub fn canon_filter(stack: &str) -> String {
    format!("{}={stack}", labels::STACK_NAME_LABEL)
}

/// Removes the services of `stack` and waits until its containers and networks are gone
/// (volumes stay), at most [`STOP_TIMEOUT`].
pub fn stop(stack: &str) -> Result<(), EngineError> {
    let filter = stack_filter(stack);
    let services = list_ids(Kind::Service, &filter)?;
    if !services.is_empty() {
        let out = run(&cmd::stack_rm(stack))?;
        if !out.success() && !out.stderr.contains("Nothing found") {
            tracing::warn!(%stack, stderr = %out.stderr.trim(), "docker stack rm reported an error");
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        // The stack's networks go last, after its containers: a stopped stack has none left,
        // so a later deploy or teardown never races their removal.
        let left = list_ids(Kind::Container, &filter)?.len()
            + list_ids(Kind::Service, &filter)?.len()
            + list_ids(Kind::Network, &filter)?.len();
        if left == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(EngineError::StopTimeout {
                stack: stack.to_string(),
                left,
                seconds: STOP_TIMEOUT.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Removes everything of `stack`: services, containers (tasks and helpers), volumes, secrets,
/// networks. Returns what could not be removed.
pub fn remove_all(stack: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = stop(stack) {
        problems.push(e.to_string());
    }
    for kind in Kind::ALL {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut ids = Vec::new();
            for filter in [stack_filter(stack), canon_filter(stack)] {
                match list_ids(kind, &filter) {
                    Ok(found) => ids.extend(found),
                    Err(e) => problems.push(e.to_string()),
                }
            }
            ids.sort();
            ids.dedup();
            if ids.is_empty() {
                break;
            }
            let out = run(&cmd::remove(kind, &ids));
            let failed = match out {
                Ok(o) if o.success() => None,
                Ok(o) => Some(o.stderr.trim().to_string()),
                Err(e) => Some(e.to_string()),
            };
            let Some(why) = failed else { continue };
            // A volume or network can stay "in use" for a moment after its container went.
            if Instant::now() >= deadline {
                problems.push(format!("could not remove {} {ids:?}: {why}", kind.as_str()));
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    problems
}
