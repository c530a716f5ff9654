//! The listener's clock: unix milliseconds for due times and fixed-width RFC 3339 text for
//! stored timestamps.
//!
//! A leaf module so the routes (which stamp deliveries) and the worker (which stamps attempts and
//! schedules retries) read the same clock without importing each other.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Now as RFC 3339 in UTC with microseconds, a fixed width so the text sorts by time.
pub fn now_text() -> String {
    text_of(time::OffsetDateTime::now_utc())
}

/// The instant `ago` before now, as [`now_text`] writes it: stored timestamps older than it
/// sort before it.
pub fn text_ago(ago: std::time::Duration) -> String {
    let now = time::OffsetDateTime::now_utc();
    let ago = time::Duration::try_from(ago).unwrap_or(time::Duration::MAX);
    text_of(
        now.checked_sub(ago)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    )
}

/// `at` in UTC as fixed-width RFC 3339 text with microseconds.
fn text_of(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;

    #[test]
    fn timestamps_have_one_width_so_text_order_is_time_order() {
        let a = now_text();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = now_text();
        assert_eq!(a.len(), "2024-01-01T00:00:00.000000Z".len(), "{a}");
        assert_eq!(a.len(), b.len(), "{a} {b}");
        assert!(a < b, "{a} then {b}");
    }

    #[test]
    fn a_time_ago_sorts_before_now_and_a_huge_one_is_the_epoch() {
        let hour_ago = text_ago(std::time::Duration::from_secs(3600));
        assert!(hour_ago < now_text(), "{hour_ago}");
        assert_eq!(hour_ago.len(), now_text().len(), "{hour_ago}");
        assert_eq!(
            text_ago(std::time::Duration::MAX),
            "1970-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn milliseconds_and_text_name_the_same_instant() {
        let before = now_ms();
        let text = now_text();
        let after = now_ms();
        let parsed = time::OffsetDateTime::parse(&text, &Rfc3339).expect("RFC 3339");
        let ms = (parsed.unix_timestamp_nanos() / 1_000_000) as i64;
        assert!(before <= ms && ms <= after, "{before} <= {ms} <= {after}");
    }
}
