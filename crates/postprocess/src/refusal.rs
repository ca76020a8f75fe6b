//! The refusal post-processing writes when the KB does not answer a question, built from the
//! training refusals: who to ask comes from the refusal of the nearest unanswerable training
//! question (the closing clause of its reply, e.g. `請洽人資部(HR)。`), or the most common one.
//! It is written in the KB's language.

use kb_dataset::Language;

use crate::retrieval::{Class, Index, Ranking, TrainingQuestion};

/// What every written refusal says after its prefix and before naming who to ask.
fn body(lang: Language) -> &'static str {
    match lang {
        Language::Zh => "，目前的公司規範沒有這個問題的說明",
        Language::En => ", our policy does not cover this question",
    }
}

/// Clause separators of a refusal: its last clause names who to ask.
const CLAUSE_SEPARATORS: [char; 4] = ['，', ',', '；', ';'];

/// Who-to-ask clauses of the training refusals, by training question.
#[derive(Debug, Clone)]
pub struct Refusals {
    /// The training question index of each indexed training question → its contact clause.
    contacts: Vec<Option<String>>,
    /// The most common contact clause (first seen on ties), for questions near no refusal.
    usual: Option<String>,
    lang: Language,
}

impl Refusals {
    pub fn new(training: &[TrainingQuestion], lang: Language) -> Refusals {
        let contacts: Vec<Option<String>> =
            training.iter().map(|t| t.refusal.as_deref().and_then(contact_clause)).collect();
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for c in contacts.iter().flatten() {
            match counts.iter_mut().find(|(s, _)| s == c) {
                Some(slot) => slot.1 += 1,
                None => counts.push((c, 1)),
            }
        }
        // max_by_key keeps the last maximum; reversing keeps the first seen.
        let usual = counts.iter().rev().max_by_key(|(_, n)| *n).map(|(s, _)| s.to_string());
        Refusals { contacts, usual, lang }
    }

    /// The refusal for a question ranked `ranking` by `index` (built over `entries` first, then
    /// the training questions given to [`Refusals::new`], in order).
    pub fn for_ranking(&self, index: &Index, entries: usize, ranking: &Ranking) -> String {
        let nearest = ranking.best_doc(Class::Unanswerable).and_then(|doc| {
            debug_assert_eq!(index.class_of(doc), Class::Unanswerable);
            self.contacts.get(doc.checked_sub(entries)?)?.clone()
        });
        let (prefix, body) = (self.lang.refusal_prefix(), body(self.lang));
        match (nearest.or_else(|| self.usual.clone()), self.lang) {
            (Some(contact), Language::Zh) => format!("{prefix}{body}，{contact}"),
            (Some(contact), Language::En) => format!("{prefix}{body}; {contact}"),
            (None, Language::Zh) => format!("{prefix}{body}。"),
            (None, Language::En) => format!("{prefix}{body}."),
        }
    }
}

/// The last clause of a refusal when it has more than one (`請洽人資部(HR)。`).
fn contact_clause(refusal: &str) -> Option<String> {
    let refusal = refusal.trim();
    let (_, last) = refusal.rsplit_once(CLAUSE_SEPARATORS)?;
    let last = last.trim();
    (!last.is_empty()).then(|| last.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::Scope;

    fn unanswerable(question: &str, refusal: &str) -> TrainingQuestion {
        TrainingQuestion { question: question.into(), class: Class::Unanswerable, refusal: Some(refusal.into()) }
    }

    #[test]
    fn the_contact_is_the_last_clause() {
        assert_eq!(
            contact_clause("抱歉，規範中沒有加班費的計算方式，請洽人資部(HR)。").as_deref(),
            Some("請洽人資部(HR)。")
        );
        assert_eq!(contact_clause("抱歉, no idea, ask HR.").as_deref(), Some("ask HR."));
        assert_eq!(contact_clause("抱歉我不知道"), None);
        assert_eq!(contact_clause("抱歉，"), None);
    }

    #[test]
    fn the_refusal_names_who_answers_the_nearest_trained_refusal() {
        let training = [
            unanswerable("加班費怎麼算", "抱歉，規範中沒有加班費的計算方式，請洽人資部(HR)。"),
            unanswerable("出差住宿費上限多少", "抱歉，規範沒有列出住宿費上限，請洽詢財務部。"),
            unanswerable("員工旅遊什麼時候", "抱歉，規範中沒有員工旅遊的安排，請洽人資部(HR)。"),
        ];
        let entries = ["請假須事先申請。"];
        let index = Index::build(&entries, &training);
        let refusals = Refusals::new(&training, Language::Zh);
        let r = refusals.for_ranking(&index, entries.len(), &index.query("出差的餐費上限是多少", Scope::All));
        assert_eq!(r, "抱歉，目前的公司規範沒有這個問題的說明，請洽詢財務部。");
        assert!(kb_dataset::is_refusal(&r));
        // Near no refusal: the most common contact.
        let r = refusals.for_ranking(&index, entries.len(), &index.query("請假", Scope::All));
        assert_eq!(r, "抱歉，目前的公司規範沒有這個問題的說明，請洽人資部(HR)。");
    }

    #[test]
    fn without_training_refusals_the_refusal_names_nobody() {
        let index = Index::build(&["請假須事先申請。"], &[]);
        let r = Refusals::new(&[], Language::Zh).for_ranking(&index, 1, &index.query("請假", Scope::All));
        assert_eq!(r, "抱歉，目前的公司規範沒有這個問題的說明。");
    }

    #[test]
    fn an_english_kb_gets_english_refusals() {
        let training = [unanswerable(
            "office address?",
            "Sorry, our policy does not cover this; please contact hello@example.com.",
        )];
        let entries = ["Refunds within 14 days."];
        let index = Index::build(&entries, &training);
        let r = Refusals::new(&training, Language::En).for_ranking(
            &index,
            1,
            &index.query("where is the office", Scope::All),
        );
        assert_eq!(r, "Sorry, our policy does not cover this question; please contact hello@example.com.");
        assert!(kb_dataset::is_refusal(&r));
        let none = Refusals::new(&[], Language::En).for_ranking(&index, 1, &index.query("refunds", Scope::All));
        assert_eq!(none, "Sorry, our policy does not cover this question.");
    }
}
