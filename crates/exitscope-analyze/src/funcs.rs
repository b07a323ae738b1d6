//! Interned function identities, so call trees store a `u32` per node instead of strings.

use rustc_hash::FxHashMap;

use exitscope_model::{Func, is_interrupt_function};

/// Index of a function in a [`FuncTable`].
pub type FuncId = u32;

/// What is known about one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuncInfo {
    /// Symbol name.
    pub name: String,
    /// Module, if any.
    pub module: Option<String>,
    /// An interrupt entry point (see [`exitscope_model::INTERRUPT_FUNCTIONS`]).
    pub interrupt: bool,
}

impl FuncInfo {
    /// `name [module]`, as the kernel prints it.
    pub fn display(&self) -> String {
        match &self.module {
            Some(m) => format!("{} [{}]", self.name, m),
            None => self.name.clone(),
        }
    }
}

/// The modules a name was seen with, and the id for each.
type ModuleIds = Vec<(Option<Box<str>>, FuncId)>;

/// Slots of [`FuncTable`]'s look-up cache (a power of two).
const CACHE_SLOTS: usize = 512;

/// Function interner: (name, module) → [`FuncId`].
#[derive(Debug, Clone)]
pub struct FuncTable {
    // name → the (module, id) pairs seen with that name; almost always one.
    by_name: FxHashMap<Box<str>, ModuleIds>,
    funcs: Vec<FuncInfo>,
    /// Ids by a cheap fingerprint of the name ([`fingerprint`]), checked against the name
    /// and module: a trace names few functions, over and over, and this spares the hashing
    /// of the whole name and the probing of `by_name` on nearly every call.
    cache: Box<[FuncId; CACHE_SLOTS]>,
}

impl Default for FuncTable {
    fn default() -> Self {
        FuncTable {
            by_name: FxHashMap::default(),
            funcs: Vec::new(),
            cache: Box::new([FuncId::MAX; CACHE_SLOTS]),
        }
    }
}

/// Cache slot of a name: from its length and its first and last (up to) eight bytes.
#[inline(always)]
fn fingerprint(name: &[u8]) -> usize {
    let n = name.len();
    let (head, tail) = if n >= 8 {
        (word(name, 0), word(name, n - 8))
    } else {
        (name.iter().fold(0u64, |h, &c| (h << 8) | u64::from(c)), 0)
    };
    let h = (head ^ tail.rotate_left(29) ^ (n as u64)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 55) as usize % CACHE_SLOTS
}

/// The eight bytes of `s` from `i` (a fixed-size load, no `memcpy` call).
#[inline(always)]
fn word(s: &[u8], i: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&s[i..i + 8]);
    u64::from_le_bytes(x)
}

/// `a == b` inline, eight bytes at a time (names are short: a call to `memcmp` costs more
/// than the comparison).
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

impl FuncTable {
    /// The id of `f`, interning it on first sight.
    #[inline]
    pub fn intern(&mut self, f: Func<'_>) -> FuncId {
        let slot = fingerprint(f.name.as_bytes());
        if let Some(info) = self.funcs.get(self.cache[slot] as usize)
            && same(info.name.as_bytes(), f.name.as_bytes())
            && match (&info.module, f.module) {
                (Some(a), Some(b)) => same(a.as_bytes(), b.as_bytes()),
                (None, None) => true,
                _ => false,
            }
        {
            return self.cache[slot];
        }
        let id = self.intern_slow(f);
        self.cache[slot] = id;
        id
    }

    fn intern_slow(&mut self, f: Func<'_>) -> FuncId {
        if let Some(v) = self.by_name.get(f.name)
            && let Some(&(_, id)) = v.iter().find(|(m, _)| m.as_deref() == f.module)
        {
            return id;
        }
        let id = FuncId::try_from(self.funcs.len()).unwrap_or(FuncId::MAX);
        self.funcs.push(FuncInfo {
            name: f.name.to_string(),
            module: f.module.map(str::to_string),
            interrupt: is_interrupt_function(f.name),
        });
        self.by_name.entry(f.name.into()).or_default().push((f.module.map(Into::into), id));
        id
    }

    /// Look `f` up without interning.
    pub fn find(&self, f: Func<'_>) -> Option<FuncId> {
        self.by_name.get(f.name)?.iter().find(|(m, _)| m.as_deref() == f.module).map(|&(_, id)| id)
    }

    /// Look up by name alone (any module): the first function with that name.
    pub fn find_name(&self, name: &str) -> Option<FuncId> {
        self.by_name.get(name)?.first().map(|&(_, id)| id)
    }

    /// Information about `id`.
    ///
    /// # Panics
    /// If `id` did not come from this table.
    pub fn get(&self, id: FuncId) -> &FuncInfo {
        &self.funcs[id as usize]
    }

    /// Number of distinct functions.
    pub fn len(&self) -> usize {
        self.funcs.len()
    }

    /// True when no function was interned.
    pub fn is_empty(&self) -> bool {
        self.funcs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_comparison_is_equality() {
        let text = "abcdefghijklmnopqrstuvwxyz0123456789_ABCDEFGHIJ";
        for n in 0..text.len() {
            let a = &text.as_bytes()[..n];
            assert!(same(a, a));
            for i in 0..n {
                let mut b = a.to_vec();
                b[i] ^= 1;
                assert!(!same(a, &b), "{n} {i}");
            }
            assert!(!same(a, &text.as_bytes()[..n + 1]));
        }
    }

    #[test]
    fn cached_ids_are_the_interned_ids() {
        // Many names (so cache slots are shared), each with and without modules.
        let names: Vec<String> = (0..3000).map(|i| format!("f{i}_x.part.{}", i % 7)).collect();
        let mods = [None, Some("kvm"), Some("kvm_amd")];
        let mut t = FuncTable::default();
        let mut ids = Vec::new();
        for round in 0..3 {
            for (i, n) in names.iter().enumerate() {
                let m = mods[i % 3];
                let id = t.intern(Func::new(n, m));
                let again = t.intern(Func::new(n, mods[(i + 1) % 3]));
                if round == 0 {
                    ids.push((id, again));
                } else {
                    assert_eq!(ids[i], (id, again), "{n}");
                }
                assert_eq!(t.get(id).name, *n);
                assert_eq!(t.get(id).module.as_deref(), m);
                assert_eq!(t.find(Func::new(n, m)), Some(id));
            }
        }
        assert_eq!(t.len(), 2 * names.len());
    }
}
