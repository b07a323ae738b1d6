//! kvm-unit-tests' `unittests.cfg`: `[name]` sections of `key = value` lines, `#`
//! comments, and `"""`-quoted values that span lines (`docs/unittests.txt` in the
//! kvm-unit-tests tree describes the format; `scripts/common.bash` reads it).
//!
//! exitscope uses it to run the `vmexit_*` entries with the arguments and vCPU counts
//! kvm-unit-tests' own runner would give them.

use std::collections::BTreeMap;
use std::time::Duration;

/// One test entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// The section name (`vmexit_cpuid`).
    pub name: String,
    /// 1-based line of the `[name]` header.
    pub line: usize,
    /// `file =`: the binary, relative to the arch directory.
    pub file: String,
    /// `smp =`: number of vCPUs (default 1); `$MAX_SMP` is kept as written.
    pub smp: String,
    /// `test_args =`, split into words as the shell would (quotes removed).
    pub test_args: Vec<String>,
    /// `qemu_params =` (or the older `extra_params =`), verbatim.
    pub qemu_params: String,
    /// `groups =`, split on whitespace.
    pub groups: Vec<String>,
    /// `timeout =`, parsed (`90`, `90s`, `2m`, ...).
    pub timeout: Option<Duration>,
    /// Every other key (`arch`, `accel`, `check`, `disabled_if`, ...), verbatim.
    pub other: BTreeMap<String, String>,
}

impl Entry {
    /// The vCPU count, if `smp` is a plain number.
    pub fn smp_count(&self) -> Option<u32> {
        if self.smp.is_empty() { Some(1) } else { self.smp.parse().ok() }
    }
}

/// A line of the file that is not in the format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CfgError {
    /// 1-based line number.
    pub line: usize,
    /// What was expected.
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> CfgError {
    CfgError { line, message: message.into() }
}

/// Parses the whole file.
///
/// # Errors
///
/// [`CfgError`] with the line number: a key before any section, a line that is neither
/// a section, a `key = value` pair nor a comment, an unterminated `"""` value, a bad
/// `timeout`, a section without `file`.
pub fn parse(text: &str) -> Result<Vec<Entry>, CfgError> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    while let Some((n, raw)) = lines.next() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if let Some(prev) = entries.last() {
                check(prev)?;
            }
            if name.trim().is_empty() {
                return Err(err(n, "empty section name"));
            }
            entries.push(Entry { name: name.trim().to_string(), line: n, ..Entry::default() });
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(n, format!("expected `[name]` or `key = value`, found {line:?}")));
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(err(n, format!("expected a key before `=`, found {key:?}")));
        }
        let Some(entry) = entries.last_mut() else {
            return Err(err(n, format!("`{key}` outside any `[name]` section")));
        };
        let mut value = value.trim().to_string();
        if let Some(rest) = value.strip_prefix("\"\"\"") {
            value = triple_quoted(rest, n, &mut lines)?;
        } else {
            value = strip_comment(&value).to_string();
        }
        match key {
            "file" => entry.file = value,
            "smp" => entry.smp = value,
            "test_args" => entry.test_args = shell_words(&value).map_err(|m| err(n, m))?,
            "qemu_params" | "extra_params" => entry.qemu_params = value,
            "groups" => entry.groups = value.split_whitespace().map(str::to_string).collect(),
            "timeout" => entry.timeout = Some(parse_timeout(&value).map_err(|m| err(n, m))?),
            _ => {
                entry.other.insert(key.to_string(), value);
            }
        }
    }
    if let Some(last) = entries.last() {
        check(last)?;
    }
    Ok(entries)
}

fn check(entry: &Entry) -> Result<(), CfgError> {
    if entry.file.is_empty() {
        return Err(err(entry.line, format!("section [{}] has no `file =`", entry.name)));
    }
    Ok(())
}

/// A `#` starts a comment unless it is inside quotes.
fn strip_comment(value: &str) -> &str {
    let (mut single, mut double) = (false, false);
    for (i, c) in value.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double => return value[..i].trim_end(),
            _ => {}
        }
    }
    value
}

fn triple_quoted<'a>(
    first: &str,
    start: usize,
    lines: &mut impl Iterator<Item = (usize, &'a str)>,
) -> Result<String, CfgError> {
    if let Some(end) = first.find("\"\"\"") {
        return Ok(first[..end].trim().to_string());
    }
    let mut value = first.trim().trim_end_matches('\\').trim().to_string();
    for (_, raw) in lines.by_ref() {
        if let Some(end) = raw.find("\"\"\"") {
            push_word(&mut value, raw[..end].trim());
            return Ok(value);
        }
        push_word(&mut value, raw.trim().trim_end_matches('\\').trim());
    }
    Err(err(start, "`\"\"\"` value is never closed"))
}

fn push_word(value: &mut String, part: &str) {
    if !part.is_empty() {
        if !value.is_empty() {
            value.push(' ');
        }
        value.push_str(part);
    }
}

/// Splits `s` into words like a POSIX shell (single and double quotes, backslash escapes),
/// without expansions.
///
/// # Errors
///
/// An unterminated quote.
pub fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated ' in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => word.extend(chars.next()),
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated \" in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// A `timeout(1)` duration: a number with an optional `s`, `m`, `h` or `d` suffix.
///
/// # Errors
///
/// Anything else.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let scale = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86400.0,
        _ => return Err(format!("timeout {s:?}: unknown unit {unit:?} (use s, m, h or d)")),
    };
    let v: f64 = num.parse().map_err(|_| format!("timeout {s:?} is not a number"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("timeout {s:?} must be a non-negative number"));
    }
    Duration::try_from_secs_f64(v * scale).map_err(|e| format!("timeout {s:?}: {e}"))
}

/// The entries that run `vmexit.flat`-style benchmarks: named `vmexit_*` or in the
/// `vmexit` group.
pub fn vmexit_entries(entries: &[Entry]) -> Vec<&Entry> {
    entries
        .iter()
        .filter(|e| e.name.starts_with("vmexit_") || e.groups.iter().any(|g| g == "vmexit"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written for these tests in the documented format (not kvm-unit-tests' own file).
    const CFG: &str = "\
# a comment
[plain]
file = plain.flat

[vmexit_one]
file = vmexit.flat
test_args = 'cpuid'
groups = vmexit fast

[vmexit_two]
file = vmexit.flat
smp = 2
test_args = \"ipi\" ipi_halt   # trailing comment
qemu_params = -machine pit=off
timeout = 2m
groups = vmexit
arch = x86_64

[multi]
file = multi.flat
smp = $MAX_SMP
qemu_params = \"\"\"-cpu max \\
   -m 256\"\"\"
";

    #[test]
    fn parses_sections_keys_quotes_and_comments() {
        let e = parse(CFG).unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!((e[0].name.as_str(), e[0].file.as_str(), e[0].line), ("plain", "plain.flat", 2));
        assert_eq!(e[0].smp_count(), Some(1));
        assert_eq!(e[1].test_args, ["cpuid"]);
        assert_eq!(e[1].groups, ["vmexit", "fast"]);
        assert_eq!(e[2].smp_count(), Some(2));
        assert_eq!(e[2].test_args, ["ipi", "ipi_halt"]);
        assert_eq!(e[2].qemu_params, "-machine pit=off");
        assert_eq!(e[2].timeout, Some(Duration::from_secs(120)));
        assert_eq!(e[2].other.get("arch").map(String::as_str), Some("x86_64"));
        assert_eq!(e[3].smp_count(), None);
        assert_eq!(e[3].qemu_params, "-cpu max -m 256");
        let names: Vec<&str> = vmexit_entries(&e).iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["vmexit_one", "vmexit_two"]);
    }

    #[test]
    fn errors_carry_the_line_number() {
        assert_eq!(parse("file = x\n").unwrap_err().line, 1);
        assert_eq!(parse("[a]\nfile = a\nnonsense\n").unwrap_err().line, 3);
        assert_eq!(parse("[a]\nfile = a\n\n[b]\nsmp = 1\n").unwrap_err().line, 4);
        assert_eq!(parse("[a]\nfile = a\ntimeout = soon\n").unwrap_err().line, 3);
        assert_eq!(parse("[a]\nfile = a\nqemu_params = \"\"\"-m 1\n").unwrap_err().line, 3);
        assert_eq!(parse("[a]\nfile = a\ntest_args = 'x\n").unwrap_err().line, 3);
        assert_eq!(parse("[]\n").unwrap_err().line, 1);
    }

    #[test]
    fn shell_words_and_timeouts() {
        assert_eq!(shell_words(r#"a 'b c' "d\"e" f\ g"#).unwrap(), ["a", "b c", "d\"e", "f g"]);
        assert_eq!(shell_words("  ").unwrap(), Vec::<String>::new());
        assert_eq!(shell_words("''").unwrap(), [""]);
        assert_eq!(parse_timeout("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_timeout("1.5h").unwrap(), Duration::from_secs(5400));
        assert!(parse_timeout("5x").is_err());
        assert!(parse_timeout("-1").is_err());
    }
}
