//! `canon-plugin versions`: release-tag tools for people and for checks in shell scripts.

use std::io::{self, Read, Write};
use std::process::ExitCode;

use canon_shared::console;
use canon_shared::version::{self, ReleaseVersion};
use clap::Subcommand;

/// `versions` subcommands.
#[derive(Debug, Subcommand)]
pub enum VersionsCommand {
    /// Read tags from stdin (one per line); print the release tags ascending on stdout, and on
    /// stderr the rejected ones with their reasons and a warning for each pair of tags that
    /// share a recipe version. Exits 0.
    #[command(after_help = "Example:\n  git tag | canon-plugin versions sort")]
    Sort,
    /// Read tags from stdin; print the greatest release tag, and the skipped lines with their
    /// reasons on stderr. Exits 1 when there is none or when two tags share the greatest recipe
    /// version.
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
    // Through the console: a reader that stops early (`| head -1`) is not a panic.
    let (mut stdout, mut stderr) = (console::stdout(), console::stderr());
    let result = match cmd {
        VersionsCommand::Check { tag } => check(&tag, &mut stdout, &mut stderr),
        VersionsCommand::Sort | VersionsCommand::Latest => {
            let mut input = Vec::new();
            if let Err(e) = io::stdin().lock().read_to_end(&mut input) {
                canon_shared::errln!("error: cannot read tags from stdin: {e}");
                return ExitCode::from(crate::exit::EXIT_USAGE);
            }
            let lines = lines(&input);
            if matches!(cmd, VersionsCommand::Sort) {
                sort(&lines, &mut stdout, &mut stderr)
            } else {
                latest(&lines, &mut stdout, &mut stderr)
            }
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            canon_shared::errln!("error: cannot write output: {e}");
            ExitCode::from(crate::exit::EXIT_USAGE)
        }
    }
}

/// One line of input: its text, or (not UTF-8) its text with the bad bytes replaced.
type Line = Result<String, String>;

/// Splits stdin into lines. A line that is not UTF-8 is kept as an error of its own, so one bad
/// line never stops the others from being read.
fn lines(input: &[u8]) -> Vec<Line> {
    input
        .split(|b| *b == b'\n')
        .map(|l| {
            std::str::from_utf8(l)
                .map(String::from)
                .map_err(|_| String::from_utf8_lossy(l).into_owned())
        })
        .collect()
}

/// Lines as tags: a trailing `\r` is dropped and blank lines are skipped; lines that are not
/// UTF-8 are left out (see [`not_utf8`]).
fn tags(lines: &[Line]) -> impl Iterator<Item = &str> {
    lines
        .iter()
        .filter_map(|l| l.as_deref().ok())
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty())
}

/// Says on `err` which lines were not UTF-8.
fn not_utf8(lines: &[Line], err: &mut dyn Write) -> io::Result<()> {
    for bad in lines.iter().filter_map(|l| l.as_ref().err()) {
        writeln!(err, "{}: not UTF-8 text", bad.escape_debug())?;
    }
    Ok(())
}

/// Says on `err` why each of `rejected` is not a release tag.
fn reasons(rejected: &[(&str, version::NotARelease)], err: &mut dyn Write) -> io::Result<()> {
    for (tag, why) in rejected {
        writeln!(err, "{}: {why}", tag.escape_debug())?;
    }
    Ok(())
}

fn sort(lines: &[Line], out: &mut dyn Write, err: &mut dyn Write) -> io::Result<u8> {
    let (releases, rejected) = version::sort(tags(lines));
    for r in &releases {
        writeln!(out, "{r}")?;
    }
    not_utf8(lines, err)?;
    reasons(&rejected, err)?;
    // Sorted by recipe part, tags that share one are neighbours.
    for pair in releases.windows(2) {
        if pair[0].precedence(&pair[1]) == version::Precedence::Conflict {
            let conflict = version::VersionConflict {
                first: pair[0].clone(),
                second: pair[1].clone(),
            };
            writeln!(err, "warning: {conflict}")?;
        }
    }
    Ok(0)
}

fn latest(lines: &[Line], out: &mut dyn Write, err: &mut dyn Write) -> io::Result<u8> {
    not_utf8(lines, err)?;
    let (_, rejected) = version::sort(tags(lines));
    reasons(&rejected, err)?;
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
        f: fn(&[Line], &mut dyn Write, &mut dyn Write) -> io::Result<u8>,
        input: &str,
    ) -> (u8, String, String) {
        let lines = lines(input.as_bytes());
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
    fn sort_warns_about_tags_that_share_a_recipe_version_and_keeps_both() {
        let (code, out, err) = call(sort, "1.0.0+1.3\n1.0.0+1.2\n0.9.0+1\n");
        assert_eq!(code, 0);
        assert_eq!(out, "0.9.0+1\n1.0.0+1.2\n1.0.0+1.3\n");
        assert_eq!(
            err,
            "warning: release tags `1.0.0+1.2` and `1.0.0+1.3` share the recipe version 1.0.0; neither is newer\n"
        );
    }

    #[test]
    fn latest_says_why_it_skipped_each_line() {
        let (code, out, err) = call(latest, "v1.1.0\n1.0.0+1\n1.2.0-rc1+1\n");
        assert_eq!((code, out.as_str()), (0, "1.0.0+1\n"));
        assert!(err.contains("v1.1.0: a `v` prefix"), "{err}");
        assert!(err.contains("1.2.0-rc1+1: the recipe part"), "{err}");
    }

    #[test]
    fn a_line_that_is_not_utf8_is_skipped_with_its_reason_and_the_rest_is_read() {
        let input = b"1.0.0+1\n\xff\xfe+1\n2.0.0+1\n";
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(sort(&lines(input), &mut out, &mut err).unwrap(), 0);
        assert_eq!(String::from_utf8(out).unwrap(), "1.0.0+1\n2.0.0+1\n");
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("not UTF-8"), "{err}");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(latest(&lines(input), &mut out, &mut err).unwrap(), 0);
        assert_eq!(String::from_utf8(out).unwrap(), "2.0.0+1\n");
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
