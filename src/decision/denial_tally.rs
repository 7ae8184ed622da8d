//! This replica's denials, counted per minute and reason in memory and
//! added to `denial_counts` in one statement now and then (SPEC §4
//! `/api/v1/stats/denials`): a refusal costs a map update, not a write.

use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use rustc_hash::FxHashMap;

use super::Reason;
use crate::store::denials::DenialCount;

#[derive(Default)]
pub struct DenialTally {
    /// By minute and reason code (`Reason::as_str`, what the table stores).
    counts: Mutex<FxHashMap<(DateTime<Utc>, &'static str), i64>>,
}

impl DenialTally {
    pub fn record(&self, reason: Reason) {
        let minute = Utc::now()
            .duration_trunc(TimeDelta::minutes(1))
            .unwrap_or_else(|_| Utc::now());
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((minute, reason.as_str()))
            .or_insert(0) += 1;
    }

    /// What was counted since the last take; the tally starts again at 0.
    pub fn take(&self) -> Vec<DenialCount> {
        let taken =
            std::mem::take(&mut *self.counts.lock().unwrap_or_else(PoisonError::into_inner));
        taken
            .into_iter()
            .map(|((minute, reason), count)| DenialCount {
                minute,
                reason,
                count,
            })
            .collect()
    }

    /// Counts taken whose write failed: kept for the next one.
    pub fn restore(&self, counts: Vec<DenialCount>) {
        let mut tally = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        for count in counts {
            *tally.entry((count.minute, count.reason)).or_insert(0) += count.count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_taken_once_and_a_failed_write_is_kept() {
        let tally = DenialTally::default();
        tally.record(Reason::SessionLimit);
        tally.record(Reason::SessionLimit);
        tally.record(Reason::NoCredentials);
        let mut taken = tally.take();
        taken.sort_by_key(|c| c.reason);
        let pairs: Vec<(&str, i64)> = taken.iter().map(|c| (c.reason, c.count)).collect();
        assert_eq!(pairs, [("no_credentials", 1), ("session_limit", 2)]);
        assert!(tally.take().is_empty());
        tally.restore(taken);
        tally.record(Reason::SessionLimit);
        let total: i64 = tally.take().iter().map(|c| c.count).sum();
        assert_eq!(total, 4);
    }
}
