//! The shard's chat cache: one lock per chat, so one chat's commands run one
//! at a time while different chats proceed in parallel; bounded, dropping
//! the least recently used idle chats. It knows nothing of sequencing: a
//! slot holds whatever state the shard loads into it (`None` until loaded).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::model::ChatId;

/// One chat's state behind its lock.
pub type Slot<T> = Arc<tokio::sync::Mutex<Option<T>>>;

/// Chats whose state a shard keeps in memory at most; past it, the least
/// recently used idle ones are dropped (the next command reloads them).
pub const MAX_CACHED_CHATS: usize = 100_000;

/// A slot and when it was last used.
struct Entry<T> {
    slot: Slot<T>,
    /// On the cache's use counter.
    used: u64,
}

/// The slots of the chats a shard has used.
pub struct Slots<T> {
    map: Mutex<HashMap<ChatId, Entry<T>>>,
    /// Counts chat uses: the order in which idle chats are dropped.
    uses: AtomicU64,
    /// At most this many chats are cached.
    capacity: usize,
}

impl<T> Slots<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            uses: AtomicU64::new(0),
            capacity: capacity.max(1),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<ChatId, Entry<T>>> {
        self.map.lock().expect("chat map")
    }

    /// `chat`'s slot, made on first use; marks it used now. Making one in a
    /// full cache first drops idle chats.
    pub fn slot(&self, chat: ChatId) -> Slot<T> {
        let used = self.uses.fetch_add(1, Ordering::Relaxed);
        let mut map = self.map();
        if map.len() >= self.capacity && !map.contains_key(&chat) {
            shrink(&mut map, self.capacity);
        }
        let entry = map.entry(chat).or_insert_with(|| Entry {
            slot: Slot::default(),
            used,
        });
        entry.used = used;
        entry.slot.clone()
    }

    /// Chats with a slot.
    pub fn ids(&self) -> Vec<ChatId> {
        self.map().keys().copied().collect()
    }

    /// Drops `chat`'s slot: the next command makes a new one.
    pub fn remove(&self, chat: ChatId) {
        self.map().remove(&chat);
    }

    /// Drops `chat`'s slot if it holds no state and no command waits on it.
    pub fn forget_if_idle(&self, chat: ChatId) {
        let mut map = self.map();
        if map.get(&chat).is_some_and(|e| idle_and_empty(&e.slot)) {
            map.remove(&chat);
        }
    }

    /// Waits for the commands running on `chat` to finish, then drops its
    /// state and slot.
    pub async fn release(&self, chat: ChatId) {
        let slot = self.map().get(&chat).map(|e| e.slot.clone());
        if let Some(slot) = slot {
            slot.lock().await.take();
            self.remove(chat);
        }
    }
}

/// A slot nobody holds or waits on (only the map has it) and with no state.
fn idle_and_empty<T>(slot: &Slot<T>) -> bool {
    Arc::strong_count(slot) == 1 && slot.try_lock().is_ok_and(|st| st.is_none())
}

/// Drops idle chats from a full cache, least recently used first (empty
/// slots before all), down to nine tenths of `capacity`: the scan then runs
/// once per tenth of inserts. Chats with a command running or waiting stay.
fn shrink<T>(map: &mut HashMap<ChatId, Entry<T>>, capacity: usize) {
    let mut idle: Vec<(u64, ChatId)> = map
        .iter()
        .filter(|(_, e)| Arc::strong_count(&e.slot) == 1)
        .filter_map(|(id, e)| {
            let st = e.slot.try_lock().ok()?;
            Some((st.as_ref().map_or(0, |_| e.used), *id))
        })
        .collect();
    let target = capacity - capacity / 10;
    let excess = map.len().saturating_sub(target).min(idle.len());
    if excess == 0 {
        return;
    }
    idle.select_nth_unstable(excess - 1);
    for (_, id) in &idle[..excess] {
        map.remove(id);
    }
}
