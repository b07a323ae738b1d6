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

/// Function interner: (name, module) → [`FuncId`].
#[derive(Debug, Default, Clone)]
pub struct FuncTable {
    // name → the (module, id) pairs seen with that name; almost always one.
    by_name: FxHashMap<Box<str>, ModuleIds>,
    funcs: Vec<FuncInfo>,
}

impl FuncTable {
    /// The id of `f`, interning it on first sight.
    pub fn intern(&mut self, f: Func<'_>) -> FuncId {
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
