//! The deploy plan of a recipe checkout for one stack: what a deploy would use, resolved without
//! deploying. The version label, the compose files in deploy order, the convergence timeout and
//! its source, the secrets to generate (name, version, length), what backupbot backs up and the
//! HTTP routes the traefik labels declare.
//!
//! The docker runner deploys, waits and backs up from this plan, and `canon-plugin recipe plan`
//! prints it: one computation, so the plan shown is the plan deployed. Everything that makes an
//! install red before anything is deployed (a `${V:?msg}`, a secret whose name has no version,
//! a `length=` canon cannot generate, a timeout label that is no number, a backupbot label canon
//! cannot follow, two version labels that disagree, a router rule or port canon cannot follow)
//! is an error here. What canon does otherwise
//! than abra without failing (a modifier it ignores, a test value for a `generate=false` secret, a
//! declared secret no service uses) is a note of the plan.
//!
//! Pure over the [`RecipeFiles`] read from the checkout. No secret value is part of a plan, and
//! no `.env` value either: only names, versions and lengths.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::backupbot::{self, BackupLabelError, ServiceBackup};
use super::compose::ComposeError;
use super::files::RecipeFiles;
use super::policy::{self, Finding};
use super::routes::{self, Route, RouteError};
use super::secrets::{self, SecretError, SecretSpec};
use super::timeout::{self, DeployTimeout, DeployTimeoutError};

/// Why a checkout has no deploy plan. `Display` is the install's red reason.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The env or compose files could not be read or interpolated.
    #[error(transparent)]
    Compose(#[from] ComposeError),
    /// A secret cannot be made as abra would (no version in its name, a refused `length=`).
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The timeout label is no number of seconds.
    #[error(transparent)]
    Timeout(#[from] DeployTimeoutError),
    /// A backupbot label canon cannot follow.
    #[error(transparent)]
    Backup(#[from] BackupLabelError),
    /// A router rule canon cannot read or a routed port it cannot find.
    #[error("routing: {0}")]
    Route(#[from] RouteError),
    /// The compose files ask for host access the enrollment does not allow.
    #[error("the deploy policy refuses what the compose files ask of the host (allow it in the recipe's enrollment entry, `host_access:`): {0}")]
    Policy(String),
    /// Services label different versions.
    #[error("the services label different versions: {0}")]
    VersionConflict(String),
    /// Secret or config names Docker refuses (longer than 64 characters), each with its length.
    #[error("Docker refuses names over {max} characters: {0}", max = super::names::DOCKER_MAX_OBJECT_NAME)]
    NameTooLong(String),
}

/// One secret the deploy creates when it is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSecret {
    /// Its engine name (`<stack>_<key>_<version>` in most recipes).
    pub name: String,
    /// How it is generated.
    pub spec: SecretSpec,
}

impl PlannedSecret {
    /// Returns the `length=` the recipe asks for, `None` without the modifier.
    pub fn length_modifier(&self) -> Option<usize> {
        self.spec.length_given.then_some(self.spec.length)
    }
}

/// The deploy plan of a checkout for one stack.
#[derive(Debug, Clone)]
pub struct DeployPlan {
    /// The stack it was resolved for.
    pub stack: String,
    /// The interpolated `coop-cloud.<stack>.version` label, when a service carries one.
    pub version: Option<String>,
    /// The compose files in deploy order, relative to the checkout.
    pub compose_files: Vec<String>,
    /// The convergence timeout and its source.
    pub timeout: DeployTimeout,
    /// The external secrets some service uses, sorted by key.
    pub secrets: Vec<PlannedSecret>,
    /// What canon does otherwise than abra without failing, one sentence each.
    pub notes: Vec<String>,
    /// What backupbot backs up, sorted by service (volumes by name).
    pub backup: Vec<ServiceBackup>,
    /// What the compose files ask of the host ([`policy`]), allowed or not.
    pub policy: Vec<Finding>,
    /// The HTTP routes the traefik labels declare ([`routes`]), by service then router.
    pub routes: Vec<Route>,
}

/// Returns the variables a stack's deploy sets over the recipe's env: `STACK_NAME`, and the app's
/// `DOMAIN`, as the app's `.env` written by `abra app new` holds them; `extra` first, so these
/// two always win.
pub fn app_env(
    stack: &str,
    domain: &str,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env = extra.clone();
    env.insert("STACK_NAME".into(), stack.to_string());
    env.insert("DOMAIN".into(), domain.to_string());
    env
}

/// Returns the deploy timeout of the checkout `dir` for `stack` (with `domain`, see [`app_env`])
/// by the one rule of [`timeout::resolve`], without the rest of the plan: what the abra runner
/// and the custom stage wait for. With an enrollment timeout the checkout is not read.
pub fn deploy_timeout(
    dir: &Path,
    stack: &str,
    domain: &str,
    enrollment_timeout: Option<u64>,
) -> Result<DeployTimeout, PlanError> {
    if enrollment_timeout.is_some() {
        return Ok(timeout::resolve(enrollment_timeout, None)?);
    }
    let files = RecipeFiles::load(dir, stack, &app_env(stack, domain, &BTreeMap::new()))?;
    Ok(timeout::of_compose(
        &files.facts,
        stack,
        enrollment_timeout,
    )?)
}

/// Returns each secret a service uses and each config whose engine name Docker refuses, as
/// `secret <name> (<length> characters)`.
fn too_long_names(facts: &super::compose::Compose) -> Vec<String> {
    let used = |key: &str| {
        facts
            .services
            .iter()
            .any(|s| s.secrets.iter().any(|u| u.source == key))
    };
    facts
        .secrets
        .iter()
        .filter(|s| used(&s.key))
        .map(|s| ("secret", &s.name))
        .chain(facts.configs.iter().map(|c| ("config", &c.name)))
        .filter(|(_, name)| name.len() > super::names::DOCKER_MAX_OBJECT_NAME)
        .map(|(kind, name)| format!("{kind} {name} ({} characters)", name.len()))
        .collect()
}

impl DeployPlan {
    /// Reads the checkout `dir` for `stack` (with `overrides`, see [`app_env`]) and resolves its
    /// plan; `enrollment_timeout` is the enrollment's `deploy_timeout` in seconds.
    pub fn load(
        dir: &Path,
        stack: &str,
        overrides: &BTreeMap<String, String>,
        enrollment_timeout: Option<u64>,
    ) -> Result<(RecipeFiles, DeployPlan), PlanError> {
        let files = RecipeFiles::load(dir, stack, overrides)?;
        let plan = DeployPlan::resolve(&files, stack, enrollment_timeout)?;
        Ok((files, plan))
    }

    /// Resolves the plan of `files`, read for `stack`.
    pub fn resolve(
        files: &RecipeFiles,
        stack: &str,
        enrollment_timeout: Option<u64>,
    ) -> Result<DeployPlan, PlanError> {
        let version_key = files.facts.version_key();
        let versions = files.facts.version_labels();
        if versions.iter().any(|l| l.version != versions[0].version) {
            return Err(PlanError::VersionConflict(
                versions
                    .iter()
                    .map(|l| format!("service `{}` has {version_key}={}", l.service, l.version))
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
        let compose_files = files
            .compose_files
            .iter()
            .map(|p| {
                p.strip_prefix(&files.dir)
                    .unwrap_or(p)
                    .display()
                    .to_string()
            })
            .collect();
        let timeout = timeout::of_compose(&files.facts, stack, enrollment_timeout)?;
        let too_long = too_long_names(&files.facts);
        if !too_long.is_empty() {
            return Err(PlanError::NameTooLong(too_long.join(", ")));
        }
        let mut secrets = Vec::new();
        let mut notes = Vec::new();
        let used = |key: &str| {
            files
                .facts
                .services
                .iter()
                .any(|svc| svc.secrets.iter().any(|u| u.source == key))
        };
        for s in files.facts.secrets.iter().filter(|s| s.external) {
            if !used(&s.key) {
                // `docker stack deploy` ignores a secret no service uses, and abra skips it.
                notes.push(format!(
                    "secret `{}` is declared but no service uses it; it is not created",
                    s.key
                ));
                continue;
            }
            let spec = secrets::spec(
                &s.key,
                &s.name,
                s.name_as_written.as_deref(),
                &files.env_modifiers,
            )?;
            secrets.push(PlannedSecret {
                name: s.name.clone(),
                spec,
            });
        }
        secrets.sort_by(|a, b| a.spec.key.cmp(&b.spec.key));
        notes.sort();
        Ok(DeployPlan {
            stack: stack.to_string(),
            version: versions.first().map(|l| l.version.clone()),
            compose_files,
            timeout,
            secrets,
            notes,
            backup: backupbot::backups(&files.facts)?,
            policy: {
                let mut findings = policy::check(&files.facts);
                findings.extend(policy::linked_out(&files.facts, &files.dir));
                findings
            },
            routes: routes::routes(&files.facts)?,
        })
    }

    /// Takes the values the enrollment supplies (`secrets: {<key>: <file>}`) for the secrets of
    /// this plan; a supplied key the plan has no secret for is a note.
    pub fn supply(mut self, supplied: &BTreeMap<String, PathBuf>) -> Self {
        for (key, path) in supplied {
            match self.secrets.iter_mut().find(|s| &s.spec.key == key) {
                Some(s) => s.spec.supply(path),
                None => self.notes.push(format!(
                    "the enrollment supplies secret `{key}`, which no service of this checkout uses"
                )),
            }
        }
        self
    }

    /// Applies the enrollment's `host_access:` to the plan's policy findings: an error naming
    /// every finding it does not allow, else the plan with each finding marked allowed.
    pub fn permit(mut self, host_access: &[String]) -> Result<Self, PlanError> {
        policy::permit(&mut self.policy, host_access);
        let refused: Vec<String> = self
            .policy
            .iter()
            .filter(|f| !f.allowed)
            .map(Finding::to_string)
            .collect();
        if refused.is_empty() {
            Ok(self)
        } else {
            Err(PlanError::Policy(refused.join("; ")))
        }
    }

    /// Returns every note of the plan: its own, its secrets', then each host access the
    /// enrollment allowed.
    pub fn all_notes(&self) -> Vec<String> {
        let mut all = self.notes.clone();
        all.extend(
            self.secrets
                .iter()
                .flat_map(|s| s.spec.notes.iter().cloned()),
        );
        all.extend(
            self.policy
                .iter()
                .filter(|f| f.allowed)
                .map(|f| format!("host access allowed by the enrollment: {f}")),
        );
        all
    }

    /// Returns true when some service turns its backup on.
    pub fn declares_backups(&self) -> bool {
        !self.backup.is_empty()
    }

    /// Returns the plan as the JSON `canon-plugin recipe plan --json` prints.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        json!({
            "version": self.version,
            "compose_files": self.compose_files,
            "timeout": {
                "seconds": self.timeout.duration.as_secs(),
                "source": self.timeout.source.as_str(),
            },
            "secrets": self.secrets.iter().map(|s| json!({
                "key": s.spec.key,
                "name": s.name,
                "version": s.spec.version,
                "length": s.length_modifier(),
                "charset": s.spec.charset.as_str(),
                "source": s.spec.source.as_str(),
            })).collect::<Vec<_>>(),
            "notes": self.all_notes(),
            "policy": self.policy.iter().map(|f| json!({
                "service": f.service,
                "kind": f.kind.as_str(),
                "detail": f.detail,
                "allowed": f.allowed,
            })).collect::<Vec<_>>(),
            "backup": self.backup.iter().map(|b| json!({
                "service": b.service,
                "volumes": b.volumes.iter().map(|v| json!({
                    "name": v.name,
                    "path": v.path,
                })).collect::<Vec<_>>(),
                "pre_hook": b.pre_hook,
                "post_hook": b.post_hook,
                "restore_pre_hook": b.restore_pre_hook,
                "restore_post_hook": b.restore_post_hook,
            })).collect::<Vec<_>>(),
            "routes": self.routes.iter().map(|r| json!({
                "service": r.service,
                "router": r.router,
                "hosts": r.hosts,
                "path_prefix": r.path_prefix,
                "port": r.port,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The plan as text, one fact a line.
impl fmt::Display for DeployPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "stack:          {}", self.stack)?;
        writeln!(
            f,
            "version:        {}",
            self.version.as_deref().unwrap_or("(no version label)")
        )?;
        writeln!(f, "compose files:  {}", self.compose_files.join(" "))?;
        writeln!(
            f,
            "timeout:        {}s (source: {})",
            self.timeout.duration.as_secs(),
            self.timeout.source
        )?;
        if self.secrets.is_empty() {
            writeln!(f, "secrets:        none")?;
        }
        for (i, s) in self.secrets.iter().enumerate() {
            let length = match s.length_modifier() {
                Some(n) => format!("length={n}"),
                None => format!("{} characters (no length= given)", s.spec.length),
            };
            let made = match &s.spec.source {
                secrets::Source::Generated => format!("charset {}", s.spec.charset.as_str()),
                secrets::Source::TestValue => "a random test value (generate=false)".into(),
                secrets::Source::File(p) => format!("from {}", p.display()),
            };
            writeln!(
                f,
                "{}{} -> {} ({}, {length}, {made})",
                if i == 0 {
                    "secrets:        "
                } else {
                    "                "
                },
                s.spec.key,
                s.name,
                s.spec.version
            )?;
        }
        for (i, note) in self.all_notes().iter().enumerate() {
            let lead = if i == 0 {
                "notes:          "
            } else {
                "                "
            };
            writeln!(f, "{lead}{note}")?;
        }
        if self.backup.is_empty() {
            writeln!(f, "backup:         none (no backupbot.backup=true label)")?;
        }
        for (i, b) in self.backup.iter().enumerate() {
            let volumes: Vec<String> = b
                .volumes
                .iter()
                .map(|v| match &v.path {
                    Some(p) => format!("{} (path {p})", v.name),
                    None => v.name.clone(),
                })
                .collect();
            write!(
                f,
                "{}{}: volumes {}",
                if i == 0 {
                    "backup:         "
                } else {
                    "                "
                },
                b.service,
                if volumes.is_empty() {
                    "none".to_string()
                } else {
                    volumes.join(", ")
                }
            )?;
            for hook in [
                backupbot::Hook::BackupPre,
                backupbot::Hook::BackupPost,
                backupbot::Hook::RestorePre,
                backupbot::Hook::RestorePost,
            ] {
                if let Some(cmd) = b.hook(hook) {
                    write!(f, "; {} `{cmd}`", hook.label())?;
                }
            }
            writeln!(f)?;
        }
        if self.routes.is_empty() {
            writeln!(
                f,
                "routes:         none (no traefik router on a traefik.enable=true service)"
            )?;
        }
        for (i, r) in self.routes.iter().enumerate() {
            writeln!(
                f,
                "{}{} router {}: {}{} -> port {}",
                if i == 0 {
                    "routes:         "
                } else {
                    "                "
                },
                r.service,
                r.router,
                r.hosts.join(", "),
                r.path_prefix.as_deref().unwrap_or(""),
                r.port
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::timeout::TimeoutSource;
    use std::time::Duration;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures")
            .join(name)
    }

    fn load(dir: &Path, stack: &str, timeout: Option<u64>) -> Result<DeployPlan, PlanError> {
        let env = app_env(stack, &format!("{stack}.canon.localhost"), &BTreeMap::new());
        DeployPlan::load(dir, stack, &env, timeout).map(|(_, p)| p)
    }

    #[test]
    fn the_bonfire_shaped_fixture_plans_its_files_timeout_secrets_and_backup() {
        let plan = load(&fixture("recipe-multifile"), "plan", None).unwrap();
        assert_eq!(plan.version.as_deref(), Some("1.0.0+0.1.0"));
        assert_eq!(
            plan.compose_files,
            vec!["compose.yml", "compose.postgres.yml"]
        );
        assert_eq!(plan.timeout.duration, Duration::from_secs(240));
        assert_eq!(plan.timeout.source, TimeoutSource::Label);
        let secrets: Vec<(&str, &str, Option<usize>)> = plan
            .secrets
            .iter()
            .map(|s| (s.spec.key.as_str(), s.name.as_str(), s.length_modifier()))
            .collect();
        assert_eq!(
            secrets,
            vec![
                ("app_key", "plan_app_key_v1", Some(128)),
                ("db_password", "plan_db_password_v1", None)
            ]
        );
        assert_eq!(plan.backup.len(), 1);
        assert_eq!(plan.backup[0].service, "db");
        let text = plan.to_string();
        assert!(
            text.contains("compose files:  compose.yml compose.postgres.yml"),
            "{text}"
        );
        assert!(
            text.contains("backupbot.backup.pre-hook `/pg_backup.sh backup`"),
            "{text}"
        );
    }

    #[test]
    fn the_enrollment_timeout_wins_over_the_label() {
        let plan = load(&fixture("recipe-multifile"), "plan", Some(90)).unwrap();
        assert_eq!(plan.timeout.duration, Duration::from_secs(90));
        assert_eq!(plan.timeout.source, TimeoutSource::Enrollment);
        assert_eq!(plan.to_json()["timeout"]["source"], "enrollment");
    }

    #[test]
    fn services_that_label_different_versions_have_no_plan() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env.sample"), "TYPE=app\n").unwrap();
        std::fs::write(
            dir.path().join("compose.yml"),
            "services:\n  app:\n    deploy: {labels: [\"coop-cloud.${STACK_NAME}.version=1.0.0+1\"]}\n  db:\n    deploy: {labels: [\"coop-cloud.${STACK_NAME}.version=1.0.1+1\"]}\n",
        )
        .unwrap();
        let err = load(dir.path(), "s", None).unwrap_err().to_string();
        assert!(
            err.contains("service `db` has coop-cloud.s.version=1.0.1+1"),
            "{err}"
        );
    }

    #[test]
    fn only_secrets_some_service_uses_are_planned() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env.sample"), "SECRET_A_VERSION=v1\n").unwrap();
        std::fs::write(
            dir.path().join("compose.yml"),
            "services:\n  app:\n    secrets: [a]\nsecrets:\n  a: {external: true, name: \"${STACK_NAME}_a_${SECRET_A_VERSION}\"}\n  unused: {external: true, name: \"${STACK_NAME}_unused_\"}\n",
        )
        .unwrap();
        let plan = load(dir.path(), "s", None).unwrap();
        let keys: Vec<&str> = plan.secrets.iter().map(|s| s.spec.key.as_str()).collect();
        assert_eq!(
            keys,
            vec!["a"],
            "the unused one, versionless too, is not checked"
        );
        assert_eq!(
            plan.notes,
            vec!["secret `unused` is declared but no service uses it; it is not created"]
        );
        assert_eq!(plan.to_json()["notes"][0], plan.notes[0].as_str());
    }

    #[test]
    fn a_generate_false_secret_takes_a_test_value_unless_the_enrollment_supplies_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env.sample"),
            "SECRET_ORCID_VERSION=v1 # generate=false\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("compose.yml"),
            "services:\n  app:\n    secrets: [orcid]\nsecrets:\n  orcid: {external: true, name: \"${STACK_NAME}_orcid_${SECRET_ORCID_VERSION}\"}\n",
        )
        .unwrap();
        let plan = load(dir.path(), "s", None).unwrap();
        assert_eq!(plan.secrets[0].spec.source, secrets::Source::TestValue);
        assert!(plan
            .to_string()
            .contains("a random test value (generate=false)"));
        let notes = plan.all_notes();
        assert!(
            notes.len() == 1 && notes[0].contains("random test value"),
            "{notes:?}"
        );
        let file = dir.path().join("orcid-value");
        let supplied = BTreeMap::from([
            ("orcid".to_string(), file.clone()),
            ("other".to_string(), file.clone()),
        ]);
        let plan = plan.supply(&supplied);
        assert_eq!(plan.secrets[0].spec.source, secrets::Source::File(file));
        assert_eq!(plan.to_json()["secrets"][0]["source"], "file");
        assert_eq!(
            plan.all_notes(),
            vec!["the enrollment supplies secret `other`, which no service of this checkout uses"]
        );
    }

    #[test]
    fn a_secret_or_config_name_over_64_characters_is_red_with_its_length() {
        // The traefik recipe's OVH secrets, under a long stack: the name crosses Docker's limit.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("compose.yml"),
            "services:\n  app:\n    image: traefik:2.11\n    secrets: [ovh_application_secret]\nsecrets:\n  ovh_application_secret:\n    external: true\n    name: ${STACK_NAME}_ovh_application_secret_${SECRET_OVH_APPLICATION_SECRET_VERSION}\n  never_used_secret_with_a_key_name_this_long:\n    file: ./unused\nconfigs:\n  traefik_yml:\n    name: ${STACK_NAME}_traefik_yml_${TRAEFIK_YML_VERSION}\n    file: traefik.yml.tmpl\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(".env.sample"),
            "SECRET_OVH_APPLICATION_SECRET_VERSION=v1\nTRAEFIK_YML_VERSION=v1\n",
        )
        .unwrap();
        let stack = "cold-traefik-with-a-longer-name-1a2b3c-4";
        let err = load(dir.path(), stack, None).unwrap_err().to_string();
        let name = format!("{stack}_ovh_application_secret_v1");
        assert_eq!(
            err,
            format!(
                "Docker refuses names over 64 characters: secret {name} ({} characters)",
                name.len()
            )
        );
        assert!(
            !err.contains("never_used"),
            "an unused secret is never created: {err}"
        );
        assert!(!err.contains("traefik_yml"), "the config fits: {err}");
        let plan = load(dir.path(), "traefik_example_com", None).unwrap();
        assert_eq!(plan.secrets.len(), 1);
        let long_config = "c".repeat(50);
        let err = load(dir.path(), &long_config, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "config {long_config}_traefik_yml_v1 (65 characters)"
            )),
            "{err}"
        );
    }

    #[test]
    fn the_stack_name_is_the_one_asked_for() {
        let plan = load(&fixture("recipe"), "other", None).unwrap();
        assert_eq!(plan.secrets[0].name, "other_app_key_v1");
        assert_eq!(plan.timeout.source, TimeoutSource::Default);
        assert_eq!(plan.backup[0].volumes[0].name, "data");
    }

    #[test]
    fn abra_and_the_custom_stage_wait_by_the_same_rule_as_the_plan() {
        let dir = fixture("recipe-multifile");
        let t = deploy_timeout(&dir, "plan", "plan.canon.localhost", None).unwrap();
        assert_eq!(t, load(&dir, "plan", None).unwrap().timeout);
        assert_eq!(t.duration, Duration::from_secs(240));
        assert_eq!(t.source, TimeoutSource::Label);
        let t = deploy_timeout(Path::new("/nonexistent"), "plan", "d", Some(90)).unwrap();
        assert_eq!(t.duration, Duration::from_secs(90));
        assert_eq!(t.source, TimeoutSource::Enrollment);
        let t = deploy_timeout(&fixture("recipe"), "plan", "d", None).unwrap();
        assert_eq!(t.duration, crate::recipe::timeout::DEFAULT_DEPLOY_TIMEOUT);
        assert!(deploy_timeout(Path::new("/nonexistent"), "plan", "d", None).is_err());
    }
}
