//! The county domain: households, monitoring objects, risk signals, identification cases and
//! assistance measures, with the rules each record must satisfy on its own.
//!
//! Rules that need other records (the household exists, a case may not return to an earlier
//! stage) live in `ledger`, which sees the store. Field names match the interchange files of
//! SPEC.md so that errors can name the field a user sees.

use std::fmt;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::division::{Code, Level};
use crate::period::EARLIEST;

/// A validation failure of one field of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field (column) name as in the interchange files.
    pub field: &'static str,
    /// Why the value was refused.
    pub reason: String,
}

impl FieldError {
    /// Build an error for `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        FieldError {
            field,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field {}: {}", self.field, self.reason)
    }
}

/// Define a closed vocabulary: stable numeric codes (used in store keys) and the file spelling.
macro_rules! vocabulary {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $num:literal : $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $var = $num),+ }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            /// The spelling used in files and reports.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $text),+ }
            }
            /// The stable numeric code.
            pub fn code(self) -> u8 {
                self as u8
            }
            /// Inverse of [`Self::code`].
            pub fn from_code(c: u8) -> Option<Self> {
                match c { $($num => Some($name::$var),)+ _ => None }
            }
            /// Parse the file spelling; the error lists the accepted values.
            pub fn parse(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$var),)+
                    _ => Err(format!(
                        "unknown value {s:?}; expected one of {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary!(
    /// The "three categories" of monitoring objects.
    Category {
        /// 脱贫不稳定户
        UnstableAlleviated = 1: "unstable_alleviated",
        /// 边缘易致贫户
        Marginal = 2: "marginal",
        /// 突发严重困难户
        SuddenHardship = 3: "sudden_hardship",
    }
);

vocabulary!(
    /// Where a risk signal came from.
    SignalSource {
        /// "One-button" self declaration.
        SelfDeclared = 1: "self_declared",
        /// A grid member's regular check.
        GridCheck = 2: "grid_check",
        /// One of the ~30 department early-warning feeds.
        Department = 3: "department",
        /// Information comparison.
        DataComparison = 4: "data_comparison",
    }
);

vocabulary!(
    /// The kind of risk a signal reports.
    SignalType {
        /// Medical expense.
        Medical = 1: "medical",
        /// Accident.
        Accident = 2: "accident",
        /// Labour-force change.
        Labour = 3: "labour",
        /// Natural disaster.
        Disaster = 4: "disaster",
        /// Education expense.
        Education = 5: "education",
        /// Housing safety.
        Housing = 6: "housing",
        /// Drinking water.
        Water = 7: "water",
        /// Unemployment.
        Unemployment = 8: "unemployment",
        /// Income drop.
        IncomeDrop = 9: "income_drop",
    }
);

vocabulary!(
    /// The outcome of an identification case.
    Outcome {
        /// Included as a monitoring object.
        Included = 1: "included",
        /// Rejected (e.g. income above the monitoring line).
        Rejected = 2: "rejected",
        /// Still in the workflow.
        Pending = 3: "pending",
    }
);

vocabulary!(
    /// Workflow stage of a pending identification case, in order.
    Stage {
        /// Declared (by the household or a grid member).
        Declared = 1: "declared",
        /// Village review (村级评议).
        VillageReview = 2: "village_review",
        /// Town check (乡镇审核).
        TownCheck = 3: "town_check",
        /// County approval (县级审定).
        CountyApproval = 4: "county_approval",
    }
);

vocabulary!(
    /// Type of an assistance measure.
    MeasureType {
        /// Industry support.
        Industry = 1: "industry",
        /// Employment support.
        Employment = 2: "employment",
        /// Medical assistance.
        Medical = 3: "medical",
        /// Education assistance.
        Education = 4: "education",
        /// Housing.
        Housing = 5: "housing",
        /// Social assistance (低保 etc.).
        SocialAssistance = 6: "social_assistance",
        /// Special fund.
        SpecialFund = 7: "special_fund",
        /// Insurance.
        Insurance = 8: "insurance",
        /// Other.
        Other = 9: "other",
    }
);

/// Identification deadline: days from discovery to decision.
pub const DEADLINE_DAYS: i32 = 15;

/// An amount of money in fen (cents of a yuan), exact.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Cents(pub i64);

impl Cents {
    /// Parse a non-negative yuan amount with at most 2 decimals (`1234`, `1234.5`, `1234.50`).
    pub fn parse(s: &str) -> Result<Cents, String> {
        let bad = || format!("{s:?} is not an amount in yuan with at most 2 decimals");
        if s.starts_with('-') {
            return Err(format!("{s:?} is negative; amounts are >= 0"));
        }
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty()
            || int.len() > 12
            || !int.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > 2
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || (s.contains('.') && frac.is_empty())
        {
            return Err(bad());
        }
        let yuan: i64 = int.parse().map_err(|_| bad())?;
        let fen: i64 = match frac.len() {
            0 => 0,
            1 => frac.parse::<i64>().map_err(|_| bad())? * 10,
            _ => frac.parse().map_err(|_| bad())?,
        };
        Ok(Cents(yuan * 100 + fen))
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", a / 100, a % 100)
    }
}

/// A household (农户). `head_name` and `id_number` are personal data: they never leave the
/// county node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Household {
    /// "One code per household": the village code followed by a sequence.
    pub household_code: String,
    /// The village the household lives in.
    pub village_code: Code,
    /// Number of members, >= 1.
    pub members: u32,
    /// 脱贫户: lifted out of poverty earlier.
    pub alleviated: bool,
    /// Per-capita annual net income.
    pub income: Cents,
    /// Head of household (personal data).
    pub head_name: Option<String>,
    /// Head's resident ID number (personal data).
    pub id_number: Option<String>,
}

/// A monitoring object (监测对象): a household identified into one of the three categories.
/// There is at most one per household; its id is the household code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Monitored {
    /// The household.
    pub household_code: String,
    /// Which of the three categories.
    pub category: Category,
    /// Day the household was identified (included).
    pub identified_date: Date,
    /// Day the risk was eliminated, if it was.
    pub eliminated_date: Option<Date>,
}

/// A risk signal (风险信息).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    /// Unique within the county.
    pub id: String,
    /// The household concerned.
    pub household_code: String,
    /// Where it came from.
    pub source: SignalSource,
    /// What risk.
    #[serde(rename = "type")]
    pub kind: SignalType,
    /// Department 1..=30 when the source is a department.
    pub department: Option<u8>,
    /// Amount involved.
    pub amount: Cents,
    /// Day of the signal.
    pub date: Date,
}

/// An identification case (识别认定).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// Unique within the county.
    pub id: String,
    /// The household concerned.
    pub household_code: String,
    /// Day the risk was found.
    pub discovered_date: Date,
    /// Day of the decision (included or rejected).
    pub decided_date: Option<Date>,
    /// Result so far.
    pub outcome: Outcome,
    /// 绿色通道: assistance first, identification afterwards.
    pub green_channel: bool,
    /// Workflow stage of a pending case.
    pub stage: Option<Stage>,
}

impl Case {
    /// True when included within [`DEADLINE_DAYS`] of discovery.
    pub fn within_deadline(&self) -> bool {
        match (self.outcome, self.decided_date) {
            (Outcome::Included, Some(d)) => days_between(self.discovered_date, d) <= DEADLINE_DAYS,
            _ => false,
        }
    }

    /// The position in the workflow, for refusing corrections that go backwards.
    pub fn progress(&self) -> u8 {
        match (self.outcome, self.stage) {
            (Outcome::Pending, Some(s)) => s.code(),
            (Outcome::Pending, None) => 0,
            _ => 10,
        }
    }
}

/// Days from `a` to `b` (negative when `b` is earlier).
pub fn days_between(a: Date, b: Date) -> i32 {
    (b.to_jiff_days() - a.to_jiff_days()) as i32
}

trait JiffDays {
    fn to_jiff_days(self) -> i64;
}

impl JiffDays for Date {
    fn to_jiff_days(self) -> i64 {
        // Days since 1970-01-01; the span is always representable for civil dates.
        self.since(jiff::civil::date(1970, 1, 1))
            .map(|s| s.get_days() as i64)
            .unwrap_or_default()
    }
}

/// An assistance measure (帮扶措施).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measure {
    /// Unique within the county.
    pub id: String,
    /// The household assisted.
    pub household_code: String,
    /// Kind of measure.
    #[serde(rename = "type")]
    pub kind: MeasureType,
    /// Day of the measure.
    pub date: Date,
    /// Amount spent.
    pub amount: Cents,
}

/// The kinds of county records. The discriminant is part of store keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum RecordKind {
    /// [`Household`]
    Household = 1,
    /// [`Monitored`]
    Monitored = 2,
    /// [`Signal`]
    Signal = 3,
    /// [`Case`]
    Case = 4,
    /// [`Measure`]
    Measure = 5,
}

impl RecordKind {
    /// Every kind, in import order (records may refer only to earlier kinds).
    pub const ALL: [RecordKind; 5] = [
        RecordKind::Household,
        RecordKind::Monitored,
        RecordKind::Signal,
        RecordKind::Case,
        RecordKind::Measure,
    ];

    /// Lower-case singular name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Household => "household",
            RecordKind::Monitored => "monitored",
            RecordKind::Signal => "signal",
            RecordKind::Case => "case",
            RecordKind::Measure => "measure",
        }
    }

    /// Parse [`RecordKind::as_str`].
    pub fn parse(s: &str) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Inverse of `as u8`.
    pub fn from_code(c: u8) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| *k as u8 == c)
    }
}

/// Any county record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// A household.
    Household(Household),
    /// A monitoring object.
    Monitored(Monitored),
    /// A risk signal.
    Signal(Signal),
    /// An identification case.
    Case(Case),
    /// An assistance measure.
    Measure(Measure),
}

impl Record {
    /// Kind of the record.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Household(_) => RecordKind::Household,
            Record::Monitored(_) => RecordKind::Monitored,
            Record::Signal(_) => RecordKind::Signal,
            Record::Case(_) => RecordKind::Case,
            Record::Measure(_) => RecordKind::Measure,
        }
    }

    /// The id, unique per kind within a county (the household code for households and
    /// monitoring objects).
    pub fn id(&self) -> &str {
        match self {
            Record::Household(h) => &h.household_code,
            Record::Monitored(m) => &m.household_code,
            Record::Signal(s) => &s.id,
            Record::Case(c) => &c.id,
            Record::Measure(m) => &m.id,
        }
    }

    /// The household the record belongs to.
    pub fn household_code(&self) -> &str {
        match self {
            Record::Household(h) => &h.household_code,
            Record::Monitored(m) => &m.household_code,
            Record::Signal(s) => &s.household_code,
            Record::Case(c) => &c.household_code,
            Record::Measure(m) => &m.household_code,
        }
    }

    /// Check the rules that need nothing but the record, the node's county and today's date.
    pub fn validate(&self, county: Code, today: Date) -> Result<(), FieldError> {
        let date = |field: &'static str, d: Date| check_date(field, d, today);
        match self {
            Record::Household(h) => {
                check_household_code("household_code", &h.household_code, county)?;
                if h.village_code.level() != Level::Village {
                    return Err(FieldError::new(
                        "village_code",
                        format!("{} is not a 12-digit village code", h.village_code),
                    ));
                }
                if !h.household_code.starts_with(&h.village_code.to_string()) {
                    return Err(FieldError::new(
                        "village_code",
                        format!(
                            "household code {} does not start with its village code {}",
                            h.household_code, h.village_code
                        ),
                    ));
                }
                if h.members == 0 {
                    return Err(FieldError::new(
                        "members",
                        "a household has at least 1 member",
                    ));
                }
                if h.members > 99 {
                    return Err(FieldError::new(
                        "members",
                        format!("{} members is not plausible for one household", h.members),
                    ));
                }
                if let Some(id) = &h.id_number {
                    check_id_number(id)?;
                }
                Ok(())
            }
            Record::Monitored(m) => {
                check_household_code("household_code", &m.household_code, county)?;
                date("identified_date", m.identified_date)?;
                if let Some(e) = m.eliminated_date {
                    date("eliminated_date", e)?;
                    if e < m.identified_date {
                        return Err(FieldError::new(
                            "eliminated_date",
                            format!(
                                "risk eliminated on {e} before the household was identified on {}: \
                                 a monitoring object is identified first",
                                m.identified_date
                            ),
                        ));
                    }
                }
                Ok(())
            }
            Record::Signal(s) => {
                check_id("id", &s.id)?;
                check_household_code("household_code", &s.household_code, county)?;
                date("date", s.date)?;
                match (s.source, s.department) {
                    (SignalSource::Department, None) => Err(FieldError::new(
                        "department",
                        "a department signal names its department (1-30)",
                    )),
                    (SignalSource::Department, Some(d)) if !(1..=30).contains(&d) => Err(
                        FieldError::new("department", format!("department {d} is not in 1-30")),
                    ),
                    (src, Some(_)) if src != SignalSource::Department => Err(FieldError::new(
                        "department",
                        format!("must be empty when the source is {src}"),
                    )),
                    _ => Ok(()),
                }
            }
            Record::Case(c) => {
                check_id("id", &c.id)?;
                check_household_code("household_code", &c.household_code, county)?;
                date("discovered_date", c.discovered_date)?;
                match (c.outcome, c.decided_date) {
                    (Outcome::Pending, Some(_)) => Err(FieldError::new(
                        "decided_date",
                        "a pending case has no decided_date",
                    )),
                    (Outcome::Pending, None) if c.stage.is_none() => Err(FieldError::new(
                        "stage",
                        "a pending case names its stage (declared, village_review, town_check or county_approval)",
                    )),
                    (Outcome::Pending, None) => Ok(()),
                    (o, None) => Err(FieldError::new(
                        "decided_date",
                        format!("a case with outcome {o} has a decided_date"),
                    )),
                    (o, Some(d)) => {
                        date("decided_date", d)?;
                        if d < c.discovered_date {
                            return Err(FieldError::new(
                                "decided_date",
                                format!("decided on {d} before it was discovered on {}", c.discovered_date),
                            ));
                        }
                        match c.stage {
                            None | Some(Stage::CountyApproval) => Ok(()),
                            Some(s) => Err(FieldError::new(
                                "stage",
                                format!("a case {o} by the county has passed stage {s}: leave stage empty"),
                            )),
                        }
                    }
                }
            }
            Record::Measure(m) => {
                check_id("id", &m.id)?;
                check_household_code("household_code", &m.household_code, county)?;
                date("date", m.date)
            }
        }
    }
}

fn check_date(field: &'static str, d: Date, today: Date) -> Result<(), FieldError> {
    if d < EARLIEST {
        return Err(FieldError::new(
            field,
            format!("{d} is before {EARLIEST}, the earliest date accepted"),
        ));
    }
    if d > today {
        return Err(FieldError::new(
            field,
            format!("{d} is in the future (today is {today} in China)"),
        ));
    }
    Ok(())
}

fn check_id(field: &'static str, id: &str) -> Result<(), FieldError> {
    if id.is_empty() {
        return Err(FieldError::new(field, "the id is empty"));
    }
    if id.len() > 64 || id.chars().any(|c| c.is_control()) {
        return Err(FieldError::new(
            field,
            format!("{id:?} is not a valid id (at most 64 printable characters)"),
        ));
    }
    Ok(())
}

/// A household code: a known 12-digit village code followed by 1-8 more digits, in `county`.
pub fn check_household_code(
    field: &'static str,
    code: &str,
    county: Code,
) -> Result<Code, FieldError> {
    if code.len() <= 12 || code.len() > 20 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::new(
            field,
            format!(
                "{code:?} is not a household code (its 12-digit village code and 1-8 more digits)"
            ),
        ));
    }
    let village = Code::of_household(code).ok_or_else(|| {
        FieldError::new(
            field,
            format!("{code:?} does not start with a valid village code"),
        )
    })?;
    if !county.contains(village) {
        return Err(FieldError::new(
            field,
            format!(
                "household {code} belongs to division {}, not to this node's {county}",
                { village.ancestor_at(Level::County).unwrap_or(village) }
            ),
        ));
    }
    Ok(village)
}

/// An 18-character PRC resident ID with its ISO 7064 MOD 11-2 check character.
pub fn check_id_number(id: &str) -> Result<(), FieldError> {
    let b = id.as_bytes();
    let shape = b.len() == 18
        && b[..17].iter().all(u8::is_ascii_digit)
        && (b[17].is_ascii_digit() || b[17] == b'X' || b[17] == b'x');
    if !shape {
        return Err(FieldError::new(
            "id_number",
            "not an 18-character resident ID number (17 digits and a check digit or X)",
        ));
    }
    if id_check_char(&b[..17]) != b[17].to_ascii_uppercase() {
        return Err(FieldError::new("id_number", "check digit does not match"));
    }
    Ok(())
}

/// The check character of the first 17 digits of a resident ID.
pub fn id_check_char(digits17: &[u8]) -> u8 {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const C: &[u8; 11] = b"10X98765432";
    let sum: u32 = digits17
        .iter()
        .zip(W)
        .map(|(d, w)| (d - b'0') as u32 * w)
        .sum();
    C[(sum % 11) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn cents_parse_exactly() {
        assert_eq!(Cents::parse("1234").unwrap(), Cents(123400));
        assert_eq!(Cents::parse("1234.5").unwrap(), Cents(123450));
        assert_eq!(Cents::parse("0.07").unwrap(), Cents(7));
        assert_eq!(Cents(123405).to_string(), "1234.05");
        for bad in ["", "1.234", "-1", "1,5", "abc", "1.", ".5", "1e3"] {
            assert!(Cents::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn id_number_check_digit() {
        // The well-known sample ID of GB 11643.
        assert!(check_id_number("11010519491231002X").is_ok());
        assert_eq!(
            check_id_number("110105194912310021").unwrap_err().reason,
            "check digit does not match"
        );
        assert!(check_id_number("1101051949").is_err());
    }

    #[test]
    fn eliminated_before_identified_is_refused() {
        let county = Code::parse("610102").unwrap();
        let m = Record::Monitored(Monitored {
            household_code: "6101020010010001".into(),
            category: Category::Marginal,
            identified_date: date(2024, 3, 1),
            eliminated_date: Some(date(2024, 1, 1)),
        });
        let e = m.validate(county, date(2026, 11, 24)).unwrap_err();
        assert_eq!(e.field, "eliminated_date");
    }

    #[test]
    fn household_of_another_county_is_refused() {
        let e = check_household_code(
            "household_code",
            "6101030010010001",
            Code::parse("610102").unwrap(),
        )
        .unwrap_err();
        assert!(e.reason.contains("610103"), "{}", e.reason);
    }

    #[test]
    fn deadline_counts_days() {
        let mut c = Case {
            id: "c".into(),
            household_code: "6101020010010001".into(),
            discovered_date: date(2026, 1, 1),
            decided_date: Some(date(2026, 1, 16)),
            outcome: Outcome::Included,
            green_channel: false,
            stage: None,
        };
        assert!(c.within_deadline());
        c.decided_date = Some(date(2026, 1, 17));
        assert!(!c.within_deadline());
    }
}
