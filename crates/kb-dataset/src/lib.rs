//! Knowledge base, question templates, ChatML formatting and JSONL data sets (no tensors).
//!
//! - [`Kb`] / [`KbEntry`]: `data/kb.jsonl`, ids derived from the text ([`doc_id_for`], [`text_hash`]).
//! - [`Templates`]: `data/questions.toml`, per-doc topic and question pools (train by style, eval,
//!   augment) and unanswerable questions with refusals; disjoint pools are enforced.
//! - [`chatml()`], [`prompt`], [`answer_for`], [`is_refusal`]: the exact text the Python reference
//!   pipeline used, so data files stay interchangeable. ChatML is written here and parsed only here.
//! - [`Sample`], [`read_jsonl`], [`write_jsonl`]: one typed sample (question, answer, doc_id, style)
//!   from the KB to the loss, stored as data-set lines `{"text": <ChatML>, "doc_id", "style"}`.
//! - [`build_train_set`] (with its [`Distribution`] report), [`build_eval_set`] and
//!   [`OverlapReport`]: what `gen-train-set` and `gen-eval-set` run.
//!
//! - [`write_atomic`], [`AtomicFile`], [`AtomicDir`], [`check_outputs`]: the workspace's one
//!   atomic writer, which never replaces a device, FIFO or directory, writes through symlinks,
//!   respects the umask, cleans up after interrupted runs and refuses to write over an input.
//! - [`progress_bar`]: the workspace's one progress bar (stderr, hidden off a terminal).
//!
//! Every error ([`Error`]) names the file and line or entry; every write is atomic.

mod chatml;
mod distribution;
mod error;
mod eval_set;
mod io;
mod kb;
mod language;
mod output;
mod overlap;
mod plan;
mod probe;
mod progress;
mod sample;
mod sampling;
mod templates;
mod templates_toml;

pub use chatml::{answer_for, chat_prompt, chatml, is_refusal, prompt, strip_answer_prefix};
pub use distribution::{Count, Distribution, DocCount, StyleCount};
pub use error::{Error, Result};
pub use eval_set::build_eval_set;
pub use kb::{Kb, KbEntry, doc_id_for, normalize, text_hash};
pub use language::{Language, cjk_share, is_cjk};
pub use output::{
    AtomicDir, AtomicFile, check_outputs, remove_temps_of_this_process, resolve_output, same_file, write_atomic,
};
pub use overlap::{ExactOverlap, NEAR_DUPLICATE_RATIO, NEAR_DUPLICATE_WARN_SHARE, NearDuplicate, OverlapReport};
pub use plan::{TrainRequest, largest_total};
pub use probe::{STYLE_PROBE, build_probe_set};
pub use progress::progress_bar;
pub use sample::{STYLE_EVAL, STYLE_UNANSWERABLE, Sample, check_doc_ids, read_jsonl, to_jsonl, write_jsonl};
pub use sampling::{TrainSet, build_train_set};
pub use templates::{DocTemplates, StyledQuestion, Templates, Unanswerable, UnanswerablePools};
pub use templates_toml::render_templates;
