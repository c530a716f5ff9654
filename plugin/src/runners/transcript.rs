//! The recent commands of the run on this thread and the tail of their output, kept in memory so
//! a failed stage is explained in the log at the default level (issue 15: every command and its
//! output goes to DEBUG; a red run must still say what went wrong without it).
//!
//! The executor ([`super::exec`]) records every child here; the ladder ([`super::ladder`])
//! starts a fresh transcript with each stage and prints it when the stage fails. Separate from
//! both so the bound and the rendering are tested alone.
//!
//! The transcript is per thread: every runner runs its children on the thread that climbs the
//! ladder (the sweep gives each inline run its own blocking thread), so the commands of one run
//! never mix with another's, and no handle has to be threaded through every step. What is
//! recorded is what DEBUG shows: command lines with secret arguments masked and the output of
//! children, which never receive canon's secrets ([`super::exec::removed_variables`]).

use std::cell::RefCell;
use std::collections::VecDeque;

/// How many lines a transcript keeps (the newest).
pub const MAX_LINES: usize = 40;

/// How many of a command's last output lines are kept, per stream: a long JSON inspect would
/// otherwise push every command line out of the window.
pub const OUTPUT_LINES_PER_STREAM: usize = 8;

/// A bounded log of lines that keeps the newest.
#[derive(Debug, Clone)]
pub struct Recent {
    lines: VecDeque<String>,
    cap: usize,
}

impl Recent {
    /// Returns an empty transcript that keeps at most `cap` lines.
    pub fn new(cap: usize) -> Self {
        Recent {
            lines: VecDeque::with_capacity(cap),
            cap,
        }
    }

    /// Appends `line`, dropping the oldest line when full.
    pub fn push(&mut self, line: String) {
        if self.cap == 0 {
            return;
        }
        if self.lines.len() == self.cap {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// Returns the kept lines, oldest first.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(String::as_str)
    }

    /// Returns true when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Forgets every line.
    pub fn clear(&mut self) {
        self.lines.clear();
    }
}

/// Returns the lines a finished command leaves in the transcript after its command line: the
/// last [`OUTPUT_LINES_PER_STREAM`] lines of standard output, then of standard error, each as
/// `| line`, with a note of how many earlier lines were left out.
pub fn output_lines(stdout: &str, stderr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for text in [stdout, stderr] {
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let skipped = lines.len().saturating_sub(OUTPUT_LINES_PER_STREAM);
        if skipped > 0 {
            out.push(format!("| ... ({skipped} earlier lines)"));
        }
        out.extend(
            lines[skipped..]
                .iter()
                .map(|l| format!("| {}", l.trim_end())),
        );
    }
    out
}

thread_local! {
    static CURRENT: RefCell<Recent> = RefCell::new(Recent::new(MAX_LINES));
}

/// Appends `lines` to this thread's transcript.
pub fn record<I: IntoIterator<Item = String>>(lines: I) {
    CURRENT.with(|t| {
        let mut t = t.borrow_mut();
        for line in lines {
            t.push(line);
        }
    });
}

/// Starts a fresh transcript on this thread (a new stage).
pub fn start() {
    CURRENT.with(|t| t.borrow_mut().clear());
}

/// Returns this thread's transcript, oldest line first, and starts a fresh one.
pub fn take() -> Vec<String> {
    CURRENT.with(|t| {
        let mut t = t.borrow_mut();
        let lines = t.lines().map(String::from).collect();
        t.clear();
        lines
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transcript_keeps_only_the_newest_forty_lines() {
        let mut t = Recent::new(MAX_LINES);
        for i in 0..100 {
            t.push(format!("line {i}"));
        }
        let kept: Vec<&str> = t.lines().collect();
        assert_eq!(kept.len(), 40);
        assert_eq!(kept[0], "line 60");
        assert_eq!(kept[39], "line 99");
        t.clear();
        assert!(t.is_empty());
    }

    #[test]
    fn a_short_transcript_keeps_every_line_in_order() {
        let mut t = Recent::new(MAX_LINES);
        t.push("+ docker service ls".into());
        t.push("| abc".into());
        assert_eq!(
            t.lines().collect::<Vec<_>>(),
            ["+ docker service ls", "| abc"]
        );
    }

    #[test]
    fn only_the_tail_of_each_stream_is_kept_and_the_rest_is_counted() {
        let stdout: String = (1..=20).map(|i| format!("out {i}\n")).collect();
        let lines = output_lines(&stdout, "\nerror: no such service\n");
        assert_eq!(lines[0], "| ... (12 earlier lines)");
        assert_eq!(lines[1], "| out 13");
        assert_eq!(lines[8], "| out 20");
        assert_eq!(lines[9], "| error: no such service");
        assert_eq!(lines.len(), 10);
        assert!(output_lines("", "  \n").is_empty());
    }

    #[test]
    fn each_thread_has_its_own_transcript_and_take_starts_afresh() {
        start();
        record(["+ here".to_string()]);
        let other = std::thread::spawn(|| {
            record(["+ there".to_string()]);
            take()
        })
        .join()
        .unwrap();
        assert_eq!(other, ["+ there"]);
        assert_eq!(take(), ["+ here"]);
        assert!(take().is_empty());
    }
}
