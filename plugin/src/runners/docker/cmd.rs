//! Every docker command the runner issues, built by a pure function (plain data, unit-tested),
//! plus the names and labels that make a run's objects findable by a later sweep.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use canon_shared::secret::Secret;

use crate::recipe::compose::Compose;
use crate::runners::exec::{Cmd, Input};

/// The label `docker stack deploy` puts on everything a stack owns.
pub const STACK_LABEL: &str = "com.docker.stack.namespace";
/// Marks every object canon creates.
pub const MANAGED_LABEL: &str = "canon.managed";
/// Which stack (cold run or warm canonical) an object belongs to.
pub const STACK_NAME_LABEL: &str = "canon.stack";
/// `cold`, `warm`, `warm-prev` or `helper`.
pub const KIND_LABEL: &str = "canon.kind";
/// The recipe.
pub const RECIPE_LABEL: &str = "canon.recipe";
/// The tag or ref under test.
pub const TAG_LABEL: &str = "canon.tag";
/// The build number.
pub const BUILD_LABEL: &str = "canon.build";
/// Creation time, unix seconds: the sweep's age test.
pub const CREATED_LABEL: &str = "canon.created";
/// Where a helper container mounts the volume it reads or writes.
pub const HELPER_MOUNT: &str = "/canon-vol";

/// What kind of stack an object belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackKind {
    /// A cold run: removed at teardown, swept when left behind.
    Cold,
    /// The warm canonical `warm-<recipe>`: kept, never swept.
    Warm,
}

impl StackKind {
    /// Returns the label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StackKind::Cold => "cold",
            StackKind::Warm => "warm",
        }
    }
}

/// The labels every object of one stack carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLabels {
    /// The stack name.
    pub stack: String,
    /// Cold or warm.
    pub kind: StackKind,
    /// The recipe.
    pub recipe: String,
    /// The tag or ref.
    pub tag: String,
    /// The build number.
    pub build: String,
    /// Unix seconds at the start of the run.
    pub created: u64,
}

impl RunLabels {
    /// Returns the labels as a map, with `kind` overridden when given (e.g. `helper`).
    pub fn map(&self, kind: Option<&str>) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_LABEL.to_string(), "true".to_string()),
            (STACK_NAME_LABEL.to_string(), self.stack.clone()),
            (
                KIND_LABEL.to_string(),
                kind.unwrap_or(self.kind.as_str()).to_string(),
            ),
            (RECIPE_LABEL.to_string(), self.recipe.clone()),
            (TAG_LABEL.to_string(), self.tag.clone()),
            (BUILD_LABEL.to_string(), self.build.clone()),
            (CREATED_LABEL.to_string(), self.created.to_string()),
        ])
    }
}

/// Returns the engine name of a stack's volume (`<stack>_<key>`).
pub fn stack_volume(stack: &str, key: &str) -> String {
    format!("{stack}_{key}")
}

/// Returns the name of the copy kept of a warm volume while a promote is in flight.
pub fn prev_volume(volume: &str) -> String {
    format!("{volume}.prev")
}

fn label_args(cmd: &mut Cmd, labels: &BTreeMap<String, String>) {
    for (k, v) in labels {
        *cmd = cmd.clone().arg("--label").arg(format!("{k}={v}"));
    }
}

/// `docker stack deploy` of the recipe files plus canon's label override, with the deploy env;
/// never resolves images against a registry (everything is local). No `--detach`: clients before
/// 26 do not know the flag and return at once anyway, newer ones default to detached; canon
/// waits for the services itself.
pub fn stack_deploy(
    stack: &str,
    files: &[PathBuf],
    env: &BTreeMap<String, String>,
    cwd: &Path,
) -> Cmd {
    let mut c = Cmd::new("docker", ["stack", "deploy", "--resolve-image", "never"]);
    for f in files {
        c = c.arg("-c").arg(f.display().to_string());
    }
    c = c.arg(stack);
    c.env = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
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

/// `docker info` for the engine's node name: where the volumes it creates live.
pub fn node_name() -> Cmd {
    Cmd::new("docker", ["info", "--format", "{{.Name}}"])
}

fn yaml_str(s: &str) -> String {
    // JSON strings are valid YAML flow scalars.
    serde_json::Value::String(s.to_string()).to_string()
}

fn yaml_labels(out: &mut String, indent: &str, labels: &BTreeMap<String, String>) {
    for (k, v) in labels {
        // `docker stack deploy` interpolates the override like any compose file: a `$` in a
        // label value (a tag's upstream part is opaque text) is written as `$$` so it stays
        // literal instead of naming a variable.
        let _ = writeln!(
            out,
            "{indent}{}: {}",
            yaml_str(k),
            yaml_str(&v.replace('$', "$$"))
        );
    }
}

/// What the override adds to the `app` service only, as `abra app deploy` does: its deploy
/// labels (recipe, chaos, version) and the app env it exposes
/// ([`super::app_service`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppAdditions {
    /// Deploy labels of the `app` service.
    pub deploy_labels: BTreeMap<String, String>,
    /// Environment of the `app` service (keys its own `environment:` does not set).
    pub environment: BTreeMap<String, String>,
}

/// Returns canon's compose override: the run's labels on every service (and its containers),
/// every declared volume, every non-external network and secret, so a sweep can find them;
/// abra's labels and exposed env on the `app` service; and the engine name of each external
/// secret in `secret_names` (by key: a warm run uses the warm canonical's secrets).
pub fn label_override(
    facts: &Compose,
    labels: &BTreeMap<String, String>,
    app: &AppAdditions,
    secret_names: &BTreeMap<String, String>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "version: {}",
        yaml_str(facts.version.as_deref().unwrap_or("3.8"))
    );
    out.push_str("services:\n");
    for s in &facts.services {
        let _ = writeln!(out, "  {}:", yaml_str(&s.name));
        out.push_str("    labels:\n");
        yaml_labels(&mut out, "      ", labels);
        out.push_str("    deploy:\n      labels:\n");
        if s.name == super::app_service::APP_SERVICE {
            let mut all = labels.clone();
            all.extend(app.deploy_labels.clone());
            yaml_labels(&mut out, "        ", &all);
            if !app.environment.is_empty() {
                out.push_str("    environment:\n");
                yaml_labels(&mut out, "      ", &app.environment);
            }
        } else {
            yaml_labels(&mut out, "        ", labels);
        }
    }
    if !facts.volumes.is_empty() {
        out.push_str("volumes:\n");
        for v in &facts.volumes {
            let _ = writeln!(out, "  {}:\n    labels:", yaml_str(v));
            yaml_labels(&mut out, "      ", labels);
        }
    }
    let networks: Vec<_> = facts.networks.iter().filter(|n| !n.external).collect();
    if !networks.is_empty() {
        out.push_str("networks:\n");
        for n in networks {
            let _ = writeln!(out, "  {}:\n    labels:", yaml_str(&n.key));
            yaml_labels(&mut out, "      ", labels);
        }
    }
    let secrets: Vec<_> = facts
        .secrets
        .iter()
        .filter(|s| !s.external || secret_names.contains_key(&s.key))
        .collect();
    if !secrets.is_empty() {
        out.push_str("secrets:\n");
        for s in secrets {
            let _ = writeln!(out, "  {}:", yaml_str(&s.key));
            match secret_names.get(&s.key) {
                Some(name) if s.external => {
                    // Whole: docker's loader replaces a secret's definition, it does not merge it.
                    out.push_str("    external: true\n");
                    let _ = writeln!(out, "    name: {}", yaml_str(&name.replace('$', "$$")));
                }
                _ => {
                    out.push_str("    labels:\n");
                    yaml_labels(&mut out, "      ", labels);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::compose::Compose;

    fn labels() -> RunLabels {
        RunLabels {
            stack: "cold-app-abc123-7".into(),
            kind: StackKind::Cold,
            recipe: "app".into(),
            tag: "1.0.0+1.2".into(),
            build: "7".into(),
            created: 1_700_000_000,
        }
    }

    #[test]
    fn a_warm_volumes_copy_is_named_after_it() {
        assert_eq!(prev_volume("warm-gitea_data"), "warm-gitea_data.prev");
    }

    #[test]
    fn deploy_never_resolves_images_and_passes_env() {
        let env = BTreeMap::from([("STACK_NAME".to_string(), "s".to_string())]);
        let c = stack_deploy(
            "s",
            &[
                PathBuf::from("/co/compose.yml"),
                PathBuf::from("/run/canon.yml"),
            ],
            &env,
            Path::new("/co"),
        );
        assert_eq!(
            c.display(),
            "docker stack deploy --resolve-image never -c /co/compose.yml -c /run/canon.yml s"
        );
        assert_eq!(c.env, vec![("STACK_NAME".to_string(), "s".to_string())]);
        assert_eq!(c.cwd.as_deref(), Some(Path::new("/co")));
        assert_eq!(stack_rm("s").argv(), ["stack", "rm", "s"]);
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

    #[test]
    fn the_override_labels_services_volumes_networks_and_file_secrets() {
        let mut f = Compose::default();
        f.merge(
            Path::new("compose.yml"),
            "version: '3.8'\nservices: {app: {image: x}}\nvolumes: {data: }\nnetworks: {proxy: {external: true}, internal: }\nsecrets: {k: {external: true}, f: {file: ./f}}\n",
            "s",
            &BTreeMap::new(),
        )
        .unwrap();
        let text = label_override(
            &f,
            &labels().map(None),
            &AppAdditions::default(),
            &BTreeMap::new(),
        );
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(doc["version"], "3.8");
        assert_eq!(
            doc["services"]["app"]["deploy"]["labels"]["canon.kind"],
            "cold"
        );
        assert_eq!(doc["services"]["app"]["labels"]["canon.tag"], "1.0.0+1.2");
        assert_eq!(
            doc["volumes"]["data"]["labels"]["canon.stack"],
            "cold-app-abc123-7"
        );
        assert_eq!(doc["networks"]["internal"]["labels"]["canon.build"], "7");
        assert!(doc["networks"].get("proxy").is_none());
        assert_eq!(doc["secrets"]["f"]["labels"]["canon.created"], "1700000000");
        assert!(doc["secrets"].get("k").is_none());

        // A warm run names the warm canonical's secret for an external one; a file secret keeps
        // its labels whatever the map says.
        let names = BTreeMap::from([
            ("k".to_string(), "warm-app_k_v1".to_string()),
            ("f".to_string(), "ignored".to_string()),
        ]);
        let text = label_override(&f, &labels().map(None), &AppAdditions::default(), &names);
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(doc["secrets"]["k"]["name"], "warm-app_k_v1", "{text}");
        assert_eq!(doc["secrets"]["k"]["external"], true);
        assert!(doc["secrets"]["k"].get("labels").is_none());
        assert_eq!(doc["secrets"]["f"]["labels"]["canon.build"], "7");
        assert!(doc["secrets"]["f"].get("name").is_none());
    }

    #[test]
    fn a_dollar_in_a_label_value_stays_literal_after_interpolation() {
        let mut f = Compose::default();
        f.merge(
            Path::new("compose.yml"),
            "version: '3.8'\nservices: {app: {image: x}}\n",
            "s",
            &BTreeMap::new(),
        )
        .unwrap();
        let labels = BTreeMap::from([("canon.tag".to_string(), "1.0.0+a$HOME${X}".to_string())]);
        let text = label_override(&f, &labels, &AppAdditions::default(), &BTreeMap::new());
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            doc["services"]["app"]["labels"]["canon.tag"], "1.0.0+a$$HOME$${X}",
            "{text}"
        );
    }

    #[test]
    fn only_the_app_service_gets_abras_labels_and_the_exposed_env_with_dollars_kept_literal() {
        let mut f = Compose::default();
        f.merge(
            Path::new("compose.yml"),
            "version: '3.8'\nservices: {app: {image: x}, db: {image: y}}\n",
            "s",
            &BTreeMap::new(),
        )
        .unwrap();
        let app = AppAdditions {
            deploy_labels: BTreeMap::from([("coop-cloud.s.recipe".into(), "r".into())]),
            environment: BTreeMap::from([("PASSWORD_HINT".into(), "a$b".into())]),
        };
        let text = label_override(&f, &labels().map(None), &app, &BTreeMap::new());
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let app_svc = &doc["services"]["app"];
        assert_eq!(app_svc["deploy"]["labels"]["coop-cloud.s.recipe"], "r");
        assert_eq!(app_svc["deploy"]["labels"]["canon.kind"], "cold");
        assert_eq!(app_svc["environment"]["PASSWORD_HINT"], "a$$b");
        let db = &doc["services"]["db"];
        assert!(db["deploy"]["labels"].get("coop-cloud.s.recipe").is_none());
        assert!(db.get("environment").is_none(), "{text}");
    }

    #[test]
    fn helper_labels_override_the_kind_only() {
        let m = labels().map(Some("helper"));
        assert_eq!(m[KIND_LABEL], "helper");
        assert_eq!(m[STACK_NAME_LABEL], "cold-app-abc123-7");
        assert_eq!(m[MANAGED_LABEL], "true");
    }
}
