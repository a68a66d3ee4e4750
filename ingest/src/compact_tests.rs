//! Compaction and retention against recovery: what they leave is counted once by readers and
//! resumed from exactly where it was, an interrupted compaction included.

use std::path::{Path, PathBuf};
use std::time::Duration;

use shiftright_schemas::BatchFile;

use super::*;
use crate::offsets::recover_partition;
use crate::retain::retain;
use crate::stored::Listing;

fn file(partition: i32, first: i64, last: i64, index: usize, count: usize) -> BatchFile {
    BatchFile {
        topic: "requests".into(),
        partition,
        epoch: 0,
        first_offset: first,
        last_offset: last,
        index,
        count,
        compacted: false,
    }
}

/// A real one-row file for `f` under `out/sub`, as the writer makes them.
fn put(out: &Path, sub: &str, f: &BatchFile) -> PathBuf {
    let dir = out.join(sub);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(f.file_name());
    crate::writer::write_test_file(&path, f);
    path
}

const A: &str = "requests/date=2026-01-01/experiment=a";
const DEAD: &str = "_dead_letters/date=2026-01-01";

/// Merges everything at once and removes what a merge replaced at once.
fn now() -> CompactOptions {
    CompactOptions {
        older_than: Duration::ZERO,
        keep_replaced: Duration::ZERO,
        ..CompactOptions::default()
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Rows of every readable file the readers' rules keep: complete (or covered) batches, less the
/// superseded.
fn rows_read(out: &Path) -> u64 {
    let listing = Listing::of(out).unwrap();
    let complete = listing.complete_batches();
    let superseded = listing.superseded();
    listing
        .files
        .iter()
        .filter(|f| !superseded.contains(&f.path))
        .filter(|f| {
            f.batch
                .as_ref()
                .is_some_and(|b| complete.contains(&b.batch()))
        })
        .map(|f| {
            shiftright_schemas::batch::read_footer(&f.path)
                .unwrap()
                .file_metadata()
                .num_rows() as u64
        })
        .sum()
}

/// Three batches of partition 3 in `A`, the last with a dead letter too, and one of partition 4.
/// Returns the dead letter's file.
fn fixture(out: &Path) -> PathBuf {
    put(out, A, &file(3, 0, 9, 1, 1));
    put(out, A, &file(3, 10, 19, 1, 1));
    put(out, A, &file(3, 20, 29, 1, 2));
    let dead = put(out, DEAD, &file(3, 20, 29, 2, 2));
    put(out, A, &file(4, 0, 5, 1, 1));
    dead
}

#[test]
fn a_merge_keeps_the_batches_it_split_complete_and_recovery_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let dead = fixture(out);
    // The newest batch is still being renamed into place: one of its two files is there.
    put(out, A, &file(3, 30, 39, 1, 2));
    let before = rows_read(out);

    let summary = compact(out, &now()).unwrap();
    assert_eq!((summary.merged, summary.written, summary.rows), (3, 1, 3));
    let merged = BatchFile {
        index: 1,
        count: 1,
        compacted: true,
        ..file(3, 0, 29, 1, 1)
    };
    assert_eq!(
        names(&out.join(A)),
        vec![
            merged.file_name(),
            file(3, 30, 39, 1, 2).file_name(),
            file(4, 0, 5, 1, 1).file_name(),
        ]
    );
    assert_eq!(rows_read(out), before);
    let checked = merged
        .check_footer(&out.join(A).join(merged.file_name()))
        .unwrap();
    assert_eq!(checked.rows, 3);
    assert!(checked.last_message.is_some());

    // The batch 20..=29 lost its requests file to the merge: recovery keeps its dead letter and
    // resumes after it, as it would have, once it removed the half-renamed newest batch.
    let recovered = recover_partition(out, "requests", 3).unwrap();
    assert_eq!(recovered.resume.map(|r| r.next_offset), Some(30));
    assert!(dead.exists());
    assert_eq!(rows_read(out), before);
    assert_eq!(
        recover_partition(out, "requests", 4)
            .unwrap()
            .resume
            .map(|r| r.next_offset),
        Some(6)
    );
}

#[test]
fn an_interrupted_merge_is_counted_once_and_finished_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    fixture(out);
    let before = rows_read(out);
    compact(out, &now()).unwrap();
    // A crash after the merge was renamed into place, before its sources were removed; and one
    // while the next merge was being written.
    put(out, A, &file(3, 10, 19, 1, 1));
    put(out, A, &file(3, 20, 29, 1, 2));
    let temp = out
        .join(A)
        .join(format!("{COMPACTING_PREFIX}x.parquet.tmp"));
    std::fs::write(&temp, b"half").unwrap();
    assert_eq!(rows_read(out), before);
    assert_eq!(
        recover_partition(out, "requests", 3)
            .unwrap()
            .resume
            .map(|r| r.next_offset),
        Some(30)
    );
    assert!(temp.exists(), "the ingest leaves compaction's files alone");

    // New batches arrive; the next compaction removes the leftovers and merges the merge again.
    put(out, A, &file(3, 30, 39, 1, 1));
    let summary = compact(out, &now()).unwrap();
    // The two leftovers, and the two files merged again.
    assert_eq!(
        (summary.replaced_removed, summary.temporary_removed),
        (4, 1)
    );
    assert_eq!((summary.merged, summary.written), (2, 1));
    assert_eq!(rows_read(out), before + 1);
    let wide = BatchFile {
        compacted: true,
        ..file(3, 0, 39, 1, 1)
    };
    assert!(out.join(A).join(wide.file_name()).exists());
    assert_eq!(
        recover_partition(out, "requests", 3)
            .unwrap()
            .resume
            .map(|r| r.next_offset),
        Some(40)
    );
}

#[test]
fn young_files_and_incomplete_batches_end_a_run_and_a_dry_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    put(out, A, &file(3, 0, 9, 1, 1));
    put(out, A, &file(3, 10, 19, 1, 2)); // its other file is not there yet
    put(out, A, &file(3, 20, 29, 1, 1));
    put(out, A, &file(3, 30, 39, 1, 1));
    let dry = compact(
        out,
        &CompactOptions {
            dry_run: true,
            ..now()
        },
    )
    .unwrap();
    assert_eq!((dry.merged, dry.written), (2, 1));
    assert_eq!(names(&out.join(A)).len(), 4);
    let young = compact(out, &CompactOptions::default()).unwrap();
    assert_eq!(young.written, 0, "nothing is an hour old");
    let summary = compact(out, &now()).unwrap();
    // 0..=9 alone before the incomplete batch, 20..=39 merged after it.
    assert_eq!((summary.merged, summary.written), (2, 1));
    assert_eq!(names(&out.join(A)).len(), 3);
}

#[test]
fn retention_removes_old_dates_but_never_part_of_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    // A flush that wrote a late event to an old date beside a recent one.
    let late = put(out, A, &file(3, 0, 9, 1, 2));
    let recent = put(
        out,
        "requests/date=2026-01-05/experiment=a",
        &file(3, 0, 9, 2, 2),
    );
    let old = put(out, A, &file(3, 10, 19, 1, 1));
    let dead = put(out, DEAD, &file(3, 20, 29, 1, 1));

    let dry = retain(out, "2026-01-03", Duration::ZERO, true).unwrap();
    assert_eq!((dry.files, dry.kept), (2, 1));
    assert!(old.exists() && dead.exists());

    let summary = retain(out, "2026-01-03", Duration::ZERO, false).unwrap();
    assert_eq!((summary.files, summary.kept), (2, 1));
    assert_eq!(
        summary.dates,
        vec!["_dead_letters/date=2026-01-01".to_string()]
    );
    assert!(!old.exists() && !dead.exists());
    assert!(!out.join(DEAD).exists());
    assert!(late.exists() && recent.exists());
    assert_eq!(
        recover_partition(out, "requests", 3)
            .unwrap()
            .resume
            .map(|r| r.next_offset),
        Some(10),
        "the newest batch left decides"
    );

    // Once the later date is past the horizon too, the batch goes whole.
    let summary = retain(out, "2026-02-01", Duration::ZERO, false).unwrap();
    assert_eq!((summary.files, summary.kept), (2, 0));
    assert!(!out.join("requests/date=2026-01-01").exists());
}

#[test]
fn a_second_compaction_at_once_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _held = crate::stored::lock_maintenance(dir.path()).unwrap();
    let err = compact(dir.path(), &now()).unwrap_err().to_string();
    assert!(err.contains("another `shiftright compact`"), "{err}");
}

#[test]
fn replaced_files_stay_until_their_merge_is_old_enough_and_are_never_read_twice() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    fixture(out);
    let before = rows_read(out);
    let keep = CompactOptions {
        keep_replaced: Duration::from_secs(3600),
        ..now()
    };
    let summary = compact(out, &keep).unwrap();
    assert_eq!(
        (
            summary.merged,
            summary.replaced_removed,
            summary.replaced_kept
        ),
        (3, 0, 3)
    );
    assert_eq!(
        names(&out.join(A)).len(),
        5,
        "the merge and what it replaced, and partition 4"
    );
    assert_eq!(rows_read(out), before);
    let summary = compact(out, &now()).unwrap();
    assert_eq!((summary.merged, summary.replaced_removed), (0, 3));
    assert_eq!(rows_read(out), before);
}

#[test]
fn a_damaged_file_is_left_as_it_is_and_ends_the_run_around_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    put(out, A, &file(3, 0, 9, 1, 1));
    put(out, A, &file(3, 10, 19, 1, 1));
    let damaged = out.join(A).join(file(3, 20, 29, 1, 1).file_name());
    std::fs::write(&damaged, b"PAR1 truncated").unwrap();
    put(out, A, &file(3, 30, 39, 1, 1));
    put(out, A, &file(3, 40, 49, 1, 1));
    let summary = compact(out, &now()).unwrap();
    assert_eq!(summary.damaged.len(), 1);
    assert_eq!(summary.damaged[0].0, damaged);
    assert_eq!(
        (summary.merged, summary.written),
        (4, 2),
        "0..=19 and 30..=49, not across it"
    );
    assert!(damaged.exists());
}

#[test]
fn recovery_stops_rather_than_guess_when_a_damaged_batch_was_partly_merged() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    fixture(out);
    compact(out, &now()).unwrap();
    // The dead letter of the batch 20..=29, whose requests file the merge took, is damaged.
    let dead = out.join(DEAD).join(file(3, 20, 29, 2, 2).file_name());
    std::fs::write(&dead, b"PAR1 truncated").unwrap();
    let err = recover_partition(out, "requests", 3)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("compacted file") && err.contains("20..=29"),
        "{err}"
    );
    assert!(dead.exists(), "nothing moved");
}
