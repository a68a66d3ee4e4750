//! Validated events → Arrow record batches with the table schemas of `shiftright-schemas`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::record_batch::RecordBatch;
use shiftright_schemas::Table;

use crate::decode::Event;
use crate::error::{Error, Result};

/// Builds one batch of `table` from events that all belong to it (others are a bug and skipped).
pub fn events_to_batch(table: Table, events: &[Event]) -> Result<RecordBatch> {
    let n = events.len();
    let mut event_id = StringBuilder::with_capacity(n, n * 16);
    let mut ts = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut user_id = StringBuilder::with_capacity(n, n * 12);
    let mut synthetic = BooleanBuilder::with_capacity(n);
    let mut columns: TableColumns = TableColumns::new(table, n);
    for event in events {
        if !columns.push(event) {
            continue;
        }
        let c = event.common();
        event_id.append_value(&c.event_id);
        ts.append_value(c.ts_ms);
        user_id.append_value(&c.user_id);
        synthetic.append_value(c.synthetic);
    }
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(event_id.finish()),
        Arc::new(ts.finish()),
        Arc::new(user_id.finish()),
        Arc::new(synthetic.finish()),
    ];
    arrays.extend(columns.finish());
    RecordBatch::try_new(table.schema(), arrays).map_err(|source| Error::Arrow {
        table: table.name(),
        source,
    })
}

/// The table-specific columns, after the four common ones.
enum TableColumns {
    Requests {
        experiment: StringBuilder,
        variant: StringBuilder,
        status: Int32Builder,
        latency_ms: Float64Builder,
        service: StringBuilder,
        endpoint: StringBuilder,
        region: StringBuilder,
        mode: StringBuilder,
        shadow_match: BooleanBuilder,
    },
    Business {
        kind: StringBuilder,
        value: Float64Builder,
        experiment: StringBuilder,
        variant: StringBuilder,
    },
    Exposures {
        experiment: StringBuilder,
        variant: StringBuilder,
        weights: StringBuilder,
    },
}

impl TableColumns {
    fn new(table: Table, n: usize) -> Self {
        let s = || StringBuilder::with_capacity(n, n * 8);
        match table {
            Table::Requests => TableColumns::Requests {
                experiment: s(),
                variant: s(),
                status: Int32Builder::with_capacity(n),
                latency_ms: Float64Builder::with_capacity(n),
                service: s(),
                endpoint: s(),
                region: s(),
                mode: s(),
                shadow_match: BooleanBuilder::with_capacity(n),
            },
            Table::Business => TableColumns::Business {
                kind: s(),
                value: Float64Builder::with_capacity(n),
                experiment: s(),
                variant: s(),
            },
            Table::Exposures | Table::DeadLetters => TableColumns::Exposures {
                experiment: s(),
                variant: s(),
                weights: s(),
            },
        }
    }

    /// Appends the event's own columns; false when the event is of another table.
    fn push(&mut self, event: &Event) -> bool {
        match (self, event) {
            (
                TableColumns::Requests {
                    experiment,
                    variant,
                    status,
                    latency_ms,
                    service,
                    endpoint,
                    region,
                    mode,
                    shadow_match,
                },
                Event::Request {
                    experiment: e,
                    variant: v,
                    status: st,
                    latency_ms: l,
                    service: sv,
                    endpoint: ep,
                    region: r,
                    mode: m,
                    shadow_match: sm,
                    ..
                },
            ) => {
                experiment.append_value(e);
                variant.append_value(v);
                status.append_value(*st);
                latency_ms.append_value(*l);
                service.append_option(sv.as_deref());
                endpoint.append_option(ep.as_deref());
                region.append_option(r.as_deref());
                mode.append_value(m);
                shadow_match.append_option(*sm);
                true
            }
            (
                TableColumns::Business {
                    kind,
                    value,
                    experiment,
                    variant,
                },
                Event::Business {
                    kind: k,
                    value: val,
                    experiment: e,
                    variant: v,
                    ..
                },
            ) => {
                kind.append_value(k);
                value.append_value(*val);
                experiment.append_option(e.as_deref());
                variant.append_option(v.as_deref());
                true
            }
            (
                TableColumns::Exposures {
                    experiment,
                    variant,
                    weights,
                },
                Event::Exposure {
                    experiment: e,
                    variant: v,
                    weights: w,
                    ..
                },
            ) => {
                experiment.append_value(e);
                variant.append_value(v);
                weights.append_option(w.as_deref());
                true
            }
            _ => false,
        }
    }

    fn finish(self) -> Vec<ArrayRef> {
        match self {
            TableColumns::Requests {
                mut experiment,
                mut variant,
                mut status,
                mut latency_ms,
                mut service,
                mut endpoint,
                mut region,
                mut mode,
                mut shadow_match,
            } => vec![
                Arc::new(experiment.finish()),
                Arc::new(variant.finish()),
                Arc::new(status.finish()),
                Arc::new(latency_ms.finish()),
                Arc::new(service.finish()),
                Arc::new(endpoint.finish()),
                Arc::new(region.finish()),
                Arc::new(mode.finish()),
                Arc::new(shadow_match.finish()),
            ],
            TableColumns::Business {
                mut kind,
                mut value,
                mut experiment,
                mut variant,
            } => vec![
                Arc::new(kind.finish()),
                Arc::new(value.finish()),
                Arc::new(experiment.finish()),
                Arc::new(variant.finish()),
            ],
            TableColumns::Exposures {
                mut experiment,
                mut variant,
                mut weights,
            } => vec![
                Arc::new(experiment.finish()),
                Arc::new(variant.finish()),
                Arc::new(weights.finish()),
            ],
        }
    }
}
