//! Keys from event data that become path segments: Hive partition directories
//! (`experiment=<value>`) and report page names (`<stem>.html`).
//!
//! An experiment key is producer input, so it can be any length and hold any character. A path
//! segment cannot: most filesystems refuse names over 255 bytes, and some fold case. Both encodings
//! here are therefore
//! - **bounded**: at most [`MAX_SEGMENT_BYTES`] bytes, whatever the key;
//! - **injective**: two different keys never share a segment. A key that fits is encoded
//!   reversibly; one that does not is cut and suffixed with `~` and a 64-bit hash of the whole key
//!   (xxHash64, stable across versions and machines). `~` never appears in an encoded key that
//!   fits, so the two forms cannot meet; two cut keys meet only on a hash collision (about 1 in
//!   2^64 for a pair).
//!
//! The rows themselves always keep the full key (the `experiment` column), so a reader that needs
//! it takes it from the column, not from the directory.

/// The longest path segment a key becomes, in bytes. With `experiment=` in front it stays far
/// below the 255-byte name limit of ext4, XFS, btrfs and APFS.
pub const MAX_SEGMENT_BYTES: usize = 128;

/// Hive partition value used when an event has no experiment (business events may not).
pub const NO_EXPERIMENT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// A stable 64-bit hash of a key, as 16 hex digits.
pub fn key_hash(key: &str) -> String {
    format!("{:016x}", twox_hash::XxHash64::oneshot(0, key.as_bytes()))
}

/// The Hive partition value of an experiment key: the key itself when it only has
/// `[A-Za-z0-9._-]`, otherwise percent-encoded (as Hive does, so Hive-aware readers decode it);
/// bounded as the module says.
pub fn partition_value(experiment: Option<&str>) -> String {
    let Some(key) = experiment.filter(|k| !k.is_empty()) else {
        return NO_EXPERIMENT_PARTITION.to_string();
    };
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    if out.starts_with('.') {
        // A leading dot would hide the directory from most listings.
        out.replace_range(0..1, "%2E");
    }
    bounded(out, key)
}

/// A file name stem for an experiment's report pages: the key itself when it only has
/// `[a-z0-9._-]` (lower case, so that pages copied to a case-insensitive filesystem cannot meet),
/// does not start with a dot and is not `index` (the index page's name); otherwise the key with
/// every other character as `_`, cut and suffixed with `~` and the key's hash.
pub fn file_stem(experiment: &str) -> String {
    let plain = !experiment.is_empty()
        && experiment.len() <= MAX_SEGMENT_BYTES
        && !experiment.starts_with('.')
        && experiment != "index"
        && experiment.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if plain {
        return experiment.to_string();
    }
    let mut safe: String = experiment
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if safe.starts_with('.') {
        safe.replace_range(0..1, "_");
    }
    cut_with_hash(safe, experiment)
}

/// `encoded` when it fits; otherwise cut and suffixed with the hash of `key`.
fn bounded(encoded: String, key: &str) -> String {
    if encoded.len() <= MAX_SEGMENT_BYTES {
        encoded
    } else {
        cut_with_hash(encoded, key)
    }
}

/// `encoded` cut to leave room for `~` and 16 hex digits, never inside a `%XX` escape, then the
/// suffix. `encoded` is ASCII.
fn cut_with_hash(mut encoded: String, key: &str) -> String {
    let mut keep = encoded.len().min(MAX_SEGMENT_BYTES - 17);
    let bytes = encoded.as_bytes();
    for back in 1..=2 {
        if keep >= back && bytes[keep - back] == b'%' {
            keep -= back;
            break;
        }
    }
    encoded.truncate(keep);
    encoded.push('~');
    encoded.push_str(&key_hash(key));
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn partition_values_are_safe_directory_names() {
        assert_eq!(partition_value(Some("checkout-v2")), "checkout-v2");
        assert_eq!(partition_value(Some("a/b c")), "a%2Fb%20c");
        assert_eq!(partition_value(Some(".hidden")), "%2Ehidden");
        assert_eq!(partition_value(Some("a~b")), "a%7Eb");
        assert_eq!(partition_value(None), NO_EXPERIMENT_PARTITION);
        assert_eq!(partition_value(Some("")), NO_EXPERIMENT_PARTITION);
    }

    #[test]
    fn long_keys_are_cut_with_a_hash_and_never_split_an_escape() {
        for key in [
            "x".repeat(245),
            "é".repeat(300),
            "😀".repeat(21),
            format!("{}/{}", "a".repeat(109), "b".repeat(200)),
        ] {
            let value = partition_value(Some(&key));
            assert!(
                value.len() <= MAX_SEGMENT_BYTES,
                "{} bytes: {value}",
                value.len()
            );
            let (head, hash) = value.rsplit_once('~').expect("hash suffix");
            assert_eq!(hash, key_hash(&key));
            let percent = head.rfind('%');
            assert!(
                percent.is_none_or(|i| i + 3 <= head.len()),
                "cut escape in {head}"
            );
            let stem = file_stem(&key);
            assert!(
                stem.len() <= MAX_SEGMENT_BYTES && stem.ends_with(&key_hash(&key)),
                "{stem}"
            );
        }
    }

    #[test]
    fn page_stems_are_kept_when_plain_and_hashed_otherwise() {
        assert_eq!(file_stem("checkout-v2"), "checkout-v2");
        assert_eq!(file_stem("checkout_v2"), "checkout_v2");
        let slash = file_stem("checkout/v2");
        assert!(slash.starts_with("checkout_v2~"), "{slash}");
        assert!(file_stem("Checkout").starts_with("checkout~"));
        assert!(file_stem("index").starts_with("index~"));
        assert!(file_stem(".x").starts_with("_x~"));
    }

    proptest::proptest! {
        /// Distinct keys give distinct segments, and every segment is bounded.
        #[test]
        fn encodings_are_injective_and_bounded(keys in proptest::collection::vec("[a-zA-Z0-9/_ .~%-]{1,12}|.{1,200}", 1..40)) {
            let mut pages: HashMap<String, &str> = HashMap::new();
            let mut dirs: HashMap<String, &str> = HashMap::new();
            for key in &keys {
                let stem = file_stem(key);
                let dir = partition_value(Some(key));
                proptest::prop_assert!(stem.len() <= MAX_SEGMENT_BYTES && dir.len() <= MAX_SEGMENT_BYTES);
                // Pages must also not meet on a case-insensitive filesystem.
                if let Some(other) = pages.insert(stem.to_lowercase(), key) {
                    proptest::prop_assert_eq!(other, key.as_str());
                }
                if let Some(other) = dirs.insert(dir, key) {
                    proptest::prop_assert_eq!(other, key.as_str());
                }
            }
        }
    }
}
