//! The synthesis run end to end on a scripted generator: every filter drops what it should and
//! counts it, the pools load back as templates, and the cache makes a rerun free.

use kb_dataset::{Kb, KbEntry, Language, Templates, render_templates};
use kb_synth::{Cache, Generator, Request, SynthConfig, synthesize};

const REFUND: &str = "Annual plans can be refunded in full within 14 days of purchase.";
const SEATS: &str = "The Team plan includes up to 25 seats; larger teams need the Business plan.";
const SUPPORT: &str = "Live chat support is open Monday to Friday; email support@example.com otherwise.";

fn kb() -> Kb {
    Kb::from_entries("kb.jsonl", [REFUND, SEATS, SUPPORT].map(KbEntry::from_text).to_vec())
}

/// Answers by what the prompt asks and which entry it quotes; counts its calls.
#[derive(Default)]
struct Scripted {
    calls: usize,
    requests: usize,
}

/// Twelve distinct questions per entry; each list prompt gets its own slice of them, the next
/// slice overlapping by one (a near-duplicate across prompts), plus lines every filter drops.
fn pool(text: &str) -> [&'static str; 12] {
    match text {
        REFUND => [
            "can i get my money back on the annual plan",
            "Is a yearly refund possible after two weeks?",
            "refund annual plan",
            "I paid for a year yesterday, can I undo it?",
            "Dear team, what is the refund window for yearly subscriptions?",
            "how long do i have to ask for a refund",
            "yearly plan money back deadline",
            "Bought the annual plan by mistake, is a full refund still possible?",
            "What happens if I request a refund after 20 days?",
            "refund days annual",
            "We regret the annual purchase made last week; may we be reimbursed?",
            "annual plan cancel refund rules",
        ],
        SEATS => [
            "how many seats on team plan",
            "We are 30 people, which plan do we need?",
            "team plan seat limit",
            "Could you tell me the maximum number of users for the Team plan?",
            "is 25 the max for team",
            "our team grows to 40 next month, what plan?",
            "max users team",
            "Kindly state the user ceiling of the Team subscription.",
            "do we need business plan for 26 users",
            "seat cap team plan",
            "What plan fits a company of fifty staff?",
            "how big can a team plan workspace get",
        ],
        _ => [
            "when is live chat open",
            "Is chat support available on weekends?",
            "support hours chat",
            "Which email do I write to outside chat hours?",
            "can i chat with someone on saturday",
            "What are your live chat opening days?",
            "chat support weekdays only?",
            "Please advise how to reach support in the evening.",
            "is the chat open on sunday",
            "weekend support contact",
            "Where do I send questions when chat is closed?",
            "live chat days",
        ],
    }
}

/// Which list prompt this is: the four styles, then the two varied prompts.
fn slot(user: &str) -> usize {
    ["very short", "complete, natural", "formal written", "keywords only"]
        .iter()
        .position(|p| user.contains(p))
        .unwrap_or(if user.contains("Vary the wording") { 4 } else { 0 })
}

fn lists(text: &str, user: &str) -> String {
    let k = slot(user);
    let pool = pool(text);
    let mut lines: Vec<String> = if k < 4 {
        pool[2 * k..(2 * k + 3).min(12)].iter().map(|q| format!("- {q}")).collect()
    } else {
        // Both varied prompts see the last four questions; the second one's are all duplicates.
        pool[8..].iter().map(|q| format!("{}. {q}", 1)).collect()
    };
    lines.push("- 退款要多久".into());
    if text == REFUND {
        lines.push("- Annual plans can be refunded in full within 14 days".into());
        lines.push("- How many seats does the Team plan include?".into());
    }
    lines.join("\n")
}

impl Generator for Scripted {
    fn identity(&self) -> String {
        "scripted".into()
    }

    fn generate(&mut self, requests: &[Request]) -> Result<Vec<String>, String> {
        self.calls += 1;
        self.requests += requests.len();
        Ok(requests
            .iter()
            .map(|r| {
                let u = &r.user;
                let text = [REFUND, SEATS, SUPPORT].into_iter().find(|t| u.contains(t)).unwrap_or("");
                if u.contains("lowercase English words") {
                    match text {
                        REFUND => "Refund Policy".into(),
                        SEATS => "refund policy".into(), // a clash, made unique
                        _ => "".into(),                   // nothing usable: entry-N
                    }
                } else if u.contains("output only NONE") {
                    if text == SUPPORT { "support@example.com".into() } else { "NONE".into() }
                } else if u.contains("YES or NO") {
                    // The judge: a near-miss asking about a "full" refund is answered.
                    if u.contains("Question: Is a full refund") { "YES".into() } else { "NO".into() }
                } else if u.contains("does NOT answer") {
                    match text {
                        REFUND => "- Is a full refund possible?\n- Can monthly plans be refunded?\n- Are refunds paid to the card?".into(),
                        SEATS => "- Can seats be removed mid-cycle?\n- Is there a seat discount for schools?".into(),
                        _ => "- Is phone support offered?\n- Is support available in German?".into(),
                    }
                } else if u.contains("none of these entries") {
                    "- Where is your office?\n- Do you sponsor conferences?\n- Are you hiring engineers?".into()
                } else {
                    lists(text, u)
                }
            })
            .collect())
    }
}

fn small() -> SynthConfig {
    SynthConfig {
        train_per_style: 2,
        eval_per_entry: 1,
        augment_per_entry: 1,
        batch_size: 5,
        rounds: 1,
        ..SynthConfig::default()
    }
}

#[test]
fn filters_count_what_they_drop_and_the_pools_load_back() {
    let kb = kb();
    let mut generator = Scripted::default();
    let s = synthesize(&kb, &small(), &mut generator, &mut Cache::none(), &mut |_, _| {}).unwrap();
    assert_eq!(s.language, Language::En);
    let a = &s.summary.answerable;
    // Per entry 4 style lists of 3 and 2 varied lists of 4, each with a Chinese line; the
    // refund lists add a copy of the entry and a question about seats.
    assert_eq!(a.generated, 3 * (4 * 3 + 2 * 4 + 6) + 6 * 2);
    assert_eq!(a.wrong_language, 3 * 6, "the Chinese question is dropped each time: {a:?}");
    assert_eq!(a.copies_entry, 6, "the copied sentence: {a:?}");
    // The seats question in the refund list, and paraphrases sharing no term with their entry.
    assert!(a.misplaced >= 1, "{a:?}");
    // Style slices overlap by one (3), the second varied list repeats the first (4), which
    // overlaps the last style (1); the seats question comes again in five refund lists.
    assert_eq!(a.near_duplicate, 3 * (3 + 4 + 1) + 5, "{a:?}");
    assert_eq!(s.summary.near_miss.answered, 1, "the near-miss the judge says is answered");
    assert_eq!(a.kept, s.docs.iter().map(|d| d.train.len() + d.eval.len() + d.augment.len()).sum::<usize>());

    let topics: Vec<&str> = s.docs.iter().map(|d| d.topic.as_str()).collect();
    assert_eq!(topics, ["refund-policy", "refund-policy-2", "entry-3"]);
    let seats_in_refund = s.docs[0].train.iter().any(|q| q.question.contains("seats"));
    assert!(!seats_in_refund, "a question about another entry is never trained on this one");
    let support_refusal = &s.unanswerable.train.iter().find(|u| u.question.contains("phone")).unwrap().refusal;
    assert!(
        support_refusal.starts_with("Sorry") && support_refusal.contains("support@example.com"),
        "{support_refusal}"
    );
    assert!(s.unanswerable.train.iter().all(|u| !u.question.contains("full refund")));
    assert_eq!(s.summary.entries[2].contact.as_deref(), Some("support@example.com"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("questions.toml");
    std::fs::write(&path, render_templates("synthesized", &s.docs, &s.unanswerable)).unwrap();
    let back = Templates::load(&path, &kb).unwrap();
    assert_eq!(back.docs().len(), 3);
    assert_eq!(back.unanswerable().train.len(), s.unanswerable.train.len());
}

#[test]
fn a_rerun_with_the_cache_asks_nothing_and_gives_the_same_pools() {
    let kb = kb();
    let dir = tempfile::tempdir().unwrap();
    let cache_path = dir.path().join("cache.jsonl");
    let mut first = Scripted::default();
    let a = synthesize(&kb, &small(), &mut first, &mut Cache::open(&cache_path).unwrap(), &mut |_, _| {}).unwrap();
    assert!(first.requests > 0);
    assert!(first.calls > 1, "batches of 5 requests");
    let mut second = Scripted::default();
    let b = synthesize(&kb, &small(), &mut second, &mut Cache::open(&cache_path).unwrap(), &mut |_, _| {}).unwrap();
    assert_eq!(second.requests, 0);
    assert_eq!(b.summary.cached, b.summary.requests);
    assert_eq!(a.docs, b.docs);
    assert_eq!(a.unanswerable, b.unanswerable);
}

#[test]
fn editing_one_entry_regenerates_only_its_requests() {
    let dir = tempfile::tempdir().unwrap();
    let cache_path = dir.path().join("cache.jsonl");
    let mut first = Scripted::default();
    synthesize(&kb(), &small(), &mut first, &mut Cache::open(&cache_path).unwrap(), &mut |_, _| {}).unwrap();
    let edited = Kb::from_entries(
        "kb.jsonl",
        [REFUND, SEATS, "Live chat support is open Monday to Saturday; email support@example.com otherwise."]
            .map(KbEntry::from_text)
            .to_vec(),
    );
    let mut second = Scripted::default();
    synthesize(&edited, &small(), &mut second, &mut Cache::open(&cache_path).unwrap(), &mut |_, _| {}).unwrap();
    // The edited entry's 8 requests, the off-topic prompts (they list every entry) and the
    // judgements that quote it or whose off-topic question is new; never the other entries' lists.
    assert!(second.requests > 0 && second.requests < first.requests / 2, "{} of {}", second.requests, first.requests);
}

#[test]
fn another_seed_gives_every_sampled_request_another_seed() {
    let kb = kb();
    let mut seeds = Vec::new();
    for seed in [1, 2] {
        struct Seeds<'a>(&'a mut Vec<(u64, String)>);
        impl Generator for Seeds<'_> {
            fn identity(&self) -> String {
                "seeds".into()
            }
            fn generate(&mut self, requests: &[Request]) -> Result<Vec<String>, String> {
                self.0.extend(requests.iter().filter(|r| r.temperature > 0.0).map(|r| (r.seed, r.user.clone())));
                Ok(requests
                    .iter()
                    .map(|r| {
                        lists([REFUND, SEATS, SUPPORT].into_iter().find(|t| r.user.contains(t)).unwrap_or(""), &r.user)
                    })
                    .collect())
            }
        }
        let mut got = Vec::new();
        let cfg = SynthConfig { seed, ..small() };
        synthesize(&kb, &cfg, &mut Seeds(&mut got), &mut Cache::none(), &mut |_, _| {}).unwrap();
        seeds.push(got);
    }
    let distinct: std::collections::HashSet<u64> = seeds[0].iter().map(|(s, _)| *s).collect();
    assert_eq!(distinct.len(), seeds[0].len(), "each sampled request has its own seed");
    assert!(seeds[0].iter().zip(&seeds[1]).all(|(a, b)| a.1 == b.1 && a.0 != b.0));
}

/// Answers the n-th asking of a list prompt (over its top-up rounds) with one question of its
/// entry's twelve, number `2·slot + n` (so a style's third asking repeats the next style's
/// first), or `n = 0` every time when `repeat`; records every seed.
struct Rounds {
    repeat: bool,
    asked: std::collections::HashMap<String, Vec<u64>>,
}

impl Generator for Rounds {
    fn identity(&self) -> String {
        "rounds".into()
    }
    fn generate(&mut self, requests: &[Request]) -> Result<Vec<String>, String> {
        Ok(requests
            .iter()
            .map(|r| {
                let text = [REFUND, SEATS, SUPPORT].into_iter().find(|t| r.user.contains(t)).unwrap_or("");
                if r.temperature == 0.0 || text.is_empty() || r.user.contains("does NOT answer") {
                    return "NO".to_string();
                }
                let seeds = self.asked.entry(r.user.clone()).or_default();
                let n = if self.repeat { 0 } else { seeds.len() };
                seeds.push(r.seed);
                format!("- {}", pool(text)[(2 * slot(&r.user) + n) % 12])
            })
            .collect())
    }
}

#[test]
fn short_pools_are_topped_up_with_new_seeds_until_full_or_dry() {
    let cfg = |rounds| SynthConfig { train_per_style: 3, rounds, ..small() };
    let run = |rounds, repeat| {
        let mut g = Rounds { repeat, asked: Default::default() };
        let s = synthesize(&kb(), &cfg(rounds), &mut g, &mut Cache::none(), &mut |_, _| {}).unwrap();
        let requests: usize = g.asked.values().map(Vec::len).sum();
        (s.summary.answerable.kept, requests, g.asked)
    };
    let (one, first_round, _) = run(1, false);
    let (three, _, asked) = run(3, false);
    assert!(three > one, "top-ups keep more: {three} vs {one}");
    // A style list (3 wanted) gets a new question in its second round and a repeat in its third.
    assert!(asked.values().any(|s| s.len() == 3), "{asked:?}");
    for seeds in asked.values() {
        let distinct: std::collections::HashSet<_> = seeds.iter().collect();
        assert_eq!(distinct.len(), seeds.len(), "every round has its own seed: {seeds:?}");
    }
    // Lists answered the same each time add nothing in their second round: no third.
    let (_, requests, _) = run(5, true);
    assert!(requests > first_round && requests <= 2 * first_round, "{requests} vs {first_round}");
}
