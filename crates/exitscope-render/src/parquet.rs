//! Parquet tables for fleet-scale analysis: `exits.parquet` (one row per exit),
//! `calls.parquet` (one row per merged call path) and `runs.parquet` (one row per input).
//!
//! The schema is documented column by column in `docs/parquet.md` and versioned: every file
//! carries the key-value metadata `exitscope.schema` = `exits/1` (`calls/1`, `runs/1`); a
//! change that removes, renames or retypes a column bumps [`SCHEMA_VERSION`], added columns
//! do not. The columns are listed once here ([`EXITS`], [`CALLS`], [`RUNS`]) and a test checks
//! that the document names every one with its type.
//!
//! **Streaming.** [`ExitsWriter`] is an [`ExitSink`]: rows are buffered column by column and
//! written as a row group every [`ROW_GROUP_ROWS`] rows, so memory is bounded by one row group
//! however many exits the trace holds. Calls and runs are small (one row per call path, per
//! input) and go through the same [`TableWriter`].
//!
//! Written with the `parquet` crate's column writers (no arrow), zstd-compressed, dictionary
//! encoding on (reasons, hosts and run ids repeat on every row).

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Arc;

use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::ColumnPath;

use exitscope_analyze::exits::{ExitRecord, ExitSink, Reasons};
use exitscope_analyze::report::{Report, TreeNode};
use exitscope_host::Fingerprint;
use exitscope_model::InputSummary;
use exitscope_model::exit::ExitKey;

/// Version of the three tables' layout (in each file's `exitscope.schema` metadata).
pub const SCHEMA_VERSION: u32 = 1;

/// Rows per row group of `exits.parquet` (and the most rows held in memory).
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Distinct strings shared per table (beyond that, unique strings such as call paths are
/// stored as they come).
const MAX_INTERNED: usize = 4096;

/// Columns whose values rarely repeat: no dictionary (it would be built per value and then
/// abandoned).
const NO_DICTIONARY: &[&str] = &[
    "seq",
    "line",
    "start_ns",
    "duration_ns",
    "phase_before_ns",
    "phase_run_ns",
    "phase_after_ns",
    "phase_other_ns",
    "phase_completion_ns",
];

/// String columns with min/max statistics (what queries filter on); the other string columns
/// have none, which spares two comparisons per value.
const STRING_STATISTICS: &[&str] = &["host", "reason", "kind", "function"];

/// Physical and logical type of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// UTF-8 string (`BYTE_ARRAY` annotated `STRING`).
    Str,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 64-bit integer (`INT64` annotated `INTEGER(64,false)`; DuckDB `UBIGINT`,
    /// Spark `DECIMAL(20,0)`).
    U64,
    /// Signed 32-bit integer.
    I32,
    /// Boolean.
    Bool,
    /// A list of signed 64-bit integers (`LIST<INT64>`, never null, may be empty).
    I64List,
}

impl Ty {
    /// The type as `docs/parquet.md` names it.
    pub fn doc_name(self) -> &'static str {
        match self {
            Ty::Str => "STRING",
            Ty::I64 => "INT64",
            Ty::U64 => "UINT64",
            Ty::I32 => "INT32",
            Ty::Bool => "BOOLEAN",
            Ty::I64List => "LIST<INT64>",
        }
    }
}

/// One column: name, type, whether it may be null.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// Column name.
    pub name: &'static str,
    /// Type.
    pub ty: Ty,
    /// May be null.
    pub nullable: bool,
}

const fn req(name: &'static str, ty: Ty) -> Column {
    Column { name, ty, nullable: false }
}
const fn opt(name: &'static str, ty: Ty) -> Column {
    Column { name, ty, nullable: true }
}

/// The columns of `exits.parquet`, in order.
pub const EXITS: &[Column] = &[
    req("run_id", Ty::Str),
    opt("host", Ty::Str),
    req("input", Ty::Str),
    opt("source", Ty::Str),
    req("seq", Ty::I64),
    opt("line", Ty::I64),
    opt("vcpu_tid", Ty::I32),
    opt("vcpu", Ty::I32),
    opt("pcpu", Ty::I32),
    opt("start_ns", Ty::I64),
    opt("duration_ns", Ty::I64),
    req("reason", Ty::Str),
    req("kind", Ty::Str),
    opt("isa", Ty::Str),
    opt("code", Ty::I64),
    opt("vendor_name", Ty::Str),
    opt("rip", Ty::U64),
    opt("info1", Ty::U64),
    opt("info2", Ty::U64),
    opt("intr_info", Ty::U64),
    opt("error_code", Ty::U64),
    opt("key_kind", Ty::Str),
    opt("key", Ty::U64),
    opt("key_write", Ty::Bool),
    opt("phase_before_ns", Ty::I64),
    opt("phase_run_ns", Ty::I64),
    opt("phase_after_ns", Ty::I64),
    opt("phase_other_ns", Ty::I64),
    opt("phase_completion_ns", Ty::I64),
    req("userspace", Ty::Bool),
    req("lost_before", Ty::Bool),
    opt("evidence", Ty::Str),
    opt("vm_pid", Ty::I32),
    opt("preempted", Ty::Bool),
];

/// The columns of `calls.parquet`, in order.
pub const CALLS: &[Column] = &[
    req("run_id", Ty::Str),
    opt("host", Ty::Str),
    req("path", Ty::Str),
    req("depth", Ty::I32),
    req("function", Ty::Str),
    opt("module", Ty::Str),
    req("interrupt", Ty::Bool),
    req("count", Ty::I64),
    opt("total_ns", Ty::I64),
    opt("self_ns", Ty::I64),
    opt("min_ns", Ty::I64),
    opt("max_ns", Ty::I64),
    opt("mean_ns", Ty::I64),
    opt("p50_ns", Ty::I64),
    opt("p99_ns", Ty::I64),
    req("histogram_exact", Ty::Bool),
    req("histogram_low_ns", Ty::I64List),
    req("histogram_high_ns", Ty::I64List),
    req("histogram_count", Ty::I64List),
];

/// The columns of `runs.parquet`, in order.
pub const RUNS: &[Column] = &[
    req("run_id", Ty::Str),
    opt("host", Ty::Str),
    req("input", Ty::Str),
    req("format", Ty::Str),
    opt("compression", Ty::Str),
    req("bytes", Ty::I64),
    req("lines", Ty::I64),
    req("records", Ty::I64),
    req("error_lines", Ty::I64),
    req("ignored_lines", Ty::I64),
    req("exits", Ty::I64),
    opt("exit_source", Ty::Str),
    opt("isa", Ty::Str),
    opt("span_ns", Ty::I64),
    req("roots", Ty::I64),
    req("has_fingerprint", Ty::Bool),
    opt("exitscope_version", Ty::Str),
    opt("kernel_release", Ty::Str),
    opt("kernel_version", Ty::Str),
    opt("kernel_cmdline", Ty::Str),
    opt("cpu_vendor", Ty::Str),
    opt("cpu_family", Ty::I64),
    opt("cpu_model", Ty::I64),
    opt("cpu_stepping", Ty::I64),
    opt("cpu_model_name", Ty::Str),
    opt("microcode", Ty::Str),
    opt("virtualization", Ty::Str),
    opt("smt_active", Ty::Bool),
    opt("tsc_khz", Ty::I64),
    opt("kvm_modules_json", Ty::Str),
    opt("vulnerabilities_json", Ty::Str),
    opt("fingerprint_json", Ty::Str),
];

/// One input of an export: its identity in every table.
#[derive(Clone, Debug, Default)]
pub struct Run {
    /// Stable id of the run (see [`Run::new`]).
    pub run_id: String,
    /// Host name, from the fingerprint.
    pub host: Option<String>,
    /// Input name as given.
    pub input: String,
    /// The fingerprint of the host that recorded the input, when the trace carries one.
    pub fingerprint: Option<Fingerprint>,
}

impl Run {
    /// A run of `input` with `fingerprint`. The id is a hash (FNV-1a, 64 bits, hex) of the host
    /// name, the input name and its size, so exporting the same file again gives the same id.
    pub fn new(input: &str, bytes: u64, fingerprint: Option<Fingerprint>) -> Run {
        let host = fingerprint.as_ref().and_then(|f| f.hostname.clone());
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let key = format!("{}\0{input}\0{bytes}", host.as_deref().unwrap_or(""));
        for b in key.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Run { run_id: format!("{h:016x}"), host, input: input.to_string(), fingerprint }
    }
}

enum Buf {
    Str(Vec<ByteArray>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
    /// Values, definition and repetition levels of a `LIST<INT64>` column.
    List(Vec<i64>, Vec<i16>, Vec<i16>),
}

struct ColBuf {
    col: Column,
    buf: Buf,
    defs: Vec<i16>,
}

/// A Parquet file written row by row, flushed as a row group every [`ROW_GROUP_ROWS`] rows.
pub struct TableWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    /// Strings seen, shared between rows (reasons, hosts, run ids repeat on every row): a
    /// clone is a reference count, not an allocation.
    interned: HashMap<Box<str>, ByteArray>,
    cols: Vec<ColBuf>,
    rows: usize,
    total: u64,
    /// Next column of the row being pushed.
    cursor: usize,
}

fn to_io(e: parquet::errors::ParquetError) -> io::Error {
    io::Error::other(e)
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The bit pattern of `v` (UINT64 columns are INT64 annotated unsigned).
#[allow(clippy::cast_possible_wrap, reason = "unsigned columns store the bit pattern")]
fn bits(v: u64) -> i64 {
    v as i64
}

impl<W: Write + Send> TableWriter<W> {
    /// A table named `table` (`exits`, `calls`, `runs`) of `cols`, written to `w`.
    pub fn new(w: W, table: &str, cols: &[Column]) -> io::Result<Self> {
        let mut msg = format!("message {table} {{\n");
        for c in cols {
            let rep = if c.nullable { "optional" } else { "required" };
            let line = match c.ty {
                Ty::Str => format!("{rep} binary {} (STRING);", c.name),
                Ty::I64 => format!("{rep} int64 {};", c.name),
                Ty::U64 => format!("{rep} int64 {} (INTEGER(64,false));", c.name),
                Ty::I32 => format!("{rep} int32 {};", c.name),
                Ty::Bool => format!("{rep} boolean {};", c.name),
                Ty::I64List => format!(
                    "{rep} group {} (LIST) {{ repeated group list {{ required int64 element; }} }}",
                    c.name
                ),
            };
            msg.push_str(&line);
            msg.push('\n');
        }
        msg.push('}');
        let schema = Arc::new(parse_message_type(&msg).map_err(to_io)?);
        let mut props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(to_io)?))
            .set_max_row_group_size(ROW_GROUP_ROWS)
            .set_created_by(format!("exitscope {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                "exitscope.schema".to_string(),
                format!("{table}/{SCHEMA_VERSION}"),
            )]));
        for c in cols {
            let path = || ColumnPath::new(vec![c.name.to_string()]);
            if NO_DICTIONARY.contains(&c.name) {
                props = props.set_column_dictionary_enabled(path(), false);
            }
            if c.ty == Ty::Str && !STRING_STATISTICS.contains(&c.name) {
                props = props.set_column_statistics_enabled(path(), EnabledStatistics::None);
            }
        }
        let props = props.build();
        let file = SerializedFileWriter::new(w, schema, Arc::new(props)).map_err(to_io)?;
        let cols = cols
            .iter()
            .map(|&col| ColBuf {
                col,
                buf: match col.ty {
                    Ty::Str => Buf::Str(Vec::new()),
                    Ty::I64 | Ty::U64 => Buf::I64(Vec::new()),
                    Ty::I32 => Buf::I32(Vec::new()),
                    Ty::Bool => Buf::Bool(Vec::new()),
                    Ty::I64List => Buf::List(Vec::new(), Vec::new(), Vec::new()),
                },
                defs: Vec::new(),
            })
            .collect();
        Ok(TableWriter { file, interned: HashMap::new(), cols, rows: 0, total: 0, cursor: 0 })
    }

    fn next(&mut self, present: bool) -> &mut ColBuf {
        let c = &mut self.cols[self.cursor];
        self.cursor += 1;
        if c.col.nullable {
            c.defs.push(i16::from(present));
        } else {
            assert!(present, "column {} is not nullable", c.col.name);
        }
        c
    }

    fn intern(&mut self, s: &str) -> ByteArray {
        if let Some(b) = self.interned.get(s) {
            return b.clone();
        }
        let b = ByteArray::from(s.as_bytes().to_vec());
        if self.interned.len() < MAX_INTERNED {
            self.interned.insert(s.into(), b.clone());
        }
        b
    }

    /// The next column's value: a string.
    pub fn str(&mut self, v: Option<&str>) {
        let v = v.map(|s| self.intern(s));
        self.cell(v);
    }

    /// The next column's value: a string made earlier with [`TableWriter::intern`].
    fn cell(&mut self, v: Option<ByteArray>) {
        let c = self.next(v.is_some());
        match (&mut c.buf, v) {
            (Buf::Str(b), Some(s)) => b.push(s),
            (Buf::Str(_), None) => {}
            _ => panic!("column {} is not a string", c.col.name),
        }
    }

    /// The next column's value: a signed integer (or the bit pattern of an unsigned one).
    pub fn i64(&mut self, v: Option<i64>) {
        let c = self.next(v.is_some());
        match (&mut c.buf, v) {
            (Buf::I64(b), Some(x)) => b.push(x),
            (Buf::I64(_), None) => {}
            _ => panic!("column {} is not INT64", c.col.name),
        }
    }

    /// The next column's value: a nanosecond figure or count (u64, saturated to i64).
    pub fn u64_as_i64(&mut self, v: Option<u64>) {
        self.i64(v.map(i64_of));
    }

    /// The next column's value: an unsigned 64-bit integer (a `UINT64` column).
    pub fn u64(&mut self, v: Option<u64>) {
        self.i64(v.map(bits));
    }

    /// The next column's value: a 32-bit integer.
    pub fn i32(&mut self, v: Option<u32>) {
        let v = v.map(|x| i32::try_from(x).unwrap_or(i32::MAX));
        let c = self.next(v.is_some());
        match (&mut c.buf, v) {
            (Buf::I32(b), Some(x)) => b.push(x),
            (Buf::I32(_), None) => {}
            _ => panic!("column {} is not INT32", c.col.name),
        }
    }

    /// The next column's value: a boolean.
    pub fn bool(&mut self, v: Option<bool>) {
        let c = self.next(v.is_some());
        match (&mut c.buf, v) {
            (Buf::Bool(b), Some(x)) => b.push(x),
            (Buf::Bool(_), None) => {}
            _ => panic!("column {} is not BOOLEAN", c.col.name),
        }
    }

    /// The next column's value: a list of integers.
    pub fn list(&mut self, v: impl IntoIterator<Item = i64>) {
        let c = self.next(true);
        let Buf::List(vals, defs, reps) = &mut c.buf else {
            panic!("column {} is not a list", c.col.name)
        };
        let mut first = true;
        for x in v {
            vals.push(x);
            defs.push(1);
            reps.push(i16::from(!first));
            first = false;
        }
        if first {
            // An empty list: one level entry and no value.
            defs.push(0);
            reps.push(0);
        }
    }

    /// The row is complete; a full row group is written out.
    pub fn end_row(&mut self) -> io::Result<()> {
        assert_eq!(self.cursor, self.cols.len(), "row has {} of {} columns", self.cursor, {
            self.cols.len()
        });
        self.cursor = 0;
        self.rows += 1;
        self.total += 1;
        if self.rows >= ROW_GROUP_ROWS { self.flush_group() } else { Ok(()) }
    }

    fn flush_group(&mut self) -> io::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut rg = self.file.next_row_group().map_err(to_io)?;
        for c in &mut self.cols {
            let Some(mut w) = rg.next_column().map_err(to_io)? else {
                return Err(io::Error::other("parquet schema has fewer columns than the table"));
            };
            let defs = c.col.nullable.then_some(c.defs.as_slice());
            match &mut c.buf {
                Buf::Str(v) => {
                    w.typed::<ByteArrayType>().write_batch(v, defs, None).map_err(to_io)?;
                    v.clear();
                }
                Buf::I64(v) => {
                    w.typed::<Int64Type>().write_batch(v, defs, None).map_err(to_io)?;
                    v.clear();
                }
                Buf::I32(v) => {
                    w.typed::<Int32Type>().write_batch(v, defs, None).map_err(to_io)?;
                    v.clear();
                }
                Buf::Bool(v) => {
                    w.typed::<BoolType>().write_batch(v, defs, None).map_err(to_io)?;
                    v.clear();
                }
                Buf::List(v, d, r) => {
                    w.typed::<Int64Type>().write_batch(v, Some(d), Some(r)).map_err(to_io)?;
                    v.clear();
                    d.clear();
                    r.clear();
                }
            }
            c.defs.clear();
            w.close().map_err(to_io)?;
        }
        rg.close().map_err(to_io)?;
        self.rows = 0;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.total
    }

    /// Write the last row group and the footer; gives back the writer (to commit it).
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_group()?;
        self.file.into_inner().map_err(to_io)
    }
}

/// `exits.parquet`: one row per [`ExitRecord`], streamed (an [`ExitSink`]).
pub struct ExitsWriter<W: Write + Send> {
    table: TableWriter<W>,
    run: Run,
    /// The run's `run_id`, `host` and `input` cells.
    run_cells: [Option<ByteArray>; 3],
    /// Per [`exitscope_analyze::exits::ReasonId`] of this run: `reason`, `kind`, `isa` and
    /// `vendor_name` cells (the hot path looks nothing up).
    reason_cells: Vec<Option<[Option<ByteArray>; 4]>>,
    seq: i64,
    /// The first write error; later rows are dropped and [`ExitsWriter::finish`] returns it.
    error: Option<io::Error>,
}

impl<W: Write + Send> ExitsWriter<W> {
    /// A writer of `exits.parquet` to `w`.
    pub fn new(w: W) -> io::Result<Self> {
        Ok(ExitsWriter {
            table: TableWriter::new(w, "exits", EXITS)?,
            run: Run::default(),
            run_cells: [None, None, None],
            reason_cells: Vec::new(),
            seq: 0,
            error: None,
        })
    }

    /// Exits that follow belong to `run` (and to a new analysis: reason ids start over);
    /// their `seq` restarts at 0.
    pub fn begin_run(&mut self, run: &Run) {
        self.run = run.clone();
        let t = &mut self.table;
        self.run_cells = [
            Some(t.intern(&run.run_id)),
            run.host.as_deref().map(|h| t.intern(h)),
            Some(t.intern(&run.input)),
        ];
        self.reason_cells.clear();
        self.seq = 0;
    }

    fn row(&mut self, e: &ExitRecord, reasons: &Reasons) -> io::Result<()> {
        let r = reasons.get(e.reason);
        let i = e.reason.0 as usize;
        if self.reason_cells.len() <= i {
            self.reason_cells.resize(i + 1, None);
        }
        let t = &mut self.table;
        let cells = self.reason_cells[i].get_or_insert_with(|| {
            [
                Some(t.intern(r.label())),
                Some(t.intern(r.kind.name())),
                r.isa.map(|x| t.intern(x.as_str())),
                r.vendor.as_deref().map(|v| t.intern(v)),
            ]
        });
        let [reason, kind, isa, vendor] = cells.clone();
        let [run_id, host, input] = self.run_cells.clone();
        t.cell(run_id);
        t.cell(host);
        t.cell(input);
        t.str(e.source.map(|s| s.as_str()));
        t.i64(Some(self.seq));
        t.u64_as_i64((e.line > 0).then_some(e.line));
        t.i32(e.task);
        t.i32(e.vcpu);
        t.i32(e.cpu);
        t.u64_as_i64(e.start);
        t.u64_as_i64(e.duration);
        t.cell(reason);
        t.cell(kind);
        t.cell(isa);
        t.i64(r.code.map(i64::from));
        t.cell(vendor);
        let f = e.fields.unwrap_or_default();
        for v in [f.rip, f.info1, f.info2, f.intr_info, f.error_code] {
            t.u64(v);
        }
        let (kind, key, write) = match e.key {
            Some(ExitKey::Port { port, write }) => {
                (Some("port"), Some(u64::from(port)), Some(write))
            }
            Some(ExitKey::Msr { index, write }) => {
                (Some("msr"), Some(u64::from(index)), Some(write))
            }
            Some(ExitKey::Gpa(a)) => (Some("gpa"), Some(a), None),
            Some(ExitKey::Hypercall(n)) => (Some("hypercall"), Some(n), None),
            None => (None, None, None),
        };
        t.str(kind);
        t.u64(key);
        t.bool(write);
        let p = e.phases;
        for v in [
            p.and_then(|p| p.before),
            p.and_then(|p| p.run),
            p.and_then(|p| p.after),
            p.and_then(|p| p.other),
            p.and_then(|p| p.completion),
        ] {
            t.u64_as_i64(v);
        }
        t.bool(Some(e.userspace));
        t.bool(Some(e.lost_before));
        let ev = e.evidence.join(" + ");
        t.str((!ev.is_empty()).then_some(ev.as_str()));
        t.i32(e.vm_pid);
        t.bool(e.preempted);
        self.seq += 1;
        t.end_row()
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.table.rows()
    }

    /// Write the rest; the first error any row met, if there was one.
    pub fn finish(self) -> io::Result<W> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.table.finish()
    }
}

impl<W: Write + Send> ExitSink for ExitsWriter<W> {
    fn exit(&mut self, exit: &ExitRecord, reasons: &Reasons) {
        if self.error.is_none()
            && let Err(e) = self.row(exit, reasons)
        {
            self.error = Some(e);
        }
    }
}

/// `calls.parquet`: every path of `report`'s merged call tree, depth first.
pub fn write_calls<W: Write + Send>(
    t: &mut TableWriter<W>,
    run: &Run,
    report: &Report,
) -> io::Result<()> {
    fn walk<W: Write + Send>(
        t: &mut TableWriter<W>,
        run: &Run,
        n: &TreeNode,
        prefix: &str,
        depth: u32,
    ) -> io::Result<()> {
        let path = if prefix.is_empty() {
            n.display_name()
        } else {
            format!("{prefix};{}", n.display_name())
        };
        t.str(Some(&run.run_id));
        t.str(run.host.as_deref());
        t.str(Some(&path));
        t.i32(Some(depth));
        t.str(Some(&n.function));
        t.str(n.module.as_deref());
        t.bool(Some(n.interrupt));
        t.u64_as_i64(Some(n.count));
        for v in [n.total_ns, n.self_ns, n.min_ns, n.max_ns, n.mean_ns, n.p50_ns, n.p99_ns] {
            t.u64_as_i64(v);
        }
        let h = &n.histogram;
        t.bool(Some(h.exact));
        t.list(h.bins.iter().map(|b| i64_of(b.low_ns)));
        t.list(h.bins.iter().map(|b| i64_of(b.high_ns)));
        t.list(h.bins.iter().map(|b| i64_of(b.count)));
        t.end_row()?;
        for c in &n.children {
            walk(t, run, c, &path, depth + 1)?;
        }
        Ok(())
    }
    for root in &report.tree {
        walk(t, run, root, "", 0)?;
    }
    Ok(())
}

/// `runs.parquet`: one row for `run`, its input's summary and `report`'s exit totals.
pub fn write_run<W: Write + Send>(
    t: &mut TableWriter<W>,
    run: &Run,
    input: &InputSummary,
    report: &Report,
) -> io::Result<()> {
    t.str(Some(&run.run_id));
    t.str(run.host.as_deref());
    t.str(Some(&run.input));
    t.str(Some(&input.format));
    t.str(input.compression.as_deref());
    for v in [input.bytes, input.lines, input.records, input.error_lines, input.ignored_lines] {
        t.u64_as_i64(Some(v));
    }
    let x = report.exits.as_ref();
    t.u64_as_i64(Some(x.map_or(0, |x| x.exits)));
    t.str(x.map(|x| x.source.as_str()));
    t.str(x.and_then(|x| x.isa.as_deref()));
    t.u64_as_i64(x.and_then(|x| x.span_ns));
    t.u64_as_i64(Some(report.roots));
    // The host found before the records, else the one the input's summary names.
    let f = run.fingerprint.as_ref().or(input.host.as_ref());
    t.bool(Some(f.is_some()));
    t.str(f.and_then(|f| f.exitscope_version.as_deref()));
    t.str(f.and_then(|f| f.os.release.as_deref()));
    t.str(f.and_then(|f| f.os.version.as_deref()));
    t.str(f.and_then(|f| f.os.cmdline.as_deref()));
    t.str(f.and_then(|f| f.cpu.vendor.as_deref()));
    for v in
        [f.and_then(|f| f.cpu.family), f.and_then(|f| f.cpu.model), f.and_then(|f| f.cpu.stepping)]
    {
        t.i64(v.map(i64::from));
    }
    t.str(f.and_then(|f| f.cpu.model_name.as_deref()));
    t.str(f.and_then(|f| f.cpu.microcode.as_deref()));
    t.str(f.and_then(|f| f.virtualization).map(|v| v.as_str()));
    t.bool(f.and_then(|f| f.smt.active));
    t.i64(f.and_then(|f| f.tsc.khz).map(i64::from));
    t.str(f.and_then(|f| f.kvm_modules.as_ref()).map(json).as_deref());
    t.str(f.and_then(|f| f.vulnerabilities.as_ref()).map(json).as_deref());
    t.str(f.map(json).as_deref());
    t.end_row()
}

/// Compact JSON of a fingerprint part.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_is_documented_with_its_type_and_nullability() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/parquet.md"),
        )
        .expect("docs/parquet.md");
        for (table, cols) in [("exits", EXITS), ("calls", CALLS), ("runs", RUNS)] {
            let start = doc.find(&format!("## `{table}.parquet`")).expect(table);
            let section = &doc[start..];
            let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
            for c in cols {
                let row = format!(
                    "| `{}` | {} | {} |",
                    c.name,
                    c.ty.doc_name(),
                    if c.nullable { "yes" } else { "no" }
                );
                assert!(section.contains(&row), "docs/parquet.md {table}: no row starting {row}");
            }
            let rows = section.lines().filter(|l| l.starts_with("| `")).count();
            assert_eq!(rows, cols.len(), "docs/parquet.md {table}: documented columns");
        }
        assert!(doc.contains(&format!("schema version {SCHEMA_VERSION}")));
    }

    #[test]
    fn tables_round_trip_through_the_parquet_reader() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let mut t = TableWriter::new(Vec::new(), "calls", CALLS).unwrap();
        let run = Run::new("seed", 10, None);
        let mut report = Report::default();
        report.tree.push(TreeNode {
            function: "vcpu_enter_guest".into(),
            module: Some("kvm".into()),
            count: 1,
            total_ns: Some(4278),
            children: vec![TreeNode { function: "leaf".into(), count: 2, ..Default::default() }],
            ..Default::default()
        });
        report.tree[0].histogram.bins.push(exitscope_analyze::histogram::HistogramBin {
            low_ns: 4278,
            high_ns: 4279,
            count: 1,
        });
        write_calls(&mut t, &run, &report).unwrap();
        assert_eq!(t.rows(), 2);
        let path =
            std::env::temp_dir().join(format!("exitscope-calls-{}.parquet", std::process::id()));
        std::fs::write(&path, t.finish().unwrap()).unwrap();
        let r = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        let kv = r.metadata().file_metadata().key_value_metadata().unwrap();
        assert_eq!(kv[0].value.as_deref(), Some("calls/1"));
        let rows: Vec<String> =
            r.get_row_iter(None).unwrap().map(|row| row.unwrap().to_string()).collect();
        assert!(rows[0].contains("path: \"vcpu_enter_guest [kvm]\""), "{}", rows[0]);
        assert!(rows[0].contains("histogram_low_ns: [4278]"), "{}", rows[0]);
        assert!(rows[1].contains("path: \"vcpu_enter_guest [kvm];leaf\""), "{}", rows[1]);
        assert!(rows[1].contains("histogram_count: []"), "{}", rows[1]);
        assert!(rows[1].contains("total_ns: null"), "{}", rows[1]);
    }
}
