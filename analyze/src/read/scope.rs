//! Which part of the store a session sees: the experiments, the dates and the time window.
//!
//! A one-off `analyze` reads the whole store. A server that re-evaluates a few live experiments
//! every 30 seconds cannot: its cost would grow with every day and every experiment ever kept in
//! the data directory. A [`Scope`] bounds it in two steps:
//! - **listing**: the Hive directories `date=D` and `experiment=E` that cannot hold what the
//!   scope asks for are never descended into, so their files are neither listed nor opened;
//! - **rows**: the event tables are registered as views of the rows within the time window
//!   (`from_ms ≤ ts < to_ms`), before the analysis' views are planned over them — a view plans
//!   its tables when it is registered, so a window applied afterwards would not reach it.
//!
//! Business events without an experiment live under the default partition; they are kept, since
//! any experiment's users may have converted there.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate};
use datafusion::datasource::TableProvider;
use datafusion::prelude::{col, lit, SessionContext};
use datafusion::scalar::ScalarValue;
use shiftright_schemas::{partition_value, NO_EXPERIMENT_PARTITION};

use crate::error::{Error, Result};

/// A part of the store: every experiment and all time by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Only these experiments' partitions (keys as in the events); `None`: every experiment.
    pub experiments: Option<BTreeSet<String>>,
    /// Only events at or after this time (ms since the epoch, UTC).
    pub from_ms: Option<i64>,
    /// Only events before this time (ms since the epoch, UTC).
    pub to_ms: Option<i64>,
}

impl Scope {
    /// The scope of the events of `experiments` from `from_ms` on.
    pub fn experiments_from(
        experiments: impl IntoIterator<Item = String>,
        from_ms: Option<i64>,
    ) -> Scope {
        Scope {
            experiments: Some(experiments.into_iter().collect()),
            from_ms,
            to_ms: None,
        }
    }

    /// Whether the whole store is in scope.
    pub fn is_everything(&self) -> bool {
        self == &Scope::default()
    }

    /// Whether a directory below a table's root may hold rows in scope, by its date (`date=D`):
    /// the listing descends only into the window's dates. Experiments are judged per file
    /// ([`Scope::keeps_file`]), since a flush batch's completeness is judged over all of its
    /// files, whatever their experiment.
    pub fn keeps_dir(&self, name: &str) -> bool {
        let Some(date) = name.strip_prefix("date=") else {
            return true;
        };
        let Ok(date) = date.parse::<NaiveDate>() else {
            return true;
        };
        let first = self.from_ms.and_then(day_of);
        let last = self.to_ms.and_then(|ms| day_of(ms - 1));
        first.is_none_or(|d| date >= d) && last.is_none_or(|d| date <= d)
    }

    /// Whether a file of an event table is in scope, by its `experiment=` and `date=`
    /// directories.
    pub fn keeps_file(&self, path: &Path) -> bool {
        path.components().all(|c| {
            let name = c.as_os_str().to_string_lossy();
            if !self.keeps_dir(&name) {
                return false;
            }
            match (name.strip_prefix("experiment="), &self.experiments) {
                (Some(value), Some(wanted)) => {
                    value == NO_EXPERIMENT_PARTITION
                        || wanted.iter().any(|e| partition_value(Some(e)) == value)
                }
                _ => true,
            }
        })
    }

    /// `provider` (an event table) limited to the scope's time window; as it is without one.
    pub fn window(
        &self,
        ctx: &SessionContext,
        name: &str,
        provider: Arc<dyn TableProvider>,
    ) -> Result<Arc<dyn TableProvider>> {
        if self.from_ms.is_none() && self.to_ms.is_none() {
            return Ok(provider);
        }
        let mut frame = ctx.read_table(provider).map_err(Error::query(name))?;
        if let Some(from) = self.from_ms {
            frame = frame
                .filter(col("ts").gt_eq(lit(ts(from))))
                .map_err(Error::query(name))?;
        }
        if let Some(to) = self.to_ms {
            frame = frame
                .filter(col("ts").lt(lit(ts(to))))
                .map_err(Error::query(name))?;
        }
        Ok(frame.into_view())
    }
}

/// A timestamp of the tables' own type, so that DataFusion compares timestamps and prunes row
/// groups and files by their statistics (a cast of the column could not).
fn ts(ms: i64) -> ScalarValue {
    ScalarValue::TimestampMillisecond(Some(ms), Some("UTC".into()))
}

/// The UTC date of `ms`, as the ingest partitions it.
fn day_of(ms: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp_millis(ms).map(|t| t.date_naive())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn directories_out_of_scope_are_skipped() {
        let all = Scope::default();
        assert!(all.keeps_dir("date=2026-12-01"));
        // 2026-12-01T00:00Z is 1_796_083_200_000 ms.
        let dec1 = 1_796_083_200_000;
        let scope = Scope {
            experiments: Some(["a b".to_string()].into()),
            from_ms: Some(dec1 + 3_600_000),
            to_ms: Some(dec1 + DAY),
        };
        assert!(scope.keeps_dir("date=2026-12-01"));
        assert!(!scope.keeps_dir("date=2026-11-30"));
        // The end is exclusive: midnight belongs to the next day, which is out.
        assert!(!scope.keeps_dir("date=2026-12-02"));
        let file = |date: &str, experiment: &str| {
            std::path::PathBuf::from(format!(
                "/d/requests/date={date}/experiment={experiment}/f.parquet"
            ))
        };
        assert!(scope.keeps_file(&file("2026-12-01", "a%20b")));
        assert!(!scope.keeps_file(&file("2026-12-01", "a")));
        assert!(!scope.keeps_file(&file("2026-11-30", "a%20b")));
        assert!(scope.keeps_file(&file("2026-12-01", NO_EXPERIMENT_PARTITION)));
        assert!(all.keeps_file(&file("2020-01-01", "a")));
        // Names that are not Hive partitions are not the scope's to judge.
        assert!(scope.keeps_dir("date=garbage") && scope.keeps_dir("tmp"));
    }
}
