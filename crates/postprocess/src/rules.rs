//! The rules file (`data/rules.toml`): which questions are about which KB doc.
//!
//! Format (see the header of `data/rules.toml`):
//!
//! ```toml
//! [[rule]]
//! topic = "vpn"                      # short name, unique
//! doc_id = "doc_1a2b3c4d"            # must exist in kb.jsonl; the answer text comes from there
//! patterns = ['VPN.*(連線|登入)']     # case-insensitive regexes; any one must match the question
//! exclude = ['國外|海外']             # optional: if any matches, the rule does not apply
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kb_dataset::Kb;
use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};

/// One topic rule, validated against the KB.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Short topic name, unique in the file.
    pub topic: String,
    /// The KB entry whose text answers questions on this topic.
    pub doc_id: String,
    /// 1-based line of the rule's `topic` in the rules file.
    pub line: usize,
    patterns: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl Rule {
    /// The first of `patterns` that matches `question`, if any (ignoring `exclude`).
    pub fn matching_pattern(&self, question: &str) -> Option<&str> {
        first_match(&self.patterns, question)
    }

    /// The first of `exclude` that matches `question`, if any.
    pub fn excluding_pattern(&self, question: &str) -> Option<&str> {
        first_match(&self.exclude, question)
    }

    /// Whether the rule applies: some pattern matches and no exclude pattern does.
    pub fn applies_to(&self, question: &str) -> bool {
        self.matching_pattern(question).is_some() && self.excluding_pattern(question).is_none()
    }
}

fn first_match<'r>(regexes: &'r [Regex], text: &str) -> Option<&'r str> {
    regexes.iter().find(|r| r.is_match(text)).map(Regex::as_str)
}

/// All rules of a file, in file order (the first applicable rule wins an override).
#[derive(Debug, Clone, Default)]
pub struct Rules {
    path: PathBuf,
    rules: Vec<Rule>,
    uncovered_refusal: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    /// The refusal that replaces a policy answer to a question no rule covers (optional).
    uncovered_refusal: Option<Spanned<String>>,
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    topic: Spanned<String>,
    doc_id: Spanned<String>,
    patterns: Vec<Spanned<String>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
}

impl Rules {
    /// Loads `path` and checks every rule against `kb`: non-empty unique topic, a doc_id present
    /// in the KB, at least one pattern, every pattern a valid non-empty regex. Errors name the
    /// file, the line and the rule. A file without any rule (empty, or only comments) is an
    /// error: a rules file given on purpose that corrects nothing is a mistake.
    pub fn load(path: impl AsRef<Path>, kb: &Kb) -> Result<Rules> {
        let path = path.as_ref();
        let source =
            std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
        let rules = Self::parse(path, &source, kb)?;
        if rules.rules.is_empty() {
            return Err(Error::NoRules { path: path.to_path_buf() });
        }
        Ok(rules)
    }

    /// Parses rules from `source` as if read from `path` (which only labels errors).
    pub fn parse(path: impl AsRef<Path>, source: &str, kb: &Kb) -> Result<Rules> {
        let path = path.as_ref();
        let raw: RawFile =
            toml::from_str(source).map_err(|e| Error::Toml { path: path.to_path_buf(), message: e.to_string() })?;
        let line_of = |s: &Spanned<String>| {
            let start = s.span().start.min(source.len());
            source.as_bytes()[..start].iter().filter(|&&b| b == b'\n').count() + 1
        };
        let uncovered_refusal = match raw.uncovered_refusal {
            Some(r) if !kb_dataset::is_refusal(r.get_ref()) => {
                return Err(Error::NotARefusal {
                    path: path.to_path_buf(),
                    line: line_of(&r),
                    prefix: kb.language().refusal_prefix(),
                });
            }
            r => r.map(|r| r.get_ref().trim().to_string()),
        };
        let mut rules: Vec<Rule> = Vec::with_capacity(raw.rule.len());
        let mut topics: HashMap<String, usize> = HashMap::new();
        for (index, r) in raw.rule.into_iter().enumerate() {
            let rule = index + 1;
            let line = line_of(&r.topic);
            let topic = r.topic.get_ref().trim().to_string();
            if topic.is_empty() {
                return Err(Error::EmptyTopic { path: path.to_path_buf(), line, rule });
            }
            if let Some(&first_rule) = topics.get(&topic) {
                return Err(Error::DuplicateTopic { path: path.to_path_buf(), line, rule, first_rule, topic });
            }
            topics.insert(topic.clone(), rule);
            let doc_id = r.doc_id.get_ref().trim().to_string();
            if kb.get(&doc_id).is_none() {
                return Err(Error::UnknownDocId {
                    path: path.to_path_buf(),
                    line: line_of(&r.doc_id),
                    rule,
                    topic,
                    doc_id,
                    kb: kb.path().to_path_buf(),
                });
            }
            if r.patterns.is_empty() {
                return Err(Error::EmptyPatterns { path: path.to_path_buf(), line, rule, topic });
            }
            let compile = |list: &[Spanned<String>]| -> Result<Vec<Regex>> {
                list.iter()
                    .map(|p| {
                        if p.get_ref().trim().is_empty() {
                            return Err(Error::EmptyPattern {
                                path: path.to_path_buf(),
                                line: line_of(p),
                                rule,
                                topic: topic.clone(),
                            });
                        }
                        RegexBuilder::new(p.get_ref()).case_insensitive(true).build().map_err(|e| Error::BadRegex {
                            path: path.to_path_buf(),
                            line: line_of(p),
                            rule,
                            topic: topic.clone(),
                            pattern: p.get_ref().clone(),
                            message: e.to_string(),
                        })
                    })
                    .collect()
            };
            let patterns = compile(&r.patterns)?;
            let exclude = compile(&r.exclude)?;
            rules.push(Rule { topic, doc_id, line, patterns, exclude });
        }
        Ok(Rules { path: path.to_path_buf(), rules, uncovered_refusal })
    }

    /// The file's `uncovered_refusal`: when set, the rules claim to cover every topic the KB
    /// answers, so a policy answer to a question no rule covers is replaced by this refusal.
    pub fn uncovered_refusal(&self) -> Option<&str> {
        self.uncovered_refusal.as_deref()
    }

    /// The file the rules were read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule for a doc, if any (its topic name labels that doc in explanations).
    pub fn for_doc(&self, doc_id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.doc_id == doc_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kb_dataset::KbEntry;

    fn kb() -> Kb {
        Kb::from_entries(
            "kb.jsonl",
            vec![KbEntry::from_text("VPN 需使用 MFA 登入。"), KbEntry::from_text("特休假依年資計算。")],
        )
    }

    fn parse(source: &str) -> Result<Rules> {
        Rules::parse("rules.toml", source, &kb())
    }

    fn rule(topic: &str, doc_id: &str, patterns: &str) -> String {
        format!("[[rule]]\ntopic = \"{topic}\"\ndoc_id = \"{doc_id}\"\npatterns = {patterns}\n")
    }

    fn vpn_id() -> String {
        kb().entries()[0].doc_id.clone()
    }

    #[test]
    fn loads_rules_case_insensitively_with_excludes() {
        let src = format!(
            "{}exclude = ['國外']\n{}",
            rule("vpn", &vpn_id(), "['vpn']"),
            rule("leave", &kb().entries()[1].doc_id, "['特休', '年假']")
        );
        let rules = parse(&src).unwrap();
        assert_eq!(rules.rules().len(), 2);
        let vpn = &rules.rules()[0];
        assert_eq!((vpn.topic.as_str(), vpn.line), ("vpn", 2));
        assert_eq!(vpn.matching_pattern("ＶＰＮ? VPN 怎麼連"), Some("vpn"));
        assert!(vpn.applies_to("Vpn 怎麼連"));
        assert!(!vpn.applies_to("VPN 可以在國外用嗎"));
        assert_eq!(vpn.excluding_pattern("VPN 可以在國外用嗎"), Some("國外"));
        assert!(rules.rules()[1].applies_to("年假有幾天"));
        assert_eq!(rules.for_doc(&vpn_id()).unwrap().topic, "vpn");
    }

    #[test]
    fn load_reads_file_and_names_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rules.toml");
        std::fs::write(&p, rule("vpn", &vpn_id(), "['vpn']")).unwrap();
        assert_eq!(Rules::load(&p, &kb()).unwrap().rules().len(), 1);
        let e = Rules::load(dir.path().join("nope.toml"), &kb()).unwrap_err();
        assert!(e.to_string().contains("nope.toml"), "{e}");
    }

    #[test]
    fn unknown_doc_id_names_file_line_rule_and_kb() {
        let src = format!("{}{}", rule("vpn", &vpn_id(), "['vpn']"), rule("x", "doc_00000000", "['x']"));
        let e = parse(&src).unwrap_err();
        assert!(matches!(e, Error::UnknownDocId { rule: 2, line: 7, .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("rules.toml:7: rule 2 (topic `x`)"), "{msg}");
        assert!(msg.contains("doc_00000000") && msg.contains("kb.jsonl"), "{msg}");
    }

    #[test]
    fn bad_regex_names_pattern_and_line() {
        let src = format!("{}exclude = [\n  'ok',\n  '國外(',\n]\n", rule("vpn", &vpn_id(), "['vpn']"));
        let e = parse(&src).unwrap_err();
        assert!(matches!(e, Error::BadRegex { line: 7, rule: 1, .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("rules.toml:7: rule 1 (topic `vpn`): pattern `國外(`"), "{msg}");
    }

    #[test]
    fn empty_patterns_and_empty_pattern_are_rejected() {
        let e = parse(&rule("vpn", &vpn_id(), "[]")).unwrap_err();
        assert!(matches!(e, Error::EmptyPatterns { rule: 1, .. }), "{e:?}");
        assert!(e.to_string().contains("topic `vpn`"), "{e}");
        let e = parse(&rule("vpn", &vpn_id(), "['vpn', ' ']")).unwrap_err();
        assert!(matches!(e, Error::EmptyPattern { rule: 1, .. }), "{e:?}");
    }

    #[test]
    fn missing_field_typo_and_duplicates_are_rejected() {
        let e = parse("[[rule]]\ntopic = \"vpn\"\npatterns = ['v']\n").unwrap_err();
        assert!(matches!(e, Error::Toml { .. }) && e.to_string().contains("doc_id"), "{e}");
        let e = parse("[[rules]]\ntopic = \"vpn\"\n").unwrap_err();
        assert!(matches!(e, Error::Toml { .. }), "{e:?}");
        let src = format!("{}{}", rule("vpn", &vpn_id(), "['a']"), rule("vpn", &vpn_id(), "['b']"));
        let e = parse(&src).unwrap_err();
        assert!(matches!(e, Error::DuplicateTopic { rule: 2, first_rule: 1, .. }), "{e:?}");
        let e = parse(&rule(" ", &vpn_id(), "['a']")).unwrap_err();
        assert!(matches!(e, Error::EmptyTopic { rule: 1, .. }), "{e:?}");
    }

    #[test]
    fn empty_file_has_no_rules() {
        assert!(parse("# nothing yet\n").unwrap().rules().is_empty());
    }

    #[test]
    fn a_rules_file_without_rules_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in [("empty.toml", ""), ("comments.toml", "# rules go here\n")] {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            let e = Rules::load(&p, &kb()).unwrap_err();
            assert!(matches!(e, Error::NoRules { .. }), "{e:?}");
            assert!(e.to_string().contains(name), "{e}");
        }
    }
}
