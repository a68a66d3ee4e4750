//! Bytes of one Kafka message → one validated event, or the reason it is rejected.
//!
//! Every input ends as exactly one of the two: the decoder never panics and never drops a message
//! silently. A rejection carries a stable reason code (for metrics and SQL) and a detail for people.

use std::fmt;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use shiftright_schemas::{Table, MAX_ABS_VALUE, MAX_LATENCY_MS, MODES};

use crate::config::IngestConfig;

mod fields;

use fields::{Allocation, Scalar, TopLevel};

/// Most variants an exposure's `weights` may name.
pub const MAX_WEIGHTS: usize = 64;

/// Fields every event has.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    /// Producer's unique id.
    pub event_id: String,
    /// Event time, epoch milliseconds UTC.
    pub ts_ms: i64,
    /// The randomization unit.
    pub user_id: String,
    /// Resolved flag: the producer's `synthetic` or a synthetic id prefix.
    pub synthetic: bool,
}

/// A validated event, ready to become a Parquet row.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A request served by a variant.
    Request {
        /// Common fields.
        common: Common,
        /// Experiment key.
        experiment: String,
        /// Variant.
        variant: String,
        /// HTTP status, 100–599.
        status: i32,
        /// Latency, finite and ≥ 0.
        latency_ms: f64,
        /// Optional service.
        service: Option<String>,
        /// Optional endpoint.
        endpoint: Option<String>,
        /// Optional region.
        region: Option<String>,
        /// `live`, `shadow` or `mirror`.
        mode: &'static str,
        /// For shadow calls: did the result match live.
        shadow_match: Option<bool>,
    },
    /// A business outcome.
    Business {
        /// Common fields.
        common: Common,
        /// `conversion`, `purchase`, `engagement`, …
        kind: String,
        /// Revenue, 0 when absent.
        value: f64,
        /// Optional producer attribution.
        experiment: Option<String>,
        /// Optional producer attribution.
        variant: Option<String>,
    },
    /// An assignment of a user to a variant.
    Exposure {
        /// Common fields.
        common: Common,
        /// Experiment key.
        experiment: String,
        /// Variant.
        variant: String,
        /// The allocation in force at the assignment, as canonical JSON of normalised shares
        /// (keys sorted), when the producer sent one.
        weights: Option<String>,
    },
}

impl Event {
    /// Fields shared by all events.
    pub fn common(&self) -> &Common {
        match self {
            Event::Request { common, .. }
            | Event::Business { common, .. }
            | Event::Exposure { common, .. } => common,
        }
    }

    /// The experiment the row is partitioned by, if any.
    pub fn experiment(&self) -> Option<&str> {
        match self {
            Event::Request { experiment, .. } | Event::Exposure { experiment, .. } => {
                Some(experiment)
            }
            Event::Business { experiment, .. } => experiment.as_deref(),
        }
    }

    /// The `date=` partition: the UTC day of `ts`.
    pub fn date(&self) -> String {
        day_of(self.common().ts_ms)
    }

    /// About how many bytes the row takes in memory, for flush thresholds and the memory budget.
    pub fn approx_bytes(&self) -> usize {
        let c = self.common();
        let base = 96 + c.event_id.len() + c.user_id.len();
        let opt = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() + 24);
        base + match self {
            Event::Request {
                experiment,
                variant,
                service,
                endpoint,
                region,
                ..
            } => 64 + experiment.len() + variant.len() + opt(service) + opt(endpoint) + opt(region),
            Event::Business {
                kind,
                experiment,
                variant,
                ..
            } => 48 + kind.len() + opt(experiment) + opt(variant),
            Event::Exposure {
                experiment,
                variant,
                weights,
                ..
            } => 48 + experiment.len() + variant.len() + opt(weights),
        }
    }
}

/// `YYYY-MM-DD` of an epoch-millisecond time, UTC.
pub fn day_of(ts_ms: i64) -> String {
    match Utc.timestamp_millis_opt(ts_ms).single() {
        Some(t) => format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day()),
        None => "1970-01-01".into(),
    }
}

/// Why a message was rejected. The code is stable: dashboards and SQL group by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// No payload, or zero bytes.
    Empty,
    /// Payload over the configured size limit.
    TooLarge,
    /// Not valid UTF-8.
    InvalidUtf8,
    /// Not JSON (or a number JSON cannot hold).
    InvalidJson,
    /// JSON, but not an object.
    NotAnObject,
    /// A required field is absent or null.
    MissingField,
    /// A field has the wrong JSON type.
    WrongType,
    /// A field's value is out of its allowed range (latency outside 0–24 h, |value| over 10^12,
    /// status outside 100–599, unknown mode, empty id).
    InvalidValue,
    /// `ts` is neither RFC 3339 nor integer epoch milliseconds.
    InvalidTimestamp,
    /// `ts` is too far in the past or future.
    TimestampOutOfRange,
    /// The message came from a topic the ingest has no table for.
    UnknownTopic,
}

impl RejectReason {
    /// Every reason, for metrics and documentation.
    pub const ALL: [RejectReason; 11] = [
        RejectReason::Empty,
        RejectReason::TooLarge,
        RejectReason::InvalidUtf8,
        RejectReason::InvalidJson,
        RejectReason::NotAnObject,
        RejectReason::MissingField,
        RejectReason::WrongType,
        RejectReason::InvalidValue,
        RejectReason::InvalidTimestamp,
        RejectReason::TimestampOutOfRange,
        RejectReason::UnknownTopic,
    ];

    /// The stable code stored in the `reason` column.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::Empty => "empty",
            RejectReason::TooLarge => "too_large",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::MissingField => "missing_field",
            RejectReason::WrongType => "wrong_type",
            RejectReason::InvalidValue => "invalid_value",
            RejectReason::InvalidTimestamp => "invalid_timestamp",
            RejectReason::TimestampOutOfRange => "timestamp_out_of_range",
            RejectReason::UnknownTopic => "unknown_topic",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A rejected message's reason and a detail naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable code.
    pub reason: RejectReason,
    /// For people: which field, what was found, what is allowed.
    pub detail: String,
}

impl Rejection {
    fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

/// Validates messages of one table against the rules of the event schemas.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_message_bytes: usize,
    max_age_ms: i64,
    max_future_ms: i64,
    synthetic_prefixes: Vec<String>,
}

impl Decoder {
    /// A decoder with the limits of `config`.
    pub fn new(config: &IngestConfig) -> Self {
        Decoder {
            max_message_bytes: config.max_message_bytes,
            max_age_ms: i64::try_from(config.max_event_age.as_millis()).unwrap_or(i64::MAX),
            max_future_ms: i64::try_from(config.max_event_future.as_millis()).unwrap_or(i64::MAX),
            synthetic_prefixes: config.synthetic_prefixes.clone(),
        }
    }

    /// Decodes one payload as an event of `table`; `now_ms` bounds the accepted timestamps.
    pub fn decode(
        &self,
        table: Table,
        payload: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<Event, Rejection> {
        let bytes = match payload {
            None | Some([]) => {
                return Err(Rejection::new(
                    RejectReason::Empty,
                    "message has no payload",
                ))
            }
            Some(b) => b,
        };
        if bytes.len() > self.max_message_bytes {
            return Err(Rejection::new(
                RejectReason::TooLarge,
                format!(
                    "message is {} bytes; the limit is {} (--max-message-bytes)",
                    bytes.len(),
                    self.max_message_bytes
                ),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            Rejection::new(
                RejectReason::InvalidUtf8,
                format!("payload is not UTF-8: {e}"),
            )
        })?;
        let top = fields::parse(text).map_err(|e| {
            Rejection::new(
                RejectReason::InvalidJson,
                format!("payload is not JSON: {e}"),
            )
        })?;
        let fields = match top {
            TopLevel::Object(fields) => Fields(fields),
            TopLevel::Other(kind) => {
                return Err(Rejection::new(
                    RejectReason::NotAnObject,
                    format!("payload is a JSON {kind}, not an object"),
                ))
            }
        };
        let common = self.common(&fields, now_ms)?;
        Ok(match table {
            Table::Requests => {
                let status = fields.required_i64("status")?;
                if !(100..=599).contains(&status) {
                    return Err(Rejection::new(
                        RejectReason::InvalidValue,
                        format!("status is {status}; an HTTP status is 100–599"),
                    ));
                }
                let latency_ms = fields.required_f64("latency_ms")?;
                if !latency_ms.is_finite() || !(0.0..=MAX_LATENCY_MS).contains(&latency_ms) {
                    return Err(Rejection::new(
                        RejectReason::InvalidValue,
                        format!("latency_ms is {latency_ms}; it must be from 0 to {MAX_LATENCY_MS} (24 hours)"),
                    ));
                }
                let mode = match fields.optional_str("mode")? {
                    None => "live",
                    Some(m) => {
                        MODES
                            .iter()
                            .copied()
                            .find(|known| *known == m)
                            .ok_or_else(|| {
                                Rejection::new(
                                    RejectReason::InvalidValue,
                                    format!("mode is {m:?}; allowed: live, shadow, mirror"),
                                )
                            })?
                    }
                };
                Event::Request {
                    experiment: fields.required_id("experiment")?,
                    variant: fields.required_id("variant")?,
                    status: status as i32,
                    latency_ms,
                    service: fields.optional_str("service")?.map(str::to_owned),
                    endpoint: fields.optional_str("endpoint")?.map(str::to_owned),
                    region: fields.optional_str("region")?.map(str::to_owned),
                    mode,
                    shadow_match: fields.optional_bool("shadow_match")?,
                    common,
                }
            }
            Table::Business => {
                let value = fields.optional_f64("value")?.unwrap_or(0.0);
                if !value.is_finite() || value.abs() > MAX_ABS_VALUE {
                    return Err(Rejection::new(
                        RejectReason::InvalidValue,
                        format!("value is {value}; it must be finite and at most {MAX_ABS_VALUE:e} either way"),
                    ));
                }
                Event::Business {
                    kind: fields.required_id("kind")?,
                    value,
                    experiment: fields.optional_str("experiment")?.map(str::to_owned),
                    variant: fields.optional_str("variant")?.map(str::to_owned),
                    common,
                }
            }
            Table::Exposures => Event::Exposure {
                experiment: fields.required_id("experiment")?,
                variant: fields.required_id("variant")?,
                weights: fields.allocation()?,
                common,
            },
            Table::DeadLetters => {
                return Err(Rejection::new(
                    RejectReason::UnknownTopic,
                    "dead letters are not an event table",
                ))
            }
        })
    }

    fn common(&self, fields: &Fields<'_>, now_ms: i64) -> Result<Common, Rejection> {
        let event_id = fields.required_id("event_id")?;
        let user_id = fields.required_id("user_id")?;
        let ts_ms = parse_ts(fields.present("ts"))?;
        if ts_ms < now_ms.saturating_sub(self.max_age_ms)
            || ts_ms > now_ms.saturating_add(self.max_future_ms)
        {
            return Err(Rejection::new(
                RejectReason::TimestampOutOfRange,
                format!(
                    "ts {} is outside the accepted window [now − {} s, now + {} s] (--max-event-age, --max-event-future)",
                    format_ms(ts_ms),
                    self.max_age_ms / 1000,
                    self.max_future_ms / 1000
                ),
            ));
        }
        let flagged = fields.optional_bool("synthetic")?.unwrap_or(false);
        let synthetic = flagged
            || self
                .synthetic_prefixes
                .iter()
                .any(|p| user_id.starts_with(p.as_str()));
        Ok(Common {
            event_id,
            ts_ms,
            user_id,
            synthetic,
        })
    }
}

fn format_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map_or_else(|| format!("{ms} ms"), |t| t.to_rfc3339())
}

/// `ts` as epoch milliseconds: RFC 3339 string or integer milliseconds.
fn parse_ts(value: Option<&Scalar<'_>>) -> Result<i64, Rejection> {
    match value {
        None | Some(Scalar::Null) => {
            Err(Rejection::new(RejectReason::MissingField, "ts is missing"))
        }
        Some(Scalar::Str(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| {
                Rejection::new(
                    RejectReason::InvalidTimestamp,
                    format!("ts {s:?} is not RFC 3339: {e}"),
                )
            }),
        Some(n) if n.is_number() => n.as_i64().ok_or_else(|| {
            Rejection::new(
                RejectReason::InvalidTimestamp,
                format!("ts {n} is not integer epoch milliseconds"),
            )
        }),
        Some(other) => Err(Rejection::new(
            RejectReason::WrongType,
            format!(
                "ts is a JSON {}; expected an RFC 3339 string or integer epoch milliseconds",
                other.json_type()
            ),
        )),
    }
}

/// Typed access to an event's fields, with rejections that name the field.
struct Fields<'a>(fields::Fields<'a>);

impl<'a> Fields<'a> {
    /// `weights`, checked (an object of 2 to [`MAX_WEIGHTS`] non-empty variant names, each a
    /// positive finite number) and written as canonical JSON of the shares, rounded to 1e-9, so
    /// that `{"v1": 95, "v2": 5}` and `{"v2": 0.05, "v1": 0.95}` are one allocation.
    fn allocation(&self) -> Result<Option<String>, Rejection> {
        let entries = match self.0.weights() {
            None | Some(Allocation::Other(Scalar::Null)) => return Ok(None),
            Some(Allocation::Other(other)) => {
                return Err(Self::wrong_type(
                    fields::WEIGHTS,
                    "an object of variant → weight",
                    other,
                ))
            }
            Some(Allocation::Object(entries)) => entries,
        };
        let invalid = |detail: String| Err(Rejection::new(RejectReason::InvalidValue, detail));
        if !(2..=MAX_WEIGHTS).contains(&entries.len()) {
            return invalid(format!(
                "weights names {} variants; an allocation names 2 to {MAX_WEIGHTS}",
                entries.len()
            ));
        }
        let mut weights = std::collections::BTreeMap::new();
        for (name, value) in entries {
            let at = format!("weights.{name}");
            if name.is_empty() {
                return invalid("weights names an empty variant".into());
            }
            let Some(w) = value.as_f64() else {
                return Err(Self::wrong_type(&at, "a number", value));
            };
            if !(w > 0.0 && w.is_finite()) {
                return invalid(format!("{at} is {w}; a weight is a positive number"));
            }
            weights.insert(name.to_string(), w);
        }
        let total: f64 = weights.values().sum();
        if !total.is_finite() {
            return invalid("weights sum past the largest number".into());
        }
        for w in weights.values_mut() {
            *w = (*w / total * 1e9).round() / 1e9;
        }
        serde_json::to_string(&weights)
            .map(Some)
            .map_err(|e| Rejection::new(RejectReason::InvalidValue, format!("weights: {e}")))
    }

    fn present(&self, name: &str) -> Option<&Scalar<'a>> {
        self.0.get(name).filter(|v| **v != Scalar::Null)
    }

    fn required(&self, name: &str) -> Result<&Scalar<'a>, Rejection> {
        self.present(name)
            .ok_or_else(|| Rejection::new(RejectReason::MissingField, format!("{name} is missing")))
    }

    fn wrong_type(name: &str, expected: &str, found: &Scalar<'_>) -> Rejection {
        Rejection::new(
            RejectReason::WrongType,
            format!(
                "{name} is a JSON {}; expected {expected}",
                found.json_type()
            ),
        )
    }

    /// A required non-empty string (ids, keys).
    fn required_id(&self, name: &str) -> Result<String, Rejection> {
        match self.required(name)? {
            Scalar::Str(s) if s.is_empty() => Err(Rejection::new(
                RejectReason::InvalidValue,
                format!("{name} is an empty string"),
            )),
            Scalar::Str(s) => Ok(s.as_ref().to_owned()),
            other => Err(Self::wrong_type(name, "a string", other)),
        }
    }

    fn required_i64(&self, name: &str) -> Result<i64, Rejection> {
        let v = self.required(name)?;
        v.as_i64().ok_or_else(|| match v {
            n if n.is_number() => Rejection::new(
                RejectReason::InvalidValue,
                format!("{name} is {v}; expected an integer"),
            ),
            other => Self::wrong_type(name, "an integer", other),
        })
    }

    fn required_f64(&self, name: &str) -> Result<f64, Rejection> {
        let v = self.required(name)?;
        v.as_f64()
            .ok_or_else(|| Self::wrong_type(name, "a number", v))
    }

    fn optional_f64(&self, name: &str) -> Result<Option<f64>, Rejection> {
        self.present(name)
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| Self::wrong_type(name, "a number", v))
            })
            .transpose()
    }

    fn optional_str(&self, name: &str) -> Result<Option<&str>, Rejection> {
        self.present(name)
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| Self::wrong_type(name, "a string", v))
            })
            .transpose()
    }

    fn optional_bool(&self, name: &str) -> Result<Option<bool>, Rejection> {
        self.present(name)
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| Self::wrong_type(name, "a boolean", v))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests;
