//! The upgrade stage as `abra app upgrade` does it: the new version deploys with the env of the
//! app as it was installed (the canonical's `.env.sample`, not the tag's), so a setting new in
//! the tag's `.env.sample` is absent unless compose defaults it.
//!
//! A secret the new version needs and the installed app lacks (its `SECRET_<NAME>_VERSION` is
//! not in the installed env, or its secret was never created) breaks an operator's upgrade, the
//! breakage Co-op Cloud's upgrade checklist exists for. The stage fails naming each one and the
//! notes it looked at, unless a release note an operator upgrading from the canonical reads
//! names every such secret by key or variable ([`crate::recipe::release_notes`]: the notes of
//! the versions after the canonical up to the tested tag, or `release/next` for a branch or PR
//! head): then canon does what an operator following them would, adds the version lines from
//! the tag's `.env.sample` to the app env and generates the secrets (honouring `length=`), and
//! the stage passes with that note as its reason.
//!
//! The secrets it checks are the deploy plan's ([`DeployPlan`], the one the deploy creates them
//! from), save those the installed env gives no version, which no plan can name.

use std::collections::BTreeSet;
use std::path::Path;

use super::app_service::DeployedVersion;
use super::stack::{AppEnv, Stack};
use crate::recipe::env_sample::EnvFile;
use crate::recipe::files::RecipeFiles;
use crate::recipe::interpolate::variables;
use crate::recipe::plan::DeployPlan;
use crate::recipe::release_notes::{self, Upgrade};
use crate::recipe::secrets::version_var;
use crate::runners::RunnerError;

/// A secret the new version needs that the installed app lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MissingSecret {
    /// The compose secret's key.
    pub(super) key: String,
    /// Its version variable.
    pub(super) var: String,
    /// True when the installed env has no version line for it (else its secret was never made).
    pub(super) unversioned: bool,
    /// Why it is missing, for the stage's reason.
    pub(super) why: String,
}

/// Returns the external secrets some service of `files` (read with the installed env) uses whose
/// name has no version (it ends in `_`: the installed env does not set the variable the name
/// refers to): no deploy plan can name them (the plan refuses such a secret, as abra does);
/// sorted by key.
pub(super) fn unversioned_secrets(files: &RecipeFiles) -> Vec<MissingSecret> {
    let mut missing: Vec<MissingSecret> = files
        .facts
        .secrets
        .iter()
        .filter(|s| s.external)
        .filter(|s| {
            files
                .facts
                .services
                .iter()
                .any(|svc| svc.secrets.iter().any(|u| u.source == s.key))
        })
        .filter_map(|s| {
            let var = s
                .name_as_written
                .as_deref()
                .and_then(|n| variables(n).pop())
                .unwrap_or_else(|| version_var(&s.key));
            s.name.ends_with('_').then(|| MissingSecret {
                key: s.key.clone(),
                why: format!("the installed env has no {var}"),
                var,
                unversioned: true,
            })
        })
        .collect();
    missing.sort_by(|a, b| a.key.cmp(&b.key));
    missing
}

/// Returns `files` without the secrets in `unversioned`, so the rest can be planned.
pub(super) fn without(files: &RecipeFiles, unversioned: &[MissingSecret]) -> RecipeFiles {
    let mut rest = files.clone();
    rest.facts
        .secrets
        .retain(|s| !unversioned.iter().any(|m| m.key == s.key));
    rest
}

/// Returns the secrets the new version needs and the installed app lacks, sorted by key: the
/// `unversioned` ones, and those of the deploy `plan` (of the rest) whose secret was never
/// created, given the secret names that exist on the engine.
pub(super) fn missing_secrets(
    unversioned: Vec<MissingSecret>,
    plan: &DeployPlan,
    existing: &BTreeSet<String>,
) -> Vec<MissingSecret> {
    let mut missing = unversioned;
    missing.extend(
        plan.secrets
            .iter()
            .filter(|s| !existing.contains(&s.name))
            .map(|s| MissingSecret {
                key: s.spec.key.clone(),
                var: s
                    .spec
                    .version_var
                    .clone()
                    .unwrap_or_else(|| version_var(&s.spec.key)),
                unversioned: false,
                why: format!("the installed app has no secret {}", s.name),
            }),
    );
    missing.sort_by(|a, b| a.key.cmp(&b.key));
    missing
}

fn list(missing: &[MissingSecret]) -> String {
    missing
        .iter()
        .map(|m| format!("`{}` ({})", m.key, m.why))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Stack {
    /// Deploys the checkout `dir` over the running app as `deployed` (upgrading from the
    /// canonical `base`), with the installed app env `app_env` (which gains the lines the release
    /// notes had canon add). Returns what it deployed and, when it followed release notes, the
    /// note for the stage's reason.
    pub(super) fn upgrade(
        &self,
        dir: &Path,
        deployed: &DeployedVersion,
        base: Option<&str>,
        app_env: &mut AppEnv,
    ) -> Result<(RecipeFiles, Option<String>), RunnerError> {
        let files = self.load_app(dir, app_env)?;
        let unversioned = unversioned_secrets(&files);
        let plan = self.plan(&without(&files, &unversioned))?;
        let missing = missing_secrets(unversioned, &plan, &self.available_secrets(&plan)?);
        if missing.is_empty() {
            return Ok((self.deploy_files(files, deployed)?, None));
        }
        let to = match deployed.chaos_version {
            Some(_) => Upgrade::Head,
            None => Upgrade::Tag(&deployed.version),
        };
        let notes = release_notes::for_upgrade(dir, base, to).map_err(RunnerError::Other)?;
        let uncovered: Vec<MissingSecret> = missing
            .iter()
            .filter(|m| release_notes::naming(&notes, &m.key, &m.var).is_none())
            .cloned()
            .collect();
        let shown = release_notes::shown(&notes);
        if !uncovered.is_empty() {
            return Err(RunnerError::Other(format!(
                "upgrading to {} needs secrets the installed app lacks: {}; no release note names {} (notes looked at: {shown})",
                deployed.version,
                list(&missing),
                uncovered
                    .iter()
                    .map(|m| format!("`{}` or {}", m.key, m.var))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let tag_env = match canon_shared::bounded_read::read_to_string(
            &dir.join(".env.sample"),
            canon_shared::bounded_read::TEXT_FILE,
        ) {
            Ok(text) => EnvFile::parse_pinned(&text, &self.overrides()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => EnvFile::default(),
            Err(e) => {
                return Err(RunnerError::Other(format!(
                    "could not read the tag's .env.sample: {e}"
                )))
            }
        };
        let (vars, modifiers) = (tag_env.vars(), tag_env.modifiers());
        let mut added = app_env.clone();
        for m in missing.iter().filter(|m| m.unversioned) {
            let value = vars.get(&m.var).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                RunnerError::Other(format!(
                    "upgrading to {}: secret `{}` needs {}, which neither the installed env nor the tag's .env.sample sets",
                    deployed.version, m.key, m.var
                ))
            })?;
            added.added.insert(m.var.clone(), value.clone());
            if let Some(mods) = modifiers.get(&m.var) {
                added.added_modifiers.insert(m.var.clone(), mods.clone());
            }
        }
        let files = self.load_app(dir, &added)?;
        let files = self.deploy_files(files, deployed)?;
        *app_env = added;
        let keys: Vec<&str> = missing.iter().map(|m| m.key.as_str()).collect();
        let note = format!(
            "following the release notes {shown}, canon created the secrets the installed app lacked, as an operator would: {}",
            keys.join(", ")
        );
        tracing::info!(stack = %self.name, secrets = ?keys, notes = %shown, "The upgrade follows the tag's release notes.");
        Ok((files, Some(note)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn files(sample: &str, compose: &str) -> (tempfile::TempDir, RecipeFiles) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(".env.sample"), sample).unwrap();
        std::fs::write(tmp.path().join("compose.yml"), compose).unwrap();
        let overrides = BTreeMap::from([("STACK_NAME".to_string(), "s".to_string())]);
        let f = RecipeFiles::load(tmp.path(), "s", &overrides).unwrap();
        (tmp, f)
    }

    const COMPOSE: &str = "services: {app: {image: x, secrets: [db_password, app_key]}}\nsecrets:\n  db_password: {external: true, name: \"${STACK_NAME}_db_password_${SECRET_DB_PASSWORD_VERSION}\"}\n  app_key: {external: true, name: \"${STACK_NAME}_app_key_${SECRET_APP_KEY_VERSION}\"}\n  plain: {file: ./p}\n";

    /// Returns the secrets of `f` the installed app lacks, given the secrets on the engine.
    fn missing(f: &RecipeFiles, existing: &BTreeSet<String>) -> Vec<MissingSecret> {
        let unversioned = unversioned_secrets(f);
        let plan = DeployPlan::resolve(&without(f, &unversioned), "s", None).unwrap();
        missing_secrets(unversioned, &plan, existing)
    }

    #[test]
    fn a_secret_the_installed_env_does_not_version_or_never_made_is_missing() {
        let (_t, f) = files("SECRET_DB_PASSWORD_VERSION=v1\n", COMPOSE);
        assert!(
            DeployPlan::resolve(&f, "s", None).is_err(),
            "the unversioned secret has no plan"
        );
        let got = missing(&f, &BTreeSet::new());
        let keys: Vec<(&str, bool)> = got
            .iter()
            .map(|m| (m.key.as_str(), m.unversioned))
            .collect();
        assert_eq!(keys, vec![("app_key", true), ("db_password", false)]);
        assert_eq!(
            got[0].why,
            "the installed env has no SECRET_APP_KEY_VERSION"
        );
        assert_eq!(
            got[1].why,
            "the installed app has no secret s_db_password_v1"
        );
        assert_eq!(got[1].var, "SECRET_DB_PASSWORD_VERSION");
        let existing = BTreeSet::from(["s_db_password_v1".to_string()]);
        let got = missing(&f, &existing);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].var, "SECRET_APP_KEY_VERSION");
    }

    #[test]
    fn nothing_is_missing_when_every_secret_is_versioned_and_made() {
        let (_t, f) = files(
            "SECRET_DB_PASSWORD_VERSION=v1\nSECRET_APP_KEY_VERSION=v2\n",
            COMPOSE,
        );
        assert!(unversioned_secrets(&f).is_empty());
        let existing = BTreeSet::from(["s_db_password_v1".to_string(), "s_app_key_v2".to_string()]);
        assert!(missing(&f, &existing).is_empty());
        let existing = BTreeSet::from(["s_db_password_v1".to_string()]);
        let got = missing(&f, &existing);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].why, "the installed app has no secret s_app_key_v2");
    }
}
