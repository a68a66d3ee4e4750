//! The board: what the server knows of every experiment, shared by the evaluation loop (which
//! writes it) and the HTTP handlers (which read it), and the decisions it announces.
//!
//! A verdict change is announced once, on a broadcast channel, as a [`Decision`]: the decisions
//! topic publishes it and `watch` prints it. Windows live here too: a revision the board has not
//! seen for an experiment (Flagger's checksum, Argo's `?revision=`) starts a new one, and the
//! next evaluation reads from there; `--state` keeps them across restarts.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use shiftright_analyze::read::freshness::Freshness;
use shiftright_analyze::Report;
use tokio::sync::broadcast;

use crate::decision::{evidence, Action, Decision, RecordKind};
use crate::verdict::{decided_variant, rfc3339, Clock, Evaluated, Known, LiveVerdict};

/// Decisions waiting for a slow subscriber; one that lags further misses the oldest.
const ANNOUNCED: usize = 1024;

/// The shared state; cheap to clone.
#[derive(Debug, Clone)]
pub struct Board {
    inner: Arc<RwLock<State>>,
    announce: broadcast::Sender<Decision>,
    /// Who publishes: `serve` or `watch`.
    source: &'static str,
    /// Where the revisions are kept across restarts, if anywhere.
    revisions_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Default)]
struct State {
    known: BTreeMap<String, Known>,
    /// Flagger checksum per experiment.
    checksums: BTreeMap<String, String>,
    /// At least one evaluation pass has finished.
    ready: bool,
}

impl Board {
    /// An empty board; `source` names the publisher in its decisions.
    pub fn new(source: &'static str) -> Board {
        let (announce, _) = broadcast::channel(ANNOUNCED);
        Board {
            inner: Arc::new(RwLock::new(State::default())),
            announce,
            source,
            revisions_file: None,
        }
    }

    /// A board that keeps the revisions and windows in `path` ([`crate::revisions`]), starting
    /// from what it holds.
    pub fn with_revisions(source: &'static str, path: &std::path::Path) -> Result<Board, String> {
        let mut board = Board::new(source);
        {
            let mut state = board.write();
            for (name, w) in crate::revisions::load(path)? {
                state.checksums.insert(name.clone(), w.revision);
                state.known.insert(
                    name,
                    Known {
                        window_start_ms: w.window_start_ms,
                        ..Known::default()
                    },
                );
            }
        }
        board.revisions_file = Some(path.to_path_buf());
        Ok(board)
    }

    /// Writes the revisions file, if there is one; a failure is logged: the windows in memory
    /// still hold until a restart.
    fn save_revisions(&self, state: &State) {
        let Some(path) = &self.revisions_file else {
            return;
        };
        let revisions: crate::revisions::Revisions = state
            .checksums
            .iter()
            .filter_map(|(name, revision)| {
                Some((
                    name.clone(),
                    crate::revisions::Window {
                        revision: revision.clone(),
                        window_start_ms: state.known.get(name)?.window_start_ms,
                    },
                ))
            })
            .collect();
        if let Err(e) = crate::revisions::save(path, &revisions) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the revisions file");
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock leaves the data as it was: keep serving it.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The decisions as they are announced.
    pub fn subscribe(&self) -> broadcast::Receiver<Decision> {
        self.announce.subscribe()
    }

    /// Whether an evaluation pass has finished.
    pub fn ready(&self) -> bool {
        self.read().ready
    }

    /// Marks the first evaluation pass done.
    pub fn set_ready(&self) {
        self.write().ready = true;
    }

    /// Every experiment known, sorted.
    pub fn names(&self) -> Vec<String> {
        self.read().known.keys().cloned().collect()
    }

    /// The window start of `experiment`, setting it to `default_ms` when it has none yet.
    pub fn window_start(&self, experiment: &str, default_ms: i64) -> i64 {
        self.write()
            .known
            .entry(experiment.to_string())
            .or_insert_with(|| Known {
                window_start_ms: default_ms,
                ..Known::default()
            })
            .window_start_ms
    }

    /// The verdict of `experiment` now; `None` for one the board does not know.
    pub fn verdict(&self, experiment: &str, clock: Clock) -> Option<LiveVerdict> {
        let state = self.read();
        state
            .known
            .get(experiment)
            .map(|k| LiveVerdict::of(experiment, k, clock))
    }

    /// Every known experiment's verdict now.
    pub fn verdicts(&self, clock: Clock) -> Vec<LiveVerdict> {
        let state = self.read();
        state
            .known
            .iter()
            .map(|(name, k)| LiveVerdict::of(name, k, clock))
            .collect()
    }

    /// Every known experiment's last report, with its freshness inputs.
    pub fn reports(&self) -> Vec<(String, Evaluated)> {
        let state = self.read();
        state
            .known
            .iter()
            .filter_map(|(name, k)| Some((name.clone(), k.evaluated.clone()?)))
            .collect()
    }

    /// Records that a rollout controller asked about `experiment` for `revision` (Flagger's
    /// `checksum`, Argo's pod-template hash) in `phase`. A revision the server has not seen for
    /// the experiment — a new one, or the first since the server started — starts a new window
    /// at `now_ms`, and the verdict of the old window no longer stands: a fixed revision is
    /// never judged by the events of the one it replaced. Costs data after a restart, never a
    /// false rollback. Returns whether a new window started.
    pub fn revision(
        &self,
        experiment: &str,
        revision: &str,
        phase: &str,
        now_ms: i64,
        default_window_ms: i64,
    ) -> bool {
        let mut state = self.write();
        let renewed = !revision.is_empty()
            && state.checksums.get(experiment).map(String::as_str) != Some(revision);
        if renewed {
            state
                .checksums
                .insert(experiment.to_string(), revision.to_string());
        }
        let known = state
            .known
            .entry(experiment.to_string())
            .or_insert_with(|| Known {
                window_start_ms: default_window_ms,
                ..Known::default()
            });
        known.touched_ms = now_ms;
        if !phase.is_empty() {
            known.phase = Some(phase.to_string());
        }
        if renewed {
            known.window_start_ms = now_ms;
            known.evaluated = None;
            known.failure = None;
            self.save_revisions(&state);
        }
        renewed
    }

    /// Forgets the experiments outside `keep` that no controller asked about since `cutoff_ms`:
    /// without events in the lookback and named by nothing, they would only lengthen each pass.
    pub fn prune(&self, keep: &std::collections::BTreeSet<String>, cutoff_ms: i64) {
        let mut state = self.write();
        let gone: Vec<String> = state
            .known
            .iter()
            .filter(|(name, k)| !keep.contains(*name) && k.touched_ms < cutoff_ms)
            .map(|(name, _)| name.clone())
            .collect();
        let removed = !gone.is_empty();
        for name in gone {
            tracing::info!(experiment = %name, "no events within the lookback and not asked about: forgotten");
            state.known.remove(&name);
            state.checksums.remove(&name);
        }
        if removed {
            self.save_revisions(&state);
        }
    }

    /// The entry of `experiment` if its window still starts at `window_ms`: an evaluation that
    /// began before a Flagger event renewed the window must not overwrite the new one.
    fn current<'a>(
        state: &'a mut State,
        experiment: &str,
        window_ms: i64,
    ) -> Option<&'a mut Known> {
        let known = state
            .known
            .entry(experiment.to_string())
            .or_insert_with(|| Known {
                window_start_ms: window_ms,
                ..Known::default()
            });
        if known.window_start_ms != window_ms {
            tracing::debug!(
                experiment,
                "window renewed during its evaluation: the outcome is dropped"
            );
            return None;
        }
        Some(known)
    }

    /// Records one evaluation of `experiment` over the window starting at `window_ms`;
    /// announces a decision when its verdict changed.
    pub fn evaluated(
        &self,
        experiment: &str,
        window_ms: i64,
        report: Report,
        fresh: Freshness,
        now_ms: i64,
    ) {
        let mut state = self.write();
        let Some(known) = Self::current(&mut state, experiment, window_ms) else {
            return;
        };
        let previous = known.evaluated.as_ref().map(|e| e.report.verdict);
        let changed = previous != Some(report.verdict);
        let decision_id = match (&known.evaluated, changed) {
            (Some(e), false) => e.decision_id.clone(),
            _ => shiftright_schemas::key_hash(&format!(
                "{experiment}\n{}\n{}\n{now_ms}",
                known.window_start_ms, report.verdict
            )),
        };
        let evaluated = Evaluated {
            report,
            data_through_ms: fresh.data_through_ms,
            at_ms: now_ms,
            decision_id,
        };
        if changed {
            let decision = self.decision(
                RecordKind::Decision,
                experiment,
                &evaluated,
                previous.map(|v| v.as_str().to_string()),
                now_ms,
            );
            tracing::info!(
                experiment, verdict = %evaluated.report.verdict,
                previous = ?previous.map(|v| v.as_str()), decision_id = %evaluated.decision_id,
                "verdict changed"
            );
            // No subscriber is no error: the verdict endpoint still has it.
            let _ = self.announce.send(decision);
        }
        known.evaluated = Some(evaluated);
        known.failure = None;
    }

    /// Records that `experiment` has no events in the window starting at `window_ms` (yet).
    pub fn no_data(&self, experiment: &str, window_ms: i64) {
        let mut state = self.write();
        if let Some(known) = Self::current(&mut state, experiment, window_ms) {
            known.evaluated = None;
            known.failure = None;
        }
    }

    /// Records a failed evaluation: the last verdict stands until it goes stale.
    pub fn failed(&self, experiment: &str, window_ms: i64, why: String) {
        let mut state = self.write();
        if let Some(known) = Self::current(&mut state, experiment, window_ms) {
            known.failure = Some(why);
        }
    }

    /// A heartbeat per experiment with a verdict: the current one, repeated.
    pub fn heartbeats(&self, now_ms: i64) -> Vec<Decision> {
        let state = self.read();
        state
            .known
            .iter()
            .filter_map(|(name, k)| {
                let e = k.evaluated.as_ref()?;
                Some(self.decision(
                    RecordKind::Heartbeat,
                    name,
                    e,
                    Some(e.report.verdict.as_str().to_string()),
                    now_ms,
                ))
            })
            .collect()
    }

    fn decision(
        &self,
        kind: RecordKind,
        experiment: &str,
        e: &Evaluated,
        previous_verdict: Option<String>,
        now_ms: i64,
    ) -> Decision {
        Decision {
            kind,
            experiment: experiment.to_string(),
            variant: decided_variant(&e.report),
            verdict: e.report.verdict.as_str().to_string(),
            previous_verdict,
            action: Action::of(e.report.verdict),
            reasons: e.report.reasons.clone(),
            evidence: evidence(&e.report),
            data_through: rfc3339(e.data_through_ms),
            decided_at: rfc3339(now_ms),
            decision_id: e.decision_id.clone(),
            source: self.source.to_string(),
        }
    }
}
