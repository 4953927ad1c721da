//! TS error counting as a receiver does it (ISO/IEC 13818-1 §2.4.3.3): transport errors and
//! continuity errors per PID, for a tuner's feed and anything else that checks a TS.

/// Counts TS errors (ISO/IEC 13818-1 §2.4.3.3): packets with
/// `transport_error_indicator` set, and continuity errors per PID. A packet with a payload
/// carries the previous counter + 1 (mod 16), or the same counter once (a duplicate); packets
/// without payload, PID 0x1FFF (null packets) and packets with a transport error are not
/// checked; `discontinuity_indicator` restarts the PID's check, as does a PID's first packet.
/// A few compares per packet and 8 KiB of state; counts only grow.
pub struct TsErrorCheck {
    /// Per PID: 0 while unseen, else `SEEN | counter`, plus `DUPLICATE` after one duplicate.
    last: Box<[u8; 8192]>,
    pub continuity_errors: u64,
    pub transport_errors: u64,
}

impl Default for TsErrorCheck {
    fn default() -> Self {
        Self {
            last: Box::new([0; 8192]),
            continuity_errors: 0,
            transport_errors: 0,
        }
    }
}

impl TsErrorCheck {
    const SEEN: u8 = 0x10;
    const DUPLICATE: u8 = 0x20;

    /// Checks the whole 188-byte packets of `data`; a packet without sync byte is skipped.
    pub fn scan(&mut self, data: &[u8]) {
        for p in data.chunks_exact(188) {
            self.packet(p);
        }
    }

    #[inline]
    fn packet(&mut self, p: &[u8]) {
        if p[0] != 0x47 {
            return;
        }
        if p[1] & 0x80 != 0 {
            // The header itself may be wrong: count it, check nothing else.
            self.transport_errors += 1;
            return;
        }
        let pid = ((p[1] as usize & 0x1F) << 8) | p[2] as usize;
        if pid == 0x1FFF {
            return;
        }
        let afc = (p[3] >> 4) & 3;
        let cc = p[3] & 0x0F;
        // adaptation_field_length > 0 and discontinuity_indicator set.
        if afc & 2 != 0 && p[4] > 0 && p[5] & 0x80 != 0 {
            self.last[pid] = 0;
        }
        if afc & 1 == 0 {
            // No payload (adaptation field only, or reserved): the counter does not move.
            return;
        }
        let last = self.last[pid];
        if last == 0 {
            self.last[pid] = Self::SEEN | cc;
        } else if last & 0x0F == cc {
            if last & Self::DUPLICATE != 0 {
                self.continuity_errors += 1;
            } else {
                self.last[pid] = last | Self::DUPLICATE;
            }
        } else {
            if (last + 1) & 0x0F != cc {
                self.continuity_errors += 1;
            }
            self.last[pid] = Self::SEEN | cc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 188-byte packet: `afc` 1 payload, 2 adaptation only, 3 both; `disc` sets the
    /// discontinuity_indicator (in an adaptation field of 1 byte of flags).
    fn packet(pid: u16, cc: u8, afc: u8, disc: bool, tei: bool) -> [u8; 188] {
        let mut p = [0xFFu8; 188];
        p[0] = 0x47;
        p[1] = ((pid >> 8) as u8 & 0x1F) | if tei { 0x80 } else { 0 };
        p[2] = pid as u8;
        p[3] = (afc << 4) | (cc & 0x0F);
        if afc & 2 != 0 {
            p[4] = if afc == 2 { 183 } else { 1 };
            p[5] = if disc { 0x80 } else { 0 };
        }
        p
    }

    fn check(packets: &[[u8; 188]]) -> TsErrorCheck {
        let mut c = TsErrorCheck::default();
        c.scan(&packets.concat());
        c
    }

    #[test]
    fn continuity_counts_gaps_and_allows_one_duplicate() {
        let pay = |pid, cc| packet(pid, cc, 1, false, false);
        // 0..=15 then wrapping to 0: no error; a second PID interleaved has its own counter.
        let mut v: Vec<_> = (0..20).map(|i| pay(256, i as u8 % 16)).collect();
        v.insert(3, pay(257, 9));
        v.insert(7, pay(257, 10));
        let c = check(&v);
        assert_eq!((c.continuity_errors, c.transport_errors), (0, 0));
        // One packet lost: one error; the next ones count on from the new counter.
        assert_eq!(
            check(&[pay(256, 4), pay(256, 6), pay(256, 7)]).continuity_errors,
            1
        );
        // A duplicate is allowed once, a second one is an error.
        assert_eq!(
            check(&[pay(256, 4), pay(256, 4), pay(256, 5)]).continuity_errors,
            0
        );
        assert_eq!(
            check(&[pay(256, 4), pay(256, 4), pay(256, 4)]).continuity_errors,
            1
        );
        // ... once per counter value: a duplicate of the next packet is fine again.
        let v = [
            pay(256, 4),
            pay(256, 4),
            pay(256, 5),
            pay(256, 5),
            pay(256, 6),
        ];
        assert_eq!(check(&v).continuity_errors, 0);
    }

    #[test]
    fn continuity_skips_what_the_standard_exempts() {
        let pay = |pid, cc| packet(pid, cc, 1, false, false);
        // Adaptation-only packets keep the counter (whatever they carry).
        let v = [pay(256, 1), packet(256, 9, 2, false, false), pay(256, 2)];
        assert_eq!(check(&v).continuity_errors, 0);
        // Payload after an adaptation field counts.
        let v = [pay(256, 1), packet(256, 2, 3, false, false), pay(256, 3)];
        assert_eq!(check(&v).continuity_errors, 0);
        let v = [pay(256, 1), packet(256, 5, 3, false, false)];
        assert_eq!(check(&v).continuity_errors, 1);
        // Null packets are never checked.
        let v = [
            pay(0x1FFF, 0),
            pay(0x1FFF, 7),
            pay(0x1FFF, 7),
            pay(0x1FFF, 7),
        ];
        assert_eq!(check(&v).continuity_errors, 0);
        // discontinuity_indicator restarts the check, with or without payload.
        let v = [pay(256, 1), packet(256, 9, 3, true, false), pay(256, 10)];
        assert_eq!(check(&v).continuity_errors, 0);
        let v = [pay(256, 1), packet(256, 0, 2, true, false), pay(256, 12)];
        assert_eq!(check(&v).continuity_errors, 0);
        // Without it, the same jump is an error.
        let v = [pay(256, 1), packet(256, 9, 3, false, false)];
        assert_eq!(check(&v).continuity_errors, 1);
        // Lost sync: the packet is skipped.
        let mut bad = pay(256, 9);
        bad[0] = 0x46;
        assert_eq!(check(&[pay(256, 1), bad, pay(256, 2)]).continuity_errors, 0);
    }

    #[test]
    fn transport_errors_are_counted_and_not_checked_for_continuity() {
        let pay = |cc| packet(256, cc, 1, false, false);
        let v = [
            pay(1),
            packet(256, 9, 1, false, true),
            pay(2),
            packet(300, 0, 2, false, true),
        ];
        let c = check(&v);
        assert_eq!((c.continuity_errors, c.transport_errors), (0, 2));
        // Counts add up over chunks.
        let mut c = TsErrorCheck::default();
        c.scan(&[pay(1), pay(3)].concat());
        c.scan(&[pay(5), packet(256, 6, 1, false, true)].concat());
        assert_eq!((c.continuity_errors, c.transport_errors), (2, 1));
    }
}
