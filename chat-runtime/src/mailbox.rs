//! A bounded queue that holds no buffer while it is empty, for the queues
//! every connection keeps (its bus subscription, its frames in and out, its
//! commands). A tokio channel allocates a block of 32 slots when it is made
//! and keeps it — 1.3 to 4 KiB per queue, for every idle connection. Here
//! the queue grows on the first item and is let go when drained, so an idle
//! queue costs one small shared record.
//!
//! Many senders, one receiver. A full queue refuses `try_send` (the bus then
//! cuts a slow subscriber off) and makes `send` wait for room.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

struct State<T> {
    items: VecDeque<T>,
    capacity: usize,
    senders: usize,
    receiver: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Wakes the receiver: an item arrived, or the last sender left.
    arrived: Notify,
    /// Wakes [`Sender::closed`]: the receiver left.
    gone: Notify,
    /// Wakes senders waiting in [`Sender::send`]: room, or the receiver left.
    room: Notify,
}

impl<T> Shared<T> {
    fn state(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A queue of at most `capacity` items (at least one).
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            senders: 1,
            receiver: true,
        }),
        arrived: Notify::new(),
        gone: Notify::new(),
        room: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// Puts items in the queue.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `item`; gives it back when the queue is full or the receiver
    /// is gone.
    pub fn try_send(&self, item: T) -> Result<(), T> {
        let mut s = self.shared.state();
        if !s.receiver || s.items.len() >= s.capacity {
            return Err(item);
        }
        s.items.push_back(item);
        drop(s);
        self.shared.arrived.notify_one();
        Ok(())
    }

    /// Queues `item`, waiting for room; gives it back when the receiver is
    /// gone.
    pub async fn send(&self, item: T) -> Result<(), T> {
        let mut item = item;
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(back) if self.is_closed() => return Err(back),
                Err(back) => item = back,
            }
            room.await;
        }
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        !self.shared.state().receiver
    }

    /// Resolves once the receiver is gone.
    pub async fn closed(&self) {
        loop {
            let gone = self.shared.gone.notified();
            tokio::pin!(gone);
            gone.as_mut().enable();
            if self.is_closed() {
                return;
            }
            gone.await;
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.state().senders += 1;
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut s = self.shared.state();
        s.senders -= 1;
        let last = s.senders == 0;
        drop(s);
        if last {
            self.shared.arrived.notify_one();
        }
    }
}

/// Takes items from the queue, oldest first.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mailbox::Receiver")
    }
}

impl<T> Receiver<T> {
    /// The next item; `None` once the queue is empty and every sender is gone.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            {
                let mut s = self.shared.state();
                if let Some(item) = take(&mut s) {
                    drop(s);
                    self.shared.room.notify_waiters();
                    return Some(item);
                }
                if s.senders == 0 {
                    return None;
                }
            }
            // A permit stored by a `try_send` between the check and here
            // makes this return at once: nothing is missed.
            self.shared.arrived.notified().await;
        }
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Option<T> {
        let item = take(&mut self.shared.state());
        self.shared.room.notify_waiters();
        item
    }

    /// Moves up to `limit` queued items into `buf`; how many.
    pub fn try_recv_many(&mut self, buf: &mut Vec<T>, limit: usize) -> usize {
        let mut s = self.shared.state();
        let n = s.items.len().min(limit);
        buf.extend(s.items.drain(..n));
        if s.items.is_empty() {
            s.items = VecDeque::new();
        }
        drop(s);
        if n > 0 {
            self.shared.room.notify_waiters();
        }
        n
    }

    /// Whether no item is queued.
    pub fn is_empty(&self) -> bool {
        self.shared.state().items.is_empty()
    }
}

/// Pops the oldest item; a queue drained empty lets its buffer go.
fn take<T>(s: &mut State<T>) -> Option<T> {
    let item = s.items.pop_front()?;
    if s.items.is_empty() {
        s.items = VecDeque::new();
    }
    Some(item)
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut s = self.shared.state();
        s.receiver = false;
        s.items = VecDeque::new();
        drop(s);
        self.shared.gone.notify_waiters();
        self.shared.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn items_arrive_in_order_until_the_senders_are_gone() {
        let (tx, mut rx) = channel(4);
        let tx2 = tx.clone();
        for i in 0..3 {
            tx.try_send(i).unwrap();
        }
        tx2.try_send(3).unwrap();
        assert_eq!(tx.try_send(4), Err(4), "full at capacity");
        for i in 0..4 {
            assert_eq!(rx.recv().await, Some(i));
        }
        assert_eq!(rx.try_recv(), None);
        drop((tx, tx2));
        assert_eq!(rx.recv().await, None, "ended");
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_an_item_sent_from_elsewhere() {
        let (tx, mut rx) = channel(1);
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.try_send("hi").unwrap();
            tx
        });
        assert_eq!(rx.recv().await, Some("hi"));
        drop(sender.await.unwrap());
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_full_queue_makes_send_wait_for_room() {
        let (tx, mut rx) = channel(2);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        let third = tokio::spawn(async move {
            tx.send(3).await.unwrap();
            tx
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!third.is_finished(), "waits while full");
        let mut got = Vec::new();
        assert_eq!(rx.try_recv_many(&mut got, 8), 2);
        assert!(rx.is_empty());
        assert_eq!(rx.shared.state().items.capacity(), 0, "drained: no buffer");
        let tx = third.await.unwrap();
        assert_eq!(rx.recv().await, Some(3));
        drop(rx);
        assert_eq!(tx.send(4).await, Err(4), "no receiver: refused");
        assert_eq!(got, [1, 2]);
    }

    #[tokio::test]
    async fn a_drained_queue_holds_no_buffer_and_a_dropped_receiver_refuses() {
        let (tx, mut rx) = channel(8);
        tx.try_send(1).unwrap();
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.shared.state().items.capacity(), 0);
        let waiting = tokio::spawn(async move {
            tx.closed().await;
            tx
        });
        drop(rx);
        let tx = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("closed resolves")
            .unwrap();
        assert!(tx.is_closed());
        assert_eq!(tx.try_send(2), Err(2));
    }
}
