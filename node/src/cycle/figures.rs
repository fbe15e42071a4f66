//! Where a report's indicators come from, and the set of them one report needs.
//!
//! A [`Source`] answers "the indicators of these regions for this run of periods": a
//! [`LedgerSource`] reads a node's ledger (a data dir, or the running node itself in the
//! benchmark) through [`regions`](crate::regions) and its indicators cache; an
//! [`RpcSource`] asks a running node's `Report` over gRPC; a [`MemorySource`] derives them from cells built
//! by hand (tests). [`Figures`] is what one report fetched, looked up by (division, period).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jiff::civil::Date;

use super::CycleError;
use crate::division::{Code, Division, Registry};
use crate::ledger::Ledger;
use crate::period::Period;
use crate::regions::{self, Scope};
use crate::security::tls::ClientTls;
use crate::stats::{CellKey, Indicators, Stored};

/// Indicators of regions for runs of periods.
pub trait Source {
    /// The indicators of the regions of `scope` under `division` (`None`: the node's own)
    /// for every period from `first` to `last` (one kind): regions in code order, each with
    /// its periods in order.
    fn fetch(
        &mut self,
        division: Option<Code>,
        scope: Scope,
        first: Period,
        last: Period,
    ) -> Result<Vec<Arc<Indicators>>, CycleError>;

    /// The names of the divisions fetched so far (or more).
    fn names(&self) -> Arc<Registry>;
}

/// A node's ledger (its data dir, or the running node's own).
pub struct LedgerSource<'a> {
    ledger: &'a Ledger,
}

impl<'a> LedgerSource<'a> {
    /// Read `ledger`.
    pub fn new(ledger: &'a Ledger) -> Self {
        LedgerSource { ledger }
    }
}

impl Source for LedgerSource<'_> {
    fn fetch(
        &mut self,
        division: Option<Code>,
        scope: Scope,
        first: Period,
        last: Period,
    ) -> Result<Vec<Arc<Indicators>>, CycleError> {
        let division = division.unwrap_or(self.ledger.division());
        let members = regions::members(self.ledger, division, scope)?;
        let periods = regions::run(first, last)?;
        Ok(regions::report(self.ledger, &members, &periods)?)
    }

    fn names(&self) -> Arc<Registry> {
        self.ledger.registry()
    }
}

/// A running node's `Report` service (`bottomline report --addr`), asked once per run of
/// periods. It runs its own single-threaded Tokio runtime: use it outside async code (in a
/// test, from `spawn_blocking`).
pub struct RpcSource {
    rt: tokio::runtime::Runtime,
    addr: String,
    tls: Option<ClientTls>,
    names: Registry,
}

impl RpcSource {
    /// A source asking the node at `addr` (`https://host:port`; `http://` for an insecure
    /// node) as the holder of `tls`.
    pub fn new(addr: String, tls: Option<ClientTls>) -> Result<RpcSource, CycleError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CycleError::Source(e.to_string()))?;
        Ok(RpcSource {
            rt,
            addr,
            tls,
            names: Registry::new(),
        })
    }
}

impl Source for RpcSource {
    fn fetch(
        &mut self,
        division: Option<Code>,
        scope: Scope,
        first: Period,
        last: Period,
    ) -> Result<Vec<Arc<Indicators>>, CycleError> {
        let q = crate::rpc::ReportQuery {
            division,
            scope,
            period: first,
            until: (last != first).then_some(last),
            each: None,
        };
        let (entries, names) = self
            .rt
            .block_on(crate::rpc::fetch_report(&self.addr, self.tls.as_ref(), &q))
            .map_err(|e| CycleError::Source(format!("{}: {e}", self.addr)))?;
        for d in names.iter() {
            self.names.insert(d.clone());
        }
        Ok(entries.into_iter().map(Arc::new).collect())
    }

    fn names(&self) -> Arc<Registry> {
        Arc::new(self.names.clone())
    }
}

/// Cells held in memory (built by hand in tests), indicators derived by
/// [`stats::indicators`](crate::stats::indicators) as a node derives them.
#[derive(Clone, Debug)]
pub struct MemorySource {
    /// The node's own division.
    pub home: Code,
    /// The cells.
    pub cells: BTreeMap<CellKey, i64>,
    /// The divisions (a report's regions are the registered ones).
    pub names: Arc<Registry>,
}

impl MemorySource {
    /// A node of `home` knowing `divisions`, with no cells.
    pub fn new(home: Code, divisions: &[(&str, &str)]) -> Result<MemorySource, String> {
        let mut names = Registry::new();
        for (code, name) in divisions {
            names.insert(Division {
                code: Code::parse(code)?,
                name: name.to_string(),
            });
        }
        Ok(MemorySource {
            home,
            cells: BTreeMap::new(),
            names: Arc::new(names),
        })
    }

    /// Count `value` of `indicator` (dimension code `dim`) on `date` at `division`, in every
    /// period containing the date and at every ancestor up to the node, as a record or a
    /// ticket event would be counted.
    pub fn add(&mut self, division: Code, date: Date, indicator: Stored, dim: u8, value: i64) {
        for d in division.lineage(self.home) {
            for period in Period::all_containing(date) {
                *self
                    .cells
                    .entry(CellKey {
                        division: d,
                        period,
                        indicator,
                        dim,
                    })
                    .or_insert(0) += value;
            }
        }
    }
}

impl Source for MemorySource {
    fn fetch(
        &mut self,
        division: Option<Code>,
        scope: Scope,
        first: Period,
        last: Period,
    ) -> Result<Vec<Arc<Indicators>>, CycleError> {
        let division = division.unwrap_or(self.home);
        let members: Vec<Code> = match scope {
            Scope::Only => vec![division],
            Scope::Children => self.names.children(division).map(|d| d.code).collect(),
            Scope::Level(l) => self
                .names
                .subtree(division)
                .filter(|d| d.code.level() == l)
                .map(|d| d.code)
                .collect(),
        };
        let periods = regions::run(first, last)?;
        let mut out = Vec::with_capacity(members.len() * periods.len());
        for m in members {
            for p in &periods {
                out.push(Arc::new(
                    crate::stats::indicators(&self.cells, m, *p).map_err(CycleError::Source)?,
                ));
            }
        }
        Ok(out)
    }

    fn names(&self) -> Arc<Registry> {
        self.names.clone()
    }
}

/// The indicators one report fetched: the division's own and its regions'.
#[derive(Clone, Debug)]
pub struct Figures {
    /// The division the report is about.
    pub division: Code,
    /// The regions it ranks or lists, in code order.
    pub members: Vec<Code>,
    /// Names of the division and its regions.
    pub names: Arc<Registry>,
    entries: HashMap<(Code, Period), Arc<Indicators>>,
}

impl Figures {
    /// Fetch the division's own indicators for the runs `own` (at least one) and its
    /// regions' (`scope`) for the runs `regions`; each run is (first, last) of one kind.
    pub fn gather(
        src: &mut dyn Source,
        division: Option<Code>,
        scope: Scope,
        own: &[(Period, Period)],
        regions: &[(Period, Period)],
    ) -> Result<Figures, CycleError> {
        let mut entries = HashMap::new();
        let mut division = division;
        for (first, last) in own {
            for ind in src.fetch(division, Scope::Only, *first, *last)? {
                division = Some(ind.division);
                entries.insert((ind.division, ind.period), ind);
            }
        }
        let division = division.ok_or_else(|| {
            CycleError::Invalid("a report needs the division's own figures".into())
        })?;
        let mut members = std::collections::BTreeSet::new();
        for (first, last) in regions {
            for ind in src.fetch(Some(division), scope, *first, *last)? {
                members.insert(ind.division);
                entries.insert((ind.division, ind.period), ind);
            }
        }
        Ok(Figures {
            division,
            members: members.into_iter().collect(),
            names: src.names(),
            entries,
        })
    }

    /// The indicators of `division` for `period` (fetched before).
    pub fn get(&self, division: Code, period: Period) -> Result<&Indicators, CycleError> {
        self.entries
            .get(&(division, period))
            .map(|a| a.as_ref())
            .ok_or_else(|| {
                CycleError::Source(format!(
                    "no figures of {division} for {period} were fetched"
                ))
            })
    }

    /// The indicators of every region for `period`, in code order.
    pub fn regions_at(&self, period: Period) -> Result<Vec<&Indicators>, CycleError> {
        self.members.iter().map(|m| self.get(*m, period)).collect()
    }

    /// The name of `division` (its code when unknown).
    pub fn name(&self, division: Code) -> String {
        match self.names.get(division) {
            Some(d) if !d.name.is_empty() => d.name.clone(),
            _ => division.to_string(),
        }
    }
}
