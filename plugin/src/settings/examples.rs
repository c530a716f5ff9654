//! One example value per plugin setting (a setting of `run` or `sweep`) of
//! [`super::KNOWN_SETTINGS`], as a `.drone.yml` would give it:
//! the example column of the settings reference (`docs/reference/plugin-settings.md`).
//!
//! Separate from the table so an example can change without touching a setting's declaration;
//! a unit test holds the two lists to the same names, in the same order.

/// `(setting, example value)` for every setting, in the table's order. A secret's example names
/// the Drone secret it comes from, never a value.
pub const SETTING_EXAMPLES: &[(&str, &str)] = &[
    ("mode", "sweep"),
    ("config", "/etc/canon/enrollment.yml"),
    ("state_dir", "/var/lib/canon"),
    ("recipe", "${CANON_RECIPE}"),
    ("tag", "${CANON_TAG}"),
    ("ref", "refs/pull/4/head"),
    ("commit", "${CANON_COMMIT}"),
    ("init_state", "true"),
    ("quick", "true"),
    ("warm", "false"),
    ("runner", "docker"),
    ("command", "./harness/run.sh"),
    ("promote_command", "./harness/promote.sh"),
    ("env", "[SMTP_HOST=mail.test, LOG_LEVEL=debug]"),
    ("timeout", "90m"),
    ("state_repo", "https://git.example.org/canon/state.git"),
    ("lock_wait", "10m"),
    ("report", "reports/canon-report.json"),
    ("work_dir", "/var/tmp/canon"),
    ("keep_work_dir", "true"),
    ("upstream_token", "{from_secret: upstream_token}"),
    ("upstream_token_file", "/run/secrets/upstream-token"),
    ("mirror_token", "{from_secret: mirror_token}"),
    ("mirror_token_file", "/run/secrets/mirror-token"),
    ("ssh_key", "{from_secret: ssh_key}"),
    ("ssh_key_file", "/run/secrets/canon-ssh-key"),
    ("known_hosts", "/etc/canon/known_hosts"),
    ("mirror_forge", "https://git.example.org"),
    ("jobs", "2"),
    ("recipe_deadline", "2h"),
    ("dry_run", "true"),
    ("inline", "true"),
    ("drone_server", "https://drone.example.org"),
    ("drone_token", "{from_secret: drone_token}"),
    ("drone_token_file", "/run/secrets/drone-token"),
    ("drone_repo", "canon/canon"),
    ("drone_branch", "main"),
    ("listener_url", "http://canon-listener:8088"),
    ("listener_token", "{from_secret: listener_token}"),
    ("listener_token_file", "/run/secrets/listener-token"),
    ("cleanup_after", "6h"),
    ("min_free", "20G"),
    ("idle_exit_code", "78"),
];

/// Returns the example value of the setting called `name` (empty when it has none, which a unit
/// test forbids).
pub fn setting_example(name: &str) -> &'static str {
    SETTING_EXAMPLES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, e)| e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::plugin_settings;

    #[test]
    fn every_setting_has_one_example_in_table_order() {
        let settings: Vec<&str> = plugin_settings().map(|s| s.name).collect();
        let examples: Vec<&str> = SETTING_EXAMPLES.iter().map(|(n, _)| *n).collect();
        assert_eq!(examples, settings);
        assert!(SETTING_EXAMPLES.iter().all(|(_, e)| !e.is_empty()));
    }

    #[test]
    fn a_secrets_example_is_a_from_secret_never_a_value() {
        for s in plugin_settings().filter(|s| s.secret) {
            assert!(
                setting_example(s.name).starts_with("{from_secret: "),
                "{}",
                s.name
            );
        }
    }
}
