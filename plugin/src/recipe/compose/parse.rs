//! Reading one compose file's text over the model: its services (image, labels, replicas,
//! healthcheck, mounts, secrets, environment keys, ports), its volumes, secrets and networks,
//! each value read as written or interpolated ([`Values`]).
//!
//! The file as written ([`Compose::parse`], [`Compose::load_dir`]) is read here; the deployed
//! view ([`super::merge`]) reads each of its files through the same [`Compose::read`].

use std::collections::BTreeMap;
use std::path::Path;

use super::forms::{Healthcheck, Labels, Scalar, ServiceSecret, ServiceVolume};
use super::{
    Compose, ComposeError, ConfigDecl, DeclaredFile, NetworkDecl, SecretDecl, Service, VolumeDevice,
};
use crate::recipe::interpolate::{interpolate, InterpolationError};

/// How the values of a file are read.
pub(super) enum Values<'a> {
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

    /// Returns `value` with every string value in it read this way. Mapping keys are kept as
    /// written, as docker's loader keeps them (`{"a.${X}": v}` stays `a.${X}`).
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
                    .map(|(k, v)| Ok((k.clone(), self.apply_value(v)?)))
                    .collect::<Result<_, InterpolationError>>()?,
            ),
            other => other.clone(),
        })
    }
}

/// Why one file's text is no compose file.
pub(super) enum Shape {
    /// Not YAML.
    Yaml(serde_yaml::Error),
    /// YAML of another shape.
    Other(String),
}

/// A problem of one file: its shape, or a value that could not be interpolated.
pub(super) enum Problem {
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
        let text = canon_shared::bounded_read::read_to_string(
            &path,
            canon_shared::bounded_read::YAML_FILE,
        )
        .map_err(|source| ComposeError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&path, &text)
    }

    /// Reads one file's text over `self`; `stack` names a secret that has no `name:`.
    pub(super) fn read(
        &mut self,
        text: &str,
        stack: &str,
        values: &Values<'_>,
    ) -> Result<(), Problem> {
        let shape = |m: &str| Problem::Shape(Shape::Other(m.to_string()));
        // A hostile nesting is refused before the parser, which takes minutes over one.
        canon_shared::bounded_read::check_yaml_depth(text, canon_shared::bounded_read::YAML_DEPTH)
            .map_err(|m| shape(&m))?;
        let doc: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| Problem::Shape(Shape::Yaml(e)))?;
        let doc = super::merge_keys::resolve(doc).map_err(|e| shape(&e.to_string()))?;
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
            for (k, body) in vols {
                if let Some(k) = Scalar::text(k) {
                    if !self.volumes.contains(&k) {
                        self.volumes.push(k.clone());
                    }
                    let opts = body.get("driver_opts");
                    if let Some(device) = opts.and_then(|o| o.get("device")).and_then(Scalar::text)
                    {
                        let options = match opts.and_then(|o| o.get("o")).and_then(Scalar::text) {
                            Some(o) => Some(values.apply(&o)?),
                            None => None,
                        };
                        self.volume_devices.retain(|d| d.key != k);
                        self.volume_devices.push(VolumeDevice {
                            key: k,
                            device: values.apply(&device)?,
                            options,
                        });
                    }
                }
            }
        }
        if let Some(secrets) = top.get("secrets").and_then(|v| v.as_mapping()) {
            for (k, body) in secrets {
                let Some(key) = Scalar::text(k) else { continue };
                let name_as_written = body.get("name").and_then(Scalar::text);
                let name = match &name_as_written {
                    Some(n) => values.apply(n)?,
                    None => format!("{stack}_{key}"),
                };
                self.secrets.retain(|s| s.key != key);
                self.secrets.push(SecretDecl {
                    key,
                    external: is_external(body),
                    name,
                    name_as_written,
                });
            }
        }
        if let Some(configs) = top.get("configs").and_then(|v| v.as_mapping()) {
            for (k, body) in configs {
                let Some(key) = Scalar::text(k) else { continue };
                let name = match body.get("name").and_then(Scalar::text) {
                    Some(n) => values.apply(&n)?,
                    None => format!("{stack}_{key}"),
                };
                self.configs.retain(|c| c.key != key);
                self.configs.push(ConfigDecl { key, name });
            }
        }
        for section in ["secrets", "configs"] {
            let Some(decls) = top.get(section).and_then(|v| v.as_mapping()) else {
                continue;
            };
            for (k, body) in decls {
                let Some(key) = Scalar::text(k) else { continue };
                self.declared_files
                    .retain(|d| !(d.section == section && d.key == key));
                if let Some(file) = body.get("file").and_then(Scalar::text) {
                    self.declared_files.push(DeclaredFile {
                        section,
                        key,
                        file: values.apply(&file)?,
                    });
                }
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
        self.read_host(body, values)
    }

    /// Reads the settings of one file's `services.<name>` body that reach into the host.
    fn read_host(&mut self, body: &serde_yaml::Value, values: &Values<'_>) -> Result<(), Problem> {
        let host = &mut self.host;
        for (key, slot) in [
            ("network_mode", &mut host.network_mode),
            ("pid", &mut host.pid),
            ("ipc", &mut host.ipc),
            ("userns_mode", &mut host.userns_mode),
        ] {
            if let Some(v) = body.get(key).and_then(Scalar::text) {
                *slot = Some(values.apply(&v)?);
            }
        }
        if let Some(p) = body.get("privileged").and_then(Scalar::text) {
            host.privileged = values.apply(&p)? == "true";
        }
        // `env_file` is one path or a list of paths (or of `{path: ...}` in newer compose).
        let list = |v: Option<&serde_yaml::Value>| -> Vec<String> {
            match v {
                Some(serde_yaml::Value::Sequence(items)) => items
                    .iter()
                    .filter_map(|i| {
                        Scalar::text(i).or_else(|| i.get("path").and_then(Scalar::text))
                    })
                    .collect(),
                Some(other) => Scalar::text(other).into_iter().collect(),
                None => Vec::new(),
            }
        };
        for (key, into) in [
            ("devices", &mut host.devices),
            ("cap_add", &mut host.cap_add),
            ("env_file", &mut host.env_file),
        ] {
            for item in list(body.get(key)) {
                let item = values.apply(&item)?;
                if !into.contains(&item) {
                    into.push(item);
                }
            }
        }
        let networks: Vec<String> = match body.get("networks") {
            Some(serde_yaml::Value::Mapping(m)) => m.keys().filter_map(Scalar::text).collect(),
            other => list(other),
        };
        for n in networks {
            if !host.networks.contains(&n) {
                host.networks.push(n);
            }
        }
        Ok(())
    }
}

impl ServiceVolume {
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
                    Some(s) if kind == "volume" || kind == "bind" => Some(values.apply(&s)?),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::compose::tests::BONFIRE_LIKE;

    fn parse_as_written(text: &str) -> Compose {
        Compose::parse(Path::new("compose.yml"), text).unwrap()
    }

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
}
