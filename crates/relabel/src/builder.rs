//! A label-set builder that behaves like Prometheus's `labels.Builder`, including the order in
//! which `Range` visits labels (unchanged base labels first, then changed ones in the order
//! they were first set). `labelmap` results depend on that order when two labels map to the
//! same name.

use osprey_model::{Label, Labels};

pub(crate) struct Builder {
    base: Labels,
    del: Vec<String>,
    add: Vec<Label>,
}

impl Builder {
    pub(crate) fn new(base: Labels) -> Builder {
        Builder { base, del: Vec::new(), add: Vec::new() }
    }

    /// The current value, `""` when absent (as in Prometheus, absent and empty are the same).
    pub(crate) fn get(&self, name: &str) -> &str {
        if let Some(l) = self.add.iter().find(|l| l.name == name) {
            return &l.value;
        }
        if self.del.iter().any(|d| d == name) {
            return "";
        }
        self.base.get(name).unwrap_or("")
    }

    /// Sets a label; an empty value deletes it.
    pub(crate) fn set(&mut self, name: &str, value: &str) {
        if value.is_empty() {
            self.del(name);
            return;
        }
        match self.add.iter_mut().find(|l| l.name == name) {
            Some(l) => value.clone_into(&mut l.value),
            None => self.add.push(Label::new(name, value)),
        }
    }

    pub(crate) fn del(&mut self, name: &str) {
        self.add.retain(|l| l.name != name);
        self.del.push(name.to_string());
    }

    /// The current labels in Prometheus's `Range` order, as a snapshot that later changes do
    /// not affect.
    pub(crate) fn snapshot(&self) -> Vec<Label> {
        let unchanged =
            self.base.iter().filter(|l| !self.del.contains(&l.name) && !self.add.iter().any(|a| a.name == l.name));
        unchanged.chain(self.add.iter()).cloned().collect()
    }

    pub(crate) fn build(self) -> Labels {
        let untouched = self.del.is_empty() && self.add.is_empty();
        if untouched {
            return self.base;
        }
        Labels::from_pairs(self.snapshot().into_iter().map(|l| (l.name, l.value)))
    }
}
