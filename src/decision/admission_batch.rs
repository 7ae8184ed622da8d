//! Admissions grouped into one round trip and one commit (issue 16).
//!
//! Every admission that reaches PostgreSQL was one transaction of its own:
//! its round trip, its commit and its WAL flush cost more than the work
//! inside. The admissions waiting on a replica now go together to
//! `playgate_admit_batch` (sql/V12), which runs each exactly as before
//! (the user's advisory lock, the count, the insert) in one transaction,
//! so limits stay exact across replicas.
//!
//! Nothing waits to fill a batch: an admission with a free runner goes at
//! once, alone; only admissions that arrive while every runner is busy are
//! grouped, so a batch grows with the load and latency does not.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::store::sessions::{self, Admission, AdmitOutcome};
use crate::store::{Pool, StoreError};

/// Admissions in one statement at most.
const MAX_BATCH: usize = 64;

type Reply = oneshot::Sender<Result<AdmitOutcome, StoreError>>;

pub struct AdmissionBatcher {
    pool: Pool,
    metrics: Arc<Metrics>,
    synchronous: bool,
    /// Batches in flight at most (each holds one pooled connection).
    max_running: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<(Admission, Reply)>,
    running: usize,
}

impl AdmissionBatcher {
    /// `max_running`: how many batches may use the pool at once; the rest
    /// of the pool stays free for heartbeats, stops and the admin API.
    pub fn new(
        pool: Pool,
        metrics: Arc<Metrics>,
        synchronous: bool,
        max_running: usize,
    ) -> Arc<AdmissionBatcher> {
        Arc::new(AdmissionBatcher {
            pool,
            metrics,
            synchronous,
            max_running: max_running.max(1),
            state: Mutex::new(State::default()),
        })
    }

    /// Decides one admission, together with whatever others are waiting.
    pub async fn admit(self: &Arc<Self>, admission: Admission) -> Result<AdmitOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let start_runner = {
            let mut state = self.state.lock().unwrap();
            state.waiting.push_back((admission, reply));
            let free = state.running < self.max_running;
            if free {
                state.running += 1;
            }
            free
        };
        if start_runner {
            tokio::spawn(self.clone().run());
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Other("admission batch ended unanswered".into())))
    }

    /// Runs batches until nothing waits. Taking the batch and deciding to
    /// stop happen under the same lock as `admit`'s look at `running`, so an
    /// admission is never left waiting with no runner.
    async fn run(self: Arc<Self>) {
        loop {
            let batch: Vec<(Admission, Reply)> = {
                let mut state = self.state.lock().unwrap();
                if state.waiting.is_empty() {
                    state.running -= 1;
                    return;
                }
                let size = state.waiting.len().min(MAX_BATCH);
                state.waiting.drain(..size).collect()
            };
            self.execute(batch).await;
        }
    }

    async fn execute(&self, batch: Vec<(Admission, Reply)>) {
        self.metrics.admission_batch(batch.len());
        let (admissions, replies): (Vec<Admission>, Vec<Reply>) = batch.into_iter().unzip();
        match self.write(&admissions).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            // The database refused the statement (one admission it cannot
            // store, a deadlock with another replica's batch): the batch
            // rolled back whole, so each admission is tried again alone and
            // gets its own answer.
            Err(e) if admissions.len() > 1 && !e.is_unavailable() => {
                log::warn!(
                    "a batch of {} admissions failed ({e}); deciding them one by one",
                    admissions.len()
                );
                for (admission, reply) in admissions.iter().zip(replies) {
                    let outcome = self.write(std::slice::from_ref(admission)).await;
                    let _ = reply.send(outcome.map(|mut one| one.remove(0)));
                }
            }
            // Unreachable (or a batch of one): every waiter learns why.
            Err(e) => {
                let message = e.to_string();
                let mut error = Some(e);
                for reply in replies {
                    let own = error
                        .take()
                        .unwrap_or_else(|| StoreError::Unavailable(message.clone()));
                    let _ = reply.send(Err(own));
                }
            }
        }
    }

    async fn write(&self, admissions: &[Admission]) -> Result<Vec<AdmitOutcome>, StoreError> {
        let client = self.pool.get().await?;
        sessions::admit_batch(&client, admissions, self.synchronous).await
    }
}
