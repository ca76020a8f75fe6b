//! The synthesis run: ask the generator, filter, fill the pools of `questions.toml`.
//!
//! Per KB entry the generator names a topic, quotes a contact, writes questions in each
//! training style, questions worded from other angles (the eval and augment pools) and
//! near-miss questions the entry does not answer; for the whole KB it writes off-topic
//! questions. Everything is filtered ([`crate::filter`]); answerable questions must be placed on
//! their own entry by retrieval over all the others (leave-one-out), and unanswerable ones must
//! not be judged answered by their entry (near-misses) or by the entry retrieval finds
//! (off-topic). Every request has its own seed, derived from the run's seed, the entry and the
//! task, and every answer is cached ([`Cache`]). A list whose pool is still short after
//! filtering is asked again with a new seed, for a few rounds at most.

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

/// How many questions to ask for and keep; the defaults give each entry enough for 20 training
/// samples at a quarter refusals (`gen-train-set --per-entry 20`), like the shipped curated file.
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
    /// Rounds of list requests at most: the first, then top-ups (new seeds) for lists whose
    /// pool is still short after filtering.
    pub rounds: u32,
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
            near_miss: Pools { train: 4, eval: 1, augment: 1 },
            off_topic: Pools { train: 12, eval: 3, augment: 3 },
            batch_size: 16,
            rounds: 3,
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
    /// The off-topic pools filled: `config.off_topic`, the training pool grown to one question
    /// per entry for a larger KB.
    pub off_topic_pools: Pools,
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
    /// False once retrieval misplaces it or the judge says its entry answers it.
    kept: bool,
}

/// Runs the whole synthesis for `kb`; `progress(done, total)` follows the requests (the total
/// grows when a top-up round is needed).
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
    let sizes = Sizes::new(cfg, entries.len());

    // 1. Names and contacts.
    let mut requests = Vec::new();
    for e in entries {
        requests.push(asker.request(&e.doc_id, Task::Topic, 0, prompts::topic(lang, &e.text)));
        requests.push(asker.request(&e.doc_id, Task::Contact, 0, prompts::contact(lang, &e.text)));
    }
    let mut total = requests.len() + entries.len() * LIST_TASKS_PER_ENTRY + OFF_TOPIC_PROMPTS as usize;
    let mut done = 0;
    let names = asker.ask(&requests, &mut |n| progress(n, total))?;
    done += requests.len();
    let mut topics = Vec::with_capacity(entries.len());
    let mut contacts = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        topics.push(unique_topic(parse::slug(&names[2 * i]), i, &topics));
        contacts.push(parse::contact(&names[2 * i + 1], &e.text));
    }

    // 2. Question lists, in rounds: a list task is asked again, with a new seed, while its pool
    //    is short and its last round added something.
    let mut pool = Pool::default();
    let mut asking: Vec<(Option<usize>, Task)> = (0..entries.len())
        .flat_map(|i| list_tasks().map(move |t| (Some(i), t)))
        .chain((0..OFF_TOPIC_PROMPTS).map(|p| (None, Task::OffTopic(p))))
        .collect();
    for round in 0..cfg.rounds.max(1) {
        asking.retain(|&(entry, task)| pool.short(entry, task, &sizes));
        if asking.is_empty() {
            break;
        }
        if round > 0 {
            total += asking.len();
        }
        let requests: Vec<Request> = asking
            .iter()
            .map(|&(entry, task)| match entry {
                Some(i) => asker.request(
                    &entries[i].doc_id,
                    task,
                    round,
                    prompts::list(lang, task, &entries[i].text, cfg.per_prompt),
                ),
                None => asker.request("kb", task, round, prompts::off_topic(lang, &texts, cfg.per_prompt)),
            })
            .collect();
        let outputs = asker.ask(&requests, &mut |n| progress(done + n, total))?;
        done += requests.len();
        let before = pool.candidates.len();
        for (&(entry, task), out) in asking.iter().zip(&outputs) {
            let kind = match (entry, task) {
                (Some(i), Task::Train(style)) => Kind::Train(i, style),
                (Some(i), Task::Varied(_)) => Kind::Varied(i),
                (Some(i), _) => Kind::NearMiss(i),
                (None, _) => Kind::OffTopic,
            };
            pool.screen(&screen, out, kind, entry.map(|i| texts[i]));
        }
        pool.place(&texts, before);
        let judging = pool.to_judge(&texts, before);
        total += judging.len();
        let judge_requests: Vec<Request> = judging
            .iter()
            .map(|&(n, i)| {
                let user = prompts::judge(lang, texts[i], &pool.candidates[n].question);
                asker.request(&entries[i].doc_id, Task::Judge, 0, user)
            })
            .collect();
        let verdicts = asker.ask(&judge_requests, &mut |n| progress(done + n, total))?;
        done += judge_requests.len();
        pool.judged(&judging, &verdicts, lang);
        // A task whose round added nothing would only repeat itself.
        let added: Vec<Kind> = pool.candidates[before..].iter().filter(|c| c.kept).map(|c| c.kind).collect();
        asking.retain(|&(entry, task)| added.iter().any(|k| k.of(entry, task)));
    }

    // 3. Fill the pools in generation order.
    let Pool { candidates, mut answerable, mut near_miss, mut off_topic, .. } = pool;
    let of_kind = |kind: Kind| -> Vec<String> {
        candidates.iter().filter(|c| c.kept && c.kind == kind).map(|c| c.question.clone()).collect()
    };
    let mut docs = Vec::with_capacity(entries.len());
    let mut unanswerable = UnanswerablePools::default();
    let mut entry_summaries = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let mut train = Vec::new();
        for style in Style::ALL {
            let qs = of_kind(Kind::Train(i, style));
            answerable.surplus += qs.len().saturating_sub(cfg.train_per_style);
            train.extend(
                qs.into_iter()
                    .take(cfg.train_per_style)
                    .map(|q| StyledQuestion { style: style.name(lang).to_string(), question: q }),
            );
        }
        let varied = of_kind(Kind::Varied(i));
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
        let misses = of_kind(Kind::NearMiss(i));
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
    let outside = of_kind(Kind::OffTopic);
    let kept_outside = fill(&mut unanswerable, &outside, sizes.off_topic, &prompts::refusal(lang, None));
    off_topic.kept += kept_outside;
    off_topic.surplus += outside.len() - kept_outside;

    let summary = Summary {
        language: lang,
        generator: asker.generator.identity(),
        config: cfg.clone(),
        off_topic_pools: sizes.off_topic,
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

/// The list tasks asked per entry: the styles, the varied prompts, near-misses.
fn list_tasks() -> impl Iterator<Item = Task> {
    Style::ALL.into_iter().map(Task::Train).chain((0..VARIED_PROMPTS).map(Task::Varied)).chain([Task::NearMiss])
}
const LIST_TASKS_PER_ENTRY: usize = Style::ALL.len() + VARIED_PROMPTS as usize + 1;

/// The pool sizes a run fills.
struct Sizes {
    train_per_style: usize,
    varied: usize,
    near_miss: usize,
    off_topic: Pools,
}

impl Sizes {
    fn new(cfg: &SynthConfig, entries: usize) -> Sizes {
        let o = cfg.off_topic;
        Sizes {
            train_per_style: cfg.train_per_style,
            varied: cfg.eval_per_entry + cfg.augment_per_entry,
            near_miss: cfg.near_miss.total(),
            // At least one off-topic training question per entry, so a larger KB keeps the
            // share of refusals the training set asks for.
            off_topic: Pools { train: o.train.max(entries), ..o },
        }
    }
}

impl Kind {
    /// Whether a question of this kind is what `task` on `entry` asks for.
    fn of(self, entry: Option<usize>, task: Task) -> bool {
        match (self, entry, task) {
            (Kind::Train(i, s), Some(e), Task::Train(t)) => i == e && s == t,
            (Kind::Varied(i), Some(e), Task::Varied(_)) => i == e,
            (Kind::NearMiss(i), Some(e), Task::NearMiss) => i == e,
            (Kind::OffTopic, None, Task::OffTopic(_)) => true,
            _ => false,
        }
    }
}

/// Every candidate so far, whether each is still kept, and the filter counts.
#[derive(Default)]
struct Pool {
    candidates: Vec<Candidate>,
    seen: Seen,
    answerable: Counts,
    near_miss: Counts,
    off_topic: Counts,
}

impl Pool {
    fn counts(&mut self, kind: Kind) -> &mut Counts {
        match kind {
            Kind::Train(..) | Kind::Varied(_) => &mut self.answerable,
            Kind::NearMiss(_) => &mut self.near_miss,
            Kind::OffTopic => &mut self.off_topic,
        }
    }

    /// Whether `task` on `entry` has fewer kept questions than its pool needs.
    fn short(&self, entry: Option<usize>, task: Task, sizes: &Sizes) -> bool {
        let kept = self.candidates.iter().filter(|c| c.kept && c.kind.of(entry, task)).count();
        let want = match task {
            Task::Train(_) => sizes.train_per_style,
            Task::Varied(_) => sizes.varied,
            Task::NearMiss => sizes.near_miss,
            _ => sizes.off_topic.total(),
        };
        kept < want
    }

    /// Parses one list answer and keeps the questions that pass the screen and are new.
    fn screen(&mut self, screen: &Screen, output: &str, kind: Kind, entry: Option<&str>) {
        for q in parse::questions(output) {
            self.counts(kind).generated += 1;
            match screen.check(&q, entry) {
                Err(drop) => self.counts(kind).count(drop),
                Ok((question, converted)) => {
                    self.counts(kind).converted_script += usize::from(converted);
                    if self.seen.insert(&question) {
                        self.candidates.push(Candidate { question, kind, kept: true });
                    } else {
                        self.counts(kind).near_duplicate += 1;
                    }
                }
            }
        }
    }

    /// Retrieval over every entry and every other answerable question must place each new
    /// answerable question (from `from` on) on its own entry.
    fn place(&mut self, texts: &[&str], from: usize) {
        let training: Vec<TrainingQuestion> = self
            .candidates
            .iter()
            .filter(|c| c.kept)
            .filter_map(|c| match c.kind {
                Kind::Train(i, _) | Kind::Varied(i) => {
                    Some(TrainingQuestion { question: c.question.clone(), class: Class::Entry(i), refusal: None })
                }
                _ => None,
            })
            .collect();
        let index = Index::build(texts, &training);
        for c in &mut self.candidates[from..] {
            if let Kind::Train(i, _) | Kind::Varied(i) = c.kind {
                c.kept = index.query_left_out(&c.question, Scope::Entries).top() == Some(Class::Entry(i));
                self.answerable.misplaced += usize::from(!c.kept);
            }
        }
    }

    /// The new unanswerable questions (from `from` on) to judge, with the entry to judge them
    /// against: a near-miss's own entry, or the entry retrieval finds for an off-topic one.
    fn to_judge(&self, texts: &[&str], from: usize) -> Vec<(usize, usize)> {
        let index = Index::build(texts, &[]);
        (from..self.candidates.len())
            .filter_map(|n| match self.candidates[n].kind {
                Kind::NearMiss(i) => Some((n, i)),
                Kind::OffTopic => match index.query(&self.candidates[n].question, Scope::Entries).top() {
                    Some(Class::Entry(i)) => Some((n, i)),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    /// Drops the unanswerable questions the judge says their entry answers after all.
    fn judged(&mut self, judged: &[(usize, usize)], verdicts: &[String], lang: Language) {
        for (&(n, _), verdict) in judged.iter().zip(verdicts) {
            let kind = self.candidates[n].kind;
            match parse::yes(verdict, lang) {
                Some(true) => {
                    self.counts(kind).answered += 1;
                    self.candidates[n].kept = false;
                }
                Some(false) => {}
                None => self.counts(kind).unclear_judgement += 1,
            }
        }
    }
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
    /// A request for `task` in top-up round `round` (0 for the first), which changes its seed.
    fn request(&self, scope: &str, task: Task, round: u32, user: String) -> Request {
        let sampled = task.sampled();
        let key = if round == 0 { task.key() } else { format!("{}#{round}", task.key()) };
        Request {
            system: prompts::system(self.lang).to_string(),
            user,
            // Greedy answers do not depend on a seed: leaving it out of their key lets a new seed
            // reuse them.
            seed: if sampled { request_seed(self.cfg.seed, scope, &key) } else { 0 },
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
