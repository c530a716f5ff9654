//! The Gitea/Forgejo shapes, after their swagger: `/api/v1`, `Authorization: token`, `limit`
//! clamped to `max_items`, `X-Total-Count`, optional `null` list items, 412 on closing a merged
//! PR, and `editHook`'s partial updates.

use serde_json::{json, Value};

use super::{page, page_number, reply, route, FakePr, ForgeState, Reply};
use crate::loopback::Request;

/// Page size when a list call names no `limit`.
const DEFAULT_LIMIT: usize = 30;

fn not_found() -> Reply {
    reply(
        404,
        json!({"message": "The target couldn't be found.", "errors": []}),
    )
}

fn pr(p: &FakePr) -> Value {
    json!({
        "id": p.number * 10, "number": p.number, "title": format!("PR {}", p.number),
        "state": p.state, "merged": p.merged, "draft": false, "flow": 0,
        "html_url": format!("http://forge.invalid/pulls/{}", p.number),
        "head": {"ref": p.head_ref, "sha": p.head_sha, "label": p.head_ref, "repo_id": 1},
        "base": {"ref": "main", "sha": "", "label": "main", "repo_id": 1},
        "unknown_future_field": {"x": 1}
    })
}

/// Answers `req` against `s` the way Gitea does.
pub(super) fn answer(s: &mut ForgeState, req: &Request) -> Reply {
    if req.authorization.as_deref() != Some(&format!("token {}", s.token)) {
        return reply(
            401,
            json!({"message": "token is required", "url": "http://forge.invalid/api/swagger"}),
        );
    }
    let Some((repo, rest)) = route(&req.path, "/api/v1") else {
        return reply(404, json!({"message": "not found"}));
    };
    if repo != s.repo {
        return not_found();
    }
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let limit = req
        .query_param("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .unwrap_or(0);
    let size = usize::try_from(limit)
        .ok()
        .filter(|l| *l > 0)
        .map_or(DEFAULT_LIMIT, |l| l.min(s.max_items));
    let pg = page_number(req);
    let listed = |items: Vec<Value>, s: &ForgeState| {
        let total = items.len();
        let mut r = reply(200, Value::Array(page(&items, pg, size)));
        if s.total_header {
            r.headers.push(("X-Total-Count".into(), total.to_string()));
        }
        r
    };
    match (req.method.as_str(), rest.as_slice()) {
        ("GET", ["pulls"]) => {
            let items = s
                .prs_in(req)
                .map(|p| if p.broken { Value::Null } else { pr(p) })
                .collect();
            listed(items, s)
        }
        ("GET", ["pulls", n]) => match s.pr_mut(n) {
            Some(p) => reply(200, pr(p)),
            None => reply(404, json!({"message": "pull request does not exist"})),
        },
        ("PATCH", ["pulls", n]) => close(s, n, req),
        ("POST", ["issues", n, "comments"]) => s.comment(n, req),
        ("GET", ["tags"]) => {
            let items = s
                .tags
                .iter()
                .map(|t| json!({"name": t.name, "id": t.object, "message": "", "commit": {"sha": t.commit, "url": "", "created": "2024-01-01T00:00:00Z"}}))
                .collect();
            listed(items, s)
        }
        ("GET", ["tags", name]) => match s.tags.iter().find(|t| t.name == *name) {
            Some(t) => reply(
                200,
                json!({"name": t.name, "id": t.object, "commit": {"sha": t.commit}}),
            ),
            None => reply(404, json!({"message": "tag does not exist"})),
        },
        ("GET", ["hooks"]) => {
            let items = s.hooks.clone();
            listed(items, s)
        }
        ("POST", ["hooks"]) => create_hook(s, req),
        ("PATCH", ["hooks", id]) => edit_hook(s, id, req),
        _ => reply(404, json!({"message": "no such route"})),
    }
}

/// `PATCH /pulls/{n}`: 412 for a merged PR (or one told to refuse), else the state is set.
fn close(s: &mut ForgeState, n: &str, req: &Request) -> Reply {
    let Some(p) = s.pr_mut(n) else {
        return reply(404, json!({"message": "pull request does not exist"}));
    };
    if p.reject_412 || p.merged {
        return reply(
            412,
            json!({"message": "cannot change state of this pull request, it was already merged"}),
        );
    }
    if let Some(st) = req.json()["state"].as_str() {
        p.state = st.to_string();
    }
    reply(201, pr(p))
}

/// `POST /hooks`: `config.url` and `config.content_type` required; inactive unless told.
fn create_hook(s: &mut ForgeState, req: &Request) -> Reply {
    let body = req.json();
    let cfg = &body["config"];
    if cfg["url"].as_str().is_none() || cfg["content_type"].as_str().is_none() {
        return reply(
            422,
            json!({"message": "config.url and config.content_type are required"}),
        );
    }
    let id = s.hooks.len() as u64 + 1;
    let hook = json!({
        "id": id, "type": body["type"], "branch_filter": "",
        "config": {"url": cfg["url"], "content_type": cfg["content_type"], "http_method": "post"},
        "events": body.get("events").cloned().unwrap_or(json!(["push"])),
        "active": body.get("active").and_then(Value::as_bool).unwrap_or(false),
    });
    s.hooks.push(hook.clone());
    reply(201, hook)
}

/// Gitea's `editHook`: url and content_type from the config when given (the secret is never
/// read), events and branch filter always replaced, `active` only when sent.
fn edit_hook(s: &mut ForgeState, id: &str, req: &Request) -> Reply {
    let body = req.json();
    let want = id.parse::<u64>().ok();
    let Some(hook) = s.hooks.iter_mut().find(|h| h["id"].as_u64() == want) else {
        return not_found();
    };
    let cfg = &body["config"];
    if let Some(ct) = cfg["content_type"].as_str() {
        if ct != "json" && ct != "form" {
            return reply(422, json!({"message": "Invalid content type"}));
        }
        hook["config"]["content_type"] = json!(ct);
    }
    if let Some(url) = cfg["url"].as_str() {
        hook["config"]["url"] = json!(url);
    }
    hook["events"] = body.get("events").cloned().unwrap_or(json!([]));
    hook["branch_filter"] = body.get("branch_filter").cloned().unwrap_or(json!(""));
    if let Some(active) = body.get("active").and_then(Value::as_bool) {
        hook["active"] = json!(active);
    }
    reply(200, hook.clone())
}
