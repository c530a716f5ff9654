//! What backupbot backs up of a recipe, read from the services' deploy labels after
//! interpolation, in either compose form (`- "backupbot.backup=true"` or
//! `backupbot.backup: "true"`), following Co-op Cloud's backup label specification:
//!
//! - `backupbot.backup` turns a service's backup on (`true`) or off (`false`, also when an
//!   interpolated `${ENABLE_BACKUPS:-true}` says so). Any other value is refused.
//! - Every named volume the service mounts is backed up, unless
//!   `backupbot.backup.volumes.<volume>=false` leaves it out.
//! - `backupbot.backup.volumes.<volume>.path` narrows a volume to paths relative to its root,
//!   separated by commas (bonfire's db: `backup.sql`, the dump its pre-hook writes).
//! - `backupbot.backup.pre-hook` / `post-hook` run in the service's running container around the
//!   snapshot, `backupbot.restore.pre-hook` / `post-hook` around the restore (bonfire's db:
//!   `/pg_backup.sh backup` before the backup, `/pg_backup.sh restore` after the restore).
//!
//! Other `backupbot.*` keys (the first backupbot's `backupbot.backup.path`, say) mean nothing to
//! backupbot's current labels and are left alone. A volume label that names a volume the service
//! does not mount is refused: it would leave out or narrow nothing, which is never what the
//! recipe meant.
//!
//! Pure: the docker runner's backup and restore stages and `canon-plugin recipe plan` read the
//! same [`ServiceBackup`]s through [`super::plan`].

use std::collections::BTreeMap;

use super::compose::{Compose, Service};

/// The label that turns a service's backup on.
pub const BACKUP_LABEL: &str = "backupbot.backup";
const VOLUMES_PREFIX: &str = "backupbot.backup.volumes.";
const PRE_HOOK: &str = "backupbot.backup.pre-hook";
const POST_HOOK: &str = "backupbot.backup.post-hook";
const RESTORE_PRE_HOOK: &str = "backupbot.restore.pre-hook";
const RESTORE_POST_HOOK: &str = "backupbot.restore.post-hook";

/// A backupbot label canon cannot follow. `Display` is the install's red reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupLabelError {
    /// A switch that is neither `true` nor `false`.
    #[error("service `{service}`: the label {key}={value:?} is neither true nor false")]
    NotABool {
        service: String,
        key: String,
        value: String,
    },
    /// A volume label for a volume the service does not mount.
    #[error("service `{service}`: the label {key} names the volume `{volume}`, which the service does not mount (it mounts: {mounted})")]
    UnknownVolume {
        service: String,
        key: String,
        volume: String,
        mounted: String,
    },
    /// A path that is not relative to the volume root, or leaves it.
    #[error("service `{service}`: the label {key}={value:?} must name paths relative to the volume root, inside it")]
    BadPath {
        service: String,
        key: String,
        value: String,
    },
}

/// One volume a service's backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupVolume {
    /// Its compose name (the engine's is `<stack>_<name>`).
    pub name: String,
    /// The `backupbot.backup.volumes.<name>.path` label as written, when it narrows the volume.
    pub path: Option<String>,
}

impl BackupVolume {
    /// Returns the paths the backup holds, relative to the volume root; empty for the whole
    /// volume.
    pub fn paths(&self) -> Vec<&str> {
        self.path.as_deref().map(split_paths).unwrap_or_default()
    }
}

/// What backupbot does for one backed-up service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceBackup {
    /// The compose service name.
    pub service: String,
    /// The volumes it backs up, sorted by name.
    pub volumes: Vec<BackupVolume>,
    /// Run before the snapshot, in the service's running container.
    pub pre_hook: Option<String>,
    /// Run after the snapshot.
    pub post_hook: Option<String>,
    /// Run before the restore.
    pub restore_pre_hook: Option<String>,
    /// Run after the restore.
    pub restore_post_hook: Option<String>,
}

/// Which of a service's four hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `backupbot.backup.pre-hook`.
    BackupPre,
    /// `backupbot.backup.post-hook`.
    BackupPost,
    /// `backupbot.restore.pre-hook`.
    RestorePre,
    /// `backupbot.restore.post-hook`.
    RestorePost,
}

impl Hook {
    /// Returns the hook's label key.
    pub fn label(self) -> &'static str {
        match self {
            Hook::BackupPre => PRE_HOOK,
            Hook::BackupPost => POST_HOOK,
            Hook::RestorePre => RESTORE_PRE_HOOK,
            Hook::RestorePost => RESTORE_POST_HOOK,
        }
    }
}

impl ServiceBackup {
    /// Returns the command of `hook`, when the service sets one.
    pub fn hook(&self, hook: Hook) -> Option<&str> {
        match hook {
            Hook::BackupPre => self.pre_hook.as_deref(),
            Hook::BackupPost => self.post_hook.as_deref(),
            Hook::RestorePre => self.restore_pre_hook.as_deref(),
            Hook::RestorePost => self.restore_post_hook.as_deref(),
        }
    }
}

fn split_paths(text: &str) -> Vec<&str> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// Returns the value of a switch label: `true` or `false`, in any case.
fn switch(service: &str, key: &str, value: &str) -> Result<bool, BackupLabelError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(BackupLabelError::NotABool {
            service: service.to_string(),
            key: key.to_string(),
            value: value.to_string(),
        }),
    }
}

fn hook(labels: &BTreeMap<String, String>, key: &str) -> Option<String> {
    labels
        .get(key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Returns what backupbot backs up of `service`, or `None` when its backup is off.
pub fn service_backup(service: &Service) -> Result<Option<ServiceBackup>, BackupLabelError> {
    let name = service.name.as_str();
    let labels = &service.deploy_labels;
    match labels.get(BACKUP_LABEL) {
        Some(v) if switch(name, BACKUP_LABEL, v)? => {}
        _ => return Ok(None),
    }
    let mut excluded = Vec::new();
    let mut paths: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, value) in labels {
        let Some(rest) = key.strip_prefix(VOLUMES_PREFIX) else {
            continue;
        };
        let (volume, is_path) = match rest.strip_suffix(".path") {
            Some(v) => (v, true),
            None => (rest, false),
        };
        if !service.volumes.iter().any(|v| v == volume) {
            return Err(BackupLabelError::UnknownVolume {
                service: name.to_string(),
                key: key.clone(),
                volume: volume.to_string(),
                mounted: if service.volumes.is_empty() {
                    "no named volume".to_string()
                } else {
                    service.volumes.join(", ")
                },
            });
        }
        if is_path {
            let bad = split_paths(value)
                .iter()
                .any(|p| p.starts_with('/') || p.split('/').any(|part| part == ".."));
            if bad || split_paths(value).is_empty() {
                return Err(BackupLabelError::BadPath {
                    service: name.to_string(),
                    key: key.clone(),
                    value: value.clone(),
                });
            }
            paths.insert(volume, value.as_str());
        } else if !switch(name, key, value)? {
            excluded.push(volume);
        }
    }
    let mut volumes: Vec<BackupVolume> = service
        .volumes
        .iter()
        .filter(|v| !excluded.contains(&v.as_str()))
        .map(|v| BackupVolume {
            name: v.clone(),
            path: paths.get(v.as_str()).map(|p| p.trim().to_string()),
        })
        .collect();
    volumes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(ServiceBackup {
        service: name.to_string(),
        volumes,
        pre_hook: hook(labels, PRE_HOOK),
        post_hook: hook(labels, POST_HOOK),
        restore_pre_hook: hook(labels, RESTORE_PRE_HOOK),
        restore_post_hook: hook(labels, RESTORE_POST_HOOK),
    }))
}

/// Returns what backupbot backs up of the recipe: one entry per backed-up service, sorted by
/// service name. Empty when no service turns its backup on.
pub fn backups(facts: &Compose) -> Result<Vec<ServiceBackup>, BackupLabelError> {
    let mut out = Vec::new();
    for s in &facts.services {
        if let Some(b) = service_backup(s)? {
            out.push(b);
        }
    }
    out.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn facts(text: &str, env: &[(&str, &str)]) -> Compose {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut f = Compose::default();
        f.merge(Path::new("compose.yml"), text, "s", &env).unwrap();
        f
    }

    /// bonfire's db labels, in map form.
    const BONFIRE_DB: &str = r#"
services:
  db:
    volumes: ["db-data:/var/lib/postgresql/data", {type: tmpfs, target: /dev/shm}]
    deploy:
      labels:
        backupbot.backup: ${ENABLE_BACKUPS:-true}
        backupbot.backup.pre-hook: "/pg_backup.sh backup"
        backupbot.backup.volumes.db-data.path: "backup.sql"
        backupbot.restore.post-hook: '/pg_backup.sh restore'
"#;

    #[test]
    fn bonfires_map_form_labels_back_up_the_dump_with_its_hooks() {
        let b = backups(&facts(BONFIRE_DB, &[])).unwrap();
        assert_eq!(
            b,
            vec![ServiceBackup {
                service: "db".into(),
                volumes: vec![BackupVolume {
                    name: "db-data".into(),
                    path: Some("backup.sql".into())
                }],
                pre_hook: Some("/pg_backup.sh backup".into()),
                post_hook: None,
                restore_pre_hook: None,
                restore_post_hook: Some("/pg_backup.sh restore".into()),
            }]
        );
        assert_eq!(b[0].volumes[0].paths(), vec!["backup.sql"]);
        assert_eq!(b[0].hook(Hook::RestorePost), Some("/pg_backup.sh restore"));
        assert_eq!(Hook::BackupPre.label(), "backupbot.backup.pre-hook");
    }

    #[test]
    fn an_interpolated_false_turns_the_backup_off() {
        for off in ["false", "FALSE", "False"] {
            let f = facts(BONFIRE_DB, &[("ENABLE_BACKUPS", off)]);
            assert_eq!(backups(&f).unwrap(), vec![], "{off}");
        }
        let f = facts(BONFIRE_DB, &[("ENABLE_BACKUPS", "True")]);
        assert_eq!(backups(&f).unwrap().len(), 1);
    }

    #[test]
    fn the_list_form_reads_like_the_map_form_and_all_volumes_are_the_default() {
        let text = r#"
services:
  app:
    volumes: ["data:/data", "uploads:/uploads", "cache:/cache", "./conf:/conf"]
    deploy:
      labels:
        - "backupbot.backup=true"
        - "backupbot.backup.volumes.cache=false"
        - "backupbot.backup.volumes.uploads=true"
        - "backupbot.backup.volumes.data.path=db/dump.sql, media"
        - "backupbot.backup.post-hook=rm -f /data/db/dump.sql"
        - "backupbot.backup.path=/data"
  web:
    volumes: ["static:/static"]
"#;
        let b = backups(&facts(text, &[])).unwrap();
        assert_eq!(b.len(), 1, "web has no backupbot.backup label");
        let names: Vec<(&str, Option<&str>)> = b[0]
            .volumes
            .iter()
            .map(|v| (v.name.as_str(), v.path.as_deref()))
            .collect();
        assert_eq!(
            names,
            vec![("data", Some("db/dump.sql, media")), ("uploads", None)]
        );
        assert_eq!(b[0].volumes[0].paths(), vec!["db/dump.sql", "media"]);
        assert!(b[0].volumes[1].paths().is_empty());
        assert_eq!(b[0].post_hook.as_deref(), Some("rm -f /data/db/dump.sql"));
        assert_eq!(b[0].pre_hook, None);
    }

    #[test]
    fn backups_are_sorted_by_service() {
        let text = r#"
services:
  web: {volumes: ["w:/w"], deploy: {labels: [backupbot.backup=true]}}
  app: {volumes: ["a:/a"], deploy: {labels: [backupbot.backup=true]}}
"#;
        let b = backups(&facts(text, &[])).unwrap();
        let s: Vec<&str> = b.iter().map(|b| b.service.as_str()).collect();
        assert_eq!(s, vec!["app", "web"]);
    }

    #[test]
    fn labels_canon_cannot_follow_are_refused_with_the_label_named() {
        let cases = [
            ("backupbot.backup=yes", "backupbot.backup=\"yes\""),
            (
                "backupbot.backup.volumes.data=off",
                "backupbot.backup.volumes.data=\"off\"",
            ),
            (
                "backupbot.backup.volumes.dat.path=x",
                "names the volume `dat`, which the service does not mount (it mounts: data)",
            ),
            (
                "backupbot.backup.volumes.data.path=/abs",
                "relative to the volume root",
            ),
            (
                "backupbot.backup.volumes.data.path=a/../../etc",
                "relative to the volume root",
            ),
            ("backupbot.backup.volumes.data.path= , ", "relative"),
        ];
        for (label, want) in cases {
            let text = format!(
                "services:\n  app:\n    volumes: [\"data:/data\"]\n    deploy:\n      labels:\n        - \"backupbot.backup=true\"\n        - \"{label}\"\n"
            );
            let err = backups(&facts(&text, &[])).unwrap_err().to_string();
            assert!(
                err.contains(want) && err.contains("service `app`"),
                "{label}: {err}"
            );
        }
    }

    #[test]
    fn a_service_with_its_backup_off_is_not_checked_further() {
        let text = "services:\n  app:\n    deploy:\n      labels: [backupbot.backup=false, backupbot.backup.volumes.nope=false]\n";
        assert_eq!(backups(&facts(text, &[])).unwrap(), vec![]);
    }
}
