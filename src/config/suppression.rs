//! `[[maintenance]]` and `[[inhibit]]`: the configured ways of keeping pages back.
//!
//! A maintenance window is a silence that recurs: matchers (as a silence's, see `matcher`) and
//! a weekly [`Schedule`] in a time zone. An inhibition rule is Alertmanager's: while an alert
//! matching `source_matchers` fires, alerts matching `target_matchers` that have the same
//! values of the `equal` labels are not paged. Both keep *pages* back, never evaluation and
//! never a resolve (`actions::silences`). [`Schedule::active`] is pure: `now` is a parameter
//! and the zone database is compiled in (jiff's bundled copy of IANA's), so no file is read.

use crate::clock::Timestamp;
use crate::matcher::Matcher;

/// `[[maintenance]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Maintenance {
    /// Unique among the config's maintenance windows; shown as `maintenance: NAME` in
    /// `silenced_by`.
    pub name: String,
    /// Every one must match an alert's labels (at least one, none matching the empty string).
    pub matchers: Vec<Matcher>,
    pub schedule: Schedule,
    pub comment: Option<String>,
}

/// When a maintenance window is on: on the listed weekdays (every day when none are), during
/// one of the listed times of day (the whole day when none are), in local time of `zone`.
/// A range whose end is not after its start crosses midnight: `22:00-02:00` on `sat` runs
/// from Saturday 22:00 to Sunday 02:00.
///
/// Local time is what a wall clock in the zone shows, so across a DST change a range is
/// shorter or longer than usual in real time: on the night clocks go forward, `01:00-04:00`
/// lasts two hours and a range inside the skipped hour does not occur; on the night they go
/// back, the repeated hour is in a range twice.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The IANA name (`Europe/Berlin`), as written.
    pub zone_name: String,
    pub zone: jiff::tz::TimeZone,
    /// Days the ranges start on, Monday = 0; empty: every day.
    pub weekdays: Vec<u8>,
    /// Minutes of the day `[start, end)`; end up to 1440 (`24:00`). Empty: the whole day.
    pub times: Vec<(u16, u16)>,
}

const DAY_MINUTES: u16 = 24 * 60;

impl Schedule {
    /// Whether the schedule is on at `now`.
    pub fn active(&self, now: Timestamp) -> bool {
        let Ok(ts) = jiff::Timestamp::from_millisecond(now.as_millis()) else {
            return false;
        };
        let local = self.zone.to_datetime(ts);
        let day = local.weekday().to_monday_zero_offset() as u8;
        let yesterday = (day + 6) % 7;
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        let on = |d: u8| self.weekdays.is_empty() || self.weekdays.contains(&d);
        if self.times.is_empty() {
            return on(day);
        }
        self.times.iter().any(|&(start, end)| {
            if start < end {
                on(day) && start <= minute && minute < end
            } else {
                // Crosses midnight: from `start` on a listed day to `end` the day after.
                (on(day) && minute >= start) || (on(yesterday) && minute < end)
            }
        })
    }

    /// Parses a weekday list entry: `mon`, `monday`, or a range `mon-fri` (wrapping:
    /// `fri-mon`). Monday = 0.
    pub fn weekdays_of(text: &str) -> Result<Vec<u8>, String> {
        let day = |s: &str| -> Result<u8, String> {
            const NAMES: [&str; 7] = [
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
                "sunday",
            ];
            let s = s.trim().to_ascii_lowercase();
            NAMES
                .iter()
                .position(|n| s.len() >= 3 && n.starts_with(&s))
                .map(|i| i as u8)
                .ok_or_else(|| {
                    format!("{s:?} is not a weekday: use mon, tue, wed, thu, fri, sat, sun")
                })
        };
        match text.split_once('-') {
            None => Ok(vec![day(text)?]),
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut out = vec![a];
                let mut d = a;
                while d != b {
                    d = (d + 1) % 7;
                    out.push(d);
                }
                Ok(out)
            }
        }
    }

    /// Parses a time range `HH:MM-HH:MM` (end up to `24:00`) into minutes of the day.
    pub fn range_of(text: &str) -> Result<(u16, u16), String> {
        let minute = |s: &str, end: bool| -> Result<u16, String> {
            let s = s.trim();
            let (h, m) = s
                .split_once(':')
                .ok_or_else(|| format!("{s:?} is not a time of day: use HH:MM, e.g. 02:30"))?;
            let h: u16 = h
                .parse()
                .map_err(|_| format!("{s:?} is not a time of day: use HH:MM"))?;
            let m: u16 = m
                .parse()
                .map_err(|_| format!("{s:?} is not a time of day: use HH:MM"))?;
            let v = h * 60 + m;
            if m >= 60 || v > DAY_MINUTES || (v == DAY_MINUTES && !end) {
                return Err(format!(
                    "{s:?} is not a time of day: 00:00 to 23:59 (24:00 as an end)"
                ));
            }
            Ok(v)
        };
        let (a, b) = text.split_once('-').ok_or_else(|| {
            format!("{text:?} is not a time range: use HH:MM-HH:MM, e.g. 02:00-04:00")
        })?;
        let (start, end) = (minute(a, false)?, minute(b, true)?);
        if start == end {
            return Err(format!(
                "{text:?} is empty: its start and end are the same time"
            ));
        }
        // 22:00-24:00 is an ordinary range; 22:00-02:00 crosses midnight.
        Ok((start, end))
    }
}

/// `[[inhibit]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct InhibitRule {
    /// What a firing alert must match to inhibit.
    pub source: Vec<Matcher>,
    /// What an alert must match to be inhibited.
    pub target: Vec<Matcher>,
    /// Labels whose values source and target must share (both without it counts as equal).
    pub equal: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds of an RFC 3339 instant.
    fn at(s: &str) -> Timestamp {
        let ts: jiff::Timestamp = s.parse().unwrap();
        Timestamp(ts.as_millisecond())
    }

    fn schedule(zone: &str, weekdays: &[&str], times: &[&str]) -> Schedule {
        Schedule {
            zone_name: zone.into(),
            zone: jiff::tz::db().get(zone).unwrap(),
            weekdays: weekdays
                .iter()
                .flat_map(|d| Schedule::weekdays_of(d).unwrap())
                .collect(),
            times: times
                .iter()
                .map(|t| Schedule::range_of(t).unwrap())
                .collect(),
        }
    }

    #[test]
    fn a_weekly_range_is_on_in_local_time() {
        // Sunday 02:00-04:00 in Berlin (UTC+1 in January).
        let s = schedule("Europe/Berlin", &["sun"], &["02:00-04:00"]);
        assert!(!s.active(at("2026-01-04T00:59:59Z")));
        assert!(s.active(at("2026-01-04T01:00:00Z")));
        assert!(s.active(at("2026-01-04T02:59:59Z")));
        assert!(!s.active(at("2026-01-04T03:00:00Z")));
        // Not on Saturday.
        assert!(!s.active(at("2026-01-03T01:30:00Z")));
    }

    #[test]
    fn a_range_across_midnight_belongs_to_the_day_it_starts() {
        let s = schedule("UTC", &["sat"], &["22:00-02:00"]);
        assert!(s.active(at("2026-01-03T23:00:00Z"))); // Saturday night
        assert!(s.active(at("2026-01-04T01:59:00Z"))); // Sunday small hours
        assert!(!s.active(at("2026-01-04T02:00:00Z")));
        assert!(!s.active(at("2026-01-04T23:00:00Z"))); // Sunday night: not listed
        assert!(!s.active(at("2026-01-03T01:00:00Z"))); // Friday's night: not listed
    }

    #[test]
    fn weekdays_and_ranges_parse() {
        assert_eq!(
            Schedule::weekdays_of("mon-fri").unwrap(),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(Schedule::weekdays_of("Saturday").unwrap(), vec![5]);
        assert_eq!(Schedule::weekdays_of("fri-mon").unwrap(), vec![4, 5, 6, 0]);
        assert!(Schedule::weekdays_of("mo").is_err());
        assert_eq!(Schedule::range_of("22:00-24:00").unwrap(), (1320, 1440));
        assert!(Schedule::range_of("24:00-01:00").is_err());
        assert!(Schedule::range_of("02:00-02:00").is_err());
        assert!(Schedule::range_of("2-4").is_err());
        assert!(Schedule::range_of("02:60-03:00").is_err());
    }

    #[test]
    fn every_day_when_no_weekday_is_listed_and_all_day_when_no_time_is() {
        let s = schedule("UTC", &[], &["12:00-13:00"]);
        assert!(s.active(at("2026-01-05T12:30:00Z")));
        assert!(s.active(at("2026-01-10T12:30:00Z")));
        let s = schedule("UTC", &["sun"], &[]);
        assert!(s.active(at("2026-01-04T00:00:00Z")));
        assert!(s.active(at("2026-01-04T23:59:59Z")));
        assert!(!s.active(at("2026-01-05T00:00:00Z")));
    }

    /// Europe/Berlin goes from 02:00 CET to 03:00 CEST on Sunday 2026-03-29 and back from
    /// 03:00 CEST to 02:00 CET on Sunday 2026-10-25.
    #[test]
    fn across_dst_changes_the_range_follows_the_wall_clock() {
        let s = schedule("Europe/Berlin", &["sun"], &["01:00-04:00"]);
        // Spring: 01:00 CET is 00:00Z; 04:00 CEST is 02:00Z: two real hours.
        assert!(!s.active(at("2026-03-28T23:59:59Z")));
        assert!(s.active(at("2026-03-29T00:00:00Z")));
        assert!(s.active(at("2026-03-29T01:59:59Z")));
        assert!(!s.active(at("2026-03-29T02:00:00Z")));
        // A week before, in winter time, the same range is three real hours (00:00Z-03:00Z).
        assert!(s.active(at("2026-03-22T02:30:00Z")));
        // Autumn: 01:00 CEST is 23:00Z the day before; 04:00 CET is 03:00Z: four real hours.
        assert!(!s.active(at("2026-10-24T22:59:59Z")));
        assert!(s.active(at("2026-10-24T23:00:00Z")));
        assert!(s.active(at("2026-10-25T02:59:59Z")));
        assert!(!s.active(at("2026-10-25T03:00:00Z")));

        // The skipped hour: 02:00-03:00 local does not exist on 2026-03-29.
        let skipped = schedule("Europe/Berlin", &["sun"], &["02:00-03:00"]);
        for minute in (0..=180).step_by(5) {
            let t = at("2026-03-29T00:00:00Z") + std::time::Duration::from_secs(minute * 60);
            assert!(!skipped.active(t), "active at {t}");
        }
        // The repeated hour: 02:00-03:00 local happens twice on 2026-10-25 (00:00Z-02:00Z).
        let twice = schedule("Europe/Berlin", &["sun"], &["02:00-03:00"]);
        assert!(twice.active(at("2026-10-25T00:30:00Z"))); // 02:30 CEST
        assert!(twice.active(at("2026-10-25T01:30:00Z"))); // 02:30 CET
        assert!(!twice.active(at("2026-10-25T02:00:00Z"))); // 03:00 CET
    }
}
