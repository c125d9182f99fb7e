//! Rows into request bodies: the rules that close a batch, and its compression.

use std::io::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::before_send::BeforeSend;
use crate::rows::Row;
use crate::wire::{Encoder, WallClock};

/// When a batch closes: whichever limit is reached first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_events: usize,
    /// Uncompressed NDJSON bytes.
    pub(crate) max_bytes: usize,
    /// Time since the batch's first row was added to it.
    pub(crate) max_age: Duration,
}

/// A closed batch: an NDJSON body and how many rows it holds. Clones share the bytes.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub(crate) body: Bytes,
    pub(crate) events: usize,
    /// An attempt to send it ended without an answer (a timeout, a connection lost after the
    /// request went out), or it was spooled while a send was under way: the service may hold
    /// its rows already.
    pub(crate) maybe_delivered: bool,
    /// The body gzip-compressed, once [`Batch::compress`] ran.
    gzipped: Option<Bytes>,
}

impl Batch {
    pub(crate) fn new(body: Vec<u8>, events: usize) -> Self {
        Self {
            body: body.into(),
            events,
            maybe_delivered: false,
            gzipped: None,
        }
    }

    /// A batch read back from the spool: its body, and the same compressed as it was stored.
    pub(crate) fn from_spool(body: Vec<u8>, gzipped: Bytes, events: usize) -> Self {
        Self {
            body: body.into(),
            events,
            maybe_delivered: false,
            gzipped: Some(gzipped),
        }
    }

    /// Compresses the body now, so that sending does not wait for it: the worker compresses a
    /// batch as it closes, while the previous one is in flight.
    pub(crate) fn compress(&mut self) {
        if self.gzipped.is_none() {
            // Compressing into memory only fails if allocation does, which aborts anyway; the
            // body then goes uncompressed.
            self.gzipped = self.gzip().ok().map(Bytes::from);
        }
    }

    /// The compressed body (compressed now if not yet), shared without a copy: what the spool
    /// stores. `None` only if compression failed.
    pub(crate) fn compressed(&mut self) -> Option<Bytes> {
        self.compress();
        self.gzipped.clone()
    }

    /// What goes on the wire, shared by every attempt without a copy: the compressed body
    /// (compressed now if not yet) with its `Content-Encoding`, or the body as is.
    pub(crate) fn payload(&mut self, gzip: bool) -> (Bytes, Option<&'static str>) {
        if gzip {
            self.compress();
        }
        match (&self.gzipped, gzip) {
            (Some(gzipped), true) => (gzipped.clone(), Some("gzip")),
            _ => (self.body.clone(), None),
        }
    }

    /// Splits the body at the line boundary nearest its middle, for a `413 Payload Too Large`.
    /// A single row cannot be split and comes back as the error.
    pub(crate) fn split(self) -> Result<(Batch, Batch), Batch> {
        if self.events < 2 {
            return Err(self);
        }
        let middle = self.body.len() / 2;
        // Lines end in '\n', so a boundary is just past one. Prefer the first after the middle;
        // the last line's '\n' is the body's end and splits nothing, so fall back to before it.
        let cut = self.body[middle..self.body.len() - 1]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| middle + i + 1)
            .or_else(|| {
                self.body[..middle]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map(|i| i + 1)
            });
        let Some(cut) = cut else {
            return Err(self);
        };
        let mut head = self.body;
        let tail = head.split_off(cut);
        let head_events = head.iter().filter(|&&b| b == b'\n').count();
        let half = |body, events| Batch {
            body,
            events,
            maybe_delivered: self.maybe_delivered,
            gzipped: None,
        };
        Ok((
            half(head, head_events),
            half(tail, self.events - head_events),
        ))
    }

    /// The body gzip-compressed. Level 1: JSON compresses well at any level and the worker must
    /// keep up with a busy server on one core.
    fn gzip(&self) -> std::io::Result<Vec<u8>> {
        let mut encoder =
            GzEncoder::new(Vec::with_capacity(self.body.len() / 6), Compression::fast());
        encoder.write_all(&self.body)?;
        encoder.finish()
    }
}

/// Accumulates encoded rows until a limit closes the batch.
pub(crate) struct Batcher {
    limits: Limits,
    body: Vec<u8>,
    events: usize,
    /// When the open batch got its first row; `None` while empty.
    opened: Option<Instant>,
    clock: WallClock,
    encoder: Encoder,
    before_send: Option<BeforeSend>,
}

impl Batcher {
    pub(crate) fn new(limits: Limits, before_send: Option<BeforeSend>) -> Self {
        Self {
            limits,
            body: Vec::new(),
            events: 0,
            opened: None,
            clock: WallClock::now(),
            encoder: Encoder::default(),
            before_send,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// When the open batch must close by age; `None` while it is empty.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.opened.map(|opened| opened + self.limits.max_age)
    }

    /// Adds one row; returns the batch it closed, if adding it reached a limit.
    pub(crate) fn push(&mut self, row: &Row) -> Option<Batch> {
        if self.events == 0 {
            // Once per batch: a stepped system clock skews one batch at most.
            self.clock.refresh();
        }
        let start = self.body.len();
        self.encoder.encode(row, &self.clock, &mut self.body);
        if let Some(hook) = &self.before_send
            && !hook.apply(&mut self.body, start)
        {
            return None;
        }
        let mut closed = None;
        if self.events > 0 && self.body.len() > self.limits.max_bytes {
            // The line would overflow the batch: close the batch without it, start the next one
            // with it. (At most one batch closes per push: a batch that just closed on count
            // cannot overflow on the next line, as it holds only that line.)
            let line = self.body.split_off(start);
            closed = Some(self.take());
            self.body = line;
        }
        self.events += 1;
        if self.opened.is_none() {
            self.opened = Some(Instant::now());
        }
        if closed.is_none() && self.events >= self.limits.max_events {
            closed = Some(self.take());
        }
        closed
    }

    /// Closes the open batch if its age limit has passed.
    pub(crate) fn close_if_due(&mut self, now: Instant) -> Option<Batch> {
        match self.deadline() {
            Some(deadline) if deadline <= now => Some(self.take()),
            _ => None,
        }
    }

    /// Closes the open batch now, whatever its size; `None` when empty.
    pub(crate) fn close(&mut self) -> Option<Batch> {
        (!self.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> Batch {
        let capacity = self.body.len();
        self.opened = None;
        Batch::new(
            std::mem::replace(&mut self.body, Vec::with_capacity(capacity)),
            std::mem::take(&mut self.events),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::call::Outcome;
    use crate::wire::tests::{call, encode_line};

    fn limits(max_events: usize, max_bytes: usize, max_age: Duration) -> Limits {
        Limits {
            max_events,
            max_bytes,
            max_age,
        }
    }

    #[test]
    fn batches_close_on_count() {
        let mut batcher = Batcher::new(limits(3, 1 << 20, Duration::from_secs(60)), None);
        let row = call(Outcome::Ok, None);
        assert!(batcher.push(&row).is_none());
        assert!(batcher.push(&row).is_none());
        let batch = batcher.push(&row).expect("third row closes the batch");
        assert_eq!(batch.events, 3);
        assert_eq!(batch.body.iter().filter(|&&b| b == b'\n').count(), 3);
        assert!(batcher.is_empty());
    }

    #[test]
    fn batches_close_before_overflowing_bytes() {
        let row = call(Outcome::Ok, None);
        let line = encode_line(&row).len();
        let mut batcher = Batcher::new(
            limits(1000, line * 2 + line / 2, Duration::from_secs(60)),
            None,
        );
        assert!(batcher.push(&row).is_none());
        assert!(batcher.push(&row).is_none());
        let batch = batcher.push(&row).expect("the third line would overflow");
        assert_eq!(batch.events, 2);
        assert!(batch.body.len() <= line * 2 + line / 2);
        assert_eq!(batcher.close().unwrap().events, 1);
    }

    #[test]
    fn batches_close_on_age_from_their_first_row() {
        let mut batcher = Batcher::new(limits(1000, 1 << 20, Duration::from_millis(500)), None);
        let row = call(Outcome::Ok, None);
        assert!(batcher.deadline().is_none());
        let before = Instant::now();
        batcher.push(&row);
        let deadline = batcher.deadline().unwrap();
        assert!(deadline >= before + Duration::from_millis(500));
        assert!(deadline <= Instant::now() + Duration::from_millis(500));
        batcher.push(&row);
        assert_eq!(
            batcher.deadline(),
            Some(deadline),
            "a later row does not extend it"
        );
        assert!(
            batcher
                .close_if_due(deadline - Duration::from_millis(1))
                .is_none()
        );
        assert_eq!(batcher.close_if_due(deadline).unwrap().events, 2);
    }

    #[test]
    fn split_keeps_every_line_whole() {
        let mut batcher = Batcher::new(limits(1000, 1 << 20, Duration::from_secs(60)), None);
        for _ in 0..5 {
            batcher.push(&call(Outcome::Ok, None));
        }
        let batch = batcher.close().unwrap();
        let whole = batch.body.clone();
        let (head, tail) = batch.split().unwrap();
        assert_eq!(head.events + tail.events, 5);
        assert!(head.events >= 2 && tail.events >= 2);
        assert_eq!([head.body, tail.body].concat(), whole);
        let single = Batch::new(b"{}\n".to_vec(), 1);
        assert!(single.split().is_err());
    }
}
