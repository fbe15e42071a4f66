//! Tests of the generator: dates and formatting, determinism, headers, resident IDs, codes
//! and divisions, the data rules for several end dates, realistic rates, options refused.

use super::county::{id_check_char, push_id};
use super::sink::{
    civil_from_days, date_to_days, days_from_civil, push_cents, push_date, push_pad,
};
use super::*;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p =
            std::env::temp_dir().join(format!("bottomline-gen-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn end() -> jiff::civil::Date {
    jiff::civil::date(2026, 6, 30)
}

fn county_opts(out: &Path, households: u32) -> GenOptions {
    GenOptions {
        seed: 42,
        out: out.to_path_buf(),
        scope: GenScope::County("610102".into()),
        end: end(),
        households_per_county: Some(households),
    }
}

fn run(opts: &GenOptions) -> GenSummary {
    generate(opts, &mut |_| {}).expect("generation succeeds")
}

/// All rows of a CSV file as header-name → value maps.
fn read(path: &Path) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let mut r = csv::Reader::from_path(path).expect("file exists");
    let headers: Vec<String> = r
        .headers()
        .expect("header line")
        .iter()
        .map(String::from)
        .collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.expect("valid CSV record");
            headers
                .iter()
                .cloned()
                .zip(rec.iter().map(String::from))
                .collect()
        })
        .collect();
    (headers, rows)
}

fn parse_day(s: &str) -> i32 {
    let d: jiff::civil::Date = s.parse().expect("yyyy-mm-dd date");
    assert_eq!(d.to_string(), s, "date written as yyyy-mm-dd");
    date_to_days(d)
}

fn files_of(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("readable dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn civil_days_match_jiff() {
    let mut d = jiff::civil::date(1930, 1, 1);
    let stop = jiff::civil::date(2040, 12, 31);
    let mut n = date_to_days(d);
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    while d <= stop {
        assert_eq!(date_to_days(d), n);
        let (y, m, dd) = civil_from_days(n);
        assert_eq!(
            (y, m, dd),
            (i32::from(d.year()), d.month() as u32, d.day() as u32)
        );
        let mut b = Vec::new();
        push_date(&mut b, n);
        assert_eq!(String::from_utf8(b).expect("ascii"), d.to_string());
        d = d.tomorrow().expect("in range");
        n += 1;
    }
}

#[test]
fn formatting() {
    let mut b = Vec::new();
    push_cents(&mut b, 123_450);
    b.push(b' ');
    push_cents(&mut b, 5);
    b.push(b' ');
    push_pad(&mut b, 7, 4);
    b.push(b' ');
    push_pad(&mut b, 1_234_567, 6);
    b.push(b' ');
    push_id(&mut b, b'S', "610102", 1);
    assert_eq!(b, b"1234.50 0.05 0007 1234567 S610102-000001");
    // Known valid resident ID (GB 11643 example).
    assert_eq!(id_check_char(b"11010519491231002"), b'X');
    assert_eq!(id_check_char(b"44052418800101001"), b'4');
}

#[test]
fn deterministic_and_thread_independent() {
    let a = TempDir::new("det-a");
    let b = TempDir::new("det-b");
    let c = TempDir::new("det-c");
    let opts = |p: &Path| GenOptions {
        scope: GenScope::Province {
            code: "61".into(),
            cities: 2,
            counties: 3,
        },
        ..county_opts(p, 1_500)
    };
    let sa = run(&opts(&a.0));
    let sb = run(&opts(&b.0));
    let sc = generate_with_threads(&opts(&c.0), &mut |_| {}, 1).expect("generation succeeds");
    assert_eq!(sa, sb);
    assert_eq!(sa, sc);
    let fa = files_of(&a.0);
    assert_eq!(fa.len(), 1 + 3 * 6);
    for f in &fa {
        let rel = f.strip_prefix(&a.0).expect("under a");
        let bytes = fs::read(f).expect("readable");
        assert_eq!(
            bytes,
            fs::read(b.0.join(rel)).expect("same file in b"),
            "{rel:?}"
        );
        assert_eq!(
            bytes,
            fs::read(c.0.join(rel)).expect("same file in c"),
            "{rel:?}"
        );
    }
    // Another seed gives other data.
    let d = TempDir::new("det-d");
    run(&GenOptions {
        seed: 43,
        ..opts(&d.0)
    });
    assert_ne!(
        fs::read(a.0.join("610102/households.csv")).expect("readable"),
        fs::read(d.0.join("610102/households.csv")).expect("readable")
    );
}

#[test]
fn county_alone_equals_county_in_province() {
    let a = TempDir::new("alone");
    let b = TempDir::new("inprov");
    run(&county_opts(&a.0, 800));
    run(&GenOptions {
        scope: GenScope::Province {
            code: "61".into(),
            cities: 10,
            counties: 12,
        },
        ..county_opts(&b.0, 800)
    });
    for f in [
        "divisions.csv",
        "households.csv",
        "monitored.csv",
        "signals.csv",
        "cases.csv",
        "measures.csv",
    ] {
        assert_eq!(
            fs::read(a.0.join("610102").join(f)).expect("readable"),
            fs::read(b.0.join("610102").join(f)).expect("readable"),
            "{f}"
        );
    }
}

#[test]
fn headers_are_exact() {
    let t = TempDir::new("headers");
    run(&county_opts(&t.0, 300));
    let expect = [
        ("divisions.csv", "code,name,level,parent"),
        ("610102/divisions.csv", "code,name,level,parent"),
        (
            "610102/households.csv",
            "household_code,village_code,members,alleviated,income,head_name,id_number",
        ),
        (
            "610102/monitored.csv",
            "household_code,category,identified_date,eliminated_date",
        ),
        (
            "610102/signals.csv",
            "id,household_code,source,type,department,amount,date",
        ),
        (
            "610102/cases.csv",
            "id,household_code,discovered_date,decided_date,outcome,green_channel,stage",
        ),
        ("610102/measures.csv", "id,household_code,type,date,amount"),
    ];
    for (f, h) in expect {
        let text = fs::read_to_string(t.0.join(f)).expect("UTF-8 file");
        let first = text.split('\n').next().expect("a first line");
        assert_eq!(first, h, "{f}");
        assert!(!text.contains('\r'), "{f}: \\n line ends only");
        assert!(text.ends_with('\n'), "{f}");
    }
}

#[test]
fn resident_ids_are_valid_and_unique() {
    let t = TempDir::new("ids");
    run(&county_opts(&t.0, 3_000));
    let (_, rows) = read(&t.0.join("610102/households.csv"));
    assert_eq!(rows.len(), 3_000);
    let endd = end();
    let mut seen = HashSet::new();
    for r in &rows {
        let id = r["id_number"].as_bytes();
        assert_eq!(id.len(), 18, "{}", r["id_number"]);
        assert!(id[..17].iter().all(u8::is_ascii_digit));
        assert_eq!(&id[..6], b"610102");
        assert_eq!(
            id[17],
            id_check_char(&id[..17]),
            "check char of {}",
            r["id_number"]
        );
        let s = &r["id_number"];
        let birth = jiff::civil::date(
            s[6..10].parse().expect("year"),
            s[10..12].parse().expect("month"),
            s[12..14].parse().expect("day"),
        );
        let mut age = endd.year() - birth.year();
        if (endd.month(), endd.day()) < (birth.month(), birth.day()) {
            age -= 1;
        }
        assert!((18..=85).contains(&age), "age {age} of {s}");
        assert!(seen.insert(s.clone()), "duplicate id {s}");
        let name = &r["head_name"];
        let chars = name.chars().count();
        assert!((2..=3).contains(&chars), "name {name}");
    }
}

#[test]
fn codes_and_divisions_are_consistent() {
    let t = TempDir::new("codes");
    let sum = run(&GenOptions {
        scope: GenScope::Province {
            code: "61".into(),
            cities: 10,
            counties: 13,
        },
        ..county_opts(&t.0, 400)
    });
    let (_, divs) = read(&t.0.join("divisions.csv"));
    assert_eq!(divs.len() as u64, sum.divisions);
    let mut level: HashMap<String, String> = HashMap::new();
    for d in &divs {
        let code = &d["code"];
        let want_len = match d["level"].as_str() {
            "province" => 2,
            "city" => 4,
            "county" => 6,
            "town" => 9,
            "village" => 12,
            other => panic!("bad level {other}"),
        };
        assert_eq!(code.len(), want_len, "{code}");
        if d["level"] == "province" {
            assert_eq!(d["parent"], "");
        } else {
            assert!(
                code.starts_with(&d["parent"]),
                "{code} under {}",
                d["parent"]
            );
            assert!(
                level.contains_key(&d["parent"]),
                "parent of {code} comes first"
            );
        }
        assert!(
            level.insert(code.clone(), d["level"].clone()).is_none(),
            "dup {code}"
        );
    }
    let names: HashMap<&str, &str> = divs
        .iter()
        .map(|d| (d["code"].as_str(), d["name"].as_str()))
        .collect();
    assert_eq!(names["61"], "陕西省");
    assert_eq!(names["6101"], "西安市");
    assert_eq!(names["6110"], "商洛市");
    // 13 counties over 10 cities: 2,2,2,1,… and codes from 02.
    assert_eq!(sum.counties.len(), 13);
    assert_eq!(&sum.counties[..3], ["610102", "610103", "610202"]);
    assert!(sum.counties.contains(&"611002".to_string()));
    let county_names: HashSet<&str> = sum.counties.iter().map(|c| names[c.as_str()]).collect();
    assert_eq!(county_names.len(), 13, "county names are unique");
    for c in &sum.counties {
        let n = names[c.as_str()];
        assert!(n.ends_with('县') || n.ends_with('区'), "{n}");
    }
    let villages = divs.iter().filter(|d| d["level"] == "village").count();
    let towns = divs.iter().filter(|d| d["level"] == "town").count();
    assert!((10 * 13..=14 * 13).contains(&towns), "{towns} towns");
    assert!(
        (100 * 13..=200 * 13).contains(&villages),
        "{villages} villages"
    );
    for d in &divs {
        let n = &d["name"];
        match d["level"].as_str() {
            "town" => assert!(n.ends_with('镇') || n.ends_with('乡'), "{n}"),
            "village" => assert!(n.ends_with('村'), "{n}"),
            _ => {}
        }
    }

    let mut households = 0u64;
    for c in &sum.counties {
        let dir = t.0.join(c);
        let (_, cdivs) = read(&dir.join("divisions.csv"));
        assert_eq!(cdivs[0]["code"], "61");
        assert_eq!(cdivs[1]["code"], c[..4]);
        assert_eq!(cdivs[2]["code"], *c);
        assert!(cdivs
            .iter()
            .skip(3)
            .all(|d| d["code"].starts_with(c.as_str())));
        let village_codes: HashSet<&str> = cdivs
            .iter()
            .filter(|d| d["level"] == "village")
            .map(|d| d["code"].as_str())
            .collect();
        let (_, hh) = read(&dir.join("households.csv"));
        let mut codes = HashSet::new();
        for h in &hh {
            let code = &h["household_code"];
            assert_eq!(code.len(), 16);
            assert!(village_codes.contains(&code[..12]), "{code}");
            assert_eq!(h["village_code"], code[..12]);
            assert!(codes.insert(code.clone()), "duplicate {code}");
        }
        households += hh.len() as u64;
        // Every record of the county refers to one of its households.
        for f in ["monitored.csv", "signals.csv", "cases.csv", "measures.csv"] {
            let (_, rows) = read(&dir.join(f));
            for r in &rows {
                assert!(
                    codes.contains(&r["household_code"]),
                    "{f}: {}",
                    r["household_code"]
                );
            }
        }
    }
    assert_eq!(households, sum.households);
    assert_eq!(households, 13 * 400);
}

#[test]
fn county_scope_outside_shaanxi() {
    let t = TempDir::new("other");
    let sum = run(&GenOptions {
        scope: GenScope::County("620402".into()),
        ..county_opts(&t.0, 50)
    });
    assert_eq!(sum.counties, ["620402"]);
    let (_, divs) = read(&t.0.join("620402/divisions.csv"));
    assert_eq!(divs[0]["name"], "甘肃省");
    assert_eq!(divs[1]["code"], "6204");
    assert!(divs[1]["name"].ends_with('市'));
    assert_eq!(divs[2]["parent"], "6204");
}

/// Checks every rule of the data files of one county; returns the rows by file.
fn check_county(
    dir: &Path,
    endd: jiff::civil::Date,
) -> HashMap<&'static str, Vec<HashMap<String, String>>> {
    let min = days_from_civil(2015, 1, 1);
    let end = date_to_days(endd);
    let in_range = |s: &str| {
        let d = parse_day(s);
        assert!((min..=end).contains(&d), "date {s} out of range");
        d
    };
    let amount = |s: &str| {
        let (a, b) = s.split_once('.').expect("amount with decimals");
        assert!(
            !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()),
            "{s}"
        );
        assert!(b.len() == 2 && b.bytes().all(|c| c.is_ascii_digit()), "{s}");
    };
    let mut all = HashMap::new();
    let (_, hh) = read(&dir.join("households.csv"));
    let mut alleviated = HashMap::new();
    for h in &hh {
        let m: u32 = h["members"].parse().expect("members");
        assert!((1..=8).contains(&m));
        assert!(h["alleviated"] == "0" || h["alleviated"] == "1");
        amount(&h["income"]);
        alleviated.insert(h["household_code"].clone(), h["alleviated"] == "1");
    }
    let (_, mon) = read(&dir.join("monitored.csv"));
    let mut identified = HashMap::new();
    for m in &mon {
        let id = in_range(&m["identified_date"]);
        let el = if m["eliminated_date"].is_empty() {
            None
        } else {
            let e = in_range(&m["eliminated_date"]);
            assert!(e >= id, "eliminated before identified: {m:?}");
            Some(e)
        };
        // From 2021-01-01 on (earlier only when `end` leaves less than a year after it).
        assert!(id >= days_from_civil(2021, 1, 1).min(end - 364), "{m:?}");
        assert!(CATEGORIES.contains(&m["category"].as_str()));
        if m["category"] == "unstable_alleviated" {
            assert!(
                alleviated[&m["household_code"]],
                "unstable but not alleviated: {m:?}"
            );
        }
        assert!(
            identified
                .insert(m["household_code"].clone(), (id, el))
                .is_none(),
            "household twice in monitored.csv"
        );
    }
    let (_, sig) = read(&dir.join("signals.csv"));
    let mut sig_ids = HashSet::new();
    for s in &sig {
        let d = in_range(&s["date"]);
        assert!(d > end - 365);
        assert!(SOURCES.contains(&s["source"].as_str()));
        assert!(SIGNAL_TYPES.contains(&s["type"].as_str()));
        if s["source"] == "department" {
            let n: u32 = s["department"].parse().expect("department number");
            assert!((1..=30).contains(&n));
        } else {
            assert_eq!(s["department"], "");
        }
        amount(&s["amount"]);
        assert!(
            s["id"].starts_with("S610102-") || !s["id"].starts_with("S61"),
            "{}",
            s["id"]
        );
        assert!(sig_ids.insert(s["id"].clone()));
    }
    let (_, cases) = read(&dir.join("cases.csv"));
    let mut included = HashSet::new();
    let mut case_ids = HashSet::new();
    for c in &cases {
        assert!(case_ids.insert(c["id"].clone()));
        let disc = in_range(&c["discovered_date"]);
        assert!(c["green_channel"] == "0" || c["green_channel"] == "1");
        match c["outcome"].as_str() {
            "pending" => {
                assert_eq!(c["decided_date"], "");
                assert!(STAGES.contains(&c["stage"].as_str()));
                assert!(disc > end - 40);
                assert!(!identified.contains_key(&c["household_code"]));
            }
            o => {
                let dec = in_range(&c["decided_date"]);
                assert!(disc <= dec);
                assert_eq!(c["stage"], "");
                if o == "included" {
                    let (id, _) = identified[&c["household_code"]];
                    assert_eq!(dec, id);
                    assert!(included.insert(c["household_code"].clone()));
                } else {
                    assert_eq!(o, "rejected");
                    assert!(!identified.contains_key(&c["household_code"]));
                }
            }
        }
    }
    assert_eq!(
        included.len(),
        identified.len(),
        "one included case per monitored household"
    );
    let (_, meas) = read(&dir.join("measures.csv"));
    let mut meas_ids = HashSet::new();
    for m in &meas {
        assert!(meas_ids.insert(m["id"].clone()));
        let d = in_range(&m["date"]);
        let (id, el) = identified[&m["household_code"]];
        assert!(d >= id, "measure before identification: {m:?}");
        if let Some(e) = el {
            assert!(
                d < e || (d == id && e == id),
                "measure after elimination: {m:?}"
            );
        }
        assert!(MEASURE_TYPES.contains(&m["type"].as_str()));
        amount(&m["amount"]);
    }
    all.insert("households", hh);
    all.insert("monitored", mon);
    all.insert("signals", sig);
    all.insert("cases", cases);
    all.insert("measures", meas);
    all
}

#[test]
fn rules_and_dates_hold_for_several_end_dates() {
    for (i, endd) in [
        jiff::civil::date(2016, 1, 1),
        jiff::civil::date(2021, 3, 1),
        jiff::civil::date(2024, 2, 29),
        end(),
        jiff::civil::date(2031, 12, 31),
    ]
    .into_iter()
    .enumerate()
    {
        let t = TempDir::new(&format!("rules-{i}"));
        run(&GenOptions {
            end: endd,
            ..county_opts(&t.0, 4_000)
        });
        let rows = check_county(&t.0.join("610102"), endd);
        assert!(!rows["monitored"].is_empty(), "{endd}");
    }
}

#[test]
fn realistic_rates() {
    let t = TempDir::new("rates");
    let n = 20_000u32;
    let sum = run(&county_opts(&t.0, n));
    let rows = check_county(&t.0.join("610102"), end());
    assert_eq!(sum.households, u64::from(n));
    let persons = sum.persons as f64;
    let mean_members = persons / f64::from(n);
    assert!((3.0..3.4).contains(&mean_members), "members {mean_members}");
    let share = sum.monitored_persons as f64 / persons;
    assert!(
        (0.015..=0.035).contains(&share),
        "monitored persons {share}"
    );
    let per_mon = sum.measures as f64 / sum.monitored as f64;
    assert!(
        (2.0..=2.8).contains(&per_mon),
        "measures per monitored {per_mon}"
    );
    let sig65 = sum.signals as f64 * 65_000.0 / f64::from(n);
    assert!(
        (3_000.0..=5_000.0).contains(&sig65),
        "signals per 65k {sig65}"
    );

    let hh = &rows["households"];
    let alleviated = hh.iter().filter(|h| h["alleviated"] == "1").count() as f64 / f64::from(n);
    assert!(
        (0.22..0.28).contains(&alleviated),
        "alleviated {alleviated}"
    );
    let incomes: Vec<f64> = hh
        .iter()
        .map(|h| h["income"].parse().expect("number"))
        .collect();
    let mid = incomes
        .iter()
        .filter(|&&x| (8_000.0..=30_000.0).contains(&x))
        .count() as f64;
    assert!(
        mid / f64::from(n) > 0.8,
        "income mostly 8 000–30 000: {}",
        mid / f64::from(n)
    );

    // Categories roughly 45/40/15; ~55 % of the old identifications eliminated.
    let mon = &rows["monitored"];
    let share_of =
        |c: &str| mon.iter().filter(|m| m["category"] == c).count() as f64 / mon.len() as f64;
    assert!((0.38..0.52).contains(&share_of("unstable_alleviated")));
    assert!((0.33..0.47).contains(&share_of("marginal")));
    assert!((0.10..0.20).contains(&share_of("sudden_hardship")));
    let last_year = date_to_days(end()) - 364;
    let old: Vec<_> = mon
        .iter()
        .filter(|m| parse_day(&m["identified_date"]) < last_year)
        .collect();
    let old_elim = old
        .iter()
        .filter(|m| !m["eliminated_date"].is_empty())
        .count() as f64
        / old.len() as f64;
    assert!(
        (0.48..0.62).contains(&old_elim),
        "old eliminated {old_elim}"
    );

    // Signal sources ~15/30/45/10; signals concentrate on monitored households.
    let sig = &rows["signals"];
    let src = |s: &str| sig.iter().filter(|r| r["source"] == s).count() as f64 / sig.len() as f64;
    assert!((0.10..0.20).contains(&src("self_declared")));
    assert!((0.24..0.36).contains(&src("grid_check")));
    assert!((0.38..0.52).contains(&src("department")));
    assert!((0.06..0.14).contains(&src("data_comparison")));
    let monitored: HashSet<&str> = mon.iter().map(|m| m["household_code"].as_str()).collect();
    let on_mon = sig
        .iter()
        .filter(|s| monitored.contains(s["household_code"].as_str()))
        .count();
    let frac = on_mon as f64 / sig.len() as f64;
    assert!((0.3..0.8).contains(&frac), "signals on monitored {frac}");

    // Cases: included = monitored; late ones ~10 %; rejected ~30 % of included in the last
    // year; some pending, some of them overdue; green channel on sudden hardship only.
    let cases = &rows["cases"];
    let inc: Vec<_> = cases
        .iter()
        .filter(|c| c["outcome"] == "included")
        .collect();
    assert_eq!(inc.len() as u64, sum.monitored);
    let late = inc
        .iter()
        .filter(|c| parse_day(&c["decided_date"]) - parse_day(&c["discovered_date"]) > 15)
        .count() as f64
        / inc.len() as f64;
    assert!((0.05..0.16).contains(&late), "late {late}");
    let in_last_year = |c: &HashMap<String, String>| parse_day(&c["decided_date"]) >= last_year;
    let inc_ly = inc.iter().filter(|c| in_last_year(c)).count() as f64;
    let rej_ly = cases
        .iter()
        .filter(|c| c["outcome"] == "rejected" && in_last_year(c))
        .count() as f64;
    assert!(
        (0.15..0.45).contains(&(rej_ly / inc_ly)),
        "rejected/included {}",
        rej_ly / inc_ly
    );
    let pending: Vec<_> = cases.iter().filter(|c| c["outcome"] == "pending").collect();
    assert!(!pending.is_empty());
    let endn = date_to_days(end());
    assert!(
        pending
            .iter()
            .any(|c| endn - parse_day(&c["discovered_date"]) > 15),
        "an overdue pending case"
    );
    let cat: HashMap<&str, &str> = mon
        .iter()
        .map(|m| (m["household_code"].as_str(), m["category"].as_str()))
        .collect();
    let green: Vec<_> = cases.iter().filter(|c| c["green_channel"] == "1").collect();
    assert!(green
        .iter()
        .all(|c| cat.get(c["household_code"].as_str()) == Some(&"sudden_hardship")));
    let sudden = mon
        .iter()
        .filter(|m| m["category"] == "sudden_hardship")
        .count() as f64;
    let g = green.len() as f64 / sudden;
    assert!((0.1..0.3).contains(&g), "green channel share {g}");
}

#[test]
fn realistic_size_and_progress() {
    let t = TempDir::new("realistic");
    let mut plan = make_plan(&GenOptions {
        households_per_county: None,
        scope: GenScope::Province {
            code: "61".into(),
            cities: 10,
            counties: 107,
        },
        ..county_opts(&t.0, 0)
    })
    .expect("valid plan");
    let counties: Vec<&CountyPlan> = plan.cities.iter().flat_map(|c| &c.counties).collect();
    assert_eq!(counties.len(), 107);
    let hh: u64 = counties.iter().map(|c| u64::from(c.households)).sum();
    assert!((6_500_000..7_500_000).contains(&hh), "{hh} households");
    let villages = plan.division_rows()
        - 1
        - 10
        - 107
        - counties.iter().map(|c| c.towns.len() as u64).sum::<u64>();
    assert!((14_500..17_500).contains(&villages), "{villages} villages");
    plan.cities.clear();

    // Progress after every county and every 10 000 households.
    let mut calls = Vec::new();
    let sum = generate(
        &GenOptions {
            scope: GenScope::Province {
                code: "61".into(),
                cities: 1,
                counties: 2,
            },
            ..county_opts(&t.0, 25_000)
        },
        &mut |p| calls.push(p.clone()),
    )
    .expect("generation succeeds");
    let last = calls.last().expect("progress was reported");
    assert_eq!((last.counties_done, last.counties_total), (2, 2));
    assert_eq!(last.households_done, 50_000);
    assert_eq!(calls.len(), 2 + 2 * 3);
    assert_eq!(sum.households, 50_000);
}

#[test]
fn invalid_options_are_refused() {
    let t = TempDir::new("invalid");
    let bad = [
        GenScope::County("61010".into()),
        GenScope::County("61a102".into()),
        GenScope::County("610100".into()),
        GenScope::Province {
            code: "6".into(),
            cities: 1,
            counties: 1,
        },
        GenScope::Province {
            code: "61".into(),
            cities: 0,
            counties: 1,
        },
        GenScope::Province {
            code: "61".into(),
            cities: 1,
            counties: 99,
        },
        GenScope::Province {
            code: "61".into(),
            cities: 2,
            counties: 0,
        },
    ];
    for scope in bad {
        let r = generate(
            &GenOptions {
                scope: scope.clone(),
                ..county_opts(&t.0, 10)
            },
            &mut |_| {},
        );
        match r {
            Err(GenError::Invalid(msg)) => assert!(!msg.is_empty()),
            other => panic!("{scope:?} accepted: {other:?}"),
        }
    }
    let early = GenOptions {
        end: jiff::civil::date(2015, 12, 31),
        ..county_opts(&t.0, 10)
    };
    assert!(matches!(
        generate(&early, &mut |_| {}),
        Err(GenError::Invalid(_))
    ));
    let huge = county_opts(&t.0, MAX_HOUSEHOLDS_PER_COUNTY + 1);
    assert!(matches!(
        generate(&huge, &mut |_| {}),
        Err(GenError::Invalid(_))
    ));
    // An output path under a regular file cannot be created: the error names it.
    fs::create_dir_all(&t.0).expect("temp dir");
    let file = t.0.join("file");
    fs::write(&file, b"x").expect("write");
    let err = generate(&county_opts(&file.join("out"), 10), &mut |_| {})
        .expect_err("cannot write under a file");
    assert!(matches!(err, GenError::Io { .. }));
    assert!(err.to_string().contains("file"), "{err}");
}

#[test]
fn zero_households_writes_headers_only() {
    let t = TempDir::new("zero");
    let sum = run(&county_opts(&t.0, 0));
    assert_eq!(sum.households, 0);
    let text = fs::read_to_string(t.0.join("610102/households.csv")).expect("file");
    assert_eq!(text.lines().count(), 1);
}
