//! Counters and latency histograms, rendered as Prometheus text at `GET /metrics`.
//!
//! Kept in process with atomics: the few series canon needs do not justify a metrics framework.
//! Gauges that live in the journal (queue depth, last event per recipe) are read at scrape time.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Delivery outcomes counted (`outcome` label).
pub const OUTCOMES: [&str; 9] = [
    "accepted",
    "duplicate",
    "moved",
    "deleted",
    "ignored",
    "rejected_signature",
    "rejected_request",
    "rejected_forge",
    "error",
];

/// Histogram bucket bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A fixed-bucket latency histogram.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; 12],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// The listener's in-process metrics.
#[derive(Default)]
pub struct Metrics {
    deliveries: [AtomicU64; OUTCOMES.len()],
    ignored_records_dropped: AtomicU64,
    /// Worker attempts started.
    pub job_attempts: AtomicU64,
    /// Worker attempts that failed (retried or failed for good).
    pub job_failures: AtomicU64,
    /// Jobs that failed for good.
    pub jobs_failed: AtomicU64,
    /// Mirror sync latency.
    pub sync_latency: Histogram,
    /// Drone trigger latency (find + start).
    pub trigger_latency: Histogram,
    /// Durable ack latency (journal write to fsync).
    pub journal_latency: Histogram,
    last_error: Mutex<Option<String>>,
}

impl Metrics {
    /// Counts a delivery with `outcome` (one of [`OUTCOMES`]).
    pub fn delivery(&self, outcome: &str) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.deliveries[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Returns the count of deliveries with `outcome`.
    pub fn deliveries(&self, outcome: &str) -> u64 {
        OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .map(|i| self.deliveries[i].load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Counts an ignored delivery whose record was dropped because the journal queue was full.
    pub fn ignored_dropped(&self) {
        self.ignored_records_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Remembers the last journal error for `/readyz`.
    pub fn set_last_error(&self, e: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }

    /// Renders every series; `jobs` is (state, count), `last_events` is (recipe, age seconds),
    /// `missed` is (recipe, tags the weekly sweep had to start that no webhook announced).
    pub fn render(
        &self,
        jobs: &[(String, u64)],
        last_events: &[(String, f64)],
        missed: &[(String, u64)],
    ) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP canon_listener_deliveries_total Webhook deliveries by outcome.\n# TYPE canon_listener_deliveries_total counter\n");
        for (i, o) in OUTCOMES.iter().enumerate() {
            let _ = writeln!(
                out,
                "canon_listener_deliveries_total{{outcome=\"{o}\"}} {}",
                self.deliveries[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP canon_listener_ignored_records_dropped_total Ignored deliveries not journaled because the journal queue was full.\n# TYPE canon_listener_ignored_records_dropped_total counter\ncanon_listener_ignored_records_dropped_total {}", self.ignored_records_dropped.load(Ordering::Relaxed));
        out.push_str(
            "# HELP canon_listener_jobs Jobs by state.\n# TYPE canon_listener_jobs gauge\n",
        );
        for state in ["queued", "running", "retrying", "done", "skipped", "failed"] {
            let n = jobs
                .iter()
                .find(|(s, _)| s == state)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            let _ = writeln!(out, "canon_listener_jobs{{state=\"{state}\"}} {n}");
        }
        let depth: u64 = jobs
            .iter()
            .filter(|(s, _)| matches!(s.as_str(), "queued" | "running" | "retrying"))
            .map(|(_, n)| n)
            .sum();
        let _ = writeln!(out, "# HELP canon_listener_queue_depth Jobs not finished yet.\n# TYPE canon_listener_queue_depth gauge\ncanon_listener_queue_depth {depth}");
        for (name, help, v) in [
            (
                "canon_listener_job_attempts_total",
                "Job attempts started.",
                &self.job_attempts,
            ),
            (
                "canon_listener_job_failures_total",
                "Job attempts that failed.",
                &self.job_failures,
            ),
            (
                "canon_listener_jobs_failed_total",
                "Jobs that failed for good.",
                &self.jobs_failed,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP canon_listener_last_event_age_seconds Seconds since the last delivery for each recipe.\n# TYPE canon_listener_last_event_age_seconds gauge\n");
        for (recipe, age) in last_events {
            // Recipe names are [a-z0-9_-], safe inside a label value.
            let _ = writeln!(
                out,
                "canon_listener_last_event_age_seconds{{recipe=\"{recipe}\"}} {age:.3}"
            );
        }
        out.push_str("# HELP canon_missed_webhooks_total Release tags the weekly sweep had to start with no earlier build or listener job, per recipe.\n# TYPE canon_missed_webhooks_total counter\n");
        for (recipe, n) in missed {
            let _ = writeln!(
                out,
                "canon_missed_webhooks_total{{recipe=\"{recipe}\"}} {n}"
            );
        }
        self.sync_latency.render(
            &mut out,
            "canon_listener_sync_seconds",
            "Mirror sync latency.",
        );
        self.trigger_latency.render(
            &mut out,
            "canon_listener_trigger_seconds",
            "Drone trigger latency.",
        );
        self.journal_latency.render(
            &mut out,
            "canon_listener_journal_seconds",
            "Time from a verified delivery to its durable journal write.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let m = Metrics::default();
        m.delivery("accepted");
        m.delivery("accepted");
        m.delivery("no-such-outcome");
        m.sync_latency.observe(Duration::from_millis(30));
        let text = m.render(
            &[("queued".into(), 2), ("done".into(), 5)],
            &[("custom-html".into(), 12.5)],
            &[("custom-html".into(), 3)],
        );
        assert!(text.contains("canon_missed_webhooks_total{recipe=\"custom-html\"} 3"));
        assert!(text.contains("canon_listener_deliveries_total{outcome=\"accepted\"} 2"));
        assert!(text.contains("canon_listener_queue_depth 2"));
        assert!(text.contains("canon_listener_jobs{state=\"done\"} 5"));
        assert!(
            text.contains("canon_listener_last_event_age_seconds{recipe=\"custom-html\"} 12.500")
        );
        assert!(text.contains("canon_listener_sync_seconds_bucket{le=\"0.025\"} 0"));
        assert!(text.contains("canon_listener_sync_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("canon_listener_sync_seconds_count 1"));
    }
}
