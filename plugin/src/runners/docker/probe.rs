//! Whether a deployed stack is healthy: every replica running on the current spec, no update in
//! flight, the version label the files say, and the recipe's HTTP health path answering; and
//! the waits for it, which poll at DEBUG and report their progress at INFO at most every
//! [`PROGRESS_EVERY`].

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cmd::{self, Kind};
use super::engine::{docker, inspect_json, lines, list_ids, COMMAND_TIMEOUT};
use super::stack::Stack;
use crate::runners::compose_facts::RecipeFiles;
use crate::runners::deploy_timeout::DeployTimeout;
use crate::runners::exec;
use crate::runners::RunnerError;

/// How often a long wait reports its progress at INFO (issue 15: a wait is one line every
/// 10 s, not its polls).
pub(super) const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Whether a stack is ready, and if not, what it is waiting for.
pub(super) enum Health {
    Ready,
    Waiting {
        /// Services with every replica running on the current spec and the right label.
        ready: usize,
        /// Services declared (or found, when more).
        total: usize,
        /// What the others wait for.
        pending: String,
    },
}

/// Decides when a wait reports its progress: first [`PROGRESS_EVERY`] after it started, then at
/// most once per period, so a short wait says nothing but its result. `now` is passed in so
/// the decision is tested without waiting.
pub(super) struct Progress {
    every: Duration,
    last: Instant,
}

impl Progress {
    /// Returns the throttle of a wait that started at `started`.
    pub(super) fn new(started: Instant, every: Duration) -> Self {
        Progress {
            every,
            last: started,
        }
    }

    /// Returns true when a progress line is due at `now`, and counts it as printed.
    pub(super) fn due(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.last) >= self.every {
            self.last = now;
            true
        } else {
            false
        }
    }
}

impl Stack {
    /// One look at the stack: every service has all its replicas running (healthy, for a
    /// service with a healthcheck) on the current spec, no update in flight, and the version
    /// label the files say.
    fn health(&self, files: &RecipeFiles) -> Result<Health, RunnerError> {
        let ids = list_ids(Kind::Service, &self.stack_filter())?;
        let declared = files.facts.services.len();
        if ids.is_empty() {
            return Ok(Health::Waiting {
                ready: 0,
                total: declared,
                pending: "no services yet".into(),
            });
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
        let mut ready = 0;
        for svc in &services {
            let before = waiting.len();
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
                let why = task_problem(&tasks, id)
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default();
                waiting.push(format!("{short} {running}/{wanted} running{why}"));
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
            if waiting.len() == before {
                ready += 1;
            }
        }
        if services.len() < declared {
            waiting.push(format!("{} of {declared} services", services.len()));
        }
        Ok(if waiting.is_empty() {
            Health::Ready
        } else {
            Health::Waiting {
                ready,
                total: services.len().max(declared),
                pending: waiting.join(", "),
            }
        })
    }

    /// Returns the deploy timeout of `files` for this stack: the enrollment's, else the recipe's
    /// `coop-cloud.<stack>.timeout` label, else the default; logs which one applies.
    pub(super) fn deploy_timeout(&self, files: &RecipeFiles) -> Result<DeployTimeout, RunnerError> {
        let timeout = self.plan(files)?.timeout;
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
        let mut progress = Progress::new(started, PROGRESS_EVERY);
        loop {
            let (ready, total, last) = match self.health(files)? {
                Health::Ready => break,
                Health::Waiting {
                    ready,
                    total,
                    pending,
                } => (ready, total, pending),
            };
            let now = Instant::now();
            if now >= deadline {
                // For the stage's transcript: the tasks' own errors (a missing image, a failing
                // healthcheck) say why better than the polls do.
                if let Ok(ids) = list_ids(Kind::Service, &self.stack_filter()) {
                    if !ids.is_empty() {
                        let _ = exec::run(&cmd::task_history(&ids), COMMAND_TIMEOUT);
                    }
                }
                return Err(RunnerError::Timeout {
                    what: format!("stack {} to become healthy ({last}; {timeout})", self.name),
                    seconds: timeout.duration.as_secs(),
                });
            }
            if progress.due(now) {
                tracing::info!(
                    pending = %last,
                    "Waiting for {} to converge: {ready}/{total} services healthy, {} s of {} s.",
                    self.name,
                    now.duration_since(started).as_secs(),
                    timeout.duration.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        tracing::debug!(stack = %self.name, seconds = started.elapsed().as_secs_f64(), "stack is healthy");
        if let Some(path) = &self.health_path {
            self.probe(files, path, started, deadline, timeout)?;
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
        started: Instant,
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
        let mut progress = Progress::new(Instant::now(), PROGRESS_EVERY);
        loop {
            last = match self.probe_once(&label, port, path) {
                Ok(()) => {
                    tracing::info!(stack = %self.name, service = %svc.name, path, "HTTP probe passed");
                    return Ok(());
                }
                Err(e) => e,
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(RunnerError::Timeout {
                    what: format!("HTTP probe of {}{path}: {last}; {timeout}", svc.name),
                    seconds: timeout.duration.as_secs(),
                });
            }
            if progress.due(now) {
                tracing::info!(
                    last = %last,
                    "Waiting for {} to answer {path} on {}: {} s of {} s.",
                    self.name,
                    svc.name,
                    now.duration_since(started).as_secs(),
                    timeout.duration.as_secs()
                );
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

/// Returns what keeps a service's task from running, as the engine says: its state and error
/// (`task rejected: No such image: ...`), so a wait that times out says why.
fn task_problem(tasks: &[Value], service: &str) -> Option<String> {
    tasks
        .iter()
        .filter(|t| t["ServiceID"].as_str() == Some(service))
        .find_map(|t| {
            let state = t["Status"]["State"].as_str().unwrap_or("unknown");
            if state == "running" {
                return None;
            }
            Some(
                match t["Status"]["Err"].as_str().filter(|e| !e.is_empty()) {
                    Some(err) => format!("task {state}: {err}"),
                    None => format!("task {state}"),
                },
            )
        })
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
    fn a_task_that_cannot_run_says_why() {
        let tasks = serde_json::json!([
            {"ServiceID": "a", "Status": {"State": "running"}},
            {"ServiceID": "b", "Status": {"State": "rejected", "Err": "No such image: x:1"}},
            {"ServiceID": "c", "Status": {"State": "preparing", "Err": ""}},
        ]);
        let tasks = tasks.as_array().unwrap();
        assert_eq!(task_problem(tasks, "a"), None);
        assert_eq!(
            task_problem(tasks, "b").as_deref(),
            Some("task rejected: No such image: x:1")
        );
        assert_eq!(task_problem(tasks, "c").as_deref(), Some("task preparing"));
        assert_eq!(task_problem(tasks, "d"), None);
    }

    #[test]
    fn a_wait_reports_its_progress_at_most_every_ten_seconds() {
        let start = Instant::now();
        let mut p = Progress::new(start, PROGRESS_EVERY);
        let at = |s: f64| start + Duration::from_secs_f64(s);
        let printed: Vec<f64> = (0..=70)
            .map(|tenths| f64::from(tenths) * 0.6)
            .filter(|&s| p.due(at(s)))
            .collect();
        // Polls every 0.6 s for 42 s: the first line at 10.2 s, then one per 10 s at most.
        assert_eq!(printed.len(), 4, "{printed:?}");
        assert!((printed[0] - 10.2).abs() < 1e-9, "{printed:?}");
        for pair in printed.windows(2) {
            assert!(pair[1] - pair[0] >= 10.0, "{printed:?}");
        }
        let mut quiet = Progress::new(start, PROGRESS_EVERY);
        assert!(!quiet.due(at(2.7)), "a short wait says nothing");
        assert!(!quiet.due(start), "nor at its start");
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
