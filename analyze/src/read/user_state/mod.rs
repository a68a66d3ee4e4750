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
//!
//! Here: the function, and the accumulator's updates, merges and emissions. `user` holds one
//! user's state and the tally of what the users hold and will emit (the memory the accumulator
//! reports); `rows` builds the emitted rows.

mod rows;
#[cfg(test)]
mod tests;
mod user;

use std::hash::BuildHasher;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BooleanArray, StringViewArray};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Int32Type, Int64Type};
use datafusion::common::{exec_err, Result as DFResult};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use super::codec::Reader;
use super::udaf::{bad_state, binary, cast, selected, state_per_row, strings, OneGroup};
use crate::read::interner::{hasher, Interner};
use rows::Rows;
use user::{encode, Business, InExperiment, OutputBound, Request, Tally, User};

/// The function's SQL name.
pub const NAME: &str = "user_experiments";

/// Its arguments, in order (`queries/analysis_users.sql` passes them).
pub const ARGUMENTS: [&str; 13] = [
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
    "weights",
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

/// The kind of a business event that names none.
const NO_KIND: &str = "";

/// The allocation of an exposure that carries no `weights` (sorts before any JSON object).
pub(super) const NO_WEIGHTS: &str = "";

fn min_of(a: Option<i64>, b: i64) -> Option<i64> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn fingerprint(event_id: &str) -> u64 {
    hasher().hash_one(event_id.as_bytes())
}

/// What the aggregate reads and what it gives. The analysis is [`Form::EventsToRows`]; the
/// other three split it at the user's state (its events as bytes, the same state DataFusion
/// spills and merges), so that a live server can fold each new file into the states it kept
/// and emit the rows of every user without reading the old files again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Form {
    /// `user_experiments(…13 arguments)`: events in, the user's `analysis_users` rows out.
    EventsToRows,
    /// `user_experiments_state(…13 arguments)`: events in, the user's state out (Binary).
    EventsToState,
    /// `user_experiments_merge(state)`: states in, one merged state out.
    StatesToState,
    /// `user_experiments_of_states(state)`: states in, the user's rows out.
    StatesToRows,
}

impl Form {
    /// Every form.
    pub const ALL: [Form; 4] = [
        Form::EventsToRows,
        Form::EventsToState,
        Form::StatesToState,
        Form::StatesToRows,
    ];

    /// The function's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Form::EventsToRows => NAME,
            Form::EventsToState => "user_experiments_state",
            Form::StatesToState => "user_experiments_merge",
            Form::StatesToRows => "user_experiments_of_states",
        }
    }

    fn reads_states(self) -> bool {
        matches!(self, Form::StatesToState | Form::StatesToRows)
    }

    fn emits_state(self) -> bool {
        matches!(self, Form::EventsToState | Form::StatesToState)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UserExperimentsUdaf {
    signature: Signature,
    form: Form,
}

impl Default for UserExperimentsUdaf {
    fn default() -> Self {
        UserExperimentsUdaf::of(Form::EventsToRows)
    }
}

impl UserExperimentsUdaf {
    /// The function of `form`.
    pub fn of(form: Form) -> Self {
        let signature = if form.reads_states() {
            Signature::exact(vec![DataType::Binary], Volatility::Immutable)
        } else {
            Signature::any(ARGUMENTS.len(), Volatility::Immutable)
        };
        UserExperimentsUdaf { signature, form }
    }

    fn groups(&self) -> UserGroups {
        UserGroups {
            form: self.form,
            ..UserGroups::default()
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
        count("assigned_at"),
        Field::new("assigned_weights", DataType::Utf8, true),
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

pub(super) fn return_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(row_fields()),
        false,
    )))
}

impl AggregateUDFImpl for UserExperimentsUdaf {
    fn name(&self) -> &str {
        self.form.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DFResult<DataType> {
        Ok(if self.form.emits_state() {
            DataType::Binary
        } else {
            return_type()
        })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DFResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "events"),
            DataType::Binary,
            true,
        ))])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> DFResult<Box<dyn Accumulator>> {
        Ok(Box::new(OneGroup(self.groups())))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> DFResult<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(self.groups()))
    }
}

/// Every user of one aggregate partition.
#[derive(Debug)]
pub struct UserGroups {
    /// What the function reads and gives.
    form: Form,
    names: Interner,
    users: Vec<User>,
    /// What `users` hold and may emit.
    tally: Tally,
}

impl Default for UserGroups {
    fn default() -> Self {
        UserGroups {
            form: Form::EventsToRows,
            names: Interner::default(),
            users: Vec::new(),
            tally: Tally::default(),
        }
    }
}

/// The last name interned from one string column of a batch: rows of one experiment, variant or
/// segment come in runs (and Parquet's dictionaries give equal values equal views), so most rows
/// need no hash. Equal views are equal strings within one array: a short string is inline in its
/// view, a long one is named by buffer, offset and length. One per column and batch.
#[derive(Default)]
struct Recent(Option<(u128, u32)>);

impl Recent {
    fn intern(&mut self, names: &mut Interner, column: &StringViewArray, i: usize) -> u32 {
        let view = column.views()[i];
        if let Some((last, id)) = self.0 {
            if last == view {
                return id;
            }
        }
        let id = names.intern(column.value(i));
        self.0 = Some((view, id));
        id
    }

    /// The segment named at row `i` ([`NO_SEGMENT`] when none is).
    fn segment(&mut self, names: &mut Interner, column: &StringViewArray, i: usize) -> u32 {
        if column.is_null(i) {
            names.intern(NO_SEGMENT)
        } else {
            self.intern(names, column, i)
        }
    }
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

    /// Notes an exposure at `ts` under `allocation` (interned weights, [`NO_WEIGHTS`] for none):
    /// the user's first exposure and the allocation it was drawn under. Of exposures at the same
    /// time the least allocation by text, so that the merge order cannot change it.
    fn exposed(names: &Interner, e: &mut InExperiment, ts: i64, allocation: u32) {
        let earlier = match e.exposed_at {
            None => true,
            Some(t) if ts < t => true,
            Some(t) if ts == t => names.get(allocation) < names.get(e.exposed_weights),
            Some(_) => false,
        };
        if earlier {
            e.exposed_at = Some(ts);
            e.exposed_weights = allocation;
        }
    }

    fn emit_users(&mut self, emit_to: EmitTo) -> Vec<User> {
        let taken = emit_to.take_needed(&mut self.users);
        self.tally.remove(&taken);
        taken
    }

    /// Merges the states of `values[0]` (Binary, one user's each) into their groups: the
    /// aggregate's own merge, and the update of the forms that read states.
    fn merge_states(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DFResult<()> {
        self.users.resize_with(total_num_groups, User::default);
        let states = binary(&values[0])?;
        for (i, &g) in group_indices.iter().enumerate() {
            if states.is_null(i) || !selected(opt_filter, i) {
                continue;
            }
            self.merge_user(g, states.value(i))
                .ok_or_else(|| bad_state(self.form.name()))?;
        }
        Ok(())
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
            let exposed_weights = if flags & 16 != 0 {
                self.names.intern(r.str()?)
            } else {
                self.names.intern(NO_WEIGHTS)
            };
            let exposures: Vec<u64> = (0..r.u32()?).map(|_| r.u64()).collect::<Option<_>>()?;
            let table: Vec<u32> = (0..r.u32()?)
                .map(|_| r.str().map(|s| self.names.intern(s)))
                .collect::<Option<_>>()?;
            let local = |i: u32| table.get(i as usize).copied();
            let id = self.names.intern(&experiment);
            let synthetic = flags & 2 != 0;
            let e = self.tally.slot(&mut self.users[g], id);
            for _ in 0..r.u32()? {
                let request = Request {
                    fingerprint: r.u64()?,
                    latency: r.f64()?,
                    endpoint: local(r.u32()?)?,
                    region: local(r.u32()?)?,
                    error: r.u8()? != 0,
                };
                self.tally.request(e, request);
            }
            if let Some((lo, hi)) = variants {
                Self::assign(&self.names, e, lo, synthetic);
                Self::assign(&self.names, e, hi, synthetic);
            }
            e.synthetic |= synthetic;
            if let Some(t) = first_live {
                e.first_live = min_of(e.first_live, t);
            }
            if let Some(t) = exposed_at {
                Self::exposed(&self.names, e, t, exposed_weights);
            }
            for f in exposures {
                self.tally.exposure(e, f);
            }
        }
        for _ in 0..r.u32()? {
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
            self.tally.business(&mut self.users[g], b);
        }
        r.done()
    }
}

impl GroupsAccumulator for UserGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DFResult<()> {
        if self.form.reads_states() {
            return self.merge_states(values, group_indices, opt_filter, total_num_groups);
        }
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
        let weights = strings(&values[12])?;
        let [mut experiments, mut variants, mut endpoints, mut regions, mut allocations] =
            std::array::from_fn(|_| Recent::default());
        let no_weights = self.names.intern(NO_WEIGHTS);
        let names = &mut self.names;
        for (i, &g) in group_indices.iter().enumerate() {
            if !selected(opt_filter, i) {
                continue;
            }
            let is_synthetic = synthetic.is_valid(i) && synthetic.value(i);
            let user = &mut self.users[g];
            match Source::of(source.value(i))? {
                Source::LiveRequest => {
                    let request = (!is_synthetic).then(|| Request {
                        fingerprint: fingerprint(event_id.value(i)),
                        latency: if latency.is_valid(i) {
                            latency.value(i)
                        } else {
                            f64::NAN
                        },
                        endpoint: endpoints.segment(names, &endpoint, i),
                        region: regions.segment(names, &region, i),
                        error: status.is_valid(i) && status.value(i) >= 500,
                    });
                    let id = experiments.intern(names, &experiment, i);
                    let v = variants.intern(names, &variant, i);
                    let e = self.tally.slot(user, id);
                    Self::assign(names, e, v, is_synthetic);
                    e.first_live = min_of(e.first_live, ts.value(i));
                    if let Some(r) = request {
                        self.tally.request(e, r);
                    }
                }
                Source::Exposure => {
                    let id = experiments.intern(names, &experiment, i);
                    let v = variants.intern(names, &variant, i);
                    let e = self.tally.slot(user, id);
                    Self::assign(names, e, v, is_synthetic);
                    let allocation = if weights.is_null(i) {
                        no_weights
                    } else {
                        allocations.intern(names, &weights, i)
                    };
                    Self::exposed(names, e, ts.value(i), allocation);
                    self.tally.exposure(e, fingerprint(event_id.value(i)));
                }
                Source::Business => {
                    let kind_name = if kind.is_valid(i) {
                        kind.value(i)
                    } else {
                        NO_KIND
                    };
                    let b = Business {
                        fingerprint: fingerprint(event_id.value(i)),
                        ts: ts.value(i),
                        value: if value.is_valid(i) {
                            value.value(i)
                        } else {
                            0.0
                        },
                        converts: CONVERSIONS.contains(&kind_name),
                        kind: names.intern(kind_name),
                    };
                    self.tally.business(user, b);
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DFResult<ArrayRef> {
        if self.form.emits_state() {
            let mut state = self.state(emit_to)?;
            return Ok(state.remove(0));
        }
        let users = self.emit_users(emit_to);
        let mut bound = OutputBound::default();
        for user in &users {
            bound.add(OutputBound::of(user));
        }
        let mut rows = Rows::with_capacity(bound, users.len(), self.names.longest());
        for user in users {
            rows.user(&self.names, user);
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
        self.merge_states(values, group_indices, None, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DFResult<Vec<ArrayRef>> {
        let groups = UserGroups {
            form: self.form,
            ..UserGroups::default()
        };
        state_per_row(groups, values, opt_filter)
    }

    fn size(&self) -> usize {
        // Vectors grow by doubling: allow half again for their spare capacity. And the rows
        // emitting the users takes: DataFusion builds them all at once when the input ends.
        std::mem::size_of::<Self>()
            + self.users.capacity() * std::mem::size_of::<User>()
            + self.tally.bytes * 3 / 2
            + self.names.heap_bytes()
            + self.tally.heap_bytes()
            + self
                .tally
                .output
                .bytes(self.users.len(), self.names.longest())
    }
}
