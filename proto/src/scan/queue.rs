//! The scan queue (digest §9.3, §9.5, §9.7): initial muxes plus the ones the NIT announces,
//! deduplicated by the §9.3 [OURS] equivalence and by (ONID, TSID, stream id) identity, with
//! retries for a mux that failed to lock and re-queueing when a viewer takes the frontend.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::collector::{Failure, MuxResult, Verdict};
use super::mux::Mux;
use super::nit::Announced;

/// Queue behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueConfig {
    /// Retries after a lock failure (no signal / no lock), in the same scan (R, default 2).
    pub retries: u32,
    /// Delay before a retry, ms.
    pub retry_delay_ms: u64,
    /// Queue the transponders NIT actual announces (`dvbv5-scan -F` turns this off).
    pub discover: bool,
    /// Also queue the ones NIT other announces.
    pub discover_other: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            retries: 2,
            retry_delay_ms: 500,
            discover: true,
            discover_other: false,
        }
    }
}

/// Why a mux is in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Initial tuning file.
    Initial,
    /// Blind raster: a frequency without signal is empty, not flaky, so no retry then.
    Raster,
    /// Already in the channel database.
    Known,
    /// Announced by a NIT of this network_id.
    Nit {
        /// network_id of the announcing NIT.
        network_id: u16,
    },
}

/// (ONID, TSID, stream id): a scanned mux's identity.
pub type Identity = (u16, u16, u8);

/// One mux to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Unique within the queue.
    pub id: u64,
    /// What to tune.
    pub mux: Mux,
    /// Why.
    pub origin: Origin,
    /// Identity expected from the NIT or the database.
    pub expected: Option<Identity>,
    /// Failed attempts so far.
    pub attempt: u32,
    /// Frontend of the last failed attempt: prefer another one.
    pub avoid_frontend: Option<u32>,
    /// Not before this time (ms), for retries.
    pub not_before_ms: u64,
    /// Same transponder in another system of the family (a raster's DVB-T after DVB-T2),
    /// tried when this one has signal but no lock.
    pub fallback: Option<Mux>,
}

/// A finished mux.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The job.
    pub job: Job,
    /// Verdict.
    pub verdict: Verdict,
    /// Identity when locked and the PAT was read.
    pub identity: Option<Identity>,
}

/// What [`ScanQueue::report`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The mux was queued again for a retry.
    pub retried: bool,
    /// Muxes newly queued from the NIT.
    pub discovered: Vec<Mux>,
    /// Pending muxes whose tuning the NIT updated (old, new).
    pub updated: Vec<(Mux, Mux)>,
    /// NIT entries not applied, with the reason (for the log).
    pub notes: Vec<String>,
}

/// The queue of one scan.
#[derive(Debug, Clone, Default)]
pub struct ScanQueue {
    cfg: QueueConfig,
    pending: VecDeque<Job>,
    running: Vec<Job>,
    finished: Vec<Finished>,
    next_id: u64,
}

impl ScanQueue {
    /// An empty queue.
    pub fn new(cfg: QueueConfig) -> ScanQueue {
        ScanQueue {
            cfg,
            ..Default::default()
        }
    }

    fn all_jobs(&self) -> impl Iterator<Item = &Job> {
        self.pending
            .iter()
            .chain(self.running.iter())
            .chain(self.finished.iter().map(|f| &f.job))
    }

    /// Queue a mux unless an equivalent one is queued, running or done. Returns whether it was
    /// added.
    pub fn push(&mut self, mux: Mux, origin: Origin, expected: Option<Identity>) -> bool {
        if self.all_jobs().any(|j| j.mux.same_transponder(&mux)) {
            // The same centre in another delivery system of a pending initial entry (T2 then
            // T in a raster) becomes its fallback.
            if let Some(j) = self.pending.iter_mut().find(|j| {
                j.mux.same_transponder(&mux)
                    && j.fallback.is_none()
                    && j.mux.tuning.delivery_system != mux.tuning.delivery_system
                    && matches!(j.origin, Origin::Initial | Origin::Raster)
                    && j.origin == origin
            }) {
                j.fallback = Some(mux);
                return true;
            }
            return false;
        }
        self.next_id += 1;
        self.pending.push_back(Job {
            id: self.next_id,
            mux,
            origin,
            expected,
            attempt: 0,
            avoid_frontend: None,
            not_before_ms: 0,
            fallback: None,
        });
        true
    }

    /// Queue several muxes of one origin; returns how many were added.
    pub fn extend(&mut self, muxes: impl IntoIterator<Item = Mux>, origin: Origin) -> usize {
        muxes
            .into_iter()
            .filter(|m| self.push(m.clone(), origin, None))
            .count()
    }

    /// The next job ready at `now_ms` (FIFO among the ready ones); it counts as running until
    /// reported or re-queued.
    pub fn next(&mut self, now_ms: u64) -> Option<Job> {
        let i = self
            .pending
            .iter()
            .position(|j| j.not_before_ms <= now_ms)?;
        let job = self.pending.remove(i)?;
        self.running.push(job.clone());
        Some(job)
    }

    /// When the next pending job becomes ready, if any is waiting.
    pub fn next_ready_ms(&self) -> Option<u64> {
        self.pending.iter().map(|j| j.not_before_ms).min()
    }

    /// A viewer took the frontend: put the job back at the front, no attempt counted.
    pub fn requeue(&mut self, job: Job) {
        self.running.retain(|j| j.id != job.id);
        self.pending.push_front(job);
    }

    /// Nothing pending or running.
    pub fn is_finished(&self) -> bool {
        self.pending.is_empty() && self.running.is_empty()
    }

    /// (finished, total known) for progress.
    pub fn progress(&self) -> (usize, usize) {
        let done = self.finished.len();
        (done, done + self.pending.len() + self.running.len())
    }

    /// Finished muxes in the order they finished.
    pub fn finished(&self) -> &[Finished] {
        &self.finished
    }

    /// Record a job's result (scanned on `frontend`): retry a lock failure up to R times,
    /// then queue what the NIT announced.
    pub fn report(
        &mut self,
        job: Job,
        result: &MuxResult,
        frontend: Option<u32>,
        now_ms: u64,
    ) -> Report {
        let mut rep = Report::default();
        self.running.retain(|j| j.id != job.id);
        if result.failure == Some(Failure::NoLock) && job.fallback.is_some() {
            // Signal but no lock: the other system of the family.
            let mut next = job;
            next.mux = next.fallback.take().expect("checked");
            next.attempt = 0;
            next.avoid_frontend = None;
            next.not_before_ms = now_ms;
            self.pending.push_front(next);
            rep.retried = true;
            return rep;
        }
        let lock_failure = match result.failure {
            Some(Failure::NoLock) => true,
            Some(Failure::NoSignal) => job.origin != Origin::Raster,
            _ => false,
        };
        if lock_failure && job.attempt < self.cfg.retries {
            let mut again = job;
            again.attempt += 1;
            again.avoid_frontend = frontend;
            again.not_before_ms = now_ms + self.cfg.retry_delay_ms;
            self.pending.push_front(again);
            rep.retried = true;
            return rep;
        }
        let identity = match (result.verdict, result.onid, result.tsid) {
            (Verdict::Found | Verdict::Partial, Some(o), Some(t)) => {
                Some((o, t, result.mux.stream_id()))
            }
            _ => None,
        };
        self.finished.push(Finished {
            job,
            verdict: result.verdict,
            identity,
        });
        if self.cfg.discover {
            for a in result.announced(self.cfg.discover_other) {
                self.offer(a, &mut rep);
            }
        }
        rep
    }

    /// One NIT entry: skip when known, update a pending mux of the same identity, else queue.
    fn offer(&mut self, a: Announced, rep: &mut Report) {
        let id: Identity = (a.onid, a.tsid, a.mux.stream_id());
        // Identity of a scanned mux: the NIT entry never adds one (relay NITs are often wrong).
        if let Some(f) = self.finished.iter().find(|f| f.identity == Some(id)) {
            if !f.job.mux.same_transponder(&a.mux) {
                rep.notes.push(format!(
                    "NIT {} places TS {}/{} at {}, but it locked at {}: not applied",
                    a.network_id,
                    a.onid,
                    a.tsid,
                    a.mux.label(),
                    f.job.mux.label()
                ));
            }
            return;
        }
        if let Some(p) = self.pending.iter_mut().find(|j| j.expected == Some(id)) {
            if !p.mux.same_transponder(&a.mux) {
                rep.updated.push((p.mux.clone(), a.mux.clone()));
                p.mux = a.mux;
            }
            return;
        }
        let origin = Origin::Nit {
            network_id: a.network_id,
        };
        if self.push(a.mux.clone(), origin, Some(id)) {
            rep.discovered.push(a.mux);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::satip::DeliverySystem;
    use crate::scan::collector::{CollectorConfig, FrontendStatus, MuxCollector};
    use crate::scan::fixtures::{self, collect, dvbt, dvbt2, network};

    #[test]
    fn nit_only_mux_is_discovered_and_duplicates_are_not_added() {
        // §13 items 28, 29, 30.
        let net = network();
        let mut q = ScanQueue::new(QueueConfig::default());
        // The initial list: 506 MHz, and the T2 raster centre 474 MHz (PLP unset = 0).
        let mut t2 = dvbt2(474_000_000, 0);
        t2.tuning.plp = None;
        assert_eq!(q.extend([net[0].mux.clone(), t2], Origin::Initial), 2);
        assert!(
            !q.push(dvbt(506_500_000), Origin::Initial, None),
            "within ±1 MHz"
        );
        let j = q.next(0).unwrap();
        assert_eq!(j.mux, net[0].mux);
        let rep = q.report(
            j,
            &collect(&net[0], &net, CollectorConfig::default()),
            Some(0),
            100,
        );
        // 506 and 474/PLP 0 are known; 474/PLP 1 is new.
        assert_eq!(rep.discovered, vec![net[2].mux.clone()]);
        let mut order = Vec::new();
        while let Some(j) = q.next(200) {
            let fx = net.iter().find(|f| f.mux.same_transponder(&j.mux)).unwrap();
            order.push(fx.tsid);
            let rep = q.report(
                j,
                &collect(fx, &net, CollectorConfig::default()),
                Some(0),
                200,
            );
            assert!(rep.discovered.is_empty());
            assert!(rep.notes.is_empty(), "{:?}", rep.notes);
        }
        assert_eq!(order, vec![1, 5]);
        assert!(q.is_finished());
        assert_eq!(q.progress(), (3, 3));
        let ids: Vec<_> = q.finished().iter().map(|f| f.identity).collect();
        assert_eq!(
            ids,
            vec![
                Some((fixtures::ONID, 4, 0)),
                Some((fixtures::ONID, 1, 0)),
                Some((fixtures::ONID, 5, 1))
            ]
        );
    }

    #[test]
    fn discovery_can_be_turned_off() {
        let net = network();
        let mut q = ScanQueue::new(QueueConfig {
            discover: false,
            ..Default::default()
        });
        q.extend([net[0].mux.clone()], Origin::Initial);
        let j = q.next(0).unwrap();
        let rep = q.report(
            j,
            &collect(&net[0], &net, CollectorConfig::default()),
            None,
            0,
        );
        assert!(rep.discovered.is_empty());
        assert!(q.is_finished());
    }

    #[test]
    fn known_identity_at_a_new_frequency_updates_and_adds_none() {
        // §13 item 31.
        let net = network();
        let mut q = ScanQueue::new(QueueConfig::default());
        q.push(
            net[0].mux.clone(),
            Origin::Known,
            Some((fixtures::ONID, 4, 0)),
        );
        // The database had TSID 1 at 530 MHz; the NIT now says 474 MHz.
        let mut old = dvbt2(530_000_000, 0);
        old.tuning.t2_system_id = None;
        q.push(old.clone(), Origin::Known, Some((fixtures::ONID, 1, 0)));
        let j = q.next(0).unwrap();
        let rep = q.report(
            j,
            &collect(&net[0], &net, CollectorConfig::default()),
            None,
            0,
        );
        assert_eq!(rep.updated.len(), 1);
        assert_eq!(rep.updated[0].0, old);
        assert_eq!(rep.updated[0].1.tuning.frequency, 474_000_000);
        assert_eq!(rep.discovered, vec![net[2].mux.clone()], "PLP 1 only");
        assert_eq!(q.progress(), (1, 3));

        // A NIT read later that puts TSID 4 elsewhere is logged, not applied.
        let mut moved = net.clone();
        moved[0].mux = dvbt(522_000_000);
        let r = collect(&net[1], &moved, CollectorConfig::default());
        let j = q.next(0).unwrap();
        let rep = q.report(j, &r, None, 0);
        assert_eq!(rep.notes.len(), 1, "{:?}", rep.notes);
        assert!(rep.notes[0].contains("522.000 MHz"), "{}", rep.notes[0]);
    }

    #[test]
    fn lock_failures_are_retried_elsewhere_then_given_up() {
        // §13 item 32.
        let mut q = ScanQueue::new(QueueConfig::default());
        q.extend([dvbt(506_000_000)], Origin::Initial);
        let mut fe = 0;
        let mut now = 0;
        loop {
            let Some(j) = q.next(now) else {
                match q.next_ready_ms() {
                    Some(t) => {
                        assert_eq!(t, now + 500);
                        now = t;
                        continue;
                    }
                    None => break,
                }
            };
            assert_eq!(j.avoid_frontend, (j.attempt > 0).then(|| fe - 1));
            let r = fixtures::failed(&j.mux);
            let rep = q.report(j, &r, Some(fe), now);
            fe += 1;
            assert_eq!(rep.retried, fe <= 2);
        }
        assert_eq!(fe, 3, "one try and R = 2 retries");
        assert_eq!(q.finished()[0].verdict, Verdict::Failed);
    }

    #[test]
    fn raster_t2_then_t_and_no_retry_without_signal() {
        let mut q = ScanQueue::new(QueueConfig::default());
        let raster = crate::scan::initial::raster_uhf(true);
        assert_eq!(q.extend(raster, Origin::Raster), 98);
        assert_eq!(
            q.progress(),
            (0, 49),
            "T is the fallback of T2 on each centre"
        );
        // 474 MHz: signal but no T2 lock → DVB-T next, at once.
        let j = q.next(0).unwrap();
        assert_eq!(j.mux.tuning.delivery_system, DeliverySystem::DvbT2);
        let mut c = MuxCollector::new(j.mux.clone(), CollectorConfig::default(), 0);
        c.frontend_status(
            10,
            FrontendStatus {
                signal: true,
                ..Default::default()
            },
        );
        c.poll(4000);
        let rep = q.report(j, c.result().unwrap(), Some(0), 4000);
        assert!(rep.retried);
        let j = q.next(4000).unwrap();
        assert_eq!(
            (
                j.mux.tuning.delivery_system,
                j.mux.tuning.frequency,
                j.attempt
            ),
            (DeliverySystem::DvbT, 474_000_000, 0)
        );
        // No signal at all on a raster entry: empty, no retry, no fallback.
        let rep = q.report(j, &fixtures::failed(&dvbt(474_000_000)), Some(0), 6000);
        assert!(!rep.retried);
        let j = q.next(6000).unwrap();
        assert_eq!(j.mux.tuning.frequency, 482_000_000);
        let rep = q.report(j, &fixtures::failed(&dvbt2(482_000_000, 0)), Some(0), 8000);
        assert!(
            !rep.retried,
            "no signal: the DVB-T fallback is not tried either"
        );
        assert_eq!(q.next(8000).unwrap().mux.tuning.frequency, 490_000_000);
    }

    #[test]
    fn preempted_job_goes_back_to_the_front_without_an_attempt() {
        // §13 item 40 (queue side).
        let mut q = ScanQueue::new(QueueConfig::default());
        q.extend([dvbt(506_000_000), dvbt(514_000_000)], Origin::Initial);
        let j = q.next(0).unwrap();
        q.requeue(j.clone());
        let again = q.next(0).unwrap();
        assert_eq!((again.id, again.attempt), (j.id, 0));
    }
}
