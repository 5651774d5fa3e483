//! A bounded pool of logged-in PKCS#11 sessions.
//!
//! A `Session` is `Send` but not `Sync`, so each blocking worker borrows one for the length
//! of a call. A borrowed session that is dropped without `release()` is closed, not reused:
//! after an error we cannot know what state it is in.

use std::sync::{Condvar, Mutex, MutexGuard};

use cryptoki::session::Session;

pub(super) struct Pool {
    state: Mutex<PoolState>,
    available: Condvar,
    max: usize,
}

struct PoolState {
    idle: Vec<Session>,
    /// Sessions that exist: idle plus lent out.
    open: usize,
}

pub(super) struct Lease<'a> {
    pool: &'a Pool,
    session: Option<Session>,
}

impl Pool {
    pub(super) fn new(max: usize) -> Self {
        Pool {
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            available: Condvar::new(),
            max: max.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic while holding this lock leaves only counters behind; they stay usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Borrow an idle session, open a new one while under the limit, or wait for one.
    pub(super) fn acquire<E>(
        &self,
        open: impl FnOnce() -> Result<Session, E>,
    ) -> Result<Lease<'_>, E> {
        let mut st = self.lock();
        loop {
            if let Some(s) = st.idle.pop() {
                return Ok(Lease {
                    pool: self,
                    session: Some(s),
                });
            }
            if st.open < self.max {
                st.open += 1;
                break;
            }
            st = self.available.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        drop(st);
        // Opening and logging in can be slow; do it without the lock held.
        match open() {
            Ok(s) => Ok(Lease {
                pool: self,
                session: Some(s),
            }),
            Err(e) => {
                self.lock().open -= 1;
                self.available.notify_one();
                Err(e)
            }
        }
    }

    /// Close every idle session, e.g. after the token went away.
    pub(super) fn close_idle(&self) {
        let idle = {
            let mut st = self.lock();
            let idle = std::mem::take(&mut st.idle);
            st.open -= idle.len();
            idle
        };
        drop(idle);
        self.available.notify_all();
    }

    /// (open, idle) session counts, for health and metrics.
    pub(super) fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.open, st.idle.len())
    }
}

impl Lease<'_> {
    pub(super) fn session(&self) -> &Session {
        // Invariant: `session` is Some until `release` or drop consumes it.
        match &self.session {
            Some(s) => s,
            None => unreachable!("lease used after release"),
        }
    }

    /// Give a healthy session back for reuse.
    pub(super) fn release(mut self) {
        if let Some(s) = self.session.take() {
            self.pool.lock().idle.push(s);
            self.pool.available.notify_one();
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            drop(s);
            self.pool.lock().open -= 1;
            self.pool.available.notify_one();
        }
    }
}
