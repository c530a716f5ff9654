//! An error and its `source()` chain as text: one line for reports and job records, or one line
//! per cause for a person at a terminal. Every binary prints errors through here, so a cause is
//! never dropped and never printed twice.

use std::error::Error;
use std::fmt::Write as _;

/// Returns `err` and its sources as one line, `error: cause: cause`. A source whose text the line
/// already holds (an error that repeats its cause in its own message) is not repeated.
pub fn one_line(err: &dyn Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = s.source();
    }
    line
}

/// Returns `err` as `"{prefix}: {err}"` and each source on its own `  caused by: ` line. A source
/// whose text is already printed (an error that repeats its cause in its own message) is not
/// printed again.
pub fn lines(prefix: &str, err: &dyn Error) -> String {
    let mut text = format!("{prefix}: {err}");
    let mut source = err.source();
    while let Some(s) = source {
        let cause = s.to_string();
        if !text.contains(&cause) {
            let _ = write!(text, "\n  caused by: {cause}");
        }
        source = s.source();
    }
    text
}

/// Prints [`lines`] on stderr (a closed stderr is not a panic: [`crate::console`]).
pub fn print(prefix: &str, err: &dyn Error) {
    crate::errln!("{}", lines(prefix, err));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("cannot sync recipe app")]
        Plain(#[source] Inner),
        #[error("cannot sync: {0}")]
        Repeating(#[source] Inner),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Inner;

    #[test]
    fn one_line_joins_every_cause() {
        assert_eq!(
            one_line(&Outer::Plain(Inner)),
            "cannot sync recipe app: connection refused"
        );
    }

    #[test]
    fn one_line_does_not_repeat_a_cause_the_message_already_holds() {
        assert_eq!(
            one_line(&Outer::Repeating(Inner)),
            "cannot sync: connection refused"
        );
    }

    #[test]
    fn lines_print_each_cause_once() {
        assert_eq!(
            lines("error", &Outer::Repeating(Inner)),
            "error: cannot sync: connection refused"
        );
    }

    #[test]
    fn lines_put_each_cause_on_its_own_line() {
        assert_eq!(
            lines("error", &Outer::Plain(Inner)),
            "error: cannot sync recipe app\n  caused by: connection refused"
        );
    }
}
