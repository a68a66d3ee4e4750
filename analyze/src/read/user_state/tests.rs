//! The accumulator's bookkeeping against what it holds and emits: its tally equals the users'
//! own sums after updates, merges and partial emissions, and the rows it emits never take more
//! memory than the bound it reported (DataFusion materialises them within that reservation).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray,
};
use arrow::util::display::array_value_to_string;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use proptest::prelude::*;

use super::user::{OutputBound, User};
use super::{Form, UserGroups};

/// (user, source, experiment, variant, synthetic, latency, endpoint, region, kind, event id)
type Event = (usize, i64, u8, u8, bool, f64, u8, u8, u8, u16);

/// An event of a user; everything but the user follows from its id, so resent copies (the same
/// id for the same user) are equal, as the ingest's are.
fn event() -> impl Strategy<Value = Event> {
    (0usize..24, 0u16..600).prop_map(|(user, id)| {
        let n = u32::from(id);
        (
            user,
            i64::from(id % 3),
            ((n / 3) % 3) as u8,
            ((n / 9) % 3) as u8,
            n % 41 == 0,
            if n % 29 == 0 {
                f64::NAN
            } else {
                f64::from((n * 37) % 900) + 0.25
            },
            ((n * 7) % 90) as u8,
            ((n * 11) % 5) as u8,
            ((n * 13) % 4) as u8,
            id,
        )
    })
}

/// The thirteen arguments of `user_experiments` for `events`, and each row's group (its user).
fn arguments(events: &[Event]) -> (Vec<ArrayRef>, Vec<usize>) {
    let text = |f: &dyn Fn(&Event) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(events.iter().map(f).collect::<Vec<_>>()))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(events.iter().map(|e| e.1))),
        text(&|e| Some(format!("experiment-with-a-long-name-{}", e.2))),
        text(&|e| Some(format!("id-{}", e.9))),
        text(&|e| Some(format!("v{}", e.3))),
        Arc::new(BooleanArray::from_iter(events.iter().map(|e| Some(e.4)))),
        Arc::new(Int64Array::from_iter_values(
            events.iter().map(|e| i64::from(e.9)),
        )),
        Arc::new(Int32Array::from_iter_values(events.iter().map(|e| {
            if e.9 % 7 == 0 {
                503
            } else {
                200
            }
        }))),
        Arc::new(Float64Array::from_iter_values(events.iter().map(|e| e.5))),
        // Up to 90 endpoint names: past the first 64, rows are bounded by count.
        text(&|e| (e.6 != 0).then(|| format!("/endpoint/{}", e.6))),
        text(&|e| Some(format!("region-{}", e.7))),
        text(&|e| (e.8 != 0).then(|| ["", "purchase", "signup", "refund"][e.8 as usize].into())),
        Arc::new(Float64Array::from_iter_values(
            events.iter().map(|e| f64::from(e.9 % 13)),
        )),
        // Exposures' allocations, none on some.
        text(&|e| {
            (e.1 == 1 && e.9 % 5 != 0).then(|| format!("{{\"v0\":0.{},\"v1\":0.5}}", e.9 % 4))
        }),
    ];
    (columns, events.iter().map(|e| e.0).collect())
}

/// Checks the tally against the users' own sums.
fn assert_tally_is_exact(groups: &UserGroups) {
    let bytes: usize = groups.users.iter().map(User::bytes).sum();
    let mut output = OutputBound::default();
    for user in &groups.users {
        output.add(OutputBound::of(user));
    }
    assert_eq!(groups.tally.bytes, bytes);
    assert_eq!(groups.tally.output, output);
}

/// Emits `emit_to` and checks the rows against the bound reported just before.
fn emit_within_bound(groups: &mut UserGroups, emit_to: EmitTo) -> ArrayRef {
    let taken = match emit_to {
        EmitTo::All => groups.users.len(),
        EmitTo::First(n) => n,
    };
    let mut bound = OutputBound::default();
    for user in &groups.users[..taken] {
        bound.add(OutputBound::of(user));
    }
    let reserved = bound.bytes(taken, groups.names.longest());
    let rows = groups.evaluate(emit_to).unwrap();
    assert_tally_is_exact(groups);
    let list = rows.as_list::<i32>();
    let fields = list.values().as_struct();
    assert!(
        fields.len() <= bound.rows,
        "{} rows, bound {}",
        fields.len(),
        bound.rows
    );
    let latencies = fields.column_by_name("latencies").unwrap().as_list::<i32>();
    assert!(latencies.values().len() <= bound.latencies);
    let kinds = fields.column_by_name("kinds").unwrap().as_list::<i32>();
    assert!(kinds.values().len() <= bound.kind_entries);
    assert!(
        rows.get_array_memory_size() <= reserved,
        "emitted {} bytes, reserved {reserved}",
        rows.get_array_memory_size()
    );
    rows
}

/// Each emitted row, every field as text.
fn rows_of(emitted: &ArrayRef) -> Vec<String> {
    let fields = emitted.as_list::<i32>().values().as_struct().clone();
    (0..fields.len())
        .map(|i| {
            fields
                .columns()
                .iter()
                .map(|c| array_value_to_string(c, i).unwrap())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_tally_is_exact_and_the_rows_stay_within_their_bound(
        first in prop::collection::vec(event(), 0..500),
        second in prop::collection::vec(event(), 0..500),
        emit_first in 0usize..24,
    ) {
        let users = 24;
        // Updated directly, in two batches.
        let mut direct = UserGroups::default();
        for events in [&first, &second] {
            let (columns, groups) = arguments(events);
            direct.update_batch(&columns, &groups, None, users).unwrap();
            assert_tally_is_exact(&direct);
        }
        // The same events through states: the first batch spilled and merged back.
        let mut spilled = UserGroups::default();
        let (columns, groups) = arguments(&first);
        spilled.update_batch(&columns, &groups, None, users).unwrap();
        let state = spilled.state(EmitTo::All).unwrap();
        assert_tally_is_exact(&spilled);
        prop_assert_eq!(spilled.tally.bytes, 0);
        let mut merged = UserGroups::default();
        let (columns, groups) = arguments(&second);
        merged.update_batch(&columns, &groups, None, users).unwrap();
        merged.merge_batch(&state, &(0..users).collect::<Vec<_>>(), users).unwrap();
        assert_tally_is_exact(&merged);

        let direct_head = emit_within_bound(&mut direct, EmitTo::First(emit_first));
        let direct_tail = emit_within_bound(&mut direct, EmitTo::All);
        prop_assert_eq!(direct.tally.output, OutputBound::default());
        let merged_all = emit_within_bound(&mut merged, EmitTo::All);
        // The same users give the same rows, however their events arrived.
        let mut direct_rows = rows_of(&direct_head);
        direct_rows.extend(rows_of(&direct_tail));
        direct_rows.sort();
        let mut merged_rows = rows_of(&merged_all);
        merged_rows.sort();
        prop_assert_eq!(direct_rows, merged_rows);
    }
}

/// An accumulator of `form`.
fn of_form(form: Form) -> UserGroups {
    UserGroups {
        form,
        ..UserGroups::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// What a live server does with two files: each one's events to states, the states merged
    /// into one per user, and the rows emitted from those, equal the rows of the events at once;
    /// a resent copy in the second file is still counted once.
    #[test]
    fn states_folded_file_by_file_give_the_rows_of_all_events(
        first in prop::collection::vec(event(), 0..400),
        second in prop::collection::vec(event(), 0..400),
    ) {
        let users = 24;
        let all_groups: Vec<usize> = (0..users).collect();
        let mut direct = UserGroups::default();
        let mut states: Vec<ArrayRef> = Vec::new();
        for events in [&first, &second] {
            let (columns, groups) = arguments(events);
            direct.update_batch(&columns, &groups, None, users).unwrap();
            let mut to_state = of_form(Form::EventsToState);
            to_state.update_batch(&columns, &groups, None, users).unwrap();
            let state = to_state.evaluate(EmitTo::All).unwrap();
            prop_assert_eq!(state.data_type(), &arrow::datatypes::DataType::Binary);
            states.push(state);
        }
        let mut merge = of_form(Form::StatesToState);
        for state in &states {
            merge.update_batch(std::slice::from_ref(state), &all_groups, None, users).unwrap();
        }
        let merged = merge.evaluate(EmitTo::All).unwrap();
        let mut rows = of_form(Form::StatesToRows);
        rows.update_batch(&[merged], &all_groups, None, users).unwrap();
        assert_tally_is_exact(&rows);
        let mut folded = rows_of(&emit_within_bound(&mut rows, EmitTo::All));
        folded.sort();
        let mut expected = rows_of(&direct.evaluate(EmitTo::All).unwrap());
        expected.sort();
        prop_assert_eq!(folded, expected);
    }
}
