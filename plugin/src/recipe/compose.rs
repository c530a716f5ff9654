//! What the built-in runners (docker, abra) need to know about a recipe checkout: its env
//! (`.env.sample`, `abra.sh` exports), its compose files, and from them the services, volumes,
//! secrets, networks and labels (backupbot, the HTTP port traefik would route to).
//!
//! Pure parsing over file contents; reading the files is the only I/O, in [`RecipeFiles::load`].
//! The env files are read by [`super::env_sample`] (godotenv's rules, as abra reads an app's `.env`)
//! and every compose value canon computes is substituted by [`super::interpolate`] (docker
//! compose's rules).
//!
//! Unlike [`super::version::ComposeFile`] (one raw `compose.yml`, `${STACK_NAME}` kept literal for
//! the release check), this reads the deployed view: several files merged in order, every value
//! interpolated, services in file order, and shapes canon does not need skipped rather than
//! refused. The compose forms both read (labels as a list or a map, the short volume syntax,
//! scalars as text) have one parser, in [`super::version`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::env_sample::{parse_abra_sh, EnvFile};
use super::interpolate::{interpolate, InterpolationError};
use super::version::{Labels, Scalar, ServiceVolume};

/// A parsing problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// A value of the file could not be interpolated (a `${V:?msg}` whose variable is missing).
    #[error("{path}: {error}")]
    Interpolation {
        path: PathBuf,
        error: InterpolationError,
    },
}

/// One service of the compose files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Service {
    /// Its name in the compose file (the swarm service is `<stack>_<name>`).
    pub name: String,
    /// `deploy.labels`, interpolated.
    pub deploy_labels: BTreeMap<String, String>,
    /// Named volumes it mounts (compose names, not yet prefixed by the stack).
    pub volumes: Vec<String>,
    /// Target ports it declares.
    pub ports: Vec<u16>,
    /// Its image, interpolated.
    pub image: Option<String>,
    /// The keys its `environment:` sets (list or map form, every file merged).
    pub environment: Vec<String>,
}

impl Service {
    /// Returns true when backupbot would back this service up (`backupbot.backup=true`).
    pub fn backed_up(&self) -> bool {
        self.deploy_labels
            .get("backupbot.backup")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Returns the port HTTP traffic reaches: the traefik `loadbalancer.server.port` label, else
    /// the first declared target port.
    pub fn http_port(&self) -> Option<u16> {
        self.deploy_labels
            .iter()
            .find(|(k, _)| {
                k.starts_with("traefik.http.services.") && k.ends_with(".loadbalancer.server.port")
            })
            .and_then(|(_, v)| v.trim().parse().ok())
            .or_else(|| self.ports.first().copied())
    }

    /// Returns the version the `coop-cloud.<stack>.version` deploy label names, if any.
    pub fn version_label(&self) -> Option<&str> {
        self.deploy_labels
            .iter()
            .find(|(k, _)| k.starts_with("coop-cloud.") && k.ends_with(".version"))
            .map(|(_, v)| v.as_str())
    }
}

/// A secret the compose files declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretDecl {
    /// Its key in the compose file.
    pub key: String,
    /// True when it is `external` (created before the deploy, as abra does).
    pub external: bool,
    /// Its engine name after interpolation (`name:`), or `<stack>_<key>` when none is given.
    pub name: String,
}

/// A network the compose files declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkDecl {
    /// Its key in the compose file.
    pub key: String,
    /// True when it is `external` (shared, e.g. traefik's `proxy`).
    pub external: bool,
    /// Its engine name for an external network.
    pub name: String,
}

/// The facts of a recipe checkout for one stack.
#[derive(Debug, Clone, Default)]
pub struct ComposeFacts {
    /// The `version:` of the first file that sets one.
    pub version: Option<String>,
    /// Services in file order (later files override earlier ones).
    pub services: Vec<Service>,
    /// Named volumes declared at the top level (compose keys).
    pub volumes: Vec<String>,
    /// Declared secrets.
    pub secrets: Vec<SecretDecl>,
    /// Declared networks.
    pub networks: Vec<NetworkDecl>,
}

impl ComposeFacts {
    /// Returns true when some service carries `backupbot.backup=true`.
    pub fn declares_backups(&self) -> bool {
        self.services.iter().any(Service::backed_up)
    }

    /// Returns the value of the deploy label `coop-cloud.<stack>.timeout` (after interpolation),
    /// the `app` service's first, else the first service in file order that carries it. abra
    /// takes this many seconds as the deploy's convergence timeout.
    pub fn timeout_label(&self, stack: &str) -> Option<&str> {
        let key = format!("coop-cloud.{stack}.timeout");
        let app = self.services.iter().filter(|s| s.name == "app");
        let others = self.services.iter().filter(|s| s.name != "app");
        app.chain(others)
            .find_map(|s| s.deploy_labels.get(&key))
            .map(String::as_str)
    }

    /// Returns the service an HTTP probe should target and its port: the first with a traefik
    /// port label or a declared port, else `app` on port 80.
    pub fn probe_target(&self) -> Option<(&Service, u16)> {
        self.services
            .iter()
            .find_map(|s| s.http_port().map(|p| (s, p)))
            .or_else(|| {
                self.services
                    .iter()
                    .find(|s| s.name == "app")
                    .map(|s| (s, 80))
            })
    }
}

fn as_map(v: &serde_yaml::Value) -> Option<&serde_yaml::Mapping> {
    v.as_mapping()
}

fn is_external(v: &serde_yaml::Value) -> bool {
    match v.get("external") {
        Some(serde_yaml::Value::Bool(b)) => *b,
        // The old `external: {name: x}` form.
        Some(serde_yaml::Value::Mapping(_)) => true,
        _ => false,
    }
}

/// Returns `value` with every string in it (mapping keys too) interpolated.
fn interpolate_value(
    value: &serde_yaml::Value,
    env: &BTreeMap<String, String>,
) -> Result<serde_yaml::Value, InterpolationError> {
    use serde_yaml::Value;
    Ok(match value {
        Value::String(s) => Value::String(interpolate(s, env)?),
        Value::Sequence(items) => Value::Sequence(
            items
                .iter()
                .map(|i| interpolate_value(i, env))
                .collect::<Result<_, _>>()?,
        ),
        Value::Mapping(m) => Value::Mapping(
            m.iter()
                .map(|(k, v)| Ok((interpolate_value(k, env)?, interpolate_value(v, env)?)))
                .collect::<Result<_, InterpolationError>>()?,
        ),
        other => other.clone(),
    })
}

/// Parses labels in either compose form (`- k=v` list or `k: v` map) with [`Labels`], after
/// interpolating them. Labels of another shape read as none.
fn labels(
    v: Option<&serde_yaml::Value>,
    env: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, InterpolationError> {
    let Some(v) = v else {
        return Ok(BTreeMap::new());
    };
    Ok(serde_yaml::from_value::<Labels>(interpolate_value(v, env)?)
        .map(|l| l.0)
        .unwrap_or_default())
}

/// Returns the keys a service's `environment:` sets: `- K=v` or `- K` in the list form, the keys
/// of the map form. A key is a literal in compose (only values are interpolated).
fn environment_keys(v: Option<&serde_yaml::Value>) -> Vec<String> {
    match v {
        Some(serde_yaml::Value::Sequence(items)) => items
            .iter()
            .filter_map(Scalar::text)
            .map(|item| {
                item.split('=')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            })
            .filter(|k| !k.is_empty())
            .collect(),
        Some(serde_yaml::Value::Mapping(m)) => m.keys().filter_map(Scalar::text).collect(),
        _ => Vec::new(),
    }
}

/// Parses one compose file's text into `facts` (merging over earlier files).
pub fn merge_compose(
    facts: &mut ComposeFacts,
    path: &Path,
    text: &str,
    stack: &str,
    env: &BTreeMap<String, String>,
) -> Result<(), ComposeError> {
    let err = |message: String| ComposeError::File {
        path: path.to_path_buf(),
        message,
    };
    let interpolate = |text: &str| {
        interpolate(text, env).map_err(|error| ComposeError::Interpolation {
            path: path.to_path_buf(),
            error,
        })
    };
    let doc: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| err(format!("invalid YAML: {e}")))?;
    let top = as_map(&doc).ok_or_else(|| err("not a mapping".into()))?;
    if facts.version.is_none() {
        facts.version = top.get("version").and_then(Scalar::text);
    }
    if let Some(services) = top.get("services").and_then(as_map) {
        for (name, body) in services {
            let name =
                Scalar::text(name).ok_or_else(|| err("a service name is not a string".into()))?;
            let idx = match facts.services.iter().position(|s| s.name == name) {
                Some(i) => i,
                None => {
                    facts.services.push(Service {
                        name: name.clone(),
                        ..Service::default()
                    });
                    facts.services.len() - 1
                }
            };
            let svc = &mut facts.services[idx];
            if let Some(image) = body.get("image").and_then(Scalar::text) {
                svc.image = Some(interpolate(&image)?);
            }
            let deploy_labels = labels(body.get("deploy").and_then(|d| d.get("labels")), env)
                .map_err(|error| ComposeError::Interpolation {
                    path: path.to_path_buf(),
                    error,
                })?;
            svc.deploy_labels.extend(deploy_labels);
            if let Some(vols) = body.get("volumes").and_then(|v| v.as_sequence()) {
                for v in vols {
                    let source = match v {
                        serde_yaml::Value::String(s) => {
                            ServiceVolume::parse_short(&interpolate(s)?)
                                .named_volume()
                                .map(str::to_string)
                        }
                        serde_yaml::Value::Mapping(_) => {
                            let kind = v.get("type").and_then(Scalar::text).unwrap_or_default();
                            match v.get("source").and_then(Scalar::text) {
                                Some(source) if kind == "volume" => Some(interpolate(&source)?),
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    if let Some(source) = source {
                        if !svc.volumes.contains(&source) {
                            svc.volumes.push(source);
                        }
                    }
                }
            }
            for key in environment_keys(body.get("environment")) {
                if !svc.environment.contains(&key) {
                    svc.environment.push(key);
                }
            }
            if let Some(ports) = body.get("ports").and_then(|v| v.as_sequence()) {
                for p in ports {
                    let target = match p {
                        serde_yaml::Value::Mapping(_) => p.get("target").and_then(Scalar::text),
                        other => Scalar::text(other)
                            .map(|s| s.rsplit(':').next().unwrap_or_default().to_string()),
                    };
                    if let Some(port) =
                        target.and_then(|t| t.split('/').next().and_then(|n| n.parse::<u16>().ok()))
                    {
                        svc.ports.push(port);
                    }
                }
            }
        }
    }
    if let Some(vols) = top.get("volumes").and_then(as_map) {
        for (k, _) in vols {
            if let Some(k) = Scalar::text(k) {
                if !facts.volumes.contains(&k) {
                    facts.volumes.push(k);
                }
            }
        }
    }
    if let Some(secrets) = top.get("secrets").and_then(as_map) {
        for (k, body) in secrets {
            let Some(key) = Scalar::text(k) else { continue };
            let name = match body.get("name").and_then(Scalar::text) {
                Some(n) => interpolate(&n)?,
                None => format!("{stack}_{key}"),
            };
            let decl = SecretDecl {
                key: key.clone(),
                external: is_external(body),
                name,
            };
            facts.secrets.retain(|s| s.key != key);
            facts.secrets.push(decl);
        }
    }
    if let Some(networks) = top.get("networks").and_then(as_map) {
        for (k, body) in networks {
            let Some(key) = Scalar::text(k) else { continue };
            let name = match body.get("name").and_then(Scalar::text) {
                Some(n) => interpolate(&n)?,
                None => key.clone(),
            };
            facts.networks.retain(|n| n.key != key);
            facts.networks.push(NetworkDecl {
                key,
                external: is_external(body),
                name,
            });
        }
    }
    Ok(())
}

/// A recipe checkout read for one stack: its env and compose facts.
#[derive(Debug, Clone)]
pub struct RecipeFiles {
    /// The checkout.
    pub dir: PathBuf,
    /// The env a deploy sees: `.env.sample`, then `abra.sh` exports, then the given overrides.
    pub env: BTreeMap<String, String>,
    /// The modifiers of `.env.sample`'s trailing comments, per key (`length=128`).
    pub env_modifiers: BTreeMap<String, BTreeMap<String, String>>,
    /// The keys of the app env proper: the lines of `.env.sample` and the exports of `abra.sh`
    /// (what abra holds as the app's env), without canon's own overrides such as `STACK_NAME`.
    pub app_env_keys: Vec<String>,
    /// The compose files in order (`COMPOSE_FILE`, else `compose.yml`).
    pub compose_files: Vec<PathBuf>,
    /// What the compose files declare.
    pub facts: ComposeFacts,
}

impl RecipeFiles {
    /// Reads `.env.sample` (optional), `abra.sh` (optional) and the compose files of `dir`, for
    /// the stack `stack`; `overrides` (e.g. `STACK_NAME`, `DOMAIN`) win over the files, and a
    /// `.env.sample` line for an overridden key already expands to the override (as the app's
    /// `.env` that `abra app new` writes holds the app's own `DOMAIN`).
    pub fn load(
        dir: &Path,
        stack: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, ComposeError> {
        Self::load_with_env(dir, &dir.join(".env.sample"), stack, overrides)
    }

    /// Reads `dir` like [`RecipeFiles::load`], except that the app env comes from `env_sample`
    /// (optional) instead of `dir`'s own `.env.sample`: how `abra app upgrade` deploys a new
    /// version with the env of the app as it was installed. `abra.sh` and the compose files are
    /// still `dir`'s.
    pub fn load_with_env(
        dir: &Path,
        env_sample: &Path,
        stack: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, ComposeError> {
        let read_opt = |path: PathBuf| -> Result<Option<String>, ComposeError> {
            match std::fs::read_to_string(&path) {
                Ok(t) => Ok(Some(t)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(ComposeError::File {
                    path,
                    message: e.to_string(),
                }),
            }
        };
        let mut env = BTreeMap::new();
        let mut env_modifiers = BTreeMap::new();
        if let Some(t) = read_opt(env_sample.to_path_buf())? {
            let file = EnvFile::parse_pinned(&t, overrides);
            env.extend(file.vars());
            env_modifiers = file.modifiers();
        }
        if let Some(t) = read_opt(dir.join("abra.sh"))? {
            env.extend(parse_abra_sh(&t));
        }
        let app_env_keys: Vec<String> = env.keys().cloned().collect();
        env.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        let compose_files: Vec<PathBuf> = match env.get("COMPOSE_FILE") {
            Some(list) if !list.trim().is_empty() => list
                .split(':')
                .filter(|f| !f.trim().is_empty())
                .map(|f| dir.join(f.trim()))
                .collect(),
            _ => vec![dir.join("compose.yml")],
        };
        let mut facts = ComposeFacts::default();
        for path in &compose_files {
            let text = std::fs::read_to_string(path).map_err(|e| ComposeError::File {
                path: path.clone(),
                message: e.to_string(),
            })?;
            merge_compose(&mut facts, path, &text, stack, &env)?;
        }
        if facts.services.is_empty() {
            return Err(ComposeError::File {
                path: compose_files[0].clone(),
                message: "declares no services".into(),
            });
        }
        Ok(RecipeFiles {
            dir: dir.to_path_buf(),
            env,
            env_modifiers,
            app_env_keys,
            compose_files,
            facts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn compose_facts_name_services_volumes_secrets_and_labels() {
        let text = r#"
services:
  app:
    image: x
    volumes: ["data:/data", "./conf:/conf", "/srv:/srv", {type: volume, source: extra, target: /e}]
    deploy:
      labels:
        - "coop-cloud.${STACK_NAME}.version=1.0.0+1.2"
        - "backupbot.backup=true"
        - "traefik.http.services.${STACK_NAME}.loadbalancer.server.port=3000"
  db:
    image: y
    ports: ["5432", {target: 8080}]
    deploy:
      labels: {backupbot.backup: "false"}
volumes:
  data:
  extra:
secrets:
  db_password:
    external: true
    name: ${STACK_NAME}_db_password_${SECRET_DB_PASSWORD_VERSION}
  plain:
    file: ./p
networks:
  proxy:
    external: true
  internal:
"#;
        let mut f = ComposeFacts::default();
        let e = env(&[("STACK_NAME", "s1"), ("SECRET_DB_PASSWORD_VERSION", "v3")]);
        merge_compose(&mut f, Path::new("compose.yml"), text, "s1", &e).unwrap();
        let app = &f.services[0];
        assert_eq!(app.volumes, vec!["data", "extra"]);
        assert_eq!(app.version_label(), Some("1.0.0+1.2"));
        assert!(app.backed_up());
        assert_eq!(app.http_port(), Some(3000));
        assert!(!f.services[1].backed_up());
        assert_eq!(f.services[1].ports, vec![5432, 8080]);
        assert_eq!(
            f.probe_target().map(|(s, p)| (s.name.as_str(), p)),
            Some(("app", 3000))
        );
        assert_eq!(
            f.secrets,
            vec![
                SecretDecl {
                    key: "db_password".into(),
                    external: true,
                    name: "s1_db_password_v3".into()
                },
                SecretDecl {
                    key: "plain".into(),
                    external: false,
                    name: "s1_plain".into()
                },
            ]
        );
        assert!(f.networks.iter().any(|n| n.key == "proxy" && n.external));
        assert!(f
            .networks
            .iter()
            .any(|n| n.key == "internal" && !n.external));
        assert!(f.declares_backups());
    }

    #[test]
    fn environment_keys_are_read_in_both_forms_and_merged_across_files() {
        let mut f = ComposeFacts::default();
        let e = env(&[("V", "1")]);
        merge_compose(
            &mut f,
            Path::new("a"),
            "services: {app: {environment: [\"A=${V}\", B, \"C=x=y\"]}}",
            "s",
            &e,
        )
        .unwrap();
        merge_compose(
            &mut f,
            Path::new("b"),
            "services: {app: {environment: {D: 1, A: 2}}, db: {image: x}}",
            "s",
            &e,
        )
        .unwrap();
        assert_eq!(f.services[0].environment, vec!["A", "B", "C", "D"]);
        assert!(f.services[1].environment.is_empty());
    }

    #[test]
    fn the_app_env_can_come_from_another_checkouts_env_sample() {
        let tmp = tempfile::tempdir().unwrap();
        let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
        for (dir, sample) in [
            (&old, "COMPOSE_FILE=compose.yml\nSECRET_A_VERSION=v1\n"),
            (&new, "COMPOSE_FILE=compose.yml\nSECRET_A_VERSION=v1\nSECRET_B_VERSION=v1 # length=64\nNEW_SETTING=on\n"),
        ] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(".env.sample"), sample).unwrap();
            std::fs::write(dir.join("compose.yml"), "services: {app: {image: x}}\n").unwrap();
        }
        std::fs::write(new.join("abra.sh"), "export CONF_VERSION=v2\n").unwrap();
        let overrides = env(&[("STACK_NAME", "s")]);
        let files =
            RecipeFiles::load_with_env(&new, &old.join(".env.sample"), "s", &overrides).unwrap();
        assert_eq!(files.env.get("NEW_SETTING"), None);
        assert_eq!(files.env.get("SECRET_B_VERSION"), None);
        assert!(!files.env_modifiers.contains_key("SECRET_B_VERSION"));
        assert_eq!(
            files.env["CONF_VERSION"], "v2",
            "abra.sh is the new version's"
        );
        assert_eq!(
            files.app_env_keys,
            vec!["COMPOSE_FILE", "CONF_VERSION", "SECRET_A_VERSION"]
        );
        assert_eq!(files.env["STACK_NAME"], "s");
        let own = RecipeFiles::load(&new, "s", &overrides).unwrap();
        assert_eq!(own.env["NEW_SETTING"], "on");
    }

    #[test]
    fn labels_and_volume_sources_are_read_after_interpolation() {
        let text = r#"
services:
  app:
    volumes: ["${DATA:-data}:/data", "${CONF:-./conf}:/conf:ro", "/anon"]
    deploy:
      labels:
        backupbot.backup: true
        "traefik.http.services.${STACK_NAME}.loadbalancer.server.port": 8080
  worker:
    deploy:
      labels: ["coop-cloud.${STACK_NAME}.version=${V:-1.0.0+1}", 42]
"#;
        let mut f = ComposeFacts::default();
        let e = env(&[("STACK_NAME", "s1")]);
        merge_compose(&mut f, Path::new("compose.yml"), text, "s1", &e).unwrap();
        let app = &f.services[0];
        assert_eq!(app.volumes, vec!["data"]);
        assert!(app.backed_up());
        assert_eq!(app.http_port(), Some(8080));
        let worker = &f.services[1];
        assert_eq!(worker.version_label(), Some("1.0.0+1"));
        assert_eq!(
            worker
                .deploy_labels
                .get("coop-cloud.s1.version")
                .map(String::as_str),
            Some("1.0.0+1")
        );
        assert_eq!(worker.deploy_labels.get("42").map(String::as_str), Some(""));
    }

    #[test]
    fn a_later_file_overrides_labels_of_an_earlier_one() {
        let mut f = ComposeFacts::default();
        let e = env(&[]);
        merge_compose(
            &mut f,
            Path::new("a"),
            "services: {app: {deploy: {labels: [backupbot.backup=true]}}}",
            "s",
            &e,
        )
        .unwrap();
        merge_compose(
            &mut f,
            Path::new("b"),
            "services: {app: {deploy: {labels: [backupbot.backup=false]}}}",
            "s",
            &e,
        )
        .unwrap();
        assert!(!f.declares_backups());
        let err = merge_compose(&mut f, Path::new("c.yml"), "- a list", "s", &e).unwrap_err();
        assert!(err.to_string().contains("c.yml: not a mapping"));
    }

    #[test]
    fn the_fixture_recipe_reads_with_its_env() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/recipe");
        let files = RecipeFiles::load(&dir, "cold-x", &env(&[("STACK_NAME", "cold-x")])).unwrap();
        assert_eq!(files.env["SECRET_APP_KEY_VERSION"], "v1");
        assert_eq!(files.env["APP_ENTRYPOINT_VERSION"], "v1");
        assert_eq!(files.facts.secrets[0].name, "cold-x_app_key_v1");
        assert!(files.facts.services[0].version_label().is_some());
    }

    #[test]
    fn a_required_variable_that_is_missing_fails_with_the_recipes_message() {
        let text = "services:\n  app:\n    deploy:\n      labels:\n        - \"x=${DB_HOST:?set DB_HOST in the app env}\"\n";
        let mut f = ComposeFacts::default();
        let err =
            merge_compose(&mut f, Path::new("compose.yml"), text, "s", &env(&[])).unwrap_err();
        assert!(matches!(err, ComposeError::Interpolation { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "compose.yml: required variable DB_HOST is missing a value: set DB_HOST in the app env"
        );
        let ok = merge_compose(
            &mut f,
            Path::new("compose.yml"),
            text,
            "s",
            &env(&[("DB_HOST", "db")]),
        );
        assert!(ok.is_ok());
        assert_eq!(f.services[0].deploy_labels["x"], "db");
    }

    #[test]
    fn secret_names_and_long_volume_sources_are_interpolated() {
        let text = "services:\n  app:\n    volumes:\n      - {type: volume, source: \"${VOL:-data}\", target: /d}\nsecrets:\n  k:\n    name: ${STACK_NAME}_k_${SECRET_K_VERSION:?no version}\n";
        let mut f = ComposeFacts::default();
        let e = env(&[("STACK_NAME", "s"), ("SECRET_K_VERSION", "v2")]);
        merge_compose(&mut f, Path::new("compose.yml"), text, "s", &e).unwrap();
        assert_eq!(f.services[0].volumes, vec!["data"]);
        assert_eq!(f.secrets[0].name, "s_k_v2");
        let err = merge_compose(&mut f, Path::new("c.yml"), text, "s", &env(&[])).unwrap_err();
        assert!(err.to_string().ends_with("no version"), "{err}");
    }

    #[test]
    fn the_timeout_label_is_read_for_the_stack_app_first() {
        let text = r#"
services:
  worker:
    deploy: {labels: ["coop-cloud.s.timeout=99"]}
  app:
    deploy: {labels: ["coop-cloud.${STACK_NAME}.timeout=${TIMEOUT:-300}"]}
"#;
        let mut f = ComposeFacts::default();
        merge_compose(
            &mut f,
            Path::new("compose.yml"),
            text,
            "s",
            &env(&[("STACK_NAME", "s")]),
        )
        .unwrap();
        assert_eq!(f.timeout_label("s"), Some("300"));
        assert_eq!(f.timeout_label("other"), None);
        let mut f = ComposeFacts::default();
        let e = env(&[("STACK_NAME", "s"), ("TIMEOUT", "42")]);
        merge_compose(&mut f, Path::new("compose.yml"), text, "s", &e).unwrap();
        assert_eq!(f.timeout_label("s"), Some("42"));
    }

    #[test]
    fn the_bonfire_shaped_fixture_resolves_its_compose_files_by_expansion() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/recipe-multifile");
        let overrides = env(&[
            ("STACK_NAME", "cold-m"),
            ("DOMAIN", "cold-m.canon.localhost"),
        ]);
        let files = RecipeFiles::load(&dir, "cold-m", &overrides).unwrap();
        let names: Vec<String> = files
            .compose_files
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["compose.yml", "compose.postgres.yml"]);
        assert_eq!(
            files.env["COMPOSE_FILE"],
            "compose.yml:compose.postgres.yml"
        );
        assert_eq!(files.env["OAUTH_ISSUER"], "https://cold-m.canon.localhost");
        assert_eq!(files.env["DB_CONFIG_VERSION"], "v1");
        assert!(!files.env.contains_key("APP_FLAVOUR"));
        assert_eq!(
            files.env_modifiers["SECRET_APP_KEY_VERSION"]["length"],
            "128"
        );
        let services: Vec<&str> = files
            .facts
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(services, vec!["app", "db"]);
        assert_eq!(files.facts.timeout_label("cold-m"), Some("240"));
        let secrets: Vec<&str> = files
            .facts
            .secrets
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(secrets, vec!["cold-m_app_key_v1", "cold-m_db_password_v1"]);
    }
}
