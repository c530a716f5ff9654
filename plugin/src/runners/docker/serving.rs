//! The serving check: after a deploy is healthy, each HTTP route the recipe's traefik labels
//! declare ([`crate::recipe::routes`]) answers a visitor's request. `GET <path>` with the route's
//! host in `Host:` goes to every task of the routed service at its address on the recipe's
//! `proxy` network and the routed port, from inside that network, the way traefik reaches the
//! tasks (sent from a running task of the routed service, whose container is on it); no
//! redirect is followed, and the status must be one the enrollment expects (`serving.expect`,
//! default 200, 301, 302). It polls like the health wait, up to what is left of the deploy
//! timeout, and a red check names the service, the router, the host, the port and what came
//! back (a status, a refused connection, no answer).
//!
//! The request is raw HTTP/1.0 through the service image's own `sh` and `nc` (busybox's is
//! enough), run by `docker exec` with the host and path passed as its environment, never as
//! script text. A short-lived container on the network would be the same request, but attaching
//! one to an overlay network costs seconds each time. When the image has no `sh` or `nc`, the same
//! request goes from the host to the task's `docker_gwbridge` address (the same container and
//! port, as the health probe reaches it), and the stage's notes say so.
//!
//! Skipped, with the reason as a note of the stage: when no service declares a route, when the
//! recipe declares no `proxy` network, and when the enrollment says `serving: {skip: true}`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use canon_shared::gate::{ServingCheck, ServingVia};
use serde_json::Value;

use super::poll::{http_status, Progress, PROGRESS_EVERY};
use super::stack::Stack;
use crate::engine::client::{docker, list_ids, run};
use crate::engine::cmd::{self, Kind};
use crate::recipe::files::RecipeFiles;
use crate::recipe::routes::Route;
use crate::recipe::timeout::DeployTimeout;
use crate::runners::RunnerError;

/// The compose key of the network traefik reaches a Co-op Cloud app's services on.
pub(super) const PROXY_NETWORK: &str = "proxy";

/// How long one request may wait for a connection and for the answer.
const REQUEST_SECONDS: u64 = 3;

/// The first word of each result line the request script prints.
const LINE_MARK: &str = "canon-serving";

/// What one request came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    /// An HTTP status line.
    Status(u16),
    /// The connection was refused: nothing listens on that port.
    Refused,
    /// No answer in time, or the connection closed without a status line.
    Silent,
    /// Anything else, as the client said it.
    Other(String),
}

impl Answer {
    /// Reads what `nc` (or the host's request) printed first.
    fn read(text: &str) -> Answer {
        let text = text.trim();
        if let Some(status) = parse_status(text) {
            Answer::Status(status)
        } else if text.contains("refused") {
            Answer::Refused
        } else if text.is_empty() || text.contains("timed out") {
            Answer::Silent
        } else {
            Answer::Other(text.chars().take(200).collect())
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Status(s) => write!(f, "answered {s}"),
            Answer::Refused => f.write_str("refused the connection"),
            Answer::Silent => write!(
                f,
                "sent no answer within {REQUEST_SECONDS} s (timed out or closed)"
            ),
            Answer::Other(t) => write!(f, "failed: {t}"),
        }
    }
}

/// Returns the status code of an HTTP status line.
fn parse_status(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    parts.next().filter(|p| p.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

/// What the check says for a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Serving {
    /// Every route answered: the first route's check, and a note for each route.
    Checked(ServingCheck, Vec<String>),
    /// Not checked, for this reason.
    Skipped(String),
}

/// One request of a round: a route's task at one address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    route: usize,
    ip: Ipv4Addr,
}

/// Returns the shell script that sends each request from inside the network: one `nc` per
/// target, each result a line `canon-serving <n> <first line of the answer>`. The host and path
/// of route `i` are read from `CANON_HOST_<i>` and `CANON_PATH_<i>`; only addresses and ports,
/// which canon read itself, are script text.
fn request_script(routes: &[Route], targets: &[Target]) -> String {
    let mut script = String::new();
    for (n, t) in targets.iter().enumerate() {
        let i = t.route;
        script.push_str(&format!(
            "r=$(printf 'GET %s HTTP/1.0\\r\\nHost: %s\\r\\nUser-Agent: canon\\r\\nConnection: close\\r\\n\\r\\n' \"$CANON_PATH_{i}\" \"$CANON_HOST_{i}\" | nc -w {REQUEST_SECONDS} {ip} {port} 2>&1 | head -n 1); echo \"{LINE_MARK} {n} $r\"\n",
            ip = t.ip,
            port = routes[i].port,
        ));
    }
    script
}

/// Returns the answer of each target from the script's output; a target without its line is
/// `None`.
fn read_answers(stdout: &str, targets: usize) -> Vec<Option<Answer>> {
    let mut answers = vec![None; targets];
    for line in stdout.lines() {
        let Some(rest) = line
            .strip_prefix(LINE_MARK)
            .and_then(|r| r.strip_prefix(' '))
        else {
            continue;
        };
        let (n, text) = rest.split_once(' ').unwrap_or((rest, ""));
        if let Some(slot) = n.parse::<usize>().ok().and_then(|n| answers.get_mut(n)) {
            *slot = Some(Answer::read(text));
        }
    }
    answers
}

/// Where a round sends its requests from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A container on the proxy network.
    Network,
    /// The host, to the tasks' `docker_gwbridge` addresses.
    Host,
}

impl Stack {
    /// Runs the serving check of `files` until every route answers an expected status or
    /// `deadline`; `started` and `timeout` are the deploy wait's, for its progress and its
    /// error.
    pub(super) fn check_serving(
        &self,
        files: &RecipeFiles,
        started: Instant,
        deadline: Instant,
        timeout: DeployTimeout,
    ) -> Result<Serving, RunnerError> {
        if self.serving.skip {
            return Ok(Serving::Skipped(
                "the enrollment turns it off (serving: {skip: true})".into(),
            ));
        }
        let routes = self.plan(files)?.routes;
        if routes.is_empty() {
            return Ok(Serving::Skipped(
                "no service declares a traefik route (traefik.enable=true and a router rule): not a web app".into(),
            ));
        }
        let Some(network) = files.facts.networks.iter().find(|n| n.key == PROXY_NETWORK) else {
            return Ok(Serving::Skipped(format!(
                "the recipe declares no `{PROXY_NETWORK}` network, where traefik reaches its services"
            )));
        };
        for r in &routes {
            let joins = files
                .facts
                .service(&r.service)
                .is_some_and(|s| s.host.networks.iter().any(|n| n == PROXY_NETWORK));
            if !joins {
                return Err(RunnerError::Other(format!(
                    "serving check: service `{}` (router `{}`, host {}, port {}) does not join the `{PROXY_NETWORK}` network, so traefik cannot reach it",
                    r.service,
                    r.router,
                    r.host(),
                    r.port
                )));
            }
        }
        let expect = self.serving.expected();
        let paths: Vec<String> = routes
            .iter()
            .map(|r| r.request_path(self.serving.path.as_deref()))
            .collect();
        let image = files
            .facts
            .service(&routes[0].service)
            .and_then(|s| s.image.clone())
            .unwrap_or_default();
        let mut from = Origin::Network;
        let mut fallback_note = None;
        let mut progress = Progress::new(Instant::now(), PROGRESS_EVERY);
        loop {
            let answers = match from {
                Origin::Network => {
                    match self.round_in_network(&network.name, &image, &routes, &paths) {
                        Ok(a) => a,
                        Err(why) => {
                            tracing::info!(stack = %self.name, why = %why, "The serving check cannot send from inside the network; it sends from the host to the tasks' docker_gwbridge addresses.");
                            fallback_note = Some(format!(
                            "serving check sent from the host to the tasks' docker_gwbridge addresses: {why}"
                        ));
                            from = Origin::Host;
                            continue;
                        }
                    }
                }
                Origin::Host => self.round_from_host(&routes, &paths),
            };
            let bad: Vec<String> = answers
                .iter()
                .enumerate()
                .filter_map(|(i, a)| {
                    let r = &routes[i];
                    let ok = a.iter().all(|(_, ans)| matches!(ans, Answer::Status(s) if expect.contains(s)));
                    (a.is_empty() || !ok).then(|| {
                        let what = if a.is_empty() {
                            format!("has no running task on the `{PROXY_NETWORK}` network")
                        } else {
                            a.iter()
                                .filter(|(_, ans)| !matches!(ans, Answer::Status(s) if expect.contains(s)))
                                .map(|(ip, ans)| format!("{ip} {ans}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        format!(
                            "service `{}`, router `{}`, GET {} with Host: {} on port {}: {what}",
                            r.service,
                            r.router,
                            paths[i],
                            r.host(),
                            r.port
                        )
                    })
                })
                .collect();
            if bad.is_empty() {
                let status = |i: usize| match answers[i].first() {
                    Some((_, Answer::Status(s))) => *s,
                    _ => 0,
                };
                let mut notes: Vec<String> = routes
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        format!(
                            "serving: router `{}` of `{}` answered {} to GET {} with Host: {} on port {} ({} task(s))",
                            r.router,
                            r.service,
                            status(i),
                            paths[i],
                            r.host(),
                            r.port,
                            answers[i].len()
                        )
                    })
                    .collect();
                notes.extend(fallback_note);
                tracing::info!(stack = %self.name, routes = routes.len(), "Serving check passed.");
                return Ok(Serving::Checked(
                    ServingCheck {
                        host: routes[0].host().to_string(),
                        path: paths[0].clone(),
                        port: routes[0].port,
                        via: ServingVia::Direct,
                        status: status(0),
                    },
                    notes,
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                let expected: Vec<String> = expect.iter().map(u16::to_string).collect();
                return Err(RunnerError::Timeout {
                    what: format!(
                        "serving check (expecting {}): {}; {timeout}",
                        expected.join(", "),
                        bad.join("; ")
                    ),
                    seconds: timeout.duration.as_secs(),
                });
            }
            if progress.due(now) {
                tracing::info!(
                    last = %bad.join("; "),
                    "Waiting for {} to serve its routes: {} s of {} s.",
                    self.name,
                    now.duration_since(started).as_secs(),
                    timeout.duration.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Returns this stack's containers on `network`: each with its compose service, its id and
    /// its address there (one `docker network inspect`).
    fn network_tasks(&self, network: &str) -> Result<Vec<(String, String, Ipv4Addr)>, String> {
        let out = docker(&cmd::inspect(Kind::Network, &[network.to_string()]))
            .map_err(|e| e.to_string())?;
        let nets: Vec<Value> = serde_json::from_str(&out.stdout).map_err(|e| e.to_string())?;
        let prefix = format!("{}_", self.name);
        let mut tasks: Vec<(String, String, Ipv4Addr)> = nets
            .first()
            .and_then(|n| n["Containers"].as_object())
            .into_iter()
            .flat_map(|m| m.iter())
            .filter_map(|(id, c)| {
                // Task containers are named `<stack>_<service>.<slot>.<task id>`.
                let service = c["Name"]
                    .as_str()?
                    .strip_prefix(&prefix)?
                    .split('.')
                    .next()?;
                let ip = c["IPv4Address"].as_str()?.split('/').next()?.parse().ok()?;
                Some((service.to_string(), id.clone(), ip))
            })
            .collect();
        tasks.sort_by_key(|t| t.2);
        Ok(tasks)
    }

    /// One round from inside `network`: the requests run in a task of the first route's service
    /// (`docker exec`; its image's `sh` and `nc`), each to a task's address on the network, as
    /// traefik's own requests go. Returns each route's answers by task address; an error when
    /// the task cannot send the requests at all.
    fn round_in_network(
        &self,
        network: &str,
        image: &str,
        routes: &[Route],
        paths: &[String],
    ) -> Result<Vec<Vec<(Ipv4Addr, Answer)>>, String> {
        let tasks = self.network_tasks(network)?;
        let mut targets = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            for (_, _, ip) in tasks.iter().filter(|t| t.0 == r.service) {
                targets.push(Target { route: i, ip: *ip });
            }
        }
        let mut answers: Vec<Vec<(Ipv4Addr, Answer)>> = vec![Vec::new(); routes.len()];
        let Some((_, sender, _)) = tasks.iter().find(|t| t.0 == routes[0].service) else {
            return Ok(answers);
        };
        let mut env = BTreeMap::new();
        for (i, r) in routes.iter().enumerate() {
            env.insert(format!("CANON_HOST_{i}"), r.host().to_string());
            env.insert(format!("CANON_PATH_{i}"), paths[i].clone());
        }
        let out = run(&cmd::exec_request(
            sender,
            &env,
            &request_script(routes, &targets),
        ))
        .map_err(|e| e.to_string())?;
        let read = read_answers(&out.stdout, targets.len());
        if read.iter().all(Option::is_none) {
            let err = out.stderr.trim();
            let why = if err.is_empty() {
                format!("the request exited with {:?}", out.code())
            } else {
                err.lines().last().unwrap_or(err).to_string()
            };
            return Err(format!(
                "a task of `{}` (image `{image}`) cannot send it: {why}",
                routes[0].service
            ));
        }
        if read
            .iter()
            .flatten()
            .any(|a| matches!(a, Answer::Other(t) if t.contains("not found")))
        {
            return Err(format!("image `{image}` has no `nc`"));
        }
        for (t, a) in targets.iter().zip(read) {
            answers[t.route].push((t.ip, a.unwrap_or(Answer::Silent)));
        }
        Ok(answers)
    }

    /// One round from the host, to each task's `docker_gwbridge` address.
    fn round_from_host(&self, routes: &[Route], paths: &[String]) -> Vec<Vec<(Ipv4Addr, Answer)>> {
        let bridge: Vec<Value> = docker(&cmd::gwbridge_inspect())
            .ok()
            .and_then(|o| serde_json::from_str(&o.stdout).ok())
            .unwrap_or_default();
        let containers = bridge
            .first()
            .map(|b| b["Containers"].clone())
            .unwrap_or_default();
        routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let label = format!("com.docker.swarm.service.name={}_{}", self.name, r.service);
                let ids = list_ids(Kind::Container, &label).unwrap_or_default();
                ids.iter()
                    .filter_map(|id| containers[id.as_str()]["IPv4Address"].as_str())
                    .filter_map(|a| a.split('/').next().and_then(|ip| ip.parse().ok()))
                    .map(|ip: Ipv4Addr| {
                        let answer = match http_status(&ip.to_string(), r.port, &paths[i], r.host())
                        {
                            Ok(s) => Answer::Status(s),
                            Err(e) => Answer::read(&e),
                        };
                        (ip, answer)
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(port: u16) -> Route {
        Route {
            service: "app".into(),
            router: "r".into(),
            hosts: vec!["a.org".into()],
            path_prefix: None,
            port,
        }
    }

    #[test]
    fn the_script_reads_host_and_path_from_the_environment_and_marks_each_target() {
        let routes = [route(8080), route(9000)];
        let targets = [
            Target {
                route: 0,
                ip: Ipv4Addr::new(10, 0, 1, 5),
            },
            Target {
                route: 1,
                ip: Ipv4Addr::new(10, 0, 1, 6),
            },
        ];
        let script = request_script(&routes, &targets);
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].contains("\"$CANON_PATH_0\" \"$CANON_HOST_0\" | nc -w 3 10.0.1.5 8080")
                && lines[0].ends_with("echo \"canon-serving 0 $r\""),
            "{script}"
        );
        assert!(lines[1].contains("nc -w 3 10.0.1.6 9000"), "{script}");
        assert!(!script.contains("a.org"), "no recipe text in the script");
    }

    #[test]
    fn answers_are_read_as_status_refused_or_no_answer() {
        let out = "canon-serving 0 HTTP/1.0 302 Found\ncanon-serving 2 nc: can't connect to remote host (10.0.1.5): Connection refused\nnoise\ncanon-serving 3 \ncanon-serving 9 HTTP/1.0 200 OK\n";
        assert_eq!(
            read_answers(out, 4),
            vec![
                Some(Answer::Status(302)),
                None,
                Some(Answer::Refused),
                Some(Answer::Silent),
            ]
        );
        assert_eq!(
            Answer::read("sh: nc: not found"),
            Answer::Other("sh: nc: not found".into())
        );
        assert_eq!(Answer::read("nc: timed out"), Answer::Silent);
        assert_eq!(Answer::Status(500).to_string(), "answered 500");
        assert_eq!(Answer::Refused.to_string(), "refused the connection");
    }
}
