//! Group commit: small audited writes that arrive together share one transaction, one append to
//! the audit chain and one commit.
//!
//! Both engines here commit durably (SQLite `synchronous=FULL`, PostgreSQL's default), so every
//! commit waits for the disk, and every audited write holds the audit head until it commits: 200
//! caregivers checking in at once queued 200 flushes one behind the other (p99 ~300 ms). Through
//! [`Db::grouped`] they queue for one writer task that runs whatever has arrived (up to
//! [`GROUP_MAX`]) in one transaction, each write inside its own savepoint, and commits once; each
//! caller gets its answer after that commit. A write that fails rolls back to its savepoint and
//! takes nothing else with it. The writes' audit entries are held back and appended together
//! just before the commit ([`super::append_many`]): one move of the chain's head per group.

use crate::platform::db::{BatchItem, BatchRun, Db, GroupJob as Job, GroupWork, Tx};
use crate::platform::error::{ApiError, REQUEST_ID, current_request_id};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sqlx::Executor;
use std::any::{Any, TypeId};
use tokio::sync::{mpsc, oneshot};

/// Writes in one transaction at most: a group holds the write gate (SQLite) for about this many
/// small writes, so other writers wait at most that long.
pub const GROUP_MAX: usize = 64;

/// Called with whether the group committed.
type Finish = Box<dyn FnOnce(bool) + Send>;

impl Db {
    /// Run `write` in a transaction shared with the other grouped writes that are waiting, and
    /// answer once it is committed. `write` returns `Err` to roll its own changes back (the error
    /// is the answer), or `Ok(answer)` to keep them — the answer may itself be an error that must
    /// not undo the write (a wrong code's counted try). It should only touch the database: the
    /// writes after it in the group wait for it.
    pub async fn grouped<T: Send + 'static>(
        &self,
        write: impl for<'a> FnOnce(
            &'a mut Tx<'static>,
        ) -> BoxFuture<'a, Result<Result<T, ApiError>, ApiError>>
        + Send
        + 'static,
    ) -> Result<T, ApiError> {
        self.grouped_with(true, write).await
    }

    /// [`Db::grouped`], without the savepoint when `savepoint` is false: for a write of one
    /// statement (atomic by itself) that changes nothing when it returns `Err`. It saves a round
    /// trip; if its statement fails, the whole group is answered "not saved".
    pub async fn grouped_with<T: Send + 'static>(
        &self,
        savepoint: bool,
        write: impl for<'a> FnOnce(
            &'a mut Tx<'static>,
        ) -> BoxFuture<'a, Result<Result<T, ApiError>, ApiError>>
        + Send
        + 'static,
    ) -> Result<T, ApiError> {
        let (answer, answered) = oneshot::channel::<Result<T, ApiError>>();
        let request_id = current_request_id().unwrap_or_default();
        let job: Job = Box::new(move |tx| {
            Box::pin(async move {
                // Audit rows name the request that made them, also from the writer task.
                let run = REQUEST_ID.scope(request_id, write(tx));
                let out = std::panic::AssertUnwindSafe(run).catch_unwind().await;
                match out {
                    Ok(Ok(kept)) => {
                        let finish: Finish = Box::new(move |committed| {
                            let _ = answer.send(if committed { kept } else { Err(lost()) });
                        });
                        (true, finish)
                    }
                    Ok(Err(e)) => {
                        let _ = answer.send(Err(e));
                        (false, Box::new(|_| {}) as Finish)
                    }
                    Err(_) => {
                        tracing::error!("a grouped write panicked; its changes are rolled back");
                        let _ = answer.send(Err(ApiError::internal(anyhow::anyhow!(
                            "grouped write panicked"
                        ))));
                        (false, Box::new(|_| {}) as Finish)
                    }
                }
            })
        });
        if self
            .group_queue()
            .send(GroupWork::One(savepoint, job))
            .await
            .is_err()
        {
            return Err(lost());
        }
        crate::platform::leave_place();
        answered.await.unwrap_or_else(|_| Err(lost()))
    }

    /// Write `item` together with the other items of its kind waiting in the group, in one go
    /// ([`Batch::write_all`]), and answer after the commit whether it was written. `false` when
    /// the batch's own check left it out, or when the batch as a whole failed (rolled back to
    /// its savepoint, the rest of the group unharmed): the caller then takes the one-by-one way.
    pub async fn grouped_batch<B: Batch>(&self, item: B) -> Result<bool, ApiError> {
        let (answer, answered) = oneshot::channel();
        let work = GroupWork::Batch(BatchItem {
            kind: TypeId::of::<B>(),
            item: Box::new(item),
            run: run_erased::<B>,
            answer,
        });
        if self.group_queue().send(work).await.is_err() {
            return Err(lost());
        }
        crate::platform::leave_place();
        answered.await.unwrap_or_else(|_| Err(lost()))
    }

    fn group_queue(&self) -> mpsc::Sender<GroupWork> {
        self.group
            .get_or_init(|| {
                let (send, receive) = mpsc::channel(4 * GROUP_MAX);
                start(self, receive);
                send
            })
            .clone()
    }
}

/// Writes of one kind that a group writes together: on PostgreSQL one statement for all of them
/// instead of a round trip each, which is what a crowd of check-ins waits for.
pub trait Batch: Sized + Send + 'static {
    /// Write `items` (at most [`GROUP_MAX`]), answering for each, in order, whether it was
    /// written, and appending the audit entries of those written. `Err` rolls the whole batch back.
    fn write_all<'a>(
        tx: &'a mut Tx<'static>,
        items: Vec<Self>,
    ) -> BoxFuture<'a, Result<Vec<bool>, ApiError>>;
}

fn run_erased<'a, B: Batch>(
    tx: &'a mut Tx<'static>,
    items: Vec<Box<dyn Any + Send>>,
) -> BoxFuture<'a, Result<Vec<bool>, ApiError>> {
    // The writer gathers items by their kind's TypeId, so every one is a `B`.
    let items: Vec<B> = items
        .into_iter()
        .filter_map(|i| i.downcast::<B>().ok().map(|b| *b))
        .collect();
    B::write_all(tx, items)
}

/// The answer when the group could not be committed (the database went away): nothing of the
/// write was kept, and the caller may send it again.
fn lost() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "数据库暂时无法写入，本次操作未保存，请稍后重试",
    )
}

/// The writer runs on a thread of its own with a connection of its own: every statement of a group
/// waits for the one before it, and on the server's runtime each of those waits also queued
/// behind the crowd of requests that made the group. It ends when the queue's sender is dropped
/// (with the last handle of `db`); its own handle holds no sender.
fn start(db: &Db, jobs: mpsc::Receiver<GroupWork>) {
    let db = db.clone();
    let run = move || async move {
        let mut jobs = jobs;
        let Some(own) = db.writer_pool("group commit", &mut jobs, drop).await else {
            return;
        };
        // The main handle is let go here: its queue must not keep itself open.
        drop(db);
        writer(own, jobs).await
    };
    // With no thread the queue's receiver is dropped: every grouped write answers "not saved".
    let _ = crate::platform::on_own_thread("group-commit", run);
}

async fn writer(db: Db, mut jobs: mpsc::Receiver<GroupWork>) {
    while let Some(first) = jobs.recv().await {
        let mut group = vec![first];
        // A job dropped unrun answers its caller `lost()` (its sender is dropped with it).
        let mut tx = match db.begin().await {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!(error = %e, "group commit: cannot begin");
                continue;
            }
        };
        // Taken once the transaction has begun: what came while it waited (on SQLite, behind an
        // import's chunk) goes in now, not after the next chunk.
        while group.len() < GROUP_MAX {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        tx.hold_audit();
        // Batches first, each kind in one go; then the single writes in the order they came.
        let mut batches: Vec<(TypeId, BatchRun, Vec<BatchItem>)> = Vec::new();
        let mut singles: Vec<(bool, Job)> = Vec::with_capacity(group.len());
        for work in group {
            match work {
                GroupWork::One(savepoint, job) => singles.push((savepoint, job)),
                GroupWork::Batch(item) => match batches.iter_mut().find(|b| b.0 == item.kind) {
                    Some(b) => b.2.push(item),
                    None => batches.push((item.kind, item.run, vec![item])),
                },
            }
        }
        let mut finished: Vec<Finish> = Vec::with_capacity(singles.len() + batches.len());
        let mut broken = false;
        // Each write runs inside the savepoint `grouped`; the next one's is made in the same
        // round trip as the release of the last one (a rolled-back one's is released unused).
        // A write without one changed nothing when it failed, or broke the transaction.
        let mut open = false;
        for (_, run, items) in batches {
            if broken {
                continue;
            }
            if !mark(&mut tx, &mut open).await {
                broken = true;
                continue;
            }
            let held = tx.held_audit().map_or(0, |h| h.len());
            let (answers, erased): (Vec<_>, Vec<_>) =
                items.into_iter().map(|i| (i.answer, i.item)).unzip();
            let out = std::panic::AssertUnwindSafe(run(&mut tx, erased))
                .catch_unwind()
                .await;
            let written = match out {
                Ok(Ok(w)) if w.len() == answers.len() => w,
                failed => {
                    if let Ok(Err(e)) = failed {
                        tracing::error!(error = ?e, "a grouped batch failed; its items go one by one");
                    } else {
                        tracing::error!(
                            "a grouped batch panicked or miscounted; its items go one by one"
                        );
                    }
                    if let Some(h) = tx.held_audit() {
                        h.truncate(held);
                    }
                    broken = (&mut *tx)
                        .execute("ROLLBACK TO SAVEPOINT grouped")
                        .await
                        .is_err();
                    vec![false; answers.len()]
                }
            };
            finished.push(Box::new(move |committed| {
                for (a, w) in answers.into_iter().zip(written) {
                    // Not written is an answer even when the group failed: nothing of it is kept.
                    let _ = a.send(if committed || !w { Ok(w) } else { Err(lost()) });
                }
            }));
        }
        for (savepoint, job) in singles {
            if broken {
                continue;
            }
            if savepoint && !mark(&mut tx, &mut open).await {
                broken = true;
                continue;
            }
            let held = tx.held_audit().map_or(0, |h| h.len());
            let (keep, finish) = job(&mut tx).await;
            if !keep {
                if let Some(h) = tx.held_audit() {
                    h.truncate(held);
                }
                broken = if savepoint {
                    (&mut *tx)
                        .execute("ROLLBACK TO SAVEPOINT grouped")
                        .await
                        .is_err()
                } else {
                    // A failed statement leaves PostgreSQL's transaction unusable: this asks.
                    (&mut *tx).execute("SELECT 1").await.is_err()
                };
            }
            finished.push(finish);
        }
        let entries = tx.held_audit().map(std::mem::take).unwrap_or_default();
        let entries: Vec<_> = entries.iter().collect();
        let committed = !broken
            && super::append_many(&mut tx, &entries).await.is_ok()
            && tx.commit().await.is_ok();
        if !committed {
            tracing::error!("group commit failed; its writes are answered as not saved");
        }
        for f in finished {
            f(committed);
        }
    }
}

/// Open the savepoint `grouped` for the next write (releasing the last one in the same round
/// trip); false when the transaction is broken.
async fn mark(tx: &mut Tx<'static>, open: &mut bool) -> bool {
    let sql = if *open {
        "RELEASE SAVEPOINT grouped; SAVEPOINT grouped"
    } else {
        "SAVEPOINT grouped"
    };
    *open = true;
    (&mut **tx).execute(sql).await.is_ok()
}
