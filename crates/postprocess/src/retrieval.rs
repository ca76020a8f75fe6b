//! Retrieval over the KB without the model: BM25 (crate `bm25`) on CJK character unigrams and
//! bigrams plus lower-case ASCII words.
//!
//! Every KB entry is indexed as its text and as each of its training questions; the unanswerable
//! training questions form a class of their own. A class scores as the mean of its
//! [`TOP_DOCS`] best documents (a class with fewer counts the missing ones as 0), so one lucky
//! n-gram overlap is not enough. A query ranks the entries alone ([`Scope::Entries`]: which entry
//! is it about?) or the entries and the unanswerable class ([`Scope::All`]: does the KB answer it
//! at all?), with the top class's margin over the runner-up: `(s1 − s2) / s1`, 0 when nothing
//! matched, 1 when one class alone did. The margin is scale-free, which is what lets
//! [`crate::Calibration`] turn it into thresholds.

use bm25::{Embedder, EmbedderBuilder, Scorer};

/// What a document, a training question or a ranking position is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// The KB entry at this index (KB order).
    Entry(usize),
    /// A question the KB does not answer.
    Unanswerable,
}

/// How many best documents of a class make its score.
pub const TOP_DOCS: usize = 3;

/// Which classes a query ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The KB entries only: which entry a question is about, given that the KB answers it.
    Entries,
    /// The entries and the unanswerable class: whether the KB answers the question at all.
    All,
}

/// A question of the training set with the class it was trained on.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingQuestion {
    pub question: String,
    pub class: Class,
    /// The trained reply, for unanswerable questions (the refusal).
    pub refusal: Option<String>,
}

/// One indexed document.
#[derive(Debug, Clone)]
struct Doc {
    class: Class,
    /// The normalized text, so leave-one-out can find a question's own documents.
    key: String,
}

/// A query's classes, best first; classes without any matching term are left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// `(class, score, best document)`; ties are broken by class order, so rankings are
    /// deterministic.
    pub classes: Vec<(Class, f64, usize)>,
}

impl Ranking {
    /// The best class, if anything matched.
    pub fn top(&self) -> Option<Class> {
        self.classes.first().map(|&(c, _, _)| c)
    }

    /// `(s1 − s2) / s1` of the two best classes: 0 when nothing matched, 1 when one class alone did.
    pub fn margin(&self) -> f64 {
        match self.classes.as_slice() {
            [] => 0.0,
            [_] => 1.0,
            [(_, s1, _), (_, s2, _), ..] => (s1 - s2) / s1,
        }
    }

    /// The best document of `class`, if it matched.
    pub fn best_doc(&self, class: Class) -> Option<usize> {
        self.classes.iter().find(|&&(c, _, _)| c == class).map(|&(_, _, d)| d)
    }

    /// The rank (0 = top) and score of `class`.
    pub fn position(&self, class: Class) -> Option<(usize, f64)> {
        self.classes.iter().position(|&(c, _, _)| c == class).map(|i| (i, self.classes[i].1))
    }
}

/// The BM25 index of a KB and its training questions.
pub struct Index {
    embedder: Embedder<u32, Terms>,
    scorer: Scorer<usize, u32>,
    docs: Vec<Doc>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("docs", &self.docs.len()).finish()
    }
}

impl Index {
    /// Indexes each entry text (`entries[i]` is `Class::Entry(i)`) and each training question.
    pub fn build(entries: &[&str], training: &[TrainingQuestion]) -> Index {
        let mut texts: Vec<(Class, &str)> =
            entries.iter().enumerate().map(|(i, text)| (Class::Entry(i), *text)).collect();
        texts.extend(training.iter().map(|t| (t.class, t.question.as_str())));
        let lengths: Vec<usize> = texts.iter().map(|(_, t)| terms(t).len()).collect();
        let avgdl = lengths.iter().sum::<usize>() as f32 / lengths.len().max(1) as f32;
        let embedder = EmbedderBuilder::<u32, Terms>::with_avgdl(avgdl.max(1.0)).build();
        let mut scorer = Scorer::new();
        let mut docs = Vec::with_capacity(texts.len());
        for (id, (class, text)) in texts.into_iter().enumerate() {
            scorer.upsert(&id, embedder.embed(text));
            docs.push(Doc { class, key: key(text) });
        }
        Index { embedder, scorer, docs }
    }

    /// Ranks the classes of `scope` for `question`.
    pub fn query(&self, question: &str, scope: Scope) -> Ranking {
        self.rank(question, scope, &[])
    }

    /// Ranks as if the documents whose text equals `question` (after normalization) were not
    /// indexed: leave-one-out for calibration. Document frequencies still count them, a
    /// difference too small to move a ranking.
    pub fn query_left_out(&self, question: &str, scope: Scope) -> Ranking {
        let own = key(question);
        let skip: Vec<usize> = self.docs.iter().enumerate().filter(|(_, d)| d.key == own).map(|(i, _)| i).collect();
        self.rank(question, scope, &skip)
    }

    /// The class of document `doc` (as named by [`Ranking::classes`]).
    pub fn class_of(&self, doc: usize) -> Class {
        self.docs[doc].class
    }

    fn rank(&self, question: &str, scope: Scope, skip: &[usize]) -> Ranking {
        let query = self.embedder.embed(question);
        // Per class, its matching documents' (score, id).
        let mut matched: Vec<(Class, Vec<(f64, usize)>)> = Vec::new();
        for m in self.scorer.matches(&query) {
            let class = self.docs[m.id].class;
            if skip.contains(&m.id) || m.score <= 0.0 || (scope == Scope::Entries && class == Class::Unanswerable) {
                continue;
            }
            match matched.iter_mut().find(|(c, _)| *c == class) {
                Some((_, docs)) => docs.push((f64::from(m.score), m.id)),
                None => matched.push((class, vec![(f64::from(m.score), m.id)])),
            }
        }
        let mut classes: Vec<(Class, f64, usize)> = matched
            .into_iter()
            .map(|(class, mut docs)| {
                // Best first; equal scores by document id, whatever order the scorer returned.
                docs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                let score = docs.iter().take(TOP_DOCS).map(|d| d.0).sum::<f64>() / TOP_DOCS as f64;
                (class, score, docs[0].1)
            })
            .collect();
        classes.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ranking { classes }
    }
}

/// Whitespace-free, case-folded text: what makes two questions "the same" for leave-one-out.
fn key(text: &str) -> String {
    fold(text).chars().filter(|c| !c.is_whitespace()).collect()
}

/// Full-width ASCII to ASCII, then lower case (`ＶＰＮ` and `vpn` are one word).
fn fold(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// Characters written without spaces between words: each is a term, and so is each pair.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F) // Extensions B–F, compatibility supplement
}

/// The index's terms: CJK unigrams and bigrams within each run of CJK characters, and ASCII
/// letter/digit words; everything else separates.
pub fn terms(text: &str) -> Vec<String> {
    let text = fold(text);
    let mut out = Vec::new();
    let mut word = String::new();
    let mut previous_cjk: Option<char> = None;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
            previous_cjk = None;
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if is_cjk(c) {
            out.push(c.to_string());
            if let Some(p) = previous_cjk {
                out.push([p, c].iter().collect());
            }
            previous_cjk = Some(c);
        } else {
            previous_cjk = None;
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// [`terms`] as the `bm25` crate's tokenizer.
#[derive(Debug, Default, Clone, Copy)]
struct Terms;

impl bm25::Tokenizer for Terms {
    fn tokenize(&self, input_text: &str) -> Vec<String> {
        terms(input_text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VPN: &str = "連線公司 VPN 前，請先下載新版 VPN 用戶端，安裝後以公司 SSO(單一登入)帳號登入。";
    const MAIL: &str = "公司電子郵件的附件上限為 35MB，超過上限的檔案請上傳至公司雲端。";

    fn q(question: &str, class: Class) -> TrainingQuestion {
        TrainingQuestion { question: question.into(), class, refusal: None }
    }

    #[test]
    fn terms_are_cjk_unigrams_bigrams_and_folded_ascii_words() {
        assert_eq!(terms("VPN 連線"), ["vpn", "連", "線", "連線"]);
        assert_eq!(terms("ＶＰＮ怎麼連？"), ["vpn", "怎", "麼", "怎麼", "連", "麼連"]);
        // Punctuation and ASCII break bigrams; digits stay with letters.
        assert_eq!(terms("附件35MB，上限"), ["附", "件", "附件", "35mb", "上", "限", "上限"]);
        assert!(terms("  ，。!? ").is_empty());
    }

    #[test]
    fn a_question_ranks_its_own_entry_first() {
        let training = [q("vpn 怎麼連", Class::Entry(0)), q("附件太大寄不出去", Class::Entry(1))];
        let index = Index::build(&[VPN, MAIL], &training);
        let r = index.query("VPN 要怎麼連線", Scope::All);
        assert_eq!(r.top(), Some(Class::Entry(0)));
        assert!(r.margin() > 0.0 && r.margin() <= 1.0, "{r:?}");
        let r = index.query("檔案太大,附件寄不出去", Scope::All);
        assert_eq!(r.top(), Some(Class::Entry(1)));
    }

    #[test]
    fn nothing_matched_has_no_top_and_zero_margin() {
        let index = Index::build(&[VPN], &[]);
        let r = index.query("weather?", Scope::All);
        assert_eq!((r.top(), r.margin()), (None, 0.0));
    }

    #[test]
    fn leaving_a_question_out_hides_its_own_document() {
        let training = [q("尾牙在哪裡辦", Class::Unanswerable), q("VPN 連不上", Class::Entry(0))];
        let index = Index::build(&[VPN, MAIL], &training);
        let with = index.query("尾牙在哪裡辦", Scope::All);
        assert_eq!(with.top(), Some(Class::Unanswerable));
        assert!((with.margin() - 1.0).abs() < 1e-12, "{with:?}");
        let without = index.query_left_out(" 尾牙在哪裡辦 ", Scope::All);
        assert_ne!(without.top(), Some(Class::Unanswerable), "{without:?}");
        // Entries alone never rank the unanswerable class.
        assert_ne!(index.query("尾牙在哪裡辦", Scope::Entries).top(), Some(Class::Unanswerable));
    }

    #[test]
    fn a_class_scores_as_the_mean_of_its_best_documents() {
        let training = [q("VPN 連不上", Class::Entry(0)), q("VPN", Class::Entry(0))];
        let index = Index::build(&[VPN, MAIL], &training);
        let r = index.query("VPN 連不上", Scope::All);
        let (_, score, doc) = r.classes[0];
        assert_eq!(index.class_of(doc), Class::Entry(0));
        // The exact question, not the entry text or the one-word question, is the best document.
        assert_eq!(doc, 2, "{r:?}");
        assert_eq!(r.best_doc(Class::Entry(0)), Some(2));
        assert_eq!(r.position(Class::Entry(0)).map(|(rank, _)| rank), Some(0));
        // Three documents match; the score is their mean, below the best one's own score.
        let alone = Index::build(&[MAIL], &training[..1]).query("VPN 連不上", Scope::All);
        assert!(score > 0.0 && score < alone.classes[0].1 * TOP_DOCS as f64, "{r:?} {alone:?}");
    }
}
