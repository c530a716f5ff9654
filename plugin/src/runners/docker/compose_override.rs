//! canon's compose override: the file `docker stack deploy` gets after the recipe's own, which
//! puts the run's labels on every service (and its containers), volume, network and secret so
//! the cleanup finds them, adds abra's labels and exposed env to the `app` service, and names the
//! warm canonical's secrets a warm run uses.
//!
//! Separate from the engine's command lines ([`crate::engine::cmd`]): it is the docker runner's
//! view of a recipe's compose files, not a docker command.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::recipe::compose::Compose;

fn yaml_str(s: &str) -> String {
    // JSON strings are valid YAML flow scalars.
    serde_json::Value::String(s.to_string()).to_string()
}

fn yaml_labels(out: &mut String, indent: &str, labels: &BTreeMap<String, String>) {
    for (k, v) in labels {
        // `docker stack deploy` interpolates the override like any compose file: a `$` in a
        // label value (a tag's upstream part is opaque text) is written as `$$` so it stays
        // literal instead of naming a variable.
        let _ = writeln!(
            out,
            "{indent}{}: {}",
            yaml_str(k),
            yaml_str(&v.replace('$', "$$"))
        );
    }
}

/// What the override adds to the `app` service only, as `abra app deploy` does: its deploy
/// labels (recipe, chaos, version) and the app env it exposes
/// ([`super::app_service`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppAdditions {
    /// Deploy labels of the `app` service.
    pub deploy_labels: BTreeMap<String, String>,
    /// Environment of the `app` service (keys its own `environment:` does not set).
    pub environment: BTreeMap<String, String>,
}

/// Returns canon's compose override: the run's labels on every service (and its containers),
/// every declared volume, every non-external network and secret, so a sweep can find them;
/// abra's labels and exposed env on the `app` service; and the engine name of each external
/// secret in `secret_names` (by key: a warm run uses the warm canonical's secrets).
pub fn label_override(
    facts: &Compose,
    labels: &BTreeMap<String, String>,
    app: &AppAdditions,
    secret_names: &BTreeMap<String, String>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "version: {}",
        yaml_str(facts.version.as_deref().unwrap_or("3.8"))
    );
    out.push_str("services:\n");
    for s in &facts.services {
        let _ = writeln!(out, "  {}:", yaml_str(&s.name));
        out.push_str("    labels:\n");
        yaml_labels(&mut out, "      ", labels);
        out.push_str("    deploy:\n      labels:\n");
        if s.name == super::app_service::APP_SERVICE {
            let mut all = labels.clone();
            all.extend(app.deploy_labels.clone());
            yaml_labels(&mut out, "        ", &all);
            if !app.environment.is_empty() {
                out.push_str("    environment:\n");
                yaml_labels(&mut out, "      ", &app.environment);
            }
        } else {
            yaml_labels(&mut out, "        ", labels);
        }
    }
    if !facts.volumes.is_empty() {
        out.push_str("volumes:\n");
        for v in &facts.volumes {
            let _ = writeln!(out, "  {}:\n    labels:", yaml_str(v));
            yaml_labels(&mut out, "      ", labels);
        }
    }
    let networks: Vec<_> = facts.networks.iter().filter(|n| !n.external).collect();
    if !networks.is_empty() {
        out.push_str("networks:\n");
        for n in networks {
            let _ = writeln!(out, "  {}:\n    labels:", yaml_str(&n.key));
            yaml_labels(&mut out, "      ", labels);
        }
    }
    let secrets: Vec<_> = facts
        .secrets
        .iter()
        .filter(|s| !s.external || secret_names.contains_key(&s.key))
        .collect();
    if !secrets.is_empty() {
        out.push_str("secrets:\n");
        for s in secrets {
            let _ = writeln!(out, "  {}:", yaml_str(&s.key));
            match secret_names.get(&s.key) {
                Some(name) if s.external => {
                    // Whole: docker's loader replaces a secret's definition, it does not merge it.
                    out.push_str("    external: true\n");
                    let _ = writeln!(out, "    name: {}", yaml_str(&name.replace('$', "$$")));
                }
                _ => {
                    out.push_str("    labels:\n");
                    yaml_labels(&mut out, "      ", labels);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::labels::tests::labels;
    use std::path::Path;

    #[test]
    fn the_override_labels_services_volumes_networks_and_file_secrets() {
        let mut f = Compose::default();
        f.merge(
            Path::new("compose.yml"),
            "version: '3.8'\nservices: {app: {image: x}}\nvolumes: {data: }\nnetworks: {proxy: {external: true}, internal: }\nsecrets: {k: {external: true}, f: {file: ./f}}\n",
            "s",
            &BTreeMap::new(),
        )
        .unwrap();
        let text = label_override(
            &f,
            &labels().map(None),
            &AppAdditions::default(),
            &BTreeMap::new(),
        );
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(doc["version"], "3.8");
        assert_eq!(
            doc["services"]["app"]["deploy"]["labels"]["canon.kind"],
            "cold"
        );
        assert_eq!(doc["services"]["app"]["labels"]["canon.tag"], "1.0.0+1.2");
        assert_eq!(
            doc["volumes"]["data"]["labels"]["canon.stack"],
            "cold-app-abc123-7"
        );
        assert_eq!(doc["networks"]["internal"]["labels"]["canon.build"], "7");
        assert!(doc["networks"].get("proxy").is_none());
        assert_eq!(doc["secrets"]["f"]["labels"]["canon.created"], "1700000000");
        assert!(doc["secrets"].get("k").is_none());

        // A warm run names the warm canonical's secret for an external one; a file secret keeps
        // its labels whatever the map says.
        let names = BTreeMap::from([
            ("k".to_string(), "warm-app_k_v1".to_string()),
            ("f".to_string(), "ignored".to_string()),
        ]);
        let text = label_override(&f, &labels().map(None), &AppAdditions::default(), &names);
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(doc["secrets"]["k"]["name"], "warm-app_k_v1", "{text}");
        assert_eq!(doc["secrets"]["k"]["external"], true);
        assert!(doc["secrets"]["k"].get("labels").is_none());
        assert_eq!(doc["secrets"]["f"]["labels"]["canon.build"], "7");
        assert!(doc["secrets"]["f"].get("name").is_none());
    }

    #[test]
    fn a_dollar_in_a_label_value_stays_literal_after_interpolation() {
        let mut f = Compose::default();
        f.merge(
            Path::new("compose.yml"),
            "version: '3.8'\nservices: {app: {image: x}}\n",
            "s",
            &BTreeMap::new(),
        )
        .unwrap();
        let labels = BTreeMap::from([("canon.tag".to_string(), "1.0.0+a$HOME${X}".to_string())]);
        let text = label_override(&f, &labels, &AppAdditions::default(), &BTreeMap::new());
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            doc["services"]["app"]["labels"]["canon.tag"], "1.0.0+a$$HOME$${X}",
            "{text}"
        );
    }

    #[test]
    fn only_the_app_service_gets_abras_labels_and_the_exposed_env_with_dollars_kept_literal() {
        let mut f = Compose::default();
        f.merge(
            Path::new("compose.yml"),
            "version: '3.8'\nservices: {app: {image: x}, db: {image: y}}\n",
            "s",
            &BTreeMap::new(),
        )
        .unwrap();
        let app = AppAdditions {
            deploy_labels: BTreeMap::from([("coop-cloud.s.recipe".into(), "r".into())]),
            environment: BTreeMap::from([("PASSWORD_HINT".into(), "a$b".into())]),
        };
        let text = label_override(&f, &labels().map(None), &app, &BTreeMap::new());
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let app_svc = &doc["services"]["app"];
        assert_eq!(app_svc["deploy"]["labels"]["coop-cloud.s.recipe"], "r");
        assert_eq!(app_svc["deploy"]["labels"]["canon.kind"], "cold");
        assert_eq!(app_svc["environment"]["PASSWORD_HINT"], "a$$b");
        let db = &doc["services"]["db"];
        assert!(db["deploy"]["labels"].get("coop-cloud.s.recipe").is_none());
        assert!(db.get("environment").is_none(), "{text}");
    }
}
