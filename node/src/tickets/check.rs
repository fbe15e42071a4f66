//! The ticket state machine's rules: whether an event may apply to a ticket's state (who may
//! act, from which state, with what text).

use super::*;

impl Ticket {
    /// [`Ticket::validate`] as a [`TicketError::Invalid`] naming the ticket.
    pub fn check_valid(&self) -> Result<(), TicketError> {
        self.validate().map_err(|errors| TicketError::Invalid {
            key: self.key(),
            errors,
        })
    }
}

pub(super) fn target_only(
    s: &TicketState,
    e: &Event,
    action: &'static str,
) -> Result<(), TicketError> {
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

pub(super) fn issuer_only(
    s: &TicketState,
    e: &Event,
    action: &'static str,
) -> Result<(), TicketError> {
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

pub(super) fn in_state(
    s: &TicketState,
    expected: State,
    done: &'static str,
) -> Result<(), TicketError> {
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

pub(super) fn not_split(s: &TicketState, done: &'static str) -> Result<(), TicketError> {
    if s.is_split() {
        Err(TicketError::IsSplit { key: s.key(), done })
    } else {
        Ok(())
    }
}

pub(super) fn text(s: &TicketState, what: &str, v: &str) -> Result<(), TicketError> {
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
/// - `Checked { findings, note }`: only on a spot-check task (whose plain `Rectified` is
///   refused), by the target, from `delivered`, `accepted` or `rectifying`, a non-empty note;
///   the task becomes `rectified` with its result;
/// - `Split { children }`: by the target, not a spot-check task, from `accepted`, once; the target must have child
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
            return t.check_valid();
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
            if s.ticket.spot_check.is_some() {
                return Err(TicketError::NotAllowed {
                    key: s.key(),
                    actor: event.actor,
                    action: verb,
                    rule: "it is a spot-check task: its target records the check's result (spotcheck record)".into(),
                });
            }
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
        EventKind::Checked { note, .. } => {
            target_only(s, event, verb)?;
            if s.ticket.spot_check.is_none() {
                return Err(TicketError::NotAllowed {
                    key: s.key(),
                    actor: event.actor,
                    action: verb,
                    rule: "it is not a spot-check task".into(),
                });
            }
            if !matches!(
                s.state,
                State::Delivered | State::Accepted | State::Rectifying
            ) {
                return Err(TicketError::WrongState {
                    key: s.key(),
                    state: s.state,
                    expected: State::Rectifying,
                    done,
                });
            }
            text(s, "spot-check note", note)
        }
        EventKind::Split { children } => {
            target_only(s, event, verb)?;
            if s.ticket.spot_check.is_some() {
                return Err(TicketError::BadSplit {
                    key: s.key(),
                    reason: "it is a spot-check task".into(),
                });
            }
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
