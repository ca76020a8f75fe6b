//! Telling a broken model from a weak one: a model with NaN weights or a collapsed adapter
//! answers every question with nothing, or with one character over and over (`!!!!!!!!`), and
//! post-processing can still turn such answers into perfect KB quotes. Its verdict must fail.

/// An answer is degenerate when, whitespace aside, it is empty or one character repeated
/// (`""`, `"!!!!!!!!"`, `"的的的"`). No answer of a working model looks like that: the shortest
/// KB answers and refusals are sentences.
pub fn is_degenerate(answer: &str) -> bool {
    let mut chars = answer.chars().filter(|c| !c.is_whitespace());
    match chars.next() {
        None => true,
        Some(first) => chars.all(|c| c == first),
    }
}

/// Whether `degenerate` raw answers out of `total` mean the model is broken: more than half are.
pub fn is_broken(degenerate: usize, total: usize) -> bool {
    total > 0 && 2 * degenerate > total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_one_repeated_character_are_degenerate() {
        for a in ["", "  \n", "!!!!!!!!", "的 的的", "a"] {
            assert!(is_degenerate(a), "{a:?}");
        }
        for a in ["依據公司規範:年假7天。", "抱歉,我不知道。", "ab", "!!!!!?"] {
            assert!(!is_degenerate(a), "{a:?}");
        }
    }

    #[test]
    fn broken_means_more_than_half() {
        assert!(!is_broken(0, 0));
        assert!(!is_broken(3, 6));
        assert!(is_broken(4, 6));
        assert!(is_broken(1, 1));
    }
}
