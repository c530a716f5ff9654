//! Recipe names and the enrollment file.
//!
//! `RecipeName` is used to build paths under the state directory, so its validation is a security
//! boundary: nothing that could climb out of a folder (`/`, `..`, NUL) survives it. The enrollment
//! file lists the recipes canon keeps a canonical for; loading it refuses every way it could be
//! silently empty or ambiguous, because a sweep over nothing that reports success is the failure
//! this prevents.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A valid recipe name: `[a-z0-9][a-z0-9_-]{0,63}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RecipeName(String);

/// Why a string is not a recipe name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid recipe name {shown}: {reason} (allowed: a lower-case letter or digit, then up to 63 of a-z, 0-9, `_` and `-`)")]
pub struct InvalidRecipeName {
    shown: String,
    reason: &'static str,
}

impl RecipeName {
    /// Validates `name` against `[a-z0-9][a-z0-9_-]{0,63}`.
    pub fn parse(name: &str) -> Result<Self, InvalidRecipeName> {
        let fail = |reason| InvalidRecipeName {
            // Debug formatting escapes control characters, so the message stays one safe line.
            shown: format!("{:?}", name.chars().take(80).collect::<String>()),
            reason,
        };
        let mut chars = name.chars();
        let Some(first) = chars.next() else {
            return Err(fail("it is empty"));
        };
        if name.len() > 64 {
            return Err(fail("it is longer than 64 characters"));
        }
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(fail("it must start with a lower-case letter or a digit"));
        }
        if let Some(bad) = chars.find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '-')) {
            return Err(fail(match bad {
                '/' | '\\' => "it contains a path separator",
                '.' => "it contains a dot",
                '\0' => "it contains a NUL byte",
                c if c.is_ascii_uppercase() => "it contains an upper-case letter",
                c if c.is_whitespace() => "it contains whitespace",
                _ => "it contains a character outside a-z, 0-9, `_` and `-`",
            }));
        }
        Ok(Self(name.to_string()))
    }

    /// Returns the name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecipeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RecipeName {
    type Err = InvalidRecipeName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for RecipeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A stage of the cold CI ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Install,
    Upgrade,
    Backup,
    Restore,
    Custom,
}

impl Stage {
    /// Every stage, in ladder order.
    pub const ALL: [Stage; 5] = [
        Stage::Install,
        Stage::Upgrade,
        Stage::Backup,
        Stage::Restore,
        Stage::Custom,
    ];

    /// Returns the stage's name as used in results files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Install => "install",
            Stage::Upgrade => "upgrade",
            Stage::Backup => "backup",
            Stage::Restore => "restore",
            Stage::Custom => "custom",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown stage `{s}` (expected install, upgrade, backup, restore or custom)"
                )
            })
    }
}

/// Where a recipe's git repository lives, as resolved from the enrollment file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepoLocation {
    /// What git fetches from or pushes to: a URL or an absolute local path.
    pub url: String,
    /// `owner/name` on a forge, when the location is a forge repository.
    pub full_name: Option<String>,
    /// The forge's base URL (e.g. `https://git.coopcloud.tech`), when known.
    pub forge: Option<String>,
}

impl RepoLocation {
    /// Returns the web URL of a forge repository (`<forge>/<owner>/<name>`), when known.
    pub fn web_url(&self) -> Option<String> {
        match (&self.forge, &self.full_name) {
            (Some(forge), Some(full)) => Some(format!("{}/{}", forge.trim_end_matches('/'), full)),
            _ => None,
        }
    }

    /// Returns true when `self` is the local filesystem (an absolute path or `file://`).
    pub fn is_local(&self) -> bool {
        self.url.starts_with('/') || self.url.starts_with("file://")
    }

    /// Returns true when a repository described by a webhook (its `full_name`, clone URL or web URL)
    /// is this location. Comparison ignores case, a trailing `/` and a trailing `.git`.
    pub fn matches(&self, candidate: &str) -> bool {
        let norm = |s: &str| {
            s.trim()
                .trim_end_matches('/')
                .trim_end_matches(".git")
                .to_ascii_lowercase()
        };
        let c = norm(candidate);
        if c.is_empty() {
            return false;
        }
        norm(&self.url) == c
            || self.full_name.as_deref().is_some_and(|f| norm(f) == c)
            || self.web_url().is_some_and(|w| norm(&w) == c)
    }
}

/// One enrolled recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipe {
    /// The recipe's name, also its folder under the state directory.
    pub name: RecipeName,
    /// The upstream repository (e.g. on git.coopcloud.tech).
    pub upstream: RepoLocation,
    /// The mirror repository that CI runs against.
    pub mirror: RepoLocation,
    /// The branch kept equal to upstream's (default `main`).
    pub branch: String,
    /// Stages that must pass for a promotion; `None` means the default (`install`, plus `upgrade`
    /// when a canonical exists).
    pub required_stages: Option<Vec<Stage>>,
    /// The recipe's own test command for the `custom` stage.
    pub test_command: Option<String>,
    /// How long a deploy may take to become healthy, in seconds.
    pub deploy_timeout_secs: Option<u64>,
    /// An HTTP path probed after deploy (e.g. `/health`).
    pub health_path: Option<String>,
    /// How long every service must stay converged (no restart, no new task) before a deploy
    /// counts as healthy, in seconds; `None` means the runner's default.
    pub stability_window_secs: Option<u64>,
    /// The Drone repository (`owner/name`) the recipe's builds start in, when the enrollment
    /// names one for it (or one for all); `None`: the listener's or the sweep's own setting.
    pub drone_repo: Option<String>,
    /// Values the recipe's `generate=false` secrets take in a run, by compose secret key: the
    /// file that holds each (`secrets: {<key>: <file>}`; a relative path is the enrollment
    /// file's folder's). Read at deploy time; the enrollment holds only the paths.
    pub secrets: BTreeMap<String, PathBuf>,
    /// What the recipe may ask of the host beyond its containers (`host_access:`): host paths
    /// (e.g. `/var/run/docker.sock`) or kinds of the deploy policy (e.g. `host_network`). Every
    /// other host access in its compose files is refused.
    pub host_access: Vec<String>,
}

/// Returns true when `repo` is a Drone repository name, `owner/name`, each part ASCII letters,
/// digits, `-`, `_` or `.` (and neither `.` nor `..`): the one rule for the enrollment and the
/// Drone client, so a name the client would refuse is refused when the enrollment is read.
pub fn is_drone_repo(repo: &str) -> bool {
    let parts: Vec<&str> = repo.split('/').collect();
    let part_ok = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    parts.len() == 2 && parts.iter().all(|p| part_ok(p))
}

/// Checks an enrollment's `drone_repo` ([`is_drone_repo`]).
fn drone_repo(value: &str) -> Result<String, String> {
    let v = value.trim();
    if is_drone_repo(v) {
        Ok(v.to_string())
    } else {
        Err(format!("drone_repo {v:?} is not `owner/name`"))
    }
}

/// The longest `stability_window` an enrollment may ask for, in seconds.
pub const MAX_STABILITY_WINDOW_SECS: u64 = 3600;

/// The enrollment: every recipe canon keeps a canonical for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enrollment {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// The recipes, in file order, at least one, names unique.
    pub recipes: Vec<Recipe>,
}

/// Why an enrollment file could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum EnrollmentError {
    #[error("enrollment file {path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("enrollment file {path}: invalid YAML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("enrollment file {path}: it enrolls no recipes (a sweep over nothing would report success while testing nothing)")]
    Empty { path: PathBuf },
    #[error("enrollment file {path}: recipe #{index} ({name}): {message}")]
    Entry {
        path: PathBuf,
        index: usize,
        name: String,
        message: String,
    },
    #[error("enrollment file {path}: recipe `{name}` is enrolled twice (entries #{first} and #{second})")]
    Duplicate {
        path: PathBuf,
        name: String,
        first: usize,
        second: usize,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnrollment {
    #[serde(default)]
    forge: RawForges,
    /// The Drone repository every recipe builds in unless it names its own.
    drone_repo: Option<String>,
    recipes: Option<Vec<serde_yaml::Value>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawForges {
    upstream: Option<String>,
    mirror: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipe {
    name: String,
    upstream: String,
    mirror: String,
    branch: Option<String>,
    required_stages: Option<Vec<String>>,
    test_command: Option<String>,
    deploy_timeout: Option<u64>,
    health_path: Option<String>,
    stability_window: Option<serde_yaml::Value>,
    drone_repo: Option<String>,
    secrets: Option<BTreeMap<String, String>>,
    host_access: Option<Vec<String>>,
}

/// Checks an enrollment's `host_access:`: each entry a host path or a kind, one line of
/// printable text.
fn host_access(raw: Vec<String>) -> Result<Vec<String>, String> {
    raw.into_iter()
        .map(|e| {
            let e = e.trim().to_string();
            if e.is_empty() || e.len() > 4096 || e.chars().any(char::is_control) {
                Err(format!(
                    "host_access: {:?} is not a host path or a kind",
                    e.chars().take(80).collect::<String>()
                ))
            } else {
                Ok(e)
            }
        })
        .collect()
}

/// Checks an enrollment's `secrets:` (a compose secret key and a file for each) and resolves
/// each relative file against `base`, the enrollment file's folder.
fn secret_files(
    raw: BTreeMap<String, String>,
    base: &Path,
) -> Result<BTreeMap<String, PathBuf>, String> {
    raw.into_iter()
        .map(|(key, file)| {
            let key_ok = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !key_ok {
                return Err(format!(
                    "secrets: {:?} is not a compose secret key (letters, digits, `_`, `-`, `.`)",
                    key.chars().take(80).collect::<String>()
                ));
            }
            let file = file.trim();
            if file.is_empty() || file.chars().any(char::is_control) {
                return Err(format!(
                    "secrets: `{key}` needs the path of the file that holds its value"
                ));
            }
            Ok((key, base.join(file)))
        })
        .collect()
}

impl Enrollment {
    /// Loads and validates an enrollment file.
    ///
    /// Fails, naming the file and the entry, on a missing file, invalid YAML, zero recipes, a
    /// duplicate or invalid name, an unknown key, or an unresolvable repository location.
    pub fn load(path: &Path) -> Result<Self, EnrollmentError> {
        let text = std::fs::read_to_string(path).map_err(|source| EnrollmentError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses enrollment YAML; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, EnrollmentError> {
        let syntax = |message: String| EnrollmentError::Syntax {
            path: path.to_path_buf(),
            message,
        };
        if text.trim().is_empty() {
            return Err(EnrollmentError::Empty {
                path: path.to_path_buf(),
            });
        }
        let raw: RawEnrollment = serde_yaml::from_str(text).map_err(|e| syntax(e.to_string()))?;
        let entries = raw.recipes.unwrap_or_default();
        if entries.is_empty() {
            return Err(EnrollmentError::Empty {
                path: path.to_path_buf(),
            });
        }
        let raw_forges = raw.forge;
        for (key, url) in [
            ("upstream", &raw_forges.upstream),
            ("mirror", &raw_forges.mirror),
        ] {
            if let Some(url) = url {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(syntax(format!(
                        "forge.{key}: {url:?} is not an http(s) base URL"
                    )));
                }
            }
        }
        let default_drone_repo = match raw.drone_repo {
            Some(repo) => Some(drone_repo(&repo).map_err(syntax)?),
            None => None,
        };
        let mut recipes = Vec::with_capacity(entries.len());
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (i, value) in entries.into_iter().enumerate() {
            let index = i + 1;
            let shown_name = value
                .get("name")
                .and_then(|n| n.as_str())
                .map(|n| format!("`{}`", n.escape_debug()))
                .unwrap_or_else(|| "unnamed".to_string());
            let entry = |message: String| EnrollmentError::Entry {
                path: path.to_path_buf(),
                index,
                name: shown_name.clone(),
                message,
            };
            let raw: RawRecipe = serde_yaml::from_value(value).map_err(|e| entry(e.to_string()))?;
            let name = RecipeName::parse(&raw.name).map_err(|e| entry(e.to_string()))?;
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == raw.name) {
                return Err(EnrollmentError::Duplicate {
                    path: path.to_path_buf(),
                    name: raw.name,
                    first: *first,
                    second: index,
                });
            }
            seen.push((raw.name.clone(), index));
            let upstream = resolve_location(&raw.upstream, raw_forges.upstream.as_deref())
                .map_err(|m| entry(format!("upstream: {m}")))?;
            let mirror = resolve_location(&raw.mirror, raw_forges.mirror.as_deref())
                .map_err(|m| entry(format!("mirror: {m}")))?;
            if upstream.url == mirror.url {
                return Err(entry("upstream and mirror are the same repository".into()));
            }
            let branch = raw.branch.unwrap_or_else(|| "main".to_string());
            if branch.is_empty() || git2::Branch::name_is_valid(&branch).ok() != Some(true) {
                return Err(entry(format!(
                    "branch {branch:?} is not a valid branch name"
                )));
            }
            let required_stages = raw
                .required_stages
                .map(|list| {
                    list.iter()
                        .map(|s| s.parse::<Stage>())
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()
                .map_err(|m| entry(format!("required_stages: {m}")))?;
            if let Some(p) = &raw.health_path {
                if !p.starts_with('/') {
                    return Err(entry(format!("health_path {p:?} must start with `/`")));
                }
            }
            if raw.deploy_timeout == Some(0) {
                return Err(entry("deploy_timeout must be at least 1 second".into()));
            }
            let stability_window = raw
                .stability_window
                .as_ref()
                .map(|v| {
                    v.as_u64()
                        .filter(|w| (1..=MAX_STABILITY_WINDOW_SECS).contains(w))
                        .ok_or_else(|| {
                            let shown = serde_yaml::to_string(v)
                                .map(|t| t.trim().to_string())
                                .unwrap_or_default();
                            entry(format!(
                                "stability_window must be a whole number of seconds from 1 to {MAX_STABILITY_WINDOW_SECS}, not {shown}"
                            ))
                        })
                })
                .transpose()?;
            if let Some(w) = stability_window {
                if let Some(t) = raw.deploy_timeout.filter(|&t| w >= t) {
                    return Err(entry(format!(
                        "stability_window ({w} s) must be shorter than deploy_timeout ({t} s): \
                         no deploy could ever stay up that long in time"
                    )));
                }
            }
            recipes.push(Recipe {
                name,
                upstream,
                mirror,
                branch,
                required_stages,
                test_command: raw.test_command.filter(|c| !c.trim().is_empty()),
                deploy_timeout_secs: raw.deploy_timeout,
                health_path: raw.health_path,
                stability_window_secs: stability_window,
                drone_repo: match raw.drone_repo.or_else(|| default_drone_repo.clone()) {
                    Some(repo) => Some(drone_repo(&repo).map_err(entry)?),
                    None => None,
                },
                secrets: secret_files(
                    raw.secrets.unwrap_or_default(),
                    path.parent().unwrap_or(Path::new("")),
                )
                .map_err(entry)?,
                host_access: host_access(raw.host_access.unwrap_or_default()).map_err(entry)?,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            recipes,
        })
    }

    /// Returns the enrolled recipe called `name`.
    pub fn get(&self, name: &RecipeName) -> Option<&Recipe> {
        self.recipes.iter().find(|r| &r.name == name)
    }

    /// Returns the recipe whose upstream is the repository a webhook names (by `full_name`, clone
    /// URL or web URL).
    pub fn by_upstream<'a>(
        &self,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Option<&Recipe> {
        let candidates: Vec<&str> = candidates.into_iter().collect();
        self.recipes
            .iter()
            .find(|r| candidates.iter().any(|c| r.upstream.matches(c)))
    }
}

/// Resolves an enrollment location: a URL (`scheme://...` or scp-like `user@host:path`), an
/// absolute path, or `owner/name` against the forge base URL.
fn resolve_location(value: &str, forge: Option<&str>) -> Result<RepoLocation, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("it is empty".into());
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{value:?} contains whitespace or a control character"
        ));
    }
    if let Some(rest) = value.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(format!("{value:?}: a file:// URL needs an absolute path"));
        }
        return Ok(RepoLocation {
            url: value.to_string(),
            full_name: None,
            forge: None,
        });
    }
    if value.contains("://") {
        let parsed = url::Url::parse(value).map_err(|e| {
            format!(
                "{:?} is not a valid URL: {e}",
                crate::secret::without_userinfo(value)
            )
        })?;
        if crate::secret::url_carries_credentials(&parsed) {
            return Err(
                "credentials do not belong in the enrollment file; use the token settings".into(),
            );
        }
        let full_name = forge_full_name(parsed.path());
        let forge = full_name.as_ref().map(|_| {
            let mut base = parsed.clone();
            base.set_path("");
            base.set_query(None);
            base.as_str().trim_end_matches('/').to_string()
        });
        return Ok(RepoLocation {
            url: value.to_string(),
            full_name,
            forge,
        });
    }
    if value.starts_with('/') {
        return Ok(RepoLocation {
            url: value.to_string(),
            full_name: None,
            forge: None,
        });
    }
    if let Some((userhost, path)) = value.split_once(':') {
        if userhost.contains('@') && !path.is_empty() {
            return Ok(RepoLocation {
                url: value.to_string(),
                full_name: forge_full_name(path),
                forge: None,
            });
        }
    }
    let parts: Vec<&str> = value.split('/').collect();
    let valid_part = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if parts.len() == 2 && parts.iter().all(|p| valid_part(p)) {
        let Some(forge) = forge else {
            return Err(format!(
                "{value:?} is `owner/name` but the file sets no forge base URL for it (top-level `forge:`)"
            ));
        };
        let forge = forge.trim_end_matches('/');
        return Ok(RepoLocation {
            url: format!("{forge}/{value}.git"),
            full_name: Some(value.to_string()),
            forge: Some(forge.to_string()),
        });
    }
    Err(format!(
        "{value:?} is neither a git URL, an absolute path, nor `owner/name`"
    ))
}

/// Returns `owner/name` when a URL path has exactly that shape (with an optional `.git`).
fn forge_full_name(path: &str) -> Option<String> {
    let trimmed = path.trim_matches('/').trim_end_matches(".git");
    let parts: Vec<&str> = trimmed.split('/').collect();
    (parts.len() == 2 && parts.iter().all(|p| !p.is_empty())).then(|| trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_recipe_names_are_accepted() {
        for n in ["a", "0", "custom-html", "my_app-2", &"x".repeat(64)] {
            assert_eq!(RecipeName::parse(n).unwrap().as_str(), n);
        }
    }

    #[test]
    fn names_that_could_escape_a_path_or_confuse_are_rejected() {
        let table = [
            ("", "empty"),
            ("a/b", "path separator"),
            ("..", "start with"),
            ("a..b", "dot"),
            ("Gitea", "start with"),
            ("giTea", "upper-case"),
            ("my app", "whitespace"),
            ("a\0b", "NUL"),
            ("a:b", "character outside"),
            ("-lead", "start with"),
            ("_lead", "start with"),
            ("caf\u{e9}", "character outside"),
        ];
        let long = "x".repeat(65);
        for (name, why) in table {
            let err = RecipeName::parse(name).unwrap_err().to_string();
            assert!(err.contains(why), "{name:?}: {err}");
        }
        assert!(RecipeName::parse(&long)
            .unwrap_err()
            .to_string()
            .contains("longer than 64"));
    }

    fn load(text: &str) -> Result<Enrollment, EnrollmentError> {
        Enrollment::parse(Path::new("/etc/canon/enrollment.yml"), text)
    }

    const GOOD: &str = "
forge:
  upstream: https://git.coopcloud.tech
  mirror: https://git.autonomic.zone/
recipes:
  - name: custom-html
    upstream: coop-cloud/custom-html
    mirror: recipe-maintainers/custom-html
  - name: local
    upstream: /srv/up/local.git
    mirror: file:///srv/mirror/local.git
    branch: trunk
    required_stages: [install, backup]
    test_command: ./tests/smoke.sh
    deploy_timeout: 120
    host_access: [/var/run/docker.sock, host_network]
    health_path: /health
    stability_window: 15
";

    #[test]
    fn a_good_file_resolves_every_location() {
        let e = load(GOOD).unwrap();
        assert_eq!(e.recipes.len(), 2);
        let ch = &e.recipes[0];
        assert_eq!(
            ch.upstream.url,
            "https://git.coopcloud.tech/coop-cloud/custom-html.git"
        );
        assert_eq!(
            ch.mirror.url,
            "https://git.autonomic.zone/recipe-maintainers/custom-html.git"
        );
        assert_eq!(ch.branch, "main");
        assert_eq!(ch.required_stages, None);
        assert!(ch.upstream.matches("coop-cloud/custom-html"));
        assert!(ch
            .upstream
            .matches("https://git.coopcloud.tech/coop-cloud/custom-html"));
        assert!(ch
            .upstream
            .matches("https://git.coopcloud.tech/coop-cloud/custom-html.git"));
        assert!(!ch.upstream.matches("coop-cloud/custom"));
        let local = &e.recipes[1];
        assert_eq!(local.branch, "trunk");
        assert_eq!(local.host_access, ["/var/run/docker.sock", "host_network"]);
        assert!(ch.host_access.is_empty());
        assert_eq!(
            local.required_stages,
            Some(vec![Stage::Install, Stage::Backup])
        );
        assert!(local.upstream.is_local() && local.mirror.is_local());
        assert_eq!(local.deploy_timeout_secs, Some(120));
        assert_eq!(local.stability_window_secs, Some(15));
        assert_eq!(ch.stability_window_secs, None);
        assert_eq!(
            e.by_upstream(["coop-cloud/custom-html"])
                .unwrap()
                .name
                .as_str(),
            "custom-html"
        );
        assert!(e.by_upstream(["someone/else"]).is_none());
    }

    #[test]
    fn empty_or_invalid_files_are_refused_naming_file_and_entry() {
        let table: &[(&str, &str)] = &[
            ("", "enrolls no recipes"),
            ("recipes: []", "enrolls no recipes"),
            ("recipes:", "enrolls no recipes"),
            ("other: 1", "unknown field"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, colour: red}]", "recipe #1 (`a`): unknown field `colour`"),
            ("recipes: [{name: A, upstream: /u, mirror: /m}]", "recipe #1 (`A`): invalid recipe name"),
            ("recipes: [{name: ../x, upstream: /u, mirror: /m}]", "must start with"),
            ("recipes: [{name: a/../x, upstream: /u, mirror: /m}]", "path separator"),
            ("recipes: [{name: a, upstream: /u, mirror: /m}, {name: a, upstream: /v, mirror: /n}]", "enrolled twice (entries #1 and #2)"),
            ("recipes: [{name: a, upstream: o/n, mirror: /m}]", "upstream: \"o/n\" is `owner/name` but the file sets no forge"),
            ("recipes: [{name: a, upstream: /u, mirror: /u}]", "same repository"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, required_stages: [deploy]}]", "unknown stage `deploy`"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, host_access: ['']}]", "host_access: \"\" is not a host path or a kind"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, host_access: /x}]", "recipe #1 (`a`)"),
            ("recipes: [{name: a, upstream: 'https://x:pw@h/o/n', mirror: /m}]", "credentials"),
            ("recipes: [{name: a, upstream: 'https://TOKEN@h/o/n', mirror: /m}]", "credentials"),
            ("recipes: [{name: a, upstream: /u, mirror: 'http://user@h/o/n'}]", "credentials"),
            ("recipes: [{name: a, upstream: 'ssh://git:pw@h/o/n', mirror: /m}]", "credentials"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, branch: 'a..b'}]", "not a valid branch"),
            ("recipes: [{name: a, upstream: relative/path/x, mirror: /m}]", "neither a git URL"),
            ("recipes: [{upstream: /u, mirror: /m}]", "recipe #1 (unnamed): missing field `name`"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, stability_window: 0}]", "stability_window must be a whole number of seconds from 1 to 3600, not 0"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, stability_window: 7200}]", "stability_window must be a whole number of seconds from 1 to 3600, not 7200"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, stability_window: -1}]", "stability_window must be a whole number of seconds from 1 to 3600, not -1"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, stability_window: ten}]", "stability_window must be a whole number of seconds from 1 to 3600, not ten"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, stability_window: 2.5}]", "not 2.5"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, deploy_timeout: 30, stability_window: 30}]", "must be shorter than deploy_timeout (30 s)"),
            ("recipes: {", "invalid YAML"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, drone_repo: 'ci/a b'}]", "drone_repo \"ci/a b\" is not `owner/name`"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, drone_repo: 'ci/..'}]", "drone_repo \"ci/..\" is not `owner/name`"),
            ("drone_repo: 'ci/h?st'\nrecipes: [{name: a, upstream: /u, mirror: /m}]", "drone_repo \"ci/h?st\" is not `owner/name`"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, secrets: {'a b': /f}}]", "secrets: \"a b\" is not a compose secret key"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, secrets: {k: ''}}]", "secrets: `k` needs the path of the file"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, secrets: [k]}]", "recipe #1 (`a`): invalid type"),
        ];
        for (text, want) in table {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains("/etc/canon/enrollment.yml"), "{err}");
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn supplied_secret_files_resolve_against_the_enrollment_files_folder() {
        let e = load(
            "recipes: [{name: a, upstream: /u, mirror: /m, secrets: {orchid_client_secret: secrets/orcid, ovh_consumer_key: /run/ovh}}]",
        )
        .unwrap();
        let secrets = &e.recipes[0].secrets;
        assert_eq!(
            secrets["orchid_client_secret"],
            Path::new("/etc/canon/secrets/orcid")
        );
        assert_eq!(secrets["ovh_consumer_key"], Path::new("/run/ovh"));
        let none = load("recipes: [{name: a, upstream: /u, mirror: /m}]").unwrap();
        assert!(none.recipes[0].secrets.is_empty());
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = Enrollment::load(Path::new("/nonexistent/enroll.yml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/enroll.yml"));
        assert!(matches!(err, EnrollmentError::Read { .. }));
    }

    #[test]
    fn http_user_info_is_refused_without_echoing_it_and_an_ssh_login_user_is_kept() {
        for text in [
            "recipes: [{name: a, upstream: 'https://s3cr3t@h/o/n', mirror: /m}]",
            "recipes: [{name: a, upstream: 'https://s3cr3t@[bad/o/n', mirror: /m}]",
        ] {
            let err = load(text).unwrap_err().to_string();
            assert!(!err.contains("s3cr3t"), "{err}");
        }
        let ok = load("recipes: [{name: a, upstream: 'ssh://git@h/o/n', mirror: /m}]").unwrap();
        assert_eq!(ok.recipes[0].upstream.url, "ssh://git@h/o/n");
    }
}
