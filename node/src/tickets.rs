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
pub use crate::spotcheck::SpotCheckTask;

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
    /// For a double-random spot check (双随机): the draw it comes from. Such a ticket is a
    /// task, not a problem: its target is the village drawn, its source `spot_check`; the
    /// target records the result ([`EventKind::Checked`]) and it counts in the
    /// `spot_checks_done` indicator, not in the ticket figures (`crate::spotcheck`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_check: Option<Box<SpotCheckTask>>,
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
        if let Some(sc) = &self.spot_check {
            if let Err(reason) = sc.validate() {
                errors.push(FieldError::new("spot_check", reason));
            }
            if self.source != TicketSource::SpotCheck {
                errors.push(FieldError::new(
                    "source",
                    format!(
                        "a spot-check task has source spot_check, not {}",
                        self.source
                    ),
                ));
            }
            if self.target.level() != Level::Village {
                errors.push(FieldError::new(
                    "target",
                    format!(
                        "a spot-check task targets the village drawn, not {}",
                        div(self.target)
                    ),
                ));
            }
            if self.parent.is_some() {
                errors.push(FieldError::new("parent", "a spot-check task is not split"));
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
    /// The target of a spot-check task records the check's result: the task is then
    /// rectified (done), awaiting the issuer's verification like any ticket.
    Checked {
        /// Problems were found (they become a ticket of their own, issued with this event).
        findings: bool,
        /// What was checked and found.
        note: String,
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
            EventKind::Checked { .. } => ("record the spot check of", "checked"),
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
            EventKind::Checked { .. } => "check",
        }
    }
}

/// The largest Lamport time an event may carry (2^62). Lamport times grow by one per event,
/// so no real history comes near it; an event beyond it is refused when decoded, so that the
/// next event's time (`max + 1`) cannot overflow and wrap to before everything seen.
pub const MAX_LAMPORT: u64 = 1 << 62;

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

/// The recorded result of a spot check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotResult {
    /// The date it was recorded (China).
    pub on: Date,
    /// Problems were found.
    pub findings: bool,
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
    /// A spot-check task's standing result (cleared by a return for rework).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_result: Option<SpotResult>,
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

    /// The state without its timeline and history: what a list shows of it (and what a
    /// node's ticket index keeps, `ledger/ticket_log/index.rs`).
    pub fn summary(mut self) -> TicketState {
        self.timeline = Vec::new();
        self.history = Vec::new();
        self
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

/// A `yyyy-mm-dd` calendar date (the inventory's and the API's date form): the importers' one
/// date parser.
pub use crate::import::parse_date;

mod check;
pub mod codec;
mod figures;
mod fold;
mod inventory;
pub use check::check;
pub use figures::{figures, spot_check_done, stat_flows, stock_deltas, TicketFigures};
pub use fold::{fold, fold_all, next_lamport, resolve_splits};
pub use inventory::{
    inventory_progress, parse_inventory, InventoryError, InventoryProgress, InventoryRowError,
    ProgressItem, RegionProgress,
};

#[cfg(test)]
mod tests;
