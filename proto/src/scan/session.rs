//! One scan, pure: the queue, a collector per running mux and the database updates, driven by
//! the caller's frontends and clock. The engine (pool, emulator, CLI, server) only tunes, feeds
//! sections or packets, and writes the database bytes after each [`Event::MuxDone`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::collector::{CollectorConfig, MuxCollector, Poll, Verdict};
use super::db::{Applied, ChannelDb, DbPolicy};
use super::mux::Mux;
use super::queue::{Job, Origin, QueueConfig, ScanQueue};

/// Everything a scan is configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScanConfig {
    /// Table budgets and what to read.
    pub collector: CollectorConfig,
    /// Retries and discovery.
    pub queue: QueueConfig,
    /// Miss counting.
    pub policy: DbPolicy,
}

/// What happened in [`ScanSession::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A mux failed to lock and was queued again (its frontend is free).
    Retry {
        /// Job id.
        job: u64,
        /// The mux.
        mux: Mux,
        /// Failed attempts so far.
        attempt: u32,
    },
    /// A mux is finished and applied to the database (its frontend is free; write the
    /// database now).
    MuxDone {
        /// Job id.
        job: u64,
        /// The mux.
        mux: Mux,
        /// Verdict.
        verdict: Verdict,
        /// What the database did.
        applied: Applied,
        /// Muxes the NIT added to the queue.
        discovered: Vec<Mux>,
        /// NIT entries not applied, for the log.
        notes: Vec<String>,
    },
}

struct Running {
    job: Job,
    collector: MuxCollector,
    frontend: Option<u32>,
}

/// A scan in progress.
pub struct ScanSession {
    cfg: ScanConfig,
    queue: ScanQueue,
    running: BTreeMap<u64, Running>,
}

impl ScanSession {
    /// A scan of the known muxes of `db` (first, to keep their order) and `initial` (from a
    /// tuning file, or a raster: see [`Origin::Raster`]).
    pub fn new(
        cfg: ScanConfig,
        db: &ChannelDb,
        initial: Vec<Mux>,
        initial_origin: Origin,
    ) -> ScanSession {
        let mut queue = ScanQueue::new(cfg.queue.clone());
        for (m, id) in db.known_muxes() {
            queue.push(m, Origin::Known, id);
        }
        queue.extend(initial, initial_origin);
        ScanSession {
            cfg,
            queue,
            running: BTreeMap::new(),
        }
    }

    /// The next mux to tune, and the frontend for it among `free` (those `can_tune` accepts;
    /// after a lock failure another one than last time when possible, §9.7 rule 1): the first
    /// ready mux in queue order that a free frontend can tune (the others keep their places, so
    /// a mux whose frontends are all busy does not hold up muxes of other systems). `None`
    /// when nothing is ready or no free frontend can tune any ready mux. The collector starts
    /// counting at `now_ms`.
    pub fn start_next(
        &mut self,
        now_ms: u64,
        free: &[u32],
        can_tune: impl Fn(u32, &Mux) -> bool,
    ) -> Option<(u64, Mux, u32)> {
        let mut skipped = Vec::new();
        let mut found = None;
        while let Some(job) = self.queue.next(now_ms) {
            let usable: Vec<u32> = free
                .iter()
                .copied()
                .filter(|f| can_tune(*f, &job.mux))
                .collect();
            match usable
                .iter()
                .copied()
                .find(|f| Some(*f) != job.avoid_frontend)
                .or_else(|| usable.first().copied())
            {
                Some(fe) => {
                    found = Some((job, fe));
                    break;
                }
                None => skipped.push(job),
            }
        }
        // Back at the front, in their order.
        for job in skipped.into_iter().rev() {
            self.queue.requeue(job);
        }
        let (job, fe) = found?;
        let id = job.id;
        let mux = job.mux.clone();
        let collector = MuxCollector::new(mux.clone(), self.cfg.collector.clone(), now_ms);
        self.running.insert(
            id,
            Running {
                job,
                collector,
                frontend: Some(fe),
            },
        );
        Some((id, mux, fe))
    }

    /// The collector of a running job, to feed status, sections or packets.
    pub fn collector(&mut self, job: u64) -> Option<&mut MuxCollector> {
        self.running.get_mut(&job).map(|r| &mut r.collector)
    }

    /// A viewer took the frontend of `job`: back to the queue, no attempt or miss counted.
    pub fn preempt(&mut self, job: u64) {
        if let Some(r) = self.running.remove(&job) {
            self.queue.requeue(r.job);
        }
    }

    /// Stop: running muxes are dropped unfinished (nothing counted for them); the database
    /// already holds every finished mux.
    pub fn cancel(&mut self) {
        self.running.clear();
    }

    /// Advance every running collector; finished muxes update `db`.
    pub fn poll(&mut self, now_ms: u64, db: &mut ChannelDb) -> Vec<Event> {
        let done: Vec<u64> = self
            .running
            .iter_mut()
            .filter_map(|(id, r)| matches!(r.collector.poll(now_ms), Poll::Done(_)).then_some(*id))
            .collect();
        let mut events = Vec::new();
        for id in done {
            let Some(r) = self.running.remove(&id) else {
                continue;
            };
            let Some(result) = r.collector.into_result() else {
                continue;
            };
            let job = r.job;
            let attempt = job.attempt;
            let mux = job.mux.clone();
            let rep = self.queue.report(job, &result, r.frontend, now_ms);
            if rep.retried {
                events.push(Event::Retry {
                    job: id,
                    mux,
                    attempt: attempt + 1,
                });
                continue;
            }
            let applied = db.apply(&result, self.cfg.policy);
            events.push(Event::MuxDone {
                job: id,
                mux,
                verdict: result.verdict,
                applied,
                discovered: rep.discovered,
                notes: rep.notes,
            });
        }
        events
    }

    /// The earliest time something changes: a collector deadline or a retry becoming ready.
    pub fn next_wake_ms(&mut self, now_ms: u64) -> Option<u64> {
        let mut t = self.queue.next_ready_ms();
        for r in self.running.values_mut() {
            if let Poll::Pending { wake_at_ms } = r.collector.poll(now_ms) {
                t = Some(t.map_or(wake_at_ms, |x| x.min(wake_at_ms)));
            }
        }
        t
    }

    /// Nothing queued or running.
    pub fn is_finished(&self) -> bool {
        self.queue.is_finished() && self.running.is_empty()
    }

    /// (finished, total known) muxes.
    pub fn progress(&self) -> (usize, usize) {
        self.queue.progress()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::collector::FrontendStatus;
    use crate::scan::fixtures::{self, network, FxMux};

    /// xorshift: deterministic "flakiness".
    struct Rng(u64);
    impl Rng {
        fn chance(&mut self, p_percent: u64) -> bool {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % 100 < p_percent
        }
    }

    /// An emulated scan: `frontends` tuners, each lock failing with `p_percent`, PAT/PMT every
    /// 100 ms, SDT at 1 s, NIT at 5 s after lock; only the first mux is in the initial list.
    fn scan(db: &mut ChannelDb, net: &[FxMux], frontends: u32, p_percent: u64, seed: u64) -> u64 {
        let mut rng = Rng(seed);
        let mut s = ScanSession::new(
            ScanConfig::default(),
            db,
            vec![net[0].mux.clone()],
            Origin::Initial,
        );
        let mut now = 0u64;
        // job → (fixture index, lock time or None = never locks, frontend)
        let mut tuned: BTreeMap<u64, (usize, Option<u64>, u32)> = BTreeMap::new();
        let mut guard = 0;
        while !s.is_finished() {
            guard += 1;
            assert!(guard < 10_000, "scan does not end");
            loop {
                let free: Vec<u32> = (0..frontends)
                    .filter(|fe| !tuned.values().any(|t| t.2 == *fe))
                    .collect();
                let Some((job, mux, fe)) = s.start_next(now, &free, |_, _| true) else {
                    break;
                };
                let idx = net
                    .iter()
                    .position(|f| f.mux.same_transponder(&mux))
                    .expect("nothing outside the network is queued");
                let lock = (!rng.chance(p_percent)).then_some(now + 300);
                tuned.insert(job, (idx, lock, fe));
            }
            for (job, (idx, lock, _)) in &tuned {
                let Some(lock) = *lock else { continue };
                if now < lock {
                    continue;
                }
                let c = s.collector(*job).unwrap();
                c.frontend_status(
                    now,
                    FrontendStatus {
                        signal: true,
                        carrier: true,
                        lock: true,
                    },
                );
                for (pid, sec) in fixtures::sections(&net[*idx], net) {
                    let due = match sec.header.table_id {
                        0x42 => lock + 1000,
                        0x40 => lock + 5000,
                        _ => lock + 100,
                    };
                    if now >= due {
                        c.push_section(now, pid, &sec);
                    }
                }
            }
            for e in s.poll(now, db) {
                let job = match e {
                    Event::Retry { job, .. } | Event::MuxDone { job, .. } => job,
                };
                tuned.remove(&job);
            }
            // Step to the next interesting time (100 ms resolution for the table repeats).
            let next = s.next_wake_ms(now).unwrap_or(now + 100);
            now = next.min(now + 100).max(now + 1);
        }
        now
    }

    #[test]
    fn default_network_from_one_initial_mux_finds_every_service() {
        // §13 items 24, 28.
        let net = network();
        let mut db = ChannelDb::new();
        let t = scan(&mut db, &net, 1, 0, 1);
        let names: Vec<(u32, String)> = db
            .channels()
            .iter()
            .map(|c| (c.service.number, c.name()))
            .collect();
        assert_eq!(names.len(), 6);
        assert!(
            names.contains(&(6, "Hidden HD".into())),
            "NIT-only mux: {names:?}"
        );
        // One frontend, three muxes: each takes lock + NIT (0.3 + 5 s).
        assert!(t >= 3 * 5300, "{t}");
        let mut db2 = ChannelDb::new();
        let t2 = scan(&mut db2, &net, 3, 0, 1);
        assert!(t2 < t, "parallel frontends: {t2} vs {t}");
        assert_eq!(
            db2.channels()
                .iter()
                .map(|c| (c.service.number, c.name()))
                .collect::<Vec<_>>(),
            names
        );
    }

    #[test]
    fn three_scans_with_a_flaky_frontend_give_the_same_channels() {
        // §13 item 33: p = 0.3 lock failures, R = 2 retries, K = 3.
        let net = network();
        let mut reference = ChannelDb::new();
        scan(&mut reference, &net, 2, 0, 7);
        let key = |db: &ChannelDb| {
            db.channels()
                .iter()
                .map(|c| {
                    (
                        c.service.number,
                        c.service.key(),
                        c.name(),
                        c.service.class,
                        c.service.scrambled,
                    )
                })
                .collect::<Vec<_>>()
        };
        let mut db = reference.clone();
        for seed in [11, 12, 13] {
            scan(&mut db, &net, 2, 30, seed);
            assert_eq!(key(&db), key(&reference), "seed {seed}");
        }
        // From empty, too: three flaky scans reach every service with the same names and
        // types (numbers without LCN follow the order muxes were first reached, which
        // flakiness may change, so they are not compared here).
        let mut fresh = ChannelDb::new();
        for seed in [21, 22, 23] {
            scan(&mut fresh, &net, 2, 30, seed);
        }
        let unnumbered = |db: &ChannelDb| {
            let mut v: Vec<_> = key(db)
                .into_iter()
                .map(|(_, k, n, c, s)| (k, n, c, s))
                .collect();
            v.sort();
            v
        };
        assert_eq!(unnumbered(&fresh), unnumbered(&reference));
    }

    #[test]
    fn preempted_mux_is_rescanned_without_a_miss() {
        // §13 item 40 (session side) and 41: cancel keeps what finished.
        let net = network();
        let mut db = ChannelDb::new();
        let mut s = ScanSession::new(
            ScanConfig::default(),
            &db,
            vec![net[0].mux.clone()],
            Origin::Initial,
        );
        let (job, _, fe) = s.start_next(0, &[0, 1], |_, _| true).unwrap();
        assert_eq!(fe, 0);
        assert!(s.start_next(0, &[1], |_, _| true).is_none(), "one mux only");
        s.preempt(job);
        // A frontend that cannot tune it: the mux stays queued.
        assert!(s.start_next(5, &[2], |f, _| f != 2).is_none());
        let (again, mux, fe) = s.start_next(10, &[1], |_, _| true).unwrap();
        assert_eq!((again, fe), (job, 1));
        assert_eq!(mux, net[0].mux);
        s.cancel();
        assert!(s.poll(20, &mut db).is_empty());
        assert!(db.is_empty());
        assert!(
            db.muxes.is_empty(),
            "no miss recorded for an unfinished mux"
        );
    }

    #[test]
    fn a_mux_no_free_frontend_can_tune_does_not_hold_up_the_others() {
        let net = network();
        let db = ChannelDb::new();
        let mut s = ScanSession::new(
            ScanConfig::default(),
            &db,
            vec![net[0].mux.clone(), net[1].mux.clone()],
            Origin::Initial,
        );
        // Frontend 5 tunes only the second mux: it starts, the first stays first.
        let (_, mux, fe) = s.start_next(0, &[5], |_, m| *m == net[1].mux).unwrap();
        assert_eq!((mux, fe), (net[1].mux.clone(), 5));
        assert!(s.start_next(0, &[6], |_, m| *m == net[1].mux).is_none());
        let (_, mux, _) = s.start_next(0, &[6], |_, _| true).unwrap();
        assert_eq!(mux, net[0].mux);
    }
}
