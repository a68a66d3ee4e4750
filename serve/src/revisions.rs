//! The revisions file (`serve --state FILE`): each experiment's current revision (Flagger's
//! checksum, Argo's pod-template hash) and the start of its window, so that a restarted server
//! goes on judging the revision it was judging over the same window.
//!
//! Without it a revision first seen after a start opens a new window at that moment: the server
//! cannot tell the events of a fixed revision from those of the one it replaced, and a fixed
//! canary must never be rolled back for its predecessor's errors. That costs the data gathered
//! before the restart, never a false rollback. The file is written whole to a temporary name and
//! renamed, so a crash leaves the old or the new one.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One experiment's revision and window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// The revision the window belongs to.
    pub revision: String,
    /// Its start, ms since the epoch.
    pub window_start_ms: i64,
}

/// Every experiment's, by name.
pub type Revisions = BTreeMap<String, Window>;

/// The revisions in `path`; none when it does not exist yet.
pub fn load(path: &Path) -> Result<Revisions, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not a revisions file ({e}); remove it to start every window again",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Revisions::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes `revisions` to `path` atomically.
pub fn save(path: &Path, revisions: &Revisions) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(revisions).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips_and_a_missing_one_is_empty() {
        let dir = std::env::temp_dir().join(format!("shiftright-revisions-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        assert!(load(&path).unwrap().is_empty());
        let mut r = Revisions::new();
        r.insert(
            "shop/web".into(),
            Window {
                revision: "abc".into(),
                window_start_ms: 42,
            },
        );
        save(&path, &r).unwrap();
        assert_eq!(load(&path).unwrap(), r);
        std::fs::write(&path, "{").unwrap();
        assert!(load(&path).unwrap_err().contains("not a revisions file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
