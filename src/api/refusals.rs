//! Refused requests without an authenticated caller, folded per client address so that
//! a flood costs the audit log a few entries, not one per request.
//!
//! Anyone who can reach the port can be refused (401, 429, 400 `invalid_authorization`)
//! as fast as the daemon answers, and each audit entry is a durable write (and, every
//! `audit.sign_every` entries, a token signature): one client once grew the log by
//! 1,600 entries a second. So, per client address and per window (`auth.failure_window`,
//! the throttle's): the first refusal gets its own entry, as before, and the rest are
//! counted and written as one summary entry when the window has closed — by the sweeper
//! within a second, by the address's next refusal, or at shutdown, whichever comes first.
//!
//! Memory and entries are bounded together: at most [`MAX_TRACKED_ADDRESSES`] addresses
//! have windows of their own; refusals from any further address go, without an entry of
//! their own, into one shared bucket (summarised under the address `*`). A flood from
//! many addresses therefore writes at most about two entries per tracked address and
//! window, plus one.
//!
//! Refusals of an authenticated caller (403) are not folded: the entry names the token,
//! which can be revoked, and such a caller can add entries with any state-changing call
//! anyway.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::service::audit::AuditEvent;
use crate::service::Pki;
use crate::types::{now, rfc3339};

/// Addresses with a window of their own. Each costs about 200 bytes, and at most two
/// entries per window; past it, refusals share one bucket.
pub const MAX_TRACKED_ADDRESSES: usize = 256;

/// The audit action of a summary entry.
pub const SUMMARY_ACTION: &str = "auth.refusals";

/// How often the sweeper looks for closed windows.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Refusals counted in one window, not recorded one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Folded {
    count: u64,
    first: time::OffsetDateTime,
    last: time::OffsetDateTime,
    /// Outcome (`error:<code>`) → how many; a handful of codes at most.
    outcomes: BTreeMap<String, u64>,
}

struct Bucket {
    opened: Instant,
    folded: Option<Folded>,
}

impl Bucket {
    fn open(at: Instant) -> Self {
        Bucket {
            opened: at,
            folded: None,
        }
    }

    fn fold(&mut self, outcome: &str) {
        let t = now();
        let f = self.folded.get_or_insert_with(|| Folded {
            count: 0,
            first: t,
            last: t,
            outcomes: BTreeMap::new(),
        });
        f.count = f.count.saturating_add(1);
        f.last = t;
        let n = f.outcomes.entry(outcome.to_string()).or_insert(0);
        *n = n.saturating_add(1);
    }

    fn closed(&self, at: Instant, window: Duration) -> bool {
        at.saturating_duration_since(self.opened) >= window
    }

    /// Note one refusal: true when it opens a new window and `own_entry` asks for the
    /// opener to be recorded on its own. A window that has closed is handed back.
    fn note(
        &mut self,
        at: Instant,
        window: Duration,
        outcome: &str,
        own_entry: bool,
    ) -> (bool, Option<Folded>) {
        let mut closed = None;
        if self.closed(at, window) {
            closed = self.folded.take();
            self.opened = at;
            if own_entry {
                return (true, closed);
            }
        }
        self.fold(outcome);
        (false, closed)
    }
}

/// A closed (or, at shutdown, cut-short) window's refusals, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// None for the shared bucket of untracked addresses.
    address: Option<IpAddr>,
    folded: Folded,
}

impl Summary {
    /// The entry: no token or tenant (nobody was authenticated), the address as the
    /// object, and `count=N first=T last=T error:<code>=N ...` as the outcome, so the
    /// log still says how many refusals there were, when, and of which kind.
    pub fn event(&self) -> AuditEvent {
        let f = &self.folded;
        let mut outcome = format!(
            "count={} first={} last={}",
            f.count,
            rfc3339(f.first),
            rfc3339(f.last)
        );
        for (o, n) in &f.outcomes {
            outcome.push_str(&format!(" {o}={n}"));
        }
        AuditEvent {
            token_id: None,
            tenant: None,
            action: SUMMARY_ACTION.to_string(),
            object_id: Some(
                self.address
                    .map_or_else(|| "*".to_string(), |a| a.to_string()),
            ),
            outcome,
            request_id: None,
        }
    }

    pub fn count(&self) -> u64 {
        self.folded.count
    }
}

#[derive(Default)]
struct State {
    by_address: HashMap<IpAddr, Bucket>,
    /// Refusals from addresses past the bound (or of unknown address).
    untracked: Option<Bucket>,
}

/// What to write for one refusal.
#[derive(Debug, Default)]
pub struct Noted {
    /// Record this refusal in an entry of its own.
    pub own_entry: bool,
    /// Summaries of windows that have closed, to be written first.
    pub summaries: Vec<Summary>,
}

/// The per-address windows of refusals.
pub struct RefusalLog {
    window: Duration,
    state: Mutex<State>,
}

impl RefusalLog {
    pub fn new(window: Duration) -> Self {
        RefusalLog {
            window,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One refused request from `address` whose entry would have had `outcome`.
    pub fn note(&self, address: Option<IpAddr>, outcome: &str) -> Noted {
        let at = Instant::now();
        let mut st = self.state();
        let mut out = Noted::default();
        if let Some(a) = address {
            if !st.by_address.contains_key(&a) && st.by_address.len() >= MAX_TRACKED_ADDRESSES {
                // Make room from windows that have closed before giving up on the address.
                Self::sweep(&mut st, at, self.window, false, &mut out.summaries);
            }
            if let Some(b) = st.by_address.get_mut(&a) {
                let (own, closed) = b.note(at, self.window, outcome, true);
                out.own_entry = own;
                out.summaries.extend(closed.map(|folded| Summary {
                    address: Some(a),
                    folded,
                }));
                return out;
            }
            if st.by_address.len() < MAX_TRACKED_ADDRESSES {
                st.by_address.insert(a, Bucket::open(at));
                out.own_entry = true;
                return out;
            }
        }
        let b = st.untracked.get_or_insert_with(|| Bucket::open(at));
        let (_, closed) = b.note(at, self.window, outcome, false);
        out.summaries.extend(closed.map(|folded| Summary {
            address: None,
            folded,
        }));
        out
    }

    /// Take the summaries of every window that has closed, and forget those windows.
    pub fn take_closed(&self) -> Vec<Summary> {
        let mut out = Vec::new();
        let mut st = self.state();
        Self::sweep(&mut st, Instant::now(), self.window, false, &mut out);
        out
    }

    /// Take every summary, closed or not (at shutdown).
    pub fn take_all(&self) -> Vec<Summary> {
        let mut out = Vec::new();
        let mut st = self.state();
        Self::sweep(&mut st, Instant::now(), self.window, true, &mut out);
        out
    }

    /// Move the summaries of closed windows (`all`: of every window) to `out`, oldest first.
    fn sweep(st: &mut State, at: Instant, window: Duration, all: bool, out: &mut Vec<Summary>) {
        let start = out.len();
        st.by_address.retain(|a, b| {
            if !all && !b.closed(at, window) {
                return true;
            }
            if let Some(folded) = b.folded.take() {
                out.push(Summary {
                    address: Some(*a),
                    folded,
                });
            }
            false
        });
        if st
            .untracked
            .as_ref()
            .is_some_and(|b| all || b.closed(at, window))
        {
            if let Some(folded) = st.untracked.take().and_then(|b| b.folded) {
                out.push(Summary {
                    address: None,
                    folded,
                });
            }
        }
        out[start..].sort_by_key(|s| s.folded.first);
    }
}

/// Append each summary, durably. A failure loses that summary's count, which the error
/// line reports (there is nowhere better to keep it).
pub fn write(pki: &Pki, summaries: Vec<Summary>) {
    for s in summaries {
        let count = s.count();
        if let Err(e) = pki.audit(s.event()) {
            tracing::error!(error = %e, refusals = count, "cannot append a refusal summary to the audit log");
        }
    }
}

/// Writes the summaries of closed windows as they close. Without it a window's count
/// would wait for that address's next refusal, perhaps forever.
pub struct Sweeper {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Sweeper {
    pub fn start(pki: std::sync::Arc<Pki>, log: std::sync::Arc<RefusalLog>) -> Sweeper {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stopped => return,
                }
                let due = log.take_closed();
                if due.is_empty() {
                    continue;
                }
                // Not raced against the stop: a write under way finishes first.
                let pki = pki.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || write(&pki, due)).await {
                    tracing::error!(error = %e, "the refusal summary task failed");
                }
            }
        });
        Sweeper { stop, task }
    }

    /// Stop, after any write under way.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the refusal sweeper failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_first_refusal_of_a_window_has_its_own_entry_and_the_rest_are_counted() {
        let log = RefusalLog::new(Duration::from_millis(50));
        let a = ip("192.0.2.1");
        assert!(log.note(a, "error:unauthorized").own_entry);
        for _ in 0..299 {
            let n = log.note(a, "error:too_many_auth_failures");
            assert!(!n.own_entry && n.summaries.is_empty());
        }
        // Another address has its own window.
        assert!(log.note(ip("192.0.2.2"), "error:unauthorized").own_entry);
        assert!(log.take_closed().is_empty(), "the window is still open");
        std::thread::sleep(Duration::from_millis(60));
        let due = log.take_closed();
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(due[0].count(), 299);
        let ev = due[0].event();
        assert_eq!(ev.action, SUMMARY_ACTION);
        assert_eq!(ev.object_id.as_deref(), Some("192.0.2.1"));
        assert!(ev.token_id.is_none() && ev.tenant.is_none());
        assert!(ev.outcome.starts_with("count=299 first="), "{}", ev.outcome);
        assert!(
            ev.outcome.ends_with(" error:too_many_auth_failures=299"),
            "{}",
            ev.outcome
        );
        // A new window opens with an entry of its own again.
        assert!(log.note(a, "error:unauthorized").own_entry);
    }

    #[test]
    fn the_next_refusal_after_a_window_writes_its_summary() {
        let log = RefusalLog::new(Duration::from_millis(30));
        let a = ip("2001:db8::1");
        assert!(log.note(a, "error:unauthorized").own_entry);
        log.note(a, "error:unauthorized");
        log.note(a, "error:invalid_authorization");
        std::thread::sleep(Duration::from_millis(40));
        let n = log.note(a, "error:unauthorized");
        assert!(n.own_entry);
        assert_eq!(n.summaries.len(), 1);
        assert_eq!(n.summaries[0].count(), 2);
        assert!(n.summaries[0]
            .event()
            .outcome
            .ends_with(" error:invalid_authorization=1 error:unauthorized=1"));
    }

    #[test]
    fn addresses_past_the_bound_share_one_bucket() {
        let log = RefusalLog::new(Duration::from_secs(3600));
        let mut own = 0;
        for i in 0..(MAX_TRACKED_ADDRESSES as u32 + 1000) {
            let a = Some(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
            for _ in 0..3 {
                own += usize::from(log.note(a, "error:unauthorized").own_entry);
            }
        }
        own += usize::from(log.note(None, "error:unauthorized").own_entry);
        assert_eq!(own, MAX_TRACKED_ADDRESSES);
        let all = log.take_all();
        // One summary per tracked address (2 folded each) and one for the rest.
        assert_eq!(all.len(), MAX_TRACKED_ADDRESSES + 1);
        let untracked: Vec<_> = all.iter().filter(|s| s.address.is_none()).collect();
        assert_eq!(untracked.len(), 1);
        assert_eq!(untracked[0].count(), 1000 * 3 + 1);
        assert_eq!(untracked[0].event().object_id.as_deref(), Some("*"));
        let total: u64 = all.iter().map(Summary::count).sum();
        assert_eq!(total as usize + own, (MAX_TRACKED_ADDRESSES + 1000) * 3 + 1);
        assert!(log.take_all().is_empty());
    }

    #[test]
    fn closed_windows_make_room_for_new_addresses() {
        let log = RefusalLog::new(Duration::from_millis(20));
        for i in 0..MAX_TRACKED_ADDRESSES as u32 {
            let a = Some(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
            log.note(a, "error:unauthorized");
            log.note(a, "error:unauthorized");
        }
        std::thread::sleep(Duration::from_millis(30));
        let n = log.note(ip("198.51.100.1"), "error:unauthorized");
        assert!(
            n.own_entry,
            "a closed window's address was dropped to make room"
        );
        assert_eq!(n.summaries.len(), MAX_TRACKED_ADDRESSES);
    }
}
