//! A persistent (copy-on-write) B+ tree of pairs ordered by key bytes.
//!
//! Nodes sit behind `Arc`s: cloning a tree is O(1) (one reference count),
//! and a write copies only the nodes on its path that are shared with a
//! clone (`Arc::make_mut`), so a snapshot taken while the driver keeps
//! applying costs memory in proportion to what changes meanwhile, never a
//! copy of the whole map. Copied nodes share their pairs (`Pair` is
//! reference counted), so a copied leaf costs its item array only.
//!
//! Leaves hold `Item`s (the pair plus its first 16 key bytes inline, so
//! searches compare integers in the node and only equal prefixes look at
//! the key bytes behind the pointer). Branches hold children and, between
//! them, separators: `seps[i]` is a lower bound of every key in
//! `children[i + 1]` and above every key in `children[i]` (a key-only copy
//! of a key, made when a node splits; removing that key leaves it valid).
//! Nodes below a quarter full are merged with or refilled from a sibling
//! on removal.

use std::cmp::Ordering;
use std::sync::Arc;

use super::pair::Pair;

/// Most items in a leaf (its item array is allocated at this capacity).
#[cfg(not(test))]
const LEAF_ITEMS_MAX: usize = 64;
/// Most children of a branch.
#[cfg(not(test))]
const BRANCH_CHILDREN_MAX: usize = 64;
// Small nodes in tests, so a few hundred keys exercise every split, merge
// and refill at several levels.
#[cfg(test)]
const LEAF_ITEMS_MAX: usize = 4;
#[cfg(test)]
const BRANCH_CHILDREN_MAX: usize = 4;
const LEAF_ITEMS_MIN: usize = LEAF_ITEMS_MAX / 4;
const BRANCH_CHILDREN_MIN: usize = if BRANCH_CHILDREN_MAX / 4 < 2 {
    2
} else {
    BRANCH_CHILDREN_MAX / 4
};
/// Items per leaf when built from sorted input: nearly full (the map's
/// memory), with room for a few inserts before the first split.
const BULK_LEAF_ITEMS: usize = LEAF_ITEMS_MAX - LEAF_ITEMS_MAX / 16;
const BULK_BRANCH_CHILDREN: usize = BRANCH_CHILDREN_MAX - BRANCH_CHILDREN_MAX / 16;

/// Bytes of a key kept inline in its item.
const KEY_PREFIX_BYTES: usize = 16;

/// A key to search for, with its inline prefix computed once.
pub(crate) struct Probe<'a> {
    prefix: [u64; 2],
    key: &'a [u8],
}

impl<'a> Probe<'a> {
    pub(crate) fn new(key: &'a [u8]) -> Probe<'a> {
        Probe {
            prefix: prefix_of(key),
            key,
        }
    }
}

/// The first `KEY_PREFIX_BYTES` of a key, zero-padded, as two big-endian
/// integers: comparing them orders keys exactly as their bytes do where
/// they differ, and equal prefixes fall back to the bytes.
fn prefix_of(key: &[u8]) -> [u64; 2] {
    let mut padded = [0u8; KEY_PREFIX_BYTES];
    let inline = key.len().min(KEY_PREFIX_BYTES);
    padded[..inline].copy_from_slice(&key[..inline]);
    let (high, low) = padded.split_at(8);
    [
        u64::from_be_bytes(high.try_into().expect("8 bytes")),
        u64::from_be_bytes(low.try_into().expect("8 bytes")),
    ]
}

/// One entry of a leaf (or a separator of a branch).
#[derive(Clone, Debug)]
pub(crate) struct Item {
    prefix: [u64; 2],
    pub(crate) pair: Pair,
}

impl Item {
    pub(crate) fn new(pair: Pair) -> Item {
        Item {
            prefix: prefix_of(pair.key()),
            pair,
        }
    }

    /// A key-only copy, used as a separator (it keeps no value alive).
    fn separator(&self) -> Item {
        Item {
            prefix: self.prefix,
            pair: Pair::new(self.pair.key(), &[]).expect("the key's length fit when it was built"),
        }
    }

    fn cmp_probe(&self, probe: &Probe<'_>) -> Ordering {
        self.prefix
            .cmp(&probe.prefix)
            .then_with(|| self.pair.key().cmp(probe.key))
    }

    fn probe(&self) -> Probe<'_> {
        Probe {
            prefix: self.prefix,
            key: self.pair.key(),
        }
    }
}

#[derive(Debug)]
enum Node {
    Leaf(Vec<Item>),
    Branch(Branch),
}

#[derive(Debug)]
struct Branch {
    /// `seps.len() + 1 == children.len()`.
    seps: Vec<Item>,
    children: Vec<Arc<Node>>,
}

impl Clone for Node {
    /// A copy made to write to: full capacity, so inserts do not regrow it.
    fn clone(&self) -> Node {
        match self {
            Node::Leaf(items) => {
                let mut copy = Vec::with_capacity(LEAF_ITEMS_MAX);
                copy.extend(items.iter().cloned());
                Node::Leaf(copy)
            }
            Node::Branch(branch) => {
                let mut seps = Vec::with_capacity(BRANCH_CHILDREN_MAX);
                seps.extend(branch.seps.iter().cloned());
                let mut children = Vec::with_capacity(BRANCH_CHILDREN_MAX + 1);
                children.extend(branch.children.iter().cloned());
                Node::Branch(Branch { seps, children })
            }
        }
    }
}

impl Node {
    fn is_underfull(&self) -> bool {
        match self {
            Node::Leaf(items) => items.len() < LEAF_ITEMS_MIN,
            Node::Branch(branch) => branch.children.len() < BRANCH_CHILDREN_MIN,
        }
    }
}

impl Branch {
    /// The child whose key range holds `probe`.
    fn route(&self, probe: &Probe<'_>) -> usize {
        self.seps
            .partition_point(|sep| sep.cmp_probe(probe) != Ordering::Greater)
    }

    /// Child `index` fell below its minimum: merge it with a sibling, or
    /// move items over from the sibling when both do not fit one node.
    fn rebalance(&mut self, index: usize) {
        let left = if index + 1 < self.children.len() {
            index
        } else if index > 0 {
            index - 1
        } else {
            return;
        };
        let (head, tail) = self.children.split_at_mut(left + 1);
        let left_node = Arc::make_mut(&mut head[left]);
        let right_node = Arc::make_mut(&mut tail[0]);
        match (left_node, right_node) {
            (Node::Leaf(left_items), Node::Leaf(right_items)) => {
                let total = left_items.len() + right_items.len();
                if total <= LEAF_ITEMS_MAX {
                    left_items.append(right_items);
                    self.remove_right_of(left);
                    return;
                }
                let keep_left = total / 2;
                if left_items.len() > keep_left {
                    let moved: Vec<Item> = left_items.drain(keep_left..).collect();
                    right_items.splice(0..0, moved);
                } else {
                    let take = keep_left - left_items.len();
                    left_items.extend(right_items.drain(..take));
                }
                self.seps[left] = right_items[0].separator();
            }
            (Node::Branch(left_branch), Node::Branch(right_branch)) => {
                let total = left_branch.children.len() + right_branch.children.len();
                let sep = self.seps[left].clone();
                if total <= BRANCH_CHILDREN_MAX {
                    left_branch.seps.push(sep);
                    left_branch.seps.append(&mut right_branch.seps);
                    left_branch.children.append(&mut right_branch.children);
                    self.remove_right_of(left);
                    return;
                }
                let mut seps = std::mem::take(&mut left_branch.seps);
                seps.push(sep);
                seps.append(&mut right_branch.seps);
                let mut children = std::mem::take(&mut left_branch.children);
                children.append(&mut right_branch.children);
                let keep_left = total / 2;
                right_branch.children = children.split_off(keep_left);
                right_branch.seps = seps.split_off(keep_left);
                let promoted = seps
                    .pop()
                    .expect("keep_left >= 1 children have a separator after them");
                left_branch.children = children;
                left_branch.seps = seps;
                self.seps[left] = promoted;
            }
            _ => unreachable!("siblings are at the same depth"),
        }
    }

    fn remove_right_of(&mut self, left: usize) {
        self.seps.remove(left);
        self.children.remove(left + 1);
    }
}

/// The map: a root (none when empty) and the number of pairs.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tree {
    root: Option<Arc<Node>>,
    len: usize,
}

/// What an insert into a subtree produced.
struct Inserted {
    /// The pair the new item replaced.
    old: Option<Pair>,
    /// The subtree split: its new right sibling and the separator before it.
    split: Option<(Item, Node)>,
}

impl Tree {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, probe: &Probe<'_>) -> Option<&Pair> {
        let mut node = self.root.as_deref()?;
        loop {
            match node {
                Node::Branch(branch) => node = &branch.children[branch.route(probe)],
                Node::Leaf(items) => {
                    return items
                        .binary_search_by(|item| item.cmp_probe(probe))
                        .ok()
                        .map(|position| &items[position].pair);
                }
            }
        }
    }

    /// Inserts or replaces; returns the replaced pair.
    pub(crate) fn insert(&mut self, item: Item) -> Option<Pair> {
        let root = self
            .root
            .get_or_insert_with(|| Arc::new(Node::Leaf(Vec::with_capacity(LEAF_ITEMS_MAX))));
        let inserted = insert_into(Arc::make_mut(root), item);
        if let Some((sep, right)) = inserted.split {
            let left = self.root.take().expect("set above");
            let mut seps = Vec::with_capacity(BRANCH_CHILDREN_MAX);
            seps.push(sep);
            let mut children = Vec::with_capacity(BRANCH_CHILDREN_MAX + 1);
            children.push(left);
            children.push(Arc::new(right));
            self.root = Some(Arc::new(Node::Branch(Branch { seps, children })));
        }
        if inserted.old.is_none() {
            self.len += 1;
        }
        inserted.old
    }

    /// Removes `probe`'s pair if present (without copying shared nodes
    /// when it is absent).
    pub(crate) fn remove(&mut self, probe: &Probe<'_>) -> Option<Pair> {
        self.get(probe)?;
        let root = self.root.as_mut()?;
        let removed = remove_from(Arc::make_mut(root), probe);
        if removed.is_some() {
            self.len -= 1;
        }
        // A branch left with one child hands the root down; an empty leaf
        // root means an empty map.
        loop {
            match self.root.as_deref() {
                Some(Node::Branch(branch)) if branch.children.len() == 1 => {
                    let child = branch.children[0].clone();
                    self.root = Some(child);
                }
                Some(Node::Leaf(items)) if items.is_empty() => self.root = None,
                _ => break,
            }
        }
        removed
    }

    /// Items in key order, starting after `after` (exclusive) when given.
    pub(crate) fn iter_after(&self, after: Option<&Probe<'_>>) -> Iter<'_> {
        let mut iter = Iter {
            stack: Vec::new(),
            leaf: &[],
            position: 0,
        };
        let Some(mut node) = self.root.as_deref() else {
            return iter;
        };
        loop {
            match node {
                Node::Branch(branch) => {
                    let index = after.map_or(0, |probe| branch.route(probe));
                    iter.stack.push((branch, index));
                    node = &branch.children[index];
                }
                Node::Leaf(items) => {
                    iter.leaf = items;
                    iter.position = after.map_or(0, |probe| {
                        items.partition_point(|item| item.cmp_probe(probe) != Ordering::Greater)
                    });
                    return iter;
                }
            }
        }
    }

    /// Builds a tree from items in strictly ascending key order (the
    /// caller checks the order), nearly full nodes, in O(n).
    pub(crate) fn from_sorted(items: impl Iterator<Item = Item>) -> Tree {
        let mut len = 0;
        // The current level: each node with the lower bound of its keys
        // (none for the first node).
        let mut level: Vec<(Option<Item>, Arc<Node>)> = Vec::new();
        let mut leaf = Vec::with_capacity(LEAF_ITEMS_MAX);
        for item in items {
            len += 1;
            leaf.push(item);
            if leaf.len() == BULK_LEAF_ITEMS {
                push_leaf(
                    &mut level,
                    std::mem::replace(&mut leaf, Vec::with_capacity(LEAF_ITEMS_MAX)),
                );
            }
        }
        if !leaf.is_empty() {
            push_leaf(&mut level, leaf);
        }
        while level.len() > 1 {
            let mut above = Vec::with_capacity(level.len() / BULK_BRANCH_CHILDREN + 1);
            let mut nodes = level.into_iter().peekable();
            while nodes.peek().is_some() {
                let mut seps = Vec::with_capacity(BRANCH_CHILDREN_MAX);
                let mut children = Vec::with_capacity(BRANCH_CHILDREN_MAX + 1);
                let mut lower = None;
                for (bound, node) in nodes.by_ref().take(BULK_BRANCH_CHILDREN) {
                    if children.is_empty() {
                        lower = bound;
                    } else {
                        seps.push(bound.expect("only the first node of a level has no bound"));
                    }
                    children.push(node);
                }
                above.push((lower, Arc::new(Node::Branch(Branch { seps, children }))));
            }
            level = above;
        }
        Tree {
            root: level.pop().map(|(_, node)| node),
            len,
        }
    }

    /// Checks every structural invariant (tests).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        fn walk(
            node: &Node,
            lower: Option<&Item>,
            upper: Option<&Item>,
            is_root: bool,
            depth: usize,
            leaf_depth: &mut Option<usize>,
        ) -> usize {
            let in_bounds = |item: &Item| {
                lower.is_none_or(|l| l.cmp_probe(&item.probe()) != Ordering::Greater)
                    && upper.is_none_or(|u| u.cmp_probe(&item.probe()) == Ordering::Greater)
            };
            match node {
                Node::Leaf(items) => {
                    assert!(items.len() <= LEAF_ITEMS_MAX);
                    assert!(items
                        .windows(2)
                        .all(|w| w[0].cmp_probe(&w[1].probe()) == Ordering::Less));
                    assert!(items.iter().all(in_bounds), "leaf item outside its bounds");
                    assert_eq!(
                        *leaf_depth.get_or_insert(depth),
                        depth,
                        "leaves at different depths"
                    );
                    items.len()
                }
                Node::Branch(branch) => {
                    assert_eq!(branch.seps.len() + 1, branch.children.len());
                    assert!(
                        !is_root || branch.children.len() >= 2,
                        "root branch with one child"
                    );
                    assert!(branch.children.len() <= BRANCH_CHILDREN_MAX);
                    assert!(branch.seps.iter().all(in_bounds));
                    assert!(branch
                        .seps
                        .windows(2)
                        .all(|w| w[0].cmp_probe(&w[1].probe()) == Ordering::Less));
                    let mut total = 0;
                    for (i, child) in branch.children.iter().enumerate() {
                        let lo = if i == 0 {
                            lower
                        } else {
                            Some(&branch.seps[i - 1])
                        };
                        let hi = branch.seps.get(i).or(upper);
                        total += walk(child, lo, hi, false, depth + 1, leaf_depth);
                    }
                    total
                }
            }
        }
        let total = self
            .root
            .as_deref()
            .map_or(0, |root| walk(root, None, None, true, 0, &mut None));
        assert_eq!(total, self.len, "len disagrees with the items");
    }
}

fn push_leaf(level: &mut Vec<(Option<Item>, Arc<Node>)>, items: Vec<Item>) {
    let bound = if level.is_empty() {
        None
    } else {
        Some(items[0].separator())
    };
    level.push((bound, Arc::new(Node::Leaf(items))));
}

fn insert_into(node: &mut Node, item: Item) -> Inserted {
    match node {
        Node::Leaf(items) => match items.binary_search_by(|it| it.cmp_probe(&item.probe())) {
            Ok(position) => Inserted {
                old: Some(std::mem::replace(&mut items[position], item).pair),
                split: None,
            },
            Err(position) => {
                if items.len() < LEAF_ITEMS_MAX {
                    items.insert(position, item);
                    return Inserted {
                        old: None,
                        split: None,
                    };
                }
                // Split before inserting (the array never grows past its
                // capacity). Appending at the end (ascending loads) keeps
                // the left leaf full instead of leaving two half-full ones.
                let at = if position == items.len() {
                    LEAF_ITEMS_MAX
                } else {
                    LEAF_ITEMS_MAX / 2
                };
                let mut right = Vec::with_capacity(LEAF_ITEMS_MAX);
                right.extend(items.drain(at..));
                if position < at {
                    items.insert(position, item);
                } else {
                    right.insert(position - at, item);
                }
                let sep = right[0].separator();
                Inserted {
                    old: None,
                    split: Some((sep, Node::Leaf(right))),
                }
            }
        },
        Node::Branch(branch) => {
            let index = branch.route(&item.probe());
            let inserted = insert_into(Arc::make_mut(&mut branch.children[index]), item);
            let Some((sep, right)) = inserted.split else {
                return inserted;
            };
            branch.seps.insert(index, sep);
            branch.children.insert(index + 1, Arc::new(right));
            let count = branch.children.len();
            if count <= BRANCH_CHILDREN_MAX {
                return Inserted {
                    old: inserted.old,
                    split: None,
                };
            }
            // Children [at..] move right; the separator before them goes up.
            let at = if index + 2 == count {
                count - 1
            } else {
                count / 2
            };
            let mut right_children = Vec::with_capacity(BRANCH_CHILDREN_MAX + 1);
            right_children.extend(branch.children.drain(at..));
            let mut right_seps = Vec::with_capacity(BRANCH_CHILDREN_MAX);
            right_seps.extend(branch.seps.drain(at..));
            let promoted = branch
                .seps
                .pop()
                .expect("a split branch keeps >= 1 separator");
            Inserted {
                old: inserted.old,
                split: Some((
                    promoted,
                    Node::Branch(Branch {
                        seps: right_seps,
                        children: right_children,
                    }),
                )),
            }
        }
    }
}

fn remove_from(node: &mut Node, probe: &Probe<'_>) -> Option<Pair> {
    match node {
        Node::Leaf(items) => items
            .binary_search_by(|item| item.cmp_probe(probe))
            .ok()
            .map(|position| items.remove(position).pair),
        Node::Branch(branch) => {
            let index = branch.route(probe);
            let removed = remove_from(Arc::make_mut(&mut branch.children[index]), probe)?;
            if branch.children[index].is_underfull() {
                branch.rebalance(index);
            }
            Some(removed)
        }
    }
}

/// Items in key order (see `Tree::iter_after`).
pub(crate) struct Iter<'a> {
    /// The branches above the current leaf, each with the index of the
    /// child being walked.
    stack: Vec<(&'a Branch, usize)>,
    leaf: &'a [Item],
    position: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Item;

    fn next(&mut self) -> Option<&'a Item> {
        loop {
            if let Some(item) = self.leaf.get(self.position) {
                self.position += 1;
                return Some(item);
            }
            // Up to the nearest branch with a child left, then down its
            // leftmost path.
            let mut node = loop {
                let (branch, index) = self.stack.last_mut()?;
                let branch: &'a Branch = branch;
                if *index + 1 < branch.children.len() {
                    *index += 1;
                    break &*branch.children[*index];
                }
                self.stack.pop();
            };
            loop {
                match node {
                    Node::Branch(branch) => {
                        self.stack.push((branch, 0));
                        node = &branch.children[0];
                    }
                    Node::Leaf(items) => {
                        self.leaf = items;
                        self.position = 0;
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn item(key: &[u8], value: &[u8]) -> Item {
        Item::new(Pair::new(key, value).unwrap())
    }

    /// Pairs in order, owned.
    type Contents = Vec<(Vec<u8>, Vec<u8>)>;

    fn contents(tree: &Tree) -> Contents {
        tree.iter_after(None)
            .map(|item| (item.pair.key().to_vec(), item.pair.value().to_vec()))
            .collect()
    }

    fn model_contents(model: &BTreeMap<Vec<u8>, Vec<u8>>) -> Contents {
        model.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(Vec<u8>, u8),
        Remove(Vec<u8>),
        /// Keep a clone (a snapshot) whose contents must never change.
        Snapshot,
    }

    fn arb_key() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (0u16..300).prop_map(|n| format!("key:{n:04}").into_bytes()),
            prop::collection::vec(prop_oneof![Just(0u8), Just(b'k'), any::<u8>()], 0..20),
        ]
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (arb_key(), any::<u8>()).prop_map(|(k, v)| Op::Insert(k, v)),
            4 => arb_key().prop_map(Op::Remove),
            1 => Just(Op::Snapshot),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// The tree behaves as a BTreeMap under any sequence of inserts and
        /// removes, keeps its invariants, and clones taken along the way
        /// keep the contents they had.
        #[test]
        fn behaves_as_an_ordered_map_and_clones_are_frozen(ops in prop::collection::vec(arb_op(), 0..600)) {
            let mut tree = Tree::default();
            let mut model = BTreeMap::new();
            let mut frozen: Vec<(Tree, Contents)> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(key, value) => {
                        let old = tree.insert(item(&key, &[value]));
                        let model_old = model.insert(key, vec![value]);
                        prop_assert_eq!(old.map(|p| p.value().to_vec()), model_old);
                    }
                    Op::Remove(key) => {
                        let old = tree.remove(&Probe::new(&key));
                        let model_old = model.remove(&key);
                        prop_assert_eq!(old.map(|p| p.value().to_vec()), model_old);
                    }
                    Op::Snapshot => frozen.push((tree.clone(), model_contents(&model))),
                }
                tree.check();
            }
            prop_assert_eq!(contents(&tree), model_contents(&model));
            for key in model.keys() {
                prop_assert_eq!(tree.get(&Probe::new(key)).map(|p| p.value().to_vec()), model.get(key).cloned());
            }
            for (position, key) in model.keys().enumerate() {
                let after: Vec<Vec<u8>> = tree.iter_after(Some(&Probe::new(key))).map(|i| i.pair.key().to_vec()).collect();
                let expected: Vec<Vec<u8>> = model.keys().skip(position + 1).cloned().collect();
                prop_assert_eq!(after, expected);
            }
            for (snapshot, expected) in &frozen {
                snapshot.check();
                prop_assert_eq!(&contents(snapshot), expected);
            }
        }

        #[test]
        fn bulk_build_equals_inserting(keys in prop::collection::btree_set(arb_key(), 0..400)) {
            let built = Tree::from_sorted(keys.iter().map(|k| item(k, b"v")));
            built.check();
            let mut inserted = Tree::default();
            for key in &keys {
                inserted.insert(item(key, b"v"));
            }
            prop_assert_eq!(contents(&built), contents(&inserted));
            // A built tree takes further inserts and removes.
            let mut built = built;
            for key in keys.iter().step_by(2) {
                built.remove(&Probe::new(key));
                built.check();
            }
            built.insert(item(b"zzz", b"new"));
            built.check();
        }
    }

    #[test]
    fn ascending_inserts_fill_leaves() {
        let mut tree = Tree::default();
        for n in 0..1000u32 {
            tree.insert(item(format!("key:{n:06}").as_bytes(), b"v"));
        }
        tree.check();
        let mut leaves = 0;
        let mut stack = vec![tree.root.as_deref().unwrap()];
        while let Some(node) = stack.pop() {
            match node {
                Node::Leaf(_) => leaves += 1,
                Node::Branch(branch) => stack.extend(branch.children.iter().map(|c| &**c)),
            }
        }
        assert!(
            leaves <= 1000 / LEAF_ITEMS_MAX + 1,
            "{leaves} leaves for 1000 ascending keys"
        );
    }
}
