//! One user's state in `user_experiments`, and the tally the accumulator keeps of all of them.
//!
//! The tally is what `GroupsAccumulator::size` reports to the memory pool, so it must cover two
//! things: what the users hold now, and what emitting them will take. DataFusion's one-step
//! aggregate materialises its whole output at once when its input ends (and must find that
//! memory within its share of the pool, or the query fails instead of spilling), and a user's
//! rows cost more than its state: its latencies are written once overall and once per segment
//! row. So every event also adds to an upper bound of the rows it may produce ([`OutputBound`]),
//! kept as counts as the events arrive; `rows::Rows` is then built with exactly that capacity,
//! so the emitted arrays never hold more than was reserved.

use super::super::codec::Writer;
use super::super::interner::Interner;

/// One live, non-synthetic request.
#[derive(Debug, Clone, Copy)]
pub(super) struct Request {
    pub fingerprint: u64,
    pub latency: f64,
    pub endpoint: u32,
    pub region: u32,
    pub error: bool,
}

/// One business event.
#[derive(Debug, Clone, Copy)]
pub(super) struct Business {
    pub fingerprint: u64,
    pub ts: i64,
    pub value: f64,
    pub converts: bool,
    /// Its kind, interned (`NO_KIND` when it has none).
    pub kind: u32,
}

/// One user in one experiment.
#[derive(Debug, Clone, Default)]
pub(super) struct InExperiment {
    pub experiment: u32,
    /// Least and greatest variant named (by name); `None` until assigned.
    pub variants: Option<(u32, u32)>,
    pub synthetic: bool,
    pub first_live: Option<i64>,
    pub exposed_at: Option<i64>,
    /// The allocation (interned `weights`) of the first exposure; read only with `exposed_at`.
    pub exposed_weights: u32,
    pub exposures: Vec<u64>,
    pub requests: Vec<Request>,
    /// The endpoints and regions its requests used, as bits ([`SegmentBits`]): its segment rows
    /// are one per bit.
    endpoints: u64,
    regions: u64,
    /// Requests whose endpoint or region is past the first 64 of its dimension, counted as a new
    /// row each (an upper bound, for services with that many endpoints or regions).
    unmapped_segments: u32,
}

/// The bit of each endpoint (or region) name in one accumulator's `InExperiment`s: the first 64
/// names of the dimension seen, numbered in order of first sight.
#[derive(Debug, Default)]
pub(super) struct SegmentBits {
    /// By interned name number: its bit + 1, or 0 while it has none.
    of_name: Vec<u8>,
    given: u8,
}

impl SegmentBits {
    /// Sets the bit of segment `name` in `bits`; whether that may add a row (a new bit, or a
    /// name past the first 64).
    fn note(&mut self, bits: &mut u64, name: u32) -> bool {
        let at = name as usize;
        if at >= self.of_name.len() {
            self.of_name.resize(at + 1, 0);
        }
        if self.of_name[at] == 0 {
            if u32::from(self.given) == u64::BITS {
                return true;
            }
            self.given += 1;
            self.of_name[at] = self.given;
        }
        let bit = 1u64 << (self.of_name[at] - 1);
        let new = *bits & bit == 0;
        *bits |= bit;
        new
    }

    fn heap_bytes(&self) -> usize {
        self.of_name.capacity()
    }
}

impl InExperiment {
    pub fn new(experiment: u32) -> Self {
        InExperiment {
            experiment,
            ..Default::default()
        }
    }

    /// At most the rows this user-in-experiment emits: its own and one per segment.
    fn rows_bound(&self) -> usize {
        1 + self.endpoints.count_ones() as usize
            + self.regions.count_ones() as usize
            + self.unmapped_segments as usize
    }
}

/// One user.
#[derive(Debug, Clone, Default)]
pub(super) struct User {
    pub experiments: Vec<InExperiment>,
    pub business: Vec<Business>,
}

impl User {
    /// Heap bytes held, as counted for the memory pool (lengths; vectors' spare capacity is
    /// allowed for in `UserGroups::size`, the `User` itself in its vector's).
    pub fn bytes(&self) -> usize {
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

/// An upper bound of what emitting some users' `analysis_users` rows takes, as counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct OutputBound {
    /// Rows: one per user and experiment, one per segment of it.
    pub rows: usize,
    /// Latencies written: each request's at most three times (overall, endpoint, region).
    pub latencies: usize,
    /// Entries of the per-kind lists: at most each business event in each experiment's row.
    pub kind_entries: usize,
}

/// Bytes of one row besides its strings and lists' items: five string offsets, seven 8-byte
/// numbers, four list offsets, four flags and a validity bit (as bits, rounded up to a byte).
const ROW_BYTES: usize = 5 * 4 + 7 * 8 + 4 * 4 + 1;
/// The longest `dimension` ("endpoint").
pub(super) const DIMENSION_BYTES: usize = "endpoint".len();
/// The arrays of one emission whatever their length: ~40 buffers, each rounded up to 64 bytes,
/// and ~30 arrays' own structs (about 150 bytes each, as `get_array_memory_size` counts them).
const ARRAYS_SLACK: usize = 40 * 64 + 30 * 150;

impl OutputBound {
    /// The bound of one user's rows.
    pub fn of(user: &User) -> Self {
        OutputBound {
            rows: user.experiments.iter().map(InExperiment::rows_bound).sum(),
            latencies: 3 * user
                .experiments
                .iter()
                .map(|e| e.requests.len())
                .sum::<usize>(),
            kind_entries: user.business.len() * user.experiments.len(),
        }
    }

    pub fn add(&mut self, other: OutputBound) {
        self.rows += other.rows;
        self.latencies += other.latencies;
        self.kind_entries += other.kind_entries;
    }

    pub fn sub(&mut self, other: OutputBound) {
        self.rows = self.rows.saturating_sub(other.rows);
        self.latencies = self.latencies.saturating_sub(other.latencies);
        self.kind_entries = self.kind_entries.saturating_sub(other.kind_entries);
    }

    /// Bytes of the arrays of `users` users' rows, no name longer than `longest_name`.
    pub fn bytes(&self, users: usize, longest_name: usize) -> usize {
        self.rows * (ROW_BYTES + 4 * longest_name + DIMENSION_BYTES)
            + self.latencies * 8
            + self.kind_entries * (4 + longest_name + 8 + 8)
            + (users + 1) * 4
            + ARRAYS_SLACK
    }
}

/// What an accumulator's users hold ([`User::bytes`] summed) and may emit, kept as events arrive.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub bytes: usize,
    pub output: OutputBound,
    endpoints: SegmentBits,
    regions: SegmentBits,
}

impl Tally {
    /// User `user`'s entry for experiment `id`, created if new.
    pub fn slot<'a>(&mut self, user: &'a mut User, id: u32) -> &'a mut InExperiment {
        let at = match user.experiments.iter().position(|e| e.experiment == id) {
            Some(at) => at,
            None => {
                self.bytes += std::mem::size_of::<InExperiment>();
                self.output.rows += 1;
                self.output.kind_entries += user.business.len();
                user.experiments.push(InExperiment::new(id));
                user.experiments.len() - 1
            }
        };
        &mut user.experiments[at]
    }

    pub fn request(&mut self, e: &mut InExperiment, r: Request) {
        self.bytes += std::mem::size_of::<Request>();
        self.output.latencies += 3;
        for (bits, names, name) in [
            (&mut e.endpoints, &mut self.endpoints, r.endpoint),
            (&mut e.regions, &mut self.regions, r.region),
        ] {
            let before = bits.count_ones();
            if names.note(bits, name) {
                self.output.rows += 1;
                if bits.count_ones() == before {
                    e.unmapped_segments += 1;
                }
            }
        }
        e.requests.push(r);
    }

    /// Heap bytes of its own (the segments' bit tables).
    pub fn heap_bytes(&self) -> usize {
        self.endpoints.heap_bytes() + self.regions.heap_bytes()
    }

    pub fn exposure(&mut self, e: &mut InExperiment, fingerprint: u64) {
        self.bytes += 8;
        e.exposures.push(fingerprint);
    }

    pub fn business(&mut self, user: &mut User, b: Business) {
        self.bytes += std::mem::size_of::<Business>();
        self.output.kind_entries += user.experiments.len();
        user.business.push(b);
    }

    /// Forgets users taken out to be emitted or spilled.
    pub fn remove(&mut self, users: &[User]) {
        for user in users {
            self.bytes = self.bytes.saturating_sub(user.bytes());
            self.output.sub(OutputBound::of(user));
        }
    }
}

/// Writes one user as the state's bytes (`UserGroups::merge_user` reads them back).
pub(super) fn encode(names: &Interner, user: &User) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(user.experiments.len() as u32);
    for e in &user.experiments {
        w.str(names.get(e.experiment));
        let weighted = e.exposed_at.is_some() && !names.get(e.exposed_weights).is_empty();
        let flags = u8::from(e.variants.is_some())
            | u8::from(e.synthetic) << 1
            | u8::from(e.first_live.is_some()) << 2
            | u8::from(e.exposed_at.is_some()) << 3
            | u8::from(weighted) << 4;
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
        if weighted {
            w.str(names.get(e.exposed_weights));
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
