//! The deployed view: several compose files read in order for one stack, each over the files
//! read before (later files override earlier ones), every value canon reads interpolated with the
//! app env.

use std::collections::BTreeMap;
use std::path::Path;

use super::parse::{Problem, Shape, Values};
use super::{Compose, ComposeError};

impl Compose {
    /// Parses one compose file's text for the stack `stack`, every value canon reads
    /// interpolated with `env`, and merges it over the files read before.
    pub fn merge(
        &mut self,
        path: &Path,
        text: &str,
        stack: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<(), ComposeError> {
        self.stack = Some(stack.to_string());
        self.read(text, stack, &Values::Interpolated(env))
            .map_err(|p| match p {
                Problem::Shape(Shape::Yaml(e)) => ComposeError::File {
                    path: path.to_path_buf(),
                    message: format!("invalid YAML: {e}"),
                },
                Problem::Shape(Shape::Other(message)) => ComposeError::File {
                    path: path.to_path_buf(),
                    message,
                },
                Problem::Interpolation(error) => ComposeError::Interpolation {
                    path: path.to_path_buf(),
                    error,
                },
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::recipe::compose::tests::env;
    #[test]
    fn environment_keys_are_read_in_both_forms_and_merged_across_files() {
        let mut f = Compose::default();
        let e = env(&[("V", "1")]);
        f.merge(
            Path::new("a"),
            "services: {app: {environment: [\"A=${V}\", B, \"C=x=y\"]}}",
            "s",
            &e,
        )
        .unwrap();
        f.merge(
            Path::new("b"),
            "services: {app: {environment: {D: 1, A: 2}}, db: {image: x}}",
            "s",
            &e,
        )
        .unwrap();
        assert_eq!(f.services[0].environment, vec!["A", "B", "C", "D"]);
        assert!(f.services[1].environment.is_empty());
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
        let mut f = Compose::default();
        let e = env(&[("STACK_NAME", "s1")]);
        f.merge(Path::new("compose.yml"), text, "s1", &e).unwrap();
        let app = &f.services[0];
        assert_eq!(app.volumes, vec!["data"]);
        assert!(app.backed_up());
        assert_eq!(app.http_port(), Some(8080));
        let worker = &f.services[1];
        assert_eq!(f.version_of("worker").as_deref(), Some("1.0.0+1"));
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
    fn labels_that_come_only_through_a_merge_key_are_read() {
        let text = r#"
x-backup: &backup
  backupbot.backup: "true"
  backupbot.backup.pre-hook: /dump.sh
x-version: &version
  coop-cloud.${STACK_NAME}.version: "1.0.0+1"
x-deploy: &deploy
  labels:
    <<: [*backup, *version]
    traefik.enable: "true"
services:
  app:
    image: x
    volumes: [data:/data]
    deploy:
      <<: *deploy
      replicas: 2
  db:
    deploy:
      labels:
        <<: *backup
        backupbot.backup: "false"
"#;
        let mut f = Compose::default();
        f.merge(
            Path::new("compose.yml"),
            text,
            "s",
            &env(&[("STACK_NAME", "s")]),
        )
        .unwrap();
        let app = &f.services[0];
        assert_eq!(app.replicas, Some(2));
        assert!(app.backed_up());
        assert_eq!(app.deploy_labels["backupbot.backup.pre-hook"], "/dump.sh");
        assert_eq!(app.deploy_labels["traefik.enable"], "true");
        // A map key is not interpolated (docker's rule), so this label is not the stack's.
        assert!(app
            .deploy_labels
            .contains_key("coop-cloud.${STACK_NAME}.version"));
        assert!(
            !f.services[1].backed_up(),
            "the explicit key wins over the merged one"
        );
        assert_eq!(
            f.services
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            vec!["app", "db"]
        );
    }

    #[test]
    fn a_merge_key_of_another_shape_names_the_file() {
        let mut f = Compose::default();
        let err = f
            .merge(
                Path::new("c.yml"),
                "services: {app: {<<: nope}}",
                "s",
                &env(&[]),
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("c.yml: a YAML merge key `<<` takes a mapping"),
            "{err}"
        );
    }

    #[test]
    fn an_invalid_template_in_a_value_canon_reads_is_refused_naming_the_file() {
        let mut f = Compose::default();
        let err = f
            .merge(
                Path::new("c.yml"),
                "services: {app: {deploy: {labels: [\"x=${A:+on}\"]}}}",
                "s",
                &env(&[("A", "1")]),
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("c.yml: invalid interpolation format"),
            "{err}"
        );
    }

    #[test]
    fn a_later_file_overrides_labels_of_an_earlier_one() {
        let mut f = Compose::default();
        let e = env(&[]);
        f.merge(
            Path::new("a"),
            "services: {app: {deploy: {labels: [backupbot.backup=true]}}}",
            "s",
            &e,
        )
        .unwrap();
        f.merge(
            Path::new("b"),
            "services: {app: {deploy: {labels: [backupbot.backup=false]}}}",
            "s",
            &e,
        )
        .unwrap();
        assert!(!f.declares_backups());
        let err = f
            .merge(Path::new("c.yml"), "- a list", "s", &e)
            .unwrap_err();
        assert!(err.to_string().contains("c.yml: not a mapping"));
    }

    #[test]
    fn a_required_variable_that_is_missing_fails_with_the_recipes_message() {
        let text = "services:\n  app:\n    deploy:\n      labels:\n        - \"x=${DB_HOST:?set DB_HOST in the app env}\"\n";
        let mut f = Compose::default();
        let err = f
            .merge(Path::new("compose.yml"), text, "s", &env(&[]))
            .unwrap_err();
        assert!(matches!(err, ComposeError::Interpolation { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "compose.yml: required variable DB_HOST is missing a value: set DB_HOST in the app env"
        );
        let ok = f.merge(
            Path::new("compose.yml"),
            text,
            "s",
            &env(&[("DB_HOST", "db")]),
        );
        assert!(ok.is_ok());
        assert_eq!(f.services[0].deploy_labels["x"], "db");
    }

    #[test]
    fn secret_names_and_long_volume_sources_are_interpolated() {
        let text = "services:\n  app:\n    volumes:\n      - {type: volume, source: \"${VOL:-data}\", target: /d}\nsecrets:\n  k:\n    name: ${STACK_NAME}_k_${SECRET_K_VERSION:?no version}\n";
        let mut f = Compose::default();
        let e = env(&[("STACK_NAME", "s"), ("SECRET_K_VERSION", "v2")]);
        f.merge(Path::new("compose.yml"), text, "s", &e).unwrap();
        assert_eq!(f.services[0].volumes, vec!["data"]);
        assert_eq!(f.secrets[0].name, "s_k_v2");
        let err = f
            .merge(Path::new("c.yml"), text, "s", &env(&[]))
            .unwrap_err();
        assert!(err.to_string().ends_with("no version"), "{err}");
    }
}
