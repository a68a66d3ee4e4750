//! Decode micro-benchmark: JSON bytes → validated event → Arrow columns, on one core, with the
//! generator's request messages (half RFC 3339 and half epoch-millisecond timestamps, optional
//! fields as producers send them). Run with `cargo bench -p shiftright-bench --bench decode`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use shiftright_ingest::columns::events_to_batch;
use shiftright_ingest::{Decoder, IngestConfig};
use shiftright_schemas::Table;

const MESSAGES: usize = 20_000;

/// The first `MESSAGES` valid request payloads of the demo scenario.
fn payloads(now: i64) -> Vec<Vec<u8>> {
    let mut scenario = shiftright_bench::parquet_gen::scenario_for(MESSAGES as u64 * 2, 1);
    scenario.malformed_share = 0.0;
    let mut out = Vec::with_capacity(MESSAGES);
    let _ = shiftright_traffic::generate(&scenario, now, &mut |m| {
        if m.table == Table::Requests {
            out.push(m.payload);
        }
        if out.len() == MESSAGES {
            Err(())
        } else {
            Ok(())
        }
    });
    out
}

fn decode(c: &mut Criterion) {
    let now = chrono::Utc::now().timestamp_millis();
    let payloads = payloads(now);
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    let decoder = Decoder::new(&IngestConfig::new("unused", "unused"));
    let mut group = c.benchmark_group("requests");
    group.throughput(Throughput::Elements(payloads.len() as u64));
    group.bench_function("decode+validate", |b| {
        b.iter(|| {
            for p in &payloads {
                black_box(decoder.decode(Table::Requests, Some(p), now).ok());
            }
        })
    });
    let events: Vec<_> = payloads
        .iter()
        .map(|p| {
            decoder
                .decode(Table::Requests, Some(p), now)
                .expect("valid")
        })
        .collect();
    group.bench_function("arrow append", |b| {
        b.iter(|| black_box(events_to_batch(Table::Requests, &events).expect("batch")))
    });
    group.bench_function("decode+validate+arrow append", |b| {
        b.iter_batched(
            || Vec::with_capacity(payloads.len()),
            |mut events| {
                for p in &payloads {
                    if let Ok(e) = decoder.decode(Table::Requests, Some(p), now) {
                        events.push(e);
                    }
                }
                black_box(events_to_batch(Table::Requests, &events).expect("batch"))
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
    println!(
        "payloads: {} messages, {:.0} bytes on average",
        payloads.len(),
        bytes as f64 / payloads.len() as f64
    );
}

criterion_group!(benches, decode);
criterion_main!(benches);
