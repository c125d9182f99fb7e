//! What the pipeline carries: one [`Row`] per thing worth a line in the datasource, each kind
//! with its own type: a call ([`call`]: a handler call, or one of the server wrapper's requests,
//! notifications, sessions and tasks) and a log line ([`log`]).
//!
//! Rows are made on the caller's thread and hold only what is cheap to take there: pointers to
//! statics, reference-counted ids, raw clock ticks. Turning them into text is the worker's job
//! (`wire`).

pub(crate) mod call;
pub(crate) mod dimensions;
pub(crate) mod fields;
// Only the `tracing` layer makes log lines; without it, what they hold is never read.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) mod log;
pub(crate) mod outcome;
pub(crate) mod request;
pub(crate) mod scope;
pub(crate) mod served;
pub(crate) mod session;
pub(crate) mod text;

pub(crate) use call::CallRow;
pub(crate) use log::LogRow;

/// One row on its way to the datasource: the element type of the queue.
#[derive(Debug)]
pub(crate) enum Row {
    /// A call: the template counts handler calls as requests (see `call::Kind`).
    Call(CallRow),
    /// A log line of the `tracing` layer; boxed, being rarer and larger than a call.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    Log(Box<LogRow>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_rows_stay_small() {
        // The queue stores rows inline, each beside an 8-byte stamp: a slot of one 64-byte
        // cache line keeps a burst of calls from touching more memory than it must. The log
        // variant fits in the call's niche, so the enum costs a call nothing.
        assert!(
            std::mem::size_of::<CallRow>() <= 56,
            "{}",
            std::mem::size_of::<CallRow>()
        );
        assert_eq!(
            std::mem::size_of::<Row>(),
            std::mem::size_of::<CallRow>(),
            "a row is as small as a call"
        );
    }
}
