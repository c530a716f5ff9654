//! What the built-in runners (docker, abra) need to know about a recipe checkout: its env
//! (`.env.sample`, `abra.sh` exports), its compose files, and from them the services, volumes,
//! secrets, networks and labels (backupbot, the HTTP port traefik would route to).
//!
//! Pure parsing over file contents; reading the files is the only I/O, in [`RecipeFiles::load`].
//!
//! Unlike [`crate::compose::ComposeFile`] (one raw `compose.yml`, `${STACK_NAME}` kept literal for
//! the release check), this reads the deployed view: several files merged in order, every value
//! interpolated, services in file order, and shapes canon does not need skipped rather than
//! refused. The compose forms both read (labels as a list or a map, the short volume syntax,
//! scalars as text) have one parser, in [`crate::compose`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::compose::{Labels, Scalar, ServiceVolume};

/// A parsing problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

/// Parses `.env.sample`-style text: `KEY=VALUE` lines; blank lines and `#` comments skipped; an
/// unquoted value ends at ` #`; single or double quotes around a value are removed; a leading
/// `export ` is allowed.
pub fn parse_env(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let value = value.trim();
        let value = if let Some(rest) = value.strip_prefix('"') {
            rest.split_once('"').map(|(v, _)| v).unwrap_or(rest)
        } else if let Some(rest) = value.strip_prefix('\'') {
            rest.split_once('\'').map(|(v, _)| v).unwrap_or(rest)
        } else {
            match value.find(" #") {
                Some(i) => value[..i].trim_end(),
                None => value,
            }
        };
        out.push((key.to_string(), value.to_string()));
    }
    out
}

/// Parses the `export KEY=VALUE` lines of an `abra.sh` (the config versions); other lines are
/// shell and ignored.
pub fn parse_abra_sh(text: &str) -> Vec<(String, String)> {
    let exports: String = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("export ") && l.contains('='))
        .collect::<Vec<_>>()
        .join("\n");
    parse_env(&exports)
}

/// Substitutes `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `$VAR` and `$$` the way compose
/// does; an unset variable becomes empty.
pub fn interpolate(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek().map(|&(_, c)| c) {
            Some('$') => {
                chars.next();
                out.push('$');
            }
            Some('{') => {
                let rest = &text[i + 2..];
                let Some(end) = matching_brace(rest) else {
                    out.push_str(&text[i..]);
                    break;
                };
                let inner = &rest[..end];
                let value = if let Some((name, default)) = inner.split_once(":-") {
                    env.get(name)
                        .filter(|v| !v.is_empty())
                        .cloned()
                        .unwrap_or_else(|| interpolate(default, env))
                } else if let Some((name, default)) = inner.split_once('-') {
                    env.get(name)
                        .cloned()
                        .unwrap_or_else(|| interpolate(default, env))
                } else {
                    env.get(inner).cloned().unwrap_or_default()
                };
                out.push_str(&value);
                // Skip `{`, the inner text and `}`.
                let stop = i + 2 + end;
                while chars.peek().is_some_and(|&(j, _)| j <= stop) {
                    chars.next();
                }
            }
            Some(c2) if c2.is_ascii_alphabetic() || c2 == '_' => {
                let start = i + 1;
                let mut end = start;
                while let Some(&(j, c3)) = chars.peek() {
                    if c3.is_ascii_alphanumeric() || c3 == '_' {
                        end = j + c3.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(env.get(&text[start..end]).map(String::as_str).unwrap_or(""));
            }
            _ => out.push('$'),
        }
    }
    out
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

    /// Returns the compose names of the volumes the backed-up services mount.
    pub fn backup_volumes(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .services
            .iter()
            .filter(|s| s.backed_up())
            .flat_map(|s| s.volumes.iter().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
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
) -> serde_yaml::Value {
    use serde_yaml::Value;
    match value {
        Value::String(s) => Value::String(interpolate(s, env)),
        Value::Sequence(items) => {
            Value::Sequence(items.iter().map(|i| interpolate_value(i, env)).collect())
        }
        Value::Mapping(m) => Value::Mapping(
            m.iter()
                .map(|(k, v)| (interpolate_value(k, env), interpolate_value(v, env)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Parses labels in either compose form (`- k=v` list or `k: v` map) with [`Labels`], after
/// interpolating them. Labels of another shape read as none.
fn labels(
    v: Option<&serde_yaml::Value>,
    env: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    v.and_then(|v| serde_yaml::from_value::<Labels>(interpolate_value(v, env)).ok())
        .map(|l| l.0)
        .unwrap_or_default()
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
                svc.image = Some(interpolate(&image, env));
            }
            let deploy_labels = labels(body.get("deploy").and_then(|d| d.get("labels")), env);
            svc.deploy_labels.extend(deploy_labels);
            if let Some(vols) = body.get("volumes").and_then(|v| v.as_sequence()) {
                for v in vols {
                    let source = match v {
                        serde_yaml::Value::String(s) => {
                            ServiceVolume::parse_short(&interpolate(s, env))
                                .named_volume()
                                .map(str::to_string)
                        }
                        serde_yaml::Value::Mapping(_) => {
                            let kind = v.get("type").and_then(Scalar::text).unwrap_or_default();
                            (kind == "volume")
                                .then(|| v.get("source").and_then(Scalar::text))
                                .flatten()
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
            let name = body
                .get("name")
                .and_then(Scalar::text)
                .map(|n| interpolate(&n, env))
                .unwrap_or_else(|| format!("{stack}_{key}"));
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
            let name = body
                .get("name")
                .and_then(Scalar::text)
                .map(|n| interpolate(&n, env))
                .unwrap_or_else(|| key.clone());
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

/// Returns the index of the `}` closing a `${`, counting nested `${...}`.
fn matching_brace(rest: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = rest.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// A recipe checkout read for one stack: its env and compose facts.
#[derive(Debug, Clone)]
pub struct RecipeFiles {
    /// The checkout.
    pub dir: PathBuf,
    /// The env a deploy sees: `.env.sample`, then `abra.sh` exports, then the given overrides.
    pub env: BTreeMap<String, String>,
    /// The compose files in order (`COMPOSE_FILE`, else `compose.yml`).
    pub compose_files: Vec<PathBuf>,
    /// What the compose files declare.
    pub facts: ComposeFacts,
}

impl RecipeFiles {
    /// Reads `.env.sample` (optional), `abra.sh` (optional) and the compose files of `dir`, for
    /// the stack `stack`; `overrides` (e.g. `STACK_NAME`, `DOMAIN`) win over the files.
    pub fn load(
        dir: &Path,
        stack: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, ComposeError> {
        let read_opt = |name: &str| -> Result<Option<String>, ComposeError> {
            let path = dir.join(name);
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
        if let Some(t) = read_opt(".env.sample")? {
            env.extend(parse_env(&t));
        }
        if let Some(t) = read_opt("abra.sh")? {
            env.extend(parse_abra_sh(&t));
        }
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
    fn env_sample_lines_parse_like_abra_reads_them() {
        let text = "TYPE=gitea\n\n# comment\nDOMAIN=gitea.example.com\nSECRET_DB_VERSION=v1 # length=32\n\
                    QUOTED=\"a # b\"\nSINGLE='x y'\nexport EXPORTED=1\n#COMMENTED=2\nnot a line\nEMPTY=\n";
        assert_eq!(
            parse_env(text),
            vec![
                ("TYPE".into(), "gitea".into()),
                ("DOMAIN".into(), "gitea.example.com".into()),
                ("SECRET_DB_VERSION".into(), "v1".into()),
                ("QUOTED".into(), "a # b".into()),
                ("SINGLE".into(), "x y".into()),
                ("EXPORTED".into(), "1".into()),
                ("EMPTY".into(), "".into()),
            ]
        );
        assert_eq!(
            parse_abra_sh("#!/bin/sh\nexport NGINX_CONF_VERSION=v3\nfoo() { bar=1; }\n"),
            vec![("NGINX_CONF_VERSION".into(), "v3".into())]
        );
    }

    #[test]
    fn interpolation_follows_compose_rules() {
        let e = env(&[("STACK_NAME", "s1"), ("EMPTY", ""), ("V", "v2")]);
        let table = [
            ("${STACK_NAME}_key_${V}", "s1_key_v2"),
            ("$STACK_NAME.x", "s1.x"),
            ("${MISSING:-d}", "d"),
            ("${EMPTY:-d}", "d"),
            ("${EMPTY-d}", ""),
            ("${MISSING-d}", "d"),
            ("${MISSING}", ""),
            ("$$HOME", "$HOME"),
            ("Host(`${STACK_NAME}`)", "Host(`s1`)"),
            ("cost $5", "cost $5"),
            ("${UNCLOSED", "${UNCLOSED"),
            ("${MISSING:-${V}}", "v2"),
        ];
        for (input, want) in table {
            assert_eq!(interpolate(input, &e), want, "{input}");
        }
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
        assert_eq!(f.backup_volumes(), vec!["data", "extra"]);
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
        assert_eq!(files.facts.backup_volumes(), vec!["data"]);
        assert!(files.facts.services[0].version_label().is_some());
    }
}
