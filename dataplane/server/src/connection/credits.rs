//! The credit window of one connection (MS-SMB2 3.3.1.1, 3.3.1.2, 3.3.5.2.3).
//!
//! The client may use a message id only if the server granted it and it was not used before.
//! The window is `[low, high)`; `used` marks ids consumed out of order above `low`.

use std::collections::VecDeque;

use smb3d_protocol::NtStatus;

#[derive(Debug)]
pub struct CreditWindow {
    low: u64,
    high: u64,
    /// `used[i]` tells whether id `low + i` was consumed.
    used: VecDeque<bool>,
    /// How many of `used` are false: the credits the client holds (kept, not counted, as every
    /// response asks for it and the window spans thousands of ids).
    outstanding: u64,
    max_credits: u64,
}

impl CreditWindow {
    /// A window holding exactly `message_id`: after an SMB1 negotiate the SMB2 NEGOTIATE uses
    /// MessageId 1 (MS-SMB2 3.3.5.3.1).
    pub fn starting_at(message_id: u64, max_credits: u16) -> CreditWindow {
        CreditWindow {
            low: message_id,
            high: message_id.saturating_add(1),
            used: VecDeque::from([false]),
            outstanding: 1,
            max_credits: max_credits.max(1) as u64,
        }
    }

    /// A new connection holds one credit: message id 0 for NEGOTIATE.
    pub fn new(max_credits: u16) -> CreditWindow {
        CreditWindow {
            low: 0,
            high: 1,
            used: VecDeque::from([false]),
            outstanding: 1,
            max_credits: max_credits.max(1) as u64,
        }
    }

    /// The window as it travels to another worker: its lowest id and which ids above it were
    /// consumed (the granted ids are `low..low + used.len()`).
    pub fn parts(&self) -> (u64, Vec<bool>) {
        (self.low, self.used.iter().copied().collect())
    }

    /// A window received from another worker; `None` when it could not have come from `grant`
    /// (empty, larger than twice the ceiling, or running past the last id).
    pub fn from_parts(low: u64, used: Vec<bool>, max_credits: u16) -> Option<CreditWindow> {
        let max_credits = max_credits.max(1) as u64;
        let len = used.len() as u64;
        if len == 0 || len > 2 * max_credits {
            return None;
        }
        let high = low.checked_add(len)?;
        let outstanding = used.iter().filter(|u| !**u).count() as u64;
        Some(CreditWindow {
            low,
            high,
            used: used.into(),
            outstanding,
            max_credits,
        })
    }

    /// Credits the client still holds.
    pub fn outstanding(&self) -> u64 {
        self.outstanding
    }

    /// Consume ids `[message_id, message_id + charge)`.
    ///
    /// MS-SMB2 3.3.5.2.3: an id outside the window, or already used, means the client is broken or
    /// hostile; the server terminates the connection (the caller does that on `Err`).
    pub fn consume(&mut self, message_id: u64, charge: u16) -> Result<(), NtStatus> {
        let charge = charge.max(1) as u64;
        let end = message_id
            .checked_add(charge)
            .ok_or(NtStatus::INVALID_PARAMETER)?;
        if message_id < self.low || end > self.high {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let start = (message_id - self.low) as usize;
        if self.used.range(start..start + charge as usize).any(|u| *u) {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        for i in start..start + charge as usize {
            self.used[i] = true;
        }
        self.outstanding -= charge;
        while self.used.front() == Some(&true) {
            self.used.pop_front();
            self.low += 1;
        }
        Ok(())
    }

    /// Grant credits for a response: what the client asked for, within the ceiling, and never
    /// leaving it with none (MS-SMB2 3.3.1.2).
    pub fn grant(&mut self, requested: u16, charge: u16) -> u16 {
        let outstanding = self.outstanding();
        let want = (requested as u64).max(charge.max(1) as u64).max(1);
        let room = self.max_credits.saturating_sub(outstanding);
        let mut granted = want.min(room);
        // Ids consumed above a hole stay tracked until the hole is used; bound that bookkeeping.
        let tracked_max = 2 * self.max_credits;
        granted = granted.min(tracked_max.saturating_sub(self.used.len() as u64));
        if granted == 0 && outstanding == 0 {
            granted = 1;
        }
        // A window handed over by another worker may end at the last message id already.
        granted = granted.min(u64::MAX - self.high);
        for _ in 0..granted {
            self.used.push_back(false);
        }
        self.outstanding += granted;
        self.high += granted;
        granted as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_ending_at_the_last_id_grants_nothing_more() {
        let mut w = CreditWindow::from_parts(u64::MAX - 1, vec![false], 100).unwrap();
        w.consume(u64::MAX - 1, 1).unwrap();
        assert_eq!(w.grant(10, 1), 0);
        assert!(w.consume(u64::MAX, 1).is_err());
    }

    #[test]
    fn window_rules() {
        let mut w = CreditWindow::new(100);
        w.consume(0, 1).unwrap();
        assert_eq!(w.grant(10, 1), 10);
        // ids 1..11 granted
        assert!(w.consume(0, 1).is_err(), "replayed id");
        assert!(w.consume(11, 1).is_err(), "beyond window");
        w.consume(5, 2).unwrap();
        assert!(w.consume(6, 1).is_err());
        w.consume(1, 4).unwrap();
        assert_eq!(w.outstanding(), 4); // ids 7, 8, 9, 10
    }

    #[test]
    fn outstanding_is_kept_in_step_with_the_window() {
        let recount = |w: &CreditWindow| w.used.iter().filter(|u| !**u).count() as u64;
        let mut w = CreditWindow::new(64);
        w.consume(0, 1).unwrap();
        for round in 0..300u16 {
            w.grant(round % 9 + 1, 1);
            assert_eq!(w.outstanding(), recount(&w));
            // Out of order: the newest id first (leaves a hole), then the oldest.
            if w.high - w.low >= 2 {
                w.consume(w.high - 1, 1).unwrap();
                assert_eq!(w.outstanding(), recount(&w));
            }
            w.consume(w.low, 1).unwrap();
            assert_eq!(w.outstanding(), recount(&w));
        }
        let (low, used) = w.parts();
        let back = CreditWindow::from_parts(low, used, 64).unwrap();
        assert_eq!(back.outstanding(), w.outstanding());
    }

    #[test]
    fn window_survives_parts() {
        let mut w = CreditWindow::new(100);
        w.consume(0, 1).unwrap();
        w.grant(10, 1);
        w.consume(3, 1).unwrap();
        let (low, used) = w.parts();
        let mut back = CreditWindow::from_parts(low, used, 100).unwrap();
        assert!(back.consume(3, 1).is_err(), "a consumed id stays consumed");
        back.consume(1, 2).unwrap();
        assert!(back.consume(11, 1).is_err(), "beyond the window");
        assert_eq!(back.outstanding(), 7);
        assert!(CreditWindow::from_parts(0, Vec::new(), 100).is_none());
        assert!(CreditWindow::from_parts(0, vec![false; 201], 100).is_none());
        assert!(CreditWindow::from_parts(u64::MAX, vec![false; 2], 100).is_none());
    }

    #[test]
    fn ceiling_and_never_zero() {
        let mut w = CreditWindow::new(4);
        w.consume(0, 1).unwrap();
        assert_eq!(w.grant(1000, 1), 4);
        for id in 1..5 {
            w.consume(id, 1).unwrap();
        }
        assert_eq!(w.grant(0, 1), 1, "a client is never left without credits");
        assert!(w.consume(u64::MAX, 2).is_err());
    }
}
