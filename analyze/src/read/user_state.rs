//! `user_experiments(...)`: the aggregate that gathers everything one user did — live requests,
//! exposures, business events — grouped by `user_id`, and emits the user's rows of
//! `analysis_users` (one per experiment it is assigned in, and one per endpoint and region for the
//! users decided on).
//!
//! Why an aggregate and not joins: a user's assignment comes from its exposures *and* its live
//! requests, and its business events count before or after its first exposure in each
//! experiment. In SQL that is a group per event, a group per user and a join with the business
//! events (`user_metrics.sql` says it that way); here it is one group per user, one pass and one
//! shuffle, and the state of a user is mostly numbers: 33 bytes a live request, 8 an exposure, 28
//! and its kind's name a business event. Resent copies are dropped by a 64-bit fingerprint of their `event_id` within
//! the user (copies share the user); two distinct events of one user collide with probability
//! ~k²/2⁶⁵ for k events.
//!
//! The state is the user's events as bytes (Binary), so DataFusion can spill it and merge what it
//! spilled (and, were the plan to keep a partial step, merge partial aggregates: the plan shuffles
//! the events instead, `one_step`); strings are interned per accumulator and written out by value.

use std::hash::BuildHasher;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, BooleanBuilder, Float64Builder,
    Int64Builder, ListArray, ListBuilder, StringBuilder, StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Int32Type, Int64Type};
use datafusion::common::{exec_err, Result as DFResult};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use super::codec::{Reader, Writer};
use super::udaf::{bad_state, binary, cast, selected, strings, OneGroup};
use crate::read::interner::{hasher, Interner};

/// The function's SQL name.
pub const NAME: &str = "user_experiments";

/// Its arguments, in order (`queries/analysis_users.sql` passes them).
pub const ARGUMENTS: [&str; 12] = [
    "source",
    "experiment",
    "event_id",
    "variant",
    "synthetic",
    "ts",
    "status",
    "latency_ms",
    "endpoint",
    "region",
    "kind",
    "value",
];

/// Business events that count as a conversion.
const CONVERSIONS: [&str; 2] = ["conversion", "purchase"];

/// The segment of a request that does not name one.
pub const NO_SEGMENT: &str = "(none)";

/// Where an input row comes from (the `source` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    LiveRequest,
    Exposure,
    Business,
}

impl Source {
    fn of(code: i64) -> DFResult<Self> {
        match code {
            0 => Ok(Source::LiveRequest),
            1 => Ok(Source::Exposure),
            2 => Ok(Source::Business),
            other => exec_err!("{NAME}: source {other} is none of 0 (live request), 1 (exposure), 2 (business event)"),
        }
    }
}

/// One live, non-synthetic request.
#[derive(Debug, Clone, Copy)]
struct Request {
    fingerprint: u64,
    latency: f64,
    endpoint: u32,
    region: u32,
    error: bool,
}

/// One business event.
#[derive(Debug, Clone, Copy)]
struct Business {
    fingerprint: u64,
    ts: i64,
    value: f64,
    converts: bool,
    /// Its kind, interned ([`NO_KIND`] when it has none).
    kind: u32,
}

/// The kind of a business event that names none.
const NO_KIND: &str = "";

/// One user in one experiment.
#[derive(Debug, Clone, Default)]
struct InExperiment {
    experiment: u32,
    /// Least and greatest variant named (by name); `None` until assigned.
    variants: Option<(u32, u32)>,
    synthetic: bool,
    first_live: Option<i64>,
    exposed_at: Option<i64>,
    exposures: Vec<u64>,
    requests: Vec<Request>,
}

/// One user.
#[derive(Debug, Clone, Default)]
struct User {
    experiments: Vec<InExperiment>,
    business: Vec<Business>,
}

impl User {
    /// Heap bytes held, as counted for the memory pool (lengths; vectors' spare capacity is
    /// allowed for in [`UserGroups::size`], the `User` itself in its vector's).
    fn bytes(&self) -> usize {
        self.business.len() * std::mem::size_of::<Business>()
            + self
                .experiments
                .iter()
                .map(|e| {
                    std::mem::size_of::<InExperiment>()
                        + e.exposures.len() * 8
                        + e.requests.len() * std::mem::size_of::<Request>()
                })
                .sum::<usize>()
    }
}

fn min_of(a: Option<i64>, b: i64) -> Option<i64> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn fingerprint(event_id: &str) -> u64 {
    hasher().hash_one(event_id.as_bytes())
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UserExperimentsUdaf {
    signature: Signature,
}

impl Default for UserExperimentsUdaf {
    fn default() -> Self {
        UserExperimentsUdaf {
            signature: Signature::any(ARGUMENTS.len(), Volatility::Immutable),
        }
    }
}

/// The fields of one `analysis_users` row.
pub fn row_fields() -> Fields {
    let text = |n: &str| Field::new(n, DataType::Utf8, false);
    let flag = |n: &str| Field::new(n, DataType::Boolean, false);
    let count = |n: &str| Field::new(n, DataType::Int64, false);
    let amount = |n: &str| Field::new(n, DataType::Float64, false);
    let list = |n: &str, item: DataType| {
        Field::new(
            n,
            DataType::List(Arc::new(Field::new_list_field(item, false))),
            false,
        )
    };
    Fields::from(vec![
        text("experiment"),
        text("dimension"),
        text("segment"),
        text("variant"),
        flag("multiple_variants"),
        flag("synthetic"),
        count("exposure_duplicates"),
        count("request_duplicates"),
        count("requests"),
        count("errors"),
        flag("converted"),
        amount("revenue"),
        flag("pre_converted"),
        amount("pre_revenue"),
        Field::new(
            "latencies",
            DataType::List(Arc::new(Field::new_list_field(DataType::Float64, false))),
            false,
        ),
        list("kinds", DataType::Utf8),
        list("kind_counts", DataType::Int64),
        list("kind_values", DataType::Float64),
    ])
}

fn return_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(row_fields()),
        false,
    )))
}

impl AggregateUDFImpl for UserExperimentsUdaf {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(return_type())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DFResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "events"),
            DataType::Binary,
            true,
        ))])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> DFResult<Box<dyn Accumulator>> {
        Ok(Box::new(OneGroup(UserGroups::default())))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> DFResult<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(UserGroups::default()))
    }
}

/// Every user of one aggregate partition.
#[derive(Debug, Default)]
pub struct UserGroups {
    names: Interner,
    users: Vec<User>,
    /// Σ User::bytes over `users`.
    bytes: usize,
}

/// User `g`'s entry for experiment `id`, created if new.
fn slot<'a>(users: &'a mut [User], bytes: &mut usize, g: usize, id: u32) -> &'a mut InExperiment {
    let user = &mut users[g];
    let at = match user.experiments.iter().position(|e| e.experiment == id) {
        Some(at) => at,
        None => {
            *bytes += std::mem::size_of::<InExperiment>();
            user.experiments.push(InExperiment {
                experiment: id,
                ..Default::default()
            });
            user.experiments.len() - 1
        }
    };
    &mut user.experiments[at]
}

impl UserGroups {
    /// Counts `variant` among those that named the user in `e` (least and greatest by name).
    fn assign(names: &Interner, e: &mut InExperiment, variant: u32, synthetic: bool) {
        e.synthetic |= synthetic;
        let (lo, hi) = e.variants.get_or_insert((variant, variant));
        if variant != *lo && names.get(variant) < names.get(*lo) {
            *lo = variant;
        }
        if variant != *hi && names.get(variant) > names.get(*hi) {
            *hi = variant;
        }
    }

    fn segment(&mut self, values: &arrow::array::StringViewArray, i: usize) -> u32 {
        if values.is_null(i) {
            self.names.intern(NO_SEGMENT)
        } else {
            self.names.intern(values.value(i))
        }
    }

    fn emit_users(&mut self, emit_to: EmitTo) -> Vec<User> {
        let taken = emit_to.take_needed(&mut self.users);
        let freed: usize = taken.iter().map(User::bytes).sum();
        self.bytes = self.bytes.saturating_sub(freed);
        taken
    }

    /// Merges a decoded user into group `g`, re-interning its strings.
    fn merge_user(&mut self, g: usize, bytes: &[u8]) -> Option<()> {
        let mut r = Reader::new(bytes);
        for _ in 0..r.u32()? {
            let experiment = r.str()?.to_string();
            let flags = r.u8()?;
            let variants = if flags & 1 != 0 {
                let lo = self.names.intern(r.str()?);
                Some((lo, self.names.intern(r.str()?)))
            } else {
                None
            };
            let first_live = if flags & 4 != 0 { Some(r.i64()?) } else { None };
            let exposed_at = if flags & 8 != 0 { Some(r.i64()?) } else { None };
            let exposures: Vec<u64> = (0..r.u32()?).map(|_| r.u64()).collect::<Option<_>>()?;
            let table: Vec<u32> = (0..r.u32()?)
                .map(|_| r.str().map(|s| self.names.intern(s)))
                .collect::<Option<_>>()?;
            let local = |i: u32| table.get(i as usize).copied();
            let mut requests = Vec::new();
            for _ in 0..r.u32()? {
                requests.push(Request {
                    fingerprint: r.u64()?,
                    latency: r.f64()?,
                    endpoint: local(r.u32()?)?,
                    region: local(r.u32()?)?,
                    error: r.u8()? != 0,
                });
            }
            self.bytes += exposures.len() * 8 + requests.len() * std::mem::size_of::<Request>();
            let id = self.names.intern(&experiment);
            let synthetic = flags & 2 != 0;
            let e = slot(&mut self.users, &mut self.bytes, g, id);
            if let Some((lo, hi)) = variants {
                Self::assign(&self.names, e, lo, synthetic);
                Self::assign(&self.names, e, hi, synthetic);
            }
            e.synthetic |= synthetic;
            if let Some(t) = first_live {
                e.first_live = min_of(e.first_live, t);
            }
            if let Some(t) = exposed_at {
                e.exposed_at = min_of(e.exposed_at, t);
            }
            e.exposures.extend(exposures);
            e.requests.extend(requests);
        }
        let business = r.u32()?;
        for _ in 0..business {
            let fingerprint = r.u64()?;
            let ts = r.i64()?;
            let value = r.f64()?;
            let kind = r.str()?;
            let b = Business {
                fingerprint,
                ts,
                value,
                converts: CONVERSIONS.contains(&kind),
                kind: self.names.intern(kind),
            };
            self.users[g].business.push(b);
        }
        self.bytes += business as usize * std::mem::size_of::<Business>();
        r.done()
    }
}

/// Writes one user as the state's bytes.
fn encode(names: &Interner, user: &User) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(user.experiments.len() as u32);
    for e in &user.experiments {
        w.str(names.get(e.experiment));
        let flags = u8::from(e.variants.is_some())
            | u8::from(e.synthetic) << 1
            | u8::from(e.first_live.is_some()) << 2
            | u8::from(e.exposed_at.is_some()) << 3;
        w.u8(flags);
        if let Some((lo, hi)) = e.variants {
            w.str(names.get(lo));
            w.str(names.get(hi));
        }
        if let Some(t) = e.first_live {
            w.i64(t);
        }
        if let Some(t) = e.exposed_at {
            w.i64(t);
        }
        w.u32(e.exposures.len() as u32);
        for &f in &e.exposures {
            w.u64(f);
        }
        // The segment names this user's requests use, then each request by its index there.
        let mut table: Vec<u32> = e
            .requests
            .iter()
            .flat_map(|r| [r.endpoint, r.region])
            .collect();
        table.sort_unstable();
        table.dedup();
        w.u32(table.len() as u32);
        for &id in &table {
            w.str(names.get(id));
        }
        let local = |id: u32| table.binary_search(&id).unwrap_or_default() as u32;
        w.u32(e.requests.len() as u32);
        for r in &e.requests {
            w.u64(r.fingerprint);
            w.f64(r.latency);
            w.u32(local(r.endpoint));
            w.u32(local(r.region));
            w.u8(u8::from(r.error));
        }
    }
    w.u32(user.business.len() as u32);
    for b in &user.business {
        w.u64(b.fingerprint);
        w.i64(b.ts);
        w.f64(b.value);
        w.str(names.get(b.kind));
    }
    w.into_bytes()
}

/// Column builders of `analysis_users` rows.
struct Rows {
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
    latencies: ListBuilder<Float64Builder>,
    kinds: ListBuilder<StringBuilder>,
    kind_counts: ListBuilder<Int64Builder>,
    kind_values: ListBuilder<Float64Builder>,
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
    /// Business events at or after first exposure, per kind: (kind, count, Σ value), by kind.
    kinds: Vec<(u32, i64, f64)>,
}

impl Rows {
    fn new() -> Self {
        Rows {
            offsets: vec![0],
            experiment: StringBuilder::new(),
            dimension: StringBuilder::new(),
            segment: StringBuilder::new(),
            variant: StringBuilder::new(),
            multiple_variants: BooleanBuilder::new(),
            synthetic: BooleanBuilder::new(),
            exposure_duplicates: Int64Builder::new(),
            request_duplicates: Int64Builder::new(),
            requests: Int64Builder::new(),
            errors: Int64Builder::new(),
            converted: BooleanBuilder::new(),
            revenue: Float64Builder::new(),
            pre_converted: BooleanBuilder::new(),
            pre_revenue: Float64Builder::new(),
            latencies: ListBuilder::new(Float64Builder::new())
                .with_field(Arc::new(Field::new_list_field(DataType::Float64, false))),
            kinds: ListBuilder::new(StringBuilder::new())
                .with_field(Arc::new(Field::new_list_field(DataType::Utf8, false))),
            kind_counts: ListBuilder::new(Int64Builder::new())
                .with_field(Arc::new(Field::new_list_field(DataType::Int64, false))),
            kind_values: ListBuilder::new(Float64Builder::new())
                .with_field(Arc::new(Field::new_list_field(DataType::Float64, false))),
        }
    }

    /// Appends one row; `requests` sorted by latency.
    fn push(&mut self, names: &Interner, strings: [&str; 4], v: &RowValues, requests: &[&Request]) {
        let [experiment, dimension, segment, variant] = strings;
        self.experiment.append_value(experiment);
        self.dimension.append_value(dimension);
        self.segment.append_value(segment);
        self.variant.append_value(variant);
        self.multiple_variants.append_value(v.multiple_variants);
        self.synthetic.append_value(v.synthetic);
        self.exposure_duplicates.append_value(v.exposure_duplicates);
        self.request_duplicates.append_value(v.request_duplicates);
        self.requests.append_value(requests.len() as i64);
        self.errors
            .append_value(requests.iter().filter(|r| r.error).count() as i64);
        self.converted.append_value(v.converted);
        self.revenue.append_value(v.revenue);
        self.pre_converted.append_value(v.pre_converted);
        self.pre_revenue.append_value(v.pre_revenue);
        // `requests` come sorted by latency (see `user_rows`).
        let values = self.latencies.values();
        for r in requests.iter().filter(|r| r.latency.is_finite()) {
            values.append_value(r.latency);
        }
        self.latencies.append(true);
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

    fn finish(mut self) -> DFResult<ArrayRef> {
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
}

/// Appends the rows of one user.
fn user_rows(names: &Interner, mut user: User, out: &mut Rows) {
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
        let mut v = RowValues {
            multiple_variants: lo != hi,
            synthetic: e.synthetic,
            exposure_duplicates: (exposures - e.exposures.len()) as i64,
            request_duplicates: (requests - e.requests.len()) as i64,
            ..Default::default()
        };
        // Assigned users have a first exposure: an exposure event or a live request.
        let exposed = e.exposed_at.or(e.first_live).unwrap_or(i64::MIN);
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
        // Sorted by latency once: each row's latencies are then in order, the segments' too (a
        // stable sort by segment keeps it).
        let mut all: Vec<&Request> = e.requests.iter().collect();
        all.sort_by(|a, b| a.latency.total_cmp(&b.latency));
        out.push(names, [experiment, "all", "", variant], &v, &all);
        if e.synthetic || lo != hi {
            continue;
        }
        // The users decided on, by segment: requests only (business metrics are tested overall).
        let plain = RowValues::default();
        for (dimension, segment_of) in [
            (
                "endpoint",
                (|r: &Request| r.endpoint) as fn(&Request) -> u32,
            ),
            ("region", |r: &Request| r.region),
        ] {
            let mut by_segment = all.clone();
            by_segment.sort_by_key(|r| segment_of(r));
            for run in by_segment.chunk_by(|a, b| segment_of(a) == segment_of(b)) {
                let segment = names.get(segment_of(run[0]));
                out.push(
                    names,
                    [experiment, dimension, segment, variant],
                    &plain,
                    run,
                );
            }
        }
    }
    out.end_group();
}

impl GroupsAccumulator for UserGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DFResult<()> {
        if values.len() != ARGUMENTS.len() {
            return exec_err!(
                "{NAME} takes {} arguments: {}",
                ARGUMENTS.len(),
                ARGUMENTS.join(", ")
            );
        }
        self.users.resize_with(total_num_groups, User::default);
        let source = cast(&values[0], &DataType::Int64)?;
        let source = source.as_primitive::<Int64Type>();
        let experiment = strings(&values[1])?;
        let event_id = strings(&values[2])?;
        let variant = strings(&values[3])?;
        let synthetic = cast(&values[4], &DataType::Boolean)?;
        let synthetic = synthetic.as_boolean();
        let ts = cast(&values[5], &DataType::Int64)?;
        let ts = ts.as_primitive::<Int64Type>();
        let status = cast(&values[6], &DataType::Int32)?;
        let status = status.as_primitive::<Int32Type>();
        let latency = cast(&values[7], &DataType::Float64)?;
        let latency = latency.as_primitive::<Float64Type>();
        let endpoint = strings(&values[8])?;
        let region = strings(&values[9])?;
        let kind = strings(&values[10])?;
        let value = cast(&values[11], &DataType::Float64)?;
        let value = value.as_primitive::<Float64Type>();
        for (i, &g) in group_indices.iter().enumerate() {
            if !selected(opt_filter, i) {
                continue;
            }
            let is_synthetic = synthetic.is_valid(i) && synthetic.value(i);
            match Source::of(source.value(i))? {
                Source::LiveRequest => {
                    let request = (!is_synthetic).then(|| Request {
                        fingerprint: fingerprint(event_id.value(i)),
                        latency: if latency.is_valid(i) {
                            latency.value(i)
                        } else {
                            f64::NAN
                        },
                        endpoint: self.segment(&endpoint, i),
                        region: self.segment(&region, i),
                        error: status.is_valid(i) && status.value(i) >= 500,
                    });
                    let id = self.names.intern(experiment.value(i));
                    let v = self.names.intern(variant.value(i));
                    let e = slot(&mut self.users, &mut self.bytes, g, id);
                    Self::assign(&self.names, e, v, is_synthetic);
                    e.first_live = min_of(e.first_live, ts.value(i));
                    if let Some(r) = request {
                        e.requests.push(r);
                        self.bytes += std::mem::size_of::<Request>();
                    }
                }
                Source::Exposure => {
                    let id = self.names.intern(experiment.value(i));
                    let v = self.names.intern(variant.value(i));
                    let e = slot(&mut self.users, &mut self.bytes, g, id);
                    Self::assign(&self.names, e, v, is_synthetic);
                    e.exposed_at = min_of(e.exposed_at, ts.value(i));
                    e.exposures.push(fingerprint(event_id.value(i)));
                    self.bytes += 8;
                }
                Source::Business => {
                    let kind_name = if kind.is_valid(i) {
                        kind.value(i)
                    } else {
                        NO_KIND
                    };
                    let kind_id = self.names.intern(kind_name);
                    self.users[g].business.push(Business {
                        fingerprint: fingerprint(event_id.value(i)),
                        ts: ts.value(i),
                        value: if value.is_valid(i) {
                            value.value(i)
                        } else {
                            0.0
                        },
                        converts: CONVERSIONS.contains(&kind_name),
                        kind: kind_id,
                    });
                    self.bytes += std::mem::size_of::<Business>();
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DFResult<ArrayRef> {
        let users = self.emit_users(emit_to);
        let mut rows = Rows::new();
        for user in users {
            user_rows(&self.names, user, &mut rows);
        }
        rows.finish()
    }

    fn state(&mut self, emit_to: EmitTo) -> DFResult<Vec<ArrayRef>> {
        let users = self.emit_users(emit_to);
        let names = &self.names;
        Ok(vec![Arc::new(BinaryArray::from_iter_values(
            users.iter().map(|u| encode(names, u)),
        ))])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DFResult<()> {
        self.users.resize_with(total_num_groups, User::default);
        let states = binary(&values[0])?;
        for (i, &g) in group_indices.iter().enumerate() {
            if states.is_null(i) {
                continue;
            }
            self.merge_user(g, states.value(i))
                .ok_or_else(|| bad_state(NAME))?;
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DFResult<Vec<ArrayRef>> {
        let mut one_each = UserGroups::default();
        let rows = values[0].len();
        let indices: Vec<usize> = (0..rows).collect();
        one_each.update_batch(values, &indices, opt_filter, rows)?;
        one_each.state(EmitTo::All)
    }

    fn size(&self) -> usize {
        // Vectors grow by doubling: allow half again for their spare capacity.
        std::mem::size_of::<Self>()
            + self.users.capacity() * std::mem::size_of::<User>()
            + self.bytes * 3 / 2
            + self.names.heap_bytes()
    }
}
