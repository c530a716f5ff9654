//! `canon-plugin versions`: release-tag tools for people and for checks in shell scripts.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use canon_shared::version::{self, ReleaseVersion};
use clap::Subcommand;

/// `versions` subcommands.
#[derive(Debug, Subcommand)]
pub enum VersionsCommand {
    /// Read tags from stdin (one per line); print the release tags ascending on stdout and the
    /// rejected ones with their reasons on stderr. Exits 0.
    #[command(after_help = "Example:\n  git tag | canon-plugin versions sort")]
    Sort,
    /// Read tags from stdin; print the greatest release tag. Exits 1 when there is none or when
    /// two tags share the greatest recipe version.
    #[command(after_help = "Example:\n  git tag | canon-plugin versions latest")]
    Latest,
    /// Exit 0 when TAG is a release tag, 1 with the reason otherwise.
    #[command(after_help = "Example:\n  canon-plugin versions check 1.2.0+3.4.5")]
    Check {
        /// The tag to check.
        tag: String,
    },
}

/// Runs a `versions` subcommand.
pub fn main(cmd: VersionsCommand) -> ExitCode {
    let stdout = io::stdout();
    let stderr = io::stderr();
    let result = match cmd {
        VersionsCommand::Check { tag } => check(&tag, &mut stdout.lock(), &mut stderr.lock()),
        VersionsCommand::Sort | VersionsCommand::Latest => {
            let lines: Result<Vec<String>, _> = io::stdin().lock().lines().collect();
            match lines {
                Err(e) => {
                    eprintln!("error: cannot read tags from stdin: {e}");
                    return ExitCode::from(crate::exit::EXIT_USAGE);
                }
                Ok(lines) if matches!(cmd, VersionsCommand::Sort) => {
                    sort(&lines, &mut stdout.lock(), &mut stderr.lock())
                }
                Ok(lines) => latest(&lines, &mut stdout.lock(), &mut stderr.lock()),
            }
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: cannot write output: {e}");
            ExitCode::from(crate::exit::EXIT_USAGE)
        }
    }
}

/// Lines as tags: a trailing `\r` is dropped and blank lines are skipped.
fn tags(lines: &[String]) -> impl Iterator<Item = &str> {
    lines
        .iter()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty())
}

fn sort(lines: &[String], out: &mut dyn Write, err: &mut dyn Write) -> io::Result<u8> {
    let (releases, rejected) = version::sort(tags(lines));
    for r in releases {
        writeln!(out, "{r}")?;
    }
    for (tag, why) in rejected {
        writeln!(err, "{}: {why}", tag.escape_debug())?;
    }
    Ok(0)
}

fn latest(lines: &[String], out: &mut dyn Write, err: &mut dyn Write) -> io::Result<u8> {
    match version::latest(tags(lines)) {
        Ok(Some(v)) => {
            writeln!(out, "{v}")?;
            Ok(0)
        }
        Ok(None) => {
            writeln!(err, "no release tag among {} line(s)", tags(lines).count())?;
            Ok(1)
        }
        Err(conflict) => {
            writeln!(err, "{conflict}")?;
            Ok(1)
        }
    }
}

fn check(tag: &str, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<u8> {
    match ReleaseVersion::parse(tag) {
        Ok(v) => {
            writeln!(
                out,
                "{v}: release {}, upstream {}",
                v.recipe_part(),
                v.upstream()
            )?;
            Ok(0)
        }
        Err(why) => {
            writeln!(err, "{}: not a release tag: {why}", tag.escape_debug())?;
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(
        f: fn(&[String], &mut dyn Write, &mut dyn Write) -> io::Result<u8>,
        input: &str,
    ) -> (u8, String, String) {
        let lines: Vec<String> = input.lines().map(String::from).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = f(&lines, &mut out, &mut err).unwrap();
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn sort_prints_releases_ascending_and_reasons_for_the_rest() {
        let (code, out, err) = call(
            sort,
            "6.0.1+28.0.2-fpm\nv2.4.8\n5.0.3+27.0.1-fpm\r\n\n1.13.4_1\n",
        );
        assert_eq!(code, 0);
        assert_eq!(out, "5.0.3+27.0.1-fpm\n6.0.1+28.0.2-fpm\n");
        assert!(err.contains("v2.4.8: a `v` prefix"), "{err}");
        assert!(err.contains("1.13.4_1: legacy"), "{err}");
    }

    #[test]
    fn latest_prints_the_greatest_or_exits_one() {
        assert_eq!(call(latest, "3.0.9+a\n3.0.10+b\n").1, "3.0.10+b\n");
        let (code, out, err) = call(latest, "v1\nnope\n");
        assert_eq!((code, out.as_str()), (1, ""));
        assert!(err.contains("no release tag"), "{err}");
        let (code, _, err) = call(latest, "1.0.0+a\n1.0.0+b\n");
        assert_eq!(code, 1);
        assert!(err.contains("neither is newer"), "{err}");
    }

    #[test]
    fn check_exits_zero_only_for_release_tags() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(check("1.2.3+4", &mut out, &mut err).unwrap(), 0);
        assert_eq!(check("1.2.0-rc1+1.0", &mut out, &mut err).unwrap(), 1);
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("prerelease"), "{err}");
    }
}
