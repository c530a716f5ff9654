//! Hermetic git for tests: real repositories made with the git CLI in temp dirs.
//!
//! Every git command gets `GIT_CONFIG_GLOBAL=/dev/null` and `GIT_CONFIG_NOSYSTEM=1` (set on the
//! command, never on the test process) and a fixed identity, so the machine's configuration never
//! leaks in. [`hermetic`] gives a program under test the same isolation. Every command has a
//! deadline ([`GIT_DEADLINE`]), so a hung git fails its test instead of hanging the suite.

pub mod http;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub use http::GitHttpServer;

use crate::process::stdout_within;

/// How long one git command of a test may take.
pub const GIT_DEADLINE: Duration = Duration::from_secs(120);

/// The lightweight tag [`Work::released`] puts on its first commit.
pub const LIGHTWEIGHT_RELEASE: &str = "1.0.0+1.0";

/// The annotated tag [`Work::released`] puts on its second commit.
pub const ANNOTATED_RELEASE: &str = "1.1.0+1.1";

/// Makes `cmd` blind to the machine's git configuration (`GIT_CONFIG_GLOBAL=/dev/null`,
/// `GIT_CONFIG_NOSYSTEM=1`) and to a repository the test itself runs in (`GIT_DIR` and
/// `GIT_WORK_TREE` removed). For git itself and for programs under test that run git or libgit2.
pub fn hermetic(cmd: &mut Command) -> &mut Command {
    cmd.env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
}

/// Builds a hermetic git command running in `dir`: a fixed author and committer, `main` as the
/// default branch, `file://` transports allowed, no credential prompt, stdin from `/dev/null`.
pub fn git_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.org")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.org")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null());
    hermetic(&mut c);
    c
}

/// Runs hermetic git in `dir` and returns its trimmed stdout; panics with the command line and
/// its output when it fails or overruns [`GIT_DEADLINE`].
pub fn git(dir: &Path, args: &[&str]) -> String {
    stdout_within(&mut git_cmd(dir, args), GIT_DEADLINE)
}

/// Creates a bare repository at `path` (and its parent folders).
pub fn bare(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    git(path, &["init", "--bare", "-q"]);
}

/// Returns the commit `rev` peels to in `repo` (a tag object is followed to its commit).
pub fn peeled(repo: &Path, rev: &str) -> String {
    git(repo, &["rev-parse", &format!("{rev}^{{commit}}")])
}

/// Returns `(ref, oid)` for every ref of a (bare) repository, in git's order.
pub fn refs(repo: &Path) -> Vec<(String, String)> {
    let out = git(repo, &["for-each-ref", "--format=%(refname) %(objectname)"]);
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (r, o) = l.split_once(' ').unwrap();
            (r.to_string(), o.to_string())
        })
        .collect()
}

/// Returns the refs of `repo` under `prefix`.
pub fn refs_under(repo: &Path, prefix: &str) -> Vec<(String, String)> {
    refs(repo)
        .into_iter()
        .filter(|(r, _)| r.starts_with(prefix))
        .collect()
}

/// Returns the branch and tag refs of `repo` for `branch` (what a faithful mirror must equal).
pub fn synced_refs(repo: &Path, branch: &str) -> Vec<(String, String)> {
    let head = format!("refs/heads/{branch}");
    refs(repo)
        .into_iter()
        .filter(|(r, _)| *r == head || r.starts_with("refs/tags/"))
        .collect()
}

/// Builds an upstream work tree at `up` and a bare mirror at `mirror` as they are once upstream
/// has merged a mirror PR: both start at one commit of `compose.yml` (`compose`); the mirror also
/// holds the PR branches `pr-1` and `pr-2` (a commit each on top); upstream then merges `pr-1`
/// with a merge commit and drops both branches. Returns the heads of `pr-1` and `pr-2`.
pub fn merged_pr_upstream(up: &Path, mirror: &Path, compose: &str) -> [String; 2] {
    std::fs::create_dir_all(up).unwrap();
    git(up, &["init", "-q", "-b", "main"]);
    std::fs::write(up.join("compose.yml"), compose).unwrap();
    git(up, &["add", "."]);
    git(up, &["commit", "-q", "-m", "first"]);
    let heads = [("pr-1", "one.txt"), ("pr-2", "two.txt")].map(|(branch, file)| {
        git(up, &["checkout", "-q", "-b", branch, "main"]);
        std::fs::write(up.join(file), format!("{branch}\n")).unwrap();
        git(up, &["add", file]);
        git(up, &["commit", "-q", "-m", &format!("change in {branch}")]);
        let head = git(up, &["rev-parse", "HEAD"]);
        git(up, &["checkout", "-q", "main"]);
        head
    });
    bare(mirror);
    let mirror = mirror.to_str().unwrap();
    git(up, &["push", "-q", mirror, "main", "pr-1", "pr-2"]);
    git(up, &["merge", "-q", "--no-ff", "-m", "Merge pr-1", "pr-1"]);
    git(up, &["branch", "-q", "-D", "pr-1", "pr-2"]);
    heads
}

/// A work tree on `main` whose `origin` is an upstream repository, for making commits and tags.
pub struct Work {
    /// The work tree.
    pub dir: PathBuf,
}

impl Work {
    /// Initialises a work tree at `dir` whose `origin` is `remote` (a path).
    pub fn new(dir: &Path, remote: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        git(dir, &["init", "-q", "-b", "main"]);
        git(dir, &["remote", "add", "origin", remote.to_str().unwrap()]);
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// Makes the usual released upstream: a bare repository at `upstream` and a work tree at
    /// `dir` that pushed two commits of `compose.yml` to it, [`LIGHTWEIGHT_RELEASE`] on the first
    /// and [`ANNOTATED_RELEASE`] on the second.
    pub fn released(dir: &Path, upstream: &Path) -> Self {
        bare(upstream);
        let work = Self::new(dir, upstream);
        work.commit("compose.yml", "version: 1\n");
        work.tag(LIGHTWEIGHT_RELEASE);
        work.commit("compose.yml", "version: 2\n");
        work.annotated_tag(ANNOTATED_RELEASE);
        work.push_all();
        work
    }

    /// Writes `content` to `file`, commits it and returns the commit id.
    pub fn commit(&self, file: &str, content: &str) -> String {
        std::fs::write(self.dir.join(file), content).unwrap();
        self.git(&["add", file]);
        self.git(&["commit", "-q", "-m", &format!("change {file}")]);
        self.head()
    }

    /// Returns HEAD's commit id.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// Creates a lightweight tag at HEAD.
    pub fn tag(&self, name: &str) {
        self.git(&["tag", name]);
    }

    /// Creates an annotated tag at HEAD and returns the tag object id.
    pub fn annotated_tag(&self, name: &str) -> String {
        self.git(&["tag", "-a", "-m", &format!("release {name}"), name]);
        self.git(&["rev-parse", &format!("refs/tags/{name}")])
    }

    /// Runs hermetic git in the work tree.
    pub fn git(&self, args: &[&str]) -> String {
        git(&self.dir, args)
    }

    /// Force-pushes `main` and all tags to `origin`.
    pub fn push_all(&self) {
        self.git(&["push", "-q", "--force", "origin", "main"]);
        self.git(&["push", "-q", "--force", "origin", "refs/tags/*:refs/tags/*"]);
    }
}
