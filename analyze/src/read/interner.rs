//! Strings numbered densely, in one buffer.
//!
//! The analysis' per-user aggregate (`read::user_state`) holds every live request of every user
//! of a partition: experiment, variant and segment names stored with each would cost more than the
//! request's own figures. Here a name costs its bytes, an end offset and a table slot once, and is a
//! `u32` everywhere else.

use std::hash::BuildHasher;

use hashbrown::HashTable;

/// A fixed seed: numbers, fingerprints and table layouts are the same in every run.
pub fn hasher() -> foldhash::quality::FixedState {
    foldhash::quality::FixedState::with_seed(0x5EED_5A11_F00D_CAFE)
}

/// Strings numbered densely in order of first sight, stored in one buffer (a name costs its bytes
/// and about 13 more, not a `String` of its own).
#[derive(Debug, Default)]
pub struct Interner {
    /// Every string, one after another (a `String`, so slicing it needs no UTF-8 check).
    text: String,
    /// End of each string in `text`.
    ends: Vec<usize>,
    table: HashTable<u32>,
    /// The length of the longest string, in bytes.
    longest: usize,
}

impl Interner {
    fn hash(text: &str) -> u64 {
        hasher().hash_one(text.as_bytes())
    }

    /// The number of `text`, given it one if it has none.
    pub fn intern(&mut self, text: &str) -> u32 {
        let hash = Self::hash(text);
        if let Some(&id) = self
            .table
            .find(hash, |&id| self.bytes_of(id) == text.as_bytes())
        {
            return id;
        }
        let id = self.ends.len() as u32;
        self.text.push_str(text);
        self.ends.push(self.text.len());
        self.longest = self.longest.max(text.len());
        let (all, ends) = (&self.text, &self.ends);
        self.table.insert_unique(hash, id, |&id| {
            hasher().hash_one(Self::range(all, ends, id).as_bytes())
        });
        id
    }

    /// The number of `text`, if it has one.
    pub fn find(&self, text: &str) -> Option<u32> {
        self.table
            .find(Self::hash(text), |&id| self.bytes_of(id) == text.as_bytes())
            .copied()
    }

    /// The string numbered `id`.
    pub fn get(&self, id: u32) -> &str {
        Self::range(&self.text, &self.ends, id)
    }

    fn bytes_of(&self, id: u32) -> &[u8] {
        self.get(id).as_bytes()
    }

    fn range<'a>(all: &'a str, ends: &[usize], id: u32) -> &'a str {
        let id = id as usize;
        let start = if id == 0 { 0 } else { ends[id - 1] };
        // Only whole `&str`s are appended, so every range lies on character boundaries.
        &all[start..ends[id]]
    }

    /// The length in bytes of the longest string numbered.
    pub fn longest(&self) -> usize {
        self.longest
    }

    /// How many strings are numbered.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Heap bytes held (for a memory pool's accounting).
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * 8 + self.table.capacity() * 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interner_numbers_strings_densely_and_finds_them_again() {
        let mut names = Interner::default();
        let ids: Vec<u32> = ["b", "a", "b", "", "c"]
            .iter()
            .map(|s| names.intern(s))
            .collect();
        assert_eq!(ids, vec![0, 1, 0, 2, 3]);
        assert_eq!((names.get(0), names.get(2), names.get(3)), ("b", "", "c"));
        assert_eq!(names.find("a"), Some(1));
        assert_eq!(names.find("d"), None);
        assert_eq!(names.len(), 4);
        assert_eq!(names.longest(), 1);
        names.intern("été");
        assert_eq!((names.get(4), names.longest()), ("été", 5));
    }
}
