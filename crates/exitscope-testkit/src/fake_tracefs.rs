//! A fake tracefs directory (see `exitscope_tracefs::Tracefs::fake`) that can be recorded
//! from in binary: its instance template holds the per-CPU ring-buffer pages, event formats,
//! `header_page`/`header_event`, printk formats and saved cmdlines of a real trace.dat v6
//! recording (`tests/data/tracedat/kvm-v6.dat`, kernel 6.18, 2 CPUs).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use exitscope_tracedat::TraceDat;

/// Write `content` to `root/rel`, creating the directories.
///
/// # Panics
/// On I/O errors (test helper).
pub fn put(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    }
    fs::write(&p, content).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
}

/// The bytes of `tests/data/tracedat/<name>`.
///
/// # Panics
/// When the fixture is missing.
pub fn tracedat_fixture(name: &str) -> Vec<u8> {
    let p = crate::workspace_root().join("tests/data/tracedat").join(name);
    fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The metadata texts of a little-endian v6 trace.dat, in file order (trace-dat-format.md §2).
pub struct V6Meta {
    /// `events/header_page`.
    pub header_page: Vec<u8>,
    /// `events/header_event`.
    pub header_event: Vec<u8>,
    /// `events/ftrace/*/format`.
    pub ftrace: Vec<Vec<u8>>,
    /// Per system, its events' `format` files.
    pub systems: Vec<(String, Vec<Vec<u8>>)>,
    /// `printk_formats`.
    pub printk: Vec<u8>,
    /// `saved_cmdlines`.
    pub cmdlines: Vec<u8>,
}

/// The metadata of a little-endian v6 trace.dat (`kvm-v6.dat`'s layout).
///
/// # Panics
/// When `b` is not such a file (test helper).
pub fn parse_v6(b: &[u8]) -> V6Meta {
    let mut at = 10;
    let cstr = |at: &mut usize| {
        let end = *at + b[*at..].iter().position(|&c| c == 0).unwrap();
        let s = String::from_utf8(b[*at..end].to_vec()).unwrap();
        *at = end + 1;
        s
    };
    let u32_ = |at: &mut usize| {
        let v = u32::from_le_bytes(b[*at..*at + 4].try_into().unwrap());
        *at += 4;
        v as usize
    };
    let u64_ = |at: &mut usize| {
        let v = u64::from_le_bytes(b[*at..*at + 8].try_into().unwrap());
        *at += 8;
        v as usize
    };
    let text = |at: &mut usize, n: usize| {
        let t = b[*at..*at + n].to_vec();
        *at += n;
        t
    };
    assert_eq!(cstr(&mut at), "6");
    at += 1 + 1 + 4;
    assert_eq!(cstr(&mut at), "header_page");
    let n = u64_(&mut at);
    let header_page = text(&mut at, n);
    assert_eq!(cstr(&mut at), "header_event");
    let n = u64_(&mut at);
    let header_event = text(&mut at, n);
    let mut ftrace = Vec::new();
    for _ in 0..u32_(&mut at) {
        let n = u64_(&mut at);
        ftrace.push(text(&mut at, n));
    }
    let mut systems = Vec::new();
    for _ in 0..u32_(&mut at) {
        let name = cstr(&mut at);
        let mut fs = Vec::new();
        for _ in 0..u32_(&mut at) {
            let n = u64_(&mut at);
            fs.push(text(&mut at, n));
        }
        systems.push((name, fs));
    }
    let n = u32_(&mut at);
    at += n; // kallsyms (empty in the fixture)
    let n = u32_(&mut at);
    let printk = text(&mut at, n);
    let n = u64_(&mut at);
    let cmdlines = text(&mut at, n);
    V6Meta { header_page, header_event, ftrace, systems, printk, cmdlines }
}

/// The `name:` of an event format file.
///
/// # Panics
/// When the format has no name line.
pub fn event_name(format: &[u8]) -> String {
    let t = String::from_utf8_lossy(format);
    t.lines().find_map(|l| l.strip_prefix("name: ")).unwrap().trim().to_owned()
}

/// The fixture's per-CPU page streams (the instance buffer's), by CPU.
pub fn fixture_pages(file: &[u8]) -> BTreeMap<u32, Vec<u8>> {
    let t = TraceDat::parse(file).unwrap();
    let mut m = BTreeMap::new();
    for b in &t.header.buffers {
        for c in b.cpus.iter().filter(|c| c.size > 0) {
            let d = &file[c.offset as usize..(c.offset + c.size) as usize];
            m.insert(c.cpu, d.to_vec());
        }
    }
    m
}

/// `per_cpu/cpuN/stats` of the fixture's two CPUs (nothing lost).
pub const STATS: [&str; 2] = [
    "entries: 0\noverrun: 0\ncommit overrun: 0\nbytes: 0\ndropped events: 0\nread events: 297\n",
    "entries: 0\noverrun: 0\ncommit overrun: 0\nbytes: 0\ndropped events: 0\nread events: 301\n",
];

/// A fake tracefs with `instances/` whose template is the fixture's recording instance.
pub fn fake_from_fixture(root: &Path, pages: &BTreeMap<u32, Vec<u8>>, meta: &V6Meta) {
    for (rel, c) in [
        ("tracing_on", &b"1\n"[..]),
        ("current_tracer", b"nop\n"),
        ("available_tracers", b"function_graph function nop\n"),
        ("printk_formats", &meta.printk),
        ("saved_cmdlines", &meta.cmdlines),
        (".instance-template/tracing_on", b"1\n"),
        (".instance-template/available_tracers", b"nop\n"),
        (".instance-template/trace_clock", b"[local] global counter uptime perf mono x86-tsc\n"),
        (".instance-template/set_event_pid", b""),
        (".instance-template/options/event-fork", b"0\n"),
        (".instance-template/events/header_page", &meta.header_page),
        (".instance-template/events/header_event", &meta.header_event),
    ] {
        put(root, rel, c);
    }
    for f in &meta.ftrace {
        put(root, &format!(".instance-template/events/ftrace/{}/format", event_name(f)), f);
    }
    for (sys, formats) in &meta.systems {
        put(root, &format!(".instance-template/events/{sys}/enable"), b"0\n");
        for f in formats {
            let dir = format!(".instance-template/events/{sys}/{}", event_name(f));
            put(root, &format!("{dir}/format"), f);
            put(root, &format!("{dir}/enable"), b"0\n");
        }
    }
    for (cpu, data) in pages {
        let dir = format!(".instance-template/per_cpu/cpu{cpu}");
        put(root, &format!("{dir}/trace_pipe_raw"), data);
        put(root, &format!("{dir}/stats"), STATS[*cpu as usize].as_bytes());
    }
    fs::create_dir_all(root.join("instances")).unwrap();
}

/// Give the fake tracefs at `root` an instance template recorded from the `kvm-v6.dat`
/// fixture: binary capture (`trace_pipe_raw`) in its instances then reads real pages.
pub fn binary_instance_template(root: &Path) {
    let file = tracedat_fixture("kvm-v6.dat");
    let meta = parse_v6(&file);
    fake_from_fixture(root, &fixture_pages(&file), &meta);
}
