//! The recent commands of the run on this thread and the tail of their output, kept in memory so
//! a failed stage is explained in the log at the default level (issue 15: every command and its
//! output goes to DEBUG; a red run must still say what went wrong without it).
//!
//! The executor ([`super::exec`]) records every child here; the ladder ([`crate::runners::ladder`])
//! starts a fresh transcript with each stage and prints it when the stage fails. Separate from
//! both so the bound and the rendering are tested alone.
//!
//! The transcript is per thread: every runner runs its children on the thread that climbs the
//! ladder (the sweep gives each inline run its own blocking thread), so the commands of one run
//! never mix with another's, and no handle has to be threaded through every step. What is
//! recorded is what DEBUG shows: command lines with secret arguments masked and the output of
//! children, which never receive canon's secrets ([`super::exec::Inherit`]).

use std::cell::RefCell;
use std::collections::VecDeque;

/// How many lines a transcript keeps (the newest).
pub const MAX_LINES: usize = 40;

/// How many of a command's last output lines are kept, per stream: a long JSON inspect would
/// otherwise push every command line out of the window.
pub const OUTPUT_LINES_PER_STREAM: usize = 8;

/// A bounded log of commands and their output that keeps the newest lines. A command that runs
/// again with the same output (a poll) moves to the end with a count instead of filling the
/// window, so the commands before a wait stay visible.
#[derive(Debug, Clone)]
pub struct Recent {
    /// One entry per distinct command and output: its lines and how often it ran.
    blocks: VecDeque<(Vec<String>, usize)>,
    cap: usize,
}

impl Recent {
    /// Returns an empty transcript that keeps at most `cap` lines.
    pub fn new(cap: usize) -> Self {
        Recent {
            blocks: VecDeque::new(),
            cap,
        }
    }

    /// Appends one command's lines (its command line, then its output), dropping the oldest
    /// lines when full.
    pub fn push(&mut self, lines: Vec<String>) {
        if lines.is_empty() {
            return;
        }
        let mut runs = 1;
        if let Some(i) = self.blocks.iter().position(|(b, _)| *b == lines) {
            runs += self.blocks.remove(i).map_or(0, |(_, n)| n);
        }
        self.blocks.push_back((lines, runs));
        let mut len: usize = self.blocks.iter().map(|(b, _)| b.len()).sum();
        while len > self.cap {
            let Some((front, _)) = self.blocks.front_mut() else {
                break;
            };
            let drop = (len - self.cap).min(front.len());
            front.drain(..drop);
            len -= drop;
            if front.is_empty() {
                self.blocks.pop_front();
            }
        }
    }

    /// Returns the kept lines, oldest first; a command that ran more than once says how often.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (block, runs) in &self.blocks {
            for (i, line) in block.iter().enumerate() {
                if i == 0 && *runs > 1 {
                    out.push(format!("{line}  ({runs} times)"));
                } else {
                    out.push(line.clone());
                }
            }
        }
        out
    }

    /// Returns true when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Forgets every line.
    pub fn clear(&mut self) {
        self.blocks.clear();
    }
}

/// Returns the lines a finished command leaves in the transcript after its command line: the
/// last [`OUTPUT_LINES_PER_STREAM`] lines of standard output, then of standard error, each as
/// `| line`, with a note of how many earlier lines were left out. A longer JSON document (an
/// inspect) is only counted: its last lines are closing brackets that explain nothing.
pub fn output_lines(stdout: &str, stderr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for text in [stdout, stderr] {
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let skipped = lines.len().saturating_sub(OUTPUT_LINES_PER_STREAM);
        if skipped > 0 && text.trim_start().starts_with(['[', '{']) {
            out.push(format!("| ({} lines of JSON)", lines.len()));
            continue;
        }
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

/// Appends one command's lines (its command line, then its output) to this thread's transcript.
pub fn record(lines: Vec<String>) {
    CURRENT.with(|t| t.borrow_mut().push(lines));
}

/// Starts a fresh transcript on this thread (a new stage).
pub fn start() {
    CURRENT.with(|t| t.borrow_mut().clear());
}

/// Returns this thread's transcript, oldest line first, and starts a fresh one.
pub fn take() -> Vec<String> {
    CURRENT.with(|t| {
        let mut t = t.borrow_mut();
        let lines = t.lines();
        t.clear();
        lines
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Vec<String> {
        vec![line.to_string()]
    }

    #[test]
    fn a_transcript_keeps_only_the_newest_forty_lines() {
        let mut t = Recent::new(MAX_LINES);
        for i in 0..100 {
            t.push(vec![format!("+ command {i}"), format!("| output {i}")]);
        }
        let kept = t.lines();
        assert_eq!(kept.len(), 40);
        assert_eq!(kept[0], "+ command 80");
        assert_eq!(kept[39], "| output 99");
        t.clear();
        assert!(t.is_empty());
    }

    #[test]
    fn a_command_cut_by_the_bound_keeps_its_newest_lines() {
        let mut t = Recent::new(3);
        t.push(vec!["+ a".into(), "| 1".into(), "| 2".into()]);
        t.push(one("+ b"));
        assert_eq!(t.lines(), ["| 1", "| 2", "+ b"]);
    }

    #[test]
    fn a_repeated_poll_moves_to_the_end_with_a_count() {
        let mut t = Recent::new(MAX_LINES);
        t.push(vec![
            "+ docker stack deploy".into(),
            "| Creating service".into(),
        ]);
        for _ in 0..30 {
            t.push(vec!["+ docker service ls".into(), "| abc".into()]);
            t.push(one("+ docker service ps"));
        }
        t.push(vec!["+ docker service ls".into(), "| abc".into()]);
        assert_eq!(
            t.lines(),
            [
                "+ docker stack deploy",
                "| Creating service",
                "+ docker service ps  (30 times)",
                "+ docker service ls  (31 times)",
                "| abc",
            ]
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
        let inspect: String = std::iter::once("[\n".to_string())
            .chain((1..=20).map(|i| format!("  {{\"k\": {i}}},\n")))
            .chain(std::iter::once("]\n".to_string()))
            .collect();
        assert_eq!(output_lines(&inspect, ""), ["| (22 lines of JSON)"]);
        assert_eq!(output_lines("[]\n", ""), ["| []"]);
    }

    #[test]
    fn each_thread_has_its_own_transcript_and_take_starts_afresh() {
        start();
        record(one("+ here"));
        let other = std::thread::spawn(|| {
            record(one("+ there"));
            take()
        })
        .join()
        .unwrap();
        assert_eq!(other, ["+ there"]);
        assert_eq!(take(), ["+ here"]);
        assert!(take().is_empty());
    }
}
