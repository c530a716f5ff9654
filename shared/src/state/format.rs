//! The format version of the state files: every `canonical.json` and every `history.jsonl` line
//! canon writes carries `"format": FORMAT`; a reader accepts [`FORMAT`] and the one before it.
//!
//! Format 0 is what canon 0.1 wrote (no `format` key, read as 0); format 1 (canon 0.2) adds the
//! key and nothing else. A file of a newer format is refused with an error that says so, never
//! half read: an older canon must not take a decision on a record it does not understand.
//! `CHANGELOG.md` says what each format changed and how to upgrade.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The format this canon writes.
pub const FORMAT: u64 = 1;

/// The oldest format this canon still reads.
pub const OLDEST_READ: u64 = 0;

/// A value with the format key before its own fields.
#[derive(Serialize)]
struct Versioned<'a, T> {
    format: u64,
    #[serde(flatten)]
    value: &'a T,
}

/// Returns `value` as one JSON line (no newline) carrying the current format.
pub(super) fn to_line<T: Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Versioned {
        format: FORMAT,
        value,
    })
}

/// Returns `value` as pretty JSON carrying the current format, ending with a newline.
pub(super) fn to_document<T: Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(&Versioned {
        format: FORMAT,
        value,
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Parses one JSON document of a readable format; the error is a sentence for the reader.
pub(super) fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if let Some(object) = value.as_object_mut() {
        if let Some(format) = object.remove("format") {
            check(&format)?;
        }
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

fn check(format: &serde_json::Value) -> Result<(), String> {
    match format.as_u64() {
        Some(f) if (OLDEST_READ..=FORMAT).contains(&f) => Ok(()),
        Some(f) => Err(format!(
            "written in state format {f} by a newer canon; this canon reads formats \
             {OLDEST_READ} to {FORMAT}: upgrade canon (see CHANGELOG.md)"
        )),
        None => Err(format!("`format` must be a whole number, not {format}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Record {
        name: String,
    }

    #[test]
    fn what_is_written_carries_the_format_first_and_reads_back() {
        let r = Record { name: "a".into() };
        let line = to_line(&r).unwrap();
        assert_eq!(String::from_utf8_lossy(&line), r#"{"format":1,"name":"a"}"#);
        assert_eq!(from_slice::<Record>(&line).unwrap(), r);
        let doc = to_document(&r).unwrap();
        assert!(doc.ends_with(b"}\n"));
        assert_eq!(from_slice::<Record>(&doc).unwrap(), r);
    }

    #[test]
    fn a_file_of_the_previous_release_without_a_format_is_read() {
        assert_eq!(
            from_slice::<Record>(br#"{"name":"a"}"#).unwrap(),
            Record { name: "a".into() }
        );
        assert_eq!(
            from_slice::<Record>(br#"{"format":0,"name":"a"}"#).unwrap(),
            Record { name: "a".into() }
        );
    }

    #[test]
    fn a_newer_or_malformed_format_is_refused_saying_why() {
        let e = from_slice::<Record>(br#"{"format":2,"name":"a"}"#).unwrap_err();
        assert!(e.contains("state format 2 by a newer canon"), "{e}");
        assert!(e.contains("formats 0 to 1"), "{e}");
        let e = from_slice::<Record>(br#"{"format":"1","name":"a"}"#).unwrap_err();
        assert!(e.contains("whole number"), "{e}");
        // Unknown keys are still refused where the record refuses them.
        assert!(from_slice::<Record>(br#"{"format":1,"name":"a","x":1}"#).is_err());
    }
}
