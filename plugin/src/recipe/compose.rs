//! The one compose model of a recipe: its compose files parsed into [`Compose`], merged in order
//! (later files override earlier ones), their values interpolated, and the facts the runners read
//! from it (services in file order, volumes, secrets, networks, labels, the HTTP port traefik
//! would route to, the timeout label). [`super::files::RecipeFiles`] reads a checkout's env and
//! its compose files into it.
//!
//! One parser for the two readings canon makes:
//! - the deployed view ([`Compose::merge`]): several files, every value canon computes
//!   interpolated by [`super::interpolate`] (docker compose's rules) with the env read by
//!   [`super::env_sample`] (godotenv's rules, as abra reads an app's `.env`);
//! - the file as written ([`Compose::parse`]): one `compose.yml`, `${STACK_NAME}` kept literal,
//!   for the release check in [`super::version`].
//!
//! Compose files have many more keys than canon reads; shapes canon does not need are skipped
//! rather than refused, so a recipe using a feature canon does not model still reads, and
//! `docker stack deploy` is the judge of what the files mean. Labels come in two forms (a list of
//! `key=value` strings, or a map) at two places (`services.X.labels` and
//! `services.X.deploy.labels`); both are read by [`Labels`]. Container labels are kept as
//! written: canon deploys them as the files say and reads only the service (`deploy`) labels of
//! the deployed view.
//!
//! Pure parsing over file contents; reading `compose.yml` in [`Compose::load_dir`] is the only
//! I/O here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::interpolate::{interpolate, InterpolationError};

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// A recipe's compose files: the parts canon reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Compose {
    /// The stack the values were interpolated for; `None` for a file read as written.
    pub stack: Option<String>,
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

/// One service of the compose files.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Service {
    /// Its name in the compose file (the swarm service is `<stack>_<name>`).
    pub name: String,
    /// Its image, interpolated.
    pub image: Option<String>,
    /// Container labels (`labels`), as written.
    pub labels: BTreeMap<String, String>,
    /// Service labels (`deploy.labels`), interpolated: where Co-op Cloud puts the version,
    /// timeout and backupbot labels.
    pub deploy_labels: BTreeMap<String, String>,
    /// `deploy.replicas`.
    pub replicas: Option<u64>,
    /// The healthcheck.
    pub healthcheck: Option<Healthcheck>,
    /// Its mounts, in either form, sources interpolated.
    pub mounts: Vec<ServiceVolume>,
    /// Named volumes it mounts (compose names, not yet prefixed by the stack).
    pub volumes: Vec<String>,
    /// Secrets it uses.
    pub secrets: Vec<ServiceSecret>,
    /// Target ports it declares.
    pub ports: Vec<u16>,
    /// The keys its `environment:` sets (list or map form, every file merged).
    pub environment: Vec<String>,
}

impl Service {
    /// Returns the value of label `key`, from `deploy.labels` first, then `labels`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.deploy_labels
            .get(key)
            .or_else(|| self.labels.get(key))
            .map(String::as_str)
    }

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

/// The facts the runners read.
impl Compose {
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

    /// Returns the service called `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
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

// ---------------------------------------------------------------------------------------------
// The compose forms
// ---------------------------------------------------------------------------------------------

/// Labels in either compose form: `["k=v", ...]` or `{k: v}`. A list item without `=` is a label
/// with an empty value, as in compose. Numbers and booleans (in a list, or as a map's keys and
/// values) are read as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(pub BTreeMap<String, String>);

impl Labels {
    /// Returns the value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            List(Vec<Scalar>),
            Map(BTreeMap<Scalar, Option<Scalar>>),
        }
        Ok(Labels(match Option::<Form>::deserialize(d)? {
            None => BTreeMap::new(),
            Some(Form::List(items)) => items
                .into_iter()
                .map(|Scalar(item)| match item.split_once('=') {
                    Some((k, v)) => (k.trim().to_string(), v.to_string()),
                    None => (item.trim().to_string(), String::new()),
                })
                .collect(),
            Some(Form::Map(map)) => map
                .into_iter()
                .map(|(k, v)| (k.0, v.map(|s| s.0).unwrap_or_default()))
                .collect(),
        }))
    }
}

/// A YAML scalar read as text (`true`, `3`, `1.5` and strings all become strings).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Scalar(pub String);

impl Scalar {
    /// Returns the text of a string, number or boolean value; `None` for anything else.
    pub fn text(value: &serde_yaml::Value) -> Option<String> {
        match value {
            serde_yaml::Value::String(s) => Some(s.clone()),
            serde_yaml::Value::Number(n) => Some(n.to_string()),
            serde_yaml::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(d)?;
        Self::text(&value).map(Scalar).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected a string, number or boolean, found {value:?}"
            ))
        })
    }
}

/// `services.X.healthcheck`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Healthcheck {
    /// The test: `["CMD", ...]`, `["CMD-SHELL", "..."]`, `["NONE"]`, or a shell string.
    #[serde(default)]
    pub test: Option<HealthTest>,
    /// Interval between checks (compose duration text, e.g. `30s`).
    #[serde(default)]
    pub interval: Option<String>,
    /// Timeout of one check.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Failures before unhealthy.
    #[serde(default)]
    pub retries: Option<u64>,
    /// Grace period after start.
    #[serde(default)]
    pub start_period: Option<String>,
    /// `disable: true` turns the image's healthcheck off.
    #[serde(default)]
    pub disable: bool,
}

impl Healthcheck {
    /// Returns true when the healthcheck is turned off (`disable: true` or test `NONE`).
    pub fn is_disabled(&self) -> bool {
        self.disable
            || matches!(&self.test, Some(HealthTest::List(l)) if l.first().map(String::as_str) == Some("NONE"))
    }
}

/// A healthcheck test in either form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum HealthTest {
    /// `test: curl -f http://localhost/` (run with the container's shell).
    Shell(String),
    /// `test: ["CMD", "curl", "-f", "http://localhost/"]`.
    List(Vec<String>),
}

/// A service volume mount in either form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceVolume {
    /// A named volume or a host path; `None` for an anonymous volume.
    pub source: Option<String>,
    /// The path in the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// `volume`, `bind`, `tmpfs`, ... (short form: `bind` when the source looks like a path; long
    /// form without `type`: empty, no named volume).
    pub kind: String,
}

impl ServiceVolume {
    /// Returns the named volume this mount uses, if it is one.
    pub fn named_volume(&self) -> Option<&str> {
        (self.kind == "volume")
            .then_some(self.source.as_deref())
            .flatten()
    }

    /// Parses the short form `[source:]target[:mode]`. A source that looks like a path (`/`, `.`,
    /// `~`) is a bind mount, any other source a named volume, and no source an anonymous volume.
    pub fn parse_short(text: &str) -> Self {
        let parts: Vec<&str> = text.split(':').collect();
        let (source, target, mode) = match parts.as_slice() {
            [target] => (None, target.to_string(), None),
            [source, target] => (Some(source.to_string()), target.to_string(), None),
            [source, target, mode, ..] => (
                Some(source.to_string()),
                target.to_string(),
                Some(mode.to_string()),
            ),
            [] => (None, String::new(), None),
        };
        let is_path = |s: &str| s.starts_with('/') || s.starts_with('.') || s.starts_with('~');
        ServiceVolume {
            kind: match &source {
                Some(src) if is_path(src) => "bind".into(),
                _ => "volume".into(),
            },
            read_only: mode.is_some_and(|m| m.split(',').any(|x| x == "ro")),
            source,
            target,
        }
    }

    /// Reads a mount in either form, its source interpolated by `values` (a long form's only
    /// for a named volume); `None` for another shape.
    fn read(
        v: &serde_yaml::Value,
        values: &Values<'_>,
    ) -> Result<Option<Self>, InterpolationError> {
        Ok(match v {
            serde_yaml::Value::Mapping(_) => {
                let kind = v.get("type").and_then(Scalar::text).unwrap_or_default();
                let source = match v.get("source").and_then(Scalar::text) {
                    Some(s) if kind == "volume" => Some(values.apply(&s)?),
                    other => other,
                };
                Some(ServiceVolume {
                    source,
                    target: v.get("target").and_then(Scalar::text).unwrap_or_default(),
                    read_only: v
                        .get("read_only")
                        .and_then(serde_yaml::Value::as_bool)
                        .unwrap_or(false),
                    kind,
                })
            }
            other => match Scalar::text(other) {
                Some(s) => Some(ServiceVolume::parse_short(&values.apply(&s)?)),
                None => None,
            },
        })
    }
}

/// A service's use of a secret in either form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSecret {
    /// The top-level secret's key.
    pub source: String,
    /// The file name under `/run/secrets` (default: the source).
    pub target: Option<String>,
}

impl ServiceSecret {
    /// Reads a secret use in either form (`- key` or `{source, target}`); `None` for another
    /// shape.
    fn read(v: &serde_yaml::Value) -> Option<Self> {
        match v {
            serde_yaml::Value::Mapping(_) => Some(ServiceSecret {
                source: v.get("source").and_then(Scalar::text)?,
                target: v.get("target").and_then(Scalar::text),
            }),
            other => Scalar::text(other).map(|source| ServiceSecret {
                source,
                target: None,
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing and merging
// ---------------------------------------------------------------------------------------------

/// Why compose files could not be read, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A file of the deployed view could not be read or is not a compose file.
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// A value of the file could not be interpolated (a `${V:?msg}` whose variable is missing).
    #[error("{path}: {error}")]
    Interpolation {
        path: PathBuf,
        error: InterpolationError,
    },
    /// The file read as written could not be read.
    #[error("{path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file read as written is not a compose file.
    #[error("{path}: not a valid compose file: {message}")]
    Parse { path: PathBuf, message: String },
}

/// How the values of a file are read.
enum Values<'a> {
    /// As written (`${STACK_NAME}` kept literal).
    AsWritten,
    /// Interpolated with this env.
    Interpolated(&'a BTreeMap<String, String>),
}

impl Values<'_> {
    /// Returns `text` read this way.
    fn apply(&self, text: &str) -> Result<String, InterpolationError> {
        match self {
            Values::AsWritten => Ok(text.to_string()),
            Values::Interpolated(env) => interpolate(text, env),
        }
    }

    /// Returns `value` with every string in it (mapping keys too) read this way.
    fn apply_value(
        &self,
        value: &serde_yaml::Value,
    ) -> Result<serde_yaml::Value, InterpolationError> {
        use serde_yaml::Value;
        Ok(match value {
            Value::String(s) => Value::String(self.apply(s)?),
            Value::Sequence(items) => Value::Sequence(
                items
                    .iter()
                    .map(|i| self.apply_value(i))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Mapping(m) => Value::Mapping(
                m.iter()
                    .map(|(k, v)| Ok((self.apply_value(k)?, self.apply_value(v)?)))
                    .collect::<Result<_, InterpolationError>>()?,
            ),
            other => other.clone(),
        })
    }
}

/// Why one file's text is no compose file.
enum Shape {
    /// Not YAML.
    Yaml(serde_yaml::Error),
    /// YAML of another shape.
    Other(String),
}

/// A problem of one file: its shape, or a value that could not be interpolated.
enum Problem {
    Shape(Shape),
    Interpolation(InterpolationError),
}

impl From<InterpolationError> for Problem {
    fn from(e: InterpolationError) -> Self {
        Problem::Interpolation(e)
    }
}

fn is_external(v: &serde_yaml::Value) -> bool {
    match v.get("external") {
        Some(serde_yaml::Value::Bool(b)) => *b,
        // The old `external: {name: x}` form.
        Some(serde_yaml::Value::Mapping(_)) => true,
        _ => false,
    }
}

/// Parses labels in either compose form (`- k=v` list or `k: v` map) with [`Labels`], after
/// reading their values. Labels of another shape read as none.
fn labels(
    v: Option<&serde_yaml::Value>,
    values: &Values<'_>,
) -> Result<BTreeMap<String, String>, InterpolationError> {
    let Some(v) = v else {
        return Ok(BTreeMap::new());
    };
    Ok(serde_yaml::from_value::<Labels>(values.apply_value(v)?)
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

/// Returns the target port of one `ports:` entry (`"8080:80/tcp"`, `80`, `{target: 80}`).
fn target_port(p: &serde_yaml::Value) -> Option<u16> {
    let target = match p {
        serde_yaml::Value::Mapping(_) => p.get("target").and_then(Scalar::text),
        other => Scalar::text(other).map(|s| s.rsplit(':').next().unwrap_or_default().to_string()),
    };
    target.and_then(|t| t.split('/').next().and_then(|n| n.parse::<u16>().ok()))
}

impl Compose {
    /// Parses one compose file as written (`${STACK_NAME}` kept literal, nothing interpolated):
    /// the reading of the release check. `path` only names the file in errors; an empty file
    /// declares nothing.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ComposeError> {
        let mut compose = Compose::default();
        if text.trim().is_empty() {
            return Ok(compose);
        }
        match compose.read(text, "${STACK_NAME}", &Values::AsWritten) {
            Ok(()) => Ok(compose),
            Err(Problem::Shape(Shape::Yaml(e))) => Err(ComposeError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
            Err(Problem::Shape(Shape::Other(message))) => Err(ComposeError::Parse {
                path: path.to_path_buf(),
                message,
            }),
            Err(Problem::Interpolation(error)) => Err(ComposeError::Interpolation {
                path: path.to_path_buf(),
                error,
            }),
        }
    }

    /// Reads and parses `<dir>/compose.yml` as written (see [`Compose::parse`]).
    pub fn load_dir(dir: &Path) -> Result<Self, ComposeError> {
        let path = dir.join("compose.yml");
        let text = std::fs::read_to_string(&path).map_err(|source| ComposeError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&path, &text)
    }

    /// Parses one compose file's text for the stack `stack`, every value canon reads
    /// interpolated with `env`, and merges it over the files read before.
    pub fn merge(
        &mut self,
        path: &Path,
        text: &str,
        stack: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<(), ComposeError> {
        self.stack = Some(stack.to_string());
        self.read(text, stack, &Values::Interpolated(env))
            .map_err(|p| match p {
                Problem::Shape(Shape::Yaml(e)) => ComposeError::File {
                    path: path.to_path_buf(),
                    message: format!("invalid YAML: {e}"),
                },
                Problem::Shape(Shape::Other(message)) => ComposeError::File {
                    path: path.to_path_buf(),
                    message,
                },
                Problem::Interpolation(error) => ComposeError::Interpolation {
                    path: path.to_path_buf(),
                    error,
                },
            })
    }

    /// Reads one file's text over `self`; `stack` names a secret that has no `name:`.
    fn read(&mut self, text: &str, stack: &str, values: &Values<'_>) -> Result<(), Problem> {
        let shape = |m: &str| Problem::Shape(Shape::Other(m.to_string()));
        let doc: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| Problem::Shape(Shape::Yaml(e)))?;
        let top = doc.as_mapping().ok_or_else(|| shape("not a mapping"))?;
        if self.version.is_none() {
            self.version = top.get("version").and_then(Scalar::text);
        }
        if let Some(services) = top.get("services").and_then(|v| v.as_mapping()) {
            for (name, body) in services {
                let name =
                    Scalar::text(name).ok_or_else(|| shape("a service name is not a string"))?;
                let idx = match self.services.iter().position(|s| s.name == name) {
                    Some(i) => i,
                    None => {
                        self.services.push(Service {
                            name: name.clone(),
                            ..Service::default()
                        });
                        self.services.len() - 1
                    }
                };
                self.services[idx].read(body, values)?;
            }
        }
        if let Some(vols) = top.get("volumes").and_then(|v| v.as_mapping()) {
            for (k, _) in vols {
                if let Some(k) = Scalar::text(k) {
                    if !self.volumes.contains(&k) {
                        self.volumes.push(k);
                    }
                }
            }
        }
        if let Some(secrets) = top.get("secrets").and_then(|v| v.as_mapping()) {
            for (k, body) in secrets {
                let Some(key) = Scalar::text(k) else { continue };
                let name = match body.get("name").and_then(Scalar::text) {
                    Some(n) => values.apply(&n)?,
                    None => format!("{stack}_{key}"),
                };
                self.secrets.retain(|s| s.key != key);
                self.secrets.push(SecretDecl {
                    key,
                    external: is_external(body),
                    name,
                });
            }
        }
        if let Some(networks) = top.get("networks").and_then(|v| v.as_mapping()) {
            for (k, body) in networks {
                let Some(key) = Scalar::text(k) else { continue };
                let name = match body.get("name").and_then(Scalar::text) {
                    Some(n) => values.apply(&n)?,
                    None => key.clone(),
                };
                self.networks.retain(|n| n.key != key);
                self.networks.push(NetworkDecl {
                    key,
                    external: is_external(body),
                    name,
                });
            }
        }
        Ok(())
    }
}

impl Service {
    /// Reads one file's `services.<name>` body over `self`.
    fn read(&mut self, body: &serde_yaml::Value, values: &Values<'_>) -> Result<(), Problem> {
        if let Some(image) = body.get("image").and_then(Scalar::text) {
            self.image = Some(values.apply(&image)?);
        }
        self.labels
            .extend(labels(body.get("labels"), &Values::AsWritten)?);
        let deploy = body.get("deploy");
        self.deploy_labels
            .extend(labels(deploy.and_then(|d| d.get("labels")), values)?);
        if let Some(n) = deploy
            .and_then(|d| d.get("replicas"))
            .and_then(|r| r.as_u64())
        {
            self.replicas = Some(n);
        }
        if let Some(hc) = body.get("healthcheck") {
            if let Ok(hc) = serde_yaml::from_value::<Healthcheck>(hc.clone()) {
                self.healthcheck = Some(hc);
            }
        }
        if let Some(mounts) = body.get("volumes").and_then(|v| v.as_sequence()) {
            for m in mounts {
                let Some(mount) = ServiceVolume::read(m, values)? else {
                    continue;
                };
                if let Some(source) = mount.named_volume() {
                    if !self.volumes.iter().any(|v| v == source) {
                        self.volumes.push(source.to_string());
                    }
                }
                if !self.mounts.contains(&mount) {
                    self.mounts.push(mount);
                }
            }
        }
        if let Some(secrets) = body.get("secrets").and_then(|v| v.as_sequence()) {
            for s in secrets.iter().filter_map(ServiceSecret::read) {
                self.secrets.retain(|x| x.source != s.source);
                self.secrets.push(s);
            }
        }
        for key in environment_keys(body.get("environment")) {
            if !self.environment.contains(&key) {
                self.environment.push(key);
            }
        }
        if let Some(ports) = body.get("ports").and_then(|v| v.as_sequence()) {
            self.ports.extend(ports.iter().filter_map(target_port));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn parse_as_written(text: &str) -> Compose {
        Compose::parse(Path::new("compose.yml"), text).unwrap()
    }

    pub(in crate::recipe) const BONFIRE_LIKE: &str = r#"
version: "3.8"
services:
  app:
    image: ${CONTAINER_REGISTRY:-bonfirenetworks/bonfire}:${APP_VERSION:-1.0.6}-social-amd64
    volumes:
      - upload-data:/opt/app/data/uploads
      - ./config:/config:ro
      - type: volume
        source: db
        target: /var/lib/db
    secrets:
      - postgres_password
      - source: secret_key_base
        target: key
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost"]
      interval: 30s
      retries: 10
      start_period: 1m
    deploy:
      replicas: 1
      labels:
        - "traefik.enable=true"
        - "coop-cloud.${STACK_NAME}.version=2.0.1+1.0.6-social-amd64"
        - "backupbot.backup=true"
  db:
    image: postgres:15
    labels:
      backupbot.backup: true
      weight: 3
    healthcheck:
      disable: true
volumes:
  upload-data:
  db:
    labels:
      x: y
secrets:
  postgres_password:
    external: true
    name: ${STACK_NAME}_postgres_password_${SECRET_POSTGRES_PASSWORD_VERSION}
  secret_key_base:
    external: true
"#;

    #[test]
    fn a_real_shaped_compose_file_parses_into_the_model() {
        let c = parse_as_written(BONFIRE_LIKE);
        let app = c.service("app").unwrap();
        assert_eq!(
            app.label("coop-cloud.${STACK_NAME}.version"),
            Some("2.0.1+1.0.6-social-amd64")
        );
        assert_eq!(app.replicas, Some(1));
        assert_eq!(app.mounts[0].named_volume(), Some("upload-data"));
        assert_eq!(app.mounts[1].kind, "bind");
        assert!(app.mounts[1].read_only);
        assert_eq!(app.mounts[2].named_volume(), Some("db"));
        assert_eq!(app.secrets[1].target.as_deref(), Some("key"));
        let hc = app.healthcheck.as_ref().unwrap();
        assert_eq!(hc.retries, Some(10));
        assert!(!hc.is_disabled());
        let db = c.service("db").unwrap();
        assert_eq!(db.label("backupbot.backup"), Some("true"));
        assert_eq!(db.label("weight"), Some("3"));
        assert!(db.healthcheck.as_ref().unwrap().is_disabled());
        assert_eq!(c.volumes, vec!["upload-data", "db"]);
        assert_eq!(c.secrets.len(), 2);
    }

    #[test]
    fn labels_read_numbers_and_booleans_as_text_in_both_forms() {
        let c = parse_as_written(
            "services:\n  a:\n    labels: [x=1, 7, true]\n  b:\n    labels: {1: 2, on: false}\n",
        );
        let a = c.service("a").unwrap();
        assert_eq!(a.label("x"), Some("1"));
        assert_eq!(a.label("7"), Some(""));
        assert_eq!(a.label("true"), Some(""));
        let b = c.service("b").unwrap();
        assert_eq!(b.label("1"), Some("2"));
        assert_eq!(b.label("on"), Some("false"));
    }

    #[test]
    fn invalid_yaml_names_the_file() {
        let err = Compose::parse(Path::new("/x/compose.yml"), "services: [").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("/x/compose.yml: not a valid compose file"));
        let err = Compose::load_dir(Path::new("/nonexistent")).unwrap_err();
        assert!(err
            .to_string()
            .contains("/nonexistent/compose.yml: cannot read it"));
    }

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
        let mut f = Compose::default();
        let e = env(&[("STACK_NAME", "s1"), ("SECRET_DB_PASSWORD_VERSION", "v3")]);
        f.merge(Path::new("compose.yml"), text, "s1", &e).unwrap();
        let app = &f.services[0];
        assert_eq!(app.volumes, vec!["data", "extra"]);
        assert_eq!(f.version_of("app").as_deref(), Some("1.0.0+1.2"));
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
        let mut f = Compose::default();
        let e = env(&[("V", "1")]);
        f.merge(
            Path::new("a"),
            "services: {app: {environment: [\"A=${V}\", B, \"C=x=y\"]}}",
            "s",
            &e,
        )
        .unwrap();
        f.merge(
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
        let mut f = Compose::default();
        let e = env(&[("STACK_NAME", "s1")]);
        f.merge(Path::new("compose.yml"), text, "s1", &e).unwrap();
        let app = &f.services[0];
        assert_eq!(app.volumes, vec!["data"]);
        assert!(app.backed_up());
        assert_eq!(app.http_port(), Some(8080));
        let worker = &f.services[1];
        assert_eq!(f.version_of("worker").as_deref(), Some("1.0.0+1"));
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
        let mut f = Compose::default();
        let e = env(&[]);
        f.merge(
            Path::new("a"),
            "services: {app: {deploy: {labels: [backupbot.backup=true]}}}",
            "s",
            &e,
        )
        .unwrap();
        f.merge(
            Path::new("b"),
            "services: {app: {deploy: {labels: [backupbot.backup=false]}}}",
            "s",
            &e,
        )
        .unwrap();
        assert!(!f.declares_backups());
        let err = f
            .merge(Path::new("c.yml"), "- a list", "s", &e)
            .unwrap_err();
        assert!(err.to_string().contains("c.yml: not a mapping"));
    }

    #[test]
    fn a_required_variable_that_is_missing_fails_with_the_recipes_message() {
        let text = "services:\n  app:\n    deploy:\n      labels:\n        - \"x=${DB_HOST:?set DB_HOST in the app env}\"\n";
        let mut f = Compose::default();
        let err = f
            .merge(Path::new("compose.yml"), text, "s", &env(&[]))
            .unwrap_err();
        assert!(matches!(err, ComposeError::Interpolation { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "compose.yml: required variable DB_HOST is missing a value: set DB_HOST in the app env"
        );
        let ok = f.merge(
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
        let mut f = Compose::default();
        let e = env(&[("STACK_NAME", "s"), ("SECRET_K_VERSION", "v2")]);
        f.merge(Path::new("compose.yml"), text, "s", &e).unwrap();
        assert_eq!(f.services[0].volumes, vec!["data"]);
        assert_eq!(f.secrets[0].name, "s_k_v2");
        let err = f
            .merge(Path::new("c.yml"), text, "s", &env(&[]))
            .unwrap_err();
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
        let mut f = Compose::default();
        f.merge(
            Path::new("compose.yml"),
            text,
            "s",
            &env(&[("STACK_NAME", "s")]),
        )
        .unwrap();
        assert_eq!(f.timeout_label("s"), Some("300"));
        assert_eq!(f.timeout_label("other"), None);
        let mut f = Compose::default();
        let e = env(&[("STACK_NAME", "s"), ("TIMEOUT", "42")]);
        f.merge(Path::new("compose.yml"), text, "s", &e).unwrap();
        assert_eq!(f.timeout_label("s"), Some("42"));
    }
}
