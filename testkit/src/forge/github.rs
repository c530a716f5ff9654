//! The GitHub shapes, after its REST API: no path prefix, `per_page` (at most 100), Bearer (or
//! `token`) authorization, git refs and tag objects, and hook updates that replace the config.

use serde_json::{json, Value};

use super::{page, page_number, reply, route, FakePr, ForgeState, Reply};
use crate::loopback::Request;

/// Page size when a list call names no `per_page`.
const DEFAULT_PER_PAGE: usize = 30;

/// GitHub's largest page.
const MAX_PER_PAGE: usize = 100;

fn not_found() -> Reply {
    reply(
        404,
        json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}),
    )
}

fn pr(p: &FakePr) -> Value {
    json!({
        "number": p.number, "title": format!("PR {}", p.number), "state": p.state,
        "merged": p.merged, "merged_at": if p.merged { json!("2024-01-01T00:00:00Z") } else { Value::Null },
        "html_url": format!("https://github.invalid/pull/{}", p.number),
        "head": {"ref": p.head_ref, "sha": p.head_sha, "label": format!("o:{}", p.head_ref)},
        "base": {"ref": "main", "sha": "", "label": "o:main"}
    })
}

/// Answers `req` against `s` the way GitHub does.
pub(super) fn answer(s: &mut ForgeState, req: &Request) -> Reply {
    let auth = req.authorization.as_deref();
    if auth != Some(&format!("Bearer {}", s.token)) && auth != Some(&format!("token {}", s.token)) {
        return reply(
            401,
            json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
        );
    }
    let Some((repo, rest)) = route(&req.path, "") else {
        return reply(404, json!({"message": "Not Found"}));
    };
    if repo != s.repo {
        return not_found();
    }
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let per_page = req
        .query_param("per_page")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(DEFAULT_PER_PAGE)
        .min(MAX_PER_PAGE);
    let pg = page_number(req);
    let listed = |items: Vec<Value>| reply(200, Value::Array(page(&items, pg, per_page)));
    match (req.method.as_str(), rest.as_slice()) {
        ("GET", ["pulls"]) => listed(s.prs_in(req).map(pr).collect()),
        ("GET", ["pulls", n]) => match s.pr_mut(n) {
            Some(p) => reply(200, pr(p)),
            None => reply(404, json!({"message": "Not Found"})),
        },
        ("PATCH", ["pulls", n]) => {
            let Some(p) = s.pr_mut(n) else {
                return reply(404, json!({"message": "Not Found"}));
            };
            if let Some(st) = req.json()["state"].as_str() {
                p.state = st.to_string();
            }
            reply(200, pr(p))
        }
        ("POST", ["issues", n, "comments"]) => s.comment(n, req),
        ("GET", ["git", "ref", "tags", name]) => match s.tags.iter().find(|t| t.name == *name) {
            Some(t) => {
                let kind = if t.object == t.commit {
                    "commit"
                } else {
                    "tag"
                };
                reply(
                    200,
                    json!({"ref": format!("refs/tags/{}", t.name), "object": {"type": kind, "sha": t.object}}),
                )
            }
            None => reply(404, json!({"message": "Not Found"})),
        },
        ("GET", ["git", "tags", sha]) => match s.tags.iter().find(|t| t.object == *sha) {
            Some(t) => reply(
                200,
                json!({"sha": t.object, "tag": t.name, "object": {"type": "commit", "sha": t.commit}}),
            ),
            None => reply(404, json!({"message": "Not Found"})),
        },
        ("GET", ["tags"]) => listed(
            s.tags
                .iter()
                .map(|t| json!({"name": t.name, "commit": {"sha": t.commit, "url": ""}}))
                .collect(),
        ),
        ("GET", ["hooks"]) => listed(s.hooks.clone()),
        ("POST", ["hooks"]) => {
            let body = req.json();
            let id = s.hooks.len() as u64 + 100;
            let hook = json!({
                "id": id, "name": "web", "active": body["active"], "events": body["events"],
                "config": {"url": body["config"]["url"], "content_type": body["config"]["content_type"], "insecure_ssl": "0"},
            });
            s.hooks.push(hook.clone());
            reply(201, hook)
        }
        ("PATCH", ["hooks", id]) => edit_hook(s, id, req),
        _ => reply(404, json!({"message": "Not Found"})),
    }
}

/// GitHub: `config` replaces the whole config, `events` the event list; `active` only when sent.
fn edit_hook(s: &mut ForgeState, id: &str, req: &Request) -> Reply {
    let body = req.json();
    let want = id.parse::<u64>().ok();
    let Some(hook) = s.hooks.iter_mut().find(|h| h["id"].as_u64() == want) else {
        return reply(404, json!({"message": "Not Found"}));
    };
    if let Some(cfg) = body.get("config") {
        if cfg["url"].as_str().is_none() {
            return reply(422, json!({"message": "Validation Failed"}));
        }
        hook["config"] = json!({
            "url": cfg["url"],
            "content_type": cfg.get("content_type").cloned().unwrap_or(json!("form")),
            "insecure_ssl": cfg.get("insecure_ssl").cloned().unwrap_or(json!("0")),
        });
    }
    if let Some(events) = body.get("events") {
        hook["events"] = events.clone();
    }
    if let Some(active) = body.get("active").and_then(Value::as_bool) {
        hook["active"] = json!(active);
    }
    reply(200, hook.clone())
}
