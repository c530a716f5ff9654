//! Whether a deployed stack is healthy: every replica running on the current spec, no update in
//! flight, the version label the files say, all of it unchanged for the stability window (no
//! task restarted, no new task id), the recipe's HTTP health path answering and its routes
//! serving ([`super::serving`]); and the waits
//! for it, which poll at DEBUG and report their progress at INFO at most every
//! [`PROGRESS_EVERY`].
//!
//! A red wait names each failing task's own state and error, as `docker service ps --no-trunc`
//! shows them (`app.1 rejected: No such image: ...`, `app.1 failed: task: non-zero exit (1)`). A
//! task rejected for a reason waiting cannot fix (an image that is not on the node and could not
//! be pulled, an invalid mount) fails the wait at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::poll::{http_status, Progress, PROGRESS_EVERY};
use super::serving::Serving;
use super::stack::Stack;
use crate::engine::client::{docker, inspect_json, lines, list_ids, run};
use crate::engine::cmd::{self, Kind};
use crate::recipe::files::RecipeFiles;
use crate::recipe::timeout::DeployTimeout;
use crate::runners::RunnerError;

/// Task errors no wait can fix: the image is not on the node and could not be pulled, or the
/// service's mount is invalid. Matched in the engine's task error text.
const PERMANENT_TASK_ERRORS: [&str; 7] = [
    "No such image",
    "pull access denied",
    "manifest unknown",
    "invalid reference format",
    "invalid mount config",
    "bind source path does not exist",
    "invalid mount",
];

/// One look at a stack.
pub(super) struct Health {
    /// Services with every replica running on the current spec and the right label.
    ready: usize,
    /// Services declared (or found, when more).
    total: usize,
    /// What the services that are not ready wait for; empty when every one is.
    pending: Vec<String>,
    /// The ids of the tasks swarm wants running: a restart or a replacement changes them.
    tasks: BTreeSet<String>,
    /// The failed or rejected tasks of the current spec, newest first, one line each with the
    /// task's own state and error (repeats counted).
    failures: Vec<String>,
}

impl Health {
    /// Returns the running task ids when the stack is converged, `None` when it is not.
    fn converged(&self) -> Option<&BTreeSet<String>> {
        self.pending.is_empty().then_some(&self.tasks)
    }
}

/// Tracks whether a stack stays converged for a whole window: the same tasks, all of them
/// running, from one look to the next. `now` is passed in so it is tested without waiting.
pub(super) struct Stability {
    window: Duration,
    since: Option<(Instant, BTreeSet<String>)>,
    /// How often a converged stack stopped being converged (a task failed or was replaced).
    pub(super) restarts: u32,
}

impl Stability {
    /// Returns a tracker for `window`.
    pub(super) fn new(window: Duration) -> Self {
        Stability {
            window,
            since: None,
            restarts: 0,
        }
    }

    /// Records one look (`converged`: the running task ids, or `None` when not converged) and
    /// returns true once the same tasks have stayed converged for the whole window.
    pub(super) fn observe(&mut self, now: Instant, converged: Option<&BTreeSet<String>>) -> bool {
        match (converged, self.since.take()) {
            (Some(tasks), Some((start, seen))) if seen == *tasks => {
                self.since = Some((start, seen));
                now.saturating_duration_since(start) >= self.window
            }
            (Some(tasks), previous) => {
                if previous.is_some() {
                    self.restarts += 1;
                }
                self.since = Some((now, tasks.clone()));
                self.window.is_zero()
            }
            (None, previous) => {
                if previous.is_some() {
                    self.restarts += 1;
                }
                false
            }
        }
    }
}

impl Stack {
    /// One look at the stack: every service has all its replicas running (healthy, for a
    /// service with a healthcheck) on the current spec, no update in flight, and the version
    /// label the files say; with the running task ids and the failed tasks. Fails at once on a
    /// swarm rollback and on a task rejected for a reason waiting cannot fix.
    fn health(&self, files: &RecipeFiles) -> Result<Health, RunnerError> {
        let ids = list_ids(Kind::Service, &self.stack_filter())?;
        let declared = files.facts.services.len();
        if ids.is_empty() {
            return Ok(Health {
                ready: 0,
                total: declared,
                pending: vec!["no services yet".into()],
                tasks: BTreeSet::new(),
                failures: Vec::new(),
            });
        }
        let services = inspect_json(Kind::Service, &ids)?;
        let task_ids = lines(&docker(&cmd::all_tasks(&ids))?);
        let tasks = if task_ids.is_empty() {
            Vec::new()
        } else {
            let out = run(&cmd::inspect_tasks(&task_ids))?;
            serde_json::from_str::<Vec<Value>>(&out.stdout).unwrap_or_default()
        };
        let mut health = Health {
            ready: 0,
            total: services.len().max(declared),
            pending: Vec::new(),
            tasks: BTreeSet::new(),
            failures: Vec::new(),
        };
        let mut permanent = Vec::new();
        for svc in &services {
            let before = health.pending.len();
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
            let current: Vec<&Value> = tasks
                .iter()
                .filter(|t| {
                    t["ServiceID"].as_str() == Some(id)
                        && same_spec(&t["Spec"]["ContainerSpec"], spec)
                })
                .collect();
            let wanted_running: Vec<&Value> = tasks
                .iter()
                .filter(|t| {
                    t["ServiceID"].as_str() == Some(id)
                        && matches!(t["DesiredState"].as_str(), Some("running" | "ready"))
                })
                .collect();
            health.tasks.extend(
                wanted_running
                    .iter()
                    .filter_map(|t| t["ID"].as_str().map(str::to_string)),
            );
            let running = wanted_running
                .iter()
                .filter(|t| {
                    t["Status"]["State"].as_str() == Some("running")
                        && same_spec(&t["Spec"]["ContainerSpec"], spec)
                })
                .count();
            let failed = task_failures(short, &current);
            permanent.extend(
                failed
                    .iter()
                    .filter(|(_, err)| is_permanent(err))
                    .map(|(line, _)| line.clone()),
            );
            health
                .failures
                .extend(count_repeats(failed.into_iter().map(|(l, _)| l)));
            let wanted = svc["Spec"]["Mode"]["Replicated"]["Replicas"]
                .as_u64()
                .unwrap_or(1) as usize;
            if running < wanted {
                let starting = task_states(short, &wanted_running);
                let why = if starting.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", starting.join(", "))
                };
                health
                    .pending
                    .push(format!("{short} {running}/{wanted} running{why}"));
            } else if matches!(update, "updating" | "rollback_started") {
                health.pending.push(format!("{short} {update}"));
            }
            let expected = files.facts.version_of(short);
            if let Some(expected) = expected.as_deref() {
                let deployed = svc["Spec"]["Labels"]
                    .as_object()
                    .and_then(|m| {
                        m.iter()
                            .find(|(k, _)| k.starts_with("coop-cloud.") && k.ends_with(".version"))
                    })
                    .and_then(|(_, v)| v.as_str());
                if deployed != Some(expected) {
                    health.pending.push(format!(
                        "{short} version label {} (want {expected})",
                        deployed.unwrap_or("missing")
                    ));
                }
            }
            if health.pending.len() == before {
                health.ready += 1;
            }
        }
        if services.len() < declared {
            health
                .pending
                .push(format!("{} of {declared} services", services.len()));
        }
        if !permanent.is_empty() {
            return Err(RunnerError::Other(format!(
                "stack {} cannot converge, and waiting will not fix it: {}",
                self.name,
                count_repeats(permanent.into_iter()).join("; ")
            )));
        }
        Ok(health)
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

    /// Waits until the stack is healthy and has stayed so for the stability window (and then
    /// answers the HTTP probe, when the recipe names a health path, and serves its routes:
    /// [`super::serving`]), within `timeout`. Returns what the serving check says.
    pub(super) fn wait_healthy(
        &self,
        files: &RecipeFiles,
        timeout: DeployTimeout,
    ) -> Result<Serving, RunnerError> {
        let window = self.stability_window;
        if window >= timeout.duration {
            return Err(RunnerError::Other(format!(
                "the stability window ({} s) is not shorter than the {timeout}: no deploy could stay up that long in time",
                window.as_secs()
            )));
        }
        let started = Instant::now();
        let deadline = started + timeout.duration;
        let mut progress = Progress::new(started, PROGRESS_EVERY);
        let mut stability = Stability::new(window);
        loop {
            let health = self.health(files)?;
            let now = Instant::now();
            if stability.observe(now, health.converged()) {
                break;
            }
            if now >= deadline {
                // For the stage's transcript: the engine's own task table.
                if let Ok(ids) = list_ids(Kind::Service, &self.stack_filter()) {
                    if !ids.is_empty() {
                        let _ = run(&cmd::task_history(&ids));
                    }
                }
                return Err(RunnerError::Timeout {
                    what: format!(
                        "stack {} {}; {timeout}",
                        self.name,
                        unhealthy_reason(&health, &stability, window)
                    ),
                    seconds: timeout.duration.as_secs(),
                });
            }
            if progress.due(now) {
                let pending = if health.pending.is_empty() {
                    format!("converged, staying up for {} s", window.as_secs())
                } else {
                    health.pending.join(", ")
                };
                tracing::info!(
                    pending = %pending,
                    "Waiting for {} to converge: {}/{} services healthy, {} s of {} s.",
                    self.name,
                    health.ready,
                    health.total,
                    now.duration_since(started).as_secs(),
                    timeout.duration.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        tracing::debug!(stack = %self.name, seconds = started.elapsed().as_secs_f64(), window = window.as_secs(), "stack is healthy and stayed so");
        if let Some(path) = &self.health_path {
            self.probe(files, path, started, deadline, timeout)?;
        }
        self.check_serving(files, started, deadline, timeout)
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
        http_status(ip, port, path, ip).and_then(|status| {
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(format!("http://{ip}:{port}{path} answered {status}"))
            }
        })
    }
}

/// Returns why a wait gave up: what the services wait for, or that a converged stack did not
/// stay so for the window; with the failing tasks' own states and errors.
fn unhealthy_reason(health: &Health, stability: &Stability, window: Duration) -> String {
    let mut why = if health.pending.is_empty() {
        format!(
            "to stay converged for {} s (a task failed or was replaced {} time(s) in the window)",
            window.as_secs(),
            stability.restarts
        )
    } else {
        format!("to become healthy ({})", health.pending.join(", "))
    };
    if !health.failures.is_empty() {
        why.push_str(&format!("; failing tasks: {}", health.failures.join("; ")));
    }
    why
}

/// Returns a task's name as `docker service ps` shows it (`app.1`), from the service's short
/// name and the task's slot (a global service's task has none: its id stands in).
fn task_name(service: &str, task: &Value) -> String {
    match task["Slot"].as_u64().filter(|&s| s > 0) {
        Some(slot) => format!("{service}.{slot}"),
        None => format!(
            "{service}.{}",
            task["ID"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(12)
                .collect::<String>()
        ),
    }
}

/// Returns the failed, rejected or orphaned tasks among `tasks`, newest first, each as
/// `app.1 failed: task: non-zero exit (1)` with its bare error beside it.
fn task_failures(service: &str, tasks: &[&Value]) -> Vec<(String, String)> {
    let mut failed: Vec<&&Value> = tasks
        .iter()
        .filter(|t| {
            matches!(
                t["Status"]["State"].as_str(),
                Some("failed" | "rejected" | "orphaned")
            )
        })
        .collect();
    failed.sort_by(|a, b| {
        b["Status"]["Timestamp"]
            .as_str()
            .cmp(&a["Status"]["Timestamp"].as_str())
    });
    failed
        .into_iter()
        .map(|t| {
            let state = t["Status"]["State"].as_str().unwrap_or("unknown");
            let err = t["Status"]["Err"].as_str().unwrap_or_default().to_string();
            let line = if err.is_empty() {
                format!("{} {state}", task_name(service, t))
            } else {
                format!("{} {state}: {err}", task_name(service, t))
            };
            (line, err)
        })
        .collect()
}

/// Returns the states of the tasks swarm wants running that do not run yet
/// (`app.1 starting`, `app.1 preparing`), with their error when the engine gives one.
fn task_states(service: &str, tasks: &[&Value]) -> Vec<String> {
    tasks
        .iter()
        .filter(|t| t["Status"]["State"].as_str() != Some("running"))
        .map(|t| {
            let state = t["Status"]["State"].as_str().unwrap_or("unknown");
            match t["Status"]["Err"].as_str().filter(|e| !e.is_empty()) {
                Some(err) => format!("{} {state}: {err}", task_name(service, t)),
                None => format!("{} {state}", task_name(service, t)),
            }
        })
        .collect()
}

/// Returns `lines` with repeats folded into the first (`... (3 times)`), in first-seen order.
fn count_repeats(lines: impl Iterator<Item = String>) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in lines {
        let n = counts.entry(line.clone()).or_insert(0);
        if *n == 0 {
            order.push(line);
        }
        *n += 1;
    }
    order
        .into_iter()
        .map(|l| match counts[&l] {
            1 => l,
            n => format!("{l} ({n} times)"),
        })
        .collect()
}

/// Returns true when a task's error is one no wait can fix ([`PERMANENT_TASK_ERRORS`]).
fn is_permanent(err: &str) -> bool {
    PERMANENT_TASK_ERRORS.iter().any(|p| err.contains(p))
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

    fn task(id: &str, slot: u64, state: &str, err: &str, at: &str) -> Value {
        serde_json::json!({"ID": id, "Slot": slot, "Status": {"State": state, "Err": err, "Timestamp": at}})
    }

    #[test]
    fn failed_tasks_are_named_with_their_own_state_and_error_newest_first() {
        let tasks = [
            task("a", 1, "running", "", "2026-01-01T00:00:05Z"),
            task(
                "b",
                1,
                "failed",
                "task: non-zero exit (1)",
                "2026-01-01T00:00:01Z",
            ),
            task(
                "c",
                1,
                "failed",
                "task: non-zero exit (1)",
                "2026-01-01T00:00:03Z",
            ),
            task(
                "d",
                2,
                "rejected",
                "No such image: x:1",
                "2026-01-01T00:00:04Z",
            ),
            task("e", 0, "shutdown", "", "2026-01-01T00:00:02Z"),
        ];
        let refs: Vec<&Value> = tasks.iter().collect();
        let got: Vec<String> = task_failures("app", &refs)
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(
            got,
            vec![
                "app.2 rejected: No such image: x:1",
                "app.1 failed: task: non-zero exit (1)",
                "app.1 failed: task: non-zero exit (1)",
            ]
        );
        assert_eq!(
            count_repeats(got.into_iter()),
            vec![
                "app.2 rejected: No such image: x:1",
                "app.1 failed: task: non-zero exit (1) (2 times)",
            ]
        );
        let starting = [
            task("f", 1, "starting", "", ""),
            task("0123456789abcdef", 0, "preparing", "", ""),
        ];
        let refs: Vec<&Value> = starting.iter().collect();
        assert_eq!(
            task_states("db", &refs),
            vec!["db.1 starting", "db.0123456789ab preparing"]
        );
    }

    #[test]
    fn only_errors_waiting_cannot_fix_are_permanent() {
        for err in [
            "No such image: canon-missing:1",
            "invalid mount config for type \"bind\": bind source path does not exist: /nope",
            "pull access denied for x, repository does not exist",
        ] {
            assert!(is_permanent(err), "{err}");
        }
        for err in [
            "task: non-zero exit (1)",
            "unhealthy container",
            "",
            "starting container failed: OCI runtime",
        ] {
            assert!(!is_permanent(err), "{err}");
        }
    }

    #[test]
    fn a_stack_is_stable_only_after_the_same_tasks_stayed_converged_for_the_window() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let first: BTreeSet<String> = ["t1".to_string()].into();
        let replaced: BTreeSet<String> = ["t2".to_string()].into();
        let mut s = Stability::new(Duration::from_secs(10));
        assert!(!s.observe(at(0), None));
        assert!(
            !s.observe(at(1), Some(&first)),
            "converged, the window starts"
        );
        assert!(!s.observe(at(10), Some(&first)));
        assert!(
            s.observe(at(11), Some(&first)),
            "ten seconds on the same task"
        );

        // A crash loop: up for 3 s, down, a new task up for 3 s... never stable.
        let mut s = Stability::new(Duration::from_secs(10));
        let mut stable = false;
        for cycle in 0..10u64 {
            let t = cycle * 4;
            let id: BTreeSet<String> = [format!("t{cycle}")].into();
            stable |= s.observe(at(t), Some(&id));
            stable |= s.observe(at(t + 3), Some(&id));
            stable |= s.observe(at(t + 4), None);
        }
        assert!(!stable);
        assert_eq!(s.restarts, 10);

        // A task replaced between two looks (no look saw it down) restarts the window too.
        let mut s = Stability::new(Duration::from_secs(10));
        assert!(!s.observe(at(0), Some(&first)));
        assert!(!s.observe(at(9), Some(&replaced)));
        assert!(!s.observe(at(12), Some(&replaced)));
        assert!(s.observe(at(19), Some(&replaced)));
        assert_eq!(s.restarts, 1);
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
}
