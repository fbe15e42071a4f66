//! Writes the seed corpus of every fuzz target from a generated county: small slices of its
//! interchange files (CSV, CSV with a BOM and CRLF line ends, JSON lines), a ticket
//! inventory, ticket events through a whole lifecycle (a split, a spot check), the envelopes
//! of a link, and the store's values (blocks and keys of the county's cells, change-log
//! groups, identities, stored records and ticket summaries).
//!
//! ```text
//! bottomline gen --seed 1 --county 610102 --households 300 --end 2026-11-20 --out /tmp/g
//! cargo run --example seeds -- /tmp/g corpus-seeds   # from node/fuzz
//! ```
//!
//! The committed corpus (`corpus/`) is these seeds plus what fuzzing found, minimised with
//! `cargo fuzz cmin`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bottomline::cells::{self, Block};
use bottomline::division::Code;
use bottomline::domain::Record;
use bottomline::ledger::{encode_record, CellValue, Logged};
use bottomline::lineage::{ChildStore, Incarnation, StoreIdentity};
use bottomline::rpc::{cell_to_pb, identity_to_pb};
use bottomline::security::identity::{Identity, Role};
use bottomline::security::pki::{IssueOptions, Pki};
use bottomline::security::sign::{leaf, Seal};
use bottomline::spotcheck::{Scope, SpotCheckTask};
use bottomline::stats::CellKey;
use bottomline::tickets::codec::{self, Sealed};
use bottomline::tickets::{Event, EventId, EventKind, Severity, Ticket, TicketKey, TicketSource};
use bottomline_proto::v1 as pb;
use pb::envelope::Payload;
use prost::Message;

struct Out(PathBuf);

impl Out {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.0.join(target);
        fs::create_dir_all(&dir).expect("corpus dir");
        fs::write(dir.join(name), bytes).expect("corpus file");
    }
}

fn c(s: &str) -> Code {
    Code::parse(s).expect("a code")
}

/// Lines `from..to` of a file after its header, with the header.
fn slice(text: &str, from: usize, to: usize) -> String {
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().unwrap_or_default());
    for l in lines.skip(from).take(to - from) {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// A CSV slice as JSON lines (numbers and flags as JSON numbers where they look like ones,
/// empty values left out or null).
fn jsonl(csv: &str) -> String {
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    let names: Vec<String> = r
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    let mut out = String::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.expect("a record");
        let mut obj = serde_json::Map::new();
        for (n, v) in names.iter().zip(rec.iter()) {
            let value = if v.is_empty() {
                if i % 2 == 0 {
                    continue;
                }
                serde_json::Value::Null
            } else if (n == "members" || n == "department" || n == "alleviated")
                && v.parse::<u64>().is_ok()
            {
                serde_json::Value::Number(v.parse::<u64>().expect("a number").into())
            } else {
                v.into()
            };
            obj.insert(n.clone(), value);
        }
        out.push_str(&serde_json::to_string(&obj).expect("JSON"));
        out.push('\n');
    }
    out
}

fn ev(origin: &str, seq: u64, ticket: &TicketKey, lamport: u64, kind: EventKind) -> Event {
    Event {
        id: EventId {
            origin: c(origin),
            seq,
        },
        ticket: ticket.clone(),
        lamport,
        at_unix_ms: 1_764_000_000_000 + lamport as i64 * 86_400_000,
        actor: c(origin),
        kind,
    }
}

fn ticket(issuer: &str, id: &str, target: &str) -> Ticket {
    Ticket {
        issuer: c(issuer),
        id: id.into(),
        target: c(target),
        category: "政策落实".into(),
        source: TicketSource::Inspection,
        severity: Severity::High,
        deadline: jiff::civil::date(2026, 12, 31),
        description: "监测对象未及时识别".into(),
        household_code: None,
        parent: None,
        inventory: Some("2026-督查-1".into()),
        spot_check: None,
    }
}

/// The events of a few tickets through their lifecycles.
fn events() -> Vec<Event> {
    let t1 = ticket("6101", "T-1", "610102");
    let k1 = t1.key();
    let mut t2 = ticket("61", "S-1", "6101");
    t2.household_code = Some("6101020010050001".into());
    let k2 = t2.key();
    let mut sub = ticket("6101", "61/S-1.610102", "610102");
    sub.parent = Some(k2.clone());
    let ks = sub.key();
    let mut sc = ticket("610102", "SC-2026-W47-610102", "610102001001");
    sc.source = TicketSource::SpotCheck;
    sc.inventory = Some("spotcheck-2026-W47-county".into());
    sc.spot_check = Some(Box::new(SpotCheckTask {
        week: "2026-W47".into(),
        scope: Scope::County,
        seed: "5d".repeat(32),
    }));
    let kc = sc.key();
    vec![
        ev("6101", 1, &k1, 1, EventKind::Issued(t1)),
        ev(
            "610102",
            1,
            &k1,
            2,
            EventKind::Delivered { at: c("610102") },
        ),
        ev("610102", 2, &k1, 3, EventKind::Accepted),
        ev("610102", 3, &k1, 4, EventKind::Started),
        ev("61", 1, &k1, 4, EventKind::Supervise { on: true }),
        ev(
            "610102",
            4,
            &k1,
            5,
            EventKind::Rectified {
                note: "已整改".into(),
            },
        ),
        ev(
            "6101",
            2,
            &k1,
            6,
            EventKind::Returned {
                reason: "材料不全".into(),
            },
        ),
        ev(
            "610102",
            5,
            &k1,
            7,
            EventKind::Rectified {
                note: "已补充".into(),
            },
        ),
        ev("6101", 3, &k1, 8, EventKind::Verified),
        ev("61", 2, &k1, 9, EventKind::Supervise { on: false }),
        ev("61", 3, &k2, 1, EventKind::Issued(t2)),
        ev("6101", 4, &k2, 2, EventKind::Delivered { at: c("6101") }),
        ev("6101", 5, &k2, 3, EventKind::Accepted),
        ev(
            "6101",
            6,
            &k2,
            4,
            EventKind::Split {
                children: vec![ks.clone()],
            },
        ),
        ev("6101", 7, &ks, 4, EventKind::Issued(sub)),
        ev(
            "610102",
            6,
            &ks,
            5,
            EventKind::Delivered { at: c("610102") },
        ),
        ev("610102", 7, &ks, 6, EventKind::Accepted),
        ev(
            "610102",
            8,
            &ks,
            7,
            EventKind::Rectified {
                note: "done".into(),
            },
        ),
        ev("610102", 9, &kc, 1, EventKind::Issued(sc)),
        ev(
            "610102",
            10,
            &kc,
            2,
            EventKind::Checked {
                findings: true,
                note: "问题2处".into(),
            },
        ),
    ]
}

/// Events sealed in commits of two (a Merkle path each; the signature is not a real one).
fn sealed(events: &[Event]) -> Vec<Sealed> {
    let mut out = Vec::new();
    for chunk in events.chunks(2) {
        let bodies: Vec<Vec<u8>> = chunk.iter().map(codec::encode_body).collect();
        for (i, (e, body)) in chunk.iter().zip(&bodies).enumerate() {
            let path = match chunk.len() {
                2 => vec![leaf(&bodies[1 - i])],
                _ => vec![],
            };
            out.push(Sealed {
                event: e.clone(),
                body: body.clone(),
                seal: Some(Seal {
                    signer: [7; 32],
                    signature: vec![0x30, 0x44, 2, 0x20, 1, 2, 3],
                    index: i as u32,
                    count: chunk.len() as u32,
                    path,
                }),
            });
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (gen, out) = match &args[..] {
        [_, gen, out] => (PathBuf::from(gen), Out(PathBuf::from(out))),
        _ => {
            eprintln!("usage: seeds GEN_DIR OUT_DIR");
            std::process::exit(2);
        }
    };
    let county = gen.join("610102");
    let end = jiff::civil::date(2026, 11, 20);
    bottomline::gen::department::department_files(&county, 1, end).expect("department files");
    let read = |p: &Path| fs::read_to_string(p).expect("a generated file");

    // Importers.
    let mut records: Vec<Record> = Vec::new();
    let departments = bottomline::warning::DeptKind::ALL
        .iter()
        .map(|k| k.as_str());
    for name in bottomline::import::FILE_ORDER
        .into_iter()
        .chain(departments)
    {
        let text = read(&county.join(format!("{name}.csv")));
        let n = text.lines().count().saturating_sub(1);
        let a = slice(&text, 0, 4.min(n));
        let b = slice(&text, n.saturating_sub(3), n);
        out.put("import_csv", &format!("{name}.csv"), a.as_bytes());
        let crlf = format!("\u{feff}{}", b.replace('\n', "\r\n"));
        out.put(
            "import_csv",
            &format!("{name}-bom-crlf.csv"),
            crlf.as_bytes(),
        );
        out.put(
            "import_jsonl",
            &format!("{name}.jsonl"),
            jsonl(&a).as_bytes(),
        );
        out.put(
            "import_jsonl",
            &format!("{name}-2.jsonl"),
            jsonl(&b).as_bytes(),
        );
        if let Some(bottomline::import::FileKind::Records(kind)) =
            bottomline::import::FileKind::parse(name)
        {
            records.extend(
                bottomline::import::parse_records(&county.join(format!("{name}.csv")), kind)
                    .expect("generated records parse"),
            );
        }
    }
    // Reordered columns, a quoted value with a line break, a refused row.
    out.put(
        "import_csv",
        "measures-reordered.csv",
        b"amount,date,type,household_code,id\n\"4,100.00\",2025-06-25,employment,6101020010050001,\"M\n1\"\n12.5,2025-07-01,industry,6101020010050001,M2\n",
    );

    // Department rows the default warning rules fire on (a year's medical costs past
    // 10 000 yuan, an uncompensated accident, a job loss, an income below the line).
    out.put(
        "import_csv",
        "medical-fires.csv",
        b"id,household_code,date,total,reimbursed,out_of_pocket\n\
          M1,6101020010010001,2026-01-10,9000,2000,7000\n\
          M2,6101020010010001,2026-06-01,8000,3000,5000\n\
          M3,6101020010010001,2027-06-02,8000,3000,5000\n",
    );
    out.put(
        "import_jsonl",
        "department-fires.jsonl",
        b"{\"id\":\"A1\",\"household_code\":\"6101020010010001\",\"date\":\"2026-03-01\",\"kind\":\"traffic\",\"loss\":\"50000\",\"compensation\":\"1000\"}\n\
          {\"id\":\"L1\",\"household_code\":\"6101020010010001\",\"date\":\"2026-03-02\",\"change\":\"job_loss\",\"persons\":2}\n\
          {\"id\":\"I1\",\"household_code\":\"6101020010010001\",\"date\":\"2026-03-03\",\"income\":\"1000.50\"}\n",
    );

    // The inventory.
    let header = "id,target,category,source,severity,deadline,description,household_code";
    out.put(
        "inventory",
        "tickets.csv",
        format!(
            "{header}\nA-1,610102,housing,inspection,high,2026-12-01,roof leaks,\n\
             A-2,6101,water,self_found,low,2026-12-02,\"water, again\",6101020010050001\n"
        )
        .as_bytes(),
    );
    out.put(
        "inventory",
        "tickets-bom-crlf.csv",
        "\u{feff}description,deadline,severity,source,category,target,id\r\nroof,2026-04-01,medium,spot_check,住房,610102,B-1\r\n"
            .as_bytes(),
    );
    out.put(
        "inventory",
        "tickets-bad.csv",
        format!("{header}\nA,610102,c,inspection,urgent,2026-04-31,d,\nA,61,c,assessment,high,2026-04-01,,x\n")
            .as_bytes(),
    );

    // Ticket events.
    let evs = events();
    let seals = sealed(&evs);
    for (i, s) in seals.iter().enumerate() {
        out.put("ticket_event", &format!("body-{i:02}"), &s.body);
        if i % 3 == 0 {
            out.put(
                "ticket_event",
                &format!("stored-{i:02}"),
                &codec::encode_stored(&s.body, s.seal.as_ref()),
            );
        }
    }
    out.put(
        "ticket_event",
        "stored-unsealed",
        &codec::encode_stored(&seals[1].body, None),
    );
    let batch = |seals: &[Sealed]| pb::TicketBatch {
        events: seals
            .iter()
            .map(|s| codec::to_pb(&s.body, s.seal.as_ref()))
            .collect(),
        upto: 20,
        certificates: vec![vec![0x30, 0x82, 1, 0]],
        incarnation: 0x1234_5678_9abc_def0,
    };
    out.put(
        "ticket_batch",
        "lifecycle",
        &batch(&seals[..10]).encode_to_vec(),
    );
    out.put(
        "ticket_batch",
        "split",
        &batch(&seals[10..18]).encode_to_vec(),
    );
    out.put(
        "ticket_batch",
        "spot-check",
        &batch(&seals[18..]).encode_to_vec(),
    );

    // Cells of the county: blocks, keys, a link's batches.
    let households: BTreeMap<String, _> = records
        .iter()
        .filter_map(|r| match r {
            Record::Household(h) => Some((h.household_code.clone(), h.clone())),
            _ => None,
        })
        .collect();
    let mut deltas: BTreeMap<CellKey, i64> = BTreeMap::new();
    for r in &records {
        bottomline::stats::contributions(
            r,
            households.get(r.household_code()),
            c("610102"),
            &mut |k, v| *deltas.entry(k).or_default() += v,
        );
    }
    let groups = cells::group(deltas.iter().map(|(k, v)| (*k, *v)));
    let mut seq = 0;
    let mut log = Vec::new();
    for (i, ((division, period), ds)) in groups.iter().enumerate() {
        let mut b = Block::default();
        seq += 1;
        for (ind, dim, d) in ds {
            b.add(*ind, *dim, *d, seq).expect("no overflow");
        }
        log.push((seq, cells::block_key(*division, *period)));
        if i % 97 == 0 {
            out.put("store_values", &format!("block-{i}"), &b.encode());
            out.put(
                "store_values",
                &format!("block-key-{i}"),
                &cells::block_key(*division, *period),
            );
        }
    }
    for (i, k) in deltas.keys().enumerate().filter(|(i, _)| i % 211 == 0) {
        out.put("store_values", &format!("cell-key-{i}"), &k.encode());
    }
    let mut group = seq.to_be_bytes().to_vec();
    group.push(1);
    for (s, k) in log.iter().rev().take(4).rev() {
        group.extend_from_slice(&s.to_be_bytes());
        group.extend_from_slice(k);
    }
    out.put("store_values", "log-group", &group);
    let mut one = log[0].0.to_be_bytes().to_vec();
    one.extend_from_slice(&log[0].1);
    out.put("store_values", "log-one", &one);
    let mut id = StoreIdentity::new(*b"0123456789abcdef");
    for n in 1..4 {
        id.start(Incarnation {
            id: 0x1111 * n,
            cell_start: 100 * n,
            ticket_start: 10 * n,
        });
    }
    out.put("store_values", "identity", &id.encode());
    let child = ChildStore {
        store_id: id.store_id,
        incarnation: 0x2222,
        generation: 3,
        superseded: vec![0x1111],
    };
    out.put("store_values", "child-store", &child.encode());
    for (i, r) in records.iter().enumerate() {
        if i % 9 == 0 {
            out.put("store_values", &format!("record-{i}"), &encode_record(r));
        }
    }
    let mut states = bottomline::tickets::fold_all(&evs);
    bottomline::tickets::resolve_splits(&mut states);
    for (i, s) in states.values().enumerate() {
        let mut v = vec![1];
        v.extend(serde_json::to_vec(s).expect("JSON"));
        out.put("store_values", &format!("ticket-summary-{i}"), &v);
    }
    let logged = Logged {
        pos: 0,
        from: Some(c("6101")),
        target: c("610102"),
        top: c("6101"),
        event: evs[2].clone(),
    };
    let mut v = vec![1];
    v.extend(serde_json::to_vec(&logged).expect("JSON"));
    out.put("store_values", "ticket-log-v1", &v);

    // Envelopes.
    let env = |seq, payload| {
        pb::Envelope {
            origin: "610102".into(),
            seq,
            payload: Some(payload),
            signature: vec![0x30, 0x45, 2, 0x21, 0],
        }
        .encode_to_vec()
    };
    let cell_batch: Vec<pb::Cell> = deltas
        .iter()
        .filter(|(k, _)| k.division.level() <= bottomline::division::Level::County)
        .take(40)
        .map(|(k, v)| {
            cell_to_pb(
                k,
                &CellValue {
                    value: *v,
                    seq: 7,
                    version: 7,
                },
            )
        })
        .collect();
    out.put(
        "envelope",
        "cells",
        &env(
            7,
            Payload::Cells(pb::CellBatch {
                cells: cell_batch,
                floor: 3,
                incarnation: 0x3333,
            }),
        ),
    );
    out.put(
        "envelope",
        "hello",
        &env(
            0,
            Payload::Hello(pb::Hello {
                division: "610102".into(),
                head: 300,
                software: "bottomline 0.1.0".into(),
                backlog: 12,
                ticket_backlog: 2,
                certificate: vec![0x30, 0x82, 1, 0],
                sent_unix_ms: 1_764_000_000_000,
                identity: Some(identity_to_pb(&id)),
            }),
        ),
    );
    out.put(
        "envelope",
        "welcome",
        &env(
            0,
            Payload::Welcome(pb::Welcome {
                division: "6101".into(),
                acked: 3,
                down_acked: 4,
                resume_pos: 5,
                ticket_acked: 6,
                origin_seq: 7,
                ticket_clock: 8,
                reset: String::new(),
            }),
        ),
    );
    out.put(
        "envelope",
        "ack",
        &env(
            0,
            Payload::Ack(pb::Ack {
                origin: "610102".into(),
                seq: 9,
            }),
        ),
    );
    out.put(
        "envelope",
        "ticket-ack",
        &env(0, Payload::TicketAck(pb::TicketAck { upto: 5 })),
    );
    out.put(
        "envelope",
        "tickets",
        &env(0, Payload::Tickets(batch(&seals[..6]))),
    );
    // Certificates of a CA made for the seeds: a node's, an operator's, a relay's, the CA's.
    let pki_dir = out.0.join("pki.tmp");
    let mut pki = Pki::init(&pki_dir, "fuzz seeds").expect("a CA");
    for (i, identity) in [
        Identity::Node {
            division: c("610102"),
        },
        Identity::Operator {
            name: "zhang.san".into(),
            division: c("6101"),
            role: Role::Operator,
        },
        Identity::Relay { name: "r1".into() },
    ]
    .iter()
    .enumerate()
    {
        let issued = pki
            .issue(identity, &IssueOptions::default())
            .expect("a certificate");
        let pem = fs::read(&issued.cert_path).expect("the certificate file");
        for (j, p) in x509_parser::pem::Pem::iter_from_buffer(&pem).enumerate() {
            if i == 0 || j == 0 {
                out.put(
                    "certificate",
                    &format!("cert-{i}-{j}.der"),
                    &p.expect("PEM").contents,
                );
            }
        }
        out.put(
            "certificate",
            &format!("uris-{i}"),
            identity.uris().join("\n").as_bytes(),
        );
    }
    drop(pki);
    fs::remove_dir_all(&pki_dir).expect("remove the seeds' CA");
    eprintln!("seeds written to {}", out.0.display());
}
