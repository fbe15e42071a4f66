//! Rectification tickets (问题整改): the pure domain — tickets, their events, the state
//! machine, the deterministic fold, statistics flows, inventories (清单交办) and their
//! progress. No storage, no network: `ledger`/`rpc` persist and ship [`Event`]s; everything
//! here is a function of the events.
//!
//! # Model
//!
//! A [`Ticket`] is issued by a division (its node) to a division strictly below it. Its
//! lifecycle is a set of immutable [`Event`]s, each with a globally unique [`EventId`] (the
//! node that created it and that node's own counter) and a Lamport timestamp:
//!
//! ```text
//!  issued ─deliver─► delivered ─accept─► accepted ─start─► rectifying ─rectify─► rectified ─verify─► closed
//!                                           │                  ▲                     │
//!                                           └──split──► (rectifying, via sub-tickets) └──return──┘
//! ```
//!
//! - deliver, accept, start, rectify, split: only the **target** (`actor == target`);
//! - verify (= close, 销号) and return for rework: only the **issuer**;
//! - supervise on/off (督办): any division on the path from the issuer (inclusive) down to
//!   the target (exclusive); supervision flagged by X is lifted only by X or a division above X;
//! - every event's creating node must contain its actor (`origin.contains(actor)`): a node acts
//!   for its own division or for divisions below it that it serves (a county node for its
//!   villages). That the creating node *is* who it claims (its certificate) and that no deeper
//!   node serves the actor is the sync layer's job; this module trusts `origin`.
//!
//! [`check`] says whether one event is legal on a state, with an error naming the ticket, its
//! state and the actor. [`fold`] computes the state from a set of events.
//!
//! # Determinism
//!
//! [`fold`] sorts the events by `(lamport, origin, seq)` — a total order on distinct event
//! ids — breaking the (only theoretically possible) tie of two different events with one id
//! by their content, drops exact duplicates, and applies them in that order, recording every
//! event in the history as applied or ignored (with [`check`]'s reason). The result is a pure
//! function of the *set* of events, so any two nodes holding the same events, whatever order
//! or how many times they arrived, compute identical states, histories included. Concurrent
//! actions at two levels (the province flags supervision while the county rectifies, both
//! with the same Lamport time) are both applied, in the same order everywhere; when two
//! concurrent actions conflict (verify vs. supervise on the same rectified ticket) the total
//! order decides and the loser is recorded as ignored, again identically everywhere. Nodes
//! creating events should use [`TicketState::next_lamport`] so that an event is ordered
//! after everything its creator had seen.
//!
//! Dates for statistics are the China (UTC+8) dates of the events' `at_unix_ms`, made
//! monotone along the applied history (a skewed clock cannot close a ticket before it was
//! issued). A store keeps the events, not the states: the state is recomputed by folding.
//!
//! # Sub-tickets
//!
//! A target with child divisions may, once it has accepted a ticket, **split** it: the
//! `Split` event lists the keys of sub-tickets, which are ordinary tickets issued by the
//! splitting division to its direct children with `parent` = the split ticket. The split
//! ticket itself can no longer be started, rectified, verified or returned; its state is
//! **derived at read time** by [`resolve_splits`] (called by [`fold_all`]) from its
//! sub-tickets' states: closed when all sub-tickets are closed, rectified when all are
//! rectified or closed, rectifying otherwise (a missing or inconsistent sub-ticket counts as
//! open). Derivation instead of a generated "closed" event means no node has to decide when to
//! emit it, and the close date (the latest sub-ticket close date) is the same everywhere. The
//! sync layer must therefore carry a sub-ticket's events up to the split ticket's issuer.
//!
//! # Statistics
//!
//! A ticket counts for its **target** division (and, rolled up, every ancestor). The store
//! counts tickets that are not sub-tickets: a split ticket counts once, with its derived state,
//! so a 10 000-ticket inventory reads 10 000 issued however it is split (see
//! `ledger/ticket_log.rs`); `figures` counts whatever states it is given. Flows
//! ([`stat_flows`]): issued on the issue date, rectified on the date of the standing
//! rectification (a return for rework withdraws it), closed on the close date. Stocks
//! ([`stock_deltas`], or [`TicketState::open_at`] / [`TicketState::overdue_at`]): open =
//! issued and not closed; overdue = past the deadline and not rectified (see
//! [`TicketState::overdue`]). [`TicketFigures::clearance_rate`] = closed / issued, both
//! cumulative up to the end of the period.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::division::{Code, Level};
use crate::domain::{check_household_code, FieldError};
use crate::period::EARLIEST;

/// Longest ticket id, in characters.
pub const MAX_ID_CHARS: usize = 64;
/// Longest category, in characters.
pub const MAX_CATEGORY_CHARS: usize = 64;
/// Longest description, rectification note or return reason, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Most sub-tickets one split may create.
pub const MAX_SPLIT_CHILDREN: usize = 1000;

vocabulary!(
    /// Where the problem behind a ticket was found.
    TicketSource {
        /// Inspection (督查/巡查).
        Inspection = 1: "inspection",
        /// Spot check (抽查, e.g. the "double random" draw).
        SpotCheck = 2: "spot_check",
        /// Assessment (考核评估).
        Assessment = 3: "assessment",
        /// Feedback from a department.
        DepartmentFeedback = 4: "department_feedback",
        /// Found by the issuing level itself (自查).
        SelfFound = 5: "self_found",
    }
);

vocabulary!(
    /// How serious the problem is.
    Severity {
        /// Low.
        Low = 1: "low",
        /// Medium.
        Medium = 2: "medium",
        /// High.
        High = 3: "high",
    }
);

vocabulary!(
    /// The state of a ticket, in lifecycle order.
    State {
        /// Issued; the target's node has not stored it yet.
        Issued = 1: "issued",
        /// Stored by the target's node.
        Delivered = 2: "delivered",
        /// Accepted by the target.
        Accepted = 3: "accepted",
        /// Being rectified (also after a return for rework, and while split).
        Rectifying = 4: "rectifying",
        /// Rectified with a note, awaiting the issuer's verification.
        Rectified = 5: "rectified",
        /// Verified and closed by the issuer (销号).
        Closed = 6: "closed",
    }
);

impl State {
    /// True for the states in which the rectification is still owed (overdue can apply).
    pub fn is_unrectified(self) -> bool {
        !matches!(self, State::Rectified | State::Closed)
    }

    /// The state with its indefinite article, for messages ("an issued", "a rectified").
    fn with_article(self) -> String {
        let a = match self {
            State::Issued | State::Accepted => "an",
            _ => "a",
        };
        format!("{a} {self}")
    }
}

vocabulary!(
    /// Ticket flows counted per period (stored as cells by the statistics wiring).
    TicketFlow {
        /// Tickets issued (by issue date).
        Issued = 1: "tickets_issued",
        /// Tickets rectified (by the date of the standing rectification).
        Rectified = 2: "tickets_rectified",
        /// Tickets closed (by close date).
        Closed = 3: "tickets_closed",
    }
);

vocabulary!(
    /// Ticket stocks at the end of a day, derived from +1/−1 deltas.
    TicketStock {
        /// Issued and not closed.
        Open = 1: "tickets_open",
        /// Past the deadline and not rectified.
        Overdue = 2: "tickets_overdue",
    }
);

/// A division code for messages: the code, or "the national root" for the empty code.
fn div(c: Code) -> String {
    if c.is_root() {
        "the national root".to_string()
    } else {
        c.to_string()
    }
}

/// The China (UTC+8) date of a Unix time in milliseconds; `None` outside jiff's range.
pub fn china_date(at_unix_ms: i64) -> Option<Date> {
    let ts = jiff::Timestamp::from_millisecond(at_unix_ms).ok()?;
    let tz = jiff::tz::TimeZone::fixed(jiff::tz::Offset::constant(8));
    Some(ts.to_zoned(tz).date())
}

/// The globally unique key of a ticket: its issuer and an id unique per issuer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TicketKey {
    /// The issuing division.
    pub issuer: Code,
    /// Id, unique among the issuer's tickets.
    pub id: String,
}

impl TicketKey {
    /// Build a key.
    pub fn new(issuer: Code, id: impl Into<String>) -> TicketKey {
        TicketKey {
            issuer,
            id: id.into(),
        }
    }
}

impl fmt::Display for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.issuer, self.id)
    }
}

/// A rectification ticket as issued. Immutable: nothing in the lifecycle changes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ticket {
    /// The issuing division.
    pub issuer: Code,
    /// Id, unique per issuer (≤ [`MAX_ID_CHARS`] characters, no whitespace or control characters).
    pub id: String,
    /// The division that must rectify: strictly inside the issuer's subtree.
    pub target: Code,
    /// Free-text category (non-empty, ≤ [`MAX_CATEGORY_CHARS`] characters).
    pub category: String,
    /// Where the problem was found.
    pub source: TicketSource,
    /// Severity.
    pub severity: Severity,
    /// Rectification deadline (China date, inclusive: overdue from the next day).
    pub deadline: Date,
    /// What is wrong (non-empty, ≤ [`MAX_TEXT_CHARS`] characters).
    pub description: String,
    /// The household concerned, if any: its village must be in the target's subtree.
    pub household_code: Option<String>,
    /// For a sub-ticket: the split ticket it is part of.
    pub parent: Option<TicketKey>,
    /// The inventory (清单) it was issued with, if any: progress is followed per inventory
    /// (≤ [`MAX_ID_CHARS`] characters, no control characters). Sub-tickets inherit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<String>,
}

fn check_text(
    field: &'static str,
    v: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<()> {
    if v.trim().is_empty() {
        errors.push(FieldError::new(field, "missing value"));
        return None;
    }
    let n = v.chars().count();
    if n > max {
        errors.push(FieldError::new(
            field,
            format!("{n} characters; at most {max} are allowed"),
        ));
        return None;
    }
    Some(())
}

impl Ticket {
    /// The ticket's key.
    pub fn key(&self) -> TicketKey {
        TicketKey::new(self.issuer, self.id.clone())
    }

    /// Every rule that needs only the ticket; all violations, each naming its field.
    ///
    /// - `id`: non-empty, ≤ [`MAX_ID_CHARS`] characters, no whitespace or control characters;
    /// - `target`: strictly below the issuer (a level does not issue tickets to itself; a
    ///   problem it found itself is a `self_found` ticket to the division below that must act);
    /// - `category`, `description`: non-empty, bounded;
    /// - `deadline`: not before 2015-01-01 (it may be in the past: back-filled inventories);
    /// - `household_code`: a household code whose village is in the target's subtree, at any
    ///   target level;
    /// - `parent`: a sub-ticket targets a direct child of its issuer (the splitting division),
    ///   and the parent ticket was issued strictly above that division.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.id.is_empty() {
            errors.push(FieldError::new("id", "missing value"));
        } else if self.id.chars().count() > MAX_ID_CHARS {
            errors.push(FieldError::new(
                "id",
                format!("{:?} is longer than {MAX_ID_CHARS} characters", self.id),
            ));
        } else if self.id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            errors.push(FieldError::new(
                "id",
                format!("{:?} contains whitespace or control characters", self.id),
            ));
        }
        if self.target == self.issuer {
            errors.push(FieldError::new(
                "target",
                format!(
                    "{} is the issuer itself; a ticket goes to a division below the issuer",
                    div(self.target)
                ),
            ));
        } else if !self.issuer.contains(self.target) {
            errors.push(FieldError::new(
                "target",
                format!(
                    "division {} is not in the subtree of the issuer {}",
                    div(self.target),
                    div(self.issuer)
                ),
            ));
        }
        check_text("category", &self.category, MAX_CATEGORY_CHARS, &mut errors);
        check_text(
            "description",
            &self.description,
            MAX_TEXT_CHARS,
            &mut errors,
        );
        if self.deadline < EARLIEST {
            errors.push(FieldError::new(
                "deadline",
                format!("{} is before {EARLIEST}", self.deadline),
            ));
        }
        if let Some(h) = &self.household_code {
            match check_household_code("household_code", h, Code::ROOT) {
                Err(e) => errors.push(e),
                Ok(village) if !self.target.contains(village) => errors.push(FieldError::new(
                    "household_code",
                    format!(
                        "household {h} lives in village {village}, outside the target {}",
                        div(self.target)
                    ),
                )),
                Ok(_) => {}
            }
        }
        if let Some(inv) = &self.inventory {
            if inv.trim().is_empty()
                || inv.chars().count() > MAX_ID_CHARS
                || inv.chars().any(|c| c.is_control())
            {
                errors.push(FieldError::new(
                    "inventory",
                    format!(
                        "{inv:?}: an inventory name has 1 to {MAX_ID_CHARS} characters, no control characters"
                    ),
                ));
            }
        }
        if let Some(p) = &self.parent {
            if *p == self.key() {
                errors.push(FieldError::new(
                    "parent",
                    "a ticket cannot be its own parent",
                ));
            } else if self.target.parent() != Some(self.issuer) {
                errors.push(FieldError::new(
                    "target",
                    format!(
                        "a sub-ticket goes to a direct child of the splitting division {}, not to {}",
                        div(self.issuer),
                        div(self.target)
                    ),
                ));
            } else if p.issuer == self.issuer || !p.issuer.contains(self.issuer) {
                errors.push(FieldError::new(
                    "parent",
                    format!(
                        "parent ticket {p} was not issued above the splitting division {}",
                        div(self.issuer)
                    ),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// The globally unique id of an event: the node that created it and its per-node counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventId {
    /// The node (division) that created the event.
    pub origin: Code,
    /// That node's event counter.
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.origin, self.seq)
    }
}

/// What an event does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The issuer issues the ticket.
    Issued(Ticket),
    /// The target's node stored the ticket; `at` is that node (= the event's origin).
    Delivered {
        /// The node that stored it.
        at: Code,
    },
    /// The target accepts the ticket.
    Accepted,
    /// The target starts rectifying.
    Started,
    /// The target reports the rectification done.
    Rectified {
        /// What was done.
        note: String,
    },
    /// The issuer verifies the rectification and closes the ticket (销号).
    Verified,
    /// The issuer returns a rectified ticket for rework: back to rectifying.
    Returned {
        /// Why the rectification is not accepted.
        reason: String,
    },
    /// A division on the path flags (`on`) or lifts supervision (督办).
    Supervise {
        /// Flag or lift.
        on: bool,
    },
    /// The target splits an accepted ticket into sub-tickets for its child divisions.
    Split {
        /// The sub-tickets' keys (issued by the target, `parent` = this ticket).
        children: Vec<TicketKey>,
    },
}

impl EventKind {
    /// The action's verb and past participle, for messages.
    fn verbs(&self) -> (&'static str, &'static str) {
        match self {
            EventKind::Issued(_) => ("issue", "issued"),
            EventKind::Delivered { .. } => ("deliver", "delivered"),
            EventKind::Accepted => ("accept", "accepted"),
            EventKind::Started => ("start rectifying", "started"),
            EventKind::Rectified { .. } => ("rectify", "rectified"),
            EventKind::Verified => ("verify", "verified"),
            EventKind::Returned { .. } => ("return", "returned"),
            EventKind::Supervise { on: true } => ("flag supervision of", "supervised"),
            EventKind::Supervise { on: false } => ("lift supervision of", "unsupervised"),
            EventKind::Split { .. } => ("split", "split"),
        }
    }

    /// Short name of the action (`issue`, `deliver`, `accept`, …).
    pub fn action(&self) -> &'static str {
        match self {
            EventKind::Issued(_) => "issue",
            EventKind::Delivered { .. } => "deliver",
            EventKind::Accepted => "accept",
            EventKind::Started => "start",
            EventKind::Rectified { .. } => "rectify",
            EventKind::Verified => "verify",
            EventKind::Returned { .. } => "return",
            EventKind::Supervise { .. } => "supervise",
            EventKind::Split { .. } => "split",
        }
    }
}

/// One immutable ticket event.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Event {
    /// Globally unique id.
    pub id: EventId,
    /// The ticket it belongs to.
    pub ticket: TicketKey,
    /// Lamport time: greater than every event of the ticket its creator had seen.
    pub lamport: u64,
    /// Wall-clock time at the creator (milliseconds since 1970, UTC).
    pub at_unix_ms: i64,
    /// The division on whose behalf it was created (contained in `id.origin`).
    pub actor: Code,
    /// What it does.
    pub kind: EventKind,
}

impl Event {
    /// The fold order: Lamport time, then origin, then sequence.
    pub fn order_key(&self) -> (u64, Code, u64) {
        (self.lamport, self.id.origin, self.id.seq)
    }
}

/// Why an event is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The issued ticket breaks a rule of its own.
    #[error("ticket {key} is not valid: {}", join_fields(.errors))]
    Invalid {
        /// The ticket.
        key: TicketKey,
        /// Every violated rule.
        errors: Vec<FieldError>,
    },
    /// An action on a ticket whose issue is unknown here.
    #[error("ticket {key} has not been issued (or its issue has not arrived): cannot {action} it")]
    NotIssued {
        /// The ticket.
        key: TicketKey,
        /// The attempted action.
        action: &'static str,
    },
    /// A second issue of the same key.
    #[error("ticket {key} is already issued; ids are unique per issuer")]
    AlreadyIssued {
        /// The ticket.
        key: TicketKey,
    },
    /// The event names another ticket than the one it is applied to (or carries).
    #[error("event {event} is for ticket {event_ticket}, not {ticket}")]
    WrongTicket {
        /// The event.
        event: EventId,
        /// The ticket the event names.
        event_ticket: TicketKey,
        /// The ticket it was applied to (or the key of the ticket it carries).
        ticket: TicketKey,
    },
    /// The creating node does not contain the actor.
    #[error("event {event} was created by node {} on behalf of {}, which is outside that node's subtree", div(.event.origin), div(*.actor))]
    ForeignActor {
        /// The event.
        event: EventId,
        /// The claimed actor.
        actor: Code,
    },
    /// The event's time is not representable.
    #[error("event {event} has an impossible time ({at_unix_ms} ms since 1970)")]
    BadTime {
        /// The event.
        event: EventId,
        /// Its time.
        at_unix_ms: i64,
    },
    /// The actor may not take this action on this ticket.
    #[error("ticket {key}: {} may not {action} it: {rule}", div(*.actor))]
    NotAllowed {
        /// The ticket.
        key: TicketKey,
        /// Who tried.
        actor: Code,
        /// The attempted action (verb).
        action: &'static str,
        /// Who may.
        rule: String,
    },
    /// The action is not possible in the ticket's state.
    #[error("ticket {key} is {state}, not {expected}: only {} ticket can be {done}", .expected.with_article())]
    WrongState {
        /// The ticket.
        key: TicketKey,
        /// Its state.
        state: State,
        /// The state the action needs.
        expected: State,
        /// The action's past participle.
        done: &'static str,
    },
    /// The ticket is split: it moves through its sub-tickets.
    #[error("ticket {key} is split into sub-tickets: it cannot be {done} itself; it closes when all its sub-tickets close")]
    IsSplit {
        /// The ticket.
        key: TicketKey,
        /// The action's past participle.
        done: &'static str,
    },
    /// A required text (note, reason) is empty or too long.
    #[error("ticket {key}: {reason}")]
    Text {
        /// The ticket.
        key: TicketKey,
        /// What is wrong.
        reason: String,
    },
    /// A supervision flag that does not change anything or may not be lifted by the actor.
    #[error("ticket {key}: {reason}")]
    Supervision {
        /// The ticket.
        key: TicketKey,
        /// What is wrong.
        reason: String,
    },
    /// A split that breaks the split rules.
    #[error("ticket {key} cannot be split: {reason}")]
    BadSplit {
        /// The ticket.
        key: TicketKey,
        /// What is wrong.
        reason: String,
    },
}

fn join_fields(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether a history entry took effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryOutcome {
    /// Applied to the state.
    Applied,
    /// Refused by [`check`] at its place in the order; the state did not change.
    Ignored {
        /// [`check`]'s error message.
        reason: String,
    },
}

/// One event as seen in a ticket's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The event id.
    pub id: EventId,
    /// Its Lamport time.
    pub lamport: u64,
    /// Who acted.
    pub actor: Code,
    /// The creator's wall-clock time (ms since 1970).
    pub at_unix_ms: i64,
    /// What it did.
    pub kind: EventKind,
    /// Applied or ignored.
    pub outcome: EntryOutcome,
}

/// A state change on a China date (the state at the end of that day is the last one listed
/// for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// The date.
    pub on: Date,
    /// The state entered.
    pub state: State,
}

/// The state of a ticket: a deterministic function of its events ([`fold`]), and for a split
/// ticket of its sub-tickets' states ([`resolve_splits`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketState {
    /// The ticket as issued.
    pub ticket: Ticket,
    /// Current state.
    pub state: State,
    /// The division that flagged supervision, while it is flagged.
    pub supervised_by: Option<Code>,
    /// Sub-tickets, once split.
    pub split: Vec<TicketKey>,
    /// Note of the latest rectification.
    pub note: Option<String>,
    /// Reason of the latest return for rework.
    pub return_reason: Option<String>,
    /// How many times it was returned for rework.
    pub returns: u32,
    /// Issue date (China).
    pub issued_on: Date,
    /// Delivery date.
    pub delivered_on: Option<Date>,
    /// Date of the standing rectification (cleared by a return).
    pub rectified_on: Option<Date>,
    /// Close date.
    pub closed_on: Option<Date>,
    /// Every state change with its date, in order (the first is the issue).
    pub timeline: Vec<Transition>,
    /// Every event of the ticket in fold order, applied or ignored.
    pub history: Vec<HistoryEntry>,
    /// The greatest Lamport time among the ticket's events.
    pub max_lamport: u64,
    /// Length of `timeline` from the ticket's own events (the rest is derived from
    /// sub-tickets by [`resolve_splits`]).
    own_transitions: usize,
}

impl TicketState {
    /// The ticket's key.
    pub fn key(&self) -> TicketKey {
        self.ticket.key()
    }

    /// True while supervision is flagged.
    pub fn supervised(&self) -> bool {
        self.supervised_by.is_some()
    }

    /// True once split into sub-tickets.
    pub fn is_split(&self) -> bool {
        !self.split.is_empty()
    }

    /// The Lamport time a node should give the next event it creates for this ticket, from
    /// the folded state. A node that also holds events which do not fold into this state (an
    /// event that arrived before the ticket's issue) must use [`next_lamport`] over every
    /// event it holds instead.
    pub fn next_lamport(&self) -> u64 {
        self.max_lamport + 1
    }

    /// Overdue on `today`: the deadline has passed (`deadline < today`) and the ticket is not
    /// rectified. A rectified ticket awaiting verification is **not** overdue (the
    /// rectification is done; verification is the issuer's part); returned for rework past
    /// the deadline, it is overdue again. Closed tickets are never overdue.
    pub fn overdue(&self, today: Date) -> bool {
        self.state.is_unrectified() && self.ticket.deadline < today
    }

    /// The state at the end of `day`, or `None` before the issue date.
    pub fn state_on(&self, day: Date) -> Option<State> {
        self.timeline
            .iter()
            .take_while(|t| t.on <= day)
            .last()
            .map(|t| t.state)
    }

    /// Open (issued, not closed) at the end of `day`.
    pub fn open_at(&self, day: Date) -> bool {
        self.state_on(day).is_some_and(|s| s != State::Closed)
    }

    /// Overdue at the end of `day` (as [`Self::overdue`] with the state of that day).
    pub fn overdue_at(&self, day: Date) -> bool {
        self.ticket.deadline < day && self.state_on(day).is_some_and(State::is_unrectified)
    }

    /// The date of the last applied event (or the issue date).
    fn last_date(&self) -> Date {
        self.timeline.last().map_or(self.issued_on, |t| t.on)
    }

    fn enter(&mut self, on: Date, state: State) {
        self.state = state;
        self.timeline.push(Transition { on, state });
    }
}

fn target_only(s: &TicketState, e: &Event, action: &'static str) -> Result<(), TicketError> {
    if e.actor == s.ticket.target {
        Ok(())
    } else {
        Err(TicketError::NotAllowed {
            key: s.key(),
            actor: e.actor,
            action,
            rule: format!("only its target {} can", div(s.ticket.target)),
        })
    }
}

fn issuer_only(s: &TicketState, e: &Event, action: &'static str) -> Result<(), TicketError> {
    if e.actor == s.ticket.issuer {
        Ok(())
    } else {
        Err(TicketError::NotAllowed {
            key: s.key(),
            actor: e.actor,
            action,
            rule: format!("only its issuer {} can", div(s.ticket.issuer)),
        })
    }
}

fn in_state(s: &TicketState, expected: State, done: &'static str) -> Result<(), TicketError> {
    if s.state == expected {
        Ok(())
    } else {
        Err(TicketError::WrongState {
            key: s.key(),
            state: s.state,
            expected,
            done,
        })
    }
}

fn not_split(s: &TicketState, done: &'static str) -> Result<(), TicketError> {
    if s.is_split() {
        Err(TicketError::IsSplit { key: s.key(), done })
    } else {
        Ok(())
    }
}

fn text(s: &TicketState, what: &str, v: &str) -> Result<(), TicketError> {
    let reason = if v.trim().is_empty() {
        format!("the {what} is empty")
    } else if v.chars().count() > MAX_TEXT_CHARS {
        format!("the {what} is longer than {MAX_TEXT_CHARS} characters")
    } else {
        return Ok(());
    };
    Err(TicketError::Text {
        key: s.key(),
        reason,
    })
}

/// Whether `event` is legal on `state` (`None`: the ticket is not known yet).
///
/// Rules, in the order they are checked:
/// - the event's creating node contains its actor, and its time is representable;
/// - an `Issued` event needs no state, names the key of the ticket it carries, is by the
///   ticket's issuer and carries a valid ticket ([`Ticket::validate`]); any other event needs
///   the state of its own ticket;
/// - `Delivered { at }`: by the target, `at` = the creating node, from `issued`;
/// - `Accepted`: by the target, from `delivered`;
/// - `Started`: by the target, from `accepted`, not split;
/// - `Rectified { note }`: by the target, from `rectifying`, not split, a non-empty note;
/// - `Verified`: by the issuer, from `rectified`;
/// - `Returned { reason }`: by the issuer, from `rectified`, a non-empty reason; goes back to
///   `rectifying` (the target has accepted already and reworks directly);
/// - `Supervise { on }`: by a division on the path from the issuer (inclusive) to the target
///   (exclusive), not on a closed ticket; flagging needs it unflagged, lifting needs it flagged
///   and an actor at or above the division that flagged it;
/// - `Split { children }`: by the target, from `accepted`, once; the target must have child
///   divisions (not a village); 1..=[`MAX_SPLIT_CHILDREN`] distinct keys, each issued by the
///   target and not the ticket itself.
pub fn check(state: Option<&TicketState>, event: &Event) -> Result<(), TicketError> {
    if !event.id.origin.contains(event.actor) {
        return Err(TicketError::ForeignActor {
            event: event.id,
            actor: event.actor,
        });
    }
    if china_date(event.at_unix_ms).is_none() {
        return Err(TicketError::BadTime {
            event: event.id,
            at_unix_ms: event.at_unix_ms,
        });
    }
    let s = match (state, &event.kind) {
        (None, EventKind::Issued(t)) => {
            let key = t.key();
            if key != event.ticket {
                return Err(TicketError::WrongTicket {
                    event: event.id,
                    event_ticket: event.ticket.clone(),
                    ticket: key,
                });
            }
            if event.actor != t.issuer {
                return Err(TicketError::NotAllowed {
                    key,
                    actor: event.actor,
                    action: "issue",
                    rule: format!("only its issuer {} can", div(t.issuer)),
                });
            }
            return t
                .validate()
                .map_err(|errors| TicketError::Invalid { key, errors });
        }
        (None, kind) => {
            return Err(TicketError::NotIssued {
                key: event.ticket.clone(),
                action: kind.verbs().0,
            })
        }
        (Some(s), _) if s.key() != event.ticket => {
            return Err(TicketError::WrongTicket {
                event: event.id,
                event_ticket: event.ticket.clone(),
                ticket: s.key(),
            })
        }
        (Some(s), EventKind::Issued(_)) => return Err(TicketError::AlreadyIssued { key: s.key() }),
        (Some(s), _) => s,
    };
    let (verb, done) = event.kind.verbs();
    match &event.kind {
        EventKind::Issued(_) => unreachable!("handled above"),
        EventKind::Delivered { at } => {
            target_only(s, event, verb)?;
            if *at != event.id.origin {
                return Err(TicketError::NotAllowed {
                    key: s.key(),
                    actor: event.actor,
                    action: verb,
                    rule: format!(
                        "the delivery names node {} but was created by node {}",
                        div(*at),
                        div(event.id.origin)
                    ),
                });
            }
            in_state(s, State::Issued, done)
        }
        EventKind::Accepted => {
            target_only(s, event, verb)?;
            in_state(s, State::Delivered, done)
        }
        EventKind::Started => {
            target_only(s, event, verb)?;
            not_split(s, done)?;
            in_state(s, State::Accepted, done)
        }
        EventKind::Rectified { note } => {
            target_only(s, event, verb)?;
            not_split(s, done)?;
            in_state(s, State::Rectifying, done)?;
            text(s, "rectification note", note)
        }
        EventKind::Verified => {
            issuer_only(s, event, verb)?;
            not_split(s, done)?;
            in_state(s, State::Rectified, done)
        }
        EventKind::Returned { reason } => {
            issuer_only(s, event, verb)?;
            not_split(s, done)?;
            in_state(s, State::Rectified, done)?;
            text(s, "return reason", reason)
        }
        EventKind::Supervise { on } => {
            let t = &s.ticket;
            let on_path = t.issuer.contains(event.actor)
                && event.actor.contains(t.target)
                && event.actor != t.target;
            if !on_path {
                return Err(TicketError::NotAllowed {
                    key: s.key(),
                    actor: event.actor,
                    action: verb,
                    rule: format!(
                        "only a division from the issuer {} down to above the target {} can",
                        div(t.issuer),
                        div(t.target)
                    ),
                });
            }
            if s.state == State::Closed {
                return Err(TicketError::Supervision {
                    key: s.key(),
                    reason: "the ticket is closed; its supervision can no longer change".into(),
                });
            }
            match (on, s.supervised_by) {
                (true, Some(by)) => Err(TicketError::Supervision {
                    key: s.key(),
                    reason: format!("already under supervision by {}", div(by)),
                }),
                (false, None) => Err(TicketError::Supervision {
                    key: s.key(),
                    reason: "not under supervision".into(),
                }),
                (false, Some(by)) if !event.actor.contains(by) => Err(TicketError::Supervision {
                    key: s.key(),
                    reason: format!(
                        "supervision was flagged by {}; only {} or a division above it can lift it, not {}",
                        div(by),
                        div(by),
                        div(event.actor)
                    ),
                }),
                _ => Ok(()),
            }
        }
        EventKind::Split { children } => {
            target_only(s, event, verb)?;
            if s.is_split() {
                return Err(TicketError::BadSplit {
                    key: s.key(),
                    reason: "it is already split".into(),
                });
            }
            in_state(s, State::Accepted, done)?;
            let bad = |reason: String| TicketError::BadSplit {
                key: s.key(),
                reason,
            };
            let target = s.ticket.target;
            if target.level() == Level::Village {
                return Err(bad(format!(
                    "its target {target} is a village and has no child divisions"
                )));
            }
            if children.is_empty() {
                return Err(bad("no sub-tickets are listed".into()));
            }
            if children.len() > MAX_SPLIT_CHILDREN {
                return Err(bad(format!(
                    "{} sub-tickets; at most {MAX_SPLIT_CHILDREN}",
                    children.len()
                )));
            }
            let mut seen = BTreeSet::new();
            for c in children {
                if c.issuer != target {
                    return Err(bad(format!(
                        "sub-ticket {c} must be issued by the target {}",
                        div(target)
                    )));
                }
                if *c == s.key() {
                    return Err(bad("a ticket cannot be its own sub-ticket".into()));
                }
                if !seen.insert(c) {
                    return Err(bad(format!("sub-ticket {c} is listed twice")));
                }
            }
            Ok(())
        }
    }
}

/// Apply an event that passed [`check`].
fn apply(s: &mut TicketState, e: &Event) {
    // Dates are monotone along the applied history.
    let on = china_date(e.at_unix_ms)
        .unwrap_or(s.issued_on)
        .max(s.last_date());
    match &e.kind {
        EventKind::Issued(_) => {}
        EventKind::Delivered { .. } => {
            s.delivered_on = Some(on);
            s.enter(on, State::Delivered);
        }
        EventKind::Accepted => s.enter(on, State::Accepted),
        EventKind::Started => s.enter(on, State::Rectifying),
        EventKind::Rectified { note } => {
            s.note = Some(note.clone());
            s.rectified_on = Some(on);
            s.enter(on, State::Rectified);
        }
        EventKind::Verified => {
            s.closed_on = Some(on);
            s.enter(on, State::Closed);
        }
        EventKind::Returned { reason } => {
            s.return_reason = Some(reason.clone());
            s.returns += 1;
            s.rectified_on = None;
            s.enter(on, State::Rectifying);
        }
        EventKind::Supervise { on: flag } => {
            s.supervised_by = flag.then_some(e.actor);
        }
        EventKind::Split { children } => {
            s.split = children.clone();
            s.enter(on, State::Rectifying);
        }
    }
    s.own_transitions = s.timeline.len();
}

fn entry(e: &Event, outcome: EntryOutcome) -> HistoryEntry {
    HistoryEntry {
        id: e.id,
        lamport: e.lamport,
        actor: e.actor,
        at_unix_ms: e.at_unix_ms,
        kind: e.kind.clone(),
        outcome,
    }
}

/// Sort into fold order and drop exact duplicates.
fn ordered<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<&'a Event> {
    let mut v: Vec<&Event> = events.into_iter().collect();
    v.sort_by(|a, b| a.order_key().cmp(&b.order_key()).then_with(|| a.cmp(b)));
    v.dedup_by(|a, b| a == b);
    v
}

fn fold_ordered(evs: &[&Event]) -> Option<TicketState> {
    // The ticket is the one of the first event (in fold order) that is a legal issue.
    let first = evs
        .iter()
        .find(|e| matches!(e.kind, EventKind::Issued(_)) && check(None, e).is_ok())?;
    let key = first.ticket.clone();
    let mut state: Option<TicketState> = None;
    let mut before: Vec<HistoryEntry> = Vec::new();
    let mut ids = BTreeSet::new();
    let mut max_lamport = 0;
    for e in evs.iter().filter(|e| e.ticket == key) {
        max_lamport = max_lamport.max(e.lamport);
        let verdict = if !ids.insert(e.id) {
            Err(format!(
                "another event with the same id {} comes earlier in the order",
                e.id
            ))
        } else {
            check(state.as_ref(), e).map_err(|err| err.to_string())
        };
        match (verdict, &mut state) {
            (Ok(()), Some(s)) => {
                apply(s, e);
                s.history.push(entry(e, EntryOutcome::Applied));
            }
            (Ok(()), None) => {
                let EventKind::Issued(t) = &e.kind else {
                    unreachable!("check(None, _) only passes an issue")
                };
                let on = china_date(e.at_unix_ms).unwrap_or(EARLIEST);
                let mut history = std::mem::take(&mut before);
                history.push(entry(e, EntryOutcome::Applied));
                state = Some(TicketState {
                    ticket: t.clone(),
                    state: State::Issued,
                    supervised_by: None,
                    split: Vec::new(),
                    note: None,
                    return_reason: None,
                    returns: 0,
                    issued_on: on,
                    delivered_on: None,
                    rectified_on: None,
                    closed_on: None,
                    timeline: vec![Transition {
                        on,
                        state: State::Issued,
                    }],
                    history,
                    max_lamport: 0,
                    own_transitions: 1,
                });
            }
            (Err(reason), Some(s)) => s.history.push(entry(e, EntryOutcome::Ignored { reason })),
            (Err(reason), None) => before.push(entry(e, EntryOutcome::Ignored { reason })),
        }
    }
    let mut s = state?;
    s.max_lamport = max_lamport;
    Some(s)
}

/// The Lamport time for the next event a node creates for a ticket: after every event of it
/// the node holds, whether or not they fold into a state yet (one that arrived before the
/// ticket's issue still counts). Ordering a new event after everything its creator has seen
/// is what keeps an action refused at one moment from being replayed as legal later.
pub fn next_lamport<'a>(seen: impl IntoIterator<Item = &'a Event>) -> u64 {
    seen.into_iter().map(|e| e.lamport).max().unwrap_or(0) + 1
}

/// The state of one ticket from its events, in any order, duplicates allowed.
///
/// The ticket is the one of the first legal `Issued` event in fold order; events of other
/// tickets are left out (use [`fold_all`] for mixed sets); `None` when no legal issue is
/// present. Events ordered before the issue are kept in the history as ignored. A split
/// ticket's state is its own (rectifying): see [`resolve_splits`].
pub fn fold(events: &[Event]) -> Option<TicketState> {
    fold_ordered(&ordered(events))
}

/// The states of every ticket in a mixed set of events, split tickets resolved from their
/// sub-tickets ([`resolve_splits`]).
pub fn fold_all(events: &[Event]) -> BTreeMap<TicketKey, TicketState> {
    let mut by_ticket: BTreeMap<&TicketKey, Vec<&Event>> = BTreeMap::new();
    for e in ordered(events) {
        by_ticket.entry(&e.ticket).or_default().push(e);
    }
    let mut states: BTreeMap<TicketKey, TicketState> = by_ticket
        .values()
        .filter_map(|evs| fold_ordered(evs))
        .map(|s| (s.key(), s))
        .collect();
    resolve_splits(&mut states);
    states
}

/// Derive the state of every split ticket in `states` from its sub-tickets' states, deepest
/// first (so nested splits resolve). Idempotent.
///
/// A listed sub-ticket counts only if it is in `states` with `parent` = the split ticket and
/// issued by its target; otherwise it counts as open. The derived state from the split date
/// on is: closed when every sub-ticket is closed, rectified when every one is rectified or
/// closed, rectifying otherwise; `rectified_on` / `closed_on` are the dates the derived state
/// last reached rectified-or-closed / closed, i.e. the latest sub-ticket's.
pub fn resolve_splits(states: &mut BTreeMap<TicketKey, TicketState>) {
    let mut split: Vec<(usize, TicketKey)> = states
        .values()
        .filter(|s| s.is_split())
        .map(|s| (s.ticket.target.len(), s.key()))
        .collect();
    // Deepest targets first: a sub-ticket's target is a child of its parent's target.
    split.sort_by(|a, b| b.cmp(a));
    for (_, key) in split {
        let Some(parent) = states.get(&key) else {
            continue;
        };
        let children: Vec<Option<&TicketState>> = parent
            .split
            .iter()
            .map(|c| {
                states.get(c).filter(|cs| {
                    cs.ticket.parent.as_ref() == Some(&key)
                        && cs.ticket.issuer == parent.ticket.target
                })
            })
            .collect();
        let derive = |day: Option<Date>| -> State {
            let st: Vec<Option<State>> = children
                .iter()
                .map(|c| {
                    c.and_then(|c| match day {
                        Some(d) => c.state_on(d),
                        None => Some(c.state),
                    })
                })
                .collect();
            if st.iter().all(|s| *s == Some(State::Closed)) {
                State::Closed
            } else if st.iter().all(|s| s.is_some_and(|s| !s.is_unrectified())) {
                State::Rectified
            } else {
                State::Rectifying
            }
        };
        let own = parent.own_transitions;
        let mut timeline: Vec<Transition> = parent.timeline[..own].to_vec();
        let split_on = timeline.last().map_or(parent.issued_on, |t| t.on);
        let mut days: Vec<Date> = children
            .iter()
            .flatten()
            .flat_map(|c| c.timeline.iter().map(|t| t.on.max(split_on)))
            .collect();
        days.sort();
        days.dedup();
        for d in days {
            let st = derive(Some(d));
            if timeline.last().map(|t| t.state) != Some(st) {
                timeline.push(Transition { on: d, state: st });
            }
        }
        let current = derive(None);
        if timeline.last().map(|t| t.state) != Some(current) {
            // Only with sub-ticket dates out of order; keep the timeline ending in the state.
            let on = timeline.last().map_or(split_on, |t| t.on);
            timeline.push(Transition { on, state: current });
        }
        let mut rectified_on = None;
        let mut closed_on = None;
        let mut prev = State::Rectifying;
        for t in &timeline[own.saturating_sub(1)..] {
            if !t.state.is_unrectified() && prev.is_unrectified() {
                rectified_on = Some(t.on);
            }
            if t.state.is_unrectified() {
                rectified_on = None;
            }
            if t.state == State::Closed && prev != State::Closed {
                closed_on = Some(t.on);
            }
            prev = t.state;
        }
        if let Some(p) = states.get_mut(&key) {
            p.timeline = timeline;
            p.state = current;
            p.rectified_on = rectified_on;
            p.closed_on = closed_on.filter(|_| current == State::Closed);
        }
    }
}

/// The flows a ticket contributes, as `(flow, date, +1)`: issued on the issue date, rectified
/// on `rectified_on`, closed on `closed_on`. Recompute after every fold and apply the
/// difference: a return for rework withdraws the rectified flow.
pub fn stat_flows(s: &TicketState) -> Vec<(TicketFlow, Date, i64)> {
    let mut v = vec![(TicketFlow::Issued, s.issued_on, 1)];
    if let Some(d) = s.rectified_on {
        v.push((TicketFlow::Rectified, d, 1));
    }
    if let Some(d) = s.closed_on {
        v.push((TicketFlow::Closed, d, 1));
    }
    v
}

/// Deltas whose running sum up to a day D is the ticket's contribution to the stocks at the
/// end of D: open +1 on the issue date, −1 on the close date; overdue +1 from the day after
/// the deadline (or the day it fell back to an unrectified state), −1 on the day it is
/// rectified or closed. The overdue +1 may lie in the future; it is part of the ticket's
/// deterministic contribution.
pub fn stock_deltas(s: &TicketState) -> Vec<(TicketStock, Date, i64)> {
    let mut v = vec![(TicketStock::Open, s.issued_on, 1)];
    if let Some(d) = s.closed_on {
        v.push((TicketStock::Open, d, -1));
    }
    let mut days: Vec<Date> = s.timeline.iter().map(|t| t.on).collect();
    if let Ok(d) = s.ticket.deadline.tomorrow() {
        days.push(d);
    }
    days.sort();
    days.dedup();
    let mut overdue = false;
    for d in days {
        let now = s.overdue_at(d);
        if now != overdue {
            v.push((TicketStock::Overdue, d, if now { 1 } else { -1 }));
            overdue = now;
        }
    }
    v
}

/// Ticket figures of a set of tickets for a period `[first, last]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketFigures {
    /// Issued in the period.
    pub issued: u64,
    /// Rectified in the period (standing rectifications).
    pub rectified: u64,
    /// Closed in the period.
    pub closed: u64,
    /// Open at the end of the period.
    pub open: u64,
    /// Overdue at the end of the period.
    pub overdue: u64,
    /// Issued up to the end of the period.
    pub issued_to_date: u64,
    /// Closed up to the end of the period.
    pub closed_to_date: u64,
}

impl TicketFigures {
    /// Clearance rate (销号率) at the end of the period: tickets closed / tickets issued, both
    /// counted from the beginning up to the period's last day (so it reads "what share of
    /// everything issued so far is cleared", never above 1). `None` when nothing was issued.
    pub fn clearance_rate(&self) -> Option<f64> {
        (self.issued_to_date > 0).then(|| self.closed_to_date as f64 / self.issued_to_date as f64)
    }
}

/// The figures of `states` for the period `[first, last]` (China dates), computed from the
/// same flows and stock deltas as the cells will be.
pub fn figures<'a>(
    states: impl IntoIterator<Item = &'a TicketState>,
    first: Date,
    last: Date,
) -> TicketFigures {
    let mut f = TicketFigures::default();
    let mut open: i64 = 0;
    let mut overdue: i64 = 0;
    for s in states {
        for (flow, d, n) in stat_flows(s) {
            let n = n as u64;
            if d <= last {
                match flow {
                    TicketFlow::Issued => f.issued_to_date += n,
                    TicketFlow::Closed => f.closed_to_date += n,
                    TicketFlow::Rectified => {}
                }
            }
            if first <= d && d <= last {
                match flow {
                    TicketFlow::Issued => f.issued += n,
                    TicketFlow::Rectified => f.rectified += n,
                    TicketFlow::Closed => f.closed += n,
                }
            }
        }
        for (stock, d, n) in stock_deltas(s) {
            if d <= last {
                match stock {
                    TicketStock::Open => open += n,
                    TicketStock::Overdue => overdue += n,
                }
            }
        }
    }
    f.open = open.max(0) as u64;
    f.overdue = overdue.max(0) as u64;
    f
}

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

/// A `yyyy-mm-dd` calendar date (the inventory's and the API's date form).
pub fn parse_date(v: &str) -> Result<Date, String> {
    let shape = v.len() == 10
        && v.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shape {
        return Err(format!("{v:?} is not a date in yyyy-mm-dd form"));
    }
    v.parse::<Date>()
        .map_err(|_| format!("{v} is not a calendar date"))
}

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
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(body);
    let header = rdr
        .byte_headers()
        .map_err(|e| InventoryError::File(format!("line 1: {e}")))?
        .clone();
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(InventoryError::File(
            "the file is empty: expected a header line".into(),
        ));
    }
    let mut map = Vec::with_capacity(header.len());
    let mut seen = [false; INVENTORY_COLUMNS.len()];
    for raw in header.iter() {
        let name = std::str::from_utf8(raw)
            .map_err(|_| InventoryError::File("line 1: the header is not valid UTF-8".into()))?
            .trim();
        let Some(j) = INVENTORY_COLUMNS.iter().position(|c| *c == name) else {
            return Err(InventoryError::File(format!(
                "line 1: unknown column {name:?} (a tickets file has columns {})",
                INVENTORY_COLUMNS.join(", ")
            )));
        };
        if seen[j] {
            return Err(InventoryError::File(format!(
                "line 1: column {name:?} appears twice"
            )));
        }
        seen[j] = true;
        map.push(j);
    }
    if let Some(j) = (0..REQUIRED_COLUMNS).find(|&j| !seen[j]) {
        return Err(InventoryError::File(format!(
            "line 1: required column {:?} is missing",
            INVENTORY_COLUMNS[j]
        )));
    }
    let mut tickets = Vec::new();
    let mut errors = Vec::new();
    let mut first_line: BTreeMap<String, u64> = BTreeMap::new();
    let mut rec = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                let reason = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!("{len} fields where the header has {expected_len}"),
                    _ => e.to_string(),
                };
                errors.push(InventoryRowError {
                    line,
                    field: None,
                    reason,
                });
                break;
            }
        }
        let line = rec.position().map_or(0, |p| p.line());
        let mut values: [Option<String>; INVENTORY_COLUMNS.len()] = Default::default();
        let mut utf8_ok = true;
        for (i, raw) in rec.iter().enumerate() {
            match std::str::from_utf8(raw) {
                Ok(v) => {
                    let v = v.trim();
                    if !v.is_empty() {
                        values[map[i]] = Some(v.to_string());
                    }
                }
                Err(_) => {
                    errors.push(InventoryRowError {
                        line,
                        field: Some(INVENTORY_COLUMNS[map[i]]),
                        reason:
                            "not valid UTF-8 (files must be UTF-8; re-export without GBK encoding)"
                                .into(),
                    });
                    utf8_ok = false;
                    break;
                }
            }
        }
        if !utf8_ok {
            continue;
        }
        match parse_row(issuer, &values) {
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
    };
    t.validate()?;
    Ok(t)
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

    fn add(&mut self, s: &TicketState, today: Date) {
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
pub fn inventory_progress<'a>(
    node: Code,
    states: impl IntoIterator<Item = &'a TicketState>,
    today: Date,
) -> InventoryProgress {
    let mut total = RegionProgress::new(node);
    let mut regions: BTreeMap<Code, RegionProgress> = BTreeMap::new();
    for s in states {
        let target = s.ticket.target;
        if !node.contains(target) {
            continue;
        }
        let region = target
            .lineage(node)
            .find(|c| c.parent() == Some(node))
            .unwrap_or(node);
        total.add(s, today);
        regions
            .entry(region)
            .or_insert_with(|| RegionProgress::new(region))
            .add(s, today);
    }
    InventoryProgress {
        node,
        total,
        regions: regions.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Code {
        Code::parse(s).unwrap()
    }

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    /// 2026-03-01 12:00 China time plus `days`.
    fn ms(days: i64) -> i64 {
        1_772_337_600_000 + days * 86_400_000
    }

    fn ticket(issuer: &str, id: &str, target: &str) -> Ticket {
        Ticket {
            issuer: c(issuer),
            id: id.into(),
            target: c(target),
            category: "housing safety".into(),
            source: TicketSource::Inspection,
            severity: Severity::High,
            deadline: d("2026-03-10"),
            description: "roof leaks".into(),
            household_code: None,
            parent: None,
            inventory: None,
        }
    }

    /// A tiny event factory: every event gets a fresh id at its origin.
    struct Sim {
        seq: u64,
        events: Vec<Event>,
    }

    impl Sim {
        fn new() -> Sim {
            Sim {
                seq: 0,
                events: Vec::new(),
            }
        }

        fn ev(&mut self, key: &TicketKey, actor: &str, kind: EventKind, day: i64) -> Event {
            self.seq += 1;
            let lamport = self.state_of(key).map_or(1, |s| s.next_lamport());
            Event {
                id: EventId {
                    origin: c(actor),
                    seq: self.seq,
                },
                ticket: key.clone(),
                lamport,
                at_unix_ms: ms(day),
                actor: c(actor),
                kind,
            }
        }

        /// Check against the current state, then record it (legal or not).
        fn act(
            &mut self,
            key: &TicketKey,
            actor: &str,
            kind: EventKind,
            day: i64,
        ) -> Result<(), TicketError> {
            let e = self.ev(key, actor, kind, day);
            let r = check(self.state_of(key).as_ref(), &e);
            self.events.push(e);
            r
        }

        fn state_of(&self, key: &TicketKey) -> Option<TicketState> {
            let mine: Vec<Event> = self
                .events
                .iter()
                .filter(|e| e.ticket == *key)
                .cloned()
                .collect();
            fold(&mine)
        }

        /// The state of the first ticket issued.
        fn state(&self) -> TicketState {
            self.state_of(&self.events[0].ticket).unwrap()
        }
    }

    fn rectified_ticket() -> (Sim, TicketKey) {
        let mut sim = Sim::new();
        let t = ticket("61", "T-0007", "610102");
        let k = t.key();
        sim.act(&k, "61", EventKind::Issued(t), 0).unwrap();
        sim.act(&k, "610102", EventKind::Delivered { at: c("610102") }, 0)
            .unwrap();
        sim.act(&k, "610102", EventKind::Accepted, 1).unwrap();
        sim.act(&k, "610102", EventKind::Started, 1).unwrap();
        sim.act(
            &k,
            "610102",
            EventKind::Rectified {
                note: "roof fixed".into(),
            },
            3,
        )
        .unwrap();
        (sim, k)
    }

    #[test]
    fn the_whole_lifecycle_with_a_return() {
        let (mut sim, k) = rectified_ticket();
        assert_eq!(sim.state().state, State::Rectified);
        assert_eq!(sim.state().rectified_on, Some(d("2026-03-04")));
        sim.act(
            &k,
            "61",
            EventKind::Returned {
                reason: "photos missing".into(),
            },
            4,
        )
        .unwrap();
        let s = sim.state();
        assert_eq!(s.state, State::Rectifying);
        assert_eq!(s.rectified_on, None);
        assert_eq!(s.returns, 1);
        assert_eq!(s.return_reason.as_deref(), Some("photos missing"));
        sim.act(
            &k,
            "610102",
            EventKind::Rectified {
                note: "photos attached".into(),
            },
            5,
        )
        .unwrap();
        sim.act(&k, "61", EventKind::Verified, 6).unwrap();
        let s = sim.state();
        assert_eq!(s.state, State::Closed);
        assert_eq!(s.closed_on, Some(d("2026-03-07")));
        assert_eq!(s.rectified_on, Some(d("2026-03-06")));
        assert_eq!(s.note.as_deref(), Some("photos attached"));
        assert!(s.history.iter().all(|h| h.outcome == EntryOutcome::Applied));
        let states: Vec<State> = s.timeline.iter().map(|t| t.state).collect();
        use State::*;
        assert_eq!(
            states,
            [Issued, Delivered, Accepted, Rectifying, Rectified, Rectifying, Rectified, Closed]
        );
        assert_eq!(s.state_on(d("2026-03-04")), Some(Rectified));
        assert_eq!(s.state_on(d("2026-02-28")), None);
    }

    #[test]
    fn the_message_names_ticket_state_and_rule() {
        let mut sim = Sim::new();
        let t = ticket("61", "T-0007", "610102");
        let k = t.key();
        sim.act(&k, "61", EventKind::Issued(t), 0).unwrap();
        let e = sim.act(&k, "61", EventKind::Verified, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ticket 61/T-0007 is issued, not rectified: only a rectified ticket can be verified"
        );
        let e = sim.act(&k, "610102", EventKind::Accepted, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ticket 61/T-0007 is issued, not delivered: only a delivered ticket can be accepted"
        );
        let e = sim.act(&k, "6101", EventKind::Accepted, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ticket 61/T-0007: 6101 may not accept it: only its target 610102 can"
        );
    }

    #[test]
    fn every_target_side_action_needs_the_target_and_its_state() {
        let mut sim = Sim::new();
        let t = ticket("61", "T-1", "610102");
        let k = t.key();
        sim.act(&k, "61", EventKind::Issued(t), 0).unwrap();
        // Delivery: only the target, at its own node.
        let e = sim
            .act(&k, "61", EventKind::Delivered { at: c("61") }, 0)
            .unwrap_err();
        assert!(matches!(e, TicketError::NotAllowed { .. }), "{e}");
        let e = sim
            .act(&k, "610102", EventKind::Delivered { at: c("6101") }, 0)
            .unwrap_err();
        assert!(e.to_string().contains("names node 6101"), "{e}");
        let e = sim.act(&k, "610102", EventKind::Started, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ticket 61/T-1 is issued, not accepted: only an accepted ticket can be started"
        );
        sim.act(&k, "610102", EventKind::Delivered { at: c("610102") }, 0)
            .unwrap();
        let e = sim
            .act(&k, "610102", EventKind::Delivered { at: c("610102") }, 0)
            .unwrap_err();
        assert!(e.to_string().contains("is delivered, not issued"), "{e}");
        sim.act(&k, "610102", EventKind::Accepted, 0).unwrap();
        let e = sim
            .act(
                &k,
                "610102",
                EventKind::Rectified {
                    note: "done".into(),
                },
                0,
            )
            .unwrap_err();
        assert!(e.to_string().contains("is accepted, not rectifying"), "{e}");
        sim.act(&k, "610102", EventKind::Started, 0).unwrap();
        let e = sim
            .act(&k, "610102", EventKind::Rectified { note: " ".into() }, 0)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "ticket 61/T-1: the rectification note is empty"
        );
        let e = sim
            .act(&k, "6101", EventKind::Rectified { note: "x".into() }, 0)
            .unwrap_err();
        assert!(e.to_string().contains("only its target 610102"), "{e}");
        // A town below the target is not the target either.
        let e = sim
            .act(
                &k,
                "610102001",
                EventKind::Rectified { note: "x".into() },
                0,
            )
            .unwrap_err();
        assert!(matches!(e, TicketError::NotAllowed { .. }), "{e}");
        // The target cannot verify its own rectification.
        sim.act(&k, "610102", EventKind::Rectified { note: "x".into() }, 0)
            .unwrap();
        let e = sim.act(&k, "610102", EventKind::Verified, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ticket 61/T-1: 610102 may not verify it: only its issuer 61 can"
        );
    }

    #[test]
    fn issuer_side_actions() {
        let (mut sim, k) = rectified_ticket();
        let e = sim
            .act(
                &k,
                "6101",
                EventKind::Returned {
                    reason: "no".into(),
                },
                4,
            )
            .unwrap_err();
        assert!(e.to_string().contains("only its issuer 61"), "{e}");
        let e = sim
            .act(&k, "61", EventKind::Returned { reason: "".into() }, 4)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "ticket 61/T-0007: the return reason is empty"
        );
        sim.act(&k, "61", EventKind::Verified, 4).unwrap();
        let e = sim.act(&k, "61", EventKind::Verified, 4).unwrap_err();
        assert!(e.to_string().contains("is closed, not rectified"), "{e}");
        let e = sim
            .act(&k, "61", EventKind::Returned { reason: "x".into() }, 4)
            .unwrap_err();
        assert!(e.to_string().contains("is closed, not rectified"), "{e}");
        let e = sim.act(&k, "610102", EventKind::Started, 4).unwrap_err();
        assert!(e.to_string().contains("is closed, not accepted"), "{e}");
    }

    #[test]
    fn supervision_rules() {
        let mut sim = Sim::new();
        let t = ticket("61", "T-2", "610102001");
        let k = t.key();
        sim.act(&k, "61", EventKind::Issued(t), 0).unwrap();
        let on = EventKind::Supervise { on: true };
        let off = EventKind::Supervise { on: false };
        // The target and divisions off the path may not.
        for who in ["610102001", "6102", "610103", "62", "610102001001"] {
            let e = sim.act(&k, who, on.clone(), 0).unwrap_err();
            assert!(matches!(e, TicketError::NotAllowed { .. }), "{who}: {e}");
        }
        let e = sim.act(&k, "6101", off.clone(), 0).unwrap_err();
        assert_eq!(e.to_string(), "ticket 61/T-2: not under supervision");
        sim.act(&k, "6101", on.clone(), 0).unwrap();
        assert_eq!(sim.state().supervised_by, Some(c("6101")));
        let e = sim.act(&k, "61", on.clone(), 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ticket 61/T-2: already under supervision by 6101"
        );
        let e = sim.act(&k, "610102", off.clone(), 0).unwrap_err();
        assert!(
            e.to_string().contains("only 6101 or a division above it"),
            "{e}"
        );
        sim.act(&k, "61", off.clone(), 0).unwrap();
        assert!(!sim.state().supervised());
        sim.act(&k, "610102", on.clone(), 0).unwrap();
        sim.act(&k, "610102", off, 0).unwrap();
    }

    #[test]
    fn a_closed_ticket_cannot_change_supervision() {
        let (mut sim, k) = rectified_ticket();
        sim.act(&k, "61", EventKind::Verified, 4).unwrap();
        let e = sim
            .act(&k, "6101", EventKind::Supervise { on: true }, 4)
            .unwrap_err();
        assert!(e.to_string().contains("closed"), "{e}");
    }

    #[test]
    fn issue_rules() {
        let t = ticket("61", "T-3", "610102");
        let k = t.key();
        let mk = |actor: &str, origin: &str, key: TicketKey, t: Ticket| Event {
            id: EventId {
                origin: c(origin),
                seq: 1,
            },
            ticket: key,
            lamport: 1,
            at_unix_ms: ms(0),
            actor: c(actor),
            kind: EventKind::Issued(t),
        };
        assert!(check(None, &mk("61", "61", k.clone(), t.clone())).is_ok());
        let e = check(None, &mk("6101", "6101", k.clone(), t.clone())).unwrap_err();
        assert!(
            e.to_string()
                .contains("may not issue it: only its issuer 61"),
            "{e}"
        );
        let e = check(None, &mk("61", "6101", k.clone(), t.clone())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "event 6101#1 was created by node 6101 on behalf of 61, which is outside that node's subtree"
        );
        let e = check(
            None,
            &mk("61", "61", TicketKey::new(c("61"), "X"), t.clone()),
        )
        .unwrap_err();
        assert!(matches!(e, TicketError::WrongTicket { .. }), "{e}");
        // A node may act for a division below it (a county for its village).
        let v = ticket("610102", "V-1", "610102001001");
        let vk = v.key();
        let ok = Event {
            actor: c("610102"),
            ..mk("610102", "610102", vk.clone(), v.clone())
        };
        assert!(check(None, &ok).is_ok());
        let s = fold(std::slice::from_ref(&ok)).unwrap();
        let deliver = Event {
            id: EventId {
                origin: c("610102"),
                seq: 2,
            },
            lamport: 2,
            actor: c("610102001001"),
            kind: EventKind::Delivered { at: c("610102") },
            ..ok.clone()
        };
        assert!(check(Some(&s), &deliver).is_ok());
        let e = check(Some(&s), &ok).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ticket 610102/V-1 is already issued; ids are unique per issuer"
        );
        let accept = Event {
            kind: EventKind::Accepted,
            ..deliver.clone()
        };
        let e = check(None, &accept).unwrap_err();
        assert!(e.to_string().contains("has not been issued"), "{e}");
        let other = Event {
            ticket: k,
            ..accept
        };
        let e = check(Some(&s), &other).unwrap_err();
        assert_eq!(
            e.to_string(),
            "event 610102#2 is for ticket 61/T-3, not 610102/V-1"
        );
        let bad_time = Event {
            at_unix_ms: i64::MAX,
            ..deliver
        };
        assert!(matches!(
            check(Some(&s), &bad_time),
            Err(TicketError::BadTime { .. })
        ));
    }

    #[test]
    fn ticket_validation_names_every_bad_field() {
        let mut t = ticket("6101", "bad id", "6101");
        t.category = "".into();
        t.description = "x".repeat(MAX_TEXT_CHARS + 1);
        t.deadline = d("2014-12-31");
        t.household_code = Some("61020100100100001".into());
        let fields: Vec<&str> = t.validate().unwrap_err().iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "id",
                "target",
                "category",
                "description",
                "deadline",
                "household_code"
            ]
        );
        let mut t = ticket("6101", "T", "6102");
        assert!(t.validate().unwrap_err()[0]
            .reason
            .contains("not in the subtree of the issuer 6101"));
        t.target = c("610102");
        t.household_code = Some("61010300100100001".into());
        let e = &t.validate().unwrap_err()[0];
        assert_eq!(e.field, "household_code");
        assert!(
            e.reason.contains("outside the target 610102"),
            "{}",
            e.reason
        );
        t.household_code = Some("6101020010010".into());
        assert!(t.validate().is_ok());
        t.household_code = Some("abc".into());
        assert!(t.validate().is_err());
        t.household_code = None;
        t.category = "类".repeat(MAX_CATEGORY_CHARS);
        assert!(t.validate().is_ok());
        t.category.push('类');
        assert_eq!(t.validate().unwrap_err()[0].field, "category");
        // Sub-tickets.
        let mut s = ticket("6101", "S", "610102");
        s.parent = Some(TicketKey::new(c("61"), "P"));
        assert!(s.validate().is_ok());
        s.target = c("610102001");
        assert_eq!(s.validate().unwrap_err()[0].field, "target");
        s.target = c("610102");
        s.parent = Some(TicketKey::new(c("6101"), "P"));
        assert_eq!(s.validate().unwrap_err()[0].field, "parent");
        s.parent = Some(s.key());
        assert_eq!(s.validate().unwrap_err()[0].field, "parent");
        // The root may issue to a province.
        assert!(ticket("", "N", "61").validate().is_ok());
    }

    fn split_setup() -> (Sim, TicketKey, Vec<Ticket>) {
        let mut sim = Sim::new();
        let t = ticket("61", "P", "6101");
        let k = t.key();
        sim.act(&k, "61", EventKind::Issued(t), 0).unwrap();
        sim.act(&k, "6101", EventKind::Delivered { at: c("6101") }, 0)
            .unwrap();
        let subs: Vec<Ticket> = ["610102", "610103"]
            .iter()
            .enumerate()
            .map(|(i, target)| Ticket {
                parent: Some(k.clone()),
                inventory: None,
                ..ticket("6101", &format!("P-{i}"), target)
            })
            .collect();
        let keys: Vec<TicketKey> = subs.iter().map(Ticket::key).collect();
        let e = sim
            .act(
                &k,
                "6101",
                EventKind::Split {
                    children: keys.clone(),
                },
                1,
            )
            .unwrap_err();
        assert!(e.to_string().contains("is delivered, not accepted"), "{e}");
        sim.act(&k, "6101", EventKind::Accepted, 1).unwrap();
        (sim, k, subs)
    }

    #[test]
    fn split_rules() {
        let (mut sim, k, subs) = split_setup();
        let keys: Vec<TicketKey> = subs.iter().map(Ticket::key).collect();
        let split = |children: Vec<TicketKey>| EventKind::Split { children };
        let e = sim.act(&k, "61", split(keys.clone()), 1).unwrap_err();
        assert!(matches!(e, TicketError::NotAllowed { .. }), "{e}");
        let e = sim.act(&k, "6101", split(vec![]), 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ticket 61/P cannot be split: no sub-tickets are listed"
        );
        let e = sim
            .act(&k, "6101", split(vec![keys[0].clone(), keys[0].clone()]), 1)
            .unwrap_err();
        assert!(e.to_string().contains("listed twice"), "{e}");
        let e = sim
            .act(&k, "6101", split(vec![TicketKey::new(c("61"), "Q")]), 1)
            .unwrap_err();
        assert!(
            e.to_string().contains("must be issued by the target 6101"),
            "{e}"
        );
        sim.act(&k, "6101", split(keys.clone()), 1).unwrap();
        let e = sim.act(&k, "6101", split(keys), 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ticket 61/P cannot be split: it is already split"
        );
        let e = sim.act(&k, "6101", EventKind::Started, 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ticket 61/P is split into sub-tickets: it cannot be started itself; it closes when all its sub-tickets close"
        );
        let e = sim
            .act(&k, "6101", EventKind::Rectified { note: "x".into() }, 1)
            .unwrap_err();
        assert!(matches!(e, TicketError::IsSplit { .. }), "{e}");
        let e = sim.act(&k, "61", EventKind::Verified, 1).unwrap_err();
        assert!(matches!(e, TicketError::IsSplit { .. }), "{e}");
        // Supervision still works on a split ticket.
        sim.act(&k, "61", EventKind::Supervise { on: true }, 1)
            .unwrap();
        // A village cannot split.
        let mut v = Sim::new();
        let t = ticket("610102", "V", "610102001001");
        let vk = t.key();
        v.act(&vk, "610102", EventKind::Issued(t), 0).unwrap();
        v.act(
            &vk,
            "610102001001",
            EventKind::Delivered {
                at: c("610102001001"),
            },
            0,
        )
        .unwrap();
        v.act(&vk, "610102001001", EventKind::Accepted, 0).unwrap();
        let e = v
            .act(
                &vk,
                "610102001001",
                split(vec![TicketKey::new(c("610102001001"), "x")]),
                0,
            )
            .unwrap_err();
        assert!(e.to_string().contains("is a village"), "{e}");
    }

    fn work(sim: &mut Sim, t: &Ticket, day: i64, verify: bool) {
        let k = t.key();
        let target = t.target.to_string();
        let issuer = t.issuer.to_string();
        sim.act(&k, &target, EventKind::Delivered { at: t.target }, day)
            .unwrap();
        sim.act(&k, &target, EventKind::Accepted, day).unwrap();
        sim.act(&k, &target, EventKind::Started, day).unwrap();
        sim.act(&k, &target, EventKind::Rectified { note: "ok".into() }, day)
            .unwrap();
        if verify {
            sim.act(&k, &issuer, EventKind::Verified, day).unwrap();
        }
    }

    #[test]
    fn a_split_ticket_closes_when_all_its_sub_tickets_close() {
        let (mut sim, k, subs) = split_setup();
        let keys: Vec<TicketKey> = subs.iter().map(Ticket::key).collect();
        sim.act(&k, "6101", EventKind::Split { children: keys }, 1)
            .unwrap();
        for s in &subs {
            sim.act(&s.key(), "6101", EventKind::Issued(s.clone()), 1)
                .unwrap();
        }
        let all = fold_all(&sim.events);
        assert_eq!(all.len(), 3);
        assert_eq!(all[&k].state, State::Rectifying);
        work(&mut sim, &subs[0], 2, true);
        work(&mut sim, &subs[1], 4, false);
        let all = fold_all(&sim.events);
        assert_eq!(all[&k].state, State::Rectified);
        assert_eq!(all[&k].rectified_on, Some(d("2026-03-05")));
        assert_eq!(all[&k].closed_on, None);
        sim.act(
            &subs[1].key(),
            "6101",
            EventKind::Returned {
                reason: "no".into(),
            },
            5,
        )
        .unwrap();
        let all = fold_all(&sim.events);
        assert_eq!(all[&k].state, State::Rectifying);
        assert_eq!(all[&k].rectified_on, None);
        sim.act(
            &subs[1].key(),
            "610103",
            EventKind::Rectified { note: "ok".into() },
            6,
        )
        .unwrap();
        sim.act(&subs[1].key(), "6101", EventKind::Verified, 7)
            .unwrap();
        let mut all = fold_all(&sim.events);
        let p = all[&k].clone();
        assert_eq!(p.state, State::Closed);
        assert_eq!(p.closed_on, Some(d("2026-03-08")));
        assert_eq!(p.rectified_on, Some(d("2026-03-07")));
        assert_eq!(p.state_on(d("2026-03-05")), Some(State::Rectified));
        assert_eq!(p.state_on(d("2026-03-06")), Some(State::Rectifying));
        assert!(!p.overdue(d("2026-12-31")));
        // Idempotent.
        resolve_splits(&mut all);
        assert_eq!(all[&k], p);
        // Alone, without its sub-tickets, it stays rectifying.
        assert_eq!(fold(&sim.events).unwrap().state, State::Rectifying);
    }

    #[test]
    fn a_missing_or_foreign_sub_ticket_keeps_the_parent_open() {
        let (mut sim, k, subs) = split_setup();
        let keys: Vec<TicketKey> = subs.iter().map(Ticket::key).collect();
        sim.act(&k, "6101", EventKind::Split { children: keys }, 1)
            .unwrap();
        sim.act(
            &subs[0].key(),
            "6101",
            EventKind::Issued(subs[0].clone()),
            1,
        )
        .unwrap();
        // The second sub-ticket claims no parent.
        let orphan = Ticket {
            parent: None,
            inventory: None,
            ..subs[1].clone()
        };
        sim.act(&orphan.key(), "6101", EventKind::Issued(orphan.clone()), 1)
            .unwrap();
        work(&mut sim, &subs[0], 2, true);
        work(&mut sim, &orphan, 2, true);
        let all = fold_all(&sim.events);
        assert_eq!(all[&k].state, State::Rectifying);
        assert_eq!(all[&orphan.key()].state, State::Closed);
    }

    #[test]
    fn fold_is_order_independent_and_records_ignored_events() {
        let (mut sim, k) = rectified_ticket();
        let _ = sim.act(&k, "6102", EventKind::Verified, 4);
        sim.act(&k, "61", EventKind::Verified, 4).unwrap();
        let reference = sim.state();
        let ignored: Vec<&HistoryEntry> = reference
            .history
            .iter()
            .filter(|h| h.outcome != EntryOutcome::Applied)
            .collect();
        assert_eq!(ignored.len(), 1);
        assert!(
            matches!(&ignored[0].outcome, EntryOutcome::Ignored { reason } if reason.contains("6102 may not verify"))
        );
        let mut evs = sim.events.clone();
        evs.reverse();
        evs.extend(sim.events.iter().cloned());
        assert_eq!(fold(&evs).unwrap(), reference);
        // Events arriving without the issue: nothing to show yet.
        assert_eq!(fold(&sim.events[1..]), None);
        // A conflicting event reusing an id is ignored, whichever arrives first.
        let mut forged = sim.events[4].clone();
        forged.kind = EventKind::Rectified {
            note: "forged".into(),
        };
        let mut a = sim.events.clone();
        a.push(forged.clone());
        let mut b = vec![forged];
        b.extend(sim.events.iter().cloned());
        assert_eq!(fold(&a), fold(&b));
        let s = fold(&a).unwrap();
        assert!(s.history.iter().any(|h| matches!(&h.outcome,
            EntryOutcome::Ignored { reason } if reason.contains("same id"))));
    }

    #[test]
    fn events_before_the_issue_are_kept_as_ignored() {
        let mut sim = Sim::new();
        let t = ticket("61", "T", "6101");
        let k = t.key();
        sim.act(&k, "61", EventKind::Issued(t), 0).unwrap();
        let mut early = sim.ev(&k, "6101", EventKind::Delivered { at: c("6101") }, 0);
        early.lamport = 0;
        sim.events.push(early);
        let s = sim.state();
        assert_eq!(s.state, State::Issued);
        assert_eq!(s.history.len(), 2);
        assert!(matches!(&s.history[0].outcome,
            EntryOutcome::Ignored { reason } if reason.contains("has not been issued")));
    }

    #[test]
    fn dates_are_china_dates_and_monotone() {
        // 2026-03-01 16:30 UTC is 2026-03-02 in China.
        assert_eq!(china_date(1_772_382_600_000), Some(d("2026-03-02")));
        assert_eq!(china_date(i64::MAX), None);
        let mut sim = Sim::new();
        let t = ticket("61", "T", "6101");
        let k = t.key();
        sim.act(&k, "61", EventKind::Issued(t), 5).unwrap();
        // The target's clock is 3 days behind.
        sim.act(&k, "6101", EventKind::Delivered { at: c("6101") }, 2)
            .unwrap();
        let s = sim.state();
        assert_eq!(s.issued_on, d("2026-03-06"));
        assert_eq!(s.delivered_on, Some(d("2026-03-06")));
    }

    #[test]
    fn overdue_and_stocks() {
        let (mut sim, k) = rectified_ticket(); // deadline 03-10, rectified 03-04
        let s = sim.state();
        assert!(!s.overdue(d("2026-03-20")), "rectified is not overdue");
        sim.act(&k, "61", EventKind::Returned { reason: "r".into() }, 14)
            .unwrap(); // 03-15
        let s = sim.state();
        assert!(!s.overdue(d("2026-03-10")));
        assert!(s.overdue(d("2026-03-16")));
        assert!(!s.overdue_at(d("2026-03-14")));
        assert!(s.overdue_at(d("2026-03-15")));
        sim.act(&k, "610102", EventKind::Rectified { note: "n".into() }, 19)
            .unwrap(); // 03-20
        sim.act(&k, "61", EventKind::Verified, 21).unwrap(); // 03-22
        let s = sim.state();
        assert_eq!(
            stock_deltas(&s),
            vec![
                (TicketStock::Open, d("2026-03-01"), 1),
                (TicketStock::Open, d("2026-03-22"), -1),
                (TicketStock::Overdue, d("2026-03-15"), 1),
                (TicketStock::Overdue, d("2026-03-20"), -1),
            ]
        );
        assert_eq!(
            stat_flows(&s),
            vec![
                (TicketFlow::Issued, d("2026-03-01"), 1),
                (TicketFlow::Rectified, d("2026-03-20"), 1),
                (TicketFlow::Closed, d("2026-03-22"), 1),
            ]
        );
        // Deltas agree with the direct predicates on every day.
        let mut day = d("2026-02-25");
        while day < d("2026-04-01") {
            let sum = |k: TicketStock| -> i64 {
                stock_deltas(&s)
                    .iter()
                    .filter(|(s, dd, _)| *s == k && *dd <= day)
                    .map(|x| x.2)
                    .sum()
            };
            assert_eq!(sum(TicketStock::Open) == 1, s.open_at(day), "{day}");
            assert_eq!(sum(TicketStock::Overdue) == 1, s.overdue_at(day), "{day}");
            day = day.tomorrow().unwrap();
        }
    }

    #[test]
    fn figures_and_clearance_rate() {
        let (mut sim, k) = rectified_ticket();
        let open = {
            let mut o = Sim::new();
            let t = ticket("61", "T-2", "6101");
            o.act(&t.key(), "61", EventKind::Issued(t.clone()), 0)
                .unwrap();
            o.state()
        };
        sim.act(&k, "61", EventKind::Verified, 40).unwrap(); // 2026-04-10
        let closed = sim.state();
        let march = figures([&closed, &open], d("2026-03-01"), d("2026-03-31"));
        assert_eq!(
            march,
            TicketFigures {
                issued: 2,
                rectified: 1,
                closed: 0,
                open: 2,
                overdue: 1,
                issued_to_date: 2,
                closed_to_date: 0,
            }
        );
        assert_eq!(march.clearance_rate(), Some(0.0));
        let april = figures([&closed, &open], d("2026-04-01"), d("2026-04-30"));
        assert_eq!((april.issued, april.closed, april.open), (0, 1, 1));
        assert_eq!(april.clearance_rate(), Some(0.5));
        assert_eq!(TicketFigures::default().clearance_rate(), None);
    }

    const HEADER: &str = "id,target,category,source,severity,deadline,description";

    #[test]
    fn inventory_parses_by_header_name() {
        let csv =
            "\u{feff}description,deadline,severity,source,category,target,id,household_code\n\
                   roof,2026-04-01,high,spot_check,housing,610102,A-1,\n\
                   \"water, again\",2026-04-02,low,self_found,water,6101,A-2,61010200100100001\n";
        let ts = parse_inventory(c("61"), csv.as_bytes()).unwrap();
        assert_eq!(ts.len(), 2);
        assert_eq!(ts[0].key(), TicketKey::new(c("61"), "A-1"));
        assert_eq!(ts[0].household_code, None);
        assert_eq!(ts[1].description, "water, again");
        assert_eq!(ts[1].source, TicketSource::SelfFound);
        assert_eq!(ts[1].household_code.as_deref(), Some("61010200100100001"));
    }

    #[test]
    fn inventory_refuses_bad_files_and_rows() {
        let err = |csv: &str| {
            parse_inventory(c("6101"), csv.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert!(err("").contains("empty"));
        assert!(err(&format!("{HEADER}\n")).contains("no tickets"));
        assert!(err(&format!("{HEADER},color\n")).contains("unknown column \"color\""));
        assert!(err(&format!("{HEADER},id\n")).contains("column \"id\" appears twice"));
        assert!(err("id,target\n").contains("required column \"category\" is missing"));
        let rows = format!(
            "{HEADER}\n\
             A,610102,c,inspection,high,2026-04-01,d\n\
             A,610102,c,inspection,high,2026-04-01,d\n\
             B,6102,c,inspection,urgent,2026-02-30,d\n\
             C,610102,,nowhere,low,2026-04-01,\n\
             D,610102,c\n"
        );
        let e = parse_inventory(c("6101"), rows.as_bytes()).unwrap_err();
        let InventoryError::Rows(errors) = &e else {
            panic!("{e}")
        };
        let got: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got[0],
            "line 3, field id: id \"A\" already appears on line 2"
        );
        assert!(
            got[1].starts_with("line 4, field severity: unknown value \"urgent\""),
            "{}",
            got[1]
        );
        assert_eq!(
            got[2],
            "line 4, field deadline: 2026-02-30 is not a calendar date"
        );
        assert_eq!(got[3], "line 5, field category: missing value");
        assert!(got[4].starts_with("line 5, field source: unknown value \"nowhere\""));
        assert_eq!(got[5], "line 5, field description: missing value");
        assert_eq!(got[6], "line 6: 3 fields where the header has 7");
        assert_eq!(got.len(), 7);
        // A well-formed target outside the issuer's subtree.
        let e = err(&format!("{HEADER}\nB,6102,c,inspection,low,2026-04-01,d\n"));
        assert!(
            e.contains(
                "line 2, field target: division 6102 is not in the subtree of the issuer 6101"
            ),
            "{e}"
        );
        assert!(
            err(&format!("{HEADER}\nB,6101,c,inspection,low,2026-04-01,d\n"))
                .contains("is the issuer itself")
        );
        let bad_utf8 = [
            HEADER.as_bytes(),
            b"\nA,610102,\xff,inspection,low,2026-04-01,d\n",
        ]
        .concat();
        let e = parse_inventory(c("6101"), bad_utf8.as_slice())
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2, field category: not valid UTF-8"), "{e}");
    }

    #[test]
    fn inventory_progress_per_child_region() {
        let mk = |id: &str, target: &str, steps: usize| {
            let mut sim = Sim::new();
            let t = ticket("61", id, target);
            let k = t.key();
            sim.act(&k, "61", EventKind::Issued(t.clone()), 0).unwrap();
            if steps > 0 {
                work(&mut sim, &t, 1, steps > 1);
            }
            sim.state()
        };
        let states = [
            mk("1", "610102", 2),
            mk("2", "610102001", 1),
            mk("3", "610103", 2),
            mk("4", "6101", 0),
            mk("5", "6102", 0),
        ];
        let p = inventory_progress(c("6101"), &states, d("2026-03-20"));
        assert_eq!(p.total.issued, 4);
        assert_eq!(p.total.open, 2);
        let rows: Vec<(String, u64, u64, u64, u64, bool)> = p
            .regions
            .iter()
            .map(|r| {
                (
                    r.division.to_string(),
                    r.issued,
                    r.rectified,
                    r.closed,
                    r.overdue,
                    r.cleared_to_zero(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("6101".into(), 1, 0, 0, 1, false),
                ("610102".into(), 2, 1, 1, 0, false),
                ("610103".into(), 1, 0, 1, 0, true),
            ]
        );
        let p = inventory_progress(c("61"), &states, d("2026-03-20"));
        let codes: Vec<String> = p.regions.iter().map(|r| r.division.to_string()).collect();
        assert_eq!(codes, ["6101", "6102"]);
        assert_eq!(p.regions[0].issued, 4);
    }
}
