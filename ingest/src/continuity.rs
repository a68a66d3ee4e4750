//! Each partition's offsets must continue where its durable files stopped, and never go back.
//!
//! Offsets can go backwards when a topic is deleted and recreated, or a broker loses its log (an
//! unclean leader election, a restored volume): the log starts again at 0 under the same name. An
//! ingest that only seeks to its durable offset would then skip the new log's first messages, or
//! overwrite nothing and miss everything up to the old offset, without a word. So:
//! - a partition resumed from a batch that recorded its last message is sought *one before* the
//!   resume offset, and that message is read again and compared (Kafka timestamp, key, payload).
//!   The same message: the log is the one the files came from; the copy is skipped. Another
//!   message, or an offset below it (the client reset to the log's start because the offset was
//!   past its end): the log was reset;
//! - after that, an offset at or below the last one seen is a reset too (offsets only grow; gaps
//!   are normal: transaction markers, compaction, retention).
//!
//! What happens on a reset is the pipeline's: stop the partition, or with `--accept-offset-reset`
//! start the next offset epoch at the log's start.

use crate::offsets::Resume;

/// What to do with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A new message: buffer it.
    Keep,
    /// Already durable (the checked copy), or its partition is stopped: drop it.
    Skip,
    /// The log was reset; the text says what was seen.
    Reset(String),
}

/// One partition's continuity state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Continuity {
    /// Offset epoch new batches are written in.
    pub epoch: u32,
    /// The offset and fingerprint of the last durable message, while it has not been read again.
    verify: Option<(i64, u64)>,
    /// The last offset seen (or durable).
    last: Option<i64>,
    /// Stopped after a reset.
    pub stopped: bool,
}

impl Continuity {
    /// The state of a partition resumed at `resume` (None: no files yet).
    pub fn resumed(resume: Option<&Resume>) -> Self {
        match resume {
            None => Continuity::default(),
            Some(r) => Continuity {
                epoch: r.epoch,
                verify: r
                    .last_message
                    .map(|fingerprint| (r.next_offset - 1, fingerprint)),
                last: Some(r.next_offset - 1),
                stopped: false,
            },
        }
    }

    /// The offset whose message is awaited to check the log, if any.
    pub fn verifying(&self) -> Option<i64> {
        self.verify.as_ref().map(|(offset, _)| *offset)
    }

    /// Judges the message at `offset` whose fingerprint is `fingerprint`.
    pub fn check(&mut self, offset: i64, fingerprint: u64) -> Verdict {
        if self.stopped {
            return Verdict::Skip;
        }
        if let Some((at, expected)) = self.verify.take() {
            if offset == at {
                if fingerprint == expected {
                    return Verdict::Skip;
                }
                return Verdict::Reset(format!(
                    "offset {at} holds another message than the one written there (fingerprint {fingerprint:016x}, written {expected:016x})"
                ));
            }
            if offset < at {
                return Verdict::Reset(format!(
                    "the log restarted at offset {offset}, below the durable offset {}",
                    at + 1
                ));
            }
            // The checked message is gone (retention, compaction); nothing to compare with.
            if offset > at + 1 {
                tracing::warn!(
                    offset, expected = at + 1,
                    "the log no longer holds the messages from the durable offset on (retention?): {} offsets skipped",
                    offset - at - 1
                );
            }
        } else if let Some(last) = self.last {
            if offset <= last {
                return Verdict::Reset(format!(
                    "offset {offset} came after offset {last}: the log went backwards"
                ));
            }
        }
        self.last = Some(offset);
        Verdict::Keep
    }

    /// Starts the next epoch after an accepted reset: the log is read again from its start.
    pub fn next_epoch(&mut self) {
        self.epoch += 1;
        self.verify = None;
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resumed_at(next: i64) -> Continuity {
        Continuity::resumed(Some(&Resume {
            next_offset: next,
            epoch: 2,
            last_message: Some(0xabc),
        }))
    }

    #[test]
    fn the_same_last_message_is_skipped_and_the_log_continues() {
        let mut c = resumed_at(1000);
        assert_eq!(c.verifying(), Some(999));
        assert_eq!(c.check(999, 0xabc), Verdict::Skip);
        assert_eq!(c.check(1000, 2), Verdict::Keep);
        assert_eq!(c.check(1002, 3), Verdict::Keep, "gaps are normal");
        assert!(matches!(c.check(1001, 4), Verdict::Reset(_)));
        assert_eq!(c.epoch, 2);
    }

    #[test]
    fn another_message_or_a_lower_offset_is_a_reset() {
        assert!(matches!(resumed_at(1000).check(999, 1), Verdict::Reset(_)));
        assert!(matches!(
            resumed_at(1000).check(0, 0xabc),
            Verdict::Reset(_)
        ));
        // Retention removed the checked message: nothing to compare, keep reading.
        assert_eq!(resumed_at(1000).check(1000, 2), Verdict::Keep);
        assert_eq!(resumed_at(1000).check(5000, 2), Verdict::Keep);
    }

    #[test]
    fn an_accepted_reset_starts_the_next_epoch_from_anywhere() {
        let mut c = resumed_at(1000);
        assert!(matches!(c.check(3, 5), Verdict::Reset(_)));
        c.next_epoch();
        assert_eq!((c.epoch, c.check(0, 5)), (3, Verdict::Keep));
        c.stopped = true;
        assert_eq!(c.check(1, 5), Verdict::Skip);
    }

    #[test]
    fn without_files_only_backwards_offsets_are_resets() {
        let mut c = Continuity::resumed(None);
        assert_eq!(c.check(5, 6), Verdict::Keep);
        assert!(matches!(c.check(5, 6), Verdict::Reset(_)));
    }
}
