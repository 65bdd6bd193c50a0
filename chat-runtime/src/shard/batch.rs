//! Batches split by a key and answered in their original order: a device's
//! consecutive sends may go to several chats (one store write each) or to
//! several shards (one request each), and each answer goes back to its
//! item's place.

/// `items` grouped by `key`, groups in the order their keys first appear,
/// each item with its index in `items`.
pub fn split<T, K: PartialEq>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<(K, Vec<(usize, T)>)> {
    let mut groups: Vec<(K, Vec<(usize, T)>)> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let k = key(&item);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, list)) => list.push((i, item)),
            None => groups.push((k, vec![(i, item)])),
        }
    }
    groups
}

/// The answers to `n` items, each given with its item's index, in item
/// order. Every index below `n` must be answered exactly once.
pub fn join<R>(n: usize, answers: impl IntoIterator<Item = (usize, R)>) -> Vec<R> {
    let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
    for (i, r) in answers {
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|r| r.expect("every item answered"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_split_by_key_in_first_seen_order_and_join_back_in_place() {
        let groups = split(vec!["a1", "b1", "a2", "c1", "b2"], |s| s.as_bytes()[0]);
        let keys: Vec<u8> = groups.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, b"abc");
        assert_eq!(groups[0].1, vec![(0, "a1"), (2, "a2")]);
        // Answer each group (here: upper case), as shards would, out of order.
        let answers = groups
            .into_iter()
            .rev()
            .flat_map(|(_, list)| list.into_iter().map(|(i, s)| (i, s.to_uppercase())));
        assert_eq!(join(5, answers), ["A1", "B1", "A2", "C1", "B2"]);
    }

    #[test]
    #[should_panic(expected = "every item answered")]
    fn an_unanswered_item_is_a_bug_not_a_silent_gap() {
        join::<u8>(2, [(0, 1)]);
    }
}
