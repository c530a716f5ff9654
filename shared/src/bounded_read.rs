//! Reading a file canon did not write (the enrollment, a recipe's files, a secret or credential
//! given by path) so that it cannot stall or exhaust canon: only a regular file is read (a FIFO,
//! a device such as `/dev/zero`, or `/dev/stdin` is refused before it is opened), and never more
//! than a limit. And a nesting limit for YAML, checked before a parser sees the text, so a
//! deeply nested document is refused at once instead of taking the parser minutes.
//!
//! Errors are `io::Error`s whose message says what was refused; callers already name the file.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The most read from the enrollment file or from a recipe's compose file.
pub const YAML_FILE: u64 = 1 << 20;
/// The most read from a recipe's small text files: `.env.sample`, `abra.sh`, release notes.
pub const TEXT_FILE: u64 = 256 << 10;
/// The most read from a secret or a credential given by path.
pub const SECRET_FILE: u64 = 64 << 10;
/// The most read from a state record canon wrote (`canonical.json`, a sweep record).
pub const RECORD_FILE: u64 = 1 << 20;
/// The most read from a decision history (`history.jsonl`), which only grows.
pub const HISTORY_FILE: u64 = 256 << 20;
/// The deepest nesting a YAML document canon reads may have.
pub const YAML_DEPTH: usize = 64;

fn refused(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Refuses what is not a regular file.
fn regular(meta: &std::fs::Metadata) -> io::Result<()> {
    if meta.file_type().is_file() {
        return Ok(());
    }
    Err(refused(
        "not a regular file (a FIFO, a device or a folder); canon reads only regular files".into(),
    ))
}

/// Opens `path` (following links, as a file the operator names may be one) for a bounded read:
/// refuses a special file before opening it, and again on the open file.
pub fn open(path: &Path) -> io::Result<File> {
    regular(&std::fs::metadata(path)?)?;
    // O_NONBLOCK: a FIFO swapped in after the check is not waited on (the check below refuses
    // it); a regular file reads the same.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    regular(&file.metadata()?)?;
    Ok(file)
}

/// Reads at most `limit` bytes of the regular file at `path`; a longer file is refused.
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    read_from(open(path)?, limit)
}

/// Reads at most `limit` bytes of the open `file`; a longer one is refused.
pub fn read_from(file: impl Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(refused(format!(
            "larger than {}, the most canon reads from it",
            size(limit)
        )));
    }
    Ok(bytes)
}

/// Reads the regular file at `path` as UTF-8 text of at most `limit` bytes.
pub fn read_to_string(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read(path, limit)?).map_err(|_| refused("not UTF-8 text".into()))
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// Refuses YAML nested deeper than `max` levels, cheaply and before any parser sees it.
///
/// It counts what can only deepen a document: open flow brackets (`[`, `{`) outside quotes and
/// comments, the block levels an indentation stack holds, and the `- ` entries that open a
/// sequence on one line (`- - - x`). The count is never below the real depth, and a block
/// scalar's lines (`key: |`) are skipped as the text they are, so a normal file passes.
pub fn check_yaml_depth(text: &str, max: usize) -> Result<(), String> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    // While inside a block scalar: the indentation its lines are deeper than.
    let mut scalar_of: Option<usize> = None;
    let mut quote: Option<char> = None;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        if let Some(parent) = scalar_of {
            if body.trim().is_empty() || indent > parent {
                continue;
            }
            scalar_of = None;
        }
        if quote.is_none() && flow == 0 {
            if body.is_empty() || body.starts_with('#') {
                continue;
            }
            while indents.last().is_some_and(|&i| i > indent) {
                indents.pop();
            }
            if indents.last() != Some(&indent) {
                indents.push(indent);
            }
        }
        let mut dashes = 0usize;
        let mut rest = body;
        if quote.is_none() && flow == 0 {
            while let Some(after) =
                rest.strip_prefix("- ")
                    .or(if rest == "-" { Some("") } else { None })
            {
                dashes += 1;
                rest = after.trim_start_matches(' ');
            }
        }
        // A quote opens a scalar only where one starts (after `:`, `-`, `,`, a bracket or at the
        // start), so `echo 'hi` stays the plain text it is to the parser too.
        let mut prev = ' ';
        let mut prev_mark = ':';
        let mut escaped = false;
        let mut peak = flow;
        for c in rest.chars() {
            match quote {
                Some(q) => {
                    if escaped {
                        escaped = false;
                    } else if q == '"' && c == '\\' {
                        escaped = true;
                    } else if c == q {
                        quote = None;
                    }
                }
                None => match c {
                    '#' if prev == ' ' || prev == '\t' => break,
                    '"' | '\'' if matches!(prev_mark, ':' | '-' | ',' | '[' | '{' | '?') => {
                        quote = Some(c)
                    }
                    '[' | '{' => {
                        flow += 1;
                        peak = peak.max(flow);
                    }
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            if !c.is_whitespace() {
                prev_mark = if quote.is_some() { '"' } else { c };
            }
            prev = c;
        }
        let depth = indents.len() + dashes + peak;
        if depth > max {
            return Err(format!(
                "nested deeper than {max} levels (line {}); canon refuses it rather than parse it",
                n + 1
            ));
        }
        if quote.is_none() && flow == 0 {
            let trimmed = rest.split(" #").next().unwrap_or("").trim_end();
            let scalar = trimmed.rsplit([' ', ':']).next().unwrap_or("");
            if (scalar.starts_with('|') || scalar.starts_with('>'))
                && scalar[1..]
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '-' || c == '+')
                && (trimmed.len() == scalar.len() || trimmed.ends_with(&format!(" {scalar}")))
            {
                scalar_of = Some(indent);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_yaml_passes_and_deep_yaml_is_refused() {
        let normal = "version: '3.8'\nservices:\n  app:\n    image: \"nginx:1.2\" # [not { flow\n    command: [\"sh\", \"-c\", \"echo {x}\"]\n    environment:\n      - A=1\n      - B=[2\n    configs:\n      - source: c\n        target: /x\n    entrypoint: |\n      if [ -z x ]; then\n              deep\n                  deeper\n      fi\nx-y: {a: [1, {b: 2}]}\n";
        check_yaml_depth(normal, 8).unwrap();
        let mut deep_block = String::new();
        for i in 0..100 {
            deep_block.push_str(&" ".repeat(i));
            deep_block.push_str("k:\n");
        }
        assert!(check_yaml_depth(&deep_block, 64)
            .unwrap_err()
            .contains("deeper than 64"));
        let deep_flow = format!("a: {}{}\n", "[".repeat(100), "]".repeat(100));
        assert!(check_yaml_depth(&deep_flow, 64).is_err());
        let deep_dashes = format!("{}x\n", "- ".repeat(100));
        assert!(check_yaml_depth(&deep_dashes, 64).is_err());
        // Brackets in quotes and comments add nothing.
        let quoted = format!("a: \"{}\" # {}\n", "[".repeat(100), "{".repeat(100));
        check_yaml_depth(&quoted, 64).unwrap();
    }

    #[test]
    fn a_special_file_is_refused_and_a_long_one_cut() {
        let e = read(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "0123456789a").unwrap();
        assert!(read(&path, 10).unwrap_err().to_string().contains("larger"));
        assert_eq!(read(&path, 11).unwrap(), b"0123456789a");
    }
}
