//! The routing a recipe declares for traefik, read as traefik's Docker provider in swarm mode
//! reads it: on each service whose deploy labels say `traefik.enable=true`, its HTTP routers'
//! rules (`Host(...)` with one or several hosts, `||`, `&&`, `PathPrefix(...)`), the service
//! each router sends to (its `service` label, else the one service the container declares,
//! else a default service of its own), and that service's `loadbalancer.server.port` (else the
//! single port the service declares, as traefik takes the single exposed port).
//!
//! The serving check requests each route's first host at its port; `recipe plan` prints the
//! routes. A rule canon cannot read or a port it cannot find is a [`RouteError`] naming the
//! label: the install is red before anything is deployed, as a visitor would get an error.
//!
//! Pure over the merged compose model: labels arrive interpolated, merge keys resolved.

use std::collections::BTreeMap;

use super::compose::{Compose, Service};

/// The label prefix of HTTP routers.
const ROUTERS: &str = "traefik.http.routers.";
/// The label prefix of HTTP services.
const SERVICES: &str = "traefik.http.services.";
/// The label suffix of a service's port.
const PORT: &str = ".loadbalancer.server.port";

/// One HTTP route a recipe declares: what a visitor reaches and where traefik sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The compose service whose tasks serve it.
    pub service: String,
    /// The traefik router's name.
    pub router: String,
    /// The hosts its rule matches, in the order written.
    pub hosts: Vec<String>,
    /// The `PathPrefix` (or `Path`) its rule asks for, when it asks for one.
    pub path_prefix: Option<String>,
    /// The port traefik sends requests to on the service's tasks.
    pub port: u16,
}

impl Route {
    /// Returns the path a request should ask for: `path` when the enrollment names one, else
    /// the rule's path prefix, else `/`.
    pub fn request_path(&self, path: Option<&str>) -> String {
        path.or(self.path_prefix.as_deref())
            .unwrap_or("/")
            .to_string()
    }

    /// Returns the host the serving check sends (the rule's first).
    pub fn host(&self) -> &str {
        self.hosts.first().map(String::as_str).unwrap_or_default()
    }
}

/// Why a service's routing cannot be followed. `Display` names the label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// A router rule canon cannot read.
    #[error("service `{service}`: cannot read the router rule `{label}={value}`: {why}")]
    Rule {
        /// The compose service.
        service: String,
        /// The label's key.
        label: String,
        /// The label's value.
        value: String,
        /// What canon could not read.
        why: String,
    },
    /// A router whose port cannot be found.
    #[error("service `{service}`, router `{router}`: {why}")]
    Port {
        /// The compose service.
        service: String,
        /// The router.
        router: String,
        /// Which label (or its absence) leaves the port unknown.
        why: String,
    },
}

/// Returns every HTTP route of the services with `traefik.enable=true`, by service then router
/// name; an error for the first rule or port that cannot be followed.
pub fn routes(facts: &Compose) -> Result<Vec<Route>, RouteError> {
    let mut all = Vec::new();
    for svc in facts.services.iter().filter(|s| enabled(s)) {
        all.extend(service_routes(svc)?);
    }
    Ok(all)
}

/// Returns true when traefik routes to the service (`traefik.enable=true` in its deploy labels).
fn enabled(svc: &Service) -> bool {
    svc.deploy_labels
        .get("traefik.enable")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// A label's key and value.
type Label<'a> = (&'a str, &'a str);

/// Returns the routes of one service.
fn service_routes(svc: &Service) -> Result<Vec<Route>, RouteError> {
    // router name -> (its rule label and value, its service label's value)
    let mut routers: BTreeMap<&str, (Option<Label<'_>>, Option<&str>)> = BTreeMap::new();
    // service name -> its port label and value
    let mut services: BTreeMap<&str, Option<Label<'_>>> = BTreeMap::new();
    for (key, value) in &svc.deploy_labels {
        if let Some(rest) = key.strip_prefix(ROUTERS) {
            let Some((name, field)) = rest.split_once('.') else {
                continue;
            };
            let entry = routers.entry(name).or_default();
            match field {
                "rule" => entry.0 = Some((key.as_str(), value.as_str())),
                "service" => entry.1 = Some(value.trim()),
                _ => {}
            }
        } else if let Some(rest) = key.strip_prefix(SERVICES) {
            let Some((name, _)) = rest.split_once('.') else {
                continue;
            };
            let entry = services.entry(name).or_default();
            if rest.ends_with(PORT) && rest.len() == name.len() + PORT.len() {
                *entry = Some((key.as_str(), value.as_str()));
            }
        }
    }
    let mut out = Vec::new();
    for (router, (rule, target)) in routers {
        let Some((label, value)) = rule else {
            // A router with no rule of its own (TLS options only, say) gets traefik's default
            // rule, which names no host the recipe chose: nothing to request.
            continue;
        };
        let (hosts, path_prefix) = parse_rule(value).map_err(|why| RouteError::Rule {
            service: svc.name.clone(),
            label: label.to_string(),
            value: value.to_string(),
            why,
        })?;
        let port_error = |why: String| RouteError::Port {
            service: svc.name.clone(),
            router: router.to_string(),
            why,
        };
        let port_label = match target {
            // A provider-qualified service (`api@internal`, `x@file`) is not this container's.
            Some(t) if t.contains('@') => continue,
            Some(t) => match services.get(t) {
                Some(label) => *label,
                None if services.is_empty() => None,
                None => {
                    return Err(port_error(format!(
                        "label {ROUTERS}{router}.service={t} names a service this container does not declare (it declares {})",
                        services.keys().copied().collect::<Vec<_>>().join(", ")
                    )))
                }
            },
            None => match services.len() {
                0 => None,
                1 => services.values().next().copied().flatten(),
                _ => {
                    return Err(port_error(format!(
                        "the container declares services {} and no label {ROUTERS}{router}.service picks one",
                        services.keys().copied().collect::<Vec<_>>().join(", ")
                    )))
                }
            },
        };
        let port = match port_label {
            Some((key, value)) => value.trim().parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                port_error(format!("label {key}={value} is no port number"))
            })?,
            None => single_port(svc).ok_or_else(|| {
                port_error(format!(
                    "no label {SERVICES}<name>{PORT}, and the service declares {} ports where traefik needs exactly one",
                    distinct_ports(svc).len()
                ))
            })?,
        };
        out.push(Route {
            service: svc.name.clone(),
            router: router.to_string(),
            hosts,
            path_prefix,
            port,
        });
    }
    Ok(out)
}

/// Returns the distinct ports a service declares.
fn distinct_ports(svc: &Service) -> Vec<u16> {
    let mut ports = svc.ports.clone();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Returns the service's port when it declares exactly one.
fn single_port(svc: &Service) -> Option<u16> {
    match distinct_ports(svc).as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// One token of a rule.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Text(String),
    Open,
    Close,
    Comma,
    And,
    Or,
    Not,
}

/// Splits a rule into tokens: matcher names, quoted (backtick or double quote) arguments,
/// parentheses, commas, `&&`, `||` and `!`.
fn tokens(rule: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = rule.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            ',' => out.push(Token::Comma),
            '!' => out.push(Token::Not),
            '&' | '|' => {
                if chars.next() != Some(c) {
                    return Err(format!("a single `{c}` where `{c}{c}` was meant"));
                }
                out.push(if c == '&' { Token::And } else { Token::Or });
            }
            '`' | '"' => {
                let mut text = String::new();
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(x) => text.push(x),
                        None => return Err(format!("an unclosed {c}")),
                    }
                }
                out.push(Token::Text(text));
            }
            c if c.is_ascii_alphanumeric() => {
                let mut name = c.to_string();
                while let Some(&x) = chars.peek() {
                    if !x.is_ascii_alphanumeric() {
                        break;
                    }
                    name.push(x);
                    chars.next();
                }
                out.push(Token::Name(name));
            }
            other => return Err(format!("unexpected `{other}`")),
        }
    }
    Ok(out)
}

/// What one alternative of a rule (`||` apart) matches.
#[derive(Debug, Default)]
struct Match {
    hosts: Vec<String>,
    path: Option<String>,
}

/// Reads a rule: `Host(...)` (one or several hosts), `PathPrefix(...)` or `Path(...)`, joined
/// by `&&`, alternatives joined by `||`, parentheses around either. Returns the hosts of every
/// alternative and their path, which must be one for all; every alternative names a host.
fn parse_rule(rule: &str) -> Result<(Vec<String>, Option<String>), String> {
    let toks = tokens(rule)?;
    if toks.is_empty() {
        return Err("the rule is empty".into());
    }
    let mut pos = 0;
    let alternatives = parse_or(&toks, &mut pos)?;
    if pos != toks.len() {
        return Err("text after the end of the rule".into());
    }
    let mut hosts: Vec<String> = Vec::new();
    let path = alternatives[0].path.clone();
    for alt in &alternatives {
        if alt.hosts.is_empty() {
            return Err("an alternative names no Host".into());
        }
        if alt.path != path {
            return Err("its alternatives ask for different paths".into());
        }
        for h in &alt.hosts {
            if !hosts.contains(h) {
                hosts.push(h.clone());
            }
        }
    }
    Ok((hosts, path))
}

/// `a || b || ...`: the alternatives.
fn parse_or(toks: &[Token], pos: &mut usize) -> Result<Vec<Match>, String> {
    let mut alts = parse_and(toks, pos)?;
    while toks.get(*pos) == Some(&Token::Or) {
        *pos += 1;
        alts.extend(parse_and(toks, pos)?);
    }
    Ok(alts)
}

/// `a && b && ...`: one alternative (or several, when a parenthesised `||` is joined).
fn parse_and(toks: &[Token], pos: &mut usize) -> Result<Vec<Match>, String> {
    let mut alts = parse_term(toks, pos)?;
    while toks.get(*pos) == Some(&Token::And) {
        *pos += 1;
        let right = parse_term(toks, pos)?;
        let mut joined = Vec::new();
        for l in &alts {
            for r in &right {
                joined.push(join(l, r)?);
            }
        }
        alts = joined;
    }
    Ok(alts)
}

/// Joins the two sides of `&&`: one may name hosts, one may name a path.
fn join(l: &Match, r: &Match) -> Result<Match, String> {
    if !l.hosts.is_empty() && !r.hosts.is_empty() {
        return Err("`&&` joins two Host matchers".into());
    }
    if l.path.is_some() && r.path.is_some() {
        return Err("`&&` joins two path matchers".into());
    }
    Ok(Match {
        hosts: l.hosts.iter().chain(&r.hosts).cloned().collect(),
        path: l.path.clone().or_else(|| r.path.clone()),
    })
}

/// A matcher or a parenthesised rule.
fn parse_term(toks: &[Token], pos: &mut usize) -> Result<Vec<Match>, String> {
    match toks.get(*pos) {
        Some(Token::Open) => {
            *pos += 1;
            let inner = parse_or(toks, pos)?;
            if toks.get(*pos) != Some(&Token::Close) {
                return Err("an unclosed `(`".into());
            }
            *pos += 1;
            Ok(inner)
        }
        Some(Token::Not) => Err("a negated matcher (`!`)".into()),
        Some(Token::Name(name)) => {
            let name = name.clone();
            *pos += 1;
            if toks.get(*pos) != Some(&Token::Open) {
                return Err(format!("`{name}` without `(`"));
            }
            *pos += 1;
            let mut args = Vec::new();
            loop {
                match toks.get(*pos) {
                    Some(Token::Text(t)) => args.push(t.clone()),
                    _ => return Err(format!("`{name}(` without a quoted argument")),
                }
                *pos += 1;
                match toks.get(*pos) {
                    Some(Token::Comma) => *pos += 1,
                    Some(Token::Close) => {
                        *pos += 1;
                        break;
                    }
                    _ => return Err(format!("`{name}(` not closed")),
                }
            }
            match name.as_str() {
                "Host" => {
                    if args.iter().any(|h| h.trim().is_empty()) {
                        return Err("an empty Host".into());
                    }
                    Ok(vec![Match {
                        hosts: args,
                        path: None,
                    }])
                }
                "PathPrefix" | "Path" => match args.as_slice() {
                    [p] if p.starts_with('/') => Ok(vec![Match {
                        hosts: Vec::new(),
                        path: Some(p.clone()),
                    }]),
                    _ => Err(format!("`{name}` takes one path starting with `/`")),
                },
                other => Err(format!(
                    "the matcher `{other}` (canon reads Host, PathPrefix and Path)"
                )),
            }
        }
        _ => Err("a matcher was expected".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::recipe::compose::tests::env;

    fn compose(text: &str) -> Compose {
        let mut f = Compose::default();
        f.merge(
            Path::new("compose.yml"),
            text,
            "s",
            &env(&[("STACK_NAME", "s"), ("DOMAIN", "s.example.org")]),
        )
        .unwrap();
        f
    }

    fn app(labels: &[&str], extra: &str) -> Compose {
        let list: Vec<String> = labels
            .iter()
            .map(|l| format!("        - \"{l}\"\n"))
            .collect();
        compose(&format!(
            "services:\n  app:\n    image: x\n{extra}    deploy:\n      labels:\n{}",
            list.concat()
        ))
    }

    fn route(service: &str, router: &str, hosts: &[&str], path: Option<&str>, port: u16) -> Route {
        Route {
            service: service.into(),
            router: router.into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            path_prefix: path.map(str::to_string),
            port,
        }
    }

    #[test]
    fn the_co_op_cloud_shape_routes_the_domain_to_the_labelled_port() {
        // The fixture recipes' and bonfire's labels, list form.
        let f = app(
            &[
                "traefik.enable=true",
                "traefik.http.services.${STACK_NAME}.loadbalancer.server.port=4000",
                "traefik.http.routers.${STACK_NAME}.rule=Host(`${DOMAIN}`)",
                "traefik.http.routers.${STACK_NAME}.entrypoints=web-secure",
                "traefik.http.routers.${STACK_NAME}.tls.certresolver=production",
            ],
            "",
        );
        assert_eq!(
            routes(&f).unwrap(),
            vec![route("app", "s", &["s.example.org"], None, 4000)]
        );
    }

    #[test]
    fn several_hosts_in_either_form_and_a_path_prefix_are_read() {
        for rule in [
            "Host(`a.org`, `www.a.org`) && PathPrefix(`/app`)",
            "(Host(`a.org`) || Host(`www.a.org`)) && PathPrefix(`/app`)",
            "Host(\\\"a.org\\\") && PathPrefix(`/app`) || PathPrefix(`/app`) && Host(`www.a.org`)",
        ] {
            let f = app(
                &[
                    "traefik.enable=true",
                    "traefik.http.services.web.loadbalancer.server.port=80",
                    &format!("traefik.http.routers.web.rule={rule}"),
                ],
                "",
            );
            assert_eq!(
                routes(&f).unwrap(),
                vec![route(
                    "app",
                    "web",
                    &["a.org", "www.a.org"],
                    Some("/app"),
                    80
                )],
                "{rule}"
            );
        }
        let r = route("app", "web", &["a.org"], Some("/app"), 80);
        assert_eq!(r.request_path(None), "/app");
        assert_eq!(r.request_path(Some("/health")), "/health");
        assert_eq!(route("app", "w", &["a"], None, 1).request_path(None), "/");
    }

    #[test]
    fn a_rule_canon_cannot_read_is_an_error_naming_the_label() {
        for (rule, why) in [
            (
                "HostRegexp(`{sub:[a-z]+}.a.org`)",
                "the matcher `HostRegexp`",
            ),
            ("Host(`a.org`", "not closed"),
            ("PathPrefix(`/x`)", "an alternative names no Host"),
            ("Host(`a.org`) & Path(`/`)", "a single `&`"),
            ("!Host(`a.org`)", "negated"),
            ("", "the rule is empty"),
            (
                "Host(`a.org`) || Host(`b.org`) && Path(`/b`)",
                "different paths",
            ),
        ] {
            let f = app(
                &[
                    "traefik.enable=true",
                    "traefik.http.services.s.loadbalancer.server.port=80",
                    &format!("traefik.http.routers.s.rule={rule}"),
                ],
                "",
            );
            let err = routes(&f).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "service `app`: cannot read the router rule `traefik.http.routers.s.rule={rule}`"
                )) && err.contains(why),
                "{rule}: {err}"
            );
        }
    }

    #[test]
    fn without_a_port_label_the_single_declared_port_is_taken_as_traefik_does() {
        let labels = [
            "traefik.enable=true",
            "traefik.http.routers.web.rule=Host(`a.org`)",
        ];
        let f = app(&labels, "    ports: [\"3000\"]\n");
        assert_eq!(
            routes(&f).unwrap(),
            vec![route("app", "web", &["a.org"], None, 3000)]
        );
        let f = app(&labels, "    ports: [\"3000\", \"3001\"]\n");
        let err = routes(&f).unwrap_err().to_string();
        assert_eq!(
            err,
            "service `app`, router `web`: no label traefik.http.services.<name>.loadbalancer.server.port, and the service declares 2 ports where traefik needs exactly one"
        );
        let f = app(&labels, "");
        assert!(routes(&f)
            .unwrap_err()
            .to_string()
            .contains("declares 0 ports"));
    }

    #[test]
    fn a_port_that_is_no_number_is_an_error_naming_the_label() {
        // The traefik recipe's dashboard router, at the version trimmed into tests/data.
        let f = app(
            &[
                "traefik.enable=true",
                "traefik.http.services.traefik.loadbalancer.server.port=web",
                "traefik.http.routers.traefik.rule=Host(`${DOMAIN}`)",
            ],
            "",
        );
        assert_eq!(
            routes(&f).unwrap_err().to_string(),
            "service `app`, router `traefik`: label traefik.http.services.traefik.loadbalancer.server.port=web is no port number"
        );
    }

    #[test]
    fn the_router_service_picks_among_several_and_an_internal_one_is_not_checked() {
        let base = [
            "traefik.enable=true",
            "traefik.http.services.web.loadbalancer.server.port=80",
            "traefik.http.services.admin.loadbalancer.server.port=9000",
            "traefik.http.routers.web.rule=Host(`a.org`)",
            "traefik.http.routers.web.service=web",
            "traefik.http.routers.admin.rule=Host(`admin.a.org`)",
            "traefik.http.routers.admin.service=admin",
            "traefik.http.routers.dash.rule=Host(`dash.a.org`)",
            "traefik.http.routers.dash.service=api@internal",
        ];
        assert_eq!(
            routes(&app(&base, "")).unwrap(),
            vec![
                route("app", "admin", &["admin.a.org"], None, 9000),
                route("app", "web", &["a.org"], None, 80),
            ]
        );
        let mut ambiguous = base.to_vec();
        ambiguous.retain(|l| *l != "traefik.http.routers.web.service=web");
        let err = routes(&app(&ambiguous, "")).unwrap_err().to_string();
        assert!(
            err.contains("router `web`: the container declares services admin, web and no label traefik.http.routers.web.service picks one"),
            "{err}"
        );
        let mut unknown = base.to_vec();
        unknown.push("traefik.http.routers.web.service=nope");
        unknown.retain(|l| *l != "traefik.http.routers.web.service=web");
        let err = routes(&app(&unknown, "")).unwrap_err().to_string();
        assert!(err.contains("service=nope names a service"), "{err}");
    }

    #[test]
    fn services_without_traefik_enable_and_routers_without_a_rule_declare_no_route() {
        let f = compose(
            "services:\n  app:\n    deploy:\n      labels: {traefik.http.routers.a.rule: \"Host(`a.org`)\", traefik.http.services.a.loadbalancer.server.port: \"80\"}\n  web:\n    deploy:\n      labels: {traefik.enable: \"true\", traefik.http.routers.b.tls: \"true\", traefik.http.services.b.loadbalancer.server.port: \"80\"}\n  db: {image: y}\n",
        );
        assert_eq!(routes(&f).unwrap(), Vec::new());
    }
}
