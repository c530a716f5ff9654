//! A recipe's `compose.yml`, parsed into the small typed model canon needs, and the checks made
//! on it before a run.
//!
//! Compose files have many more keys than canon reads; unknown keys are ignored, so a recipe using
//! a feature canon does not model still parses. Labels come in two forms (a list of `key=value`
//! strings, or a map) at two places (`services.X.labels` and `services.X.deploy.labels`); both are
//! read into one [`Labels`] map.
//!
//! The release check ([`version_label`]): Co-op Cloud's release is an annotated tag `<ver>` on a
//! commit whose `compose.yml` labels a service `coop-cloud.${STACK_NAME}.version=<ver>` (abra
//! reads the deployed version back from it). A tag whose label says another version is not the
//! release it claims to be, so the run is red with that reason.
//!
//! Layout of this file: the model (types and their serde shapes), loading, then one section per
//! check. Further checks and helpers go at the end, each in its own section.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// A compose file: the parts canon reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ComposeFile {
    /// Services by name.
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    /// Top-level named volumes (a bare `name:` entry is `None`).
    #[serde(default)]
    pub volumes: BTreeMap<String, Option<VolumeDef>>,
    /// Top-level secrets.
    #[serde(default)]
    pub secrets: BTreeMap<String, Option<SecretDef>>,
}

/// One service.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Service {
    /// The image reference (may hold `${VAR}` interpolations).
    #[serde(default)]
    pub image: Option<String>,
    /// Container labels (`services.X.labels`).
    #[serde(default)]
    pub labels: Labels,
    /// Swarm deploy settings.
    #[serde(default)]
    pub deploy: Option<Deploy>,
    /// The healthcheck.
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    /// Volume mounts.
    #[serde(default)]
    pub volumes: Vec<ServiceVolume>,
    /// Secrets the service uses.
    #[serde(default)]
    pub secrets: Vec<ServiceSecret>,
}

impl Service {
    /// Returns the value of label `key`, from `deploy.labels` first, then `labels`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.deploy
            .as_ref()
            .and_then(|d| d.labels.get(key))
            .or_else(|| self.labels.get(key))
    }

    /// Returns every label of the service: `deploy.labels` and `labels` (deploy wins on a clash).
    pub fn all_labels(&self) -> BTreeMap<&str, &str> {
        let mut out: BTreeMap<&str, &str> = self
            .labels
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(d) = &self.deploy {
            out.extend(d.labels.0.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        out
    }
}

/// `services.X.deploy`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Deploy {
    /// Service labels (where Co-op Cloud puts the version label).
    #[serde(default)]
    pub labels: Labels,
    /// Replica count.
    #[serde(default)]
    pub replicas: Option<u64>,
}

/// Labels in either compose form: `["k=v", ...]` or `{k: v}`. A list item without `=` is a label
/// with an empty value, as in compose. Numbers and booleans (in a list, or as a map's keys and
/// values) are read as text. The Docker runner reads labels through this type too, after
/// interpolating the YAML (see `runners::compose_facts`).
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
    /// `volume`, `bind`, `tmpfs`, ... (short form: `bind` when the source looks like a path).
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
}

impl<'de> Deserialize<'de> for ServiceVolume {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Long {
            #[serde(rename = "type", default)]
            kind: Option<String>,
            #[serde(default)]
            source: Option<String>,
            target: String,
            #[serde(default)]
            read_only: bool,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Short(String),
            Long(Long),
        }
        Ok(match Form::deserialize(d)? {
            Form::Long(l) => ServiceVolume {
                kind: l.kind.unwrap_or_else(|| "volume".into()),
                source: l.source,
                target: l.target,
                read_only: l.read_only,
            },
            Form::Short(s) => ServiceVolume::parse_short(&s),
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

impl<'de> Deserialize<'de> for ServiceSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Long {
            source: String,
            #[serde(default)]
            target: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Short(String),
            Long(Long),
        }
        Ok(match Form::deserialize(d)? {
            Form::Short(source) => ServiceSecret {
                source,
                target: None,
            },
            Form::Long(l) => ServiceSecret {
                source: l.source,
                target: l.target,
            },
        })
    }
}

/// A top-level volume.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct VolumeDef {
    /// An explicit name.
    #[serde(default)]
    pub name: Option<String>,
    /// Managed outside the stack.
    #[serde(default)]
    pub external: Option<serde_yaml::Value>,
    /// Volume driver.
    #[serde(default)]
    pub driver: Option<String>,
    /// Volume labels.
    #[serde(default)]
    pub labels: Labels,
}

/// A top-level secret.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SecretDef {
    /// The secret's name in the swarm (Co-op Cloud: `${STACK_NAME}_x_${SECRET_X_VERSION}`).
    #[serde(default)]
    pub name: Option<String>,
    /// A file to read it from.
    #[serde(default)]
    pub file: Option<String>,
    /// Managed outside the stack (Co-op Cloud secrets are `external: true`).
    #[serde(default)]
    pub external: Option<serde_yaml::Value>,
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// Why a compose file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("{path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid compose file: {message}")]
    Parse { path: PathBuf, message: String },
}

impl ComposeFile {
    /// Parses compose YAML. `path` only names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ComposeError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(text).map_err(|e| ComposeError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Reads and parses `<dir>/compose.yml`.
    pub fn load_dir(dir: &Path) -> Result<Self, ComposeError> {
        let path = dir.join("compose.yml");
        let text = std::fs::read_to_string(&path).map_err(|source| ComposeError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&path, &text)
    }
}

// ---------------------------------------------------------------------------------------------
// The version label
// ---------------------------------------------------------------------------------------------

/// The label key Co-op Cloud releases carry, as written in recipes.
pub const VERSION_LABEL_KEY: &str = "coop-cloud.${STACK_NAME}.version";

/// Returns true for the version label key in either interpolation spelling.
fn is_version_key(key: &str) -> bool {
    key == VERSION_LABEL_KEY || key == "coop-cloud.$STACK_NAME.version"
}

/// Where the version label was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionLabel {
    /// The service carrying it.
    pub service: String,
    /// The version it names.
    pub version: String,
}

/// Why a compose file does not carry the tag's version label. `Display` is the run's red reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelProblem {
    #[error("compose.yml: no service carries the label {VERSION_LABEL_KEY}=<tag> (expected {VERSION_LABEL_KEY}={tag})")]
    Missing { tag: String },
    #[error("compose.yml: {} but the tag is {tag}", .found.iter().map(|l| format!("service `{}` has {VERSION_LABEL_KEY}={}", l.service, l.version)).collect::<Vec<_>>().join(", "))]
    Mismatch {
        tag: String,
        found: Vec<VersionLabel>,
    },
}

/// Checks that a service labels `coop-cloud.${STACK_NAME}.version=<tag>`, and that no service
/// labels another version. Returns the service that carries it.
pub fn version_label(compose: &ComposeFile, tag: &str) -> Result<VersionLabel, LabelProblem> {
    let found: Vec<VersionLabel> = compose
        .services
        .iter()
        .flat_map(|(name, svc)| {
            svc.all_labels()
                .into_iter()
                .filter(|(k, _)| is_version_key(k))
                .map(|(_, v)| VersionLabel {
                    service: name.clone(),
                    version: v.trim().to_string(),
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if found.is_empty() {
        return Err(LabelProblem::Missing {
            tag: tag.to_string(),
        });
    }
    let wrong: Vec<VersionLabel> = found.iter().filter(|l| l.version != tag).cloned().collect();
    if !wrong.is_empty() {
        return Err(LabelProblem::Mismatch {
            tag: tag.to_string(),
            found: wrong,
        });
    }
    Ok(found[0].clone())
}

impl fmt::Display for VersionLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "service `{}` has {VERSION_LABEL_KEY}={}",
            self.service, self.version
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BONFIRE_LIKE: &str = r#"
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

    fn parse(text: &str) -> ComposeFile {
        ComposeFile::parse(Path::new("compose.yml"), text).unwrap()
    }

    #[test]
    fn a_real_shaped_compose_file_parses_into_the_model() {
        let c = parse(BONFIRE_LIKE);
        let app = &c.services["app"];
        assert_eq!(
            app.label("coop-cloud.${STACK_NAME}.version"),
            Some("2.0.1+1.0.6-social-amd64")
        );
        assert_eq!(app.deploy.as_ref().unwrap().replicas, Some(1));
        assert_eq!(app.volumes[0].named_volume(), Some("upload-data"));
        assert_eq!(app.volumes[1].kind, "bind");
        assert!(app.volumes[1].read_only);
        assert_eq!(app.volumes[2].named_volume(), Some("db"));
        assert_eq!(app.secrets[1].target.as_deref(), Some("key"));
        let hc = app.healthcheck.as_ref().unwrap();
        assert_eq!(hc.retries, Some(10));
        assert!(!hc.is_disabled());
        let db = &c.services["db"];
        assert_eq!(db.label("backupbot.backup"), Some("true"));
        assert_eq!(db.label("weight"), Some("3"));
        assert!(db.healthcheck.as_ref().unwrap().is_disabled());
        assert_eq!(c.volumes.len(), 2);
        assert!(c.volumes["upload-data"].is_none());
        assert_eq!(c.secrets.len(), 2);
    }

    #[test]
    fn the_version_label_must_name_the_tag() {
        let c = parse(BONFIRE_LIKE);
        let ok = version_label(&c, "2.0.1+1.0.6-social-amd64").unwrap();
        assert_eq!(ok.service, "app");
        let err = version_label(&c, "2.0.2+1.0.6-social-amd64").unwrap_err();
        assert_eq!(
            err.to_string(),
            "compose.yml: service `app` has coop-cloud.${STACK_NAME}.version=2.0.1+1.0.6-social-amd64 but the tag is 2.0.2+1.0.6-social-amd64"
        );
    }

    #[test]
    fn a_missing_label_or_the_2021_form_is_not_a_release() {
        let c = parse(
            "services:\n  app:\n    deploy:\n      labels:\n        coop-cloud.${STACK_NAME}.app.version: v2.4.8-d7d63b0d\n",
        );
        let err = version_label(&c, "1.0.0+2.4.8").unwrap_err();
        assert!(matches!(err, LabelProblem::Missing { .. }), "{err}");
        assert!(err
            .to_string()
            .contains("expected coop-cloud.${STACK_NAME}.version=1.0.0+2.4.8"));
    }

    #[test]
    fn labels_in_map_form_on_the_service_count_and_a_second_service_may_not_disagree() {
        let c = parse(
            "services:\n  app:\n    labels:\n      coop-cloud.${STACK_NAME}.version: 1.0.0+1\n  worker:\n    deploy:\n      labels: ['coop-cloud.${STACK_NAME}.version=0.9.0+1']\n",
        );
        let err = version_label(&c, "1.0.0+1").unwrap_err();
        assert!(err.to_string().contains("service `worker`"), "{err}");
    }

    #[test]
    fn labels_read_numbers_and_booleans_as_text_in_both_forms() {
        let c = parse(
            "services:\n  a:\n    labels: [x=1, 7, true]\n  b:\n    labels: {1: 2, on: false}\n",
        );
        let a = &c.services["a"];
        assert_eq!(a.label("x"), Some("1"));
        assert_eq!(a.label("7"), Some(""));
        assert_eq!(a.label("true"), Some(""));
        let b = &c.services["b"];
        assert_eq!(b.label("1"), Some("2"));
        assert_eq!(b.label("on"), Some("false"));
    }

    #[test]
    fn invalid_yaml_names_the_file() {
        let err = ComposeFile::parse(Path::new("/x/compose.yml"), "services: [").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("/x/compose.yml: not a valid compose file"));
        let err = ComposeFile::load_dir(Path::new("/nonexistent")).unwrap_err();
        assert!(err
            .to_string()
            .contains("/nonexistent/compose.yml: cannot read it"));
    }
}
