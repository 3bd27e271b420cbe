//! Key storage of the hash-based maps (`HASH`, `SOCKHASH`, `HASH_OF_MAPS`):
//! a slab of fixed-size keys with a lookup index. Element slots are stable
//! while the element lives (a program's pointer to a value stays valid, as
//! with the kernel's preallocated elements) and iteration is in slot order,
//! so dumps are deterministic.

use rustc_hash::FxHashMap;

#[derive(Clone, Debug, Default)]
pub(crate) struct KeySlab {
    key_size: usize,
    index: FxHashMap<Box<[u8]>, u32>,
    keys: Vec<u8>,
    live: Vec<bool>,
    free: Vec<u32>,
}

impl KeySlab {
    pub(crate) fn new(key_size: usize) -> Self {
        KeySlab {
            key_size,
            ..Default::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn find(&self, key: &[u8]) -> Option<u32> {
        self.index.get(key).copied()
    }

    /// Inserts a new key (the caller checked it is absent and there is
    /// room); returns its slot.
    pub(crate) fn insert(&mut self, key: &[u8]) -> u32 {
        let slot = match self.free.pop() {
            Some(s) => {
                let at = s as usize * self.key_size;
                self.keys[at..at + self.key_size].copy_from_slice(key);
                self.live[s as usize] = true;
                s
            }
            None => {
                self.keys.extend_from_slice(key);
                self.live.push(true);
                (self.live.len() - 1) as u32
            }
        };
        self.index.insert(key.into(), slot);
        slot
    }

    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<u32> {
        let slot = self.index.remove(key)?;
        self.live[slot as usize] = false;
        self.free.push(slot);
        Some(slot)
    }

    /// Number of slots ever allocated (live or free).
    pub(crate) fn capacity(&self) -> usize {
        self.live.len()
    }

    pub(crate) fn key(&self, slot: u32) -> &[u8] {
        let at = slot as usize * self.key_size;
        &self.keys[at..at + self.key_size]
    }

    /// Live slots in slot order.
    pub(crate) fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.live
            .iter()
            .enumerate()
            .filter(|(_, &l)| l)
            .map(|(i, _)| i as u32)
    }
}
