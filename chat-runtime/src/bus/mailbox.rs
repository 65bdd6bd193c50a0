//! A subscriber's bounded queue of events that holds no buffer while it is
//! empty. A tokio channel allocates a block of 32 slots when it is made and
//! keeps it: about 2.5 KiB of envelopes for every idle session. Here the
//! queue grows on the first event and is let go when drained, so an idle
//! subscription costs one small shared record.
//!
//! Many senders, one receiver. A full queue refuses (`try_send`): the bus
//! then cuts the subscriber off rather than wait for it.

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
        take(&mut self.shared.state())
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
