//! Continuous batching for requests that arrive while others decode (a server's).
//!
//! [`channel`] gives a [`Submitter`] (cloned into every request handler) and a [`Batcher`], whose
//! [`Batcher::run`] decodes on the calling thread until every submitter is gone. Requests wait in
//! a bounded queue ([`SubmitError::Full`] when it is full: memory never grows with the load).
//! Before each step the waiting requests take the free slots: they are prefilled together and
//! join the running batch exactly as in [`generate`](crate::generate), so a row decodes like its
//! prompt alone (same positions, same masks) and a greedy answer is the one `generate` gives.
//! Each step every row gets one token, sent to its request's event sink; a row leaves the batch
//! when it stops, reaches its `max_new_tokens`, or its request is cancelled (a client that went
//! away costs at most one more step). Sampling draws from a generator seeded per request, so a
//! seed reproduces an answer whatever else is in the batch.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};

use candle_core::DType;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::generate::{Batch, GenerationConfig, pick};
use crate::model::Qwen2;
use crate::{Error, Result};

/// What a request's sink receives, in order: tokens, then one `Done` or `Failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The next generated token (never a stop token).
    Token(u32),
    Done(Finish),
    /// The model failed while this request was in the batch.
    Failed(String),
}

/// Why an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model produced a stop token.
    Stop,
    /// `max_new_tokens` were generated.
    Length,
}

/// Receives a request's events; returns `false` when nobody listens any more (the row leaves).
pub type Sink = Box<dyn FnMut(Event) -> bool + Send>;

/// One request for the batcher.
pub struct Request {
    /// Prompt token ids (at least one).
    pub prompt: Vec<u32>,
    /// Decoding settings; `batch_size` is the batcher's, not the request's.
    pub cfg: GenerationConfig,
    /// Set by the requester to take the request out of the queue or the batch.
    pub cancel: Arc<AtomicBool>,
    pub events: Sink,
}

/// Why [`Submitter::submit`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue holds as many requests as it may.
    Full,
    /// The batcher has stopped.
    Closed,
}

/// How busy the batcher is, for health checks and tests.
#[derive(Debug, Default)]
pub struct Load {
    queued: AtomicUsize,
    decoding: AtomicUsize,
}

impl Load {
    /// Requests waiting for a slot.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Requests in the running batch.
    pub fn decoding(&self) -> usize {
        self.decoding.load(Ordering::Relaxed)
    }
}

/// The handle request handlers submit through; cheap to clone.
#[derive(Clone)]
pub struct Submitter {
    tx: SyncSender<Request>,
    load: Arc<Load>,
}

impl Submitter {
    /// Queues `req`, or refuses it at once when the queue is full or the batcher is gone.
    pub fn submit(&self, req: Request) -> std::result::Result<(), SubmitError> {
        // Counted before the send so the batcher never sees a request it has not been told of.
        self.load.queued.fetch_add(1, Ordering::Relaxed);
        self.tx.try_send(req).map_err(|e| {
            self.load.queued.fetch_sub(1, Ordering::Relaxed);
            match e {
                TrySendError::Full(_) => SubmitError::Full,
                TrySendError::Disconnected(_) => SubmitError::Closed,
            }
        })
    }

    pub fn load(&self) -> &Load {
        &self.load
    }
}

/// Decodes the submitted requests; see the module docs.
pub struct Batcher {
    rx: Receiver<Request>,
    load: Arc<Load>,
    batch_size: usize,
}

/// A submitter and its batcher: at most `batch_size` requests decode together and at most
/// `queue` more wait.
pub fn channel(batch_size: usize, queue: usize) -> (Submitter, Batcher) {
    let (tx, rx) = sync_channel(queue);
    let load = Arc::new(Load::default());
    (Submitter { tx, load: load.clone() }, Batcher { rx, load, batch_size: batch_size.max(1) })
}

/// A request in the batch.
struct Active {
    cfg: GenerationConfig,
    rng: StdRng,
    cancel: Arc<AtomicBool>,
    events: Sink,
    generated: usize,
}

impl Batcher {
    /// Decodes until every [`Submitter`] is dropped and the last request has finished. A model
    /// error fails the requests in the batch (each gets [`Event::Failed`]) and decoding goes on
    /// with the next ones.
    pub fn run(self, model: &Qwen2, stop: &[u32]) {
        let mut batch = Batch::default();
        let mut active: HashMap<usize, Active> = HashMap::new();
        let mut next_id = 0usize;
        loop {
            let mut joining: Vec<(usize, Vec<u32>)> = Vec::new();
            while batch.rows.len() + joining.len() < self.batch_size {
                let req = if batch.rows.is_empty() && joining.is_empty() {
                    match self.rx.recv() {
                        Ok(r) => r,
                        Err(_) => return,
                    }
                } else {
                    match self.rx.try_recv() {
                        Ok(r) => r,
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                };
                self.load.queued.fetch_sub(1, Ordering::Relaxed);
                let Request { prompt, cfg, cancel, mut events } = req;
                if cancel.load(Ordering::Relaxed) {
                    continue;
                }
                if prompt.is_empty() {
                    events(Event::Failed("the prompt has no tokens".into()));
                    continue;
                }
                if cfg.max_new_tokens == 0 {
                    events(Event::Done(Finish::Length));
                    continue;
                }
                let rng = StdRng::seed_from_u64(cfg.seed);
                active.insert(next_id, Active { cfg, rng, cancel, events, generated: 0 });
                joining.push((next_id, prompt));
                next_id = next_id.wrapping_add(1);
            }
            if !joining.is_empty() {
                let refs: Vec<(usize, &[u32])> = joining.iter().map(|(id, p)| (*id, p.as_slice())).collect();
                if let Err(e) = batch.join(model, &refs) {
                    for (id, _) in &joining {
                        fail(&mut active, *id, &e);
                    }
                }
            }
            self.load.decoding.store(batch.rows.len(), Ordering::Relaxed);
            if batch.rows.is_empty() {
                continue;
            }
            if let Err(e) = self.step(model, stop, &mut batch, &mut active) {
                for row in std::mem::take(&mut batch).rows {
                    fail(&mut active, row.id, &e);
                }
            }
            self.load.decoding.store(batch.rows.len(), Ordering::Relaxed);
        }
    }

    /// Picks every row's next token, sends it, drops the rows that are done and feeds the rest.
    fn step(&self, model: &Qwen2, stop: &[u32], batch: &mut Batch, active: &mut HashMap<usize, Active>) -> Result<()> {
        let logits = batch.logits.take().ok_or_else(|| Error::msg("live batch: no logits"))?;
        let (mut keep, mut next) = (Vec::new(), Vec::new());
        for (slot, row_logits) in logits.to_dtype(DType::F32)?.to_vec2::<f32>()?.into_iter().enumerate() {
            let row = &mut batch.rows[slot];
            let Some(a) = active.get_mut(&row.id) else { continue };
            let going_on = if a.cancel.load(Ordering::Relaxed) {
                false
            } else {
                let tok = pick(row_logits, &row.history, &a.cfg, &mut a.rng);
                if stop.contains(&tok) {
                    (a.events)(Event::Done(Finish::Stop));
                    false
                } else {
                    row.history.push(tok);
                    a.generated += 1;
                    let listening = (a.events)(Event::Token(tok));
                    if listening && a.generated >= a.cfg.max_new_tokens {
                        (a.events)(Event::Done(Finish::Length));
                        false
                    } else {
                        if listening {
                            next.push(tok);
                        }
                        listening
                    }
                }
            };
            if going_on {
                keep.push(slot);
            } else {
                active.remove(&row.id);
            }
        }
        batch.keep(model.device(), &keep)?;
        if !batch.rows.is_empty() {
            batch.step(model, next)?;
        }
        Ok(())
    }
}

fn fail(active: &mut HashMap<usize, Active>, id: usize, e: &Error) {
    if let Some(mut a) = active.remove(&id) {
        (a.events)(Event::Failed(e.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use candle_core::{Device, Tensor};
    use candle_nn::VarBuilder;

    use super::*;
    use crate::fixture::{tiny_config, tiny_tensors};
    use crate::generate::generate;

    fn model() -> Qwen2 {
        let ts: HashMap<String, Tensor> = tiny_tensors(5).unwrap().into_iter().collect();
        Qwen2::new(&tiny_config(), VarBuilder::from_tensors(ts, DType::F32, &Device::Cpu), None).unwrap()
    }

    type Log = Arc<Mutex<Vec<Event>>>;

    fn request(prompt: Vec<u32>, max_new_tokens: usize) -> (Request, Log, Arc<AtomicBool>) {
        let log: Log = Arc::default();
        let cancel = Arc::new(AtomicBool::new(false));
        let sink = log.clone();
        let req = Request {
            prompt,
            cfg: GenerationConfig { max_new_tokens, ..GenerationConfig::default() },
            cancel: cancel.clone(),
            events: Box::new(move |e| {
                sink.lock().unwrap().push(e);
                true
            }),
        };
        (req, log, cancel)
    }

    fn tokens(log: &Log) -> Vec<u32> {
        log.lock().unwrap().iter().filter_map(|e| if let Event::Token(t) = e { Some(*t) } else { None }).collect()
    }

    #[test]
    fn requests_arriving_at_any_time_get_what_generate_gives_them_alone() {
        let m = model();
        let prompts: Vec<Vec<u32>> = (0..6u32).map(|i| (1..3 + 2 * i).collect()).collect();
        let alone: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| {
                let cfg = GenerationConfig { max_new_tokens: 6 + p.len(), batch_size: 1, ..Default::default() };
                generate(&m, std::slice::from_ref(p), &[], &cfg, |_| {}).unwrap().remove(0)
            })
            .collect();
        let (submit, batcher) = channel(3, 16);
        let logs: Vec<Log> = std::thread::scope(|s| {
            s.spawn(|| batcher.run(&m, &[]));
            let logs = prompts
                .iter()
                .map(|p| {
                    let (req, log, _) = request(p.clone(), 6 + p.len());
                    submit.submit(req).unwrap();
                    // Let some requests join a batch that is already decoding.
                    std::thread::sleep(std::time::Duration::from_millis(3));
                    log
                })
                .collect();
            drop(submit);
            logs
        });
        for (i, log) in logs.iter().enumerate() {
            assert_eq!(tokens(log), alone[i], "request {i}");
            assert_eq!(log.lock().unwrap().last(), Some(&Event::Done(Finish::Length)), "request {i}");
        }
    }

    #[test]
    fn a_full_queue_refuses_and_a_cancelled_request_stops_early() {
        let m = model();
        let (submit, batcher) = channel(1, 1);
        let (first, first_log, _) = request(vec![1, 2, 3], 40);
        let (second, ..) = request(vec![4, 5], 4);
        let (third, ..) = request(vec![6], 4);
        // Nothing runs yet: one request fits the queue, the next is refused.
        submit.submit(first).unwrap();
        assert_eq!(submit.load().queued(), 1);
        assert_eq!(submit.submit(second).unwrap_err(), SubmitError::Full);
        let (cancelled, cancelled_log, cancel) = request(vec![7, 8], 40);
        cancel.store(true, Ordering::Relaxed);
        std::thread::scope(|s| {
            s.spawn(|| batcher.run(&m, &[]));
            while first_log.lock().unwrap().is_empty() {
                std::thread::yield_now();
            }
            submit.submit(cancelled).unwrap();
            drop(submit);
        });
        assert_eq!(tokens(&first_log).len(), 40);
        assert!(cancelled_log.lock().unwrap().is_empty(), "a request cancelled while queued never runs");
        let (submit, batcher) = channel(1, 1);
        drop(batcher);
        assert_eq!(submit.submit(third).unwrap_err(), SubmitError::Closed);
    }
}
