//! The draw's properties: reproducible from the seed, uniform (chi-square), full coverage
//! before any repeat, each unit independent of the others, and the seed a function of the
//! statistics.

use super::*;

fn code(s: &str) -> Code {
    Code::parse(s).unwrap()
}

/// A county with `n` villages: 6101020010{01..n} style codes under town 610102001.
fn villages(county: &str, n: usize) -> Vec<Code> {
    (1..=n)
        .map(|i| code(&format!("{county}001{i:03}")))
        .collect()
}

fn seed_of(week: u32) -> Seed {
    let digest = sha256(&[format!("statistics of week {week}").as_bytes()]);
    let w = Period::parse(&format!("2026-W{week:02}")).unwrap();
    seed(code("61"), w, Scope::County, &digest)
}

fn input(counties: &[(&str, usize)]) -> DrawInput {
    DrawInput {
        villages: counties
            .iter()
            .map(|(c, n)| (code(c), villages(c, *n)))
            .collect(),
        ..DrawInput::default()
    }
}

#[test]
fn the_same_inputs_draw_the_same_villages_and_another_seed_others() {
    let inp = input(&[("610102", 40), ("610103", 25), ("610104", 7)]);
    let a = draw(&seed_of(49), Scope::County, &inp);
    let b = draw(&seed_of(49), Scope::County, &inp);
    assert_eq!(a, b);
    assert_eq!(a.len(), 3);
    for p in &a {
        assert_eq!(p.unit, p.county);
        assert!(inp.villages[&p.county].contains(&p.village));
    }
    // Across 20 seeds the 40-village county does not always get the same village.
    let picks: BTreeSet<Code> = (1..=20)
        .map(|w| draw(&seed_of(w), Scope::County, &inp)[0].village)
        .collect();
    assert!(picks.len() > 5, "{picks:?}");
}

#[test]
fn seeds_hex_round_trip_and_depend_on_every_input() {
    let d = sha256(&[b"x"]);
    let w49 = Period::parse("2026-W49").unwrap();
    let s = seed(code("61"), w49, Scope::County, &d);
    assert_eq!(parse_seed(&seed_hex(&s)), Some(s));
    assert_ne!(s, seed(code("62"), w49, Scope::County, &d));
    assert_ne!(s, seed(code("61"), w49.next(), Scope::County, &d));
    assert_ne!(s, seed(code("61"), w49, Scope::City, &d));
    assert_ne!(s, seed(code("61"), w49, Scope::County, &sha256(&[b"y"])));
    assert_eq!(parse_seed("00"), None);
    assert_eq!(parse_seed(&"G".repeat(64)), None);
    assert_eq!(parse_seed(&seed_hex(&s).to_uppercase()), None);
}

/// Simulate `weeks` draws, each feeding the next one's history.
fn simulate(inp: &DrawInput, scope: Scope, weeks: u32) -> Vec<Vec<Pick>> {
    let mut inp = inp.clone();
    let mut out = Vec::new();
    for w in 0..weeks {
        let digest = sha256(&[&w.to_be_bytes()]);
        let s = seed(
            code("61"),
            Period::parse("2026-W01").unwrap(),
            scope,
            &digest,
        );
        let picks = draw(&s, scope, &inp);
        inp.history.extend(picks.iter().copied());
        out.push(picks);
    }
    out
}

#[test]
fn no_village_repeats_before_every_village_of_its_county_was_drawn() {
    let inp = input(&[("610102", 13), ("610103", 5), ("610104", 1)]);
    let weeks = simulate(&inp, Scope::County, 13 * 4);
    for (county, members) in &inp.villages {
        let seq: Vec<Code> = weeks
            .iter()
            .flat_map(|w| w.iter().filter(|p| p.county == *county).map(|p| p.village))
            .collect();
        assert_eq!(seq.len(), 13 * 4);
        // Every block of `members.len()` consecutive draws from a cycle start is a
        // permutation of the county's villages.
        // (The last block may be a cycle under way: no repeats in it either.)
        for block in seq.chunks(members.len()) {
            let got: BTreeSet<Code> = block.iter().copied().collect();
            assert_eq!(got.len(), block.len(), "a repeat within a cycle: {block:?}");
            if block.len() == members.len() {
                assert_eq!(got, members.iter().copied().collect());
            }
        }
    }
}

#[test]
fn a_village_added_mid_cycle_joins_the_candidates_and_a_removed_one_is_ignored() {
    let mut members = villages("610102", 3);
    // Drawn: the first two; then a fourth village appears.
    let history = vec![members[0], members[1]];
    members.push(code("610102001099"));
    let c = Cycle::after(&members, &history);
    assert_eq!(c.candidates(&members), vec![members[2], members[3]]);
    // A pick of a village no longer in the registry counts for nothing.
    let c = Cycle::after(&members[..2], &[members[3], members[0]]);
    assert_eq!(c.candidates(&members[..2]), vec![members[1]]);
}

/// Pearson's chi-square statistic of observed counts against a uniform expectation.
fn chi_square(counts: &[u64]) -> f64 {
    let n: u64 = counts.iter().sum();
    let e = n as f64 / counts.len() as f64;
    counts.iter().map(|&o| (o as f64 - e).powi(2) / e).sum()
}

#[test]
fn the_first_draw_of_a_cycle_is_uniform_chi_square() {
    // 4 000 independent seeds, a county of 20 villages with no history: every village
    // should come first 200 times. Chi-square with 19 degrees of freedom: the 99.9 %
    // quantile is 43.82; a biased choice (e.g. modulo of a small number) fails it.
    let inp = input(&[("610102", 20)]);
    let mut counts = vec![0u64; 20];
    for i in 0u32..4000 {
        let s = sha256(&[b"trial", &i.to_be_bytes()]);
        let p = draw(&s, Scope::County, &inp)[0];
        let idx = inp.villages[&code("610102")]
            .iter()
            .position(|v| *v == p.village)
            .unwrap();
        counts[idx] += 1;
    }
    let x2 = chi_square(&counts);
    assert!(x2 < 43.82, "chi-square {x2:.2} over 19 d.f.: {counts:?}");
}

#[test]
fn positions_within_cycles_are_uniform_over_many_weeks_chi_square() {
    // Over 210 simulated weeks a 7-village county completes 30 cycles; which village is
    // drawn at each position of a cycle should be uniform: the 7×7 table of (position,
    // village) counts, chi-square of each position's row against 30/7 each is summed over
    // the positions but the last (which is forced by the others): 6 × 6 = 36 d.f., the
    // 99.9 % quantile 67.99.
    let inp = input(&[("610102", 7)]);
    let mut table = vec![vec![0u64; 7]; 7];
    // Several independent runs so that the expected counts are not tiny.
    for run in 0u32..8 {
        let mut inp = inp.clone();
        for w in 0..210u32 {
            let s = sha256(&[b"run", &run.to_be_bytes(), &w.to_be_bytes()]);
            let p = draw(&s, Scope::County, &inp)[0];
            let idx = inp.villages[&code("610102")]
                .iter()
                .position(|v| *v == p.village)
                .unwrap();
            table[(w % 7) as usize][idx] += 1;
            inp.history.push(p);
        }
    }
    let x2: f64 = table[..6].iter().map(|row| chi_square(row)).sum();
    assert!(x2 < 67.99, "chi-square {x2:.2} over 36 d.f.: {table:?}");
    // Every village is drawn exactly once per cycle: 8 runs × 30 cycles.
    for v in 0..7 {
        assert_eq!(table.iter().map(|r| r[v]).sum::<u64>(), 240);
    }
}

#[test]
fn each_counties_pick_depends_only_on_its_own_villages_and_history() {
    // A city holding only its two counties computes the same picks for them as the
    // province drawing for three.
    let province = input(&[("610102", 9), ("610103", 4), ("620102", 11)]);
    let weeks = simulate(&province, Scope::County, 6);
    let mut city = input(&[("610102", 9), ("610103", 4)]);
    for (w, picks) in weeks.iter().enumerate() {
        let digest = sha256(&[&(w as u32).to_be_bytes()]);
        let s = seed(
            code("61"),
            Period::parse("2026-W01").unwrap(),
            Scope::County,
            &digest,
        );
        let mine = draw(&s, Scope::County, &city);
        let theirs: Vec<Pick> = picks
            .iter()
            .filter(|p| code("6101").contains(p.county))
            .copied()
            .collect();
        assert_eq!(mine, theirs, "week {w}");
        city.history.extend(mine);
    }
}

#[test]
fn city_scope_covers_every_county_of_a_city_before_repeating_one() {
    let mut inp = input(&[("610102", 3), ("610103", 4), ("610104", 2), ("610202", 5)]);
    inp.counties.insert(
        code("6101"),
        vec![code("610102"), code("610103"), code("610104")],
    );
    inp.counties.insert(code("6102"), vec![code("610202")]);
    let weeks = simulate(&inp, Scope::City, 9);
    let seq: Vec<Code> = weeks
        .iter()
        .map(|w| {
            assert_eq!(w.len(), 2);
            assert_eq!(w[1].county, code("610202"));
            assert!(inp.villages[&w[0].county].contains(&w[0].village));
            w[0].county
        })
        .collect();
    for block in seq.chunks(3) {
        let got: BTreeSet<Code> = block.iter().copied().collect();
        assert_eq!(got.len(), 3, "a county repeated within a cycle: {seq:?}");
    }
}

#[test]
fn tasks_validate_their_week_and_seed() {
    let ok = SpotCheckTask {
        week: "2026-W53".into(),
        scope: Scope::County,
        seed: seed_hex(&seed_of(53)),
    };
    assert_eq!(ok.validate(), Ok(()));
    let bad_week = SpotCheckTask {
        week: "2026-12".into(),
        ..ok.clone()
    };
    assert!(bad_week.validate().unwrap_err().contains("ISO week"));
    let bad_seed = SpotCheckTask {
        seed: "abc".into(),
        ..ok
    };
    assert!(bad_seed.validate().unwrap_err().contains("seed"));
    assert_eq!(
        ticket_id(
            Scope::City,
            Period::parse("2026-W53").unwrap(),
            code("6101")
        ),
        "SCC-2026-W53-6101"
    );
}
