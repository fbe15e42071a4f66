//! Statistics periods: ISO week, month, quarter, half, year, and an internal day period.
//!
//! Dates are China local dates (UTC+8). ISO weeks belong to their ISO year, so `2026-W01`
//! runs 2025-12-29..2026-01-04 and `2026-W53` runs 2026-12-28..2027-01-03. ISO years (52 or
//! 53 whole weeks) exist internally so that stocks at a week's end can be derived from stored
//! flows as "ISO years before + weeks of this ISO year", as calendar years + months do for
//! the other periods (see `stats`).

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, ISOWeekDate, Weekday};

/// Earliest date the system accepts (the monitoring mechanism is younger).
pub const EARLIEST: Date = jiff::civil::date(2015, 1, 1);

/// The kind of a period; the discriminant is part of store keys and must not change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Kind {
    /// ISO 8601 week-numbering year (internal, used to derive stocks at week ends).
    IsoYear = 7,
    /// ISO 8601 week.
    Week = 2,
    /// Calendar month.
    Month = 3,
    /// Calendar quarter.
    Quarter = 4,
    /// Calendar half year.
    Half = 5,
    /// Calendar year.
    Year = 6,
}

impl Kind {
    /// The kinds users ask for, finest first.
    pub const REPORTED: [Kind; 5] = [
        Kind::Week,
        Kind::Month,
        Kind::Quarter,
        Kind::Half,
        Kind::Year,
    ];
    /// Every kind a dated record is counted in.
    pub const ALL: [Kind; 6] = [
        Kind::IsoYear,
        Kind::Week,
        Kind::Month,
        Kind::Quarter,
        Kind::Half,
        Kind::Year,
    ];

    fn from_u8(v: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u8 == v)
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::IsoYear => "iso_year",
            Kind::Week => "week",
            Kind::Month => "month",
            Kind::Quarter => "quarter",
            Kind::Half => "half",
            Kind::Year => "year",
        }
    }
}

/// A period: kind, (ISO-week or calendar) year, and index within the year.
/// Index: week 1..=53, month 1..=12, quarter 1..=4, half 1..=2; 0 for a year or an ISO year.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    kind: Kind,
    year: i16,
    index: u16,
}

/// Bytes of a [`Period`] in a store key.
pub const PERIOD_KEY_LEN: usize = 5;

impl Period {
    /// The period of `kind` containing `date`.
    pub fn containing(kind: Kind, date: Date) -> Period {
        let y = date.year();
        let m = date.month() as u16;
        let (year, index) = match kind {
            Kind::IsoYear => (date.iso_week_date().year(), 0),
            Kind::Week => {
                let w = date.iso_week_date();
                (w.year(), w.week() as u16)
            }
            Kind::Month => (y, m),
            Kind::Quarter => (y, (m - 1) / 3 + 1),
            Kind::Half => (y, (m - 1) / 6 + 1),
            Kind::Year => (y, 0),
        };
        Period { kind, year, index }
    }

    /// The six periods (one of each kind) containing `date`.
    pub fn all_containing(date: Date) -> [Period; 6] {
        Kind::ALL.map(|k| Period::containing(k, date))
    }

    /// Kind.
    pub fn kind(self) -> Kind {
        self.kind
    }

    /// (ISO) year.
    pub fn year(self) -> i16 {
        self.year
    }

    /// Index within the year (0 for a year).
    pub fn index(self) -> u16 {
        self.index
    }

    /// Build from parts, validating the index.
    pub fn new(kind: Kind, year: i16, index: u16) -> Result<Period, String> {
        let p = Period { kind, year, index };
        p.bounds().map(|_| p)
    }

    fn bounds(self) -> Result<(Date, Date), String> {
        let bad = || format!("{self} is not a valid {} period", self.kind.as_str());
        let y = self.year;
        let d = |m: i8, day: i8| Date::new(y, m, day).map_err(|_| bad());
        let month_end = |m: i8| -> Result<Date, String> { Ok(d(m, 1)?.last_of_month()) };
        match self.kind {
            Kind::IsoYear => {
                if self.index != 0 {
                    return Err(bad());
                }
                let first = ISOWeekDate::new(y, 1, Weekday::Monday)
                    .map_err(|_| bad())?
                    .date();
                let last_week = if ISOWeekDate::new(y, 53, Weekday::Monday).is_ok() {
                    53
                } else {
                    52
                };
                let last = ISOWeekDate::new(y, last_week, Weekday::Sunday)
                    .map_err(|_| bad())?
                    .date();
                Ok((first, last))
            }
            Kind::Week => {
                // Not `as i8`: week 300 would wrap to week 44 and be taken (fuzzing found
                // it; a cell from the wire names its period's index as a number).
                let week = i8::try_from(self.index).map_err(|_| bad())?;
                let first = ISOWeekDate::new(y, week, Weekday::Monday)
                    .map_err(|_| bad())?
                    .date();
                let last = ISOWeekDate::new(y, week, Weekday::Sunday)
                    .map_err(|_| bad())?
                    .date();
                Ok((first, last))
            }
            Kind::Month => {
                if !(1..=12).contains(&self.index) {
                    return Err(bad());
                }
                Ok((d(self.index as i8, 1)?, month_end(self.index as i8)?))
            }
            Kind::Quarter => {
                if !(1..=4).contains(&self.index) {
                    return Err(bad());
                }
                let m0 = (self.index as i8 - 1) * 3 + 1;
                Ok((d(m0, 1)?, month_end(m0 + 2)?))
            }
            Kind::Half => {
                if !(1..=2).contains(&self.index) {
                    return Err(bad());
                }
                let m0 = (self.index as i8 - 1) * 6 + 1;
                Ok((d(m0, 1)?, month_end(m0 + 5)?))
            }
            Kind::Year => {
                if self.index != 0 {
                    return Err(bad());
                }
                Ok((d(1, 1)?, d(12, 31)?))
            }
        }
    }

    /// First day (inclusive).
    pub fn first_day(self) -> Date {
        // Every constructed Period has valid bounds (checked in `new`/`parse`/`containing`).
        self.bounds().map(|b| b.0).unwrap_or(EARLIEST)
    }

    /// Last day (inclusive).
    pub fn last_day(self) -> Date {
        // As in `first_day`.
        self.bounds().map(|b| b.1).unwrap_or(EARLIEST)
    }

    /// True when `first_day <= date <= last_day`.
    pub fn contains(self, date: Date) -> bool {
        Period::containing(self.kind, date) == self
    }

    /// Fixed-width store key: kind, year (offset, big-endian), index (big-endian).
    pub fn key(self) -> [u8; PERIOD_KEY_LEN] {
        let y = (self.year as i32 + 32768) as u16;
        let [y0, y1] = y.to_be_bytes();
        let [i0, i1] = self.index.to_be_bytes();
        [self.kind as u8, y0, y1, i0, i1]
    }

    /// Decode [`Period::key`]: `None` for bytes no period encodes to (an index its kind
    /// does not have, a year without dates), as [`Period::new`] would refuse them.
    pub fn from_key(k: &[u8]) -> Option<Period> {
        let kind = Kind::from_u8(*k.first()?)?;
        let year = (u16::from_be_bytes([*k.get(1)?, *k.get(2)?]) as i32 - 32768) as i16;
        let index = u16::from_be_bytes([*k.get(3)?, *k.get(4)?]);
        Period::new(kind, year, index).ok()
    }

    /// Parse `2026-W47`, `2026-11`, `2026-Q4`, `2026-H2` or `2026`.
    pub fn parse(s: &str) -> Result<Period, String> {
        let err = || {
            format!("period {s:?} not understood: use 2026-W47, 2026-11, 2026-Q4, 2026-H2 or 2026")
        };
        let year_of = |y: &str| -> Result<i16, String> {
            if y.len() != 4 || !y.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            y.parse().map_err(|_| err())
        };
        let num = |x: &str| -> Result<u16, String> {
            if x.is_empty() || x.len() > 2 || !x.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            x.parse().map_err(|_| err())
        };
        let p = match s.split_once('-') {
            None => Period::new(Kind::Year, year_of(s)?, 0)?,
            Some((y, rest)) => {
                let y = year_of(y)?;
                if let Some(w) = rest.strip_prefix('W') {
                    Period::new(Kind::Week, y, num(w)?)?
                } else if let Some(q) = rest.strip_prefix('Q') {
                    Period::new(Kind::Quarter, y, num(q)?)?
                } else if let Some(h) = rest.strip_prefix('H') {
                    Period::new(Kind::Half, y, num(h)?)?
                } else if rest.len() == 2 {
                    Period::new(Kind::Month, y, num(rest)?)?
                } else {
                    return Err(err());
                }
            }
        };
        Ok(p)
    }

    /// The period of the same kind just before this one.
    pub fn prev(self) -> Period {
        Period::containing(
            self.kind,
            self.first_day().yesterday().unwrap_or(self.first_day()),
        )
    }

    /// The period of the same kind just after this one.
    pub fn next(self) -> Period {
        Period::containing(
            self.kind,
            self.last_day().tomorrow().unwrap_or(self.last_day()),
        )
    }

    /// Every period of `kind` that overlaps `[from, to]`, in order.
    pub fn covering(kind: Kind, from: Date, to: Date) -> Vec<Period> {
        let mut out = Vec::new();
        if from > to {
            return out;
        }
        let mut p = Period::containing(kind, from);
        while p.first_day() <= to {
            out.push(p);
            p = p.next();
        }
        out
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::IsoYear => write!(f, "{:04}-ISO", self.year),
            Kind::Week => write!(f, "{:04}-W{:02}", self.year, self.index),
            Kind::Month => write!(f, "{:04}-{:02}", self.year, self.index),
            Kind::Quarter => write!(f, "{:04}-Q{}", self.year, self.index),
            Kind::Half => write!(f, "{:04}-H{}", self.year, self.index),
            Kind::Year => write!(f, "{:04}", self.year),
        }
    }
}

impl fmt::Debug for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Period({self})")
    }
}

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Period, String> {
        Period::parse(s)
    }
}

/// Today's date in China (UTC+8), the calendar every date of the system is in.
pub fn today_in_china() -> Date {
    let now = jiff::Timestamp::now();
    let offset = jiff::tz::Offset::constant(8);
    now.to_zoned(jiff::tz::TimeZone::fixed(offset)).date()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn iso_weeks_straddle_years() {
        let w1 = Period::parse("2026-W01").unwrap();
        assert_eq!(w1.first_day(), date(2025, 12, 29));
        assert_eq!(w1.last_day(), date(2026, 1, 4));
        let w53 = Period::parse("2026-W53").unwrap();
        assert_eq!(w53.first_day(), date(2026, 12, 28));
        assert_eq!(w53.last_day(), date(2027, 1, 3));
        assert_eq!(Period::containing(Kind::Week, date(2027, 1, 3)), w53);
        assert_eq!(Period::containing(Kind::Week, date(2025, 12, 29)), w1);
        assert!(Period::parse("2025-W53").is_err(), "2025 has 52 ISO weeks");
        assert_eq!(w53.next(), Period::parse("2027-W01").unwrap());
        let iso2026 = Period::containing(Kind::IsoYear, date(2027, 1, 3));
        assert_eq!(iso2026.year(), 2026);
        assert_eq!(iso2026.first_day(), date(2025, 12, 29));
        assert_eq!(iso2026.last_day(), date(2027, 1, 3));
        assert_eq!(iso2026.next().first_day(), date(2027, 1, 4));
        assert_eq!(w1.prev(), Period::parse("2025-W52").unwrap());
    }

    #[test]
    fn parse_display_round_trip_and_bounds() {
        for (s, first, last) in [
            ("2026-W47", date(2026, 11, 16), date(2026, 11, 22)),
            ("2026-11", date(2026, 11, 1), date(2026, 11, 30)),
            ("2024-02", date(2024, 2, 1), date(2024, 2, 29)),
            ("2026-Q4", date(2026, 10, 1), date(2026, 12, 31)),
            ("2026-H1", date(2026, 1, 1), date(2026, 6, 30)),
            ("2026", date(2026, 1, 1), date(2026, 12, 31)),
        ] {
            let p = Period::parse(s).unwrap();
            assert_eq!(p.to_string(), s);
            assert_eq!((p.first_day(), p.last_day()), (first, last), "{s}");
            assert_eq!(Period::from_key(&p.key()), Some(p));
        }
        for bad in [
            "2026-W54", "2026-13", "2026-Q5", "2026-H3", "26", "2026-W", "x", "2026-00",
        ] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_date_is_in_exactly_one_period_per_kind() {
        let mut d = date(2025, 12, 20);
        while d <= date(2027, 1, 10) {
            for p in Period::all_containing(d) {
                assert!(p.first_day() <= d && d <= p.last_day(), "{p} {d}");
                assert!(p.contains(d));
            }
            d = d.tomorrow().unwrap();
        }
    }

    #[test]
    fn keys_no_period_encodes_to_are_refused() {
        // Found by fuzzing (node/fuzz, store_values): `from_key` took any index and year, so
        // a corrupt key decoded into a period without days (-30999-Q3, 2026-13), whose
        // `first_day` and `last_day` silently fell back to 2015-01-01.
        let key = |kind: Kind, year: i16, index: u16| {
            let y = (year as i32 + 32768) as u16;
            let [y0, y1] = y.to_be_bytes();
            let [i0, i1] = index.to_be_bytes();
            [kind as u8, y0, y1, i0, i1]
        };
        assert_eq!(Period::from_key(&key(Kind::Quarter, -30999, 3)), None);
        assert_eq!(Period::from_key(&key(Kind::Month, 2026, 13)), None);
        assert_eq!(Period::from_key(&key(Kind::Week, 2025, 53)), None);
        assert_eq!(Period::from_key(&key(Kind::Year, 2026, 1)), None);
        assert_eq!(
            Period::from_key(&key(Kind::IsoYear, 2026, 0)).map(|p| p.year()),
            Some(2026)
        );
        assert_eq!(
            Period::from_key(&key(Kind::Week, 2026, 53)),
            Some(Period::parse("2026-W53").unwrap())
        );
        assert_eq!(Period::from_key(&[9, 0x87, 0xea, 0, 1]), None, "no kind 9");
    }

    #[test]
    fn a_week_index_past_255_does_not_wrap() {
        // Found by fuzzing (node/fuzz, store_values): the index was cast to i8, so week 13100
        // (13100 mod 256 = 44) and week 300 were taken as valid weeks of their own.
        for index in [300, 13100, 256 + 1, 128] {
            assert!(
                Period::new(Kind::Week, 2025, index).is_err(),
                "week {index}"
            );
        }
        assert!(Period::new(Kind::Week, 2025, 44).is_ok());
        assert!(Period::new(Kind::Month, 2025, 256 + 1).is_err());
    }

    #[test]
    fn keys_sort_chronologically_within_a_kind() {
        let ps = Period::covering(Kind::Week, date(2025, 6, 1), date(2027, 3, 1));
        let mut keys: Vec<_> = ps.iter().map(|p| p.key()).collect();
        let orig = keys.clone();
        keys.sort();
        assert_eq!(keys, orig);
        assert_eq!(ps.first().unwrap().to_string(), "2025-W22");
    }
}
