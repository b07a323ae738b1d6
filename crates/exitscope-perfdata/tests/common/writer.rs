//! A minimal perf.data writer for test fixtures (test tree only: not part of the reader's
//! API). It writes what `perf kvm stat record` writes (`tools/perf/util/header.c`,
//! `include/uapi/linux/perf_event.h`): a file-mode header, one tracepoint attr per event
//! with `sample_type` IP|TID|TIME|ID|CPU|PERIOD|RAW and `sample_id_all` (the attr bytes
//! of a real `perf kvm stat record` file), COMM and SAMPLE records, and the feature
//! sections perf needs to read the file back: TRACING_DATA (the kernel's format files),
//! OSRELEASE, VERSION, ARCH, NRCPUS, CPUID (perf kvm stat picks VMX or SVM from it) and
//! EVENT_DESC (event names). Little-endian, 64-bit.

use exitscope_tracedat::EventFormat;

const ATTR_SIZE: usize = 128;
/// IP | TID | TIME | ID | CPU | PERIOD | RAW, as `perf kvm stat record` sets it.
const SAMPLE_TYPE: u64 = 0x5c7;
/// `read_format` and flags of a real `perf kvm stat record` attr (sample_id_all set).
const READ_FORMAT: u64 = 0x14;
const FLAGS: u64 = 0x618c_3303;
const PERF_RECORD_COMM: u32 = 3;
const PERF_RECORD_SAMPLE: u32 = 9;
const PERF_RECORD_MISC_KERNEL: u16 = 1;

/// The kernel's `events/header_page` and `events/header_event` (6.18, x86_64).
const HEADER_PAGE: &str = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;\n";
const HEADER_EVENT: &str = "# compressed entry header\n\ttype_len    :    5 bits\n\ttime_delta  :   27 bits\n\tarray       :   32 bits\n\n\tpadding     : type == 29\n\ttime_extend : type == 30\n\ttime_stamp : type == 31\n\tdata max type_len  == 28\n";

/// One tracepoint event of the file.
pub struct Event {
    pub system: String,
    pub format_text: String,
    pub format: EventFormat,
    /// Sample id of this event (one per event: the writer records one "CPU").
    pub sample_id: u64,
}

/// Builds a perf.data in memory.
pub struct PerfDataWriter {
    events: Vec<Event>,
    data: Vec<u8>,
    cpuid: String,
    nr_cpus: u32,
}

fn put_u16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put_u32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put_u64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// perf's `do_write_string`: u32 length (NUL included, aligned to 64) + padded bytes.
fn put_string(v: &mut Vec<u8>, s: &str) {
    let len = (s.len() + 1).div_ceil(64) * 64;
    put_u32(v, len as u32);
    v.extend_from_slice(s.as_bytes());
    v.resize(v.len() + len - s.len(), 0);
}

impl PerfDataWriter {
    /// `formats`: (system, format file text) of each event, e.g. the kernel's kvm_exit.
    pub fn new(formats: &[(&str, &str)], cpuid: &str, nr_cpus: u32) -> Self {
        let events = formats
            .iter()
            .enumerate()
            .map(|(i, (system, text))| Event {
                system: system.to_string(),
                format_text: text.to_string(),
                format: EventFormat::parse(system, text).expect("valid format"),
                sample_id: 100 + i as u64,
            })
            .collect();
        PerfDataWriter { events, data: Vec::new(), cpuid: cpuid.to_string(), nr_cpus }
    }

    fn event(&self, name: &str) -> &Event {
        self.events.iter().find(|e| e.format.name == name).expect("event of the writer")
    }

    /// The `sample_id` trailer for sample_type IP|TID|TIME|ID|CPU|...: tid, time, id, cpu.
    fn trailer(v: &mut Vec<u8>, pid: u32, tid: u32, time: u64, id: u64, cpu: u32) {
        put_u32(v, pid);
        put_u32(v, tid);
        put_u64(v, time);
        put_u64(v, id);
        put_u32(v, cpu);
        put_u32(v, 0);
    }

    fn record(&mut self, kind: u32, misc: u16, body: &[u8]) {
        put_u32(&mut self.data, kind);
        put_u16(&mut self.data, misc);
        put_u16(&mut self.data, (8 + body.len()) as u16);
        self.data.extend_from_slice(body);
    }

    /// A PERF_RECORD_COMM naming thread `tid`.
    pub fn comm(&mut self, pid: u32, tid: u32, comm: &str, time: u64, cpu: u32) {
        let id = self.events.first().map_or(0, |e| e.sample_id);
        let mut b = Vec::new();
        put_u32(&mut b, pid);
        put_u32(&mut b, tid);
        b.extend_from_slice(comm.as_bytes());
        b.resize(b.len() + (8 - comm.len() % 8), 0);
        Self::trailer(&mut b, pid, tid, time, id, cpu);
        self.record(PERF_RECORD_COMM, 0, &b);
    }

    /// A tracepoint sample of event `name`; `fields` sets payload fields by name (the
    /// common fields are set from the event and `tid`).
    pub fn sample(
        &mut self,
        name: &str,
        time: u64,
        pid: u32,
        tid: u32,
        cpu: u32,
        fields: &[(&str, u64)],
    ) {
        let ev = self.event(name);
        let f = &ev.format;
        let len = f.fields.iter().map(|x| x.offset + x.size).max().unwrap_or(8);
        let mut raw = vec![0u8; len];
        let mut set = |field: &str, v: u64| {
            let fl = f.field(field).unwrap_or_else(|| panic!("{name} has no field {field}"));
            let bytes = v.to_le_bytes();
            raw[fl.offset..fl.offset + fl.size].copy_from_slice(&bytes[..fl.size]);
        };
        set("common_type", u64::from(f.id));
        set("common_pid", u64::from(tid));
        for &(n, v) in fields {
            set(n, v);
        }
        // The kernel pads the raw data so that u32 size + data is 8-byte aligned.
        let size = (raw.len() + 4).div_ceil(8) * 8 - 4;
        raw.resize(size, 0);
        let id = ev.sample_id;
        let mut b = Vec::new();
        put_u64(&mut b, 0xffff_ffff_c0de_0000); // ip
        put_u32(&mut b, pid);
        put_u32(&mut b, tid);
        put_u64(&mut b, time);
        put_u64(&mut b, id);
        put_u32(&mut b, cpu);
        put_u32(&mut b, 0);
        put_u64(&mut b, 1); // period (-c 1)
        put_u32(&mut b, size as u32);
        b.extend_from_slice(&raw);
        self.record(PERF_RECORD_SAMPLE, PERF_RECORD_MISC_KERNEL, &b);
    }

    fn attr(&self, e: &Event) -> Vec<u8> {
        let mut a = Vec::with_capacity(ATTR_SIZE);
        put_u32(&mut a, 2); // PERF_TYPE_TRACEPOINT
        put_u32(&mut a, ATTR_SIZE as u32);
        put_u64(&mut a, u64::from(e.format.id));
        put_u64(&mut a, 1); // sample_period
        put_u64(&mut a, SAMPLE_TYPE);
        put_u64(&mut a, READ_FORMAT);
        put_u64(&mut a, FLAGS);
        a.resize(ATTR_SIZE, 0);
        a
    }

    /// perf's tracing data, version 0.6 (`tools/perf/util/trace-event-info.c`).
    fn tracing_data(&self) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(b"\x17\x08\x44tracing0.6\0");
        t.push(0); // little endian
        t.push(8); // sizeof(long)
        put_u32(&mut t, 4096);
        t.extend_from_slice(b"header_page\0");
        put_u64(&mut t, HEADER_PAGE.len() as u64);
        t.extend_from_slice(HEADER_PAGE.as_bytes());
        t.extend_from_slice(b"header_event\0");
        put_u64(&mut t, HEADER_EVENT.len() as u64);
        t.extend_from_slice(HEADER_EVENT.as_bytes());
        put_u32(&mut t, 0); // ftrace formats
        let mut systems: Vec<&str> = self.events.iter().map(|e| e.system.as_str()).collect();
        systems.dedup();
        put_u32(&mut t, systems.len() as u32);
        for sys in systems {
            t.extend_from_slice(sys.as_bytes());
            t.push(0);
            let evs: Vec<&Event> = self.events.iter().filter(|e| e.system == sys).collect();
            put_u32(&mut t, evs.len() as u32);
            for e in evs {
                put_u64(&mut t, e.format_text.len() as u64);
                t.extend_from_slice(e.format_text.as_bytes());
            }
        }
        put_u32(&mut t, 0); // kallsyms (perf stores none)
        put_u32(&mut t, 0); // printk formats
        put_u64(&mut t, 0); // saved_cmdlines
        t
    }

    /// The whole file.
    pub fn finish(&self) -> Vec<u8> {
        const HEADER: usize = 104;
        let mut out = vec![0u8; HEADER];
        // ids, one u64 per event
        let ids_at = out.len();
        for e in &self.events {
            put_u64(&mut out, e.sample_id);
        }
        let attrs_at = out.len();
        for (i, e) in self.events.iter().enumerate() {
            out.extend_from_slice(&self.attr(e));
            put_u64(&mut out, (ids_at + 8 * i) as u64);
            put_u64(&mut out, 8);
        }
        let attrs_size = out.len() - attrs_at;
        let data_at = out.len();
        out.extend_from_slice(&self.data);
        let data_size = self.data.len();

        // Feature sections, in bit order.
        let mut desc = Vec::new();
        put_u32(&mut desc, self.events.len() as u32);
        put_u32(&mut desc, ATTR_SIZE as u32);
        for e in &self.events {
            desc.extend_from_slice(&self.attr(e));
            put_u32(&mut desc, 1);
            put_string(&mut desc, &format!("{}:{}", e.system, e.format.name));
            put_u64(&mut desc, e.sample_id);
        }
        let string = |s: &str| {
            let mut v = Vec::new();
            put_string(&mut v, s);
            v
        };
        let mut nrcpus = Vec::new();
        put_u32(&mut nrcpus, self.nr_cpus);
        put_u32(&mut nrcpus, self.nr_cpus);
        let features: Vec<(u32, Vec<u8>)> = vec![
            (1, self.tracing_data()),
            (4, string("6.18.0-exitscope-fixture")),
            (5, string("6.1.0")),
            (6, string("x86_64")),
            (7, nrcpus),
            (9, string(&self.cpuid)),
            (12, desc),
        ];
        let table_at = out.len();
        let mut at = table_at + 16 * features.len();
        let mut bodies = Vec::new();
        for (_, body) in &features {
            put_u64(&mut out, at as u64);
            put_u64(&mut out, body.len() as u64);
            at += body.len();
            bodies.extend_from_slice(body);
        }
        out.extend_from_slice(&bodies);

        let mut h = Vec::with_capacity(HEADER);
        h.extend_from_slice(b"PERFILE2");
        put_u64(&mut h, HEADER as u64);
        put_u64(&mut h, (ATTR_SIZE + 16) as u64);
        put_u64(&mut h, attrs_at as u64);
        put_u64(&mut h, attrs_size as u64);
        put_u64(&mut h, data_at as u64);
        put_u64(&mut h, data_size as u64);
        put_u64(&mut h, 0);
        put_u64(&mut h, 0);
        let mut bits = [0u64; 4];
        for (b, _) in &features {
            bits[(*b / 64) as usize] |= 1 << (b % 64);
        }
        for w in bits {
            put_u64(&mut h, w);
        }
        out[..HEADER].copy_from_slice(&h);
        out
    }
}
