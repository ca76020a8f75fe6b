//! The language of a knowledge base and what follows from it for the data: the answer and refusal
//! prefixes, and telling a text's script apart.
//!
//! Chinese keeps the reference pipeline's exact prefixes (`依據公司規範:` / `抱歉`); an English KB
//! gets English ones, so its answers and refusals read naturally and are still recognisable by
//! prefix.

use serde::{Deserialize, Serialize};

/// The language of a KB, its questions and its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Chinese (the shipped KB: Traditional Chinese).
    #[default]
    Zh,
    /// English.
    En,
}

/// Above this share of CJK characters (see [`cjk_share`]), a KB is Chinese.
const CJK_SHARE_ZH: f64 = 0.3;

impl Language {
    pub const ALL: [Language; 2] = [Language::Zh, Language::En];

    /// Every answerable reply is this prefix followed by the KB text.
    pub fn answer_prefix(self) -> &'static str {
        match self {
            Language::Zh => "依據公司規範:",
            Language::En => "According to company policy: ",
        }
    }

    /// Every refusal starts with this word.
    pub fn refusal_prefix(self) -> &'static str {
        match self {
            Language::Zh => "抱歉",
            Language::En => "Sorry",
        }
    }

    /// `zh` or `en`, as written in files.
    pub fn code(self) -> &'static str {
        match self {
            Language::Zh => "zh",
            Language::En => "en",
        }
    }

    /// The language of these texts: Chinese when CJK characters make up a good share of their
    /// units (see [`cjk_share`]), else English.
    pub fn detect<'a>(texts: impl IntoIterator<Item = &'a str>) -> Language {
        let (cjk, units) = texts.into_iter().map(units).fold((0, 0), |(c, u), (c2, u2)| (c + c2, u + u2));
        if units > 0 && cjk as f64 / units as f64 >= CJK_SHARE_ZH { Language::Zh } else { Language::En }
    }
}

/// A CJK ideograph (unified ideographs and their common extensions).
pub fn is_cjk(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{2FA1F}')
}

/// The share of CJK ideographs among the "units" of `text`: each ideograph is one unit, and so
/// is each word of other letters, so that `VPN client 要去哪裡 download` reads as mostly Chinese
/// (0 when it has no letters).
pub fn cjk_share(text: &str) -> f64 {
    let (cjk, units) = units(text);
    if units == 0 { 0.0 } else { cjk as f64 / units as f64 }
}

/// `(ideographs, ideographs + words of other letters)`.
fn units(text: &str) -> (usize, usize) {
    let (mut cjk, mut words, mut in_word) = (0, 0, false);
    for c in text.chars() {
        if is_cjk(c) {
            cjk += 1;
            in_word = false;
        } else if c.is_alphabetic() {
            words += usize::from(!in_word);
            in_word = true;
        } else {
            in_word = false;
        }
    }
    (cjk, cjk + words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_chinese_and_english() {
        assert_eq!(Language::detect(["連線公司 VPN 前，請先下載新版 VPN 用戶端。"]), Language::Zh);
        assert_eq!(Language::detect(["Monthly plans are billed on the same day."]), Language::En);
        assert_eq!(Language::detect([""]), Language::En);
    }

    #[test]
    fn chinese_keeps_the_reference_prefixes() {
        assert_eq!(Language::Zh.answer_prefix(), "依據公司規範:");
        assert_eq!(Language::Zh.refusal_prefix(), "抱歉");
        assert!(Language::En.answer_prefix().ends_with(' '));
    }

    #[test]
    fn cjk_share_counts_words_as_one() {
        assert_eq!(cjk_share("VPN 帳號"), 2.0 / 3.0);
        assert_eq!(cjk_share("how do I connect"), 0.0);
        assert_eq!(cjk_share("123 ?"), 0.0);
    }
}
