//! A recipe's `.env.sample` (and the `export` lines of its `abra.sh`), read the way abra reads an
//! app's `.env`: with godotenv's rules (abra reads `.env` files through a fork of
//! `github.com/joho/godotenv` that also keeps modifiers from trailing comments).
//!
//! Separate from compose interpolation ([`super::interpolate`]): a `.env` line is not a compose
//! value. It knows no `${V:-d}` defaults and raises no errors; it expands against the lines above
//! it only. The rules, one line at a time:
//!
//! - `KEY=value` (or godotenv's `KEY: value`); blank lines and lines starting with `#` are
//!   skipped, so a commented-out line leaves its key unset; a leading `export ` is allowed.
//! - an unquoted value ends at the line's end; ` #` starts a comment; surrounding spaces go.
//! - `'single quotes'` keep everything literally.
//! - `"double quotes"` take `\n` and `\r`, and `\x` gives `x` (`\"`, `\\`); `\$` gives a literal
//!   `$`; a quoted value may span lines; a `"` after a backslash does not close it.
//! - unquoted and double-quoted values expand `$VAR` and `${VAR}` (names of `A-Z`, `0-9`, `_`)
//!   against the keys set by earlier lines, the same key included, so
//!   `COMPOSE_FILE="$COMPOSE_FILE:compose.postgres.yml"` appends; an unknown name is empty.
//! - a later line for a key overrides an earlier one.
//! - a trailing comment's `name=value` words are that key's modifiers
//!   (`SECRET_X_VERSION=v1 # length=128`).
//!
//! A line godotenv rejects (no `=` or `:` after the key, a key with a character other than
//! letters, digits, `_` and `.`, a quoted value whose quote never closes) makes abra fail to
//! read the file; canon keeps each such line ([`EnvFile::rejected`], with its line number) so
//! the reader can refuse the file naming the line, and reads the lines after it.
//!
//! `abra.sh` is shell; abra reads only its top-level `export NAME=value` lines
//! ([`parse_abra_sh`]).

use std::collections::BTreeMap;

/// One `KEY=value` line, with its value expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvEntry {
    /// The key.
    pub key: String,
    /// The value after quotes, escapes and expansion.
    pub value: String,
    /// The `name=value` words of the line's trailing comment (`length=128`).
    pub modifiers: BTreeMap<String, String>,
}

/// A parsed env file: its lines in file order (a key may appear more than once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvFile {
    /// Every `KEY=value` line, in file order.
    pub entries: Vec<EnvEntry>,
    /// The lines godotenv rejects, in file order.
    pub rejected: Vec<RejectedLine>,
}

/// A line godotenv rejects, so abra cannot read the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLine {
    /// Its line number, from 1.
    pub line: usize,
    /// Why, in godotenv's terms (the line's text is not repeated).
    pub reason: String,
}

/// What one step of the reader found.
enum Line {
    /// A `KEY=value` line.
    Entry(EnvEntry),
    /// A blank or comment line.
    Skip,
    /// A line godotenv rejects, and why.
    Rejected(String),
}

impl EnvFile {
    /// Parses `text` with godotenv's rules (see the module docs).
    pub fn parse(text: &str) -> Self {
        Self::parse_pinned(text, &BTreeMap::new())
    }

    /// Parses `text` like [`EnvFile::parse`], except that a line for a key in `pinned` takes the
    /// pinned value, and later lines expand against it: the way `abra app new` writes the app's
    /// own `DOMAIN` into the copy of `.env.sample` before anything reads it.
    pub fn parse_pinned(text: &str, pinned: &BTreeMap<String, String>) -> Self {
        let text = text.replace("\r\n", "\n");
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        let mut entries = Vec::new();
        let mut rejected = Vec::new();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let line = text[..text.len() - rest.len()].matches('\n').count() + 1;
            let (found, tail) = next_entry(rest, &vars);
            rest = tail;
            let mut entry = match found {
                Line::Entry(entry) => entry,
                Line::Skip => continue,
                Line::Rejected(reason) => {
                    rejected.push(RejectedLine { line, reason });
                    continue;
                }
            };
            if let Some(v) = pinned.get(&entry.key) {
                entry.value = v.clone();
            }
            vars.insert(entry.key.clone(), entry.value.clone());
            entries.push(entry);
        }
        EnvFile { entries, rejected }
    }

    /// Returns each key's value, a later line overriding an earlier one.
    pub fn vars(&self) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect()
    }

    /// Returns each key's modifiers, from the last line that sets it (keys without any left out).
    pub fn modifiers(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for e in &self.entries {
            if e.modifiers.is_empty() {
                out.remove(&e.key);
            } else {
                out.insert(e.key.clone(), e.modifiers.clone());
            }
        }
        out
    }

    /// Returns the `(key, value)` pairs in file order.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect()
    }
}

/// Parses `.env.sample`-style text into its `(key, value)` pairs in file order (see the module
/// docs for the rules).
pub fn parse_env(text: &str) -> Vec<(String, String)> {
    EnvFile::parse(text).pairs()
}

/// Parses the top-level `export KEY=VALUE` lines of an `abra.sh` (the config versions), as abra
/// reads them: a line that starts with `export ` at its first column, outside a function's body
/// (`name() {` to the `}` that closes it). Other lines are shell and ignored; an indented
/// `export` or one inside a function runs only when a command calls it.
pub fn parse_abra_sh(text: &str) -> Vec<(String, String)> {
    let mut depth = 0usize;
    let mut exports = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if depth == 0 && line.starts_with("export ") && line.contains('=') {
            exports.push(line);
        }
        if trimmed.starts_with('#') {
            continue;
        }
        let opens = trimmed.ends_with('{');
        let closes = trimmed.starts_with('}');
        if closes {
            depth = depth.saturating_sub(1);
        }
        if opens {
            depth += 1;
        }
    }
    parse_env(&exports.join("\n"))
}

/// Splits `s` at the end of its first line: the line and what follows the newline.
fn split_line(s: &str) -> (&str, &str) {
    match s.find('\n') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

/// Reads the next line of `src`: an entry, a blank or comment line, or a line godotenv rejects;
/// and the text after it.
fn next_entry<'a>(src: &'a str, vars: &BTreeMap<String, String>) -> (Line, &'a str) {
    let src = src.trim_start_matches([' ', '\t']);
    let (line, after_line) = split_line(src);
    if line.trim().is_empty() || line.starts_with('#') {
        return (Line::Skip, after_line);
    }
    let stated = line
        .strip_prefix("export ")
        .map(|l| l.trim_start())
        .unwrap_or(line);
    // godotenv's key: letters, digits, `_` and `.` (spaces skipped), up to `=` or `:`.
    let mut eq = None;
    for (i, c) in stated.char_indices() {
        match c {
            '=' | ':' => {
                eq = Some(i);
                break;
            }
            ' ' | '\t' | '_' | '.' => {}
            c if c.is_alphanumeric() => {}
            c => {
                return (
                    Line::Rejected(format!("unexpected character {c:?} in a variable name")),
                    after_line,
                )
            }
        }
    }
    let Some(eq) = eq else {
        return (
            Line::Rejected("no `=` after the variable name".into()),
            after_line,
        );
    };
    let key = stated[..eq].trim();
    if key.is_empty() {
        return (
            Line::Rejected("no variable name before the `=`".into()),
            after_line,
        );
    }
    // The value may run past this line (a quoted value), so it is read from the whole text.
    let offset = (line.len() - stated.len()) + eq + 1;
    let raw = src[offset..].trim_start_matches([' ', '\t']);
    let (value, comment, tail) = match raw.chars().next() {
        Some(q @ ('\'' | '"')) => match closing_quote(&raw[1..], q) {
            Some(end) => {
                let inside = &raw[1..1 + end];
                let (trailing, tail) = split_line(&raw[1 + end + 1..]);
                let comment = trailing.find('#').map(|i| &trailing[i + 1..]);
                let value = if q == '\'' {
                    inside.to_string()
                } else {
                    expand_vars(&expand_escapes(inside), vars)
                };
                (value, comment, tail)
            }
            None => {
                return (
                    Line::Rejected(format!("the quoted value's {q} is never closed")),
                    after_line,
                )
            }
        },
        _ => {
            let (line, tail) = split_line(raw);
            let (value, comment) = match line.find(" #").or_else(|| line.find("\t#")) {
                Some(i) => (&line[..i], Some(&line[i + 2..])),
                None if line.starts_with('#') => ("", Some(&line[1..])),
                None => (line, None),
            };
            (expand_vars(value.trim(), vars), comment, tail)
        }
    };
    let entry = EnvEntry {
        key: key.to_string(),
        value,
        modifiers: comment.map(modifiers).unwrap_or_default(),
    };
    (Line::Entry(entry), tail)
}

/// Returns the index in `s` of the quote `q` that closes a value (one not after a backslash).
fn closing_quote(s: &str, q: char) -> Option<usize> {
    let bytes = s.as_bytes();
    s.char_indices()
        .find(|&(i, c)| c == q && (i == 0 || bytes[i - 1] != b'\\'))
        .map(|(i, _)| i)
}

/// Returns the `name=value` words of a comment.
fn modifiers(comment: &str) -> BTreeMap<String, String> {
    comment
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// godotenv's escapes in a double-quoted value: `\n` and `\r` become the control characters,
/// then `\x` becomes `x` for every `x` but `$` (left for [`expand_vars`]).
fn expand_escapes(s: &str) -> String {
    let mut first = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            first.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => first.push('\n'),
            Some('r') => first.push('\r'),
            Some(other) => {
                first.push('\\');
                first.push(other);
            }
            None => first.push('\\'),
        }
    }
    let mut out = String::with_capacity(first.len());
    let mut chars = first.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(&next)) if next != '$' => {
                out.push(next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// godotenv's expansion: `$NAME`, `${NAME}` (`NAME` of `A-Z`, `0-9`, `_`) take the value of an
/// earlier key, or nothing; `\$` is a literal `$`; any other `$` stays.
fn expand_vars(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        if at > 0 && rest.as_bytes()[at - 1] == b'\\' {
            out.push_str(&rest[..at - 1]);
            out.push('$');
            rest = &rest[at + 1..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let braced = after.starts_with('{');
        let name_start = usize::from(braced);
        let name_len = after[name_start..]
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len() - name_start);
        if name_len == 0 {
            out.push('$');
            rest = after;
            continue;
        }
        let name = &after[name_start..name_start + name_len];
        out.push_str(vars.get(name).map(String::as_str).unwrap_or(""));
        let mut end = name_start + name_len;
        if after[end..].starts_with('}') {
            end += 1;
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_sample_lines_parse_like_abra_reads_them() {
        let text =
            "TYPE=gitea\n\n# comment\nDOMAIN=gitea.example.com\nSECRET_DB_VERSION=v1 # length=32\n\
                    QUOTED=\"a # b\"\nSINGLE='x y'\nexport EXPORTED=1\n#COMMENTED=2\nEMPTY=\n";
        assert_eq!(
            parse_env(text),
            vec![
                ("TYPE".into(), "gitea".into()),
                ("DOMAIN".into(), "gitea.example.com".into()),
                ("SECRET_DB_VERSION".into(), "v1".into()),
                ("QUOTED".into(), "a # b".into()),
                ("SINGLE".into(), "x y".into()),
                ("EXPORTED".into(), "1".into()),
                ("EMPTY".into(), "".into()),
            ]
        );
        assert_eq!(
            parse_abra_sh("#!/bin/sh\nexport NGINX_CONF_VERSION=v3\nfoo() { bar=1; }\n"),
            vec![("NGINX_CONF_VERSION".into(), "v3".into())]
        );
    }

    /// One rule a row: the file, the key looked at, and its value (`None`: unset).
    #[test]
    fn each_godotenv_rule_gives_the_value_abra_would_see() {
        let table: &[(&str, &str, &str, Option<&str>)] = &[
            ("plain value", "A=b", "A", Some("b")),
            ("spaces around are trimmed", "A =  b  ", "A", Some("b")),
            ("an empty value is set", "A=", "A", Some("")),
            ("export prefix", "export A=b", "A", Some("b")),
            ("commented-out line stays unset", "#A=b", "A", None),
            ("indented comment stays unset", "  # A=b", "A", None),
            ("inline comment dropped", "A=b # note", "A", Some("b")),
            ("a hash without space is kept", "A=b#c", "A", Some("b#c")),
            ("comment right after equals", "A= # note", "A", Some("")),
            ("later line overrides", "A=1\nA=2", "A", Some("2")),
            (
                "$VAR expands an earlier key",
                "A=x\nB=$A-y",
                "B",
                Some("x-y"),
            ),
            (
                "${VAR} expands an earlier key",
                "A=x\nB=${A}y",
                "B",
                Some("xy"),
            ),
            ("a later key is not seen", "B=$A\nA=x", "B", Some("")),
            ("unknown is empty", "B=[$NOPE]", "B", Some("[]")),
            ("lowercase is no name", "a=1\nB=$a", "B", Some("$a")),
            ("same key appends", "A=x\nA=\"$A:y\"", "A", Some("x:y")),
            (
                "single quotes are literal",
                "A=x\nB='$A \\n'",
                "B",
                Some("$A \\n"),
            ),
            ("single quotes keep #", "B='a # b'", "B", Some("a # b")),
            ("double quotes expand", "A=x\nB=\"$A y\"", "B", Some("x y")),
            (
                "double quotes keep #",
                "B=\"a # b\" # c",
                "B",
                Some("a # b"),
            ),
            ("double \\n is a newline", "B=\"a\\nb\"", "B", Some("a\nb")),
            (
                "double \\\" is a quote",
                "B=\"say \\\"hi\\\"\"",
                "B",
                Some("say \"hi\""),
            ),
            (
                "double \\\\ is a backslash",
                "B=\"a\\\\b\"",
                "B",
                Some("a\\b"),
            ),
            ("double \\$ is a dollar", "A=x\nB=\"\\$A\"", "B", Some("$A")),
            ("unquoted \\$ is a dollar", "A=x\nB=\\$A", "B", Some("$A")),
            ("unquoted has no escapes", "B=a\\nb", "B", Some("a\\nb")),
            (
                "double quotes span lines",
                "B=\"a\nb\"\nC=1",
                "B",
                Some("a\nb"),
            ),
            (
                "after a multi-line value",
                "B=\"a\nb\"\nC=1",
                "C",
                Some("1"),
            ),
            ("unterminated quote is no value", "B=\"abc\nC=1", "B", None),
            (
                "the line after an unterminated quote",
                "B=\"abc\nC=1",
                "C",
                Some("1"),
            ),
            (
                "line without equals is no value",
                "junk\nA=1",
                "A",
                Some("1"),
            ),
            ("bad key is no value", "A-B=1", "A-B", None),
            ("yaml-style colon", "A: b", "A", Some("b")),
            (
                "a url value keeps its colon",
                "A=http://x",
                "A",
                Some("http://x"),
            ),
            ("crlf line ends", "A=1\r\nB=2\r\n", "A", Some("1")),
            (
                "dollar without name kept",
                "B=cost $ 5",
                "B",
                Some("cost $ 5"),
            ),
            ("digits make a name too", "B=cost $5", "B", Some("cost ")),
        ];
        for (rule, text, key, want) in table {
            let vars = EnvFile::parse(text).vars();
            assert_eq!(
                vars.get(*key).map(String::as_str),
                *want,
                "{rule}: {text:?}"
            );
        }
    }

    #[test]
    fn bonfires_env_sample_builds_compose_file_by_expansion() {
        // The shape of bonfire-networks/bonfire-coop-cloud's `.env.sample`.
        let text = r#"TYPE=bonfire

LETS_ENCRYPT_ENV=production

# choose what flavour of Bonfire to run. default: social
#APP_FLAVOUR=social

# enter your instance's domain name
DOMAIN=bonfire.example.com

COMPOSE_FILE="compose.yml"

# ====================================
# DATABASE CONFIG
COMPOSE_FILE="$COMPOSE_FILE:compose.postgres.yml"
SECRET_POSTGRES_PASSWORD_VERSION=v1

# Enable `compose.postgres.tune.yml` for Postgres tuning
# COMPOSE_FILE="$COMPOSE_FILE:compose.postgres.tune.yml"

#COMPOSE_FILE="$COMPOSE_FILE:compose.mail.yml"
OAUTH_ISSUER=https://${DOMAIN}
SECRET_SECRET_KEY_BASE_VERSION=v1 # length=128
"#;
        let file = EnvFile::parse(text);
        let vars = file.vars();
        assert_eq!(vars["COMPOSE_FILE"], "compose.yml:compose.postgres.yml");
        assert_eq!(vars["OAUTH_ISSUER"], "https://bonfire.example.com");
        assert_eq!(vars["SECRET_POSTGRES_PASSWORD_VERSION"], "v1");
        assert!(!vars.contains_key("APP_FLAVOUR"));
        assert_eq!(
            file.modifiers(),
            BTreeMap::from([(
                "SECRET_SECRET_KEY_BASE_VERSION".to_string(),
                BTreeMap::from([("length".to_string(), "128".to_string())])
            )])
        );

        let pinned = BTreeMap::from([("DOMAIN".to_string(), "app.canon.localhost".to_string())]);
        let vars = EnvFile::parse_pinned(text, &pinned).vars();
        assert_eq!(vars["DOMAIN"], "app.canon.localhost");
        assert_eq!(vars["OAUTH_ISSUER"], "https://app.canon.localhost");
    }

    #[test]
    fn lines_godotenv_rejects_are_kept_with_their_line_numbers() {
        let text = "TYPE=x\n\nnot a line\nA-B=1\n# fine\n=v\nQ=\"never closed\nLAST=1\n";
        let file = EnvFile::parse(text);
        let got: Vec<(usize, &str)> = file
            .rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (3, "no `=` after the variable name"),
                (4, "unexpected character '-' in a variable name"),
                (6, "no variable name before the `=`"),
                (7, "the quoted value's \" is never closed"),
            ]
        );
        assert_eq!(file.vars()["LAST"], "1", "the lines after are read");
        assert!(EnvFile::parse("A=1\n# B\nC: 2\n").rejected.is_empty());
    }

    #[test]
    fn only_top_level_exports_of_abra_sh_count() {
        let text = r#"#!/bin/bash
export APP_ENTRYPOINT_VERSION=v4
export PG_BACKUP_VERSION=v6
  export INDENTED_VERSION=v1

set_admin() {
export IN_FUNCTION_VERSION=v9
  if [ -n "$1" ]; then
    export NESTED_VERSION=v2
  fi
}

function other {
export ALSO_IN_FUNCTION=v3
}
# export COMMENTED_VERSION=v1
export AFTER_FUNCTIONS_VERSION=v5
"#;
        assert_eq!(
            parse_abra_sh(text),
            vec![
                ("APP_ENTRYPOINT_VERSION".into(), "v4".into()),
                ("PG_BACKUP_VERSION".into(), "v6".into()),
                ("AFTER_FUNCTIONS_VERSION".into(), "v5".into()),
            ]
        );
    }

    #[test]
    fn modifiers_come_from_the_trailing_comment_of_the_last_line() {
        let file = EnvFile::parse(
            "A=v1 # length=64 charset=hex\nB=\"v1\" # length=32\nC=v1 # a plain note\nD=v1 # length=8\nD=v2\n",
        );
        let m = file.modifiers();
        assert_eq!(m["A"]["length"], "64");
        assert_eq!(m["A"]["charset"], "hex");
        assert_eq!(m["B"]["length"], "32");
        assert!(!m.contains_key("C"));
        assert!(
            !m.contains_key("D"),
            "a later line without modifiers clears them"
        );
    }
}
