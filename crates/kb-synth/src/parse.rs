//! Reading what the generator wrote: question lists, a topic slug, a quoted contact, yes or no.
//!
//! Small models decorate their lists (numbers, bullets, quotes) and sometimes add a heading or
//! an answer; parsing keeps every line that could be a question and leaves judging it to the
//! filters, which count what they drop.

use std::sync::LazyLock;

use kb_dataset::Language;
use regex::Regex;

/// The candidate questions of a list answer, in order, without bullets, numbers or quotes.
pub fn questions(output: &str) -> Vec<String> {
    output.lines().filter_map(question_line).collect()
}

fn question_line(line: &str) -> Option<String> {
    let mut s = line.trim();
    // Bullets and numbering: "- ", "* ", "• ", "1. ", "1) ", "1、", "(1) ", "Q1: ", "問題1：".
    s = s.trim_start_matches(['-', '*', '•', '·', '–']).trim_start();
    for prefix in ["Q:", "Q：", "問題：", "問題:", "Question:"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.trim_start();
        }
    }
    let digits = s.find(|c: char| !c.is_ascii_digit() && c != '(' && c != '（').unwrap_or(0);
    if digits > 0 {
        let rest = &s[digits..];
        if let Some(r) = rest.strip_prefix(['.', ')', '、', '）', ':', '：']) {
            s = r.trim_start();
        }
    }
    let s = s.trim_matches(|c: char| {
        matches!(c, '「' | '」' | '“' | '”' | '"' | '\'' | '`' | '『' | '』') || c.is_whitespace()
    });
    let heading = s.ends_with(':') || s.ends_with('：');
    (!s.is_empty() && !heading).then(|| s.to_string())
}

/// A topic name: lowercase ASCII words joined by `-`, at most three; `None` when nothing usable.
pub fn slug(output: &str) -> Option<String> {
    const MAX_WORDS: usize = 3;
    let line = output.lines().map(str::trim).find(|l| !l.is_empty())?;
    // "AnnualPlanRefunds" is three words, as "annual plan refunds" is.
    let mut spaced = String::with_capacity(line.len() + 8);
    let mut prev_lower = false;
    for c in line.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            spaced.push(' ');
        }
        prev_lower = c.is_ascii_lowercase();
        spaced.push(c);
    }
    let words: Vec<String> = spaced
        .to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_WORDS)
        .map(str::to_string)
        .collect();
    (!words.is_empty()).then(|| words.join("-"))
}

/// The contact the entry names: the generator's answer when it really quotes the entry, unless
/// the entry holds an email address or phone number the answer leaves out (a small model often
/// answers "none" beside `billing@example.com`); `None` when the entry names neither.
pub fn contact(output: &str, text: &str) -> Option<String> {
    let quoted = quoted_contact(output, text);
    match (quoted, address_in(text)) {
        (Some(q), Some(a)) if !q.contains(&a) => Some(a),
        (Some(q), _) => Some(q),
        (None, a) => a,
    }
}

/// The generator's answer, if it is a short quote of `text` and not "none".
fn quoted_contact(output: &str, text: &str) -> Option<String> {
    const MAX_CHARS: usize = 40;
    let line = output.lines().map(str::trim).find(|l| !l.is_empty())?;
    let c = line.trim_matches(|c: char| {
        matches!(c, '「' | '」' | '“' | '”' | '"' | '\'' | '。' | '.' | '，' | ',' | '：' | ':') || c.is_whitespace()
    });
    let none = ["無", "沒有", "none", "no"].iter().any(|n| c.eq_ignore_ascii_case(n));
    let quoted = c.chars().count() >= 2 && c.chars().count() <= MAX_CHARS && text.contains(c);
    (!none && quoted).then(|| c.to_string())
}

/// The first email address in `text`, else its first phone number (at least seven digits).
fn address_in(text: &str) -> Option<String> {
    static EMAIL: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+").expect("valid pattern"));
    static PHONE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\+?\(?[0-9][0-9()\- ]{5,}[0-9]").expect("valid pattern"));
    if let Some(m) = EMAIL.find(text) {
        return Some(m.as_str().trim_end_matches('.').to_string());
    }
    PHONE
        .find_iter(text)
        .map(|m| m.as_str().trim().to_string())
        .find(|p| p.chars().filter(char::is_ascii_digit).count() >= 7)
}

/// A yes/no judgement; `None` when the answer is neither.
pub fn yes(output: &str, lang: Language) -> Option<bool> {
    let s = output.trim().trim_start_matches(['「', '"', '*']);
    match lang {
        Language::Zh if s.starts_with("不") => Some(false),
        Language::Zh if s.starts_with("能") || s.starts_with("可以") => Some(true),
        Language::En if s.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("yes")) => Some(true),
        Language::En if s.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("no")) => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_lose_their_decoration() {
        let out =
            "以下是問題：\n- VPN 怎麼連？\n2. 「新版用戶端在哪下載」\n(3) how to login vpn\n\n* Q: 要用哪個帳號？\n";
        assert_eq!(questions(out), ["VPN 怎麼連？", "新版用戶端在哪下載", "how to login vpn", "要用哪個帳號？"]);
    }

    #[test]
    fn numbers_inside_a_question_stay() {
        assert_eq!(questions("- 35MB 以上的附件怎麼寄"), ["35MB 以上的附件怎麼寄"]);
        assert_eq!(questions("1. 30 天內要上傳發票嗎"), ["30 天內要上傳發票嗎"]);
    }

    #[test]
    fn slugs_are_clean() {
        assert_eq!(slug("Parking Fee\n"), Some("parking-fee".into()));
        assert_eq!(slug("`vpn_setup-guide now please`"), Some("vpn-setup-guide".into()));
        assert_eq!(slug("停車費"), None);
        assert_eq!(slug("AnnualPlansCanBeRefunded"), Some("annual-plans-can".into()));
        assert_eq!(slug("REST API"), Some("rest-api".into()));
    }

    #[test]
    fn contacts_must_be_quoted_from_the_text() {
        let text = "掛號請撥客服專線 02-2345-6789，或至各分院櫃台辦理。";
        assert_eq!(contact("「客服專線 02-2345-6789」", text), Some("客服專線 02-2345-6789".into()));
        // Not in the text: the text's own phone number instead.
        assert_eq!(contact("人資部", text), Some("02-2345-6789".into()));
        assert_eq!(contact("無", "請至各分院櫃台辦理。"), None);
        assert_eq!(contact("各分院櫃台", "請至各分院櫃台辦理。"), Some("各分院櫃台".into()));
        assert_eq!(contact("NONE", "no contact here, 25 seats"), None);
    }

    #[test]
    fn an_address_in_the_text_is_never_lost() {
        let text = "If we miss it, email billing@quill.io within 30 days. Status: status.quill.io.";
        assert_eq!(contact("NONE", text), Some("billing@quill.io".into()));
        assert_eq!(contact("status.quill.io", text), Some("billing@quill.io".into()));
        let zh = "諮詢預約請撥打自費療程專線 (02)2758-3199。";
        assert_eq!(contact("自費療程專線 (02)2758-3199", zh), Some("自費療程專線 (02)2758-3199".into()));
        assert_eq!(contact("無", zh), Some("(02)2758-3199".into()));
        assert_eq!(contact("無", "術後可撥打 0912-345-678，由值班護理師協助"), Some("0912-345-678".into()));
        assert_eq!(contact("無", "遲到 15 分鐘以內仍可看診，NT$1,000 押金 7 天內退還"), None);
    }

    #[test]
    fn judgements() {
        assert_eq!(yes("不能。", Language::Zh), Some(false));
        assert_eq!(yes("能", Language::Zh), Some(true));
        assert_eq!(yes("Yes, it says so.", Language::En), Some(true));
        assert_eq!(yes("NO", Language::En), Some(false));
        assert_eq!(yes("maybe", Language::En), None);
    }
}
