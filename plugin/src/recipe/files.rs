//! A recipe checkout read for one stack: the env a deploy sees (`.env.sample`, then `abra.sh`
//! exports, then canon's own values such as `STACK_NAME`) and the compose files that env names
//! (`COMPOSE_FILE`, else `compose.yml`), merged into the one [`Compose`] model.
//!
//! Separate from [`super::compose`] because this is where the files are found and read; the model
//! only parses text. The env files are read by [`super::env_sample`] (godotenv's rules, as abra
//! reads an app's `.env`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::compose::{Compose, ComposeError};
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
        let mut facts = Compose::default();
        for path in &compose_files {
            let text = std::fs::read_to_string(path).map_err(|e| ComposeError::File {
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
