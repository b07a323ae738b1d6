//! `print fmt:` of event formats: a printf format plus C argument expressions over
//! `REC->field`, parsed once per event and evaluated per record into a reused `String`.

use std::fmt::Write as _;

use crate::bytes::Endian;
use crate::format::{Field, FieldKind};

mod kvm_exit;
pub(crate) use kvm_exit::{ExitPlan, ExitValues, ReasonCache};

/// Context for evaluating a print format against one record.
pub(crate) struct Ctx<'r> {
    pub payload: &'r [u8],
    pub fields: &'r [Field],
    pub endian: Endian,
    pub long_size: usize,
    pub syms: &'r crate::meta::Symbols<'r>,
}

#[derive(Debug, Clone)]
enum Tok {
    Str(String),
    Num(i64),
    Ident(String),
    Op(&'static str),
}

const OPS: &[&str] = &[
    "->", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "(", ")", "{", "}", ",", "?", ":", "!",
    "~", "-", "+", "*", "/", "%", "<", ">", "&", "|", "^", "[", "]", ".",
];

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while let Some(&c) = b.get(i) {
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'"' {
            let mut v = Vec::new();
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err("unterminated string".into()),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let e = *b.get(i + 1).ok_or("bad escape")?;
                        v.push(match e {
                            b'n' => b'\n',
                            b't' => b'\t',
                            b'0' => 0,
                            o => o,
                        });
                        i += 2;
                    }
                    Some(&o) => {
                        v.push(o);
                        i += 1;
                    }
                }
            }
            // Adjacent literals concatenate.
            let v = String::from_utf8_lossy(&v).into_owned();
            if let Some(Tok::Str(prev)) = out.last_mut() {
                prev.push_str(&v);
            } else {
                out.push(Tok::Str(v));
            }
        } else if c == b'\'' {
            let ch = *b.get(i + 1).ok_or("bad char literal")?;
            out.push(Tok::Num(i64::from(ch)));
            i += 3;
        } else if c.is_ascii_digit() {
            let start = i;
            while b.get(i).is_some_and(|c| c.is_ascii_alphanumeric()) {
                i += 1;
            }
            let t = s.get(start..i).unwrap_or("0");
            let t = t.trim_end_matches(['u', 'U', 'l', 'L']);
            let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                u64::from_str_radix(h, 16).map_err(|_| format!("bad number {t}"))? as i64
            } else if t.len() > 1 && t.starts_with('0') {
                u64::from_str_radix(t.get(1..).unwrap_or("0"), 8)
                    .map_err(|_| format!("bad number {t}"))? as i64
            } else {
                t.parse::<u64>().map_err(|_| format!("bad number {t}"))? as i64
            };
            out.push(Tok::Num(v));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while b.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(s.get(start..i).unwrap_or("").to_string()));
        } else {
            let rest = s.get(i..).unwrap_or("");
            let op = OPS
                .iter()
                .find(|o| rest.starts_with(**o))
                .ok_or_else(|| format!("bad char {:?}", c as char))?;
            out.push(Tok::Op(op));
            i += op.len();
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum Expr {
    Num(i64),
    Str(String),
    Field(usize),
    Unary(Un, Box<Expr>),
    Binary(Bin, Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    Cast(u8, bool, Box<Expr>),
    Symbolic(Box<Expr>, SymTable),
    Flags(Box<Expr>, String, Vec<(i64, String)>),
    Hex(Box<Expr>, Box<Expr>, bool),
    GetStr(usize),
    DynArray(usize),
    DynLen(usize),
    /// A helper this evaluator does not know (its value is unknown; reported as a problem).
    Unknown,
    /// A constant the format file names but does not define (only allowed in table keys).
    Unresolved(String),
}

/// Enum constants that real kvm print formats name without a value. `TP_printk` arguments
/// are stringified after macro expansion, so `#define`d constants arrive as numbers, but
/// enum members stay names unless the kernel registers them with `TRACE_DEFINE_ENUM`, which
/// these are not. Values from the kernel headers named on each group (stable across the
/// versions whose print formats use them).
const KERNEL_ENUMS: &[(&str, i64)] = &[
    // include/vdso/clocksource.h `enum vdso_clock_mode` with x86's VDSO_ARCH_CLOCKMODES
    // (kvm_update_master_clock, kvm_track_tsc).
    ("VDSO_CLOCKMODE_NONE", 0),
    ("VDSO_CLOCKMODE_TSC", 1),
    ("VDSO_CLOCKMODE_PVCLOCK", 2),
    ("VDSO_CLOCKMODE_HVCLOCK", 3),
    // arch/x86/include/asm/kvm_host.h `enum kvm_apicv_inhibit` (kvm_apicv_inhibit_changed,
    // 6.10+; DISABLE was renamed DISABLED).
    ("APICV_INHIBIT_REASON_DISABLE", 0),
    ("APICV_INHIBIT_REASON_DISABLED", 0),
    ("APICV_INHIBIT_REASON_HYPERV", 1),
    ("APICV_INHIBIT_REASON_ABSENT", 2),
    ("APICV_INHIBIT_REASON_BLOCKIRQ", 3),
    ("APICV_INHIBIT_REASON_PHYSICAL_ID_ALIASED", 4),
    ("APICV_INHIBIT_REASON_APIC_ID_MODIFIED", 5),
    ("APICV_INHIBIT_REASON_APIC_BASE_MODIFIED", 6),
    ("APICV_INHIBIT_REASON_NESTED", 7),
    ("APICV_INHIBIT_REASON_IRQWIN", 8),
    ("APICV_INHIBIT_REASON_PIT_REINJ", 9),
    ("APICV_INHIBIT_REASON_SEV", 10),
    ("APICV_INHIBIT_REASON_LOGICAL_ID_ALIASED", 11),
    ("APICV_INHIBIT_REASON_PHYSICAL_ID_TOO_BIG", 12),
    // arch/x86/include/asm/vmx.h `enum vm_instruction_error_number`: the VM-instruction
    // error numbers of the Intel SDM (kvm_nested_vmenter_failed).
    ("VMXERR_VMCALL_IN_VMX_ROOT_OPERATION", 1),
    ("VMXERR_VMCLEAR_INVALID_ADDRESS", 2),
    ("VMXERR_VMCLEAR_VMXON_POINTER", 3),
    ("VMXERR_VMLAUNCH_NONCLEAR_VMCS", 4),
    ("VMXERR_VMRESUME_NONLAUNCHED_VMCS", 5),
    ("VMXERR_VMRESUME_AFTER_VMXOFF", 6),
    ("VMXERR_ENTRY_INVALID_CONTROL_FIELD", 7),
    ("VMXERR_ENTRY_INVALID_HOST_STATE_FIELD", 8),
    ("VMXERR_VMPTRLD_INVALID_ADDRESS", 9),
    ("VMXERR_VMPTRLD_VMXON_POINTER", 10),
    ("VMXERR_VMPTRLD_INCORRECT_VMCS_REVISION_ID", 11),
    ("VMXERR_UNSUPPORTED_VMCS_COMPONENT", 12),
    ("VMXERR_VMWRITE_READ_ONLY_VMCS_COMPONENT", 13),
    ("VMXERR_VMXON_IN_VMX_ROOT_OPERATION", 15),
    ("VMXERR_ENTRY_INVALID_EXECUTIVE_VMCS_POINTER", 16),
    ("VMXERR_ENTRY_NONLAUNCHED_EXECUTIVE_VMCS", 17),
    ("VMXERR_ENTRY_EXECUTIVE_VMCS_POINTER_NOT_VMXON_POINTER", 18),
    ("VMXERR_VMCALL_NONCLEAR_VMCS", 19),
    ("VMXERR_VMCALL_INVALID_VM_EXIT_CONTROL_FIELDS", 20),
    ("VMXERR_VMCALL_INCORRECT_MSEG_REVISION_ID", 22),
    ("VMXERR_VMXOFF_UNDER_DUAL_MONITOR_TREATMENT_OF_SMIS_AND_SMM", 23),
    ("VMXERR_VMCALL_INVALID_SMM_MONITOR_FEATURES", 24),
    ("VMXERR_ENTRY_INVALID_VM_EXECUTION_CONTROL_FIELDS_IN_EXECUTIVE_VMCS", 25),
    ("VMXERR_ENTRY_EVENTS_BLOCKED_BY_MOV_SS", 26),
    ("VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID", 28),
];

fn kernel_enum(name: &str) -> Option<i64> {
    KERNEL_ENUMS.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
}

struct Parser<'f> {
    toks: Vec<Tok>,
    pos: usize,
    fields: &'f [Field],
    /// Parsing the value of a `{ value, "name" }` table entry: unknown names are allowed.
    in_table_key: bool,
    /// What the format uses that cannot be rendered as the kernel does (one line each).
    problems: Vec<String>,
}

impl Parser<'_> {
    fn peek_op(&self, op: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Op(o)) if *o == op)
    }
    fn eat_op(&mut self, op: &str) -> bool {
        let r = self.peek_op(op);
        if r {
            self.pos += 1;
        }
        r
    }
    fn expect(&mut self, op: &str) -> Result<(), String> {
        if self.eat_op(op) { Ok(()) } else { Err(format!("expected {op} at token {}", self.pos)) }
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn field_index(&self, name: &str) -> Result<usize, String> {
        self.fields.iter().position(|f| f.name == name).ok_or_else(|| format!("no field {name}"))
    }
    fn expr(&mut self) -> Result<Expr, String> {
        let c = self.binary(0)?;
        if self.eat_op("?") {
            let a = self.expr()?;
            self.expect(":")?;
            let b = self.expr()?;
            return Ok(Expr::Cond(Box::new(c), Box::new(a), Box::new(b)));
        }
        Ok(c)
    }
    fn binary(&mut self, min_prec: u8) -> Result<Expr, String> {
        let mut lhs = self.unary()?;
        while let Some(Tok::Op(op)) = self.toks.get(self.pos).cloned() {
            let Some(bin) = Bin::of(op) else { break };
            let prec = bin.precedence();
            if prec < min_prec {
                break;
            }
            self.pos += 1;
            let rhs = self.binary(prec + 1)?;
            lhs = Expr::Binary(bin, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }
    fn unary(&mut self) -> Result<Expr, String> {
        for (op, un) in [("!", Un::Not), ("~", Un::BitNot), ("-", Un::Neg), ("+", Un::Plus)] {
            if self.eat_op(op) {
                let e = self.unary()?;
                return Ok(Expr::Unary(un, Box::new(e)));
            }
        }
        if self.peek_op("(") {
            // A cast: `(` followed by type words and `*` up to `)`.
            let save = self.pos;
            self.pos += 1;
            let mut words = Vec::new();
            while let Some(t) = self.toks.get(self.pos) {
                match t {
                    Tok::Ident(w) if w != "REC" => words.push(w.clone()),
                    Tok::Op("*") => words.push("*".into()),
                    _ => break,
                }
                self.pos += 1;
            }
            let is_type = !words.is_empty()
                && self.peek_op(")")
                && !self
                    .toks
                    .get(self.pos + 1)
                    .is_some_and(|t| matches!(t, Tok::Op(o) if [",", ")", "?", ":"].contains(o)))
                && words.iter().all(|w| is_type_word(w));
            if is_type {
                self.pos += 1;
                let inner = self.unary()?;
                let (size, signed) = cast_type(&words);
                return Ok(Expr::Cast(size, signed, Box::new(inner)));
            }
            self.pos = save + 1;
            let e = self.expr()?;
            self.expect(")")?;
            return self.postfix(e);
        }
        let e = self.primary()?;
        self.postfix(e)
    }
    fn postfix(&mut self, e: Expr) -> Result<Expr, String> {
        Ok(e)
    }
    fn problem(&mut self, p: String) {
        if !self.problems.contains(&p) {
            self.problems.push(p);
        }
    }
    /// The `{ value, "name" }, ...` entries of `__print_symbolic` / `__print_flags`.
    fn table(&mut self, helper: &str) -> Result<Vec<(i64, String)>, String> {
        let mut t = Vec::new();
        while self.eat_op(",") {
            self.expect("{")?;
            // `{ }`: an empty table (kvm_inj_exception's error code).
            if self.eat_op("}") {
                continue;
            }
            self.in_table_key = true;
            let v = self.expr();
            self.in_table_key = false;
            let v = v?;
            self.expect(",")?;
            let Some(Tok::Str(s)) = self.next() else { return Err("expected table string".into()) };
            self.expect("}")?;
            match const_eval(&v) {
                Some(v) => t.push((v, s)),
                None => {
                    let mut names = Vec::new();
                    unresolved_names(&v, &mut names);
                    if names.is_empty() {
                        return Err("table value is not constant".into());
                    }
                    // The entry can never match: values print in hex where the kernel
                    // prints the name.
                    self.problem(format!(
                        "`{helper}` entry \"{s}\" is keyed by `{}`, a kernel enum constant the \
                         format file does not define (its value prints in hex)",
                        names.join("`, `")
                    ));
                }
            }
        }
        Ok(t)
    }
    fn field_arg(&mut self) -> Result<usize, String> {
        match self.next() {
            Some(Tok::Ident(n)) if n == "REC" => {
                self.expect("->")?;
                match self.next() {
                    Some(Tok::Ident(f)) => self.field_index(&f),
                    _ => Err("expected field".into()),
                }
            }
            Some(Tok::Ident(f)) => self.field_index(&f),
            _ => Err("expected field name".into()),
        }
    }
    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::Num(n)) => Ok(Expr::Num(n)),
            Some(Tok::Str(s)) => Ok(Expr::Str(s)),
            Some(Tok::Ident(id)) => match id.as_str() {
                "REC" => {
                    self.expect("->")?;
                    match self.next() {
                        Some(Tok::Ident(f)) => Ok(Expr::Field(self.field_index(&f)?)),
                        _ => Err("expected field after REC->".into()),
                    }
                }
                "__print_symbolic" | "__print_symbolic_u64" => {
                    self.expect("(")?;
                    let v = self.expr()?;
                    let t = self.table(&id)?;
                    self.expect(")")?;
                    Ok(Expr::Symbolic(Box::new(v), SymTable::new(t)))
                }
                "__print_flags" | "__print_flags_u64" => {
                    self.expect("(")?;
                    let v = self.expr()?;
                    self.expect(",")?;
                    let Some(Tok::Str(d)) = self.next() else {
                        return Err("expected delimiter".into());
                    };
                    let t = self.table(&id)?;
                    self.expect(")")?;
                    Ok(Expr::Flags(Box::new(v), d, t))
                }
                "__print_hex" | "__print_hex_str" => {
                    self.expect("(")?;
                    let a = self.expr()?;
                    self.expect(",")?;
                    let l = self.expr()?;
                    self.expect(")")?;
                    Ok(Expr::Hex(Box::new(a), Box::new(l), id == "__print_hex_str"))
                }
                "__get_str" | "__get_rel_str" => {
                    self.expect("(")?;
                    let f = self.field_arg()?;
                    self.expect(")")?;
                    Ok(Expr::GetStr(f))
                }
                "__get_dynamic_array" | "__get_rel_dynamic_array" => {
                    self.expect("(")?;
                    let f = self.field_arg()?;
                    self.expect(")")?;
                    Ok(Expr::DynArray(f))
                }
                "__get_dynamic_array_len" | "__get_rel_dynamic_array_len" => {
                    self.expect("(")?;
                    let f = self.field_arg()?;
                    self.expect(")")?;
                    Ok(Expr::DynLen(f))
                }
                _ if self.peek_op("(") => {
                    // Unknown helper: skip its balanced argument list, and say so.
                    self.problem(format!(
                        "`{id}()` is not evaluated by exitscope (its value prints as 0)"
                    ));
                    let mut depth = 0usize;
                    while let Some(t) = self.next() {
                        match t {
                            Tok::Op("(") => depth += 1,
                            Tok::Op(")") => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    Ok(Expr::Unknown)
                }
                "true" => Ok(Expr::Num(1)),
                "false" | "NULL" => Ok(Expr::Num(0)),
                _ => match kernel_enum(&id) {
                    Some(v) => Ok(Expr::Num(v)),
                    None if self.in_table_key => Ok(Expr::Unresolved(id)),
                    None => Err(format!(
                        "`{id}` is a name the format file does not define (a kernel enum \
                         constant?)"
                    )),
                },
            },
            t => Err(format!("unexpected token {t:?}")),
        }
    }
}

fn is_type_word(w: &str) -> bool {
    matches!(
        w,
        "void"
            | "unsigned"
            | "signed"
            | "int"
            | "long"
            | "short"
            | "char"
            | "bool"
            | "const"
            | "u8"
            | "u16"
            | "u32"
            | "u64"
            | "s8"
            | "s16"
            | "s32"
            | "s64"
            | "size_t"
            | "__u8"
            | "__u16"
            | "__u32"
            | "__u64"
            | "*"
            | "uint8_t"
            | "uint16_t"
            | "uint32_t"
            | "uint64_t"
    )
}

/// (size in bytes, signed) of a cast; 0 means "do not truncate" (pointers, long).
fn cast_type(words: &[String]) -> (u8, bool) {
    if words.iter().any(|w| w == "*") || words.iter().any(|w| w == "long") {
        return (0, false);
    }
    let signed =
        !words.iter().any(|w| w == "unsigned" || w.starts_with('u') || w.starts_with("__u"));
    let size = if words
        .iter()
        .any(|w| matches!(w.as_str(), "char" | "u8" | "s8" | "__u8" | "uint8_t" | "bool"))
    {
        1
    } else if words
        .iter()
        .any(|w| matches!(w.as_str(), "short" | "u16" | "s16" | "__u16" | "uint16_t"))
    {
        2
    } else if words.iter().any(|w| {
        matches!(w.as_str(), "int" | "u32" | "s32" | "__u32" | "uint32_t" | "unsigned" | "signed")
    }) {
        4
    } else {
        0
    };
    (size, signed)
}

fn unresolved_names(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Unresolved(n) => out.push(n.clone()),
        Expr::Unary(_, a) | Expr::Cast(_, _, a) => unresolved_names(a, out),
        Expr::Binary(_, a, b) => {
            unresolved_names(a, out);
            unresolved_names(b, out);
        }
        _ => {}
    }
}

fn const_eval(e: &Expr) -> Option<i64> {
    Some(match e {
        Expr::Num(n) => *n,
        Expr::Unary(op, a) => unop(*op, const_eval(a)?),
        Expr::Binary(op, a, b) => binop(*op, const_eval(a)?, const_eval(b)?),
        Expr::Cast(s, sg, a) => cast(*s, *sg, const_eval(a)?),
        _ => return None,
    })
}

/// A unary operator of a print-fmt expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Un {
    Not,
    BitNot,
    Neg,
    Plus,
}

/// A binary operator of a print-fmt expression (an enum, not the token: records evaluate
/// these millions of times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bin {
    Or,
    And,
    BitOr,
    BitXor,
    BitAnd,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Shl,
    Shr,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl Bin {
    fn of(op: &str) -> Option<Bin> {
        Some(match op {
            "||" => Bin::Or,
            "&&" => Bin::And,
            "|" => Bin::BitOr,
            "^" => Bin::BitXor,
            "&" => Bin::BitAnd,
            "==" => Bin::Eq,
            "!=" => Bin::Ne,
            "<" => Bin::Lt,
            ">" => Bin::Gt,
            "<=" => Bin::Le,
            ">=" => Bin::Ge,
            "<<" => Bin::Shl,
            ">>" => Bin::Shr,
            "+" => Bin::Add,
            "-" => Bin::Sub,
            "*" => Bin::Mul,
            "/" => Bin::Div,
            "%" => Bin::Rem,
            _ => return None,
        })
    }

    /// C's precedence, higher binds tighter.
    fn precedence(self) -> u8 {
        match self {
            Bin::Or => 1,
            Bin::And => 2,
            Bin::BitOr => 3,
            Bin::BitXor => 4,
            Bin::BitAnd => 5,
            Bin::Eq | Bin::Ne => 6,
            Bin::Lt | Bin::Gt | Bin::Le | Bin::Ge => 7,
            Bin::Shl | Bin::Shr => 8,
            Bin::Add | Bin::Sub => 9,
            Bin::Mul | Bin::Div | Bin::Rem => 10,
        }
    }
}

fn unop(op: Un, v: i64) -> i64 {
    match op {
        Un::Not => i64::from(v == 0),
        Un::BitNot => !v,
        Un::Neg => v.wrapping_neg(),
        Un::Plus => v,
    }
}

fn binop(op: Bin, a: i64, b: i64) -> i64 {
    match op {
        Bin::Or => i64::from(a != 0 || b != 0),
        Bin::And => i64::from(a != 0 && b != 0),
        Bin::BitOr => a | b,
        Bin::BitXor => a ^ b,
        Bin::BitAnd => a & b,
        Bin::Eq => i64::from(a == b),
        Bin::Ne => i64::from(a != b),
        Bin::Lt => i64::from(a < b),
        Bin::Gt => i64::from(a > b),
        Bin::Le => i64::from(a <= b),
        Bin::Ge => i64::from(a >= b),
        Bin::Shl => a.wrapping_shl(b as u32),
        Bin::Shr => ((a as u64).wrapping_shr(b as u32)) as i64,
        Bin::Add => a.wrapping_add(b),
        Bin::Sub => a.wrapping_sub(b),
        Bin::Mul => a.wrapping_mul(b),
        Bin::Div => a.checked_div(b).unwrap_or(0),
        Bin::Rem => a.checked_rem(b).unwrap_or(0),
    }
}

/// A `__print_symbolic` table: its entries in the format's order, looked up by value in
/// O(log n) (the first entry of a value wins, as the kernel's linear walk has it).
#[derive(Debug, Clone)]
struct SymTable {
    entries: Vec<(i64, String)>,
    /// (value, index into `entries`), sorted by value, first occurrence only.
    by_value: Vec<(i64, u32)>,
}

impl SymTable {
    fn new(entries: Vec<(i64, String)>) -> SymTable {
        let mut by_value: Vec<(i64, u32)> =
            entries.iter().enumerate().map(|(i, (k, _))| (*k, i as u32)).collect();
        // Stable: equal values keep the format's order, and dedup keeps the first.
        by_value.sort_by_key(|&(k, _)| k);
        by_value.dedup_by_key(|&mut (k, _)| k);
        SymTable { entries, by_value }
    }

    fn get(&self, v: i64) -> Option<&str> {
        let i = self.by_value.binary_search_by_key(&v, |&(k, _)| k).ok()?;
        let (_, at) = self.by_value.get(i)?;
        self.entries.get(*at as usize).map(|(_, s)| s.as_str())
    }
}

fn cast(size: u8, signed: bool, v: i64) -> i64 {
    match (size, signed) {
        (1, true) => i64::from(v as i8),
        (1, false) => i64::from(v as u8),
        (2, true) => i64::from(v as i16),
        (2, false) => i64::from(v as u16),
        (4, true) => i64::from(v as i32),
        (4, false) => i64::from(v as u32),
        _ => v,
    }
}

/// One conversion of the format string.
#[derive(Debug, Clone)]
struct Spec {
    left: bool,
    zero: bool,
    alt: bool,
    plus: bool,
    space: bool,
    width: usize,
    precision: Option<usize>,
    /// Number of `l`/`z` modifiers (0 = int), or -1/-2 for `h`/`hh`.
    len: i8,
    conv: u8,
    /// `%p` extension letter (`s`, `S`, `F`, ...).
    pext: u8,
}

#[derive(Debug, Clone)]
enum Piece {
    Lit(String),
    Conv(Spec, usize),
}

/// A parsed print format.
#[derive(Debug, Clone)]
pub(crate) struct PrintFmt {
    pieces: Vec<Piece>,
    args: Vec<Expr>,
    /// Constructs rendered differently from the kernel (see [`PrintFmt::problems`]).
    problems: Vec<String>,
}

impl PrintFmt {
    pub(crate) fn parse(text: &str, fields: &[Field]) -> Result<PrintFmt, String> {
        let mut toks = tokenize(text)?.into_iter();
        let Some(Tok::Str(fmt)) = toks.next() else {
            return Err("print fmt without string".into());
        };
        let mut p = Parser {
            toks: toks.collect(),
            pos: 0,
            fields,
            in_table_key: false,
            problems: Vec::new(),
        };
        let mut args = Vec::new();
        while p.eat_op(",") {
            args.push(p.expr()?);
        }
        if p.pos < p.toks.len() {
            return Err(format!("trailing tokens in print fmt at {}", p.pos));
        }
        let pieces = parse_printf(&fmt)?;
        let nconv = pieces.iter().filter(|p| matches!(p, Piece::Conv(..))).count();
        if nconv > args.len() {
            return Err("fewer arguments than conversions".into());
        }
        Ok(PrintFmt { pieces, args, problems: p.problems })
    }

    /// What this format uses that exitscope renders differently from the kernel (an enum
    /// constant without a value, a helper it does not evaluate), one sentence each; empty
    /// when every record renders as the kernel prints it.
    pub(crate) fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Renders the record into `out`.
    pub(crate) fn render(&self, cx: &Ctx<'_>, out: &mut String) {
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Conv(spec, i) => match self.args.get(*i) {
                    Some(a) => conv(cx, spec, a, out),
                    None => out.push_str("[MISSING ARG]"),
                },
            }
        }
    }
}

fn parse_printf(fmt: &str) -> Result<Vec<Piece>, String> {
    let b = fmt.as_bytes();
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    let mut argn = 0;
    let mut lit_start = 0;
    while let Some(&c) = b.get(i) {
        if c != b'%' {
            i += 1;
            continue;
        }
        lit.push_str(fmt.get(lit_start..i).unwrap_or(""));
        i += 1;
        if b.get(i) == Some(&b'%') {
            lit.push('%');
            i += 1;
            lit_start = i;
            continue;
        }
        let mut s = Spec {
            left: false,
            zero: false,
            alt: false,
            plus: false,
            space: false,
            width: 0,
            precision: None,
            len: 0,
            conv: 0,
            pext: 0,
        };
        while let Some(&f) = b.get(i) {
            match f {
                b'-' => s.left = true,
                b'0' => s.zero = true,
                b'#' => s.alt = true,
                b'+' => s.plus = true,
                b' ' => s.space = true,
                _ => break,
            }
            i += 1;
        }
        while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            s.width = s.width * 10 + usize::from(d - b'0');
            i += 1;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            let mut p = 0;
            while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
                p = p * 10 + usize::from(d - b'0');
                i += 1;
            }
            s.precision = Some(p);
        }
        while let Some(&m) = b.get(i) {
            match m {
                b'l' | b'z' | b'L' | b'q' | b'j' | b't' => s.len = s.len.max(0) + 1,
                b'h' => s.len -= 1,
                _ => break,
            }
            i += 1;
        }
        if s.width > 1024 || s.precision.is_some_and(|p| p > 1024) {
            return Err("conversion width or precision too large".into());
        }
        s.conv = *b.get(i).ok_or("truncated conversion")?;
        i += 1;
        if s.conv == b'p'
            && let Some(&e) = b.get(i).filter(|e| e.is_ascii_alphabetic())
        {
            s.pext = e;
            i += 1;
            // Skip further extension letters (`%pI4`, `%pISpc`).
            while b.get(i).is_some_and(|e| e.is_ascii_alphanumeric())
                && !matches!(s.pext, b's' | b'S' | b'F' | b'f' | b'B')
            {
                i += 1;
            }
        }
        if !b"diuxXoscpe".contains(&s.conv) {
            return Err(format!("unsupported conversion %{}", s.conv as char));
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        pieces.push(Piece::Conv(s, argn));
        argn += 1;
        lit_start = i;
    }
    lit.push_str(fmt.get(lit_start..).unwrap_or(""));
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

fn field_int(cx: &Ctx<'_>, f: usize) -> i64 {
    cx.fields.get(f).and_then(|f| f.int(cx.payload, cx.endian)).unwrap_or(0)
}

fn eval(cx: &Ctx<'_>, e: &Expr) -> i64 {
    match e {
        Expr::Num(n) => *n,
        Expr::Str(_)
        | Expr::GetStr(_)
        | Expr::DynArray(_)
        | Expr::Hex(..)
        | Expr::Flags(..)
        | Expr::Symbolic(..) => 1,
        Expr::Field(f) => match cx.fields.get(*f) {
            Some(fl) if fl.kind != FieldKind::Int => 1,
            _ => field_int(cx, *f),
        },
        Expr::Unary(op, a) => unop(*op, eval(cx, a)),
        Expr::Binary(op, a, b) => {
            // Comparisons of unsigned 64-bit values: do them unsigned when both sides are.
            binop(*op, eval(cx, a), eval(cx, b))
        }
        Expr::Cond(c, a, b) => {
            if eval(cx, c) != 0 {
                eval(cx, a)
            } else {
                eval(cx, b)
            }
        }
        Expr::Cast(s, sg, a) => cast(*s, *sg, eval(cx, a)),
        Expr::DynLen(f) => cx
            .fields
            .get(*f)
            .and_then(|f| f.bytes(cx.payload, cx.endian))
            .map_or(0, |b| b.len() as i64),
        Expr::Unknown | Expr::Unresolved(_) => 0,
    }
}

fn push_bytes_str(out: &mut String, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => out.push_str(s),
        Err(_) => out.push_str(&String::from_utf8_lossy(b)),
    }
}

/// Writes a `%s` argument.
fn write_str(cx: &Ctx<'_>, e: &Expr, out: &mut String) {
    match e {
        Expr::Str(s) => out.push_str(s),
        Expr::Cond(c, a, b) => {
            if eval(cx, c) != 0 {
                write_str(cx, a, out)
            } else {
                write_str(cx, b, out)
            }
        }
        Expr::Symbolic(v, table) => {
            let v = eval(cx, v);
            match table.get(v) {
                Some(s) => out.push_str(s),
                None => {
                    let _ = write!(out, "0x{:x}", v);
                }
            }
        }
        Expr::Flags(v, delim, table) => {
            let mut v = eval(cx, v);
            let mut first = true;
            for (k, s) in table {
                if *k != 0 && v & *k == *k {
                    if !first {
                        out.push_str(delim);
                    }
                    out.push_str(s);
                    first = false;
                    v &= !*k;
                } else if *k == 0 && v == 0 && first {
                    out.push_str(s);
                    return;
                }
            }
            if v != 0 {
                if !first {
                    out.push_str(delim);
                }
                let _ = write!(out, "0x{:x}", v);
            }
        }
        Expr::Hex(a, l, as_str) => {
            let len = usize::try_from(eval(cx, l)).unwrap_or(0);
            let bytes = match &**a {
                Expr::Field(f) | Expr::DynArray(f) => {
                    cx.fields.get(*f).and_then(|f| f.bytes(cx.payload, cx.endian))
                }
                _ => None,
            }
            .unwrap_or_default();
            for (i, b) in bytes.iter().take(len).enumerate() {
                if i > 0 && !as_str {
                    out.push(' ');
                }
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push(char::from(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0')));
                out.push(char::from(HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0')));
            }
        }
        Expr::GetStr(f) | Expr::DynArray(f) | Expr::Field(f)
            if cx.fields.get(*f).is_some_and(|f| f.kind != FieldKind::Int) =>
        {
            if let Some(b) = cx.fields.get(*f).and_then(|f| f.str(cx.payload, cx.endian)) {
                push_bytes_str(out, b);
            }
        }
        other => {
            let _ = write!(out, "{}", eval(cx, other));
        }
    }
}

fn pad(out: &mut String, spec: &Spec, start: usize) {
    if spec.width == 0 {
        return;
    }
    let len = out.len() - start;
    if len < spec.width {
        let n = spec.width - len;
        if spec.left {
            out.extend(std::iter::repeat_n(' ', n));
        } else {
            let fill = if spec.zero && spec.conv != b's' { '0' } else { ' ' };
            // Zero padding goes after a sign or 0x prefix.
            let mut at = start;
            if fill == '0' {
                let s = out.get(start..).unwrap_or("");
                if s.starts_with('-') || s.starts_with('+') {
                    at += 1;
                } else if s.starts_with("0x") {
                    at += 2;
                }
            }
            // No allocation for the usual widths.
            const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
            const SPACES: &str = "                                                                ";
            match (if fill == '0' { ZEROS } else { SPACES }).get(..n) {
                Some(f) => out.insert_str(at, f),
                None => out.insert_str(at, &std::iter::repeat_n(fill, n).collect::<String>()),
            }
        }
    }
}

/// Appends `v` in base 10 or 16 (lowercase) without going through `core::fmt`: this is
/// the hot path of rendering. Each base has its own loop so that the divisions are by a
/// constant (shifts for 16, multiplications for 10).
pub(crate) fn push_radix(out: &mut String, v: u64, radix: u64) {
    if radix == 16 { push_digits::<16>(out, v) } else { push_digits::<10>(out, v) }
}

#[inline]
fn push_digits<const R: u64>(out: &mut String, v: u64) {
    let mut buf = [0u8; 20];
    // ASCII digits.
    out.push_str(std::str::from_utf8(digits_into::<R>(&mut buf, v)).unwrap_or_default());
}

/// `v` cut to the width of the C type the conversion names (`hh`, `h`, none, `l`, `ll`), and
/// that width in bits.
#[inline]
fn c_width(spec: &Spec, v: i64, long_size: usize) -> (u64, u32) {
    let bits = match spec.len {
        l if l <= -2 => 8,
        -1 => 16,
        0 => 32,
        1 if long_size == 4 => 32,
        _ => 64,
    };
    (if bits == 64 { v as u64 } else { (v as u64) & ((1u64 << bits) - 1) }, bits)
}

/// Formats an integer conversion (`d i u x X o`) of `v` (without padding).
fn fmt_int(spec: &Spec, v: i64, long_size: usize, out: &mut String) {
    let start = out.len();
    let (u, bits) = c_width(spec, v, long_size);
    match spec.conv {
        b'd' | b'i' => {
            let s = if bits == 64 { v } else { ((u << (64 - bits)) as i64) >> (64 - bits) };
            if spec.plus && s >= 0 {
                out.push('+');
            } else if spec.space && s >= 0 {
                out.push(' ');
            }
            if s < 0 {
                out.push('-');
            }
            push_radix(out, s.unsigned_abs(), 10);
        }
        b'u' => push_radix(out, u, 10),
        b'x' => {
            if spec.alt && u != 0 {
                out.push_str("0x");
            }
            push_radix(out, u, 16);
        }
        b'X' => {
            if spec.alt && u != 0 {
                out.push_str("0X");
            }
            let _ = write!(out, "{u:X}");
        }
        b'o' => {
            let _ = write!(out, "{u:o}");
        }
        _ => {}
    }
    if let Some(p) = spec.precision {
        let digits = out.len() - start;
        if digits < p {
            let zeros: String = std::iter::repeat_n('0', p - digits).collect();
            out.insert_str(start, &zeros);
        }
    }
}

/// A printf format from `printk_formats`, for `bprint` records.
#[derive(Debug, Clone)]
pub(crate) struct BinFmt {
    pieces: Vec<Piece>,
}

impl BinFmt {
    pub(crate) fn parse(fmt: &str) -> Option<BinFmt> {
        parse_printf(fmt).ok().map(|pieces| BinFmt { pieces })
    }

    /// Renders the arguments `trace_printk` packed into `buf` (the kernel's vbin_printf
    /// layout: strings inline and NUL-terminated, other values aligned to their size,
    /// 8-byte values to 4).
    pub(crate) fn render(
        &self,
        buf: &[u8],
        e: Endian,
        long_size: usize,
        syms: &crate::meta::Symbols<'_>,
        out: &mut String,
    ) {
        let mut pos = 0usize;
        for p in &self.pieces {
            let (spec, _) = match p {
                Piece::Lit(s) => {
                    out.push_str(s);
                    continue;
                }
                Piece::Conv(spec, i) => (spec, i),
            };
            let start = out.len();
            if spec.conv == b's' {
                let rest = buf.get(pos..).unwrap_or_default();
                let n = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
                push_bytes_str(out, rest.get(..n).unwrap_or_default());
                pos += n + 1;
            } else {
                let size = match (spec.conv, spec.len) {
                    (b'c', _) => 1,
                    (b'p', _) => long_size,
                    (_, l) if l <= -2 => 1,
                    (_, -1) => 2,
                    (_, 0) => 4,
                    (_, 1) => long_size,
                    _ => 8,
                };
                pos = pos.next_multiple_of(size.min(4));
                let v = crate::bytes::read_uint(buf, pos, size, e).unwrap_or(0);
                pos += size;
                match spec.conv {
                    b'c' => out.push(char::from(v as u8)),
                    b'p' if matches!(spec.pext, b's' | b'S' | b'F' | b'f' | b'B') => {
                        syms.write_sym(v, matches!(spec.pext, b'S' | b'F' | b'B'), out);
                    }
                    b'p' => {
                        let _ = write!(out, "0x{v:x}");
                    }
                    _ => {
                        // Sign-extend from the stored size; fmt_int truncates to the type.
                        let sv = match size {
                            1 => i64::from(v as u8 as i8),
                            2 => i64::from(v as u16 as i16),
                            4 => i64::from(v as u32 as i32),
                            _ => v as i64,
                        };
                        fmt_int(spec, sv, long_size, out);
                    }
                }
            }
            pad(out, spec, start);
        }
    }
}

fn conv(cx: &Ctx<'_>, spec: &Spec, e: &Expr, out: &mut String) {
    let start = out.len();
    match spec.conv {
        b's' => {
            write_str(cx, e, out);
            if let Some(p) = spec.precision {
                let s = out.get(start..).unwrap_or("");
                if let Some((i, _)) = s.char_indices().nth(p) {
                    out.truncate(start + i);
                }
            }
        }
        b'c' => out.push(char::from(eval(cx, e) as u8)),
        b'p' => {
            let v = eval(cx, e) as u64;
            match spec.pext {
                b's' | b'S' | b'F' | b'f' | b'B' => {
                    cx.syms.write_sym(v, matches!(spec.pext, b'S' | b'F' | b'B'), out)
                }
                _ => {
                    let _ = write!(out, "0x{v:x}");
                }
            }
        }
        _ => {
            let v = eval(cx, e);
            if push_int_padded(spec, v, cx.long_size, out) {
                return;
            }
            fmt_int(spec, v, cx.long_size, out);
        }
    }
    pad(out, spec, start);
}

/// The integer conversions records use nearly always (`%u %d %x %08x %-5d`: no precision,
/// `#`, `+` or space flag), written with their padding in one pass. False, writing nothing,
/// for any other spec: [`fmt_int`] then [`pad`] do those (and agree with this, tested).
#[inline]
fn push_int_padded(spec: &Spec, v: i64, long_size: usize, out: &mut String) -> bool {
    if spec.precision.is_some() || spec.alt || spec.plus || spec.space {
        return false;
    }
    let (u, bits) = c_width(spec, v, long_size);
    let mut buf = [0u8; 20];
    let (neg, digits) = match spec.conv {
        b'd' | b'i' => {
            let s = if bits == 64 { v } else { ((u << (64 - bits)) as i64) >> (64 - bits) };
            (s < 0, digits_into::<10>(&mut buf, s.unsigned_abs()))
        }
        b'u' => (false, digits_into::<10>(&mut buf, u)),
        b'x' => (false, digits_into::<16>(&mut buf, u)),
        _ => return false,
    };
    let len = digits.len() + usize::from(neg);
    let fill = spec.width.saturating_sub(len);
    const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
    const SPACES: &str = "                                                                ";
    if fill > ZEROS.len() {
        return false;
    }
    let sign = if neg { "-" } else { "" };
    // ASCII digits.
    let digits = std::str::from_utf8(digits).unwrap_or_default();
    if spec.left {
        out.push_str(sign);
        out.push_str(digits);
        out.push_str(SPACES.get(..fill).unwrap_or_default());
    } else if spec.zero {
        out.push_str(sign);
        out.push_str(ZEROS.get(..fill).unwrap_or_default());
        out.push_str(digits);
    } else {
        out.push_str(SPACES.get(..fill).unwrap_or_default());
        out.push_str(sign);
        out.push_str(digits);
    }
    true
}

/// `v` in base `R` (lowercase), at the end of `buf`: the digits written.
#[inline]
fn digits_into<const R: u64>(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut i = buf.len();
    loop {
        i -= 1;
        if let (Some(slot), Some(d)) = (buf.get_mut(i), DIGITS.get((v % R) as usize)) {
            *slot = *d;
        }
        v /= R;
        if v == 0 || i == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::EventFormat;
    use crate::meta::Symbols;

    fn render(format: &str, payload: &[u8]) -> String {
        let f = EventFormat::parse("t", format).unwrap();
        let p = f.print.as_ref().expect("print fmt parsed");
        let syms = Symbols::parse("ffffffffc0800000 t vcpu_enter_guest\t[kvm]\n".into());
        let cx =
            Ctx { payload, fields: &f.fields, endian: Endian::Little, long_size: 8, syms: &syms };
        let mut out = String::new();
        p.render(&cx, &mut out);
        out
    }

    const HEAD: &str = "name: t\nID: 1\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n";

    #[test]
    fn digits_agree_with_core_fmt() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut values = vec![0, 1, 9, 10, 15, 16, 255, 256, u64::MAX, u64::MAX / 10];
        values.extend((0..64).map(|b| 1u64 << b));
        values.extend((0..64).map(|b| (1u64 << b) - 1));
        for _ in 0..10_000 {
            // xorshift: values of every length, every nibble.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> (x % 64));
        }
        for v in values {
            let (mut hex, mut dec) = (String::new(), String::new());
            push_radix(&mut hex, v, 16);
            push_radix(&mut dec, v, 10);
            assert_eq!((hex, dec), (format!("{v:x}"), format!("{v}")));
        }
    }

    #[test]
    fn one_pass_integers_agree_with_format_then_pad() {
        let values = [
            0i64,
            1,
            -1,
            9,
            10,
            15,
            16,
            255,
            -128,
            65535,
            1 << 31,
            -(1 << 31),
            i64::MAX,
            i64::MIN,
            0x1234_5678_9abc,
        ];
        let mut n = 0;
        for conv in [b'd', b'i', b'u', b'x', b'X', b'o'] {
            for len in [-2i8, -1, 0, 1, 2] {
                for width in [0usize, 1, 2, 5, 8, 16, 19, 21, 64, 65] {
                    for (left, zero) in [(false, false), (true, false), (false, true), (true, true)]
                    {
                        for long_size in [4, 8] {
                            let spec = Spec {
                                left,
                                zero,
                                alt: false,
                                plus: false,
                                space: false,
                                width,
                                precision: None,
                                len,
                                conv,
                                pext: 0,
                            };
                            for &v in &values {
                                let mut fast = String::from("ab");
                                if !push_int_padded(&spec, v, long_size, &mut fast) {
                                    continue;
                                }
                                let mut slow = String::from("ab");
                                fmt_int(&spec, v, long_size, &mut slow);
                                pad(&mut slow, &spec, 2);
                                assert_eq!(fast, slow, "{spec:?} {v} long {long_size}");
                                n += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(n > 4000, "{n} cases compared");
    }

    #[test]
    fn symbolic_flags_ternary_and_widths() {
        let fmt = format!(
            "{HEAD}\tfield:unsigned int reason;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:int errno;\toffset:12;\tsize:4;\tsigned:1;\n\tfield:unsigned long state;\toffset:16;\tsize:8;\tsigned:0;\n\nprint fmt: \"reason %s (%d) st=%s %08x|%-4d|%5s|%#lx\", REC->errno < 0 ? (REC->errno == -4 ? \"restart\" : \"error\") : __print_symbolic(REC->reason, {{ 2, \"KVM_EXIT_\" \"IO\" }}, {{ 6, \"MMIO\" }}), REC->errno < 0 ? -REC->errno : REC->reason, REC->state ? __print_flags(REC->state, \"|\", {{ 1, \"S\" }}, {{ 2, \"D\" }}) : \"R\", REC->reason, REC->errno, \"ab\", REC->state\n"
        );
        let mut p = vec![0u8; 24];
        p[8..12].copy_from_slice(&2u32.to_le_bytes());
        p[16..24].copy_from_slice(&3u64.to_le_bytes());
        assert_eq!(render(&fmt, &p), "reason KVM_EXIT_IO (2) st=S|D 00000002|0   |   ab|0x3");
        p[12..16].copy_from_slice(&(-4i32).to_le_bytes());
        p[8..12].copy_from_slice(&9u32.to_le_bytes());
        p[16..24].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(render(&fmt, &p), "reason restart (4) st=R 00000009|-4  |   ab|0");
    }

    #[test]
    fn hex_dynamic_strings_and_symbols() {
        let fmt = format!(
            "{HEAD}\tfield:unsigned long func;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:__data_loc char[] name;\toffset:16;\tsize:4;\tsigned:0;\n\tfield:u8 insn[4];\toffset:20;\tsize:4;\tsigned:0;\n\nprint fmt: \"%ps %pS %s [%s] %lx\", (void *)REC->func, (void *)REC->func, __get_str(name), __print_hex(REC->insn, 3), REC->func\n"
        );
        let mut p = vec![0u8; 32];
        p[8..16].copy_from_slice(&0xffff_ffff_c080_0010u64.to_le_bytes());
        p[16..20].copy_from_slice(&(24u32 | (4 << 16)).to_le_bytes());
        p[20..24].copy_from_slice(&[0x0f, 0xa2, 0x90, 0xff]);
        p[24..28].copy_from_slice(b"abc\0");
        assert_eq!(
            render(&fmt, &p),
            "vcpu_enter_guest [kvm] vcpu_enter_guest+0x10 [kvm] abc [0f a2 90] ffffffffc0800010"
        );
    }

    #[test]
    fn unsupported_print_fmt_falls_back() {
        let fmt = format!("{HEAD}\nprint fmt: \"%n\", REC->x\n");
        let f = EventFormat::parse("t", &fmt).unwrap();
        assert!(f.print.is_none());
    }
}
