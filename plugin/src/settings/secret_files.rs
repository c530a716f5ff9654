//! The secret settings and their file forms: every secret of the table (`upstream_token`,
//! `mirror_token`, `ssh_key`, `drone_token`, `listener_token`) comes from its value, or from the
//! file its `*_file` setting names, so a command line (and with it process listings and shell
//! history) holds only a path.
//!
//! Separate from the rest of validation because it is the one place settings read a file, and the
//! one place secret content passes through validation: every problem names the setting and the
//! path, never the content (the reading itself is canon-shared's
//! [`canon_shared::settings::secret_or_file`]). A secret read from a file is a [`Secret`] exactly
//! like the value form. The `*_file` settings themselves are paths, not secrets: they are not in
//! [`super::Settings::secret_env_vars`].

use std::collections::BTreeMap;
use std::path::Path;

use canon_shared::secret::Secret;
use canon_shared::settings::{secret_or_file, SecretContent};

use super::table::KNOWN_SETTINGS;
use super::{Problems, RawSettings};

/// The secrets that were given, by setting name.
#[derive(Debug, Default)]
pub(super) struct Secrets(BTreeMap<&'static str, Secret>);

impl Secrets {
    /// Takes each secret of the table from its value or reads it from its file (relative paths
    /// under `workspace`), recording a problem for a secret given both ways and for a file that
    /// cannot be used.
    pub(super) fn resolve(raw: &RawSettings, workspace: &Path, problems: &mut Problems) -> Secrets {
        let mut found = BTreeMap::new();
        for s in KNOWN_SETTINGS.iter().filter(|s| s.secret) {
            let file = format!("{}_file", s.name);
            // A private key is read as is; a token loses the whitespace an editor adds.
            let content = if s.name.ends_with("_key") {
                SecretContent::Key
            } else {
                SecretContent::Token
            };
            let secret = secret_or_file(
                s.name,
                raw.get(s.name),
                raw.get(&file),
                content,
                workspace,
                problems,
            );
            if let Some(secret) = secret {
                found.insert(s.name, secret);
            }
        }
        Secrets(found)
    }

    /// Takes the secret `name` out, `None` when it was not given.
    pub(super) fn take(&mut self, name: &str) -> Option<Secret> {
        self.0.remove(name)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::settings::{Environment, Settings, SettingsError};
    use canon_shared::settings::MAX_SECRET_FILE_BYTES;

    /// Settings as `PLUGIN_*` pairs.
    type Pairs<'a> = Vec<(&'a str, String)>;

    const TOKEN: &str = "s3cr3t-t0ken-value";
    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\n  b3BlbnNzaC1rZXk= \n-----END OPENSSH PRIVATE KEY-----\n";

    /// A sweep's settings (it reads every secret) with `pairs` added, in `workspace`.
    fn parse(workspace: &Path, pairs: &[(&str, String)]) -> Result<Settings, SettingsError> {
        let mut all = vec![
            ("DRONE_BUILD_EVENT".to_string(), "cron".to_string()),
            ("DRONE_WORKSPACE".into(), workspace.display().to_string()),
            ("PLUGIN_CONFIG".into(), "e.yml".into()),
        ];
        all.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())));
        Settings::parse(
            &Environment::from_pairs(all).unwrap(),
            None,
            None,
            Path::new("/nonexistent-cwd"),
        )
    }

    /// Returns the secret settings as (name, exposed value) for comparison.
    fn exposed(s: &Settings) -> [(&'static str, Option<String>); 4] {
        let e = |x: &Option<Secret>| x.as_ref().map(|s| s.expose().to_string());
        [
            ("upstream_token", e(&s.upstream_token)),
            ("mirror_token", e(&s.mirror_token)),
            ("ssh_key", e(&s.ssh_key)),
            ("drone_token", e(&s.drone_token)),
        ]
    }

    fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn each_secret_comes_from_its_value_or_its_file() {
        let ws = tempfile::tempdir().unwrap();
        let dir = ws.path();
        let token_file = write(dir, "secrets/token", &format!("  {TOKEN}\r\n\n"));
        write(dir, "secrets/key", KEY);
        let abs = token_file.display().to_string();
        // (setting, env pairs, the secret it must yield)
        let cases: Vec<(&str, Pairs, Option<&str>)> = vec![
            ("upstream_token", vec![], None),
            (
                "upstream_token",
                vec![("PLUGIN_UPSTREAM_TOKEN", TOKEN.into())],
                Some(TOKEN),
            ),
            (
                "upstream_token",
                vec![("PLUGIN_UPSTREAM_TOKEN_FILE", "secrets/token".into())],
                Some(TOKEN),
            ),
            (
                "upstream_token",
                vec![("PLUGIN_UPSTREAM_TOKEN_FILE", abs.clone())],
                Some(TOKEN),
            ),
            (
                "mirror_token",
                vec![("PLUGIN_MIRROR_TOKEN_FILE", "./secrets/token".into())],
                Some(TOKEN),
            ),
            (
                "drone_token",
                vec![("PLUGIN_DRONE_TOKEN_FILE", "secrets/token".into())],
                Some(TOKEN),
            ),
            // The key is read as is: its inner spaces and final newline stay.
            (
                "ssh_key",
                vec![("PLUGIN_SSH_KEY_FILE", "secrets/key".into())],
                Some(KEY),
            ),
            ("ssh_key", vec![("PLUGIN_SSH_KEY", KEY.into())], Some(KEY)),
            // Drone passes a missing value as "": unset, in both forms.
            (
                "upstream_token",
                vec![
                    ("PLUGIN_UPSTREAM_TOKEN", String::new()),
                    ("PLUGIN_UPSTREAM_TOKEN_FILE", String::new()),
                ],
                None,
            ),
            (
                "upstream_token",
                vec![
                    ("PLUGIN_UPSTREAM_TOKEN", String::new()),
                    ("PLUGIN_UPSTREAM_TOKEN_FILE", "secrets/token".into()),
                ],
                Some(TOKEN),
            ),
        ];
        for (name, pairs, want) in cases {
            let s = parse(dir, &pairs).unwrap_or_else(|e| panic!("{pairs:?}: {e}"));
            for (setting, got) in exposed(&s) {
                let want = if setting == name { want } else { None };
                assert_eq!(got.as_deref(), want, "{setting} from {pairs:?}");
            }
        }
    }

    #[test]
    fn a_file_flag_wins_like_any_flag_and_relative_paths_are_under_the_workspace() {
        let ws = tempfile::tempdir().unwrap();
        write(ws.path(), "from-flag", "flag-token\n");
        write(ws.path(), "from-env", "env-token\n");
        let env = Environment::from_pairs([
            ("DRONE_BUILD_EVENT", "cron"),
            ("PLUGIN_CONFIG", "e.yml"),
            ("PLUGIN_UPSTREAM_TOKEN_FILE", "from-env"),
        ])
        .unwrap();
        let cli = RawSettings::from_values([("upstream_token_file", "from-flag")]);
        // No DRONE_WORKSPACE: the working directory is the workspace.
        let s = Settings::parse(&env, Some(cli), None, ws.path()).unwrap();
        assert_eq!(s.upstream_token.unwrap().expose(), "flag-token");
    }

    #[test]
    fn a_secret_given_both_ways_or_an_unusable_file_is_a_problem_naming_setting_and_path() {
        let ws = tempfile::tempdir().unwrap();
        let dir = ws.path();
        write(dir, "token", TOKEN);
        write(dir, "empty", "");
        write(dir, "blank", " \n\t\n");
        std::fs::write(
            dir.join("binary"),
            [TOKEN.as_bytes(), &[0xff, 0xfe]].concat(),
        )
        .unwrap();
        write(
            dir,
            "huge",
            &TOKEN.repeat(MAX_SECRET_FILE_BYTES / TOKEN.len() + 1),
        );
        std::fs::create_dir(dir.join("a-dir")).unwrap();
        let at = |f: &str| dir.join(f).display().to_string();
        // (env pairs, every text the one problem must hold)
        let cases: Vec<(Pairs, Vec<String>)> = vec![
            (
                vec![
                    ("PLUGIN_UPSTREAM_TOKEN", TOKEN.into()),
                    ("PLUGIN_UPSTREAM_TOKEN_FILE", "token".into()),
                ],
                vec!["`upstream_token` and `upstream_token_file` are both set".into()],
            ),
            (
                vec![
                    ("PLUGIN_SSH_KEY", KEY.into()),
                    ("PLUGIN_SSH_KEY_FILE", "token".into()),
                ],
                vec!["`ssh_key` and `ssh_key_file` are both set".into()],
            ),
            (
                vec![("PLUGIN_MIRROR_TOKEN_FILE", "missing".into())],
                vec![
                    format!("`mirror_token_file`: cannot read {}: ", at("missing")),
                    "(os error 2)".into(),
                ],
            ),
            (
                vec![("PLUGIN_DRONE_TOKEN_FILE", "a-dir".into())],
                vec![
                    format!("`drone_token_file`: cannot read {}: ", at("a-dir")),
                    "not a regular file".into(),
                ],
            ),
            (
                vec![("PLUGIN_UPSTREAM_TOKEN_FILE", "empty".into())],
                vec![format!(
                    "`upstream_token_file`: {} is empty; it must hold the secret",
                    at("empty")
                )],
            ),
            (
                vec![("PLUGIN_SSH_KEY_FILE", "blank".into())],
                vec![format!("`ssh_key_file`: {} is empty", at("blank"))],
            ),
            (
                vec![("PLUGIN_UPSTREAM_TOKEN_FILE", "binary".into())],
                vec![format!(
                    "`upstream_token_file`: {} is not UTF-8 text",
                    at("binary")
                )],
            ),
            (
                vec![("PLUGIN_MIRROR_TOKEN_FILE", "huge".into())],
                vec![format!(
                    "`mirror_token_file`: {} is larger than 64 KiB",
                    at("huge")
                )],
            ),
        ];
        for (pairs, wants) in cases {
            let err = parse(dir, &pairs).unwrap_err();
            let text = err.to_string();
            assert_eq!(err.problems.len(), 1, "{pairs:?}: {text}");
            for want in wants {
                assert!(text.contains(&want), "{pairs:?}: want {want:?} in {text}");
            }
            assert!(!text.contains(TOKEN), "{pairs:?} shows the secret: {text}");
            assert!(!text.contains("b3Blbn"), "{pairs:?} shows the key: {text}");
        }
    }

    #[test]
    fn secret_file_problems_are_listed_with_every_other_problem() {
        let ws = tempfile::tempdir().unwrap();
        write(ws.path(), "token", TOKEN);
        let err = parse(
            ws.path(),
            &[
                ("PLUGIN_JOBS", "0".into()),
                ("PLUGIN_UPSTREAM_TOKEN_FILE", "missing".into()),
                ("PLUGIN_DRONE_TOKEN", TOKEN.into()),
                ("PLUGIN_DRONE_TOKEN_FILE", "token".into()),
            ],
        )
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems.len(), 3, "{text}");
        for want in ["`jobs`", "`upstream_token_file`", "`drone_token_file`"] {
            assert!(text.contains(want), "missing {want}: {text}");
        }
        assert!(!text.contains(TOKEN), "{text}");
    }

    #[test]
    fn a_secret_read_from_a_file_never_shows_in_debug() {
        let ws = tempfile::tempdir().unwrap();
        write(ws.path(), "token", TOKEN);
        write(ws.path(), "key", KEY);
        let pairs: Vec<(&str, String)> = [
            "PLUGIN_UPSTREAM_TOKEN_FILE",
            "PLUGIN_MIRROR_TOKEN_FILE",
            "PLUGIN_DRONE_TOKEN_FILE",
        ]
        .into_iter()
        .map(|k| (k, "token".to_string()))
        .chain([("PLUGIN_SSH_KEY_FILE", "key".to_string())])
        .collect();
        let s = parse(ws.path(), &pairs).unwrap();
        assert!(exposed(&s).iter().all(|(_, v)| v.is_some()));
        let shown = format!("{s:?} {s:#?}");
        assert!(
            !shown.contains(TOKEN) && !shown.contains("b3Blbn"),
            "{shown}"
        );
        assert!(shown.contains("upstream_token: Some(***)"), "{shown}");
        let raw = Environment::from_pairs(pairs.clone()).unwrap().plugin;
        assert!(!format!("{raw:?}").contains(TOKEN));
    }

    #[test]
    fn file_settings_are_paths_not_secrets() {
        let names: Vec<_> = Settings::secret_env_vars().collect();
        for secret in ["upstream_token", "mirror_token", "ssh_key", "drone_token"] {
            let file = crate::settings::setting_doc(&format!("{secret}_file")).unwrap();
            assert!(!file.secret, "{}", file.name);
            assert!(!names.contains(&file.env[0]), "{}", file.env[0]);
            assert!(crate::settings::setting_doc(secret).unwrap().secret);
        }
    }
}
