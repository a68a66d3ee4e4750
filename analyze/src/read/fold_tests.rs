//! A live server's fold against reading the window whole: the ramp of `ramp_tests` lands file
//! by file (a file per table and stage, with resent copies of the stage before), and after each
//! file the folded evaluation gives the report of the whole evaluation, reading only the new
//! files; a file that goes away, and a new window, start the fold again.

use shiftright_schemas::Table;

use super::fold::Folded;
use super::ramp_tests::{ramp, stages_file, HOUR, T0};
use super::tests::{write_file, Event};
use crate::config::ExperimentsFile;

/// `a` and `b` equal, numbers within 1e-9 relative (sums over users run in any order).
fn assert_close(a: &serde_json::Value, b: &serde_json::Value, at: &str) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300),
                "{at}: {x} vs {y}"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: lengths");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                assert_close(x, y, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}: keys"
            );
            for (k, v) in x {
                assert_close(v, &y[k], &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

/// The folded and the whole evaluation of `ramp` from `from`; the fold's step.
async fn both(
    data: &std::path::Path,
    file: &ExperimentsFile,
    from: i64,
    folded: &mut Folded,
) -> super::fold::FoldStep {
    let read = crate::ReadOptions::default();
    let (report, fresh, step) =
        crate::analyze_live_folded(data, read.clone(), file, "ramp", Some(from), folded)
            .await
            .unwrap()
            .unwrap();
    let (whole, whole_fresh) = crate::analyze_live(data, read, file, "ramp", Some(from))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fresh, whole_fresh);
    assert_close(
        &serde_json::to_value(&report).unwrap(),
        &serde_json::to_value(&whole).unwrap(),
        "report",
    );
    step
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folding_new_files_gives_the_report_of_the_whole_window() {
    let (requests, exposures) = ramp();
    let file = ExperimentsFile::parse(&stages_file("")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let of_stage = |events: &[Event], k: i64| -> Vec<Event> {
        events
            .iter()
            .filter(|e| e.ts >= T0 + k * HOUR && e.ts < T0 + (k + 1) * HOUR)
            .cloned()
            .collect()
    };
    let mut folded = Folded::default();
    let mut files = 0;
    for k in 0..4i64 {
        let offset = k * 10_000;
        write_file(
            data,
            Table::Requests,
            &of_stage(&requests, k),
            (offset, 1, 1),
        );
        write_file(
            data,
            Table::Exposures,
            &of_stage(&exposures, k),
            (offset + 1_000, 1, 1),
        );
        let mut new = 2;
        if k > 0 {
            // Resent copies of the stage before, in a file of their own.
            let resent: Vec<Event> = of_stage(&requests, k - 1).into_iter().step_by(7).collect();
            write_file(data, Table::Requests, &resent, (offset + 2_000, 1, 1));
            new += 1;
        }
        let step = both(data, &file, T0, &mut folded).await;
        assert_eq!(
            (step.new_files, step.kept_files, step.restarted),
            (new, files, k == 0),
            "stage {k}"
        );
        files += new;
        // Nothing new: nothing read, the same report.
        let again = both(data, &file, T0, &mut folded).await;
        assert_eq!((again.new_files, again.kept_files), (0, files));
        assert!(again.users >= 4_000 * (k as usize + 1), "{again:?}");
    }
    // A file gone (compacted, deleted): the fold starts again and still agrees.
    let gone = walk(&data.join("requests")).into_iter().next().unwrap();
    std::fs::remove_file(&gone).unwrap();
    let step = both(data, &file, T0, &mut folded).await;
    assert!(step.restarted && step.kept_files == 0 && step.new_files == files - 1);
    // A new window (a new revision) starts again too.
    let step = both(data, &file, T0 + 2 * HOUR, &mut folded).await;
    assert!(step.restarted, "{step:?}");
}

/// Every file below `dir`, sorted.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}
