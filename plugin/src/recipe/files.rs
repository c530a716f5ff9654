//! A recipe checkout read for one stack: the env a deploy sees (`.env.sample`, then `abra.sh`
//! exports, then canon's own values such as `STACK_NAME`) and the compose files that env names
//! (`COMPOSE_FILE`, else `compose.yml`), merged into the one [`Compose`] model.
//!
//! Separate from [`super::compose`] because this is where the files are found and read; the model
//! only parses text. The env files are read by [`super::env_sample`] (godotenv's rules, as abra
//! reads an app's `.env`).
//!
//! What abra needs of a checkout is needed here, so a plan and an install are red where abra
//! could not create or deploy the app:
//! - `.env.sample` at the top of the checkout (`abra app new` copies it into the app's `.env`);
//! - every line of it one godotenv reads (a rejected line is red, naming file and line);
//! - every `COMPOSE_FILE` entry a relative path that stays inside the checkout (canon reads
//!   those files and hands them to `docker stack deploy`; a path that leaves the checkout would
//!   read a file of the machine instead of the recipe's).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::compose::{resolved, Compose, ComposeError};
use super::env_sample::{parse_abra_sh, EnvFile};

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
    pub facts: Compose,
}

impl RecipeFiles {
    /// Reads `.env.sample` (required), `abra.sh` (optional) and the compose files of `dir`, for
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
    /// (required) instead of `dir`'s own `.env.sample`: how `abra app upgrade` deploys a new
    /// version with the env of the app as it was installed. `abra.sh` and the compose files are
    /// still `dir`'s.
    pub fn load_with_env(
        dir: &Path,
        env_sample: &Path,
        stack: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, ComposeError> {
        let read_opt = |path: PathBuf| -> Result<Option<String>, ComposeError> {
            match canon_shared::bounded_read::read_to_string(
                &path,
                canon_shared::bounded_read::TEXT_FILE,
            ) {
                Ok(t) => Ok(Some(t)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(ComposeError::File {
                    path,
                    message: e.to_string(),
                }),
            }
        };
        let mut env = BTreeMap::new();
        let Some(t) = read_opt(env_sample.to_path_buf())? else {
            return Err(ComposeError::File {
                path: env_sample.to_path_buf(),
                message: missing_env_sample(dir),
            });
        };
        let file = EnvFile::parse_pinned(&t, overrides);
        if let Some(bad) = file.rejected.first() {
            return Err(ComposeError::File {
                path: env_sample.to_path_buf(),
                message: format!(
                    "line {}: {}; abra cannot read the file{}",
                    bad.line,
                    bad.reason,
                    match file.rejected.len() {
                        1 => String::new(),
                        n => format!(" ({} more such lines)", n - 1),
                    }
                ),
            });
        }
        env.extend(file.vars());
        let env_modifiers = file.modifiers();
        if let Some(t) = read_opt(dir.join("abra.sh"))? {
            env.extend(parse_abra_sh(&t));
        }
        let app_env_keys: Vec<String> = env.keys().cloned().collect();
        env.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        let compose_files: Vec<PathBuf> = match env.get("COMPOSE_FILE") {
            Some(list) if !list.trim().is_empty() => list
                .split(':')
                .filter(|f| !f.trim().is_empty())
                .map(|f| inside(dir, f.trim()))
                .collect::<Result<_, _>>()?,
            _ => vec![dir.join("compose.yml")],
        };
        let mut facts = Compose::default();
        for path in &compose_files {
            let text = canon_shared::bounded_read::read_to_string(
                path,
                canon_shared::bounded_read::YAML_FILE,
            )
            .map_err(|e| ComposeError::File {
                path: path.clone(),
                message: e.to_string(),
            })?;
            facts.merge(path, &text, stack, &env)?;
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

impl RecipeFiles {
    /// Returns each compose file resolved as canon deploys it ([`resolved::resolve_file`]), in
    /// order, with its file name: the files this reading was made from, interpolated with
    /// [`RecipeFiles::env`], so `docker stack deploy` runs with no recipe variable in its
    /// environment and deploys what the plan was made from.
    pub fn resolved(&self) -> Result<Vec<(String, String)>, ComposeError> {
        let base = self
            .compose_files
            .first()
            .and_then(|f| f.parent())
            .unwrap_or(&self.dir)
            .to_path_buf();
        self.compose_files
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).map_err(|e| ComposeError::File {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Ok((name, resolved::resolve_file(path, &text, &base, &self.env)?))
            })
            .collect()
    }
}

/// Returns why a checkout without `.env.sample` cannot be installed, naming a `.env.sample` one
/// folder down when there is one (abra reads only the top one).
fn missing_env_sample(dir: &Path) -> String {
    let mut elsewhere: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join(".env.sample").is_file())
        .map(|e| format!("{}/.env.sample", e.file_name().to_string_lossy()))
        .collect();
    elsewhere.sort();
    let mut message = "missing: `abra app new` copies a recipe's `.env.sample` into the app's env, so a checkout without one cannot be installed".to_string();
    if !elsewhere.is_empty() {
        message.push_str(&format!(
            " (found {}, but abra reads only the checkout's top folder)",
            elsewhere.join(", ")
        ));
    }
    message
}

/// Returns the `COMPOSE_FILE` entry `entry` as a path in `dir`, or why it is none: an absolute
/// path, or one that leaves the checkout (by `..` or through a symbolic link).
fn inside(dir: &Path, entry: &str) -> Result<PathBuf, ComposeError> {
    let refuse = |why: &str| ComposeError::File {
        path: dir.join(".env.sample"),
        message: format!(
            "COMPOSE_FILE entry {entry:?} {why}; it must be a relative path inside the checkout"
        ),
    };
    let relative = Path::new(entry);
    let mut depth = 0usize;
    for part in relative.components() {
        match part {
            std::path::Component::Normal(_) => depth += 1,
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if depth > 0 => depth -= 1,
            std::path::Component::ParentDir => return Err(refuse("leaves the checkout")),
            std::path::Component::RootDir | std::path::Component::Prefix(_) => {
                return Err(refuse("is an absolute path"))
            }
        }
    }
    let path = dir.join(relative);
    // A link inside the checkout may still point out of it; a missing file is reported when it
    // is read.
    if let (Ok(real), Ok(root)) = (path.canonicalize(), dir.canonicalize()) {
        if !real.starts_with(&root) {
            return Err(refuse("leads out of the checkout through a symbolic link"));
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::recipe::compose::tests::env;
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

    /// A checkout in a temp dir with these files.
    fn checkout(files: &[(&str, &str)]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = tmp.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        tmp
    }

    fn load_err(dir: &Path) -> String {
        RecipeFiles::load(dir, "s", &env(&[("STACK_NAME", "s")]))
            .unwrap_err()
            .to_string()
    }

    const COMPOSE: &str = "services: {app: {image: x}}\n";

    #[test]
    fn a_checkout_without_env_sample_is_refused() {
        let tmp = checkout(&[("compose.yml", COMPOSE)]);
        let err = load_err(tmp.path());
        assert!(
            err.contains(".env.sample: missing: `abra app new` copies"),
            "{err}"
        );
        assert!(!err.contains("found"), "{err}");
    }

    #[test]
    fn a_line_godotenv_rejects_is_refused_naming_file_and_line() {
        let tmp = checkout(&[
            ("compose.yml", COMPOSE),
            (".env.sample", "TYPE=x\nDOMAIN=\"x.example\nA-B=1\n"),
        ]);
        let err = load_err(tmp.path());
        assert!(
            err.contains(".env.sample: line 2: the quoted value's \" is never closed; abra cannot read the file (1 more such lines)"),
            "{err}"
        );
    }

    #[test]
    fn compose_file_entries_must_stay_inside_the_checkout() {
        let outside = checkout(&[("compose.yml", COMPOSE)]);
        let outside_file = outside.path().join("compose.yml");
        let cases = [
            (
                format!("COMPOSE_FILE={}\n", outside_file.display()),
                "is an absolute path",
            ),
            (
                "COMPOSE_FILE=compose.yml:../x/compose.yml\n".to_string(),
                "leaves the checkout",
            ),
            (
                "COMPOSE_FILE=sub/../../compose.yml\n".to_string(),
                "leaves the checkout",
            ),
            (
                "COMPOSE_FILE=link.yml\n".to_string(),
                "through a symbolic link",
            ),
        ];
        for (sample, why) in cases {
            let tmp = checkout(&[("compose.yml", COMPOSE), (".env.sample", sample.as_str())]);
            std::os::unix::fs::symlink(&outside_file, tmp.path().join("link.yml")).unwrap();
            let err = load_err(tmp.path());
            assert!(
                err.contains("COMPOSE_FILE entry")
                    && err.contains(why)
                    && err.contains("relative path inside the checkout"),
                "{sample}: {err}"
            );
        }
        let tmp = checkout(&[
            ("compose.yml", COMPOSE),
            ("sub/compose.x.yml", "services: {db: {image: y}}\n"),
            (
                ".env.sample",
                "COMPOSE_FILE=compose.yml:./sub/../sub/compose.x.yml\n",
            ),
        ]);
        let files = RecipeFiles::load(tmp.path(), "s", &env(&[])).unwrap();
        assert_eq!(files.facts.services.len(), 2);
    }

    #[test]
    fn the_fixture_recipe_reads_with_its_env() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/recipe");
        let files = RecipeFiles::load(&dir, "cold-x", &env(&[("STACK_NAME", "cold-x")])).unwrap();
        assert_eq!(files.env["SECRET_APP_KEY_VERSION"], "v1");
        assert_eq!(files.env["APP_ENTRYPOINT_VERSION"], "v1");
        assert_eq!(files.facts.secrets[0].name, "cold-x_app_key_v1");
        assert!(files
            .facts
            .version_of(&files.facts.services[0].name)
            .is_some());
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
