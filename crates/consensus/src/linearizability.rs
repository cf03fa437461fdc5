//! A linearizability checker for read/write registers, after Wing & Gong with Lowe's
//! memoization (the algorithm Porcupine and Knossos use): a history of operations, each with
//! the time it was called and the time it returned, is linearizable if the operations can be
//! put in one order that respects real time (an operation that returned before another was
//! called comes first) and in which every read returns the last value written.
//!
//! An operation whose outcome is unknown (a write that timed out: it may or may not have been
//! applied) has no return time; it may take effect at any point after its call, or never.
//! Histories are checked per key (registers compose: P-compositionality).

use std::collections::HashSet;

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Wrote this value.
    Write(u64),
    /// Read this value (`None`: the key did not exist).
    Read(Option<u64>),
}

/// One operation of a history.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    /// What it did.
    pub op: Op,
    /// When it was called (any monotonic unit).
    pub call: u64,
    /// When it returned; `None` when its outcome is unknown (only writes may be unknown).
    pub ret: Option<u64>,
}

const NONE: usize = usize::MAX;

struct Node {
    /// The operation this entry belongs to.
    op: usize,
    call: bool,
    /// For a call entry: its return entry.
    partner: usize,
    prev: usize,
    next: usize,
}

/// Checks that `history` (one register, starting at `initial`) is linearizable; the error
/// says which operations could not be ordered.
pub fn check_register(history: &[Event], initial: Option<u64>) -> Result<(), String> {
    for e in history {
        if e.ret.is_none() && matches!(e.op, Op::Read(_)) {
            return Err("a read with an unknown outcome says nothing: leave it out".into());
        }
    }
    // A write of unknown outcome whose value no read returned can be left out: had it taken
    // effect, no read fell between it and the next write (one would have returned its
    // value), so every read answers the same without it. Such writes stay pending to the
    // end of the history and would otherwise multiply the search.
    let read_values: std::collections::HashSet<u64> = history
        .iter()
        .filter_map(|e| match e.op {
            Op::Read(Some(v)) if e.ret.is_some() => Some(v),
            _ => None,
        })
        .collect();
    let kept: Vec<Event> = history
        .iter()
        .filter(|e| e.ret.is_some() || matches!(e.op, Op::Write(v) if read_values.contains(&v)))
        .copied()
        .collect();
    let history = kept.as_slice();
    // Entries sorted by time; an unknown outcome returns after everything else. At equal
    // times calls come first (the operations then count as overlapping).
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(history.len() * 2 + 1);
    for (i, e) in history.iter().enumerate() {
        order.push((e.call, true, i));
        order.push((e.ret.unwrap_or(u64::MAX), false, i));
    }
    order.sort_by_key(|&(t, call, i)| (t, !call, i));
    // Node 0 is the head sentinel.
    let mut nodes: Vec<Node> = vec![Node {
        op: NONE,
        call: false,
        partner: NONE,
        prev: NONE,
        next: NONE,
    }];
    let mut call_node = vec![NONE; history.len()];
    for (_, call, i) in &order {
        let id = nodes.len();
        let prev = id - 1;
        nodes[prev].next = id;
        nodes.push(Node {
            op: *i,
            call: *call,
            partner: NONE,
            prev,
            next: NONE,
        });
        if *call {
            call_node[*i] = id;
        } else {
            let c = call_node[*i];
            nodes[c].partner = id;
        }
    }
    let words = history.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut state = initial;
    let mut cache: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    // (call entry lifted, state before it)
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut entry = nodes[0].next;
    let lift = |nodes: &mut Vec<Node>, n: usize| {
        for x in [n, nodes[n].partner] {
            let (p, q) = (nodes[x].prev, nodes[x].next);
            nodes[p].next = q;
            if q != NONE {
                nodes[q].prev = p;
            }
        }
    };
    let unlift = |nodes: &mut Vec<Node>, n: usize| {
        for x in [nodes[n].partner, n] {
            let (p, q) = (nodes[x].prev, nodes[x].next);
            nodes[p].next = x;
            if q != NONE {
                nodes[q].prev = x;
            }
        }
    };
    let mut longest = 0;
    while nodes[0].next != NONE {
        if entry == NONE {
            // Every call's return entry follows it, so the walk meets a return first.
            return Err("checker walked past the end of the history".into());
        }
        if nodes[entry].call {
            let i = nodes[entry].op;
            let next_state = match history[i].op {
                Op::Write(v) => Some(Some(v)),
                Op::Read(v) if v == state => Some(state),
                Op::Read(_) => None,
            };
            if let Some(s) = next_state {
                let mut lin = linearized.clone();
                lin[i / 64] |= 1 << (i % 64);
                if cache.insert((lin.clone(), s)) {
                    stack.push((entry, state));
                    longest = longest.max(stack.len());
                    linearized = lin;
                    state = s;
                    lift(&mut nodes, entry);
                    entry = nodes[0].next;
                    continue;
                }
            }
            entry = nodes[entry].next;
        } else {
            // An operation returned before it could be linearized: undo the last choice.
            let Some((n, before)) = stack.pop() else {
                let stuck = nodes[entry].op;
                return Err(format!(
                    "not linearizable: no order of the {} operations lets {:?} (called at {}, returned at {:?}) take effect; at most {longest} operations could be ordered",
                    history.len(),
                    history[stuck].op,
                    history[stuck].call,
                    history[stuck].ret
                ));
            };
            let i = nodes[n].op;
            linearized[i / 64] &= !(1 << (i % 64));
            state = before;
            unlift(&mut nodes, n);
            entry = nodes[n].next;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: u64, call: u64, ret: u64) -> Event {
        Event {
            op: Op::Write(v),
            call,
            ret: Some(ret),
        }
    }
    fn r(v: Option<u64>, call: u64, ret: u64) -> Event {
        Event {
            op: Op::Read(v),
            call,
            ret: Some(ret),
        }
    }

    #[test]
    fn sequential_histories() {
        assert!(check_register(&[w(1, 0, 1), r(Some(1), 2, 3)], None).is_ok());
        assert!(check_register(&[r(None, 0, 1), w(1, 2, 3), r(Some(1), 4, 5)], None).is_ok());
        // A read after a completed write cannot see the value from before it.
        assert!(check_register(&[w(1, 0, 1), r(None, 2, 3)], None).is_err());
        assert!(check_register(&[w(1, 0, 1), w(2, 2, 3), r(Some(1), 4, 5)], None).is_err());
    }

    #[test]
    fn overlapping_operations_may_go_either_way() {
        assert!(check_register(&[w(1, 0, 10), r(Some(1), 1, 2)], None).is_ok());
        assert!(check_register(&[w(1, 0, 10), r(None, 1, 2)], None).is_ok());
        // Both reads overlap the write, but once one saw it the later one must too.
        assert!(check_register(&[w(1, 0, 10), r(Some(1), 1, 2), r(None, 3, 4)], None).is_err());
        assert!(check_register(&[w(1, 0, 10), r(None, 1, 2), r(Some(1), 3, 4)], None).is_ok());
        // Two overlapping writes, reads that disagree on their order over time.
        let h = [
            w(1, 0, 10),
            w(2, 0, 10),
            r(Some(1), 11, 12),
            r(Some(2), 13, 14),
        ];
        assert!(check_register(&h, None).is_err());
        let h = [w(1, 0, 10), w(2, 0, 10), r(Some(2), 5, 6), r(Some(1), 7, 8)];
        assert!(check_register(&h, None).is_ok());
    }

    #[test]
    fn many_unread_unknown_writes_are_checked_at_once() {
        // Sixty writes that timed out and were never read, among reads of known writes:
        // without leaving them out, the search would try their subsets.
        let mut h = Vec::new();
        let mut t = 0;
        for i in 0..60u64 {
            h.push(Event {
                op: Op::Write(1_000 + i),
                call: t,
                ret: None,
            });
            h.push(Event {
                op: Op::Write(i),
                call: t + 1,
                ret: Some(t + 2),
            });
            h.push(Event {
                op: Op::Read(Some(i)),
                call: t + 3,
                ret: Some(t + 4),
            });
            t += 5;
        }
        assert!(check_register(&h, None).is_ok());
        // a read of a value nobody wrote is still caught
        h.push(Event {
            op: Op::Read(Some(5_000)),
            call: t,
            ret: Some(t + 1),
        });
        assert!(check_register(&h, None).is_err());
    }

    #[test]
    fn unknown_outcomes_may_take_effect_or_not() {
        let lost = Event {
            op: Op::Write(7),
            call: 0,
            ret: None,
        };
        assert!(check_register(&[lost, r(None, 5, 6)], None).is_ok());
        assert!(check_register(&[lost, r(Some(7), 5, 6)], None).is_ok());
        assert!(check_register(&[lost, r(Some(7), 5, 6), r(None, 7, 8)], None).is_err());
        assert!(check_register(
            &[lost, r(Some(7), 5, 6), w(1, 7, 8), r(Some(1), 9, 10)],
            None
        )
        .is_ok());
    }

    #[test]
    fn many_operations_check_quickly() {
        // 3 000 operations by three clients, each overlapping its neighbours.
        let mut h = Vec::new();
        let mut value = None;
        for k in 0..1000u64 {
            let t = k * 10;
            h.push(w(k, t, t + 12));
            h.push(r(Some(k), t + 13, t + 15));
            h.push(r(value, t, t + 1));
            value = Some(k);
        }
        assert!(check_register(&h, None).is_ok());
    }
}
