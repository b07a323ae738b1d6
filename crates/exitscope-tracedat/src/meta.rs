//! kallsyms, printk formats and saved_cmdlines: text tables indexed once, looked up per
//! record without allocating.

use std::borrow::Cow;
use std::fmt::Write as _;

use rustc_hash::FxHashMap;

/// `/proc/kallsyms` as stored in the file: an address-sorted index into the text.
#[derive(Debug, Default)]
pub struct Symbols<'a> {
    text: Cow<'a, str>,
    /// (address, name start, name len, module start, module len), sorted by address.
    index: Vec<(u64, u32, u16, u32, u16)>,
}

impl<'a> Symbols<'a> {
    /// Indexes kallsyms text (`ffffffff81000000 T _text\t[mod]`). Lines that do not parse
    /// are skipped; zeroed addresses (kptr_restrict) are dropped.
    pub fn parse(text: Cow<'a, str>) -> Self {
        let mut index = Vec::new();
        let mut pos = 0usize;
        for line in text.split_inclusive('\n') {
            let start = pos;
            pos += line.len();
            let l = line.trim_end_matches(['\n', '\r']);
            let mut it = l.splitn(3, ' ');
            let (Some(addr), Some(_ty), Some(rest)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else { continue };
            if addr == 0 {
                continue;
            }
            let name_off = start + l.len() - rest.len();
            let (name_len, module) = match rest.split_once('\t') {
                Some((n, m)) => {
                    let m = m.trim();
                    let m = m.strip_prefix('[').and_then(|m| m.strip_suffix(']')).unwrap_or(m);
                    let m_off = m.as_ptr() as usize - text.as_ptr() as usize;
                    (n.len(), Some((m_off, m.len())))
                }
                None => (rest.len(), None),
            };
            let (Ok(no), Ok(nl)) = (u32::try_from(name_off), u16::try_from(name_len)) else {
                continue;
            };
            let (mo, ml) = module.map_or((0, 0), |(o, l)| (o, l));
            let (Ok(mo), Ok(ml)) = (u32::try_from(mo), u16::try_from(ml)) else { continue };
            index.push((addr, no, nl, mo, ml));
        }
        index.sort_by_key(|e| e.0);
        Symbols { text, index }
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are no symbols.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The symbol containing `addr`: (name, module, offset from the symbol start).
    pub fn lookup(&self, addr: u64) -> Option<(&str, Option<&str>, u64)> {
        let i = self.index.partition_point(|e| e.0 <= addr).checked_sub(1)?;
        let &(a, no, nl, mo, ml) = self.index.get(i)?;
        let name = self.text.get(no as usize..no as usize + usize::from(nl))?;
        let module =
            if ml == 0 { None } else { self.text.get(mo as usize..mo as usize + usize::from(ml)) };
        Some((name, module, addr - a))
    }

    /// Writes `%ps` (`name [mod]`) or, with `offset`, `%pS` (`name+0x10 [mod]`); an
    /// unresolved address as `0x...`.
    pub fn write_sym(&self, addr: u64, offset: bool, out: &mut String) {
        match self.lookup(addr) {
            Some((name, module, off)) => {
                out.push_str(name);
                if offset && off != 0 {
                    let _ = write!(out, "+0x{off:x}");
                }
                if let Some(m) = module {
                    out.push_str(" [");
                    out.push_str(m);
                    out.push(']');
                }
            }
            None => {
                let _ = write!(out, "0x{addr:x}");
            }
        }
    }
}

/// `saved_cmdlines`: pid → comm.
#[derive(Debug, Default)]
pub struct Cmdlines<'a> {
    text: Cow<'a, str>,
    map: FxHashMap<u32, (u32, u16)>,
}

impl<'a> Cmdlines<'a> {
    /// Indexes `pid comm` lines.
    pub fn parse(text: Cow<'a, str>) -> Self {
        let mut map = FxHashMap::default();
        for line in text.lines() {
            let Some((pid, comm)) = line.trim_start().split_once(' ') else { continue };
            let Ok(pid) = pid.parse::<u32>() else { continue };
            let off = comm.as_ptr() as usize - text.as_ptr() as usize;
            if let (Ok(o), Ok(l)) = (u32::try_from(off), u16::try_from(comm.len())) {
                map.insert(pid, (o, l));
            }
        }
        Cmdlines { text, map }
    }

    /// The comm of `pid` (`<idle>` for 0), `None` when the cache did not have it.
    pub fn comm(&self, pid: u32) -> Option<&str> {
        if pid == 0 {
            return Some("<idle>");
        }
        let &(o, l) = self.map.get(&pid)?;
        self.text.get(o as usize..o as usize + usize::from(l))
    }
}

/// `printk_formats`: address → parsed format string, for `bprint`/`bputs` records.
#[derive(Debug, Default)]
pub struct PrintkFormats {
    map: FxHashMap<u64, (String, Option<crate::print::BinFmt>)>,
}

impl PrintkFormats {
    /// Parses `0xffffffff8234abcd : "format string\n"` lines (C escapes undone).
    pub fn parse(text: &str) -> Self {
        let mut map = FxHashMap::default();
        for line in text.lines() {
            let Some((addr, fmt)) = line.split_once(" : ") else { continue };
            let Ok(addr) = u64::from_str_radix(addr.trim().trim_start_matches("0x"), 16) else {
                continue;
            };
            let fmt = fmt.trim();
            let fmt = fmt.strip_prefix('"').and_then(|f| f.strip_suffix('"')).unwrap_or(fmt);
            let mut s = String::with_capacity(fmt.len());
            let mut it = fmt.chars();
            while let Some(c) = it.next() {
                if c == '\\' {
                    match it.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(o) => s.push(o),
                        None => {}
                    }
                } else {
                    s.push(c);
                }
            }
            let bin = crate::print::BinFmt::parse(&s);
            map.insert(addr, (s, bin));
        }
        PrintkFormats { map }
    }

    /// The format string stored for `addr`.
    pub fn get(&self, addr: u64) -> Option<&str> {
        self.map.get(&addr).map(|(s, _)| s.as_str())
    }

    pub(crate) fn bin(&self, addr: u64) -> Option<&crate::print::BinFmt> {
        self.map.get(&addr).and_then(|(_, b)| b.as_ref())
    }

    /// Number of formats.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
