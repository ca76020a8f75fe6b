//! The exact text layout shared with the Python reference pipeline: Qwen ChatML turns, and the
//! answers and refusals of a KB's language ([`Language`]: a Chinese KB keeps the reference's
//! `依據公司規範:` and `抱歉`).

use crate::kb::{Kb, KbEntry};
use crate::language::Language;

const SYSTEM_START: &str = "<|im_start|>system\n";
const USER_START: &str = "<|im_start|>user\n";
const TURN_SEP: &str = "<|im_end|>\n<|im_start|>assistant\n";
const END: &str = "<|im_end|>";

/// The reply the model must learn for a question about `entry` of a KB in `lang`.
pub fn answer_for(entry: &KbEntry, lang: Language) -> String {
    format!("{}{}", lang.answer_prefix(), entry.text)
}

impl Kb {
    /// The reply the model must learn for a question about `entry`, in the KB's language.
    pub fn answer_for(&self, entry: &KbEntry) -> String {
        answer_for(entry, self.language())
    }
}

/// Whether a reply is a refusal in any language (after leading whitespace, as generated text may
/// have some).
pub fn is_refusal(answer: &str) -> bool {
    let answer = answer.trim_start();
    Language::ALL.iter().any(|l| answer.starts_with(l.refusal_prefix()))
}

/// The reply without the answer prefix of any language, if it has one.
pub fn strip_answer_prefix(answer: &str) -> Option<&str> {
    Language::ALL.iter().find_map(|l| answer.strip_prefix(l.answer_prefix()))
}

/// One training/eval sample: a user turn and an assistant turn.
pub fn chatml(question: &str, answer: &str) -> String {
    format!("{USER_START}{question}{TURN_SEP}{answer}{END}")
}

/// The generation prompt for a question: [`chatml`] up to where the assistant's reply starts.
pub fn prompt(question: &str) -> String {
    format!("{USER_START}{question}{TURN_SEP}")
}

/// A generation prompt with a system turn first (the synthesis prompts; training samples have
/// none, like the reference's).
pub fn chat_prompt(system: &str, user: &str) -> String {
    format!("{SYSTEM_START}{system}<|im_end|>\n{}", prompt(user))
}

/// Splits a [`chatml`] text back into `(question, answer)`; `None` when the markers are missing.
pub(crate) fn split_chatml(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(USER_START)?;
    let rest = rest.strip_suffix(END)?;
    rest.split_once(TURN_SEP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_matches_reference_layout() {
        assert_eq!(
            chatml("VPN怎麼連?", "依據公司規範:x"),
            "<|im_start|>user\nVPN怎麼連?<|im_end|>\n<|im_start|>assistant\n依據公司規範:x<|im_end|>"
        );
    }

    #[test]
    fn chat_prompt_puts_the_system_turn_first() {
        assert_eq!(
            chat_prompt("s", "q"),
            "<|im_start|>system\ns<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn prompt_is_a_prefix_of_chatml() {
        let full = chatml("q", "a");
        assert!(full.starts_with(&prompt("q")));
        assert_eq!(&full[prompt("q").len()..], "a<|im_end|>");
    }

    #[test]
    fn split_round_trips_and_rejects_bad_text() {
        assert_eq!(split_chatml(&chatml("問\n題", "答")), Some(("問\n題", "答")));
        assert_eq!(split_chatml(&chatml("", "")), Some(("", "")));
        assert_eq!(split_chatml("just text"), None);
        assert_eq!(split_chatml(&prompt("q")), None);
        assert_eq!(split_chatml("<|im_start|>user\nq<|im_end|>"), None);
    }

    #[test]
    fn answers_and_refusals() {
        let e = KbEntry::from_text("請使用新版 VPN。");
        assert_eq!(answer_for(&e, Language::Zh), "依據公司規範:請使用新版 VPN。");
        assert_eq!(answer_for(&e, Language::En), "According to company policy: 請使用新版 VPN。");
        assert!(is_refusal("Sorry, ask HR."));
        assert_eq!(strip_answer_prefix("依據公司規範:x"), Some("x"));
        assert_eq!(strip_answer_prefix("x"), None);
        assert!(is_refusal("抱歉,這個問題請洽 HR。"));
        assert!(is_refusal("  抱歉"));
        assert!(!is_refusal(&answer_for(&e, Language::Zh)));
        assert!(!is_refusal("很抱歉"));
    }
}
