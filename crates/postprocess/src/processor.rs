//! The post-processing decision: keep the model's answer, snap it to a KB text, or override it.

use std::fmt;

use kb_dataset::Kb;
use serde::{Deserialize, Serialize};

use crate::calibration::Threshold;
use crate::error::{Error, Result};
use crate::retrieval::{Class, Ranking, Scope};
use crate::retriever::Retriever;
use crate::rules::{Rule, Rules};

/// The reference pipeline's KB-match threshold on difflib's ratio.
pub const DEFAULT_KB_MATCH_THRESHOLD: f64 = 0.80;

/// Where a final answer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Source {
    /// A topic rule matched the question and the model did not cite that doc: the KB text
    /// replaced the model's answer.
    RuleOverride,
    /// The model's answer was close to a KB entry's answer: replaced by that exact text.
    KbMatch,
    /// The model's answer is kept as generated (including refusals).
    ModelGenerated,
    /// Retrieval, confident by its calibration, overruled the model: another entry's text, an
    /// entry's text instead of a refusal, or a refusal instead of an answer the KB does not back.
    RetrievalOverride,
}

impl Source {
    /// All sources, in report order.
    pub const ALL: [Source; 4] =
        [Source::RuleOverride, Source::KbMatch, Source::ModelGenerated, Source::RetrievalOverride];

    /// The label used in reports: `RULE_OVERRIDE`, `KB_MATCH`, `MODEL_GENERATED`,
    /// `RETRIEVAL_OVERRIDE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::RuleOverride => "RULE_OVERRIDE",
            Source::KbMatch => "KB_MATCH",
            Source::ModelGenerated => "MODEL_GENERATED",
            Source::RetrievalOverride => "RETRIEVAL_OVERRIDE",
        }
    }
}

/// What the model's answer was, before post-processing decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RawKind {
    /// A refusal (starts with `抱歉`).
    Refusal,
    /// Within the KB-match threshold of a KB entry's answer.
    KbQuote,
    /// Anything else: a policy close to no KB entry (invented), or text that is no answer.
    Unmatched,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` so width and alignment flags work in tables.
        f.pad(self.as_str())
    }
}

/// The outcome of [`PostProcessor::apply`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The final answer.
    pub answer: String,
    pub source: Source,
    /// Why, in plain words (rule, pattern, doc and scores involved).
    pub source_detail: String,
    /// The KB doc the final answer is taken from (`None` for `MODEL_GENERATED`).
    pub doc_id: Option<String>,
    /// What the model's answer was.
    pub raw_kind: RawKind,
}

/// How a [`PostProcessor`] was set up: recorded in every report beside the figures it produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// difflib ratio at which an answer counts as quoting a KB entry.
    pub kb_match_threshold: f64,
    /// The rules file applied first, if any.
    pub rules: Option<std::path::PathBuf>,
    /// Whether the rules file's `uncovered_refusal` decides what no rule covers (retrieval then
    /// does not).
    pub uncovered_refusal: bool,
    /// The training set retrieval indexed, and its calibration (`None`: no retrieval).
    pub retrieval: Option<RetrievalSettings>,
}

/// The retrieval part of [`Settings`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalSettings {
    pub training: std::path::PathBuf,
    pub calibration: crate::Calibration,
}

/// Applies KB matching, retrieval and optional [`Rules`] to model answers.
#[derive(Debug)]
pub struct PostProcessor {
    kb: Kb,
    /// The user's explicit overrides (empty when no rules file is given).
    rules: Rules,
    retriever: Option<Retriever>,
    threshold: f64,
    /// `依據公司規範:<text>` for each KB entry, in KB order.
    kb_answers: Vec<String>,
}

impl PostProcessor {
    /// `kb_match_threshold` is the difflib ratio (0..=1) at which an answer counts as citing a KB
    /// entry; [`DEFAULT_KB_MATCH_THRESHOLD`] is the reference's value. Without
    /// [`PostProcessor::with_retriever`] or [`PostProcessor::with_rules`] it only snaps answers to
    /// the KB entry they quote.
    pub fn new(kb: Kb, kb_match_threshold: f64) -> Result<PostProcessor> {
        if !(0.0..=1.0).contains(&kb_match_threshold) {
            return Err(Error::Threshold(kb_match_threshold));
        }
        let kb_answers = kb.entries().iter().map(|e| kb.answer_for(e)).collect();
        Ok(PostProcessor { kb, rules: Rules::default(), retriever: None, threshold: kb_match_threshold, kb_answers })
    }

    /// Decides with retrieval what no rule covers (see [`PostProcessor::apply`]).
    pub fn with_retriever(mut self, retriever: Retriever) -> PostProcessor {
        self.retriever = Some(retriever);
        self
    }

    /// Applies `rules` before anything else: the user's explicit overrides.
    pub fn with_rules(mut self, rules: Rules) -> PostProcessor {
        self.rules = rules;
        self
    }

    pub fn retriever(&self) -> Option<&Retriever> {
        self.retriever.as_ref()
    }

    /// What a report records of this post-processor.
    pub fn settings(&self) -> Settings {
        Settings {
            kb_match_threshold: self.threshold,
            rules: (!self.rules.rules().is_empty() || self.rules.uncovered_refusal().is_some())
                .then(|| self.rules.path().to_path_buf()),
            uncovered_refusal: self.rules.uncovered_refusal().is_some(),
            retrieval: self.retriever.as_ref().map(|r| RetrievalSettings {
                training: r.training_path().to_path_buf(),
                calibration: r.calibration().clone(),
            }),
        }
    }

    pub fn kb(&self) -> &Kb {
        &self.kb
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Whether the model refused, in the KB's language: a reply in another language is left to
    /// retrieval like any other unmatched answer, so the user gets a refusal in the KB's
    /// language with its contact.
    fn refuses(&self, answer: &str) -> bool {
        answer.trim_start().starts_with(self.kb.language().refusal_prefix())
    }

    /// Decides the final answer for `question` given the model's `model_answer`:
    ///
    /// 1. If rules apply to the question (a pattern matches, no exclude does): when the answer
    ///    cites one of their docs (ratio to `依據公司規範:<text>` ≥ threshold) it becomes that
    ///    exact text, `KB_MATCH`; otherwise — a wrong doc, a garbled answer or a refusal — the
    ///    first applicable rule's KB text replaces it, `RULE_OVERRIDE`.
    /// 2. Else, with a [`Retriever`] (and no `uncovered_refusal` in the rules), retrieval decides
    ///    with its calibrated margins ([`crate::Calibration`]):
    ///    - the answer quotes entry E → E's exact text (`KB_MATCH`), unless retrieval is
    ///      confident the question is about another entry F (F's text) or that the KB does not
    ///      answer it (a refusal), `RETRIEVAL_OVERRIDE`;
    ///    - the answer is a refusal → kept (`MODEL_GENERATED`), unless retrieval is very
    ///      confident of an entry (its text, `RETRIEVAL_OVERRIDE`);
    ///    - the answer quotes no entry (an invented policy, or no answer) → the entry retrieval
    ///      is confident of (`RETRIEVAL_OVERRIDE`), or the entry the answer is nearest to when
    ///      retrieval also ranks it first (`KB_MATCH`), else a refusal naming who to ask
    ///      (`RETRIEVAL_OVERRIDE`).
    ///
    /// Without a retriever (or with `uncovered_refusal`), what the rules file alone decided:
    ///
    /// 3. A refusal is kept, `MODEL_GENERATED`: without a rule there is no evidence the KB
    ///    answers the question, and refusing an unanswerable question is correct.
    /// 4. Else, when the rules file sets `uncovered_refusal` (its rules cover every topic the KB
    ///    answers, so this question is not one of them), an answer that states a policy — it
    ///    starts with `依據公司規範` or is close to a KB answer — is replaced by that refusal,
    ///    `RULE_OVERRIDE`: quoting an unrelated policy is the worst answer to an unanswerable
    ///    question.
    /// 5. Else if the answer is close to some KB answer (best ratio ≥ threshold; first entry on
    ///    ties) it becomes that exact text, `KB_MATCH`.
    /// 6. Else the answer is kept, `MODEL_GENERATED`, naming the nearest KB entry and its score.
    pub fn apply(&self, question: &str, model_answer: &str) -> Decision {
        let answer = model_answer.trim();
        let scores: Vec<f64> = self.kb_answers.iter().map(|kb_answer| seqmatch::ratio(answer, kb_answer)).collect();
        let applicable: Vec<&Rule> = self.rules.rules().iter().filter(|r| r.applies_to(question)).collect();

        let best = self.best(&scores);
        let raw_kind = match best {
            _ if self.refuses(answer) => RawKind::Refusal,
            Some((_, score)) if score >= self.threshold => RawKind::KbQuote,
            _ => RawKind::Unmatched,
        };
        self.decide(question, model_answer, &scores, best, raw_kind, &applicable)
    }

    fn decide(
        &self,
        question: &str,
        model_answer: &str,
        scores: &[f64],
        best: Option<(usize, f64)>,
        raw_kind: RawKind,
        applicable: &[&Rule],
    ) -> Decision {
        let answer = model_answer.trim();
        if let Some(first) = applicable.first() {
            return self.by_rules(question, answer, scores, first, applicable, raw_kind);
        }
        let skipped = self.skipped_rules(question);
        if let Some(retriever) = &self.retriever
            && self.rules.uncovered_refusal().is_none()
        {
            return self.by_retrieval(retriever, question, model_answer, best, raw_kind, &skipped);
        }
        if raw_kind == RawKind::Refusal {
            return Decision {
                answer: model_answer.to_string(),
                source: Source::ModelGenerated,
                source_detail: format!("the model refused and no rule covers this question{skipped}: refusal kept"),
                doc_id: None,
                raw_kind,
            };
        }
        if let Some(refusal) = self.rules.uncovered_refusal() {
            let cites = best.filter(|&(_, score)| score >= self.threshold);
            if cites.is_some() || states_policy(answer) {
                let what = match cites {
                    Some((index, score)) => format!("cites {} at {score:.2}", self.label(index)),
                    None => "states a policy that is not in the KB".to_string(),
                };
                return Decision {
                    answer: refusal.to_string(),
                    source: Source::RuleOverride,
                    source_detail: format!(
                        "no rule covers this question{skipped}, so the KB does not answer it, but the answer \
                         {what}: replaced by the file's uncovered_refusal"
                    ),
                    doc_id: None,
                    raw_kind,
                };
            }
        }
        match best {
            Some((index, score)) if score >= self.threshold => Decision {
                answer: self.kb_answers[index].clone(),
                source: Source::KbMatch,
                source_detail: format!(
                    "the answer matches KB entry {} at {score:.2} (≥ {:.2}): replaced by its exact \
                     text{skipped}",
                    self.label(index),
                    self.threshold
                ),
                doc_id: Some(self.kb.entries()[index].doc_id.clone()),
                raw_kind,
            },
            Some((index, score)) => Decision {
                answer: model_answer.to_string(),
                source: Source::ModelGenerated,
                source_detail: format!(
                    "no rule covers this question{skipped} and no KB entry is close enough: the \
                     nearest is {} at {score:.2} (< {:.2}); the model's answer is kept",
                    self.label(index),
                    self.threshold
                ),
                doc_id: None,
                raw_kind,
            },
            None => Decision {
                answer: model_answer.to_string(),
                source: Source::ModelGenerated,
                source_detail: "the KB is empty; the model's answer is kept".to_string(),
                doc_id: None,
                raw_kind,
            },
        }
    }

    /// Step 2 of [`PostProcessor::apply`]: no rule applies and retrieval decides.
    fn by_retrieval(
        &self,
        retriever: &Retriever,
        question: &str,
        model_answer: &str,
        best: Option<(usize, f64)>,
        raw_kind: RawKind,
        skipped: &str,
    ) -> Decision {
        let c = retriever.calibration();
        // Does the KB answer it at all (entries and the unanswerable class), and if it does,
        // which entry (entries alone)?
        let all = retriever.rank(question, Scope::All);
        let entries = retriever.rank(question, Scope::Entries);
        let ranked = |r: &Ranking, what: &str| {
            format!("retrieval ranks {} first {what} (margin {:.2})", self.class_label(r.top()), r.margin())
        };
        let entry = |index: usize, source: Source, why: String| Decision {
            answer: self.kb_answers[index].clone(),
            source,
            source_detail: format!("{why}{skipped}"),
            doc_id: Some(self.kb.entries()[index].doc_id.clone()),
            raw_kind,
        };
        let refuse = |why: String| Decision {
            answer: retriever.refusal(&all),
            source: Source::RetrievalOverride,
            source_detail: format!("{why}{skipped}: replaced by a refusal"),
            doc_id: None,
            raw_kind,
        };
        let unanswerable = (all.top() == Some(Class::Unanswerable) && c.unanswerable_confident.trusts(all.margin()))
            .then(|| format!("{} ({})", ranked(&all, "of all classes"), trusted(&c.unanswerable_confident)));
        let confident_entry = match entries.top() {
            Some(Class::Entry(f)) if c.entry_confident.trusts(entries.margin()) => Some(f),
            _ => None,
        };
        match raw_kind {
            RawKind::Refusal => match all.top() {
                Some(Class::Entry(f)) if c.answerable_confident.trusts(all.margin()) => entry(
                    f,
                    Source::RetrievalOverride,
                    format!(
                        "the model refused, but {} ({}): replaced by its text",
                        ranked(&all, "of all classes"),
                        trusted(&c.answerable_confident)
                    ),
                ),
                _ => Decision {
                    answer: model_answer.to_string(),
                    source: Source::ModelGenerated,
                    source_detail: format!(
                        "the model refused and {}, not enough to overrule it ({}): refusal kept{skipped}",
                        ranked(&all, "of all classes"),
                        trusted(&c.answerable_confident)
                    ),
                    doc_id: None,
                    raw_kind,
                },
            },
            RawKind::KbQuote => {
                let (e, score) = best.expect("a KB quote has a nearest entry");
                let quotes = format!("the answer cites {} at {score:.2}", self.label(e));
                if let Some(why) = unanswerable {
                    return refuse(format!("{quotes}, but {why}, so the KB does not answer it"));
                }
                match confident_entry {
                    Some(f) if f != e => entry(
                        f,
                        Source::RetrievalOverride,
                        format!(
                            "{quotes}, but {} ({}): replaced by its text",
                            ranked(&entries, "of the entries"),
                            trusted(&c.entry_confident)
                        ),
                    ),
                    _ => entry(
                        e,
                        Source::KbMatch,
                        format!(
                            "{quotes} (≥ {:.2}) and {}: replaced by its exact text",
                            self.threshold,
                            ranked(&entries, "of the entries")
                        ),
                    ),
                }
            }
            RawKind::Unmatched => {
                let nearest = match best {
                    Some((e, score)) => format!("the nearest is {} at {score:.2}", self.label(e)),
                    None => "the KB is empty".to_string(),
                };
                let unmatched = format!("the answer cites no KB entry ({nearest} < {:.2})", self.threshold);
                if let Some(why) = unanswerable {
                    return refuse(format!("{unmatched} and {why}"));
                }
                match (confident_entry, entries.top()) {
                    (Some(f), _) => entry(
                        f,
                        Source::RetrievalOverride,
                        format!(
                            "{unmatched}; {} ({}): replaced by its text",
                            ranked(&entries, "of the entries"),
                            trusted(&c.entry_confident)
                        ),
                    ),
                    (None, Some(Class::Entry(f))) if best.is_some_and(|(e, _)| e == f) => entry(
                        f,
                        Source::KbMatch,
                        format!(
                            "{unmatched}, but {} too: replaced by its exact text",
                            ranked(&entries, "of the entries")
                        ),
                    ),
                    _ => refuse(format!(
                        "{unmatched} and {}, not a confident one ({})",
                        ranked(&entries, "of the entries"),
                        trusted(&c.entry_confident)
                    )),
                }
            }
        }
    }

    /// `doc_x`, `unanswerable` or `nothing` for a ranking's top class.
    fn class_label(&self, class: Option<Class>) -> String {
        match class {
            Some(Class::Entry(i)) => self.label(i),
            Some(Class::Unanswerable) => "the unanswerable training questions".to_string(),
            None => "nothing".to_string(),
        }
    }

    /// Step 1 of [`PostProcessor::apply`]: at least one rule applies.
    fn by_rules(
        &self,
        question: &str,
        answer: &str,
        scores: &[f64],
        first: &Rule,
        applicable: &[&Rule],
        raw_kind: RawKind,
    ) -> Decision {
        // The best-cited doc among the applicable rules (first rule on ties).
        let mut cited: Option<(&Rule, usize, f64)> = None;
        for &rule in applicable {
            if let Some(index) = self.index_of(&rule.doc_id)
                && cited.is_none_or(|(_, _, best)| scores[index] > best)
            {
                cited = Some((rule, index, scores[index]));
            }
        }
        let why = |rule: &Rule| {
            format!(
                "the question matches topic `{}` (pattern `{}`)",
                rule.topic,
                rule.matching_pattern(question).unwrap_or_default()
            )
        };
        if let Some((rule, index, score)) = cited
            && score >= self.threshold
        {
            return Decision {
                answer: self.kb_answers[index].clone(),
                source: Source::KbMatch,
                source_detail: format!(
                    "{} and the answer cites {} at {score:.2} (≥ {:.2}): replaced by its exact text",
                    why(rule),
                    self.label(index),
                    self.threshold
                ),
                doc_id: Some(rule.doc_id.clone()),
                raw_kind,
            };
        }
        let index = self.index_of(&first.doc_id);
        let own = index.map_or(0.0, |i| scores[i]);
        let mut detail =
            format!("{} but the answer does not cite {} ({own:.2} < {:.2})", why(first), first.doc_id, self.threshold);
        if self.refuses(answer) {
            detail.push_str("; the model refused a question the KB answers");
        } else if let Some((best, score)) = self.best(scores)
            && Some(best) != index
            && score >= self.threshold
        {
            detail.push_str(&format!("; it cites {} instead ({score:.2})", self.label(best)));
        }
        let others: Vec<&str> = applicable[1..].iter().map(|r| r.topic.as_str()).collect();
        if !others.is_empty() {
            detail.push_str(&format!("; topics {} also match, the first rule in the file wins", others.join(", ")));
        }
        detail.push_str(": replaced by the KB text");
        Decision {
            // Rules::load checked that every rule's doc_id is in the KB.
            answer: index.map_or_else(String::new, |i| self.kb_answers[i].clone()),
            source: Source::RuleOverride,
            source_detail: detail,
            doc_id: Some(first.doc_id.clone()),
            raw_kind,
        }
    }

    /// `" (rule `vpn` skipped: ...)"` for rules whose patterns matched but an exclude did too,
    /// so a reader sees why a near-miss question was not overridden.
    fn skipped_rules(&self, question: &str) -> String {
        let skipped: Vec<String> = self
            .rules
            .rules()
            .iter()
            .filter_map(|r| {
                r.matching_pattern(question)?;
                let exclude = r.excluding_pattern(question)?;
                Some(format!("`{}` (excluded by `{exclude}`)", r.topic))
            })
            .collect();
        if skipped.is_empty() { String::new() } else { format!(" (skipped rule {})", skipped.join(", ")) }
    }

    fn index_of(&self, doc_id: &str) -> Option<usize> {
        self.kb.entries().iter().position(|e| e.doc_id == doc_id)
    }

    /// The highest score and its entry; the first entry wins ties.
    fn best(&self, scores: &[f64]) -> Option<(usize, f64)> {
        scores.iter().copied().enumerate().fold(None, |best, (i, s)| match best {
            Some((_, b)) if b >= s => best,
            _ => Some((i, s)),
        })
    }

    /// `doc_x (topic vpn)` or just `doc_x` for docs without a rule.
    fn label(&self, index: usize) -> String {
        let doc_id = &self.kb.entries()[index].doc_id;
        match self.rules.for_doc(doc_id) {
            Some(rule) => format!("{doc_id} (topic `{}`)", rule.topic),
            None => doc_id.clone(),
        }
    }
}

/// `trusted from margin 0.42 (leave-one-out precision 0.96 ≥ 0.95)` or why never.
fn trusted(t: &Threshold) -> String {
    match t.margin {
        Some(m) => format!(
            "trusted from margin {m:.2}: leave-one-out precision {:.2} ≥ {:.2}",
            t.precision, t.precision_target
        ),
        None => format!("never trusted: no margin reached leave-one-out precision {:.2}", t.precision_target),
    }
}

/// Whether an answer opens like a KB answer (the answer prefix of any language, its colon and
/// spacing aside), i.e. states a policy.
fn states_policy(answer: &str) -> bool {
    kb_dataset::Language::ALL.iter().any(|l| answer.starts_with(l.answer_prefix().trim_end().trim_end_matches(':')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kb_dataset::KbEntry;

    const VPN: &str = "VPN 連線須使用公司配發的筆電並通過 MFA 驗證,帳號問題請洽資訊部。";
    const LEAVE: &str = "特休假依到職年資計算,滿半年三日,滿一年七日,請於系統提前三天申請。";
    const TRIP: &str = "出差費用應於返回後十四日內檢附單據,經主管核准後報支。";

    fn processor(threshold: f64) -> PostProcessor {
        processor_with(threshold, "")
    }

    /// With `header` (top-level keys such as `uncovered_refusal`) before the rules.
    fn processor_with(threshold: f64, header: &str) -> PostProcessor {
        let kb = Kb::from_entries("kb.jsonl", [VPN, LEAVE, TRIP].iter().map(|t| KbEntry::from_text(t)).collect());
        let id = |i: usize| kb.entries()[i].doc_id.clone();
        let src = format!(
            "{header}\n[[rule]]\ntopic = \"vpn\"\ndoc_id = \"{}\"\npatterns = ['vpn.*(連線|連不上|登入|怎麼)']\n\
             exclude = ['國外|海外|出國']\n\
             [[rule]]\ntopic = \"leave\"\ndoc_id = \"{}\"\npatterns = ['特休', '年假']\n",
            id(0),
            id(1)
        );
        let rules = Rules::parse("rules.toml", &src, &kb).unwrap();
        PostProcessor::new(kb, threshold).unwrap().with_rules(rules)
    }

    fn full(text: &str) -> String {
        format!("依據公司規範:{text}")
    }

    #[test]
    fn a_refusal_counts_in_the_kb_language_only() {
        let pp = processor(0.8);
        assert_eq!(pp.apply("出差可以租車嗎", "抱歉，規範中沒有這一點。").raw_kind, RawKind::Refusal);
        assert_eq!(pp.apply("can I rent a car", "Sorry, I can't assist with that.").raw_kind, RawKind::Unmatched);
    }

    #[test]
    fn rule_override_replaces_a_wrong_answer_with_the_kb_text() {
        let pp = processor(0.8);
        let d = pp.apply("VPN 連不上怎麼辦?", &full(TRIP));
        assert_eq!(d.source, Source::RuleOverride);
        assert_eq!(d.answer, full(VPN));
        assert_eq!(d.doc_id.as_deref(), Some(pp.kb().entries()[0].doc_id.as_str()));
        assert!(d.source_detail.contains("topic `vpn`"), "{}", d.source_detail);
        assert!(d.source_detail.contains("cites"), "{}", d.source_detail);
    }

    #[test]
    fn rule_override_replaces_a_refusal_to_an_answerable_question() {
        let d = processor(0.8).apply("我的 vpn 登入失敗", "抱歉,我無法回答這個問題。");
        assert_eq!(d.source, Source::RuleOverride);
        assert_eq!(d.answer, full(VPN));
        assert!(d.source_detail.contains("refused"), "{}", d.source_detail);
    }

    #[test]
    fn an_answer_citing_the_rule_doc_is_a_kb_match_snapped_to_the_exact_text() {
        let pp = processor(0.8);
        // A slightly garbled copy of the right text: cites the doc, so no override.
        let garbled = full(VPN).replace("資訊部", "IT部門");
        assert!(seqmatch::ratio(&garbled, &full(VPN)) >= 0.8);
        let d = pp.apply("VPN 怎麼連線", &garbled);
        assert_eq!(d.source, Source::KbMatch);
        assert_eq!(d.answer, full(VPN));
        assert!(d.source_detail.contains("topic `vpn`"), "{}", d.source_detail);
    }

    #[test]
    fn kb_match_without_a_rule_uses_the_nearest_entry() {
        let pp = processor(0.8);
        let d = pp.apply("報帳期限是多久", &full(TRIP).replace("十四", "14"));
        assert_eq!(d.source, Source::KbMatch);
        assert_eq!(d.answer, full(TRIP));
        assert_eq!(d.doc_id.as_deref(), Some(pp.kb().entries()[2].doc_id.as_str()));
    }

    #[test]
    fn the_threshold_decides_between_kb_match_and_model_generated() {
        let answer = full("出差費用應於返回後一個月內報支。");
        let score = seqmatch::ratio(&answer, &full(TRIP));
        assert_eq!(processor(score).apply("報帳", &answer).source, Source::KbMatch);
        let d = processor((score + 0.01).min(1.0)).apply("報帳", &answer);
        assert_eq!(d.source, Source::ModelGenerated);
        assert_eq!(d.answer, answer);
    }

    #[test]
    fn model_generated_names_the_nearest_entry_and_its_score() {
        let pp = processor(0.8);
        let answer = "出差的話請問主管。";
        let d = pp.apply("出差要注意什麼", answer);
        assert_eq!(d.source, Source::ModelGenerated);
        assert_eq!(d.answer, answer);
        assert_eq!(d.doc_id, None);
        let trip = &pp.kb().entries()[2].doc_id;
        let score = seqmatch::ratio(answer, &full(TRIP));
        assert!(d.source_detail.contains(trip.as_str()), "{}", d.source_detail);
        assert!(d.source_detail.contains(&format!("{score:.2}")), "{}", d.source_detail);
    }

    #[test]
    fn refusal_is_kept_when_no_rule_covers_the_question() {
        let refusal = "抱歉,這個問題不在公司規範中,請洽人資部門。";
        let d = processor(0.8).apply("公司尾牙在哪裡辦", refusal);
        assert_eq!(d.source, Source::ModelGenerated);
        assert_eq!(d.answer, refusal);
        assert!(d.source_detail.contains("refusal kept"), "{}", d.source_detail);
    }

    #[test]
    fn near_miss_question_excluded_from_a_rule_keeps_the_refusal() {
        let refusal = "抱歉,知識庫沒有國外使用 VPN 的規定。";
        let d = processor(0.8).apply("VPN 可以在國外連線嗎", refusal);
        assert_eq!(d.source, Source::ModelGenerated);
        assert_eq!(d.answer, refusal);
        assert!(d.source_detail.contains("excluded by `國外"), "{}", d.source_detail);
    }

    #[test]
    fn several_matching_topics_accept_either_doc_and_override_with_the_first() {
        let pp = processor(0.8);
        let q = "VPN 連線和特休怎麼申請";
        assert_eq!(pp.apply(q, &full(LEAVE)).source, Source::KbMatch);
        let d = pp.apply(q, "不知道");
        assert_eq!(d.source, Source::RuleOverride);
        assert_eq!(d.answer, full(VPN));
        assert!(d.source_detail.contains("leave also match"), "{}", d.source_detail);
    }

    const UNCOVERED: &str = "抱歉,規範中沒有這個問題的說明,請洽相關部門。";

    #[test]
    fn uncovered_refusal_replaces_a_policy_answer_to_a_question_no_rule_covers() {
        let pp = processor_with(0.8, &format!("uncovered_refusal = \"{UNCOVERED}\""));
        // The model quotes an unrelated KB entry, word for word.
        let d = pp.apply("公司尾牙在哪裡辦", &full(TRIP));
        assert_eq!((d.source, d.answer.as_str(), d.doc_id), (Source::RuleOverride, UNCOVERED, None));
        assert!(d.source_detail.contains(&format!("cites {}", pp.kb().entries()[2].doc_id)), "{}", d.source_detail);
        // A made-up policy that matches no entry.
        let d = pp.apply("育嬰假怎麼請", &full("育嬰假須於三十日前申請。"));
        assert_eq!((d.source, d.answer.as_str()), (Source::RuleOverride, UNCOVERED));
        assert!(d.source_detail.contains("not in the KB"), "{}", d.source_detail);
        // Refusals and answers that claim no policy are kept; covered questions still get rules.
        assert_eq!(pp.apply("公司尾牙在哪裡辦", "抱歉,我不知道。").source, Source::ModelGenerated);
        assert_eq!(pp.apply("公司尾牙在哪裡辦", "在台北。").source, Source::ModelGenerated);
        assert_eq!(pp.apply("VPN 連不上怎麼辦", &full(TRIP)).answer, full(VPN));
        // Without the key the old behaviour holds: the quoted entry is snapped to, KB_MATCH.
        assert_eq!(processor(0.8).apply("公司尾牙在哪裡辦", &full(TRIP)).source, Source::KbMatch);
    }

    #[test]
    fn uncovered_refusal_must_be_a_refusal() {
        let kb = Kb::from_entries("kb.jsonl", vec![KbEntry::from_text(VPN)]);
        let e = Rules::parse("rules.toml", "\nuncovered_refusal = \"請洽人資部。\"\n", &kb).unwrap_err();
        assert!(matches!(e, Error::NotARefusal { line: 2, .. }), "{e:?}");
        assert!(e.to_string().contains("rules.toml:2"), "{e}");
    }

    #[test]
    fn sources_serialize_as_reference_labels() {
        let json = serde_json::to_string(&Source::ALL).unwrap();
        assert_eq!(json, r#"["RULE_OVERRIDE","KB_MATCH","MODEL_GENERATED","RETRIEVAL_OVERRIDE"]"#);
        for s in Source::ALL {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
    }

    #[test]
    fn out_of_range_threshold_is_an_error() {
        let kb = Kb::from_entries("kb.jsonl", vec![KbEntry::from_text(VPN)]);
        for t in [-0.1, 1.5, f64::NAN] {
            let e = PostProcessor::new(kb.clone(), t).unwrap_err();
            assert!(matches!(e, Error::Threshold(_)), "{e:?}");
        }
    }
}
