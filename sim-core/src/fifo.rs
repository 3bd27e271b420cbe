//! A FIFO in fixed-size chunks whose emptied chunks go back to a pool
//! shared by many FIFOs, last in first out.
//!
//! Why not a `VecDeque`: a ring buffer keeps the capacity of its peak and
//! cycles through all of it, so after a load peak every push lands on a cold
//! cache line. Here a FIFO holds only the chunks its current contents need,
//! and the chunk a push takes from the pool is the one most recently
//! emptied — just read, still in cache. Reads and writes are sequential
//! within a chunk.

use std::collections::VecDeque;

/// Elements per chunk.
pub const CHUNK: usize = 64;

/// One chunk: filled once from the front to [`CHUNK`] elements, read once
/// from `head`, then recycled (no ring arithmetic).
#[derive(Debug)]
struct Chunk<T> {
    items: Vec<Option<T>>,
    /// The next element to read; `items[..head]` are taken.
    head: usize,
}

impl<T> Chunk<T> {
    fn new() -> Self {
        Chunk {
            items: Vec::with_capacity(CHUNK),
            head: 0,
        }
    }
}

/// Emptied chunks, shared by the FIFOs that push and pop through it.
#[derive(Debug)]
pub struct ChunkPool<T> {
    spare: Vec<Chunk<T>>,
}

impl<T> Default for ChunkPool<T> {
    fn default() -> Self {
        ChunkPool { spare: Vec::new() }
    }
}

impl<T> ChunkPool<T> {
    /// Chunks waiting for reuse.
    pub fn spare_chunks(&self) -> usize {
        self.spare.len()
    }

    /// Frees the spare chunks.
    pub fn clear(&mut self) {
        self.spare.clear();
    }
}

/// A first-in-first-out queue in chunks (see the module docs).
#[derive(Debug)]
pub struct ChunkedFifo<T> {
    /// Each holds at least one unread element.
    chunks: VecDeque<Chunk<T>>,
}

impl<T> Default for ChunkedFifo<T> {
    fn default() -> Self {
        ChunkedFifo {
            chunks: VecDeque::new(),
        }
    }
}

impl<T> ChunkedFifo<T> {
    /// True if the FIFO holds nothing.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Chunks in use.
    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }

    /// The oldest element.
    #[inline]
    pub fn front(&self) -> Option<&T> {
        self.chunks.front().and_then(|c| c.items[c.head].as_ref())
    }

    /// The newest element.
    #[inline]
    pub fn back(&self) -> Option<&T> {
        self.chunks
            .back()
            .and_then(|c| c.items.last())
            .and_then(Option::as_ref)
    }

    /// Appends `value`, taking a chunk from `pool` when the last is full.
    #[inline(always)]
    pub fn push_back(&mut self, value: T, pool: &mut ChunkPool<T>) {
        match self.chunks.back_mut() {
            Some(c) if c.items.len() < CHUNK => c.items.push(Some(value)),
            _ => self.push_to_new_chunk(value, pool),
        }
        debug_assert!(self.chunks.back().is_some_and(|c| c.items.len() <= CHUNK));
    }

    /// [`ChunkedFifo::push_back`] when the last chunk is full (or none).
    #[inline(never)]
    fn push_to_new_chunk(&mut self, value: T, pool: &mut ChunkPool<T>) {
        let mut c = pool.spare.pop().unwrap_or_else(Chunk::new);
        c.items.push(Some(value));
        self.chunks.push_back(c);
    }

    /// Removes the oldest element; a chunk read to its end goes back to
    /// `pool`, so a non-empty FIFO never holds an empty chunk.
    #[inline]
    pub fn pop_front(&mut self, pool: &mut ChunkPool<T>) -> Option<T> {
        let c = self.chunks.front_mut()?;
        let v = c.items[c.head].take();
        c.head += 1;
        if c.head == c.items.len() {
            let mut c = self.chunks.pop_front().expect("front exists");
            c.items.clear();
            c.head = 0;
            pool.spare.push(c);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIFO order across chunk boundaries, and chunks are recycled: a FIFO
    /// that stays about `n` long holds about `n / CHUNK` chunks however
    /// many elements pass through it.
    #[test]
    fn fifo_order_and_chunk_recycling() {
        let mut pool = ChunkPool::default();
        let mut f = ChunkedFifo::default();
        let n = 5 * CHUNK as u64 + 3;
        for i in 0..n {
            f.push_back(i, &mut pool);
        }
        assert_eq!((f.front(), f.back()), (Some(&0), Some(&(n - 1))));
        for i in 0..100 * n {
            assert_eq!(f.pop_front(&mut pool), Some(i));
            f.push_back(n + i, &mut pool);
        }
        let chunks = f.chunks() + pool.spare_chunks();
        assert!(chunks <= 7, "{chunks} chunks for a FIFO of {n}");
        for i in 100 * n..101 * n {
            assert_eq!(f.pop_front(&mut pool), Some(i));
        }
        assert!(f.is_empty() && f.front().is_none());
        assert_eq!(f.pop_front(&mut pool), None);
        // Refilled from the pool, not from new allocations.
        f.push_back(7, &mut pool);
        assert_eq!(f.chunks() + pool.spare_chunks(), chunks);
    }

    /// Two FIFOs sharing one pool keep their own elements.
    #[test]
    fn fifos_sharing_a_pool_stay_separate() {
        let mut pool = ChunkPool::default();
        let (mut a, mut b) = (ChunkedFifo::default(), ChunkedFifo::default());
        for i in 0..300u32 {
            a.push_back(i, &mut pool);
            if i % 3 == 0 {
                b.push_back(1000 + i, &mut pool);
            }
            if i % 2 == 1 {
                a.pop_front(&mut pool);
            }
        }
        let rest_a: Vec<u32> = std::iter::from_fn(|| a.pop_front(&mut pool)).collect();
        let rest_b: Vec<u32> = std::iter::from_fn(|| b.pop_front(&mut pool)).collect();
        assert_eq!(rest_a, (150..300).collect::<Vec<u32>>());
        assert_eq!(
            rest_b,
            (0..300).step_by(3).map(|i| 1000 + i).collect::<Vec<u32>>()
        );
    }
}
