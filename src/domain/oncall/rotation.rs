//! Shift arithmetic: which shift of a rotation an instant falls in.
//!
//! Daily and weekly shifts hand over at the anchor's **local wall time** in
//! the rotation's zone: boundary `k` is the anchor's local date plus
//! `k × shift_length` days (× 7 for weekly) at the anchor's local time,
//! mapped to UTC, so a 09:00 handoff stays at 09:00 across daylight-saving
//! changes (the shift that spans the change is an hour shorter or longer).
//! Hourly shifts are fixed-length UTC hours from the anchor's instant.
//! This follows GoAlert's `schedule/rotation` (local `AddDate` for daily and
//! weekly), except that hourly shifts count real hours, not wall hours.
//!
//! A local time that does not exist or exists twice is mapped the same way
//! every time (see [`local_to_utc`]): a time in a spring-forward gap is moved
//! forward by the gap (02:30 on a 02:00→03:00 night is 03:30), an ambiguous
//! time of a fall-back night is its first (earlier) occurrence.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// How often a rotation hands over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RotationKind {
    /// Every `shift_length` real hours from the anchor's instant.
    Hourly,
    /// Every `shift_length` days at the anchor's local wall time.
    Daily,
    /// Every `shift_length` weeks at the anchor's local wall time.
    Weekly,
}

impl RotationKind {
    /// `hourly`, `daily` or `weekly`.
    pub fn as_str(self) -> &'static str {
        match self {
            RotationKind::Hourly => "hourly",
            RotationKind::Daily => "daily",
            RotationKind::Weekly => "weekly",
        }
    }
}

/// A rotation: participants taking shifts in turn from an anchor.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    /// The rotation's id (`payments-primary`), a subject token.
    pub id: String,
    /// The zone whose wall clock daily and weekly handoffs follow.
    pub tz: Tz,
    /// Hourly, daily or weekly.
    pub kind: RotationKind,
    /// Units of `kind` per shift; 0 is read as 1 (config refuses it).
    pub shift_length: u32,
    /// When the first participant's first shift starts, local wall time.
    pub anchor: NaiveDateTime,
    /// Person ids in turn order, as configured (before any stored change).
    pub participants: Vec<String>,
}

/// One shift: its number counted from the anchor (negative before it) and
/// when it starts and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift {
    /// Shifts since the anchor (0: the anchor's shift; negative before it).
    pub index: i64,
    /// Its first instant.
    pub start: DateTime<Utc>,
    /// The next shift's first instant.
    pub end: DateTime<Utc>,
}

/// Maps a local wall time in `tz` to an instant, deterministically: the
/// earlier of an ambiguous pair; for a time in a gap, the same wall time
/// read with the offset in force before the gap (which lands as far past the
/// gap as the time was into it).
pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.with_timezone(&Utc).min(b.with_timezone(&Utc)),
        LocalResult::None => {
            // Gaps are at most a few hours long; a day before is safely on
            // the old offset (no zone changes offset twice within a day).
            let before = local - Duration::days(1);
            let offset = tz.offset_from_utc_datetime(&before).fix().local_minus_utc();
            let naive_utc = local - Duration::seconds(i64::from(offset));
            Utc.from_utc_datetime(&naive_utc)
        }
    }
}

impl Rotation {
    fn length(&self) -> i64 {
        i64::from(self.shift_length.max(1))
    }

    /// The anchor as an instant.
    pub fn anchor_utc(&self) -> DateTime<Utc> {
        local_to_utc(self.tz, self.anchor)
    }

    /// Where shift `k` starts; `None` past chrono's range.
    pub fn boundary(&self, k: i64) -> Option<DateTime<Utc>> {
        match self.kind {
            RotationKind::Hourly => {
                let hours = k.checked_mul(self.length())?;
                self.anchor_utc()
                    .checked_add_signed(Duration::try_hours(hours)?)
            }
            RotationKind::Daily | RotationKind::Weekly => {
                let days = k.checked_mul(self.days_per_shift())?;
                let local = self.anchor.checked_add_signed(Duration::try_days(days)?)?;
                Some(local_to_utc(self.tz, local))
            }
        }
    }

    fn days_per_shift(&self) -> i64 {
        match self.kind {
            RotationKind::Weekly => 7 * self.length(),
            _ => self.length(),
        }
    }

    /// The shift that instant `t` falls in (`start <= t < end`). Anchors in
    /// the future give negative indexes. `None` only past chrono's range.
    pub fn shift_at(&self, t: DateTime<Utc>) -> Option<Shift> {
        // A first guess from naive arithmetic, then corrected against the
        // real boundaries: a DST change moves a boundary by at most hours,
        // so the guess is off by at most one shift.
        let mut k = match self.kind {
            RotationKind::Hourly => {
                let secs = (t - self.anchor_utc()).num_seconds();
                secs.div_euclid(3600 * self.length())
            }
            RotationKind::Daily | RotationKind::Weekly => {
                let local = t.with_timezone(&self.tz).naive_local();
                let secs = (local - self.anchor).num_seconds();
                secs.div_euclid(86_400 * self.days_per_shift())
            }
        };
        for _ in 0..4 {
            let start = self.boundary(k)?;
            let end = self.boundary(k + 1)?;
            if t < start {
                k -= 1;
            } else if t >= end {
                k += 1;
            } else {
                return Some(Shift {
                    index: k,
                    start,
                    end,
                });
            }
        }
        None
    }
}

/// `participants[index mod n]`, for any index (negative before the anchor).
pub fn pick(participants: &[String], index: i64) -> Option<&String> {
    let n = i64::try_from(participants.len()).ok().filter(|n| *n > 0)?;
    participants.get(usize::try_from(index.rem_euclid(n)).ok()?)
}
