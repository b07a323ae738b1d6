//! Event `format` files: field layout (read by name and type) and the `print fmt`.

use crate::bytes::{Endian, read_uint};
use crate::print::PrintFmt;

/// How a field's bytes are interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// An integer of `size` bytes.
    Int,
    /// A fixed-size `char name[N]` string (NUL-padded).
    CharArray,
    /// A fixed-size array of other elements (`u8 insn[15]`, `unsigned long args[]`).
    Array,
    /// `__data_loc`: u32, low 16 bits offset from the payload start, high 16 bits length.
    DataLoc,
    /// `__rel_loc`: like `__data_loc`, offset relative to the end of the field.
    RelLoc,
}

/// One field of an event, as declared in its format file.
#[derive(Clone, Debug)]
pub struct Field {
    /// Field name (`exit_reason`).
    pub name: String,
    /// The C type as written, without the name (`unsigned int`, `char[16]`).
    pub ctype: String,
    /// Byte offset from the start of the payload.
    pub offset: usize,
    /// Size in bytes (0 for a trailing flexible array).
    pub size: usize,
    /// Whether an integer is signed.
    pub signed: bool,
    /// Interpretation.
    pub kind: FieldKind,
    /// Whether the element type is `char` (strings for arrays and dynamic data).
    pub is_char: bool,
}

impl Field {
    /// Reads an integer field (sign-extended when signed), `None` if out of bounds.
    pub fn int(&self, payload: &[u8], e: Endian) -> Option<i64> {
        let size = if self.kind == FieldKind::Int { self.size } else { 4 };
        let v = read_uint(payload, self.offset, size, e)?;
        Some(if self.signed && self.kind == FieldKind::Int {
            match size {
                1 => i64::from(v as u8 as i8),
                2 => i64::from(v as u16 as i16),
                4 => i64::from(v as u32 as i32),
                _ => v as i64,
            }
        } else {
            v as i64
        })
    }

    /// The raw bytes of an array or dynamic field, `None` if out of bounds.
    pub fn bytes<'p>(&self, payload: &'p [u8], e: Endian) -> Option<&'p [u8]> {
        match self.kind {
            FieldKind::Int | FieldKind::CharArray | FieldKind::Array => {
                let end = if self.size == 0 { payload.len() } else { self.offset + self.size };
                payload.get(self.offset..end)
            }
            FieldKind::DataLoc | FieldKind::RelLoc => {
                let v = read_uint(payload, self.offset, 4, e)? as usize;
                let mut off = v & 0xffff;
                let len = v >> 16;
                if self.kind == FieldKind::RelLoc {
                    off += self.offset + self.size;
                }
                payload.get(off..off.checked_add(len)?)
            }
        }
    }

    /// A string field (char array or dynamic string), cut at the first NUL.
    pub fn str<'p>(&self, payload: &'p [u8], e: Endian) -> Option<&'p [u8]> {
        let b = self.bytes(payload, e)?;
        Some(b.iter().position(|&c| c == 0).and_then(|n| b.get(..n)).unwrap_or(b))
    }
}

/// A parsed `events/<system>/<name>/format` file.
#[derive(Debug)]
pub struct EventFormat {
    /// Event system (`kvm`, `ftrace`).
    pub system: String,
    /// Event name (`kvm_exit`).
    pub name: String,
    /// Event id (`common_type` of its records).
    pub id: u16,
    /// All fields, common ones first, in file order.
    pub fields: Vec<Field>,
    /// The parsed print format, `None` when absent or not understood.
    pub(crate) print: Option<PrintFmt>,
    /// Why the print format was not understood, when it was not.
    print_error: Option<String>,
    /// The raw print format text.
    pub print_text: String,
}

impl EventFormat {
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// What of this event's `print fmt` exitscope cannot render as the kernel does, one
    /// sentence each (empty when records render exactly): a format it does not understand
    /// (records then print as `field=value` pairs), or a construct inside one it does
    /// (an enum constant without a value, a helper it does not evaluate).
    pub fn print_problems(&self) -> Vec<String> {
        match (&self.print, &self.print_error) {
            (Some(p), _) => p.problems().to_vec(),
            (None, Some(e)) => {
                vec![format!("print fmt not understood ({e}); fields are printed as name=value")]
            }
            (None, None) => Vec::new(),
        }
    }

    /// Parses a format file. Returns a message on failure.
    pub fn parse(system: &str, text: &str) -> Result<EventFormat, String> {
        let mut name = None;
        let mut id = None;
        let mut fields = Vec::new();
        let mut print_text = String::new();
        for line in text.lines() {
            let t = line.trim();
            if let Some(v) = t.strip_prefix("name:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = t.strip_prefix("ID:") {
                id = Some(v.trim().parse::<u16>().map_err(|_| format!("bad ID line {t:?}"))?);
            } else if let Some(v) = t.strip_prefix("print fmt:") {
                print_text = v.trim().to_string();
            } else if t.starts_with("field:") {
                fields.push(parse_field(t)?);
            }
        }
        let name = name.ok_or("format has no name: line")?;
        let id = id.ok_or("format has no ID: line")?;
        let (print, print_error) = if print_text.is_empty() {
            (None, None)
        } else {
            match crate::print::PrintFmt::parse(&print_text, &fields) {
                Ok(p) => (Some(p), None),
                Err(e) => (None, Some(e)),
            }
        };
        Ok(EventFormat {
            system: system.to_string(),
            name,
            id,
            fields,
            print,
            print_error,
            print_text,
        })
    }
}

/// Parses `field:unsigned int depth;\toffset:16;\tsize:4;\tsigned:0;`.
fn parse_field(line: &str) -> Result<Field, String> {
    let mut decl = "";
    let (mut offset, mut size, mut signed) = (None, None, false);
    for part in line.split(';') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("field:") {
            decl = v.trim();
        } else if let Some(v) = part.strip_prefix("offset:") {
            offset = v.trim().parse::<usize>().ok();
        } else if let Some(v) = part.strip_prefix("size:") {
            size = v.trim().parse::<usize>().ok();
        } else if let Some(v) = part.strip_prefix("signed:") {
            signed = v.trim() == "1";
        }
    }
    let (Some(offset), Some(size)) = (offset, size) else {
        return Err(format!("bad field line {line:?}"));
    };
    let (kind, rest) = if let Some(r) = decl.strip_prefix("__data_loc ") {
        (FieldKind::DataLoc, r)
    } else if let Some(r) = decl.strip_prefix("__rel_loc ") {
        (FieldKind::RelLoc, r)
    } else {
        (FieldKind::Int, decl)
    };
    // The name is the last identifier, before a trailing `[N]` (`char comm[16]`); in
    // `char[] name` the brackets belong to the type.
    let rest = rest.trim();
    let (head, array) = match rest.strip_suffix(']').and_then(|r| r.rfind('[')) {
        Some(i) => (rest.get(..i).unwrap_or(rest), rest.get(i..).unwrap_or("")),
        None => (rest, ""),
    };
    let head = head.trim_end();
    let split = head.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
    let name = head.get(split..).unwrap_or(head).to_string();
    let ty = head.get(..split).unwrap_or("").trim();
    let is_char = ty.split_whitespace().any(|w| w == "char");
    let kind = match kind {
        FieldKind::Int if !array.is_empty() => {
            if is_char {
                FieldKind::CharArray
            } else {
                FieldKind::Array
            }
        }
        k => k,
    };
    Ok(Field { name, ctype: format!("{ty}{array}"), offset, size, signed, kind, is_char })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_parsed_by_name_and_type() {
        let text = "name: sched_process_exec\nID: 313\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:char prev_comm[16];\toffset:12;\tsize:16;\tsigned:0;\n\tfield:int pid;\toffset:28;\tsize:4;\tsigned:1;\n\nprint fmt: \"filename=%s pid=%d\", __get_str(filename), REC->pid\n";
        let f = EventFormat::parse("sched", text).unwrap();
        assert_eq!(f.id, 313);
        assert_eq!(f.field("filename").unwrap().kind, FieldKind::DataLoc);
        assert_eq!(f.field("prev_comm").unwrap().kind, FieldKind::CharArray);
        assert!(f.field("pid").unwrap().signed);
        assert!(f.print.is_some());
    }
}
