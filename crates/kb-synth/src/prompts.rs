//! What the generator is asked, per language: the prompt of every synthesis task.
//!
//! Small models follow short, concrete instructions with one output format best, so every list
//! task asks for one question a line behind `- `, and every judgement for a one-word answer.

use kb_dataset::Language;

/// A training question style. The file names them `short`, `full`, `formal` and `mixed`
/// (Chinese: mixed Chinese-English) or `terse` (English: keyword queries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Style {
    Short,
    Full,
    Formal,
    /// Chinese-English code-switching for a Chinese KB, search-box keywords for an English one.
    Mixed,
}

impl Style {
    pub const ALL: [Style; 4] = [Style::Short, Style::Full, Style::Formal, Style::Mixed];

    /// The style's name in `questions.toml`.
    pub fn name(self, lang: Language) -> &'static str {
        match (self, lang) {
            (Style::Short, _) => "short",
            (Style::Full, _) => "full",
            (Style::Formal, _) => "formal",
            (Style::Mixed, Language::Zh) => "mixed",
            (Style::Mixed, Language::En) => "terse",
        }
    }

    fn describe(self, lang: Language) -> &'static str {
        match (self, lang) {
            (Style::Short, Language::Zh) => "很短的口語問法，像在聊天軟體上隨手打字，可以省略主詞，偶爾有錯字",
            (Style::Full, Language::Zh) => "完整、自然的一句話問題",
            (Style::Formal, Language::Zh) => "正式的書面語，像寫給承辦單位的公文或電子郵件",
            (Style::Mixed, Language::Zh) => "中英夾雜，像科技業同事說話那樣在中文裡混用英文單字",
            (Style::Short, Language::En) => "very short and casual, like a quick chat message, lowercase, maybe a typo",
            (Style::Full, Language::En) => "a complete, natural one-sentence question",
            (Style::Formal, Language::En) => "formal written English, like a polite email to the team in charge",
            (Style::Mixed, Language::En) => "a few keywords only, like a search box query",
        }
    }
}

/// One synthesis task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// A short English slug naming the entry's topic.
    Topic,
    /// Who to contact, quoted from the entry, or nothing.
    Contact,
    /// Training questions in one style.
    Train(Style),
    /// Questions worded from another angle, for the eval and augment pools (`part` tells two
    /// such prompts apart).
    Varied(u8),
    /// Questions on the entry's topic that the entry does not answer.
    NearMiss,
    /// Questions the whole KB does not touch (`part` tells the prompts apart).
    OffTopic(u8),
    /// Whether a text answers a question.
    Judge,
}

impl Task {
    /// A stable name, part of each request's seed and cache key.
    pub fn key(self) -> String {
        match self {
            Task::Topic => "topic".into(),
            Task::Contact => "contact".into(),
            Task::Train(s) => format!("train-{:?}", s).to_lowercase(),
            Task::Varied(p) => format!("varied-{p}"),
            Task::NearMiss => "near-miss".into(),
            Task::OffTopic(p) => format!("off-topic-{p}"),
            Task::Judge => "judge".into(),
        }
    }

    /// Whether the task samples (lists of questions) or decodes greedily (names, judgements).
    pub fn sampled(self) -> bool {
        matches!(self, Task::Train(_) | Task::Varied(_) | Task::NearMiss | Task::OffTopic(_))
    }
}

/// The system turn of every request.
pub fn system(lang: Language) -> &'static str {
    match lang {
        Language::Zh => "你是企業 FAQ 問答系統的資料編寫助理，依照指示用中文回答。",
        Language::En => "You write data for a company's FAQ assistant. Follow the instructions exactly.",
    }
}

/// A list task about one entry.
pub fn list(lang: Language, task: Task, text: &str, n: usize) -> String {
    match (lang, task) {
        (Language::Zh, Task::Train(style)) => format!(
            "以下是公司規範中的一條說明：\n「{text}」\n\n請站在提問者的角度，寫出 {n} 個不同的問題，每個問題都能用這條說明回答。\n寫法：{}。\n只列出問題，一行一個，前面加上「- 」，不要寫答案。",
            style.describe(lang)
        ),
        (Language::Zh, Task::Varied(_)) => format!(
            "以下是公司規範中的一條說明：\n「{text}」\n\n請站在提問者的角度，寫出 {n} 個不同的問題，每個問題都能用這條說明回答。\n寫法要多變：先描述自己的處境再發問、用描述代替文中的關鍵名詞、或問文中的數字、期限或後果。\n只列出問題，一行一個，前面加上「- 」，不要寫答案。"
        ),
        (Language::Zh, _) => format!(
            "以下是公司規範中的一條說明：\n「{text}」\n\n請寫出 {n} 個和這條說明主題相關、但這條說明沒有回答的問題（問文中沒有提到的細節、例外或其他情況）。\n只列出問題，一行一個，前面加上「- 」。"
        ),
        (Language::En, Task::Train(style)) => format!(
            "Here is one entry of a company's policy FAQ:\n\"{text}\"\n\nWrite {n} different questions that someone could ask and that this entry answers.\nStyle: {}.\nList only the questions, one per line, each starting with \"- \". No answers.",
            style.describe(lang)
        ),
        (Language::En, Task::Varied(_)) => format!(
            "Here is one entry of a company's policy FAQ:\n\"{text}\"\n\nWrite {n} different questions that someone could ask and that this entry answers.\nVary the wording: describe your own situation first, describe things instead of using the entry's key words, or ask about a number, deadline or consequence in it.\nList only the questions, one per line, each starting with \"- \". No answers."
        ),
        (Language::En, _) => format!(
            "Here is one entry of a company's policy FAQ:\n\"{text}\"\n\nWrite {n} questions on the same topic that this entry does NOT answer (details, exceptions or cases it does not mention).\nList only the questions, one per line, each starting with \"- \"."
        ),
    }
}

/// Questions none of the KB's entries touch; `topics` are the entries' texts.
pub fn off_topic(lang: Language, topics: &[&str], n: usize) -> String {
    let list: String = topics.iter().map(|t| format!("- {}\n", headline(t))).collect();
    match lang {
        Language::Zh => format!(
            "某公司的 FAQ 知識庫只有以下這些說明：\n{list}\n請寫出 {n} 個這家公司的員工或客戶可能會問、但以上說明完全沒有涉及的問題（其他方面的事情）。\n只列出問題，一行一個，前面加上「- 」。"
        ),
        Language::En => format!(
            "A company's FAQ knowledge base holds only these entries:\n{list}\nWrite {n} questions that the company's staff or customers might ask but that none of these entries touches (other matters entirely).\nList only the questions, one per line, each starting with \"- \"."
        ),
    }
}

/// The entry's topic as a short English slug.
pub fn topic(lang: Language, text: &str) -> String {
    match lang {
        Language::Zh => format!(
            "以下是公司規範中的一條說明：\n「{text}」\n\n請用一到三個英文小寫單字為它的主題命名，單字之間用連字號連接，單字要說出這條說明講的是什麼。只輸出名稱。"
        ),
        Language::En => format!(
            "Here is one entry of a company's policy FAQ:\n\"{text}\"\n\nName its topic with one to three lowercase English words joined by hyphens, taken from what this entry is about. Output only the name."
        ),
    }
}

/// Who the entry says to contact, quoted.
pub fn contact(lang: Language, text: &str) -> String {
    match lang {
        Language::Zh => format!(
            "以下是公司規範中的一條說明：\n「{text}」\n\n這條說明有沒有寫出該找哪個單位、窗口、電話或信箱？有的話只照抄那個單位或聯絡方式；沒有的話只輸出「無」。"
        ),
        Language::En => format!(
            "Here is one entry of a company's policy FAQ:\n\"{text}\"\n\nDoes it name a team, desk, phone number or email address to contact? If so, copy only that contact exactly; if not, output only NONE."
        ),
    }
}

/// Whether `text` answers `question`.
pub fn judge(lang: Language, text: &str, question: &str) -> String {
    match lang {
        Language::Zh => {
            format!("說明：「{text}」\n問題：{question}\n\n只根據這條說明，能回答這個問題嗎？只回答「能」或「不能」。")
        }
        Language::En => format!(
            "Entry: \"{text}\"\nQuestion: {question}\n\nUsing only this entry, can the question be answered? Answer only YES or NO."
        ),
    }
}

/// The refusal taught for a question the KB does not answer, naming `contact` when known.
pub fn refusal(lang: Language, contact: Option<&str>) -> String {
    match (lang, contact) {
        (Language::Zh, Some(c)) => format!("抱歉，目前的規範沒有說明這一點，請洽{c}。"),
        (Language::Zh, None) => "抱歉，目前的規範沒有說明這一點，請洽詢負責的單位。".to_string(),
        (Language::En, Some(c)) => format!("Sorry, our policy does not cover this; please contact {c}."),
        (Language::En, None) => "Sorry, our policy does not cover this; please ask the team in charge.".to_string(),
    }
}

/// The first clause of an entry, enough to name what it is about.
fn headline(text: &str) -> String {
    const MAX: usize = 40;
    let clause = text.split(['，', '。', ';', '；', ',', '.']).find(|c| !c.trim().is_empty()).unwrap_or(text);
    clause.trim().chars().take(MAX).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_start_with_the_language_prefix() {
        for lang in [Language::Zh, Language::En] {
            for c in [None, Some("IT")] {
                assert!(refusal(lang, c).starts_with(lang.refusal_prefix()));
            }
        }
        assert!(refusal(Language::Zh, Some("櫃台")).contains("櫃台"));
    }

    #[test]
    fn prompts_carry_the_text_and_count() {
        let p = list(Language::En, Task::Train(Style::Short), "Refunds within 14 days.", 8);
        assert!(p.contains("Refunds within 14 days.") && p.contains("Write 8"));
        let p = list(Language::Zh, Task::NearMiss, "試用期結束後才可申請。", 6);
        assert!(p.contains("試用期結束後才可申請。") && p.contains("沒有回答"));
    }

    #[test]
    fn headline_is_the_first_clause() {
        assert_eq!(
            headline("遠距工作須待試用期結束後才可申請，試用期間不得遠距工作。"),
            "遠距工作須待試用期結束後才可申請"
        );
        assert_eq!(headline("Monthly plans renew monthly; annual plans yearly."), "Monthly plans renew monthly");
    }

    #[test]
    fn task_keys_are_distinct() {
        let mut keys: Vec<String> = Style::ALL.iter().map(|&s| Task::Train(s).key()).collect();
        keys.extend(
            [
                Task::Topic,
                Task::Contact,
                Task::Varied(0),
                Task::Varied(1),
                Task::NearMiss,
                Task::OffTopic(0),
                Task::Judge,
            ]
            .map(Task::key),
        );
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n);
    }
}
