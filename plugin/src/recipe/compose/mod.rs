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
//!
//! # Layout
//! - this file: the model ([`Compose`], [`Service`], [`SecretDecl`], [`NetworkDecl`]) and
//!   [`ComposeError`].
//! - `forms`: the values compose writes in more than one form: [`Labels`], [`Scalar`],
//!   [`Healthcheck`], [`ServiceVolume`], [`ServiceSecret`].
//! - `parse`: reading one file's text over the model, as written or interpolated
//!   ([`Compose::parse`], [`Compose::load_dir`]).
//! - `merge`: the deployed view, several files merged in order and interpolated
//!   ([`Compose::merge`]).
//! - [`merge_keys`]: YAML merge keys (`<<: *a`) resolved in every mapping before anything reads
//!   a file.
//! - [`resolved`]: a compose file as canon deploys it, every value resolved by canon, so
//!   `docker stack deploy` needs no recipe variable in its environment.
//! - `view`: the facts the runners read (labels, backups, the HTTP port, the probe target, the
//!   timeout label, the helper containers' image).

mod forms;
mod merge;
pub mod merge_keys;
mod parse;
pub mod resolved;
mod view;

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::interpolate::InterpolationError;

pub use self::forms::{HealthTest, Healthcheck, Labels, Scalar, ServiceSecret, ServiceVolume};

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
    /// Declared configs.
    pub configs: Vec<ConfigDecl>,
    /// Declared networks.
    pub networks: Vec<NetworkDecl>,
    /// The top-level secrets and configs read from a file (`file:`), in file order.
    pub declared_files: Vec<DeclaredFile>,
    /// The top-level volumes whose `driver_opts` name a `device` (a host path or a remote
    /// mount the host makes), by key, interpolated.
    pub volume_devices: Vec<VolumeDevice>,
}

/// A top-level volume whose driver mounts a device of the host's choosing (`driver_opts:
/// {type: none, o: bind, device: /srv/x}`, or an NFS export): a bind mount by another name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeDevice {
    /// Its key in the compose file.
    pub key: String,
    /// `driver_opts.device`, interpolated.
    pub device: String,
    /// `driver_opts.o`, interpolated, when set.
    pub options: Option<String>,
}

/// A top-level secret or config whose content `docker stack deploy` reads from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredFile {
    /// `secrets` or `configs`.
    pub section: &'static str,
    /// Its key in the compose file.
    pub key: String,
    /// The file, interpolated, as written (relative to the compose file's folder).
    pub file: String,
}

/// The settings of a service that reach past its container into the host, as the deploy policy
/// ([`crate::recipe::policy`]) reads them; values interpolated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostSettings {
    /// `network_mode`.
    pub network_mode: Option<String>,
    /// `pid`.
    pub pid: Option<String>,
    /// `ipc`.
    pub ipc: Option<String>,
    /// `userns_mode`.
    pub userns_mode: Option<String>,
    /// `privileged: true`.
    pub privileged: bool,
    /// `devices`, each as written (`/dev/x[:/dev/y[:rwm]]`).
    pub devices: Vec<String>,
    /// `cap_add`.
    pub cap_add: Vec<String>,
    /// `env_file` paths.
    pub env_file: Vec<String>,
    /// The networks it joins (compose keys; list or map form).
    pub networks: Vec<String>,
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
    /// Its settings that reach into the host.
    pub host: HostSettings,
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
    /// Its `name:` as written, before interpolation (`None` when none is given): the variables
    /// it refers to say which `.env.sample` line holds its modifiers.
    pub name_as_written: Option<String>,
}

/// A config the compose files declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDecl {
    /// Its key in the compose file.
    pub key: String,
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

/// Compose files the tests of the recipe model share.
#[cfg(test)]
pub(in crate::recipe) mod tests {
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

    /// Returns an env map of `pairs`, the form the recipe model's readers take.
    pub(in crate::recipe) fn env(
        pairs: &[(&str, &str)],
    ) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}
