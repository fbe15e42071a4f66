//! The three ways events enter the ticket log: a peer's batch (`receive_tickets`), a
//! local issue (`issue_tickets`) and a local action on held tickets (`act_on_tickets`).
//! Each builds a `Pending` set and commits it through `commit_pending` (all or nothing,
//! flushed before it returns).

use super::*;

impl Ledger {
    /// Store the events a peer delivered (a direct child, or this node's parent) and, for a
    /// child, that its ticket log is stored up to `upto`; flushed before this returns.
    /// Returns how many events were new here.
    ///
    /// A child may only deliver events created in its own subtree; the parent only events
    /// created above this node. Anything else refuses the whole batch.
    ///
    /// The events' signatures are checked by the sync layer before this (it holds the CA);
    /// `certs` are the certificates (DER) of their signers, stored with them so that this
    /// node can forward them.
    pub fn receive_tickets(
        &self,
        from: Code,
        events: Vec<Sealed>,
        certs: &[Vec<u8>],
        upto: u64,
    ) -> Result<usize> {
        let me = self.division;
        let from_child = from.parent() == Some(me);
        let from_parent = me.parent() == Some(from);
        if !from_child && !from_parent {
            return Err(LedgerError::NotInSubtree {
                division: from,
                node: me,
            });
        }
        for e in events.iter().map(|s| &s.event) {
            let o = e.id.origin;
            // From a parent: events created above this node, or by this node or below it
            // (sent back after this store was restored from an older backup).
            let ok = if from_child {
                from.contains(o)
            } else {
                o.contains(me) || me.contains(o)
            };
            if !ok {
                return Err(LedgerError::TicketRefused(format!(
                    "event {} of ticket {} was created by {o}, which {} cannot deliver to {me}",
                    e.id,
                    e.ticket,
                    if from_child {
                        format!("is outside the subtree of the child {from} and")
                    } else {
                        format!("is neither above nor below {me}; the parent {from}")
                    }
                )));
            }
            // An issue decides where a ticket's events travel: one that breaks the ticket
            // rules (a target outside the issuer's subtree, an issuer its creator does not
            // serve) is refused here rather than stored and forwarded.
            if matches!(e.kind, EventKind::Issued(_)) {
                if let Err(err) = tk::check(None, e) {
                    return Err(LedgerError::TicketRefused(format!(
                        "event {} from {from} issues an invalid ticket: {err}",
                        e.id
                    )));
                }
            }
        }
        // The child's own event counter, as far as this batch shows it.
        let own_seq = events
            .iter()
            .filter(|s| s.event.id.origin == from)
            .map(|s| s.event.id.seq)
            .max();
        let w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut p = self.pending()?;
        let offered: HashMap<Hash, &Vec<u8>> =
            certs.iter().map(|c| (sign::fingerprint(c), c)).collect();
        for e in events {
            let signer = e.seal.as_ref().map(|s| s.signer);
            let before = p.added;
            self.add_event(&mut p, Some(from), e)?;
            if let Some(fp) = signer.filter(|_| p.added > before) {
                if !p.certs.contains_key(&fp) && self.certificate(&fp)?.is_none() {
                    if let Some(der) = offered.get(&fp) {
                        p.certs.insert(fp, (*der).clone());
                    }
                }
            }
        }
        if from_child {
            if let Some(seq) = own_seq {
                self.stage_origin_seq(from, seq, &mut p.ws)?;
            }
            let k = cursor_key(UP_PREFIX, from);
            let old = u64_of(self.store.get(TreeId::Meta, &k)?);
            p.ws.put(TreeId::Meta, &k, upto.max(old).to_be_bytes().to_vec());
        }
        let added = p.added;
        self.finish(w, p)?;
        Ok(added)
    }

    /// Issue `tickets` as `actor` (a division this node serves, the tickets' issuer). All or
    /// nothing: a ticket that breaks a rule, or whose key is already issued, refuses the call.
    pub fn issue_tickets(&self, actor: Code, tickets: Vec<Ticket>) -> Result<Vec<TicketKey>> {
        self.check_actor(actor)?;
        let mut keys = BTreeSet::new();
        for t in &tickets {
            if t.issuer != actor {
                return Err(LedgerError::TicketRefused(format!(
                    "ticket {}: its issuer {} is not the acting division {actor}",
                    t.key(),
                    t.issuer
                )));
            }
            if t.parent.is_some() {
                return Err(LedgerError::TicketRefused(format!(
                    "ticket {}: sub-tickets are created by splitting their parent ticket",
                    t.key()
                )));
            }
            t.check_valid()?;
            if !keys.insert(t.key()) {
                return Err(LedgerError::TicketRefused(format!(
                    "ticket {} appears twice; ids are unique per issuer",
                    t.key()
                )));
            }
        }
        let w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut b = self.pending()?;
        let now = unix_ms_now();
        let mut events = Vec::with_capacity(tickets.len());
        for t in tickets {
            // Issuing the same ticket again changes nothing (an inventory imported twice, or
            // again after an interruption); the same key with other content is refused.
            if self.route(&b, &t.key())?.is_some() {
                let held = tk::fold(&self.events_of(&b, &t.key())?);
                if held.is_some_and(|s| s.ticket == t) {
                    continue;
                }
                return Err(tk::TicketError::AlreadyIssued { key: t.key() }.into());
            }
            events.push(vec![self.new_event(
                &mut b,
                t.key(),
                actor,
                now,
                EventKind::Issued(t),
            )]);
        }
        self.write_chunks(w, &b, events)?;
        Ok(keys.into_iter().collect())
    }

    /// Take `act` as `actor` (a division this node serves) on each of `keys`. All or nothing:
    /// an action the state machine refuses on any ticket refuses the call with that ticket's
    /// error. Returns the tickets' states afterwards.
    pub fn act_on_tickets(
        &self,
        actor: Code,
        keys: &[TicketKey],
        act: &Act,
    ) -> Result<Vec<TicketState>> {
        self.check_actor(actor)?;
        let w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut b = self.pending()?;
        let now = unix_ms_now();
        let mut seen = BTreeSet::new();
        let mut events = Vec::new();
        let mut after = Vec::new();
        for key in keys {
            if !seen.insert(key.clone()) {
                continue;
            }
            let held = self.events_of(&b, key)?;
            let own = tk::fold(&held).ok_or_else(|| tk::TicketError::NotIssued {
                key: key.clone(),
                action: act.name(),
            })?;
            let kind = match act {
                Act::Accept => EventKind::Accepted,
                Act::Start => EventKind::Started,
                Act::Rectify { note } => EventKind::Rectified { note: note.clone() },
                Act::Verify => EventKind::Verified,
                Act::Return { reason } => EventKind::Returned {
                    reason: reason.clone(),
                },
                Act::Supervise { on } => EventKind::Supervise { on: *on },
                Act::Check { note, finding } => EventKind::Checked {
                    findings: finding.is_some(),
                    note: note.clone(),
                },
                Act::Split { into } => EventKind::Split {
                    children: into
                        .iter()
                        .map(|c| {
                            TicketKey::new(
                                own.ticket.target,
                                sub_id(&key.id, own.ticket.target, *c),
                            )
                        })
                        .collect(),
                },
            };
            if matches!(act, Act::Supervise { .. }) && own.is_split() {
                // The fold checks a split ticket's own state (rectifying); a split ticket
                // closed through its sub-tickets is closed all the same.
                let shown = self.fold_tree(&b, key)?;
                if shown.is_some_and(|s| s.state == tk::State::Closed) {
                    return Err(tk::TicketError::Supervision {
                        key: key.clone(),
                        reason: "it is closed (all its sub-tickets are closed): supervision no longer applies".into(),
                    }
                    .into());
                }
            }
            let e = self.new_event(&mut b, key.clone(), actor, now, kind);
            tk::check(Some(&own), &e)?;
            let mut group = vec![e];
            if let Act::Split { into } = act {
                for c in into {
                    let t = Ticket {
                        issuer: own.ticket.target,
                        id: sub_id(&key.id, own.ticket.target, *c),
                        target: *c,
                        parent: Some(key.clone()),
                        ..own.ticket.clone()
                    };
                    t.check_valid()?;
                    if self.route(&b, &t.key())?.is_some() {
                        return Err(tk::TicketError::AlreadyIssued { key: t.key() }.into());
                    }
                    group.push(self.new_event(&mut b, t.key(), actor, now, EventKind::Issued(t)));
                }
            }
            if let Act::Check {
                finding: Some(t), ..
            } = act
            {
                if keys.len() != 1 {
                    return Err(LedgerError::TicketRefused(
                        "a spot check's findings are recorded for one task at a time".into(),
                    ));
                }
                self.check_actor(t.issuer)?;
                if t.source != tk::TicketSource::SpotCheck || t.spot_check.is_some() {
                    return Err(LedgerError::TicketRefused(format!(
                        "ticket {}: a spot check's findings are a ticket with source spot_check",
                        t.key()
                    )));
                }
                t.check_valid()?;
                if self.route(&b, &t.key())?.is_some() {
                    return Err(tk::TicketError::AlreadyIssued { key: t.key() }.into());
                }
                let t = (**t).clone();
                group.push(self.new_event(&mut b, t.key(), t.issuer, now, EventKind::Issued(t)));
            }
            let split = own.is_split() || matches!(act, Act::Split { .. });
            after.push((key.clone(), split, held, group[0].clone()));
            events.push(group);
        }
        self.write_chunks(w, &b, events)?;
        // The states after the action: the held events plus the new one (split tickets are
        // read back, their state derives from sub-tickets).
        after
            .into_iter()
            .map(|(k, split, mut held, e)| {
                let s = if split {
                    self.ticket(&k)?
                } else {
                    held.push(e);
                    tk::fold(&held)
                };
                s.ok_or_else(|| corrupt("tickets", format!("{k} vanished after an action")))
            })
            .collect()
    }
}
