//! The facts the runners read from the model: a service's labels, whether backupbot backs it
//! up, the port HTTP reaches, the probe's target, the `coop-cloud.<stack>.timeout` label, the
//! image helper containers use.
//!
//! Separate from the parse: these read a merged [`Compose`] and never a file.

use super::{Compose, Service};

impl Service {
    /// Returns the value of label `key`, from `deploy.labels` first, then `labels`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.deploy_labels
            .get(key)
            .or_else(|| self.labels.get(key))
            .map(String::as_str)
    }

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
}

/// The facts the runners read.
impl Compose {
    /// Returns true when some service carries `backupbot.backup=true`.
    pub fn declares_backups(&self) -> bool {
        self.services.iter().any(Service::backed_up)
    }

    /// Returns the value of the `app` service's deploy label `coop-cloud.<stack>.timeout` (after
    /// interpolation): abra takes this many seconds as the deploy's convergence timeout, and
    /// reads the label on `app` only.
    pub fn timeout_label(&self, stack: &str) -> Option<&str> {
        let key = format!("coop-cloud.{stack}.timeout");
        self.service("app")
            .and_then(|s| s.deploy_labels.get(&key))
            .map(String::as_str)
    }

    /// Returns the first image a service names, without its digest (`@sha256:...`): the image
    /// the helper containers that read and write the stack's volumes use.
    pub fn first_image(&self) -> Option<String> {
        self.services
            .iter()
            .find_map(|s| s.image.clone())
            .map(|i| i.split('@').next().unwrap_or(&i).to_string())
    }

    /// Returns the service called `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::recipe::compose::SecretDecl;

    use crate::recipe::compose::tests::env;
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
        let mut f = Compose::default();
        let e = env(&[("STACK_NAME", "s1"), ("SECRET_DB_PASSWORD_VERSION", "v3")]);
        f.merge(Path::new("compose.yml"), text, "s1", &e).unwrap();
        let app = &f.services[0];
        assert_eq!(app.volumes, vec!["data", "extra"]);
        assert_eq!(f.version_of("app").as_deref(), Some("1.0.0+1.2"));
        assert!(app.backed_up());
        assert_eq!(app.http_port(), Some(3000));
        assert!(!f.services[1].backed_up());
        assert_eq!(f.services[1].ports, vec![5432, 8080]);
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
                    name: "s1_db_password_v3".into(),
                    name_as_written: Some(
                        "${STACK_NAME}_db_password_${SECRET_DB_PASSWORD_VERSION}".into()
                    ),
                },
                SecretDecl {
                    key: "plain".into(),
                    external: false,
                    name: "s1_plain".into(),
                    name_as_written: None,
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
    fn the_timeout_label_is_read_for_the_stack_from_app_only() {
        let text = r#"
services:
  worker:
    deploy: {labels: ["coop-cloud.s.timeout=99"]}
  app:
    deploy: {labels: ["coop-cloud.${STACK_NAME}.timeout=${TIMEOUT:-300}"]}
"#;
        let mut f = Compose::default();
        f.merge(
            Path::new("compose.yml"),
            text,
            "s",
            &env(&[("STACK_NAME", "s")]),
        )
        .unwrap();
        assert_eq!(f.timeout_label("s"), Some("300"));
        assert_eq!(f.timeout_label("other"), None);
        let mut f = Compose::default();
        let e = env(&[("STACK_NAME", "s"), ("TIMEOUT", "42")]);
        f.merge(Path::new("compose.yml"), text, "s", &e).unwrap();
        assert_eq!(f.timeout_label("s"), Some("42"));
        let mut f = Compose::default();
        let only_worker = "services:\n  worker:\n    deploy: {labels: [\"coop-cloud.s.timeout=99\"]}\n  app: {image: x}\n";
        f.merge(Path::new("compose.yml"), only_worker, "s", &env(&[]))
            .unwrap();
        assert_eq!(
            f.timeout_label("s"),
            None,
            "abra reads the app service only"
        );
    }

    #[test]
    fn the_helper_image_is_the_first_image_named_without_its_digest() {
        let mut f = Compose::default();
        let text = "services:\n  a: {}\n  b: {image: \"x/y:1@sha256:abc\"}\n  c: {image: z}\n";
        f.merge(Path::new("compose.yml"), text, "s", &BTreeMap::new())
            .unwrap();
        assert_eq!(f.first_image().as_deref(), Some("x/y:1"));
        assert_eq!(Compose::default().first_image(), None);
    }
}
