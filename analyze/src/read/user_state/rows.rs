//! What `user_experiments` emits: each user's `analysis_users` rows, built into Arrow columns.
//!
//! A user gives one row per experiment it is assigned in and, when decided on (not synthetic, in
//! one variant), one per endpoint and per region it used there. Resent copies are dropped here
//! (by fingerprint), and each row's latencies are written in ascending order, as the latency
//! distribution reads them. The builders get their capacity from the accumulator's
//! [`OutputBound`], the memory it reserved for this emission, and never grow past it.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, ListArray, ListBuilder, StringBuilder,
    StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field};
use datafusion::common::Result as DFResult;

use super::user::{OutputBound, Request, User, DIMENSION_BYTES};
use super::{return_type, row_fields};
use crate::read::interner::Interner;

/// Column builders of `analysis_users` rows.
pub(super) struct Rows {
    offsets: Vec<i32>,
    experiment: StringBuilder,
    dimension: StringBuilder,
    segment: StringBuilder,
    variant: StringBuilder,
    multiple_variants: BooleanBuilder,
    synthetic: BooleanBuilder,
    exposure_duplicates: Int64Builder,
    request_duplicates: Int64Builder,
    requests: Int64Builder,
    errors: Int64Builder,
    converted: BooleanBuilder,
    revenue: Float64Builder,
    pre_converted: BooleanBuilder,
    pre_revenue: Float64Builder,
    assigned_at: Int64Builder,
    assigned_weights: StringBuilder,
    latencies: ListBuilder<Float64Builder>,
    kinds: ListBuilder<StringBuilder>,
    kind_counts: ListBuilder<Int64Builder>,
    kind_values: ListBuilder<Float64Builder>,
    /// Request positions of one user-in-experiment, reordered by segment (reused).
    order: Vec<u32>,
}

/// One row's values other than its strings and latencies.
#[derive(Default)]
struct RowValues {
    multiple_variants: bool,
    synthetic: bool,
    exposure_duplicates: i64,
    request_duplicates: i64,
    converted: bool,
    revenue: f64,
    pre_converted: bool,
    pre_revenue: f64,
    /// When the user was assigned (first exposure, else first live request), epoch ms: the
    /// rollout stage it belongs to.
    assigned_at: i64,
    /// The allocation its first exposure carried (interned `weights`), when it carried one.
    assigned_weights: Option<u32>,
    /// Business events at or after first exposure, per kind: (kind, count, Σ value), by kind.
    kinds: Vec<(u32, i64, f64)>,
}

fn list_field(item: DataType) -> Arc<Field> {
    Arc::new(Field::new_list_field(item, false))
}

impl Rows {
    /// Builders for the rows of `users` users within `bound`, no name longer than `longest`.
    pub fn with_capacity(bound: OutputBound, users: usize, longest: usize) -> Self {
        let rows = bound.rows;
        let text = |bytes: usize| StringBuilder::with_capacity(rows, rows * bytes);
        let entries = bound.kind_entries;
        Rows {
            offsets: Vec::with_capacity(users + 1),
            experiment: text(longest),
            dimension: text(DIMENSION_BYTES),
            segment: text(longest),
            variant: text(longest),
            multiple_variants: BooleanBuilder::with_capacity(rows),
            synthetic: BooleanBuilder::with_capacity(rows),
            exposure_duplicates: Int64Builder::with_capacity(rows),
            request_duplicates: Int64Builder::with_capacity(rows),
            requests: Int64Builder::with_capacity(rows),
            errors: Int64Builder::with_capacity(rows),
            converted: BooleanBuilder::with_capacity(rows),
            revenue: Float64Builder::with_capacity(rows),
            pre_converted: BooleanBuilder::with_capacity(rows),
            pre_revenue: Float64Builder::with_capacity(rows),
            assigned_at: Int64Builder::with_capacity(rows),
            assigned_weights: text(longest),
            latencies: ListBuilder::with_capacity(
                Float64Builder::with_capacity(bound.latencies),
                rows,
            )
            .with_field(list_field(DataType::Float64)),
            kinds: ListBuilder::with_capacity(
                StringBuilder::with_capacity(entries, entries * longest),
                rows,
            )
            .with_field(list_field(DataType::Utf8)),
            kind_counts: ListBuilder::with_capacity(Int64Builder::with_capacity(entries), rows)
                .with_field(list_field(DataType::Int64)),
            kind_values: ListBuilder::with_capacity(Float64Builder::with_capacity(entries), rows)
                .with_field(list_field(DataType::Float64)),
            order: Vec::new(),
        }
        .started()
    }

    fn started(mut self) -> Self {
        self.offsets.push(0);
        self
    }

    /// Appends one row; `requests` in ascending latency.
    fn push<'r>(
        &mut self,
        names: &Interner,
        strings: [&str; 4],
        v: &RowValues,
        requests: impl Iterator<Item = &'r Request>,
    ) {
        let [experiment, dimension, segment, variant] = strings;
        self.experiment.append_value(experiment);
        self.dimension.append_value(dimension);
        self.segment.append_value(segment);
        self.variant.append_value(variant);
        self.multiple_variants.append_value(v.multiple_variants);
        self.synthetic.append_value(v.synthetic);
        self.exposure_duplicates.append_value(v.exposure_duplicates);
        self.request_duplicates.append_value(v.request_duplicates);
        let (mut count, mut errors) = (0, 0);
        let latencies = self.latencies.values();
        for r in requests {
            count += 1;
            errors += i64::from(r.error);
            if r.latency.is_finite() {
                latencies.append_value(r.latency);
            }
        }
        self.latencies.append(true);
        self.requests.append_value(count);
        self.errors.append_value(errors);
        self.converted.append_value(v.converted);
        self.revenue.append_value(v.revenue);
        self.pre_converted.append_value(v.pre_converted);
        self.pre_revenue.append_value(v.pre_revenue);
        self.assigned_at.append_value(v.assigned_at);
        self.assigned_weights
            .append_option(v.assigned_weights.map(|id| names.get(id)));
        for &(kind, count, value) in &v.kinds {
            self.kinds.values().append_value(names.get(kind));
            self.kind_counts.values().append_value(count);
            self.kind_values.values().append_value(value);
        }
        self.kinds.append(true);
        self.kind_counts.append(true);
        self.kind_values.append(true);
    }

    /// Ends one group's list of rows.
    fn end_group(&mut self) {
        self.offsets
            .push(arrow::array::ArrayBuilder::len(&self.experiment) as i32);
    }

    pub fn finish(mut self) -> DFResult<ArrayRef> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.experiment.finish()),
            Arc::new(self.dimension.finish()),
            Arc::new(self.segment.finish()),
            Arc::new(self.variant.finish()),
            Arc::new(self.multiple_variants.finish()),
            Arc::new(self.synthetic.finish()),
            Arc::new(self.exposure_duplicates.finish()),
            Arc::new(self.request_duplicates.finish()),
            Arc::new(self.requests.finish()),
            Arc::new(self.errors.finish()),
            Arc::new(self.converted.finish()),
            Arc::new(self.revenue.finish()),
            Arc::new(self.pre_converted.finish()),
            Arc::new(self.pre_revenue.finish()),
            Arc::new(self.assigned_at.finish()),
            Arc::new(self.assigned_weights.finish()),
            Arc::new(self.latencies.finish()),
            Arc::new(self.kinds.finish()),
            Arc::new(self.kind_counts.finish()),
            Arc::new(self.kind_values.finish()),
        ];
        let rows = StructArray::try_new(row_fields(), columns, None)?;
        let DataType::List(item) = return_type() else {
            unreachable!("the return type is a list")
        };
        Ok(Arc::new(ListArray::try_new(
            item,
            OffsetBuffer::new(self.offsets.into()),
            Arc::new(rows),
            None,
        )?))
    }

    /// Appends the rows of one user.
    pub fn user(&mut self, names: &Interner, mut user: User) {
        user.business.sort_unstable_by_key(|b| b.fingerprint);
        user.business.dedup_by_key(|b| b.fingerprint);
        for mut e in user.experiments {
            let Some((lo, hi)) = e.variants else {
                continue;
            };
            let exposures = e.exposures.len();
            e.exposures.sort_unstable();
            e.exposures.dedup();
            let requests = e.requests.len();
            e.requests.sort_unstable_by_key(|r| r.fingerprint);
            e.requests.dedup_by_key(|r| r.fingerprint);
            // Assigned users have a first exposure: an exposure event or a live request.
            let exposed = e.exposed_at.or(e.first_live).unwrap_or(i64::MIN);
            let assigned_weights = e
                .exposed_at
                .map(|_| e.exposed_weights)
                .filter(|&id| names.get(id) != super::NO_WEIGHTS);
            let mut v = RowValues {
                assigned_at: exposed,
                assigned_weights,
                multiple_variants: lo != hi,
                synthetic: e.synthetic,
                exposure_duplicates: (exposures - e.exposures.len()) as i64,
                request_duplicates: (requests - e.requests.len()) as i64,
                ..Default::default()
            };
            for b in &user.business {
                if b.ts >= exposed {
                    v.converted |= b.converts;
                    v.revenue += b.value;
                    match v.kinds.iter_mut().find(|(k, _, _)| *k == b.kind) {
                        Some(entry) => {
                            entry.1 += 1;
                            entry.2 += b.value;
                        }
                        None => v.kinds.push((b.kind, 1, b.value)),
                    }
                } else {
                    v.pre_converted |= b.converts;
                    v.pre_revenue += b.value;
                }
            }
            v.kinds
                .sort_unstable_by(|a, b| names.get(a.0).cmp(names.get(b.0)));
            let (experiment, variant) = (names.get(e.experiment), names.get(lo));
            // Sorted by latency once: each row's latencies are then in order, the segments' too
            // (a stable sort by segment keeps it).
            let all = &mut e.requests;
            all.sort_unstable_by(|a, b| a.latency.total_cmp(&b.latency));
            self.push(names, [experiment, "all", "", variant], &v, all.iter());
            if e.synthetic || lo != hi {
                continue;
            }
            // The users decided on, by segment: requests only (business metrics are tested
            // overall).
            let plain = RowValues {
                assigned_at: exposed,
                assigned_weights,
                ..RowValues::default()
            };
            let mut order = std::mem::take(&mut self.order);
            for (dimension, segment_of) in [
                (
                    "endpoint",
                    (|r: &Request| r.endpoint) as fn(&Request) -> u32,
                ),
                ("region", |r: &Request| r.region),
            ] {
                let key = |&i: &u32| segment_of(&all[i as usize]);
                order.clear();
                order.extend(0..all.len() as u32);
                order.sort_by_key(key);
                for run in order.chunk_by(|a, b| key(a) == key(b)) {
                    let segment = names.get(key(&run[0]));
                    self.push(
                        names,
                        [experiment, dimension, segment, variant],
                        &plain,
                        run.iter().map(|&i| &all[i as usize]),
                    );
                }
            }
            self.order = order;
        }
        self.end_group();
    }
}
