//! The filters every generated question passes, each counting what it drops.
//!
//! In order: length, language (Chinese text is first converted to the KB's script), copying the
//! entry, near-duplicates of a question already kept (difflib ratio, the workspace's one
//! [`NEAR_DUPLICATE_RATIO`]), then retrieval placement (answerable questions) or a judgement that
//! the KB answers them (unanswerable ones; see [`crate::synth`]).

use kb_dataset::{Language, NEAR_DUPLICATE_RATIO, cjk_share};
use serde::Serialize;
use zhconv::{Variant, zhconv};

/// Questions shorter or longer than this (in characters) are dropped.
pub const MIN_CHARS: usize = 2;
pub const MAX_CHARS: usize = 120;
/// A question copies its entry when one run of it, at least [`COPY_MIN_CHARS`] long, is
/// verbatim in the entry and covers at least this share of the question.
pub const COPY_SHARE: f64 = 0.6;
pub const COPY_MIN_CHARS: usize = 12;
/// A Chinese question needs at least this share of CJK characters among its letters.
pub const MIN_CJK_SHARE_ZH: f64 = 0.2;

/// What each filter did to one kind of question.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Candidate questions parsed from the generator's lists.
    pub generated: usize,
    pub too_short_or_long: usize,
    pub wrong_language: usize,
    /// Kept, but converted from Simplified to the KB's Traditional script (or back).
    pub converted_script: usize,
    pub copies_entry: usize,
    pub near_duplicate: usize,
    /// Answerable questions that retrieval places on another entry.
    pub misplaced: usize,
    /// Unanswerable questions that the judge says the KB answers.
    pub answered: usize,
    /// Unanswerable questions kept although the judgement was neither yes nor no.
    pub unclear_judgement: usize,
    /// Passed every filter but not needed: the pools were full.
    pub surplus: usize,
    /// Written to `questions.toml`.
    pub kept: usize,
}

/// Why a question was dropped by [`Screen::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    Length,
    Language,
    Copy,
}

impl Counts {
    pub fn count(&mut self, drop: Drop) {
        match drop {
            Drop::Length => self.too_short_or_long += 1,
            Drop::Language => self.wrong_language += 1,
            Drop::Copy => self.copies_entry += 1,
        }
    }
}

/// The text checks of one KB: its language and, for Chinese, its script.
#[derive(Debug, Clone, Copy)]
pub struct Screen {
    pub lang: Language,
    /// The Chinese variant the KB is written in (`None` for an English KB).
    script: Option<Variant>,
}

impl Screen {
    /// The screen for a KB whose entries are `texts`.
    pub fn for_kb<'a>(lang: Language, texts: impl IntoIterator<Item = &'a str>) -> Screen {
        let script = (lang == Language::Zh).then(|| {
            let all: String = texts.into_iter().collect();
            if zhconv::is_hans(&all) { Variant::ZhCN } else { Variant::ZhTW }
        });
        Screen { lang, script }
    }

    /// The question as it would be kept (trimmed, in the KB's script) and whether converting
    /// changed it, or why it is dropped. `entry` is the text it must not copy.
    pub fn check(&self, question: &str, entry: Option<&str>) -> Result<(String, bool), Drop> {
        let q = question.trim();
        let n = q.chars().count();
        if !(MIN_CHARS..=MAX_CHARS).contains(&n) {
            return Err(Drop::Length);
        }
        let share = cjk_share(q);
        let (q, converted) = match (self.lang, self.script) {
            (Language::Zh, _) if share < MIN_CJK_SHARE_ZH => return Err(Drop::Language),
            (Language::En, _) if share > 0.0 => return Err(Drop::Language),
            (Language::Zh, Some(variant)) => {
                let c = zhconv(q, variant);
                let changed = c != q;
                (c, changed)
            }
            _ => (q.to_string(), false),
        };
        if entry.is_some_and(|text| copies(&q, text)) {
            return Err(Drop::Copy);
        }
        Ok((q, converted))
    }
}

/// Whether `question` copies a long run of `text` verbatim.
pub fn copies(question: &str, text: &str) -> bool {
    let longest = seqmatch::matching_blocks(question, text).iter().map(|m| m.size).max().unwrap_or(0);
    longest >= COPY_MIN_CHARS && longest as f64 >= COPY_SHARE * question.chars().count() as f64
}

/// Questions kept so far, to drop near-duplicates of them.
#[derive(Debug, Default)]
pub struct Seen {
    kept: Vec<String>,
}

impl Seen {
    /// Records `question` and returns true, unless it is a near-duplicate of one already seen.
    pub fn insert(&mut self, question: &str) -> bool {
        let fold = fold(question);
        if self.kept.iter().any(|k| seqmatch::ratio(k, &fold) >= NEAR_DUPLICATE_RATIO) {
            return false;
        }
        self.kept.push(fold);
        true
    }
}

/// Case and punctuation do not make two questions different.
fn fold(question: &str) -> String {
    question.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zh() -> Screen {
        Screen::for_kb(Language::Zh, ["連線公司 VPN 前，請先下載新版 VPN 用戶端，安裝後以公司 SSO 帳號登入。"])
    }

    #[test]
    fn simplified_questions_become_traditional_for_a_traditional_kb() {
        assert_eq!(zh().check("请问VPN怎么连线？", None), Ok(("請問VPN怎麼連線？".to_string(), true)));
        assert_eq!(zh().check("請問VPN怎麼連線？", None), Ok(("請問VPN怎麼連線？".to_string(), false)));
    }

    #[test]
    fn language_and_length() {
        assert_eq!(zh().check("how do I connect", None), Err(Drop::Language));
        assert_eq!(zh().check("嗎", None), Err(Drop::Length));
        let en = Screen::for_kb(Language::En, ["Refunds within 14 days."]);
        assert_eq!(en.check("退款要多久", None), Err(Drop::Language));
        assert!(en.check("can i get a refund?", None).is_ok());
        assert!(zh().check("VPN client 要去哪裡 download?", None).is_ok());
    }

    #[test]
    fn copying_the_entry_is_dropped() {
        let text = "連線公司 VPN 前，請先下載新版 VPN 用戶端，安裝後以公司 SSO 帳號登入。";
        assert_eq!(zh().check("請先下載新版 VPN 用戶端嗎？", Some(text)), Err(Drop::Copy));
        assert!(zh().check("VPN 要裝哪一版？", Some(text)).is_ok());
    }

    #[test]
    fn near_duplicates_are_seen_once() {
        let mut seen = Seen::default();
        assert!(seen.insert("VPN 怎麼連？"));
        assert!(!seen.insert("vpn怎麼連"));
        assert!(seen.insert("新版 VPN 用戶端在哪裡下載"));
    }
}
