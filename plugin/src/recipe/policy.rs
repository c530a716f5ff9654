//! The deploy policy: what in a recipe's resolved compose model reaches past its containers into
//! the host, and whether the enrollment allows it. A recipe is hostile input, and a pull-request
//! run deploys whatever its head says, so every such setting is a finding, and a finding is
//! refused unless the recipe's enrollment entry lists its host path or its kind in
//! `host_access:`.
//!
//! The findings, by kind ([`Kind::as_str`]):
//! - `bind_mount`: any bind mount of a host path, short (`./x:/y`, `/x:/y`, `~/x:/y`) or long
//!   (`type: bind`) syntax. A relative source inside the checkout is a finding too: on a swarm it
//!   names a folder of the host the task lands on, not of the checkout.
//! - `docker_socket`: a bind mount of the Docker socket (`/var/run/docker.sock`,
//!   `/run/docker.sock`, or any `docker.sock`), which is root on the host.
//! - `host_network`: `network_mode: host`, or a network whose engine name is `host`.
//! - `host_pid`, `host_ipc`, `host_userns`: `pid: host`, `ipc: host`, `userns_mode: host`.
//! - `privileged`: `privileged: true`.
//! - `devices`: each entry of `devices` (its host device).
//! - `cap_add`: each added capability.
//! - `secret_file`, `config_file`, `env_file`: a top-level secret's or config's `file:`, or a
//!   service's `env_file`, outside the checkout (absolute, `~`, or climbing out with `..`).
//!
//! - a top-level volume whose `driver_opts` name a `device` (`type: none, o: bind`, or a
//!   remote export the host mounts) is a `bind_mount` (or `docker_socket`) of that device.
//!
//! [`check`] is pure over the [`Compose`] model the plan is resolved from: the plan `recipe plan`
//! prints is the plan checked, with paths compared lexically. [`linked_out`] adds what only the
//! disk shows: a file inside the checkout that is a symbolic link leading out of it.

use std::path::{Component, Path, PathBuf};

use super::compose::Compose;

/// What kind of host access a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A bind mount of a host path.
    BindMount,
    /// A bind mount of the Docker socket.
    DockerSocket,
    /// The host's network stack.
    HostNetwork,
    /// The host's process namespace.
    HostPid,
    /// The host's IPC namespace.
    HostIpc,
    /// The host's user namespace.
    HostUserns,
    /// A privileged container.
    Privileged,
    /// A host device.
    Devices,
    /// An added capability.
    CapAdd,
    /// A secret read from a file outside the checkout.
    SecretFile,
    /// A config read from a file outside the checkout.
    ConfigFile,
    /// An env file outside the checkout.
    EnvFile,
}

impl Kind {
    /// Every kind, in the order findings are listed.
    pub const ALL: [Kind; 12] = [
        Kind::BindMount,
        Kind::DockerSocket,
        Kind::HostNetwork,
        Kind::HostPid,
        Kind::HostIpc,
        Kind::HostUserns,
        Kind::Privileged,
        Kind::Devices,
        Kind::CapAdd,
        Kind::SecretFile,
        Kind::ConfigFile,
        Kind::EnvFile,
    ];

    /// Returns its name, as `host_access:` and the plan's JSON write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::BindMount => "bind_mount",
            Kind::DockerSocket => "docker_socket",
            Kind::HostNetwork => "host_network",
            Kind::HostPid => "host_pid",
            Kind::HostIpc => "host_ipc",
            Kind::HostUserns => "host_userns",
            Kind::Privileged => "privileged",
            Kind::Devices => "devices",
            Kind::CapAdd => "cap_add",
            Kind::SecretFile => "secret_file",
            Kind::ConfigFile => "config_file",
            Kind::EnvFile => "env_file",
        }
    }
}

/// One setting of the compose files that reaches into the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The service that asks for it; `None` for a top-level secret or config.
    pub service: Option<String>,
    /// What it is.
    pub kind: Kind,
    /// What it asks for, as written (a mount, a mode, a device, a capability, a file).
    pub detail: String,
    /// What a `host_access:` entry may name to allow it besides its kind: the host path (a
    /// mount's source, a device, a file) or the capability.
    pub subject: Option<String>,
    /// True when the enrollment's `host_access:` allows it.
    pub allowed: bool,
}

impl Finding {
    fn new(service: Option<&str>, kind: Kind, detail: String, subject: Option<&str>) -> Self {
        Finding {
            service: service.map(str::to_string),
            kind,
            detail,
            subject: subject.map(str::to_string),
            allowed: false,
        }
    }

    /// Returns true when the `host_access:` entry `entry` allows this finding: it names the kind,
    /// or the same path (compared lexically) or capability.
    pub fn allowed_by(&self, entry: &str) -> bool {
        let entry = entry.trim();
        entry == self.kind.as_str()
            || self
                .subject
                .as_deref()
                .is_some_and(|s| s == entry || normal(s) == normal(entry))
    }
}

/// One line for a report or an error: `service `app`: docker_socket /var/run/docker.sock:/x`.
impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.service {
            Some(s) => write!(f, "service `{s}`: ")?,
            None => write!(f, "top level: ")?,
        }
        write!(f, "{} {}", self.kind.as_str(), self.detail)
    }
}

/// Returns `path` normalized lexically: `.` dropped, `..` applied where it can be, trailing `/`
/// dropped.
fn normal(path: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Returns true when the relative `path` stays inside the folder it is relative to.
fn inside_checkout(path: &str) -> bool {
    if path.starts_with('/') || path.starts_with('~') {
        return false;
    }
    let mut depth: usize = 0;
    for c in Path::new(path).components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Returns true when the host path `path` is the Docker socket.
fn is_docker_socket(path: &str) -> bool {
    let p = normal(path);
    p == Path::new("/var/run/docker.sock")
        || p == Path::new("/run/docker.sock")
        || p.file_name().is_some_and(|n| n == "docker.sock")
}

/// Returns every finding of `compose`, services in file order, none allowed yet.
pub fn check(compose: &Compose) -> Vec<Finding> {
    let mut out = Vec::new();
    for svc in &compose.services {
        let name = Some(svc.name.as_str());
        for m in svc.mounts.iter().filter(|m| m.kind == "bind") {
            let Some(source) = m.source.as_deref() else {
                continue;
            };
            let kind = if is_docker_socket(source) {
                Kind::DockerSocket
            } else {
                Kind::BindMount
            };
            let detail = format!(
                "{source}:{}{}",
                m.target,
                if m.read_only { ":ro" } else { "" }
            );
            out.push(Finding::new(name, kind, detail, Some(source)));
        }
        let host = &svc.host;
        if host.network_mode.as_deref() == Some("host") {
            out.push(Finding::new(
                name,
                Kind::HostNetwork,
                "network_mode: host".into(),
                None,
            ));
        }
        for key in &host.networks {
            let on_host = compose
                .networks
                .iter()
                .any(|n| &n.key == key && n.external && n.name == "host");
            if on_host {
                out.push(Finding::new(
                    name,
                    Kind::HostNetwork,
                    format!("network `{key}` is the host network"),
                    None,
                ));
            }
        }
        for (value, kind, key) in [
            (&host.pid, Kind::HostPid, "pid"),
            (&host.ipc, Kind::HostIpc, "ipc"),
            (&host.userns_mode, Kind::HostUserns, "userns_mode"),
        ] {
            if value.as_deref() == Some("host") {
                out.push(Finding::new(name, kind, format!("{key}: host"), None));
            }
        }
        if host.privileged {
            out.push(Finding::new(
                name,
                Kind::Privileged,
                "privileged: true".into(),
                None,
            ));
        }
        for d in &host.devices {
            let device = d.split(':').next().unwrap_or(d);
            out.push(Finding::new(name, Kind::Devices, d.clone(), Some(device)));
        }
        for cap in &host.cap_add {
            out.push(Finding::new(name, Kind::CapAdd, cap.clone(), Some(cap)));
        }
        for file in host.env_file.iter().filter(|f| !inside_checkout(f)) {
            out.push(Finding::new(
                name,
                Kind::EnvFile,
                format!("env_file {file} is outside the checkout"),
                Some(file),
            ));
        }
    }
    for v in &compose.volume_devices {
        let detail = format!(
            "volume `{}` mounts {} through driver_opts{}",
            v.key,
            v.device,
            v.options
                .as_deref()
                .map(|o| format!(" (o: {o})"))
                .unwrap_or_default()
        );
        let kind = if is_docker_socket(&v.device) {
            Kind::DockerSocket
        } else {
            Kind::BindMount
        };
        out.push(Finding::new(None, kind, detail, Some(&v.device)));
    }
    for d in compose
        .declared_files
        .iter()
        .filter(|d| !inside_checkout(&d.file))
    {
        let kind = if d.section == "configs" {
            Kind::ConfigFile
        } else {
            Kind::SecretFile
        };
        out.push(Finding::new(
            None,
            kind,
            format!(
                "{}.{} reads {}, outside the checkout",
                d.section, d.key, d.file
            ),
            Some(&d.file),
        ));
    }
    out
}

/// Returns a finding for each file the compose files read from inside the checkout `dir` (a
/// secret's or config's `file:`, an `env_file`) that is, or passes through, a symbolic link
/// leading out of the checkout: `docker stack deploy` follows it, so `./s -> /etc/shadow` reads
/// the host's file although the path looks inside. The one check here that reads the disk.
pub fn linked_out(compose: &Compose, dir: &Path) -> Vec<Finding> {
    let Ok(root) = dir.canonicalize() else {
        return Vec::new();
    };
    let escapes = |file: &str| {
        inside_checkout(file)
            && dir
                .join(file)
                .canonicalize()
                .is_ok_and(|real| !real.starts_with(&root))
    };
    let mut out = Vec::new();
    for svc in &compose.services {
        for file in svc.host.env_file.iter().filter(|f| escapes(f)) {
            out.push(Finding::new(
                Some(&svc.name),
                Kind::EnvFile,
                format!("env_file {file} is a symbolic link out of the checkout"),
                Some(file),
            ));
        }
    }
    for d in compose.declared_files.iter().filter(|d| escapes(&d.file)) {
        let kind = if d.section == "configs" {
            Kind::ConfigFile
        } else {
            Kind::SecretFile
        };
        out.push(Finding::new(
            None,
            kind,
            format!(
                "{}.{} reads {}, a symbolic link out of the checkout",
                d.section, d.key, d.file
            ),
            Some(&d.file),
        ));
    }
    out
}

/// Marks each finding that an entry of `host_access` allows.
pub fn permit(findings: &mut [Finding], host_access: &[String]) {
    for f in findings {
        f.allowed = host_access.iter().any(|e| f.allowed_by(e));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Returns the findings of one compose file read as written, as `(service, kind, subject)`.
    fn findings(yaml: &str) -> Vec<(Option<String>, &'static str, Option<String>)> {
        let c = Compose::parse(Path::new("compose.yml"), yaml).unwrap();
        check(&c)
            .into_iter()
            .map(|f| (f.service, f.kind.as_str(), f.subject))
            .collect()
    }

    fn one(
        service: &str,
        kind: &'static str,
        subject: Option<&str>,
    ) -> Vec<(Option<String>, &'static str, Option<String>)> {
        vec![(Some(service.into()), kind, subject.map(str::to_string))]
    }

    #[test]
    fn each_kind_is_found() {
        let svc = |body: &str| format!("services:\n  app:\n    image: x\n{body}");
        let table: Vec<(String, Vec<_>)> = vec![
            (svc("    volumes: ['/:/host']\n"), one("app", "bind_mount", Some("/"))),
            (svc("    volumes: ['./config:/config:ro']\n"), one("app", "bind_mount", Some("./config"))),
            (svc("    volumes: ['~/x:/x']\n"), one("app", "bind_mount", Some("~/x"))),
            (
                svc("    volumes:\n      - type: bind\n        source: /etc\n        target: /e\n"),
                one("app", "bind_mount", Some("/etc")),
            ),
            (
                svc("    volumes: ['/var/run/docker.sock:/var/run/docker.sock:ro']\n"),
                one("app", "docker_socket", Some("/var/run/docker.sock")),
            ),
            (
                svc("    volumes:\n      - type: bind\n        source: /run/docker.sock\n        target: /s\n"),
                one("app", "docker_socket", Some("/run/docker.sock")),
            ),
            (svc("    network_mode: host\n"), one("app", "host_network", None)),
            (
                svc("    networks: [outside]\nnetworks:\n  outside:\n    external: true\n    name: host\n"),
                one("app", "host_network", None),
            ),
            (
                svc("    networks:\n      host: {}\nnetworks:\n  host:\n    external: true\n"),
                one("app", "host_network", None),
            ),
            (svc("    pid: host\n"), one("app", "host_pid", None)),
            (svc("    ipc: host\n"), one("app", "host_ipc", None)),
            (svc("    userns_mode: host\n"), one("app", "host_userns", None)),
            (svc("    privileged: true\n"), one("app", "privileged", None)),
            (svc("    devices: ['/dev/fuse:/dev/fuse:rwm']\n"), one("app", "devices", Some("/dev/fuse"))),
            (svc("    cap_add: [NET_ADMIN]\n"), one("app", "cap_add", Some("NET_ADMIN"))),
            (svc("    env_file: /etc/environment\n"), one("app", "env_file", Some("/etc/environment"))),
            (svc("    env_file: ['ok.env', '../../x.env']\n"), one("app", "env_file", Some("../../x.env"))),
            (
                "secrets:\n  s:\n    file: /etc/shadow\n".into(),
                vec![(None, "secret_file", Some("/etc/shadow".into()))],
            ),
            (
                "configs:\n  c:\n    file: ./a/../../b\n".into(),
                vec![(None, "config_file", Some("./a/../../b".into()))],
            ),
            (
                "volumes:\n  data:\n    driver: local\n    driver_opts: {type: none, o: bind, device: /etc}\n".into(),
                vec![(None, "bind_mount", Some("/etc".into()))],
            ),
            (
                "volumes:\n  s:\n    driver_opts: {type: none, o: bind, device: /var/run/docker.sock}\n".into(),
                vec![(None, "docker_socket", Some("/var/run/docker.sock".into()))],
            ),
        ];
        for (yaml, want) in table {
            assert_eq!(findings(&yaml), want, "{yaml}");
        }
    }

    #[test]
    fn what_stays_in_its_container_is_no_finding() {
        for body in [
            "    volumes: ['data:/data', '/anon']\n",
            "    volumes:\n      - type: volume\n        source: data\n        target: /d\n      - type: tmpfs\n        target: /t\n",
            "    network_mode: bridge\n    pid: service:db\n    ipc: shareable\n",
            "    privileged: false\n",
            "    networks: [proxy]\n",
            "    env_file: [.env, ./sub/x.env, a/../b.env]\n",
        ] {
            let yaml = format!(
                "services:\n  app:\n    image: x\n{body}networks:\n  proxy:\n    external: true\nsecrets:\n  s:\n    file: ./secrets/s\n  e:\n    external: true\nconfigs:\n  c:\n    file: conf/c.toml\n"
            );
            assert_eq!(findings(&yaml), vec![], "{yaml}");
        }
    }

    #[test]
    fn host_access_allows_by_kind_path_or_capability_and_nothing_else() {
        let c = Compose::parse(
            Path::new("compose.yml"),
            "services:\n  app:\n    image: x\n    volumes: ['/var/run/docker.sock:/s', '/srv/data/:/d']\n    cap_add: [NET_ADMIN, SYS_ADMIN]\n    pid: host\n",
        )
        .unwrap();
        let allowed = |entries: &[&str]| {
            let mut f = check(&c);
            permit(
                &mut f,
                &entries.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            );
            f.iter()
                .filter(|f| f.allowed)
                .map(|f| f.detail.clone())
                .collect::<Vec<_>>()
        };
        assert!(allowed(&[]).is_empty());
        assert_eq!(
            allowed(&["/var/run/docker.sock"]),
            ["/var/run/docker.sock:/s"]
        );
        assert_eq!(allowed(&["docker_socket"]), ["/var/run/docker.sock:/s"]);
        assert_eq!(allowed(&["/srv/data"]), ["/srv/data/:/d"]);
        assert_eq!(allowed(&["NET_ADMIN"]), ["NET_ADMIN"]);
        assert_eq!(allowed(&["cap_add"]), ["NET_ADMIN", "SYS_ADMIN"]);
        assert_eq!(allowed(&["host_pid"]), ["pid: host"]);
        // A parent folder, another socket path or a near name allows nothing.
        assert!(allowed(&["/var/run", "/srv", "host", "bind_mount:/srv/data"]).is_empty());
    }

    #[test]
    fn the_deployed_view_finds_interpolated_sources() {
        let env: std::collections::BTreeMap<String, String> =
            [("SOCK".to_string(), "/var/run/docker.sock".to_string())].into();
        let mut c = Compose::default();
        c.merge(
            Path::new("compose.yml"),
            "services:\n  app:\n    image: x\n    volumes:\n      - type: bind\n        source: ${SOCK}\n        target: /s\n",
            "s",
            &env,
        )
        .unwrap();
        assert_eq!(
            check(&c).iter().map(|f| f.kind).collect::<Vec<_>>(),
            [Kind::DockerSocket]
        );
    }

    #[test]
    fn paths_inside_the_checkout_are_told_apart() {
        for p in ["a", "./a", "a/b/../c", "a/.."] {
            assert!(inside_checkout(p), "{p}");
        }
        for p in ["/a", "~/a", "..", "../a", "a/../../b", "./../a"] {
            assert!(!inside_checkout(p), "{p}");
        }
    }

    #[test]
    fn a_file_inside_the_checkout_that_links_out_of_it_is_a_finding() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("shadow"), "root:x\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("shadow"), dir.path().join("s")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("linked")).unwrap();
        std::fs::write(dir.path().join("plain.env"), "A=1\n").unwrap();
        std::fs::create_dir(dir.path().join("inner")).unwrap();
        std::fs::write(dir.path().join("inner/c"), "x").unwrap();
        std::os::unix::fs::symlink("inner/c", dir.path().join("c")).unwrap();
        let yaml = "services:\n  app:\n    image: x\n    env_file: ['plain.env', 'linked/shadow']\nsecrets:\n  s:\n    file: ./s\nconfigs:\n  c:\n    file: ./c\n";
        let c = Compose::parse(&dir.path().join("compose.yml"), yaml).unwrap();
        assert_eq!(check(&c), vec![], "lexically every path is inside");
        let found: Vec<(Option<String>, &str, Option<String>)> = linked_out(&c, dir.path())
            .into_iter()
            .map(|f| (f.service, f.kind.as_str(), f.subject))
            .collect();
        assert_eq!(
            found,
            vec![
                (Some("app".into()), "env_file", Some("linked/shadow".into())),
                (None, "secret_file", Some("./s".into())),
            ],
            "a link that stays inside (./c -> inner/c) is no finding"
        );
    }
}
