//! Issue #16 point 3: a county whose store was restored from an older backup, or wiped, is
//! recognised by its parent, which replaces what it held of it with what the county now
//! holds — cells and ticket cursors — and every level again equals the sum of the counties,
//! with nothing doubled and no event id used twice.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bottomline::division::Code;
use bottomline::ledger::{Act, Ledger};
use bottomline::stats::CellKey;
use bottomline::store::StoreOptions;
use bottomline::tickets::{Severity, State, Ticket, TicketKey, TicketSource};
use common::{eventually, Running};

const SYNC: &str = "reconnect_secs = 0.05\nheartbeat_secs = 0.2\n";
const A: &str = "610102";
const B: &str = "610103";

fn c(s: &str) -> Code {
    Code::parse(s).expect("code")
}

fn today() -> jiff::civil::Date {
    jiff::civil::date(2026, 12, 5)
}

/// The first files of a county (registry, households, monitoring) and the rest (the events):
/// two "weeks" of imports.
fn halves(files: &Path, county: &str) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let all = common::county_files(files, county);
    let (first, rest) = all.split_at(3);
    (first.to_vec(), rest.to_vec())
}

fn import(l: &Ledger, files: &[PathBuf]) {
    bottomline::import::import_files(l, files, None, today(), &mut |_| {}, &mut |_| {})
        .expect("import");
}

/// The non-zero cells `l` holds in `d`'s subtree.
fn subtree(l: &Ledger, d: Code) -> BTreeMap<CellKey, i64> {
    l.all_cells()
        .expect("cells")
        .into_iter()
        .filter(|(k, _)| d.contains(k.division))
        .collect()
}

/// The province's and the city's copies of both counties equal what the counties hold, and
/// each parent's own cells are the sum of its children's (its self-check): every level is
/// the sum of the counties.
fn levels_agree(t: &Tree) -> bool {
    let (p, city) = (t.province.ledger(), t.city.ledger());
    [&t.a, &t.b].iter().all(|n| {
        let own = n.ledger().upward_cells().expect("cells");
        let d = n.ledger().division();
        subtree(city, d) == own && subtree(p, d) == own
    }) && city.self_check().expect("check").ok()
        && p.self_check().expect("check").ok()
}

struct Tree {
    province: Running,
    city: Running,
    a: Running,
    b: Running,
}

async fn tree(dir: &Path) -> Tree {
    let province = common::start(dir, "61", None, true, SYNC).await;
    let city = common::start(dir, "6101", province.addr.as_deref(), true, SYNC).await;
    let a = common::start(dir, A, city.addr.as_deref(), false, SYNC).await;
    let b = common::start(dir, B, city.addr.as_deref(), false, SYNC).await;
    Tree {
        province,
        city,
        a,
        b,
    }
}

impl Tree {
    async fn stop(self) {
        common::stop(self.a).await;
        common::stop(self.b).await;
        common::stop(self.city).await;
        common::stop(self.province).await;
    }
}

/// What a county holds after importing `files` into a store of its own (the reference).
fn reference(dir: &Path, county: &str, files: &[PathBuf]) -> BTreeMap<CellKey, i64> {
    let l = Ledger::open_or_init(
        &dir.join(format!("reference-{county}")),
        Some(c(county)),
        &StoreOptions::default(),
    )
    .expect("open");
    import(&l, files);
    l.all_cells().expect("cells")
}

/// What travels up of a county's cells (towns and villages stay at the county).
fn upward(mut cells: BTreeMap<CellKey, i64>) -> BTreeMap<CellKey, i64> {
    cells.retain(|k, _| bottomline::cells::travels_up(k.division));
    cells
}

/// The cells of the records (the ticket cells left out: the ticket's state moves on).
fn of_records(cells: BTreeMap<CellKey, i64>) -> BTreeMap<CellKey, i64> {
    cells
        .into_iter()
        .filter(|(k, _)| !k.indicator.name().starts_with("tickets"))
        .collect()
}

/// The two maps are equal (a short message instead of thousands of cells when not).
fn same(what: &str, a: &BTreeMap<CellKey, i64>, b: &BTreeMap<CellKey, i64>) {
    let differ = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(k) != b.get(k))
        .take(3)
        .map(|k| format!("{k:?}: {:?} vs {:?}", a.get(k), b.get(k)))
        .collect::<Vec<_>>();
    assert!(
        differ.is_empty(),
        "{what}: {} vs {} cells, first differing {differ:?}",
        a.len(),
        b.len()
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

fn ticket(id: &str) -> Ticket {
    Ticket {
        issuer: c("61"),
        id: id.into(),
        target: c(A),
        category: "housing safety".into(),
        source: TicketSource::Inspection,
        severity: Severity::High,
        deadline: today()
            .checked_add(jiff::Span::new().days(30))
            .expect("date"),
        description: "roof of a monitored household leaks".into(),
        household_code: None,
        parent: None,
        inventory: None,
        spot_check: None,
    }
}

fn state(l: &Ledger, key: &TicketKey) -> Option<State> {
    l.ticket(key).expect("ticket").map(|s| s.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_restored_from_an_older_backup_is_replaced_at_every_level() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let files = dir.join("files");
    common::generate_county(&files, A, 11, 250);
    common::generate_county(&files, B, 12, 200);
    let (a_first, a_rest) = halves(&files, A);
    let mut t = tree(dir).await;
    import(t.b.ledger(), &common::county_files(&files, B));

    // The first week, and a ticket from the province delivered to the county.
    import(t.a.ledger(), &a_first);
    let keys = t
        .province
        .ledger()
        .issue_tickets(c("61"), vec![ticket("T-1")])
        .expect("issue");
    let key = keys[0].clone();
    eventually(
        "the first week reaches every level and the ticket the county",
        || levels_agree(&t) && state(t.a.ledger(), &key) == Some(State::Delivered),
    )
    .await;

    // The backup, taken with the node stopped.
    common::stop(t.a).await;
    let backup = dir.join("backup");
    copy_dir(&dir.join(A), &backup);
    t.a = common::start(dir, A, t.city.addr.as_deref(), false, SYNC).await;

    // The second week, and the county accepts the ticket: both reach the province.
    t.a.ledger()
        .act_on_tickets(c(A), std::slice::from_ref(&key), &Act::Accept)
        .expect("accept");
    import(t.a.ledger(), &a_rest);
    eventually(
        "the second week and the acceptance reach every level",
        || levels_agree(&t) && state(t.province.ledger(), &key) == Some(State::Accepted),
    )
    .await;
    let full = t.a.ledger().all_cells().expect("cells");

    // The disk fails; the county is restored from the backup of a week earlier.
    common::stop(t.a).await;
    std::fs::remove_dir_all(dir.join(A)).expect("remove");
    copy_dir(&backup, &dir.join(A));
    t.a = common::start(dir, A, t.city.addr.as_deref(), false, SYNC).await;
    let first_week = reference(dir, A, &a_first);
    same(
        "the restored county holds the first week",
        &of_records(t.a.ledger().all_cells().expect("cells")),
        &first_week,
    );
    // The parents replace what they held of it: every level shows the first week again (the
    // second is not kept as if the county still held it), and the county gets back its own
    // acceptance of the ticket from the province.
    eventually("every level equals the restored county", || {
        levels_agree(&t)
            && of_records(subtree(t.province.ledger(), c(A))) == upward(first_week.clone())
            && state(t.a.ledger(), &key) == Some(State::Accepted)
    })
    .await;

    // The second week imported again, and the county acts on the ticket: its new event gets
    // an id of its own (the lost one is not reused), so the province sees it.
    import(t.a.ledger(), &a_rest);
    t.a.ledger()
        .act_on_tickets(c(A), std::slice::from_ref(&key), &Act::Start)
        .expect("start");
    eventually(
        "the re-imported week and the new event reach every level",
        || levels_agree(&t) && state(t.province.ledger(), &key) == Some(State::Rectifying),
    )
    .await;
    // Nothing doubled: the county, the city and the province hold exactly what one import of
    // both weeks gives.
    let full = of_records(full);
    same(
        "the county holds both weeks once",
        &of_records(t.a.ledger().all_cells().expect("cells")),
        &full,
    );
    same(
        "the province holds both weeks once",
        &of_records(subtree(t.province.ledger(), c(A))),
        &upward(full.clone()),
    );
    let events = t.province.ledger().ticket_events(&key).expect("events");
    let mut ids: Vec<_> = events.iter().map(|e| e.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "no event id twice: {events:?}");
    assert_eq!(
        events.len(),
        4,
        "issued, delivered, accepted, started: {events:?}"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_county_that_imports_everything_again_is_counted_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let files = dir.join("files");
    common::generate_county(&files, A, 21, 250);
    common::generate_county(&files, B, 22, 200);
    let mut t = tree(dir).await;
    import(t.b.ledger(), &common::county_files(&files, B));
    import(t.a.ledger(), &common::county_files(&files, A));
    eventually("both counties reach every level", || levels_agree(&t)).await;
    let full = t.a.ledger().all_cells().expect("cells");
    assert!(!full.is_empty());

    // The county's data dir is lost; a new, empty store starts.
    common::stop(t.a).await;
    std::fs::remove_dir_all(dir.join(A)).expect("remove");
    t.a = common::start(dir, A, t.city.addr.as_deref(), false, SYNC).await;
    eventually("every level drops what the lost store held", || {
        levels_agree(&t) && subtree(t.province.ledger(), c(A)).is_empty()
    })
    .await;
    assert!(
        !subtree(t.province.ledger(), c(B)).is_empty(),
        "the other county stays"
    );

    // Everything imported again: counted once.
    import(t.a.ledger(), &common::county_files(&files, A));
    eventually("the re-import reaches every level", || {
        levels_agree(&t) && subtree(t.province.ledger(), c(A)) == upward(full.clone())
    })
    .await;
    same(
        "the county holds it once",
        &t.a.ledger().all_cells().expect("cells"),
        &full,
    );
    t.stop().await;
}

/// A Hello naming an incarnation the parent already saw superseded — replayed, or kept by a
/// relay the county has since left — is refused, and nothing the parent holds changes; a
/// copy restored from a backup (a new incarnation) is still recognised and replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_hello_is_refused_and_changes_nothing() {
    use bottomline::ledger::ChildLinked;
    use bottomline::lineage::{Incarnation, StoreIdentity};
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = tmp.path().join("files");
    common::generate_county(&files, A, 5, 200);
    let t = tree(tmp.path()).await;
    import(&t.a.handle.ledger, &common::county_files(&files, A));
    eventually("the city holds the county", || levels_agree(&t)).await;
    let city = t.city.handle.ledger.clone();
    let held = subtree(&city, c(A));
    assert!(!held.is_empty());
    // The county's store as the city recorded it, then two more processes of it.
    let now = t.a.handle.ledger.identity().clone();
    let inc = |id: u64| Incarnation {
        id,
        cell_start: t.a.handle.ledger.cell_seq().expect("head"),
        ticket_start: 0,
    };
    let mut later = now.clone();
    later.start(inc(0x5eed_0001));
    assert_eq!(
        city.child_linked(c(A), Some(&later)).expect("linked"),
        ChildLinked::Continues
    );
    // The county's earlier Hello again: refused, nothing changed.
    match city.child_linked(c(A), Some(&now)).expect("linked") {
        ChildLinked::Stale(why) => assert!(why.contains("already saw"), "{why}"),
        other => panic!("a superseded incarnation was taken: {other:?}"),
    }
    assert_eq!(
        subtree(&city, c(A)),
        held,
        "nothing held of the county changed"
    );
    // A copy restored from before the later process: a new incarnation, replaced as before.
    let mut restored: StoreIdentity = now.clone();
    restored.start(inc(0x5eed_0002));
    restored.lineage.retain(|i| i.id != 0x5eed_0001);
    assert!(matches!(
        city.child_linked(c(A), Some(&restored)).expect("linked"),
        ChildLinked::Replaced(_) | ChildLinked::Continues
    ));
    t.stop().await;
}
