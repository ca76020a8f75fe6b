//! The synthesis run: ask the generator, filter, fill the pools of `questions.toml`.
//!
//! Per KB entry the generator names a topic, quotes a contact, writes questions in each
//! training style, questions worded from other angles (the eval and augment pools) and
//! near-miss questions the entry does not answer; for the whole KB it writes off-topic
//! questions. Everything is filtered ([`crate::filter`]); answerable questions must be placed on
//! their own entry by retrieval over all the others (leave-one-out), and unanswerable ones must
//! not be judged answered by their entry (near-misses) or by the entry retrieval finds
//! (off-topic). Every request has its own seed, derived from the run's seed, the entry and the
//! task, and every answer is cached ([`Cache`]).

use std::time::Instant;

use kb_dataset::{DocTemplates, Kb, Language, StyledQuestion, Unanswerable, UnanswerablePools};
use postprocess::{Class, Index, Scope, TrainingQuestion};
use serde::Serialize;

use crate::cache::{Cache, key};
use crate::error::{Error, Result};
use crate::filter::{COPY_MIN_CHARS, COPY_SHARE, Counts, MIN_CJK_SHARE_ZH, Screen, Seen};
use crate::generator::{Generator, Request};
use crate::parse;
use crate::prompts::{self, Style, Task};

/// How many questions to ask for and keep; defaults give pools like the shipped curated file.
#[derive(Debug, Clone, Serialize)]
pub struct SynthConfig {
    pub seed: u64,
    /// Sampling temperature of the question lists (names and judgements are greedy).
    pub temperature: f64,
    /// Questions asked for in each list prompt.
    pub per_prompt: usize,
    /// Kept training questions per entry and style.
    pub train_per_style: usize,
    pub eval_per_entry: usize,
    pub augment_per_entry: usize,
    /// Near-miss questions kept per entry, by pool.
    pub near_miss: Pools,
    /// Off-topic questions kept for the whole KB, by pool.
    pub off_topic: Pools,
    /// Requests answered together.
    pub batch_size: usize,
}

/// Sizes of the train, eval and augment pools.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Pools {
    pub train: usize,
    pub eval: usize,
    pub augment: usize,
}

impl Pools {
    fn total(self) -> usize {
        self.train + self.eval + self.augment
    }
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 42,
            temperature: 0.9,
            per_prompt: 8,
            train_per_style: 4,
            eval_per_entry: 5,
            augment_per_entry: 6,
            near_miss: Pools { train: 3, eval: 1, augment: 1 },
            off_topic: Pools { train: 12, eval: 3, augment: 3 },
            batch_size: 16,
        }
    }
}

/// Prompts worded from other angles per entry, and off-topic prompts per KB: enough candidates
/// for their pools after filtering.
const VARIED_PROMPTS: u8 = 2;
const OFF_TOPIC_PROMPTS: u8 = 4;
/// Token budgets: a list of questions, a name, a one-word judgement.
const LIST_TOKENS: usize = 320;
const NAME_TOKENS: usize = 24;
const JUDGE_TOKENS: usize = 4;

/// What a run did, written beside `questions.toml`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub language: Language,
    pub generator: String,
    pub config: SynthConfig,
    pub thresholds: Thresholds,
    /// Requests asked in all, and how many of them the cache answered.
    pub requests: usize,
    pub cached: usize,
    pub seconds: f64,
    pub answerable: Counts,
    pub near_miss: Counts,
    pub off_topic: Counts,
    pub entries: Vec<EntrySummary>,
}

/// The constants the filters used (none is fitted to a KB).
#[derive(Debug, Clone, Serialize)]
pub struct Thresholds {
    pub near_duplicate_ratio: f64,
    pub copy_share: f64,
    pub copy_min_chars: usize,
    pub min_cjk_share_zh: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EntrySummary {
    pub doc_id: String,
    pub topic: String,
    pub contact: Option<String>,
    pub train: usize,
    pub eval: usize,
    pub augment: usize,
    pub near_miss: usize,
}

/// The synthesized pools, ready to render as `questions.toml`.
#[derive(Debug, Clone)]
pub struct Synthesis {
    pub language: Language,
    pub docs: Vec<DocTemplates>,
    pub unanswerable: UnanswerablePools,
    pub summary: Summary,
}

/// What a candidate question is for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Train(usize, Style),
    Varied(usize),
    NearMiss(usize),
    OffTopic,
}

struct Candidate {
    question: String,
    kind: Kind,
}

/// Runs the whole synthesis for `kb`; `progress(done, total)` follows the requests.
pub fn synthesize(
    kb: &Kb,
    cfg: &SynthConfig,
    generator: &mut dyn Generator,
    cache: &mut Cache,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Synthesis> {
    let start = Instant::now();
    let entries = kb.entries();
    let texts: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
    let lang = Language::detect(texts.iter().copied());
    let screen = Screen::for_kb(lang, texts.iter().copied());
    let mut asker = Asker { generator, cache, cfg, lang, asked: 0, cached: 0 };

    // 1. Names, contacts and question lists.
    let mut requests = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        requests.push(asker.request(&e.doc_id, Task::Topic, prompts::topic(lang, &e.text)));
        requests.push(asker.request(&e.doc_id, Task::Contact, prompts::contact(lang, &e.text)));
        for style in Style::ALL {
            let task = Task::Train(style);
            requests.push(asker.request(&e.doc_id, task, prompts::list(lang, task, &e.text, cfg.per_prompt)));
        }
        for part in 0..VARIED_PROMPTS {
            let task = Task::Varied(part);
            requests.push(asker.request(&e.doc_id, task, prompts::list(lang, task, &e.text, cfg.per_prompt)));
        }
        requests.push(asker.request(
            &e.doc_id,
            Task::NearMiss,
            prompts::list(lang, Task::NearMiss, &e.text, cfg.per_prompt),
        ));
        debug_assert_eq!(requests.len(), (i + 1) * PER_ENTRY);
    }
    for part in 0..OFF_TOPIC_PROMPTS {
        requests.push(asker.request("kb", Task::OffTopic(part), prompts::off_topic(lang, &texts, cfg.per_prompt)));
    }
    let judge_estimate = entries.len() * cfg.per_prompt + OFF_TOPIC_PROMPTS as usize * cfg.per_prompt;
    let total_estimate = requests.len() + judge_estimate;
    let outputs = asker.ask(&requests, &mut |done| progress(done, total_estimate))?;

    // 2. Parse, screen and drop near-duplicates, in a fixed order.
    let mut topics = Vec::with_capacity(entries.len());
    let mut contacts = Vec::with_capacity(entries.len());
    let mut candidates = Vec::new();
    let (mut answerable, mut near_miss, mut off_topic) = (Counts::default(), Counts::default(), Counts::default());
    let mut seen = Seen::default();
    for (i, e) in entries.iter().enumerate() {
        let out = &outputs[i * PER_ENTRY..(i + 1) * PER_ENTRY];
        topics.push(unique_topic(parse::slug(&out[0]), i, &topics));
        contacts.push(parse::contact(&out[1], &e.text));
        let lists = Style::ALL
            .iter()
            .enumerate()
            .map(|(k, &s)| (Kind::Train(i, s), &out[2 + k]))
            .chain((0..VARIED_PROMPTS as usize).map(|k| (Kind::Varied(i), &out[2 + Style::ALL.len() + k])))
            .chain([(Kind::NearMiss(i), &out[PER_ENTRY - 1])]);
        for (kind, text) in lists {
            let counts = if matches!(kind, Kind::NearMiss(_)) { &mut near_miss } else { &mut answerable };
            screen_into(&screen, text, kind, Some(&e.text), counts, &mut seen, &mut candidates);
        }
    }
    for text in &outputs[entries.len() * PER_ENTRY..] {
        screen_into(&screen, text, Kind::OffTopic, None, &mut off_topic, &mut seen, &mut candidates);
    }

    // 3. Retrieval: answerable questions must land on their own entry, judged by all the others.
    let training: Vec<TrainingQuestion> = candidates
        .iter()
        .filter_map(|c| match c.kind {
            Kind::Train(i, _) | Kind::Varied(i) => {
                Some(TrainingQuestion { question: c.question.clone(), class: Class::Entry(i), refusal: None })
            }
            _ => None,
        })
        .collect();
    let index = Index::build(&texts, &training);
    candidates.retain(|c| match c.kind {
        Kind::Train(i, _) | Kind::Varied(i) => {
            let placed = index.query_left_out(&c.question, Scope::Entries).top() == Some(Class::Entry(i));
            answerable.misplaced += usize::from(!placed);
            placed
        }
        _ => true,
    });

    // 4. Unanswerable questions the KB answers after all are dropped.
    let mut judged = Vec::new();
    let mut judge_requests = Vec::new();
    for (n, c) in candidates.iter().enumerate() {
        let entry = match c.kind {
            Kind::NearMiss(i) => Some(i),
            Kind::OffTopic => match index.query(&c.question, Scope::Entries).top() {
                Some(Class::Entry(i)) => Some(i),
                _ => None,
            },
            _ => None,
        };
        if let Some(i) = entry {
            judged.push(n);
            let user = prompts::judge(lang, &entries[i].text, &c.question);
            judge_requests.push(asker.request(&entries[i].doc_id, Task::Judge, user));
        }
    }
    let offset = requests.len();
    let verdicts = asker.ask(&judge_requests, &mut |done| progress(offset + done, offset + judge_requests.len()))?;
    let mut answered = vec![false; candidates.len()];
    for (&n, verdict) in judged.iter().zip(&verdicts) {
        let counts = if matches!(candidates[n].kind, Kind::OffTopic) { &mut off_topic } else { &mut near_miss };
        match parse::yes(verdict, lang) {
            Some(true) => {
                counts.answered += 1;
                answered[n] = true;
            }
            Some(false) => {}
            None => counts.unclear_judgement += 1,
        }
    }
    let mut keep = answered.iter().map(|a| !a);
    candidates.retain(|_| keep.next().unwrap_or(true));

    // 5. Fill the pools in generation order.
    let mut docs = Vec::with_capacity(entries.len());
    let mut unanswerable = UnanswerablePools::default();
    let mut entry_summaries = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let mut train = Vec::new();
        for style in Style::ALL {
            let qs = of_kind(&candidates, Kind::Train(i, style));
            answerable.surplus += qs.len().saturating_sub(cfg.train_per_style);
            train.extend(
                qs.into_iter()
                    .take(cfg.train_per_style)
                    .map(|q| StyledQuestion { style: style.name(lang).to_string(), question: q }),
            );
        }
        let varied = of_kind(&candidates, Kind::Varied(i));
        let eval: Vec<String> = varied.iter().take(cfg.eval_per_entry).cloned().collect();
        let augment: Vec<String> =
            varied.iter().skip(cfg.eval_per_entry).take(cfg.augment_per_entry).cloned().collect();
        answerable.surplus += varied.len() - eval.len() - augment.len();
        let counts = || format!("{answerable:?}");
        if train.is_empty() {
            return Err(Error::Starved { doc_id: e.doc_id.clone(), what: "training question", counts: counts() });
        }
        if eval.is_empty() {
            return Err(Error::Starved { doc_id: e.doc_id.clone(), what: "eval question", counts: counts() });
        }
        answerable.kept += train.len() + eval.len() + augment.len();
        let refusal = prompts::refusal(lang, contacts[i].as_deref());
        let misses = of_kind(&candidates, Kind::NearMiss(i));
        let kept_misses = fill(&mut unanswerable, &misses, cfg.near_miss, &refusal);
        near_miss.kept += kept_misses;
        near_miss.surplus += misses.len() - kept_misses;
        entry_summaries.push(EntrySummary {
            doc_id: e.doc_id.clone(),
            topic: topics[i].clone(),
            contact: contacts[i].clone(),
            train: train.len(),
            eval: eval.len(),
            augment: augment.len(),
            near_miss: kept_misses,
        });
        docs.push(DocTemplates { topic: topics[i].clone(), doc_id: e.doc_id.clone(), train, eval, augment });
    }
    let outside = of_kind(&candidates, Kind::OffTopic);
    let kept_outside = fill(&mut unanswerable, &outside, cfg.off_topic, &prompts::refusal(lang, None));
    off_topic.kept += kept_outside;
    off_topic.surplus += outside.len() - kept_outside;

    let summary = Summary {
        language: lang,
        generator: asker.generator.identity(),
        config: cfg.clone(),
        thresholds: Thresholds {
            near_duplicate_ratio: kb_dataset::NEAR_DUPLICATE_RATIO,
            copy_share: COPY_SHARE,
            copy_min_chars: COPY_MIN_CHARS,
            min_cjk_share_zh: MIN_CJK_SHARE_ZH,
        },
        requests: asker.asked,
        cached: asker.cached,
        seconds: start.elapsed().as_secs_f64(),
        answerable,
        near_miss,
        off_topic,
        entries: entry_summaries,
    };
    Ok(Synthesis { language: lang, docs, unanswerable, summary })
}

/// Requests per entry: topic, contact, the styles, the varied prompts, near-misses.
const PER_ENTRY: usize = 2 + Style::ALL.len() + VARIED_PROMPTS as usize + 1;

/// Parses one list answer and keeps the questions that pass the screen and are new.
fn screen_into(
    screen: &Screen,
    output: &str,
    kind: Kind,
    entry: Option<&str>,
    counts: &mut Counts,
    seen: &mut Seen,
    out: &mut Vec<Candidate>,
) {
    for q in parse::questions(output) {
        counts.generated += 1;
        match screen.check(&q, entry) {
            Err(drop) => counts.count(drop),
            Ok((question, converted)) => {
                counts.converted_script += usize::from(converted);
                if seen.insert(&question) {
                    out.push(Candidate { question, kind });
                } else {
                    counts.near_duplicate += 1;
                }
            }
        }
    }
}

fn of_kind(candidates: &[Candidate], kind: Kind) -> Vec<String> {
    candidates.iter().filter(|c| c.kind == kind).map(|c| c.question.clone()).collect()
}

/// Adds up to `sizes` questions to the unanswerable pools (train first); returns how many.
fn fill(pools: &mut UnanswerablePools, questions: &[String], sizes: Pools, refusal: &str) -> usize {
    let mut it = questions.iter().map(|q| Unanswerable { question: q.clone(), refusal: refusal.to_string() });
    pools.train.extend(it.by_ref().take(sizes.train));
    pools.eval.extend(it.by_ref().take(sizes.eval));
    pools.augment.extend(it.by_ref().take(sizes.augment));
    questions.len().min(sizes.total())
}

/// The generated slug, or `entry-N`, made unique among `taken`.
fn unique_topic(slug: Option<String>, i: usize, taken: &[String]) -> String {
    let base = slug.unwrap_or_else(|| format!("entry-{}", i + 1));
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// Turns tasks into requests and answers them through the cache.
struct Asker<'a> {
    generator: &'a mut dyn Generator,
    cache: &'a mut Cache,
    cfg: &'a SynthConfig,
    lang: Language,
    asked: usize,
    cached: usize,
}

impl Asker<'_> {
    fn request(&self, scope: &str, task: Task, user: String) -> Request {
        let sampled = task.sampled();
        Request {
            system: prompts::system(self.lang).to_string(),
            user,
            // Greedy answers do not depend on a seed: leaving it out of their key lets a new seed
            // reuse them.
            seed: if sampled { request_seed(self.cfg.seed, scope, &task.key()) } else { 0 },
            temperature: if sampled { self.cfg.temperature } else { 0.0 },
            max_new_tokens: match task {
                Task::Judge => JUDGE_TOKENS,
                Task::Topic | Task::Contact => NAME_TOKENS,
                _ => LIST_TOKENS,
            },
        }
    }

    /// Answers every request: cached ones from the cache, the rest in batches, each batch
    /// cached as soon as it is done. `done(n)` follows the requests answered so far.
    fn ask(&mut self, requests: &[Request], done: &mut dyn FnMut(usize)) -> Result<Vec<String>> {
        let identity = self.generator.identity();
        let keys: Vec<String> = requests.iter().map(|r| key(&identity, r)).collect();
        let missing: Vec<usize> = (0..requests.len()).filter(|&i| self.cache.get(&keys[i]).is_none()).collect();
        self.asked += requests.len();
        self.cached += requests.len() - missing.len();
        let mut answered = requests.len() - missing.len();
        done(answered);
        for chunk in missing.chunks(self.cfg.batch_size.max(1)) {
            let batch: Vec<Request> = chunk.iter().map(|&i| requests[i].clone()).collect();
            let outputs = self.generator.generate(&batch).map_err(Error::Generate)?;
            if outputs.len() != batch.len() {
                return Err(Error::Generate(format!("{} answers for {} requests", outputs.len(), batch.len())));
            }
            self.cache.put(chunk.iter().map(|&i| keys[i].clone()).zip(outputs))?;
            answered += chunk.len();
            done(answered);
        }
        Ok(keys.iter().map(|k| self.cache.get(k).unwrap_or_default().to_string()).collect())
    }
}

/// A request's seed: the run's seed mixed with what the request is about, so adding an entry
/// or a task leaves every other request's seed alone.
fn request_seed(seed: u64, scope: &str, task: &str) -> u64 {
    // FNV-1a over the scope and task, then mixed with the seed by the workspace's one SplitMix64.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in scope.bytes().chain([0]).chain(task.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    qwen_lora::splitmix::hash(qwen_lora::splitmix::hash(seed) ^ h)
}
