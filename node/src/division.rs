//! Administrative-division codes (GB/T 2260 style) and the division registry.
//!
//! A code's prefix is its ancestor: province `61`, city `6101`, county `610102`, town
//! `610102001`, village `610102001001`. The empty code is a national root, so a national
//! level above the provinces is configuration, not a rewrite. Node levels are not
//! hard-coded anywhere else: code lengths decide.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Digit counts of the levels, top down.
const LENGTHS: [usize; 6] = [0, 2, 4, 6, 9, 12];

/// The level of a division, implied by its code length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The national root (empty code).
    Nation,
    /// 2 digits.
    Province,
    /// 4 digits.
    City,
    /// 6 digits.
    County,
    /// 9 digits.
    Town,
    /// 12 digits.
    Village,
}

impl Level {
    /// The level's name as written in `divisions.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Nation => "nation",
            Level::Province => "province",
            Level::City => "city",
            Level::County => "county",
            Level::Town => "town",
            Level::Village => "village",
        }
    }

    fn from_len(len: usize) -> Option<Level> {
        Some(match len {
            0 => Level::Nation,
            2 => Level::Province,
            4 => Level::City,
            6 => Level::County,
            9 => Level::Town,
            12 => Level::Village,
            _ => return None,
        })
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Level, String> {
        Ok(match s {
            "nation" => Level::Nation,
            "province" => Level::Province,
            "city" => Level::City,
            "county" => Level::County,
            "town" => Level::Town,
            "village" => Level::Village,
            _ => {
                return Err(format!(
                "unknown level {s:?} (expected province, city, county, town, village or nation)"
            ))
            }
        })
    }
}

/// A validated division code. Stored as the digits right-padded to 12 and the real length,
/// so byte keys sort ancestors before descendants and a subtree is one key range.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code {
    padded: u64,
    len: u8,
}

/// Bytes of a [`Code`] in a store key.
pub const CODE_KEY_LEN: usize = 9;

impl Code {
    /// The national root.
    pub const ROOT: Code = Code { padded: 0, len: 0 };

    /// Parse and validate a code: only ASCII digits, 0/2/4/6/9/12 of them, and no all-zero
    /// segment (e.g. `6100` is not a city).
    pub fn parse(s: &str) -> Result<Code, String> {
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("division code {s:?} must contain only digits"));
        }
        if Level::from_len(s.len()).is_none() {
            return Err(format!(
                "division code {s:?} has {} digits; expected 2, 4, 6, 9 or 12",
                s.len()
            ));
        }
        let mut prev = 0;
        for &l in &LENGTHS[1..] {
            if l > s.len() {
                break;
            }
            if s[prev..l].bytes().all(|b| b == b'0') {
                return Err(format!(
                    "division code {s:?} has an all-zero segment at digits {}..{l}",
                    prev + 1
                ));
            }
            prev = l;
        }
        let digits: u64 = if s.is_empty() {
            0
        } else {
            // At most 12 ASCII digits, checked above.
            s.parse().unwrap_or_default()
        };
        Ok(Code {
            padded: digits * 10u64.pow(12 - s.len() as u32),
            len: s.len() as u8,
        })
    }

    /// The level implied by the length.
    pub fn level(self) -> Level {
        // `len` is always one of LENGTHS: checked at construction.
        Level::from_len(self.len as usize).unwrap_or(Level::Nation)
    }

    /// Number of digits.
    #[allow(clippy::len_without_is_empty)] // the empty code is the root: see `is_root`
    pub fn len(self) -> usize {
        self.len as usize
    }

    /// True for the national root.
    pub fn is_root(self) -> bool {
        self.len == 0
    }

    /// The parent code, or `None` at the root.
    pub fn parent(self) -> Option<Code> {
        let i = LENGTHS.iter().position(|&l| l == self.len())?;
        if i == 0 {
            return None;
        }
        Some(self.truncate(LENGTHS[i - 1]))
    }

    /// The ancestor at `len` digits (must be one of the level lengths ≤ own length).
    fn truncate(self, len: usize) -> Code {
        let m = 10u64.pow(12 - len as u32);
        Code {
            padded: self.padded / m * m,
            len: len as u8,
        }
    }

    /// The ancestor at `level`, if that level is at or above this code's level.
    pub fn ancestor_at(self, level: Level) -> Option<Code> {
        let len = LENGTHS[level as usize];
        (len <= self.len()).then(|| self.truncate(len))
    }

    /// True when `self` is `other` or one of its ancestors.
    pub fn contains(self, other: Code) -> bool {
        other.len >= self.len && other.truncate(self.len()) == self
    }

    /// This code and all its ancestors up to `top` (inclusive), bottom up.
    pub fn lineage(self, top: Code) -> impl Iterator<Item = Code> {
        let mut cur = Some(self);
        std::iter::from_fn(move || {
            let c = cur?;
            if !top.contains(c) {
                return None;
            }
            cur = if c == top { None } else { c.parent() };
            Some(c)
        })
    }

    /// Fixed-width store key: 8-byte big-endian padded digits + length.
    pub fn key(self) -> [u8; CODE_KEY_LEN] {
        let mut k = [0u8; CODE_KEY_LEN];
        k[..8].copy_from_slice(&self.padded.to_be_bytes());
        k[8] = self.len;
        k
    }

    /// Decode [`Code::key`]: `None` for bytes no code encodes to (more than 12 digits,
    /// digits after its length, an all-zero segment), as [`Code::parse`] would refuse them.
    pub fn from_key(k: &[u8]) -> Option<Code> {
        let padded = u64::from_be_bytes(k.get(..8)?.try_into().ok()?);
        let len = *k.get(8)?;
        Level::from_len(len as usize)?;
        if padded >= 10u64.pow(12) || padded % 10u64.pow(12 - len as u32) != 0 {
            return None;
        }
        let mut prev = 0;
        for &l in LENGTHS[1..].iter().take_while(|&&l| l <= len as usize) {
            let segment = padded / 10u64.pow(12 - l as u32) % 10u64.pow((l - prev) as u32);
            if segment == 0 {
                return None;
            }
            prev = l;
        }
        Some(Code { padded, len })
    }

    /// Key range `[start, end)` covering this code and its whole subtree.
    pub fn subtree_range(self) -> ([u8; CODE_KEY_LEN], [u8; CODE_KEY_LEN]) {
        let start = self.key();
        let width = 10u64.pow(12 - self.len() as u32);
        let mut end = [0u8; CODE_KEY_LEN];
        end[..8].copy_from_slice(&(self.padded + width).to_be_bytes());
        (start, end)
    }

    /// The village, town or county of a household code (which starts with its village code).
    pub fn of_household(household: &str) -> Option<Code> {
        Code::parse(household.get(..12)?).ok()
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 0 {
            return Ok(());
        }
        let s = format!("{:012}", self.padded);
        f.write_str(&s[..self.len()])
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({self})")
    }
}

impl FromStr for Code {
    type Err = String;
    fn from_str(s: &str) -> Result<Code, String> {
        Code::parse(s)
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Code, D::Error> {
        let s = String::deserialize(d)?;
        Code::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One registry entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Division {
    /// The code.
    pub code: Code,
    /// Official name, e.g. 碑林区.
    pub name: String,
}

impl Division {
    /// Level, from the code.
    pub fn level(&self) -> Level {
        self.code.level()
    }
}

/// The division registry: codes with names, in code order.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    by_code: BTreeMap<Code, Division>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or replace an entry.
    pub fn insert(&mut self, d: Division) {
        self.by_code.insert(d.code, d);
    }

    /// Look up a code.
    pub fn get(&self, code: Code) -> Option<&Division> {
        self.by_code.get(&code)
    }

    /// Name of a code, or the code itself when unknown.
    pub fn name(&self, code: Code) -> String {
        self.get(code)
            .map(|d| d.name.clone())
            .unwrap_or_else(|| code.to_string())
    }

    /// True when the code is registered.
    pub fn contains(&self, code: Code) -> bool {
        self.by_code.contains_key(&code)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }

    /// Direct children of `code` that are registered.
    pub fn children(&self, code: Code) -> impl Iterator<Item = &Division> {
        self.by_code
            .range(code..)
            .skip_while(move |(c, _)| **c == code)
            .take_while(move |(c, _)| code.contains(**c))
            .filter(move |(c, _)| c.parent() == Some(code))
            .map(|(_, d)| d)
    }

    /// `code` and every registered division below it.
    pub fn subtree(&self, code: Code) -> impl Iterator<Item = &Division> {
        self.by_code
            .range(code..)
            .take_while(move |(c, _)| code.contains(**c))
            .map(|(_, d)| d)
    }

    /// Every entry in code order.
    pub fn iter(&self) -> impl Iterator<Item = &Division> {
        self.by_code.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Code {
        Code::parse(s).unwrap()
    }

    #[test]
    fn parses_every_level_and_refuses_bad_codes() {
        for (s, l) in [
            ("", Level::Nation),
            ("61", Level::Province),
            ("6101", Level::City),
            ("610102", Level::County),
            ("610102001", Level::Town),
            ("610102001001", Level::Village),
        ] {
            assert_eq!(c(s).level(), l);
            assert_eq!(c(s).to_string(), s);
        }
        for bad in [
            "6",
            "610",
            "61010",
            "61a1",
            "6100",
            "610100",
            "6101020010",
            "00",
        ] {
            assert!(Code::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn ancestors_and_descendants() {
        let v = c("610102001001");
        assert_eq!(v.parent(), Some(c("610102001")));
        assert_eq!(c("61").parent(), Some(Code::ROOT));
        assert_eq!(Code::ROOT.parent(), None);
        assert!(c("6101").contains(v));
        assert!(c("610102").contains(c("610102")));
        assert!(!c("610103").contains(v));
        assert!(!v.contains(c("610102")));
        assert!(Code::ROOT.contains(v));
        assert_eq!(v.ancestor_at(Level::County), Some(c("610102")));
        assert_eq!(c("6101").ancestor_at(Level::Town), None);
        let lineage: Vec<String> = v.lineage(c("6101")).map(|c| c.to_string()).collect();
        assert_eq!(lineage, ["610102001001", "610102001", "610102", "6101"]);
        assert_eq!(v.lineage(c("62")).count(), 0);
    }

    #[test]
    fn keys_no_code_encodes_to_are_refused() {
        // Found by fuzzing (node/fuzz, store_values): `from_key` took any 8 bytes of digits,
        // so a corrupt key decoded into a code that prints as another one (padded 1 at length
        // 0 printed as the root) or whose subtree range overflowed (u64::MAX: a panic).
        let key = |padded: u64, len: u8| {
            let mut k = [0u8; CODE_KEY_LEN];
            k[..8].copy_from_slice(&padded.to_be_bytes());
            k[8] = len;
            k
        };
        assert_eq!(Code::from_key(&key(1, 0)), None, "a digit past the length");
        assert_eq!(
            Code::from_key(&key(u64::MAX, 12)),
            None,
            "more than 12 digits"
        );
        assert_eq!(Code::from_key(&key(10u64.pow(12), 12)), None, "13 digits");
        assert_eq!(Code::from_key(&key(610_000_000_000, 4)), None, "6100");
        assert_eq!(Code::from_key(&key(0, 2)), None, "00");
        assert_eq!(Code::from_key(&key(610_102_000_000, 6)), Some(c("610102")));
        assert_eq!(Code::from_key(&key(0, 0)), Some(Code::ROOT));
        assert_eq!(
            Code::from_key(&c("999999999999").key()),
            Some(c("999999999999"))
        );
    }

    #[test]
    fn keys_sort_parents_first_and_subtrees_are_ranges() {
        let codes = [
            "61",
            "6101",
            "610102",
            "610102001",
            "610102001001",
            "610103",
            "6102",
        ];
        let mut keys: Vec<_> = codes.iter().map(|s| c(s).key()).collect();
        let sorted = keys.clone();
        keys.sort();
        assert_eq!(keys, sorted);
        let (start, end) = c("610102").subtree_range();
        for s in codes {
            let k = c(s).key();
            let inside = k >= start && k < end;
            assert_eq!(inside, c("610102").contains(c(s)), "{s}");
            assert_eq!(Code::from_key(&k), Some(c(s)));
        }
    }

    #[test]
    fn registry_children_and_subtree() {
        let mut r = Registry::new();
        for s in ["61", "6101", "610102", "610103", "610102001", "6102"] {
            r.insert(Division {
                code: c(s),
                name: format!("n{s}"),
            });
        }
        let kids: Vec<String> = r.children(c("6101")).map(|d| d.code.to_string()).collect();
        assert_eq!(kids, ["610102", "610103"]);
        assert_eq!(r.subtree(c("6101")).count(), 4);
        assert_eq!(r.name(c("6102")), "n6102");
    }
}
