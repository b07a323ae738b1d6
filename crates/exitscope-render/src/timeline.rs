//! The sink halves every timeline writer hands to the analysis: a writer fed through `&self`
//! (its state in a `RefCell`) is split into a [`CallSink`], a [`RecordSink`] and an
//! [`ExitSink`] that all write into it, so one pass of `Analysis` streams calls, events and
//! exits into one document in input order.

use exitscope_analyze::calls::{CallSink, RootCall};
use exitscope_analyze::exits::{ExitRecord, ExitSink, Reasons};
use exitscope_analyze::funcs::FuncTable;
use exitscope_model::{Flow, Record, RecordSink};

/// A timeline document being written: what its halves forward.
pub trait Timeline {
    /// One root call (with the labels of the exits it contains, if any).
    fn root(&self, root: &RootCall, funcs: &FuncTable, exit_labels: &[&str]);
    /// One record of the input.
    fn record(&self, rec: &Record<'_>);
    /// One exit.
    fn exit(&self, _exit: &ExitRecord, _reasons: &Reasons) {}
    /// Writing failed: the analysis should stop feeding it.
    fn failed(&self) -> bool;
}

/// The [`CallSink`] half of a [`Timeline`].
pub struct CallHalf<'t, T: ?Sized>(pub(crate) &'t T);

impl<T: Timeline + ?Sized> CallSink for CallHalf<'_, T> {
    fn root(&mut self, root: &RootCall, funcs: &FuncTable) {
        self.0.root(root, funcs, &[]);
    }

    fn root_with_exits(&mut self, root: &RootCall, funcs: &FuncTable, exit_labels: &[&str]) {
        self.0.root(root, funcs, exit_labels);
    }
}

/// The [`RecordSink`] half of a [`Timeline`].
pub struct RecordHalf<'t, T: ?Sized>(pub(crate) &'t T);

impl<T: Timeline + ?Sized> RecordSink for RecordHalf<'_, T> {
    fn record(&mut self, rec: &Record<'_>) -> Flow {
        self.0.record(rec);
        if self.0.failed() { Flow::Stop } else { Flow::Continue }
    }
}

/// The [`ExitSink`] half of a [`Timeline`].
pub struct ExitHalf<'t, T: ?Sized>(pub(crate) &'t T);

impl<T: Timeline + ?Sized> ExitSink for ExitHalf<'_, T> {
    fn exit(&mut self, exit: &ExitRecord, reasons: &Reasons) {
        self.0.exit(exit, reasons);
    }
}
