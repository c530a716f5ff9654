//! Records the commit canon is built from, for `--version` of both binaries
//! ([`canon_shared::build_info`]): `CANON_COMMIT` when the builder sets it (a Nix build or a
//! source tarball has no `.git`), else what `git rev-parse` says of the checkout, else
//! `unknown`. Rebuilds when HEAD moves, so the line never names an older commit.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=CANON_COMMIT");
    let given = std::env::var("CANON_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty());
    let commit = match given {
        Some(c) => c.trim().to_string(),
        None => {
            // HEAD, the branch it names and packed-refs move with every commit; watch them.
            let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
            watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
            for name in &watched {
                if let Some(p) = git(&["rev-parse", "--git-path", name]) {
                    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(p);
                    if p.exists() {
                        println!("cargo:rerun-if-changed={}", p.display());
                    }
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    };
    println!("cargo:rustc-env=CANON_BUILD_COMMIT={commit}");
}
