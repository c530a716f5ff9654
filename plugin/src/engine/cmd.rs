//! Every docker command canon issues, built by a pure function (plain data, unit-tested) and run
//! by [`super::client`]. The labels they attach are [`super::labels`]'.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use canon_shared::secret::Secret;

use crate::process::exec::{Cmd, Input};

/// Where a helper container mounts the volume it reads or writes.
pub const HELPER_MOUNT: &str = "/canon-vol";

fn label_args(cmd: &mut Cmd, labels: &BTreeMap<String, String>) {
    for (k, v) in labels {
        *cmd = cmd.clone().arg("--label").arg(format!("{k}={v}"));
    }
}

/// `docker stack deploy` of the compose files canon resolved plus canon's label override, run in
/// `cwd` (the stack's scratch folder) with no recipe variable in its environment (the files need
/// none: [`crate::recipe::compose::resolved`]); never resolves images against a registry
/// (everything is local). No `--detach`: clients before 26 do not know the flag and return at
/// once anyway, newer ones default to detached; canon waits for the services itself.
pub fn stack_deploy(stack: &str, files: &[PathBuf], cwd: &Path) -> Cmd {
    let mut c = Cmd::new("docker", ["stack", "deploy", "--resolve-image", "never"]);
    for f in files {
        c = c.arg("-c").arg(f.display().to_string());
    }
    c = c.arg(stack);
    c.cwd = Some(cwd.to_path_buf());
    c
}

/// `docker stack rm <stack>`.
pub fn stack_rm(stack: &str) -> Cmd {
    Cmd::new("docker", ["stack", "rm", stack])
}

/// The engine object kinds canon creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Containers (task containers and helpers).
    Container,
    /// Swarm services.
    Service,
    /// Volumes.
    Volume,
    /// Swarm secrets.
    Secret,
    /// Networks.
    Network,
}

impl Kind {
    /// Every kind, in removal order (services first, networks last).
    pub const ALL: [Kind; 5] = [
        Kind::Service,
        Kind::Container,
        Kind::Volume,
        Kind::Secret,
        Kind::Network,
    ];

    /// Returns the docker object name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Service => "service",
            Kind::Volume => "volume",
            Kind::Secret => "secret",
            Kind::Network => "network",
        }
    }
}

/// Lists the ids (names for volumes) of objects of `kind` carrying `label` (`k` or `k=v`).
pub fn list(kind: Kind, label: &str) -> Cmd {
    let filter = format!("label={label}");
    match kind {
        Kind::Container => Cmd::new(
            "docker",
            ["ps", "-a", "-q", "--no-trunc", "--filter", &filter],
        ),
        Kind::Network => Cmd::new(
            "docker",
            ["network", "ls", "-q", "--no-trunc", "--filter", &filter],
        ),
        other => Cmd::new("docker", [other.as_str(), "ls", "-q", "--filter", &filter]),
    }
}

/// Lists the names of every object of `kind` (for before/after comparisons).
pub fn list_names(kind: Kind) -> Cmd {
    let format = "{{.Name}}";
    match kind {
        Kind::Container => Cmd::new("docker", ["ps", "-a", "--format", "{{.Names}}"]),
        other => Cmd::new("docker", [other.as_str(), "ls", "--format", format]),
    }
}

/// `docker <kind> inspect <ids>` (JSON array).
pub fn inspect(kind: Kind, ids: &[String]) -> Cmd {
    let mut c = Cmd::new("docker", [kind.as_str(), "inspect"]);
    for id in ids {
        c = c.arg(id.clone());
    }
    c
}

/// Removes objects: `docker rm -f`, `docker service rm`, `docker volume rm`, ...
pub fn remove(kind: Kind, ids: &[String]) -> Cmd {
    let mut c = match kind {
        Kind::Container => Cmd::new("docker", ["rm", "-f"]),
        other => Cmd::new("docker", [other.as_str(), "rm"]),
    };
    for id in ids {
        c = c.arg(id.clone());
    }
    c
}

/// The recent tasks of the given services, one line each with its state and error
/// (`app.1 Rejected 3 seconds ago No such image: ...`): what a wait that gave up shows in the
/// stage's transcript.
pub fn task_history(services: &[String]) -> Cmd {
    let mut c = Cmd::new(
        "docker",
        [
            "service",
            "ps",
            "--no-trunc",
            "--format",
            "{{.Name}} {{.CurrentState}} {{.Error}}",
        ],
    );
    for s in services {
        c = c.arg(s.clone());
    }
    c
}

/// The ids of every task of the given services that the engine still keeps: the ones swarm
/// wants running and the recent failed, rejected and replaced ones (their errors say why a
/// service does not converge).
pub fn all_tasks(services: &[String]) -> Cmd {
    let mut c = Cmd::new("docker", ["service", "ps", "-q", "--no-trunc"]);
    for s in services {
        c = c.arg(s.clone());
    }
    c
}

/// `docker inspect --type task <ids>`.
pub fn inspect_tasks(ids: &[String]) -> Cmd {
    let mut c = Cmd::new("docker", ["inspect", "--type", "task"]);
    for id in ids {
        c = c.arg(id.clone());
    }
    c
}

/// `docker secret create --label ... <name> -` with the value on stdin, never on the command line.
pub fn secret_create(name: &str, labels: &BTreeMap<String, String>, value: Secret) -> Cmd {
    let mut c = Cmd::new("docker", ["secret", "create"]);
    label_args(&mut c, labels);
    let mut c = c.arg(name).arg("-");
    c.stdin = Input::Secret(value);
    c
}

/// `docker volume create --driver <d> --label ... <name>`.
pub fn volume_create(name: &str, driver: &str, labels: &BTreeMap<String, String>) -> Cmd {
    let mut c = Cmd::new("docker", ["volume", "create", "--driver", driver]);
    label_args(&mut c, labels);
    c.arg(name)
}

/// `docker network create --driver overlay --attachable --label ... <name>` (a missing external
/// network such as traefik's `proxy`).
pub fn network_create(name: &str, labels: &BTreeMap<String, String>) -> Cmd {
    let mut c = Cmd::new(
        "docker",
        ["network", "create", "--driver", "overlay", "--attachable"],
    );
    label_args(&mut c, labels);
    c.arg(name)
}

/// Creates (never starts) a helper container that mounts `volume` at [`HELPER_MOUNT`], so
/// `docker cp` can read and write the volume with no extra image: any local image will do.
pub fn helper_create(
    name: &str,
    image: &str,
    volume: &str,
    labels: &BTreeMap<String, String>,
) -> Cmd {
    let mut c = Cmd::new("docker", ["create", "--name", name]);
    label_args(&mut c, labels);
    c.arg("--network")
        .arg("none")
        .arg("-v")
        .arg(format!("{volume}:{HELPER_MOUNT}"))
        .arg("--entrypoint")
        .arg("/canon-never-started")
        .arg(image)
}

/// Copies a path out of a container as a tar stream into `file` (`docker cp -a c:path - > file`).
pub fn cp_out(container: &str, path: &str, file: &Path) -> Cmd {
    let mut c = Cmd::new("docker", ["cp", "-a", &format!("{container}:{path}"), "-"]);
    c.stdout_file = Some(file.to_path_buf());
    c
}

/// Extracts a tar stream from `file` into a container directory (`docker cp -a - c:dir < file`).
pub fn cp_in(container: &str, dir: &str, file: &Path) -> Cmd {
    let mut c = Cmd::new("docker", ["cp", "-a", "-", &format!("{container}:{dir}")]);
    c.stdin = Input::File(file.to_path_buf());
    c
}

/// Copies one host file into a container path (`docker cp host c:path`).
pub fn cp_file_in(container: &str, host: &Path, path: &str) -> Cmd {
    Cmd::new(
        "docker",
        [
            "cp",
            &host.display().to_string(),
            &format!("{container}:{path}"),
        ],
    )
}

/// Lists the running containers of the swarm service `service` (`<stack>_<name>`), newest first.
pub fn running_containers(service: &str) -> Cmd {
    Cmd::new(
        "docker",
        [
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
            "--filter",
            "status=running",
        ],
    )
}

/// Runs `script` with the shell of a running container: `docker exec <container> sh -c <script>`
/// (how backupbot's hooks run).
pub fn exec_shell(container: &str, script: &str) -> Cmd {
    Cmd::new("docker", ["exec", container, "sh", "-c", script])
}

/// `docker exec` of `script` with the shell of a running container, with `env` added to its
/// environment: how the serving check sends a request from inside the recipe's `proxy`
/// network. Values reach the script only through `env`.
pub fn exec_request(container: &str, env: &BTreeMap<String, String>, script: &str) -> Cmd {
    let mut c = Cmd::new("docker", ["exec"]);
    for (k, v) in env {
        c = c.arg("-e").arg(format!("{k}={v}"));
    }
    c.arg(container).arg("sh").arg("-c").arg(script)
}

/// `docker network inspect docker_gwbridge`: where each container on an overlay network can be
/// reached from the host.
pub fn gwbridge_inspect() -> Cmd {
    Cmd::new("docker", ["network", "inspect", "docker_gwbridge"])
}

/// `docker system df -v --format '{{json .Volumes}}'`: every volume's size.
pub fn volume_sizes() -> Cmd {
    Cmd::new(
        "docker",
        ["system", "df", "-v", "--format", "{{json .Volumes}}"],
    )
}

/// `docker info --format '{{.Swarm.LocalNodeState}}'`.
pub fn swarm_state() -> Cmd {
    Cmd::new("docker", ["info", "--format", "{{.Swarm.LocalNodeState}}"])
}

/// `docker secret ls` with one secret name a line.
pub fn secret_names() -> Cmd {
    Cmd::new("docker", ["secret", "ls", "--format", "{{.Name}}"])
}

/// `docker info` for the engine's node name: where the volumes it creates live.
pub fn node_name() -> Cmd {
    Cmd::new("docker", ["info", "--format", "{{.Name}}"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::labels::STACK_LABEL;

    #[test]
    fn deploy_never_resolves_images_and_takes_no_recipe_env() {
        let c = stack_deploy(
            "s",
            &[
                PathBuf::from("/run/s/resolved/0-compose.yml"),
                PathBuf::from("/run/canon.yml"),
            ],
            Path::new("/run/s"),
        );
        assert_eq!(
            c.display(),
            "docker stack deploy --resolve-image never -c /run/s/resolved/0-compose.yml -c /run/canon.yml s"
        );
        assert!(c.env.is_empty());
        assert_eq!(c.inherit, crate::process::exec::Inherit::Tools);
        assert_eq!(c.cwd.as_deref(), Some(Path::new("/run/s")));
        assert_eq!(stack_rm("s").argv(), ["stack", "rm", "s"]);
        // A backupbot hook runs through the same CLI, with nothing of the recipe's env either.
        let hook = exec_shell("c1", "/pg_backup.sh backup");
        assert!(hook.env.is_empty());
        assert_eq!(hook.inherit, crate::process::exec::Inherit::Tools);
    }

    #[test]
    fn secrets_go_on_stdin_and_never_in_the_line() {
        let c = secret_create(
            "s_key_v1",
            &BTreeMap::from([("canon.kind".to_string(), "cold".to_string())]),
            Secret::new("hunter2".to_string()),
        );
        assert_eq!(
            c.display(),
            "docker secret create --label canon.kind=cold s_key_v1 -"
        );
        assert!(matches!(c.stdin, Input::Secret(_)));
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn list_remove_and_copy_commands_are_exact() {
        assert_eq!(
            list(Kind::Container, "canon.stack=s").argv(),
            [
                "ps",
                "-a",
                "-q",
                "--no-trunc",
                "--filter",
                "label=canon.stack=s"
            ]
        );
        assert_eq!(
            list(Kind::Volume, STACK_LABEL).argv(),
            [
                "volume",
                "ls",
                "-q",
                "--filter",
                "label=com.docker.stack.namespace"
            ]
        );
        assert_eq!(
            remove(Kind::Container, &["a".into(), "b".into()]).argv(),
            ["rm", "-f", "a", "b"]
        );
        assert_eq!(
            remove(Kind::Secret, &["x".into()]).argv(),
            ["secret", "rm", "x"]
        );
        assert_eq!(
            all_tasks(&["s_app".into()]).argv(),
            ["service", "ps", "-q", "--no-trunc", "s_app"]
        );
        let h = helper_create("h1", "img:1", "s_data", &BTreeMap::new());
        assert_eq!(
            h.argv(),
            [
                "create",
                "--name",
                "h1",
                "--network",
                "none",
                "-v",
                "s_data:/canon-vol",
                "--entrypoint",
                "/canon-never-started",
                "img:1"
            ]
        );
        let out = cp_out("h1", "/canon-vol", Path::new("/r/data.tar"));
        assert_eq!(out.display(), "docker cp -a h1:/canon-vol - > /r/data.tar");
        let inn = cp_in("h1", "/", Path::new("/r/data.tar"));
        assert_eq!(inn.display(), "docker cp -a - h1:/ < /r/data.tar");
        assert_eq!(
            volume_create("v", "local", &BTreeMap::from([("a".into(), "b".into())])).argv(),
            ["volume", "create", "--driver", "local", "--label", "a=b", "v"]
        );
    }
}
