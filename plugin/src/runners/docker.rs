//! The built-in `docker` runner: a real cold deploy of a recipe on the machine's Docker engine,
//! the way Co-op Cloud deploys (a single-node swarm and `docker stack deploy`), through the whole
//! stage ladder, with teardown always; and the promote step that keeps the data-warm canonical
//! `warm-<recipe>`.
//!
//! # Layout
//! - [`cmd`]: every docker command as a pure function, plus stack names and labels.
//! - this file: the ladder, the promote, the sweep's [`cleanup_stale`] and [`warm_volume_sizes`].
//!
//! # Objects and labels
//! A cold run deploys the stack `cold-<recipe>-<tag hash>-<build>`; everything it creates (the
//! services and their containers, volumes, networks, secrets, helper containers) carries
//! `canon.managed=true`, `canon.stack`, `canon.kind=cold`, `canon.recipe`, `canon.tag`,
//! `canon.build` and `canon.created` (unix seconds), so [`cleanup_stale`] can remove what a killed
//! run left behind. The warm canonical's objects say `canon.kind=warm` and are never swept.

pub mod cmd;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use canon_shared::gate::{StageResult, TestedRef};
use canon_shared::secret::Secret;
use serde_json::Value;

use self::cmd::{Kind, RunLabels, StackKind};
use super::compose_facts::RecipeFiles;
use super::exec::{self, Cmd};
use super::ladder::{self, deploy_timeout, Release, Steps, Target};
use super::stack_names;
use super::{RunContext, Runner, RunnerError};

/// The limit on one docker command (deploys return at once; waits poll).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// The limit on a stack's containers going away after `docker stack rm`.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// The file written into each backed-up volume before the snapshot.
const BACKUP_MARKER: &str = ".canon-backup-marker";
/// The file written after the snapshot: a restore must make it disappear.
const AFTER_BACKUP_MARKER: &str = ".canon-after-backup";

/// The `docker` runner.
#[derive(Debug, Clone)]
pub struct DockerRunner {
    /// Apps get `DOMAIN=<stack>.<domain_suffix>`.
    pub domain_suffix: String,
}

impl Default for DockerRunner {
    fn default() -> Self {
        DockerRunner {
            domain_suffix: "canon.localhost".to_string(),
        }
    }
}

fn docker(cmd: &Cmd) -> Result<exec::Output, RunnerError> {
    exec::run_ok(cmd, COMMAND_TIMEOUT)
}

fn lines(output: &exec::Output) -> Vec<String> {
    output
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn list_ids(kind: Kind, label: &str) -> Result<Vec<String>, RunnerError> {
    Ok(lines(&docker(&cmd::list(kind, label))?))
}

fn inspect_json(kind: Kind, ids: &[String]) -> Result<Vec<Value>, RunnerError> {
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

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Returns `bytes` random bytes as hex, from the kernel.
fn random_hex(bytes: usize) -> Result<String, RunnerError> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| RunnerError::Other(format!("could not read /dev/urandom: {e}")))?;
    Ok(hex::encode(buf))
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

/// One stack (a cold run's or the warm canonical) and what it needs to deploy and clean up.
struct Stack {
    name: String,
    labels: RunLabels,
    work: PathBuf,
    timeout: Duration,
    health_path: Option<String>,
    domain: String,
    extra_env: BTreeMap<String, String>,
    helpers: std::cell::Cell<u32>,
}

/// Whether a stack is ready, and if not, what it is waiting for.
enum Health {
    Ready,
    Waiting(String),
}

impl Stack {
    fn new(
        runner: &DockerRunner,
        ctx: &RunContext,
        name: String,
        kind: StackKind,
    ) -> Result<Self, RunnerError> {
        let work = ctx.run_dir.join("docker").join(&name);
        std::fs::create_dir_all(&work)
            .map_err(|e| RunnerError::Other(format!("could not create {}: {e}", work.display())))?;
        Ok(Stack {
            labels: RunLabels {
                stack: name.clone(),
                kind,
                recipe: ctx.recipe.name.as_str().to_string(),
                tag: ctx.tested_name().to_string(),
                build: ctx.build.clone(),
                created: now_unix(),
            },
            domain: format!("{name}.{}", runner.domain_suffix),
            name,
            work,
            timeout: deploy_timeout(&ctx.recipe),
            health_path: ctx.recipe.health_path.clone(),
            extra_env: ctx.env.clone(),
            helpers: std::cell::Cell::new(0),
        })
    }

    fn overrides(&self) -> BTreeMap<String, String> {
        let mut env = self.extra_env.clone();
        env.insert("STACK_NAME".into(), self.name.clone());
        env.insert("DOMAIN".into(), self.domain.clone());
        env
    }

    fn stack_filter(&self) -> String {
        format!("{}={}", cmd::STACK_LABEL, self.name)
    }

    fn canon_filter(&self) -> String {
        format!("{}={}", cmd::STACK_NAME_LABEL, self.name)
    }

    fn load(&self, dir: &Path) -> Result<RecipeFiles, RunnerError> {
        RecipeFiles::load(dir, &self.name, &self.overrides())
            .map_err(|e| RunnerError::Other(e.to_string()))
    }

    /// Deploys the recipe checkout `dir` as this stack: missing external secrets get generated
    /// values, missing external networks are created, the label override is added.
    fn deploy(&self, dir: &Path) -> Result<RecipeFiles, RunnerError> {
        let files = self.load(dir)?;
        let labels = self.labels.map(None);
        let existing: BTreeSet<String> = lines(&docker(&Cmd::new(
            "docker",
            ["secret", "ls", "--format", "{{.Name}}"],
        ))?)
        .into_iter()
        .collect();
        for s in files.facts.secrets.iter().filter(|s| s.external) {
            if !existing.contains(&s.name) {
                let value = Secret::new(random_hex(16)?);
                docker(&cmd::secret_create(&s.name, &labels, value))?;
            }
        }
        for n in files.facts.networks.iter().filter(|n| n.external) {
            let found = exec::run(
                &cmd::inspect(Kind::Network, std::slice::from_ref(&n.name)),
                COMMAND_TIMEOUT,
            )?;
            if !found.success() {
                // Shared infrastructure (traefik's `proxy`): created once, never removed by a run.
                let shared = BTreeMap::from([
                    (cmd::MANAGED_LABEL.to_string(), "true".to_string()),
                    (cmd::KIND_LABEL.to_string(), "shared".to_string()),
                ]);
                docker(&cmd::network_create(&n.name, &shared))?;
            }
        }
        let override_path = self.work.join("compose.canon.yml");
        std::fs::write(&override_path, cmd::label_override(&files.facts, &labels)).map_err(
            |e| RunnerError::Other(format!("could not write {}: {e}", override_path.display())),
        )?;
        let mut all = files.compose_files.clone();
        all.push(override_path);
        docker(&cmd::stack_deploy(&self.name, &all, &files.env, dir))?;
        Ok(files)
    }

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

    /// Waits until the stack is healthy (and answers the HTTP probe, when the recipe names a
    /// health path), within the recipe's deploy timeout.
    fn wait_healthy(&self, files: &RecipeFiles) -> Result<(), RunnerError> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        loop {
            let last = match self.health(files)? {
                Health::Ready => break,
                Health::Waiting(why) => why,
            };
            if Instant::now() >= deadline {
                return Err(RunnerError::Timeout {
                    what: format!("stack {} to become healthy ({last})", self.name),
                    seconds: self.timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        tracing::info!(stack = %self.name, seconds = started.elapsed().as_secs_f64(), "stack is healthy");
        if let Some(path) = &self.health_path {
            self.probe(files, path, deadline)?;
        }
        Ok(())
    }

    /// GETs `path` from the probe target's container until a 2xx or the deadline. The address
    /// is the container's leg on `docker_gwbridge`, which the host reaches even where swarm's
    /// ingress routing mesh does not work.
    fn probe(&self, files: &RecipeFiles, path: &str, deadline: Instant) -> Result<(), RunnerError> {
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
                    what: format!("HTTP probe of {}{path}: {last}", svc.name),
                    seconds: self.timeout.as_secs(),
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

    /// Removes the stack's services and waits until its containers are gone (volumes stay).
    fn stop(&self) -> Result<(), RunnerError> {
        let services = list_ids(Kind::Service, &self.stack_filter())?;
        if !services.is_empty() {
            let out = exec::run(&cmd::stack_rm(&self.name), COMMAND_TIMEOUT)?;
            if !out.success() && !out.stderr.contains("Nothing found") {
                tracing::warn!(stack = %self.name, stderr = %out.stderr.trim(), "docker stack rm reported an error");
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            let left = list_ids(Kind::Container, &self.stack_filter())?.len()
                + list_ids(Kind::Service, &self.stack_filter())?.len();
            if left == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(RunnerError::Timeout {
                    what: format!(
                        "stack {} to stop ({left} containers/services left)",
                        self.name
                    ),
                    seconds: STOP_TIMEOUT.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Removes everything of this stack: services, containers (tasks and helpers), volumes,
    /// secrets, networks. Returns what could not be removed.
    fn teardown(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.stop() {
            problems.push(e.to_string());
        }
        for kind in Kind::ALL {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let mut ids = Vec::new();
                for filter in [self.stack_filter(), self.canon_filter()] {
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
                let out = exec::run(&cmd::remove(kind, &ids), COMMAND_TIMEOUT);
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

    fn helper_name(&self) -> String {
        let n = self.helpers.get() + 1;
        self.helpers.set(n);
        format!("{}-canon-helper-{n}", self.name)
    }

    /// Runs `f` with a created (never started) container mounting `volume`; always removes it.
    fn with_helper<T>(
        &self,
        volume: &str,
        image: &str,
        f: impl FnOnce(&str) -> Result<T, RunnerError>,
    ) -> Result<T, RunnerError> {
        let name = self.helper_name();
        let labels = self.labels.map(Some("helper"));
        docker(&cmd::helper_create(&name, image, volume, &labels))?;
        let result = f(&name);
        if let Err(e) = docker(&cmd::remove(Kind::Container, std::slice::from_ref(&name))) {
            tracing::warn!(container = %name, error = %e, "could not remove a helper container");
        }
        result
    }

    fn snapshot(&self, volume: &str, image: &str, file: &Path) -> Result<(), RunnerError> {
        self.with_helper(volume, image, |h| {
            docker(&cmd::cp_out(h, cmd::HELPER_MOUNT, file)).map(drop)
        })
    }

    fn load_snapshot(&self, volume: &str, image: &str, file: &Path) -> Result<(), RunnerError> {
        self.with_helper(volume, image, |h| {
            docker(&cmd::cp_in(h, "/", file)).map(drop)
        })
    }

    fn write_file(
        &self,
        volume: &str,
        image: &str,
        name: &str,
        content: &str,
    ) -> Result<(), RunnerError> {
        let host = self.work.join(format!("{volume}{name}"));
        std::fs::write(&host, content)
            .map_err(|e| RunnerError::Other(format!("could not write {}: {e}", host.display())))?;
        self.with_helper(volume, image, |h| {
            docker(&cmd::cp_file_in(
                h,
                &host,
                &format!("{}/{name}", cmd::HELPER_MOUNT),
            ))
            .map(drop)
        })
    }

    /// Returns a tar stream holding the volume's file `name`, or `None` when it does not exist.
    fn read_file(
        &self,
        volume: &str,
        image: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, RunnerError> {
        let tmp = self.work.join(format!("{volume}{name}.read.tar"));
        let found = self.with_helper(volume, image, |h| {
            let c = cmd::cp_out(h, &format!("{}/{name}", cmd::HELPER_MOUNT), &tmp);
            let out = exec::run(&c, COMMAND_TIMEOUT)?;
            if out.success() {
                Ok(true)
            } else if out.stderr.contains("Could not find") || out.stderr.contains("No such") {
                Ok(false)
            } else {
                Err(exec::exit_error(&c, &out))
            }
        })?;
        if !found {
            return Ok(None);
        }
        std::fs::read(&tmp)
            .map(Some)
            .map_err(|e| RunnerError::Other(format!("could not read {}: {e}", tmp.display())))
    }

    /// Removes `volume` and creates it again, empty, with the same driver and labels.
    fn recreate_volume(&self, volume: &str) -> Result<(), RunnerError> {
        let info = inspect_json(Kind::Volume, &[volume.to_string()])?;
        let info = info
            .first()
            .ok_or_else(|| RunnerError::Other(format!("volume {volume} does not exist")))?;
        let driver = info["Driver"].as_str().unwrap_or("local").to_string();
        let labels: BTreeMap<String, String> = info["Labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        docker(&cmd::remove(Kind::Volume, &[volume.to_string()]))?;
        docker(&cmd::volume_create(volume, &driver, &labels))?;
        Ok(())
    }

    /// Copies `from` into the fresh volume `to`, created with `labels`.
    fn copy_volume(
        &self,
        from: &str,
        to: &str,
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), RunnerError> {
        let file = self.work.join(format!("{from}.copy.tar"));
        self.snapshot(from, image, &file)?;
        docker(&cmd::volume_create(to, "local", labels))?;
        self.load_snapshot(to, image, &file)?;
        let _ = std::fs::remove_file(&file);
        Ok(())
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

/// Returns the first local image the files' services use (helper containers need one).
fn helper_image(files: &RecipeFiles) -> Result<String, RunnerError> {
    files
        .facts
        .services
        .iter()
        .find_map(|s| s.image.clone())
        .map(|i| i.split('@').next().unwrap_or(&i).to_string())
        .ok_or_else(|| RunnerError::Other("no service names an image".into()))
}

impl DockerRunner {
    /// Stops the stack, writes a fresh marker into each backed-up volume and snapshots it.
    /// Returns the snapshots with their markers.
    fn backup(&self, stack: &Stack, files: &RecipeFiles) -> Result<Vec<Snapshot>, RunnerError> {
        let image = helper_image(files)?;
        stack.stop()?;
        let keys = files.facts.backup_volumes();
        if keys.is_empty() {
            return Err(RunnerError::Other(
                "backupbot.backup=true is set but the backed-up services mount no named volume"
                    .into(),
            ));
        }
        let mut snapshots = Vec::new();
        for key in keys {
            let volume = cmd::stack_volume(&stack.name, &key);
            let nonce = random_hex(16)?;
            stack.write_file(&volume, &image, BACKUP_MARKER, &nonce)?;
            let file = stack.work.join(format!("backup-{key}.tar"));
            stack.snapshot(&volume, &image, &file)?;
            let tar = std::fs::read(&file).map_err(|e| {
                RunnerError::Other(format!("could not read {}: {e}", file.display()))
            })?;
            if !contains(&tar, nonce.as_bytes()) {
                return Err(RunnerError::Other(format!(
                    "the snapshot of {volume} does not hold the marker written just before it"
                )));
            }
            tracing::info!(volume = %volume, bytes = tar.len(), "volume snapshot taken");
            snapshots.push(Snapshot {
                volume,
                file,
                nonce,
            });
        }
        Ok(snapshots)
    }

    /// Changes each volume after its snapshot, restores the snapshot into a fresh volume and
    /// checks the marker came back and the change did not.
    fn restore(
        &self,
        stack: &Stack,
        files: &RecipeFiles,
        snapshots: &[Snapshot],
    ) -> Result<(), RunnerError> {
        let image = helper_image(files)?;
        for s in snapshots {
            stack.write_file(
                &s.volume,
                &image,
                AFTER_BACKUP_MARKER,
                "written after the backup",
            )?;
            stack.recreate_volume(&s.volume)?;
            stack.load_snapshot(&s.volume, &image, &s.file)?;
            match stack.read_file(&s.volume, &image, BACKUP_MARKER)? {
                Some(tar) if contains(&tar, s.nonce.as_bytes()) => {}
                Some(_) => {
                    return Err(RunnerError::Other(format!(
                        "after restore, {} holds a different backup marker",
                        s.volume
                    )))
                }
                None => {
                    return Err(RunnerError::Other(format!(
                        "after restore, {} lost its backup marker",
                        s.volume
                    )))
                }
            }
            if stack
                .read_file(&s.volume, &image, AFTER_BACKUP_MARKER)?
                .is_some()
            {
                return Err(RunnerError::Other(format!(
                    "after restore, {} still holds a file written after the backup",
                    s.volume
                )));
            }
            tracing::info!(volume = %s.volume, "volume restored and its marker checked");
        }
        Ok(())
    }

    fn promote_inner(&self, stack: &Stack, ctx: &RunContext) -> Result<(), RunnerError> {
        let files = stack.load(&ctx.checkout)?;
        let image = helper_image(&files)?;
        stack.stop()?;
        let prev_filter = format!("{}=warm-prev", cmd::KIND_LABEL);
        let is_ours = |v: &String| v.starts_with(&format!("{}_", stack.name));
        // A promote that died half-way left `.prev` copies: they are the known-good, put back.
        let stale_prev: Vec<String> = list_ids(Kind::Volume, &prev_filter)?
            .into_iter()
            .filter(is_ours)
            .collect();
        for prev in &stale_prev {
            let live = prev.trim_end_matches(".prev").to_string();
            tracing::warn!(volume = %live, "an earlier promote did not finish; restoring the known-good copy");
            let _ = exec::run(
                &cmd::remove(Kind::Volume, std::slice::from_ref(&live)),
                COMMAND_TIMEOUT,
            );
            let labels = volume_labels(prev)?;
            let mut labels = labels;
            labels.insert(cmd::KIND_LABEL.into(), "warm".into());
            stack.copy_volume(prev, &live, &image, &labels)?;
            docker(&cmd::remove(Kind::Volume, std::slice::from_ref(prev)))?;
        }
        let live: Vec<String> = list_ids(Kind::Volume, &stack.stack_filter())?;
        let mut prevs = Vec::new();
        for v in &live {
            let mut labels = volume_labels(v)?;
            labels.insert(cmd::KIND_LABEL.into(), "warm-prev".into());
            let prev = cmd::prev_volume(v);
            stack.copy_volume(v, &prev, &image, &labels)?;
            prevs.push((v.clone(), prev));
        }
        let outcome = stack
            .deploy(&ctx.checkout)
            .and_then(|f| stack.wait_healthy(&f));
        let stopped = stack.stop();
        match outcome.and(stopped) {
            Ok(()) => {
                for (_, prev) in &prevs {
                    docker(&cmd::remove(Kind::Volume, std::slice::from_ref(prev)))?;
                }
                tracing::info!(stack = %stack.name, volumes = ?live, "warm canonical replaced");
                Ok(())
            }
            Err(e) => {
                if prevs.is_empty() {
                    // A first promote that failed: leave no half-made canonical behind.
                    let problems = stack.teardown();
                    if !problems.is_empty() {
                        tracing::error!(stack = %stack.name, ?problems, "could not remove a failed first warm canonical");
                    }
                } else {
                    for (v, prev) in &prevs {
                        let mut labels = volume_labels(prev)?;
                        labels.insert(cmd::KIND_LABEL.into(), "warm".into());
                        docker(&cmd::remove(Kind::Volume, std::slice::from_ref(v)))?;
                        stack.copy_volume(prev, v, &image, &labels)?;
                        docker(&cmd::remove(Kind::Volume, std::slice::from_ref(prev)))?;
                    }
                    tracing::warn!(stack = %stack.name, "promote failed; the previous warm volumes were put back");
                }
                Err(e)
            }
        }
    }
}

fn volume_labels(volume: &str) -> Result<BTreeMap<String, String>, RunnerError> {
    let info = inspect_json(Kind::Volume, &[volume.to_string()])?;
    Ok(info
        .first()
        .and_then(|i| i["Labels"].as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default())
}

/// One volume's snapshot and the marker it must hold.
#[derive(Debug, Clone)]
struct Snapshot {
    volume: String,
    file: PathBuf,
    nonce: String,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The docker runner's steps of one cold run, for the [`ladder`]: what the last deploy deployed,
/// the snapshots of the backup, and whether the stack is up.
struct ColdSteps<'a> {
    runner: &'a DockerRunner,
    stack: &'a Stack,
    files: Option<RecipeFiles>,
    snapshots: Vec<Snapshot>,
    running: bool,
}

impl ColdSteps<'_> {
    /// Deploys the checkout and waits until it is healthy; keeps what it deployed.
    fn deploy_healthy(&mut self, release: Release<'_>) -> Result<(), RunnerError> {
        let files = self.stack.deploy(release.checkout)?;
        self.stack.wait_healthy(&files)?;
        self.files = Some(files);
        self.running = true;
        Ok(())
    }

    fn files(&self) -> Result<&RecipeFiles, RunnerError> {
        self.files
            .as_ref()
            .ok_or_else(|| RunnerError::Other("nothing was deployed".into()))
    }
}

impl Steps for ColdSteps<'_> {
    fn runner(&self) -> &'static str {
        self.runner.name()
    }

    fn target(&self) -> Target {
        Target {
            stack: self.stack.name.clone(),
            domain: self.stack.domain.clone(),
        }
    }

    fn install(&mut self, release: Release<'_>) -> Result<(), RunnerError> {
        self.deploy_healthy(release)
    }

    fn upgrade(&mut self, release: Release<'_>) -> Result<(), RunnerError> {
        self.deploy_healthy(release)
    }

    fn declares_backups(&self) -> bool {
        self.files
            .as_ref()
            .is_some_and(|f| f.facts.declares_backups())
    }

    fn backup(&mut self) -> Result<(), RunnerError> {
        // Volume snapshots are taken while the services are stopped.
        self.running = false;
        self.snapshots = self.runner.backup(self.stack, self.files()?)?;
        Ok(())
    }

    fn restore(&mut self, release: Release<'_>) -> Result<(), RunnerError> {
        self.runner
            .restore(self.stack, self.files()?, &self.snapshots)?;
        self.deploy_healthy(release)
    }

    fn running(&self) -> bool {
        self.running
    }

    fn teardown(&mut self) -> Vec<String> {
        self.stack.teardown()
    }
}

impl Runner for DockerRunner {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn run(&self, ctx: &RunContext) -> Result<Vec<StageResult>, RunnerError> {
        ensure_swarm()?;
        let name =
            stack_names::cold_stack_name(ctx.recipe.name.as_str(), ctx.tested_name(), &ctx.build);
        let stack = Stack::new(self, ctx, name, StackKind::Cold)?;
        tracing::info!(recipe = %ctx.recipe.name, tested = %ctx.tested, stack = %stack.name, "cold run starts");
        let mut steps = ColdSteps {
            runner: self,
            stack: &stack,
            files: None,
            snapshots: Vec::new(),
            running: false,
        };
        Ok(ladder::run(ctx, &mut steps))
    }

    fn promote(&self, ctx: &RunContext) -> Result<(), RunnerError> {
        if !matches!(ctx.tested, TestedRef::Tag(_)) {
            return Err(RunnerError::Other(
                "only a tag can become the warm canonical".into(),
            ));
        }
        ensure_swarm()?;
        let name = stack_names::warm_stack_name(ctx.recipe.name.as_str());
        let stack = Stack::new(self, ctx, name, StackKind::Warm)?;
        tracing::info!(recipe = %ctx.recipe.name, tested = %ctx.tested, stack = %stack.name, "promote: deploying the warm canonical");
        self.promote_inner(&stack, ctx)
    }
}

/// What [`cleanup_stale`] removed (or, on a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// True when nothing was removed.
    pub dry_run: bool,
    /// `(kind, name)` of each stale object.
    pub removed: Vec<(String, String)>,
    /// How many labelled objects were kept: warm, shared, or younger than the limit.
    pub kept: usize,
    /// Objects that could not be removed, with the reason.
    pub failed: Vec<String>,
}

fn object_name_and_labels(kind: Kind, v: &Value) -> (String, BTreeMap<String, String>) {
    let (name, labels) = match kind {
        Kind::Container => (
            v["Name"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches('/'),
            &v["Config"]["Labels"],
        ),
        Kind::Service | Kind::Secret => (
            v["Spec"]["Name"].as_str().unwrap_or_default(),
            &v["Spec"]["Labels"],
        ),
        Kind::Volume | Kind::Network => (v["Name"].as_str().unwrap_or_default(), &v["Labels"]),
    };
    let labels = labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    (name.to_string(), labels)
}

/// Returns true when an object with these labels is a cold run's leftover older than the
/// cutoff. Warm canonicals (`warm-*`, `canon.kind=warm|warm-prev`) and shared objects never are.
pub fn is_stale(labels: &BTreeMap<String, String>, now: u64, older_than: Duration) -> bool {
    let stack = labels
        .get(cmd::STACK_NAME_LABEL)
        .map(String::as_str)
        .unwrap_or("");
    let kind = labels
        .get(cmd::KIND_LABEL)
        .map(String::as_str)
        .unwrap_or("");
    if stack.is_empty() || stack.starts_with("warm-") || !matches!(kind, "cold" | "helper") {
        return false;
    }
    let Some(created) = labels
        .get(cmd::CREATED_LABEL)
        .and_then(|c| c.parse::<u64>().ok())
    else {
        return false;
    };
    now.saturating_sub(created) >= older_than.as_secs()
}

/// Removes cold-run stacks, containers, volumes, secrets and networks (all labelled
/// `canon.managed=true`) older than `older_than`, e.g. what a SIGKILLed run left. Never touches
/// the warm canonicals. With `dry_run`, only reports.
pub fn cleanup_stale(older_than: Duration, dry_run: bool) -> Result<CleanupReport, RunnerError> {
    let now = now_unix();
    let mut report = CleanupReport {
        dry_run,
        ..CleanupReport::default()
    };
    let mut stale: Vec<(Kind, String, String)> = Vec::new();
    let mut stacks = BTreeSet::new();
    for kind in Kind::ALL {
        let ids = list_ids(kind, cmd::MANAGED_LABEL)?;
        for obj in inspect_json(kind, &ids)? {
            let (name, labels) = object_name_and_labels(kind, &obj);
            if is_stale(&labels, now, older_than) {
                let id = obj["ID"]
                    .as_str()
                    .or_else(|| obj["Id"].as_str())
                    .unwrap_or(&name)
                    .to_string();
                if kind == Kind::Service {
                    if let Some(s) = labels.get(cmd::STACK_NAME_LABEL) {
                        stacks.insert(s.clone());
                    }
                }
                stale.push((kind, id, name));
            } else {
                report.kept += 1;
            }
        }
    }
    report.removed = stale
        .iter()
        .map(|(k, _, n)| (k.as_str().to_string(), n.clone()))
        .collect();
    if dry_run {
        return Ok(report);
    }
    for s in &stacks {
        if let Err(e) = exec::run_ok(&cmd::stack_rm(s), COMMAND_TIMEOUT) {
            report.failed.push(e.to_string());
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for kind in [Kind::Container, Kind::Volume, Kind::Secret, Kind::Network] {
        let ids: Vec<String> = stale
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, id, _)| id.clone())
            .collect();
        for id in ids {
            loop {
                match exec::run(
                    &cmd::remove(kind, std::slice::from_ref(&id)),
                    COMMAND_TIMEOUT,
                ) {
                    Ok(o) if o.success() => break,
                    Ok(o) if o.stderr.contains("No such") || o.stderr.contains("not found") => {
                        break
                    }
                    Ok(o) if Instant::now() < deadline && o.stderr.contains("in use") => {
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    Ok(o) => {
                        report
                            .failed
                            .push(format!("{} {id}: {}", kind.as_str(), o.stderr.trim()));
                        break;
                    }
                    Err(e) => {
                        report.failed.push(e.to_string());
                        break;
                    }
                }
            }
        }
    }
    Ok(report)
}

/// One warm canonical volume and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSize {
    /// The engine name (`warm-<recipe>_<key>`).
    pub name: String,
    /// The size as docker reports it (`12.3MB`).
    pub size: String,
    /// The size in bytes, when it parses.
    pub bytes: Option<u64>,
}

/// Parses docker's human sizes (`0B`, `1.5kB`, `12MB`, decimal units) into bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = text.split_at(split);
    let num: f64 = num.trim().parse().ok()?;
    let factor: f64 = match unit {
        "B" => 1.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    };
    Some((num * factor).round() as u64)
}

/// Returns the size of each volume of the warm canonical `warm-<recipe>`.
pub fn warm_volume_sizes(recipe: &str) -> Result<Vec<VolumeSize>, RunnerError> {
    let prefix = format!("{}_", stack_names::warm_stack_name(recipe));
    let out = docker(&cmd::volume_sizes())?;
    let rows: Vec<Value> = serde_json::from_str(out.stdout.trim())
        .map_err(|e| RunnerError::Other(format!("docker system df printed invalid JSON: {e}")))?;
    let mut sizes: Vec<VolumeSize> = rows
        .iter()
        .filter_map(|r| {
            let name = r["Name"].as_str()?;
            let size = r["Size"].as_str().unwrap_or_default();
            (name.starts_with(&prefix) && !name.ends_with(".prev")).then(|| VolumeSize {
                name: name.to_string(),
                size: size.to_string(),
                bytes: parse_size(size),
            })
        })
        .collect();
    sizes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_old_cold_objects_are_stale_and_warm_ones_never() {
        let day = Duration::from_secs(86_400);
        let now = 10 * 86_400;
        let old = (now - 2 * 86_400).to_string();
        let young = (now - 60).to_string();
        let table = [
            (
                vec![
                    ("canon.stack", "cold-a-1-1"),
                    ("canon.kind", "cold"),
                    ("canon.created", old.as_str()),
                ],
                true,
            ),
            (
                vec![
                    ("canon.stack", "cold-a-1-1"),
                    ("canon.kind", "helper"),
                    ("canon.created", old.as_str()),
                ],
                true,
            ),
            (
                vec![
                    ("canon.stack", "cold-a-1-1"),
                    ("canon.kind", "cold"),
                    ("canon.created", young.as_str()),
                ],
                false,
            ),
            (
                vec![
                    ("canon.stack", "warm-a"),
                    ("canon.kind", "cold"),
                    ("canon.created", old.as_str()),
                ],
                false,
            ),
            (
                vec![
                    ("canon.stack", "warm-a"),
                    ("canon.kind", "helper"),
                    ("canon.created", old.as_str()),
                ],
                false,
            ),
            (
                vec![
                    ("canon.stack", "x"),
                    ("canon.kind", "warm"),
                    ("canon.created", old.as_str()),
                ],
                false,
            ),
            (
                vec![
                    ("canon.stack", "x"),
                    ("canon.kind", "warm-prev"),
                    ("canon.created", old.as_str()),
                ],
                false,
            ),
            (
                vec![("canon.kind", "shared"), ("canon.created", old.as_str())],
                false,
            ),
            (
                vec![("canon.stack", "cold-a-1-1"), ("canon.kind", "cold")],
                false,
            ),
            (
                vec![
                    ("canon.stack", "cold-a-1-1"),
                    ("canon.kind", "cold"),
                    ("canon.created", "soon"),
                ],
                false,
            ),
        ];
        for (pairs, want) in table {
            assert_eq!(is_stale(&labels(&pairs), now, day), want, "{pairs:?}");
        }
    }

    #[test]
    fn docker_sizes_parse_in_decimal_units() {
        assert_eq!(parse_size("0B"), Some(0));
        assert_eq!(parse_size("1.5kB"), Some(1500));
        assert_eq!(parse_size("12MB"), Some(12_000_000));
        assert_eq!(parse_size("2.1GB"), Some(2_100_000_000));
        assert_eq!(parse_size("N/A"), None);
        assert_eq!(parse_size("12XB"), None);
    }

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

    #[test]
    fn markers_are_found_only_when_present() {
        assert!(contains(b"..abc..", b"abc"));
        assert!(!contains(b"..ab..", b"abc"));
        assert!(!contains(b"abc", b""));
    }
}
