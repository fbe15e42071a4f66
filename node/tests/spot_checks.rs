//! Double-random spot checks (双随机) through a running tree: a province, two cities and three
//! counties on 127.0.0.1:0. The province draws six weeks in turn; the tasks travel down like
//! tickets; no village of a county repeats before all of its villages were drawn; the city and
//! the county rerun their part of each draw from the published seed and get the same picks;
//! results recorded at the counties travel up and count in `spot_checks_done`; a finding
//! becomes a ticket with source spot_check in the same step; the refusals name their reason.

mod common;
use common::{eventually, eventually_async, stop, Running};

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use bottomline::division::{Code, Division};
use bottomline::period::{Kind, Period};
use bottomline::rpc::spotcheck_client::{NewResult, SpotChecksClient};
use bottomline::rpc::tickets_client::TicketsClient;
use bottomline::stats::Value;

const SYNC: &str = "reconnect_secs = 0.05\nheartbeat_secs = 1\n";

fn code(s: &str) -> Code {
    Code::parse(s).expect("code")
}

fn addr(n: &Running) -> String {
    n.addr.clone().expect("listening")
}

/// The registry: province 61, cities 6101 (counties 610102 with 5 villages, 610103 with 3)
/// and 6102 (county 610202 with 4), one town per county.
fn registry() -> Vec<Division> {
    let mut v = vec![
        Division {
            code: code("61"),
            name: "陕西省".into(),
        },
        Division {
            code: code("6101"),
            name: "西安市".into(),
        },
        Division {
            code: code("6102"),
            name: "铜川市".into(),
        },
    ];
    for (county, name, villages) in [
        ("610102", "新城区", 5),
        ("610103", "碑林区", 3),
        ("610202", "王益区", 4),
    ] {
        v.push(Division {
            code: code(county),
            name: name.into(),
        });
        v.push(Division {
            code: code(&format!("{county}001")),
            name: format!("{name}一街道"),
        });
        for i in 1..=villages {
            v.push(Division {
                code: code(&format!("{county}001{i:03}")),
                name: format!("{name}{i}村"),
            });
        }
    }
    v
}

fn villages_of(county: &str) -> BTreeSet<String> {
    registry()
        .into_iter()
        .filter(|d| d.code.to_string().starts_with(county) && d.code.to_string().len() == 12)
        .map(|d| d.code.to_string())
        .collect()
}

/// Every node keeps its ancestors and its subtree.
fn put_registry(n: &Running) {
    let me = n.ledger().division();
    let mine: Vec<Division> = registry()
        .into_iter()
        .filter(|d| me.contains(d.code) || d.code.contains(me))
        .collect();
    n.ledger().put_divisions(&mine).expect("divisions");
}

async fn spot(n: &Running) -> SpotChecksClient {
    SpotChecksClient::connect(&addr(n), None)
        .await
        .expect("connect")
}

async fn state_at(n: &Running, key: &str) -> Option<String> {
    let mut c = TicketsClient::connect(&addr(n), None).await.ok()?;
    c.show(key).await.ok().map(|t| t.state)
}

fn count(n: &Running, division: &str, period: Period, indicator: &str, dim: &str) -> i64 {
    match n
        .ledger()
        .indicators(code(division), period)
        .expect("indicators")
        .get(indicator, dim)
    {
        Some(Value::Count(c)) => c,
        other => panic!("{indicator} {dim}: {other:?}"),
    }
}

async fn start(dir: &Path, division: &str, parent: Option<&str>) -> Running {
    let n = common::start(dir, division, parent, true, SYNC).await;
    put_registry(&n);
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_province_draws_the_tasks_travel_down_and_the_results_come_back_up() {
    let tmp = tempfile::tempdir().unwrap();
    let province = start(tmp.path(), "61", None).await;
    let xian = start(tmp.path(), "6101", Some(&addr(&province))).await;
    let tongchuan = start(tmp.path(), "6102", Some(&addr(&province))).await;
    let xincheng = start(tmp.path(), "610102", Some(&addr(&xian))).await;
    let beilin = start(tmp.path(), "610103", Some(&addr(&xian))).await;
    let wangyi = start(tmp.path(), "610202", Some(&addr(&tongchuan))).await;

    let today = bottomline::period::today_in_china();
    let this_week = Period::containing(Kind::Week, today);
    let mut weeks = vec![this_week];
    for _ in 0..5 {
        let w = weeks[0].prev();
        weeks.insert(0, w);
    }
    let mut p = spot(&province).await;

    // A dry run shows the draw without issuing it; the draw itself issues the same picks.
    let dry = p.draw(&weeks[0].to_string(), "county", true).await.unwrap();
    assert!(dry.dry_run && dry.picks.iter().all(|p| p.task.is_empty()));
    assert_eq!(dry.picks.len(), 3, "one village per county");
    let mut history: Vec<Vec<(String, String)>> = Vec::new();
    for w in &weeks {
        let d = p.draw(&w.to_string(), "county", false).await.unwrap();
        assert!(!d.already_drawn && !d.dry_run);
        assert_eq!(d.seed.len(), 64);
        if w == &weeks[0] {
            let a: Vec<_> = dry.picks.iter().map(|p| &p.village).collect();
            let b: Vec<_> = d.picks.iter().map(|p| &p.village).collect();
            assert_eq!(a, b, "the dry run is the draw");
            assert_eq!(dry.seed, d.seed);
        }
        for pick in &d.picks {
            assert!(villages_of(&pick.county).contains(&pick.village));
            assert_eq!(pick.unit, pick.county);
            assert_eq!(pick.task, format!("61/SC-{w}-{}", pick.county));
        }
        history.push(
            d.picks
                .iter()
                .map(|p| (p.county.clone(), p.village.clone()))
                .collect(),
        );
    }
    // No repeat before full coverage: 碑林区's 3 villages twice over in six weeks, 新城区's
    // five all different in the first five.
    let seq = |county: &str| -> Vec<String> {
        history
            .iter()
            .map(|w| w.iter().find(|(c, _)| c == county).unwrap().1.clone())
            .collect()
    };
    let beilin_seq = seq("610103");
    for cycle in beilin_seq.chunks(3) {
        let set: BTreeSet<&String> = cycle.iter().collect();
        assert_eq!(set.len(), 3, "{beilin_seq:?}");
    }
    let xincheng_seq = seq("610102");
    assert_eq!(
        xincheng_seq[..5].iter().collect::<BTreeSet<_>>().len(),
        5,
        "{xincheng_seq:?}"
    );

    // Drawing a week again shows the draw already issued; an earlier week can no longer be
    // drawn; a week not begun cannot; a county does not draw.
    let again = p
        .draw(&this_week.to_string(), "county", false)
        .await
        .unwrap();
    assert!(again.already_drawn);
    assert_eq!(
        again
            .picks
            .iter()
            .map(|p| p.village.clone())
            .collect::<Vec<_>>(),
        history[5].iter().map(|x| x.1.clone()).collect::<Vec<_>>()
    );
    let e = p
        .draw(&weeks[0].prev().to_string(), "county", false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("week order"), "{e}");
    let e = p
        .draw(&this_week.next().to_string(), "county", false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("has not begun"), "{e}");
    let e = spot(&beilin)
        .await
        .draw(&this_week.to_string(), "county", false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("drawn by the province"), "{e}");

    // The city scope: one county per city and a village in it.
    let city_draw = p.draw(&this_week.to_string(), "city", false).await.unwrap();
    assert_eq!(city_draw.picks.len(), 2);
    for pick in &city_draw.picks {
        assert!(pick.county.starts_with(&pick.unit));
        assert!(villages_of(&pick.county).contains(&pick.village));
    }

    // The province verifies every week; the city and the counties rerun their part of each
    // draw once the tasks reached them, and get the province's picks.
    for (i, w) in weeks.iter().enumerate() {
        let v = p.verify(&w.to_string(), "county", None).await.unwrap();
        assert!(v.ok, "{:?}", v.mismatches);
        assert_eq!(v.seed_matches_statistics, Some(true));
        assert_eq!(v.expected.len(), 3);
        for (node, mine) in [(&xian, 2usize), (&beilin, 1), (&wangyi, 1)] {
            let want: Vec<(String, String)> = history[i]
                .iter()
                .filter(|(c, _)| c.starts_with(&node.ledger().division().to_string()))
                .cloned()
                .collect();
            assert_eq!(want.len(), mine);
            eventually_async("the tasks reach the city and the counties", || async {
                let mut c = spot(node).await;
                match c.verify(&w.to_string(), "county", None).await {
                    Ok(v) => {
                        let got: Vec<(String, String)> = v
                            .expected
                            .iter()
                            .map(|p| (p.county.clone(), p.village.clone()))
                            .collect();
                        v.ok && got == want && v.seed_matches_statistics.is_none()
                    }
                    Err(_) => false,
                }
            })
            .await;
        }
    }
    let v = spot(&tongchuan)
        .await
        .verify(&this_week.to_string(), "city", None)
        .await;
    eventually_async("the city-scope task reaches 铜川", || async {
        spot(&tongchuan)
            .await
            .verify(&this_week.to_string(), "city", None)
            .await
            .is_ok_and(|v| v.ok && v.expected.len() == 1)
    })
    .await;
    drop(v);

    // Results at the counties: 新城区 finds nothing, 碑林区 finds problems (a ticket to the
    // village in the same step), 王益区 records nothing yet.
    let task_x = format!("61/SC-{this_week}-610102");
    let task_b = format!("61/SC-{this_week}-610103");
    let village_x = history[5]
        .iter()
        .find(|x| x.0 == "610102")
        .unwrap()
        .1
        .clone();
    let village_b = history[5]
        .iter()
        .find(|x| x.0 == "610103")
        .unwrap()
        .1
        .clone();
    for (n, task) in [(&xincheng, &task_x), (&beilin, &task_b)] {
        eventually_async("the task is delivered", || async {
            state_at(n, task).await.as_deref() == Some("delivered")
        })
        .await;
    }
    // A plain rectification of a task is refused; the result is recorded instead.
    let mut tx = TicketsClient::connect(&addr(&xincheng), None)
        .await
        .unwrap();
    let e = tx
        .act(
            Some(code(&village_x)),
            std::slice::from_ref(&task_x),
            &bottomline::ledger::Act::Rectify {
                note: "done".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("spot-check task"), "{e}");
    let r = spot(&xincheng)
        .await
        .record(NewResult {
            village: village_x.clone(),
            result: "ok".into(),
            note: "入户核查10户，未发现问题".into(),
            // The village may have an open task of an earlier week too (a new cycle).
            task: Some(task_x.clone()),
            ..NewResult::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (r.task.as_str(), r.state.as_str()),
        (task_x.as_str(), "rectified")
    );
    assert!(r.finding_ticket.is_empty());
    let r = spot(&beilin)
        .await
        .record(NewResult {
            village: village_b.clone(),
            result: "findings".into(),
            note: "2户住房安全未鉴定".into(),
            task: Some(task_b.clone()),
            severity: Some("high".into()),
            ..NewResult::default()
        })
        .await
        .unwrap();
    assert_eq!(r.finding_ticket, format!("610103/SC-{this_week}-610103-F"));
    // A second result for the same task is refused.
    let e = spot(&beilin)
        .await
        .record(NewResult {
            village: village_b.clone(),
            result: "ok".into(),
            note: "again".into(),
            task: Some(task_b.clone()),
            ..NewResult::default()
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is rectified"), "{e}");
    // 王益区 has no task for a village of 碑林区's, and no open task of next week.
    let e = spot(&wangyi)
        .await
        .record(NewResult {
            village: "610202001001".into(),
            result: "ok".into(),
            note: "x".into(),
            week: Some(this_week.next().to_string()),
            ..NewResult::default()
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no open spot-check task"), "{e}");
    // A village of another county is not this node's to record.
    let e = spot(&beilin)
        .await
        .record(NewResult {
            village: village_x.clone(),
            result: "ok".into(),
            note: "x".into(),
            ..NewResult::default()
        })
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("not a village served by node 610103"),
        "{e}"
    );

    // The finding's ticket: source spot_check, to the village, high.
    let mut tb = TicketsClient::connect(&addr(&beilin), None).await.unwrap();
    let f = tb.show(&r.finding_ticket).await.unwrap();
    assert_eq!(
        (f.source.as_str(), f.target.as_str(), f.severity.as_str()),
        ("spot_check", village_b.as_str(), "high")
    );

    // The results travel up: the tasks are rectified at the province, and the statistics
    // count two checks done (one with findings) for the week, at every level; the tasks are
    // not tickets issued, the finding's ticket is.
    for task in [&task_x, &task_b] {
        eventually_async("the result reaches the province", || async {
            state_at(&province, task).await.as_deref() == Some("rectified")
        })
        .await;
    }
    eventually("the province counts the checks", || {
        count(&province, "61", this_week, "spot_checks_done", "total") == 2
            && count(
                &province,
                "61",
                this_week,
                "spot_checks_done",
                "result=findings",
            ) == 1
            && count(&province, "61", this_week, "tickets_issued", "total") == 1
    })
    .await;
    assert_eq!(
        count(
            &province,
            "610102",
            this_week,
            "spot_checks_done",
            "result=ok"
        ),
        1
    );
    assert_eq!(
        count(&province, "610202", this_week, "spot_checks_done", "total"),
        0
    );
    assert_eq!(
        count(&xian, "6101", this_week, "spot_checks_done", "total"),
        2
    );
    assert_eq!(
        count(&beilin, &village_b, this_week, "spot_checks_done", "total"),
        1
    );
    assert_eq!(
        count(&beilin, &village_b, this_week, "tickets_issued", "total"),
        1
    );

    // The CLI verifies at the city (exit 0, "verified") and names the picks.
    let out = tokio::task::spawn_blocking({
        let a = addr(&xian);
        let w = this_week.to_string();
        move || {
            Command::new(env!("CARGO_BIN_EXE_bottomline"))
                .args(["spotcheck", "verify", "--addr", &a, "--week", &w])
                .output()
                .expect("run bottomline")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("verified") && stdout.contains(&village_x),
        "{stdout}"
    );

    for n in [wangyi, beilin, xincheng, tongchuan, xian, province] {
        stop(n).await;
    }
}
