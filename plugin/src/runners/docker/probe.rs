//! Whether a deployed stack is healthy: every replica running on the current spec, no update in
//! flight, the version label the files say, and the recipe's HTTP health path answering.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cmd::{self, Kind};
use super::engine::{docker, inspect_json, lines, list_ids, COMMAND_TIMEOUT};
use super::stack::Stack;
use crate::runners::compose_facts::RecipeFiles;
use crate::runners::deploy_timeout::{self, DeployTimeout};
use crate::runners::exec;
use crate::runners::RunnerError;

/// Whether a stack is ready, and if not, what it is waiting for.
pub(super) enum Health {
    Ready,
    Waiting(String),
}

impl Stack {
    /// One look at the stack: every service has all its replicas running (healthy, for a
    /// service with a healthcheck) on the current spec, no update in flight, and the version
    /// label the files say.
    fn health(&self, files: &RecipeFiles) -> Result<Health, RunnerError> {
        let ids = list_ids(Kind::Service, &self.stack_filter())?;
        if ids.is_empty() {
            return Ok(Health::Waiting("no services yet".into()));
        }
        let services = inspect_json(Kind::Service, &ids)?;
        let task_ids = lines(&docker(&cmd::running_tasks(&ids))?);
        let tasks = if task_ids.is_empty() {
            Vec::new()
        } else {
            let out = exec::run(&cmd::inspect_tasks(&task_ids), COMMAND_TIMEOUT)?;
            serde_json::from_str::<Vec<Value>>(&out.stdout).unwrap_or_default()
        };
        let mut waiting = Vec::new();
        for svc in &services {
            let id = svc["ID"].as_str().unwrap_or_default();
            let name = svc["Spec"]["Name"].as_str().unwrap_or_default();
            let short = name
                .strip_prefix(&format!("{}_", self.name))
                .unwrap_or(name);
            let update = svc["UpdateStatus"]["State"].as_str().unwrap_or("");
            if matches!(update, "rollback_completed" | "rollback_paused") {
                return Err(RunnerError::Other(format!(
                    "service {short}: the update failed and swarm rolled it back ({})",
                    svc["UpdateStatus"]["Message"].as_str().unwrap_or("")
                )));
            }
            let spec = &svc["Spec"]["TaskTemplate"]["ContainerSpec"];
            let running = tasks
                .iter()
                .filter(|t| {
                    t["ServiceID"].as_str() == Some(id)
                        && t["Status"]["State"].as_str() == Some("running")
                        && same_spec(&t["Spec"]["ContainerSpec"], spec)
                })
                .count();
            let wanted = svc["Spec"]["Mode"]["Replicated"]["Replicas"]
                .as_u64()
                .unwrap_or(1) as usize;
            if running < wanted {
                waiting.push(format!("{short} {running}/{wanted} running"));
            } else if matches!(update, "updating" | "rollback_started") {
                waiting.push(format!("{short} {update}"));
            }
            let expected = files
                .facts
                .services
                .iter()
                .find(|s| s.name == short)
                .and_then(|s| s.version_label());
            if let Some(expected) = expected {
                let deployed = svc["Spec"]["Labels"]
                    .as_object()
                    .and_then(|m| {
                        m.iter()
                            .find(|(k, _)| k.starts_with("coop-cloud.") && k.ends_with(".version"))
                    })
                    .and_then(|(_, v)| v.as_str());
                if deployed != Some(expected) {
                    waiting.push(format!(
                        "{short} version label {} (want {expected})",
                        deployed.unwrap_or("missing")
                    ));
                }
            }
        }
        let declared = files.facts.services.len();
        if services.len() < declared {
            waiting.push(format!("{} of {declared} services", services.len()));
        }
        Ok(if waiting.is_empty() {
            Health::Ready
        } else {
            Health::Waiting(waiting.join(", "))
        })
    }

    /// Returns the deploy timeout of `files` for this stack: the enrollment's, else the recipe's
    /// `coop-cloud.<stack>.timeout` label, else the default; logs which one applies.
    pub(super) fn deploy_timeout(&self, files: &RecipeFiles) -> Result<DeployTimeout, RunnerError> {
        let key = format!("coop-cloud.{}.timeout", self.name);
        let label = files
            .facts
            .timeout_label(&self.name)
            .map(|v| (key.as_str(), v));
        let timeout = deploy_timeout::resolve(self.enrollment_timeout, label)
            .map_err(|e| RunnerError::Other(e.to_string()))?;
        tracing::info!(
            stack = %self.name,
            seconds = timeout.duration.as_secs(),
            source = %timeout.source,
            "deploy timeout"
        );
        Ok(timeout)
    }

    /// Waits until the stack is healthy (and answers the HTTP probe, when the recipe names a
    /// health path), within `timeout`.
    pub(super) fn wait_healthy(
        &self,
        files: &RecipeFiles,
        timeout: DeployTimeout,
    ) -> Result<(), RunnerError> {
        let started = Instant::now();
        let deadline = started + timeout.duration;
        loop {
            let last = match self.health(files)? {
                Health::Ready => break,
                Health::Waiting(why) => why,
            };
            if Instant::now() >= deadline {
                return Err(RunnerError::Timeout {
                    what: format!("stack {} to become healthy ({last}; {timeout})", self.name),
                    seconds: timeout.duration.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        tracing::info!(stack = %self.name, seconds = started.elapsed().as_secs_f64(), "stack is healthy");
        if let Some(path) = &self.health_path {
            self.probe(files, path, deadline, timeout)?;
        }
        Ok(())
    }

    /// GETs `path` from the probe target's container until a 2xx or the deadline. The address
    /// is the container's leg on `docker_gwbridge`, which the host reaches even where swarm's
    /// ingress routing mesh does not work.
    fn probe(
        &self,
        files: &RecipeFiles,
        path: &str,
        deadline: Instant,
        timeout: DeployTimeout,
    ) -> Result<(), RunnerError> {
        let Some((svc, port)) = files.facts.probe_target() else {
            return Err(RunnerError::Other(
                "health_path is set but no service to probe was found".into(),
            ));
        };
        let label = format!("com.docker.swarm.service.name={}_{}", self.name, svc.name);
        let mut last;
        loop {
            last = match self.probe_once(&label, port, path) {
                Ok(()) => {
                    tracing::info!(stack = %self.name, service = %svc.name, path, "HTTP probe passed");
                    return Ok(());
                }
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(RunnerError::Timeout {
                    what: format!("HTTP probe of {}{path}: {last}; {timeout}", svc.name),
                    seconds: timeout.duration.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn probe_once(&self, label: &str, port: u16, path: &str) -> Result<(), String> {
        let ids = list_ids(Kind::Container, label).map_err(|e| e.to_string())?;
        let bridge = docker(&cmd::gwbridge_inspect()).map_err(|e| e.to_string())?;
        let bridge: Vec<Value> = serde_json::from_str(&bridge.stdout).map_err(|e| e.to_string())?;
        let containers = &bridge
            .first()
            .map(|b| b["Containers"].clone())
            .unwrap_or_default();
        let ip = ids
            .iter()
            .find_map(|id| containers[id.as_str()]["IPv4Address"].as_str())
            .and_then(|a| a.split('/').next())
            .ok_or_else(|| "no running container with an address on docker_gwbridge".to_string())?;
        http_status(ip, port, path).and_then(|status| {
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(format!("http://{ip}:{port}{path} answered {status}"))
            }
        })
    }
}

/// Returns true when a task runs the service's current container spec. Compares the fields a
/// deploy changes; the engine omits some defaults (stop grace period, DNS) from a task's copy.
fn same_spec(task: &Value, service: &Value) -> bool {
    [
        "Image", "Env", "Labels", "Command", "Args", "Mounts", "Secrets", "Configs",
    ]
    .iter()
    .all(|k| task[k] == service[k])
}

/// Sends `GET path` over plain HTTP and returns the status code. Health endpoints answer in
/// one status line; a client library would add nothing here.
fn http_status(ip: &str, port: u16, path: &str) -> Result<u16, String> {
    let addr = format!("{ip}:{port}");
    let sock = addr
        .parse()
        .map_err(|e| format!("bad address {addr}: {e}"))?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(3))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {ip}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write to {addr}: {e}"))?;
    let mut head = [0u8; 64];
    let n = stream
        .read(&mut head)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    parse_status_line(&head[..n]).ok_or_else(|| format!("{addr} sent no HTTP status line"))
}

/// Returns the status code of an HTTP response's first line.
fn parse_status_line(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head).ok()?;
    let mut parts = text.split_whitespace();
    parts.next().filter(|p| p.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_runs_the_current_spec_when_the_deployed_fields_match() {
        let service = serde_json::json!({"Image": "a:1", "Env": ["X=1"], "StopGracePeriod": 10, "DNSConfig": {}});
        let task = serde_json::json!({"Image": "a:1", "Env": ["X=1"]});
        assert!(same_spec(&task, &service));
        let old = serde_json::json!({"Image": "a:1", "Env": ["X=0"]});
        assert!(!same_spec(&old, &service));
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status_line(b"HTTP/1.0 200 OK\r\n"), Some(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.1 503 Service Unavailable"),
            Some(503)
        );
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line(b""), None);
    }
}
