//! Python difflib's `SequenceMatcher(None, a, b).ratio()`, exact, over Unicode characters.
//!
//! The evaluation reports similarity the way the Python reference pipeline did, so the figures
//! must be bit-for-bit the same as CPython's `difflib`. This is a direct port of CPython's
//! `SequenceMatcher` with `isjunk=None` and `autojunk=True`:
//!
//! - [`SequenceMatcher`]: generic over `&[T]` with `T: Hash + Eq`; indexes the second sequence
//!   (`__chain_b`, including the autojunk rule: when `b` has 200+ items, elements occurring more
//!   than `len(b) // 100 + 1` times are "popular" and never used to anchor a match);
//! - [`SequenceMatcher::find_longest_match`], [`SequenceMatcher::matching_blocks`] with CPython's
//!   tie-breaking (earliest `i`, then earliest `j`, among the longest blocks; the popular-element
//!   extension at both ends; the same recursion order and adjacent-block merging);
//! - [`ratio`]: the convenience over the `char`s of two strings (two empty strings give 1.0).
//!
//! Why not the `difflib` crate: version 0.4.0 inverts the autojunk filter (it keeps only the
//! popular elements), which changes the ratio of every pair whose second string is 200+ chars.
//!
//! ```
//! assert_eq!(seqmatch::ratio("abcd", "bcde"), 0.75);
//! ```

use std::collections::HashMap;
use std::hash::Hash;

/// `b` must have at least this many items before autojunk marks anything popular.
const AUTOJUNK_MIN_LEN: usize = 200;

/// A matching block: `a[a..a + size] == b[b..b + size]` (CPython's `Match(a, b, size)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Match {
    /// Start in the first sequence.
    pub a: usize,
    /// Start in the second sequence.
    pub b: usize,
    /// Length of the block.
    pub size: usize,
}

/// CPython's `difflib.SequenceMatcher` with no junk function.
#[derive(Debug, Clone)]
pub struct SequenceMatcher<'a, T> {
    a: &'a [T],
    b: &'a [T],
    /// For each non-popular element of `b`, its indices in increasing order.
    b2j: HashMap<&'a T, Vec<usize>>,
}

impl<'a, T: Hash + Eq> SequenceMatcher<'a, T> {
    /// `SequenceMatcher(None, a, b)`, i.e. with autojunk on, as Python's default.
    pub fn new(a: &'a [T], b: &'a [T]) -> Self {
        Self::with_autojunk(a, b, true)
    }

    /// `SequenceMatcher(None, a, b, autojunk=...)`.
    pub fn with_autojunk(a: &'a [T], b: &'a [T], autojunk: bool) -> Self {
        let mut b2j: HashMap<&'a T, Vec<usize>> = HashMap::new();
        for (j, elt) in b.iter().enumerate() {
            b2j.entry(elt).or_default().push(j);
        }
        if autojunk && b.len() >= AUTOJUNK_MIN_LEN {
            // Integer arithmetic, as Python's `n // 100 + 1`.
            let ntest = b.len() / 100 + 1;
            b2j.retain(|_, idxs| idxs.len() <= ntest);
        }
        Self { a, b, b2j }
    }

    /// Longest matching block in `a[alo..ahi]` and `b[blo..bhi]`.
    ///
    /// Among blocks of maximal length, returns the one starting earliest in `a`, and of those the
    /// one starting earliest in `b`; then extends it over equal popular elements at both ends,
    /// exactly as CPython does. Returns `size == 0` when nothing matches.
    pub fn find_longest_match(&self, alo: usize, ahi: usize, blo: usize, bhi: usize) -> Match {
        let (a, b) = (self.a, self.b);
        let (mut besti, mut bestj, mut bestsize) = (alo, blo, 0usize);
        // j2len[j] = length of the longest match ending with a[i-1] and b[j].
        let mut j2len: HashMap<usize, usize> = HashMap::new();
        let mut newj2len: HashMap<usize, usize> = HashMap::new();
        for (i, elt) in a.iter().enumerate().take(ahi).skip(alo) {
            newj2len.clear();
            if let Some(js) = self.b2j.get(elt) {
                for &j in js {
                    if j < blo {
                        continue;
                    }
                    if j >= bhi {
                        break;
                    }
                    let prev = if j == 0 { 0 } else { j2len.get(&(j - 1)).copied().unwrap_or(0) };
                    let k = prev + 1;
                    newj2len.insert(j, k);
                    if k > bestsize {
                        besti = i + 1 - k;
                        bestj = j + 1 - k;
                        bestsize = k;
                    }
                }
            }
            std::mem::swap(&mut j2len, &mut newj2len);
        }
        // With no junk function `bjunk` is empty, so CPython's first pair of loops extends the
        // block over any equal elements (popular ones included) and its junk loops do nothing.
        while besti > alo && bestj > blo && a[besti - 1] == b[bestj - 1] {
            besti -= 1;
            bestj -= 1;
            bestsize += 1;
        }
        while besti + bestsize < ahi && bestj + bestsize < bhi && a[besti + bestsize] == b[bestj + bestsize] {
            bestsize += 1;
        }
        Match { a: besti, b: bestj, size: bestsize }
    }

    /// CPython's `get_matching_blocks()`: non-adjacent blocks sorted by position, ending with the
    /// sentinel `Match { a: len(a), b: len(b), size: 0 }`.
    pub fn matching_blocks(&self) -> Vec<Match> {
        let (la, lb) = (self.a.len(), self.b.len());
        // A stack (LIFO) like CPython's list-based queue; the order only affects the sort input.
        let mut queue = vec![(0, la, 0, lb)];
        let mut blocks = Vec::new();
        while let Some((alo, ahi, blo, bhi)) = queue.pop() {
            let m = self.find_longest_match(alo, ahi, blo, bhi);
            if m.size > 0 {
                blocks.push(m);
                if alo < m.a && blo < m.b {
                    queue.push((alo, m.a, blo, m.b));
                }
                if m.a + m.size < ahi && m.b + m.size < bhi {
                    queue.push((m.a + m.size, ahi, m.b + m.size, bhi));
                }
            }
        }
        blocks.sort();

        // Merge blocks that touch in both sequences.
        let mut merged = Vec::with_capacity(blocks.len() + 1);
        let (mut i1, mut j1, mut k1) = (0, 0, 0);
        for m in blocks {
            if i1 + k1 == m.a && j1 + k1 == m.b {
                k1 += m.size;
            } else {
                if k1 > 0 {
                    merged.push(Match { a: i1, b: j1, size: k1 });
                }
                (i1, j1, k1) = (m.a, m.b, m.size);
            }
        }
        if k1 > 0 {
            merged.push(Match { a: i1, b: j1, size: k1 });
        }
        merged.push(Match { a: la, b: lb, size: 0 });
        merged
    }

    /// `2 * M / T`, where M is the number of matched items and T the total length; 1.0 when
    /// both sequences are empty.
    pub fn ratio(&self) -> f64 {
        let matches: usize = self.matching_blocks().iter().map(|m| m.size).sum();
        calculate_ratio(matches, self.a.len() + self.b.len())
    }
}

/// CPython's `_calculate_ratio`: the same operations in the same order, so the same double.
fn calculate_ratio(matches: usize, length: usize) -> f64 {
    if length == 0 { 1.0 } else { 2.0 * matches as f64 / length as f64 }
}

/// `difflib.SequenceMatcher(None, a, b).ratio()` over the Unicode scalar values of `a` and `b`.
pub fn ratio(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    SequenceMatcher::new(&a, &b).ratio()
}

/// `difflib.SequenceMatcher(None, a, b).get_matching_blocks()` over the chars of `a` and `b`
/// (indices count chars, not bytes).
pub fn matching_blocks(a: &str, b: &str) -> Vec<Match> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    SequenceMatcher::new(&a, &b).matching_blocks()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(a: usize, b: usize, size: usize) -> Match {
        Match { a, b, size }
    }

    #[test]
    fn empty_strings_are_identical() {
        assert_eq!(ratio("", ""), 1.0);
        assert_eq!(ratio("abc", ""), 0.0);
        assert_eq!(ratio("", "abc"), 0.0);
    }

    #[test]
    fn python_docstring_example() {
        // From CPython's docstring: s = SequenceMatcher(None, " abcd", "abcd abcd").
        let a: Vec<char> = " abcd".chars().collect();
        let b: Vec<char> = "abcd abcd".chars().collect();
        let s = SequenceMatcher::new(&a, &b);
        assert_eq!(s.find_longest_match(0, 5, 0, 9), m(0, 4, 5));
        assert_eq!(matching_blocks("abxcd", "abcd"), vec![m(0, 0, 2), m(3, 2, 2), m(5, 4, 0)]);
    }

    #[test]
    fn ties_go_to_earliest_in_a_then_b() {
        // "ab" occurs twice in b; the first one in b wins for the same i.
        let a: Vec<char> = "ab".chars().collect();
        let b: Vec<char> = "xabab".chars().collect();
        assert_eq!(SequenceMatcher::new(&a, &b).find_longest_match(0, 2, 0, 5), m(0, 1, 2));
    }

    #[test]
    fn counts_chars_not_bytes() {
        // 3 of 4 CJK chars in common: 2*3/8.
        assert_eq!(ratio("公司規範", "公司規定"), 0.75);
    }

    #[test]
    fn autojunk_changes_long_sequences() {
        // b has 200 items; 'a' occurs 200 times > 200/100+1, so it is popular and cannot anchor.
        let a: Vec<char> = "b".chars().chain(std::iter::repeat_n('a', 10)).collect();
        let b = vec!['a'; 200];
        assert_eq!(SequenceMatcher::new(&a, &b).ratio(), 0.0);
        let without = SequenceMatcher::with_autojunk(&a, &b, false);
        assert_eq!(without.ratio(), calculate_ratio(10, 211));
        // One item shorter: autojunk does not apply.
        let b = vec!['a'; 199];
        assert_eq!(SequenceMatcher::new(&a, &b).ratio(), calculate_ratio(10, 210));
    }

    #[test]
    fn popular_elements_still_extend_a_block_at_the_range_start() {
        // CPython extends even an empty best match over equal (popular) elements, so a run of
        // popular items at the very start still counts: ratio = 2*10/210.
        let a = vec!['a'; 10];
        let b = vec!['a'; 200];
        let s = SequenceMatcher::new(&a, &b);
        assert_eq!(s.matching_blocks(), vec![m(0, 0, 10), m(10, 200, 0)]);
    }

    #[test]
    fn generic_over_slices() {
        let a = [1, 2, 3, 4];
        let b = [2, 3, 4, 5];
        assert_eq!(SequenceMatcher::new(&a, &b).ratio(), 0.75);
    }
}
