//! Inventories (清单交办): a `tickets.csv` file parsed and validated all or nothing into
//! tickets of one issuer, and the progress of an inventory per region down to "cleared to
//! zero" (清零).

use super::*;

/// One refused row of an inventory file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryRowError {
    /// 1-based line (the header is line 1).
    pub line: u64,
    /// The column, when the error is about one field.
    pub field: Option<&'static str>,
    /// Why.
    pub reason: String,
}

impl fmt::Display for InventoryRowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "line {}, field {field}: {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// Why an inventory file is refused (as a whole: nothing of it is issued).
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The file could not be read.
    #[error("tickets inventory: {0}")]
    Io(#[from] std::io::Error),
    /// The file as a whole is malformed (empty, bad header).
    #[error("tickets inventory: {0}; no ticket was issued from it")]
    File(String),
    /// Some rows are bad.
    #[error("{}", rows_message(.0))]
    Rows(Vec<InventoryRowError>),
}

fn rows_message(errors: &[InventoryRowError]) -> String {
    let mut s = format!(
        "tickets inventory: {} bad row(s); no ticket was issued from it",
        errors.len()
    );
    for e in errors {
        s.push_str(&format!("\n  {e}"));
    }
    s
}

/// Columns of `tickets.csv`: required, then optional.
pub const INVENTORY_COLUMNS: [&str; 8] = [
    "id",
    "target",
    "category",
    "source",
    "severity",
    "deadline",
    "description",
    "household_code",
];
const REQUIRED_COLUMNS: usize = 7;

/// Parse and validate an inventory (`tickets.csv`) issued by `issuer`: UTF-8 (a BOM is
/// tolerated), one header line, columns by name in any order; an unknown, duplicate or missing
/// required column refuses the file; every row is parsed and validated ([`Ticket::validate`])
/// and duplicate ids within the file are refused. All or nothing: any bad row refuses the file
/// with every row error (line, field, reason). Values are trimmed; an empty optional
/// `household_code` is absent. The tickets have no parent.
pub fn parse_inventory(issuer: Code, reader: impl Read) -> Result<Vec<Ticket>, InventoryError> {
    let mut bytes = Vec::new();
    let mut reader = reader;
    reader.read_to_end(&mut bytes)?;
    let cols = crate::import::Columns::new(
        &INVENTORY_COLUMNS[..REQUIRED_COLUMNS],
        &INVENTORY_COLUMNS[REQUIRED_COLUMNS..],
        "a tickets file".into(),
    );
    let mut rows = crate::import::CsvRows::new(bytes.as_slice(), bytes.as_slice(), &cols)
        .map_err(InventoryError::File)?;
    let mut tickets = Vec::new();
    let mut errors = Vec::new();
    let mut first_line: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(row) = rows.next_row(&cols) {
        let row = match row {
            Ok(row) => row,
            Err(b) => {
                errors.push(InventoryRowError {
                    line: b.line,
                    field: b
                        .field
                        .and_then(|f| INVENTORY_COLUMNS.iter().find(|c| **c == f).copied()),
                    reason: b.reason,
                });
                continue;
            }
        };
        let line = row.line;
        match parse_row(issuer, &row.values) {
            Err(errs) => errors.extend(errs.into_iter().map(|e| InventoryRowError {
                line,
                field: Some(e.field),
                reason: e.reason,
            })),
            Ok(t) => {
                if let Some(prev) = first_line.get(&t.id) {
                    errors.push(InventoryRowError {
                        line,
                        field: Some("id"),
                        reason: format!("id {:?} already appears on line {prev}", t.id),
                    });
                } else {
                    first_line.insert(t.id.clone(), line);
                    tickets.push(t);
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(InventoryError::Rows(errors));
    }
    if tickets.is_empty() {
        return Err(InventoryError::File(
            "the file has a header line but no tickets".into(),
        ));
    }
    Ok(tickets)
}

fn parse_row(issuer: Code, v: &[Option<String>]) -> Result<Ticket, Vec<FieldError>> {
    let mut errors = Vec::new();
    let get = |j: usize| v[j].as_deref();
    let req = |j: usize, errors: &mut Vec<FieldError>| {
        let r = get(j);
        if r.is_none() {
            errors.push(FieldError::new(INVENTORY_COLUMNS[j], "missing value"));
        }
        r
    };
    let id = req(0, &mut errors).map(str::to_string);
    let target = req(1, &mut errors).and_then(|s| {
        Code::parse(s)
            .map_err(|r| errors.push(FieldError::new("target", r)))
            .ok()
    });
    let category = req(2, &mut errors).map(str::to_string);
    let source = req(3, &mut errors).and_then(|s| {
        TicketSource::parse(s)
            .map_err(|r| errors.push(FieldError::new("source", r)))
            .ok()
    });
    let severity = req(4, &mut errors).and_then(|s| {
        Severity::parse(s)
            .map_err(|r| errors.push(FieldError::new("severity", r)))
            .ok()
    });
    let deadline = req(5, &mut errors).and_then(|s| {
        parse_date(s)
            .map_err(|r| errors.push(FieldError::new("deadline", r)))
            .ok()
    });
    let description = req(6, &mut errors).map(str::to_string);
    let household_code = get(7).map(str::to_string);
    let (
        Some(id),
        Some(target),
        Some(category),
        Some(source),
        Some(severity),
        Some(deadline),
        Some(description),
    ) = (
        id,
        target,
        category,
        source,
        severity,
        deadline,
        description,
    )
    else {
        return Err(errors);
    };
    let t = Ticket {
        issuer,
        id,
        target,
        category,
        source,
        severity,
        deadline,
        description,
        household_code,
        parent: None,
        inventory: None,
        spot_check: None,
    };
    t.validate()?;
    Ok(t)
}

/// What progress counts of one ticket (a ticket index row holds exactly this).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressItem {
    /// The ticket's target.
    pub target: Code,
    /// Its state (derived, for a split ticket).
    pub state: State,
    /// Its deadline.
    pub deadline: Date,
}

impl ProgressItem {
    /// Overdue on `today` (as [`TicketState::overdue`]).
    pub fn overdue(&self, today: Date) -> bool {
        self.state.is_unrectified() && self.deadline < today
    }
}

impl From<&TicketState> for ProgressItem {
    fn from(s: &TicketState) -> Self {
        ProgressItem {
            target: s.ticket.target,
            state: s.state,
            deadline: s.ticket.deadline,
        }
    }
}

/// Progress of a set of tickets in one region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionProgress {
    /// The region.
    pub division: Code,
    /// Tickets targeting the region's subtree.
    pub issued: u64,
    /// Not closed.
    pub open: u64,
    /// Rectified, awaiting verification.
    pub rectified: u64,
    /// Closed.
    pub closed: u64,
    /// Overdue today.
    pub overdue: u64,
}

impl RegionProgress {
    fn new(division: Code) -> Self {
        RegionProgress {
            division,
            issued: 0,
            open: 0,
            rectified: 0,
            closed: 0,
            overdue: 0,
        }
    }

    fn add(&mut self, s: &ProgressItem, today: Date) {
        self.issued += 1;
        match s.state {
            State::Closed => self.closed += 1,
            State::Rectified => self.rectified += 1,
            _ => {}
        }
        if s.state != State::Closed {
            self.open += 1;
        }
        if s.overdue(today) {
            self.overdue += 1;
        }
    }

    /// Cleared to zero (清零): no open ticket left.
    pub fn cleared_to_zero(&self) -> bool {
        self.open == 0
    }
}

/// Progress of an inventory seen from one division: in total and per child region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryProgress {
    /// The division looking.
    pub node: Code,
    /// All tickets in `node`'s subtree.
    pub total: RegionProgress,
    /// Per direct child of `node` (plus `node` itself for tickets targeting it), in code
    /// order; only regions that have tickets are listed.
    pub regions: Vec<RegionProgress>,
}

/// The progress of an inventory's tickets (their states) as seen from `node` on `today`:
/// tickets targeting outside `node`'s subtree are left out; each remaining ticket counts in
/// the total and in the direct child of `node` that contains its target (or in `node`'s own
/// row when it targets `node`).
pub fn inventory_progress<T: Into<ProgressItem>>(
    node: Code,
    states: impl IntoIterator<Item = T>,
    today: Date,
) -> InventoryProgress {
    let mut total = RegionProgress::new(node);
    let mut regions: BTreeMap<Code, RegionProgress> = BTreeMap::new();
    for s in states {
        let s: ProgressItem = s.into();
        let target = s.target;
        if !node.contains(target) {
            continue;
        }
        let region = target
            .lineage(node)
            .find(|c| c.parent() == Some(node))
            .unwrap_or(node);
        total.add(&s, today);
        regions
            .entry(region)
            .or_insert_with(|| RegionProgress::new(region))
            .add(&s, today);
    }
    InventoryProgress {
        node,
        total,
        regions: regions.into_values().collect(),
    }
}
