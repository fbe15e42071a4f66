'use strict';
/* Bottomline dashboard: rectification tickets, their progress to zero, a ticket's detail and the
 * verify / return actions. Loaded after app.js, whose helpers and state it uses. */

// ---------------------------------------------------------------- tickets and progress

function ticketBadges(tk) {
  let s = `<span class="badge state st-${esc(tk.state)}">${esc(word('st', tk.state))}</span>`;
  if (tk.overdue) s += ` <span class="badge red">${esc(t('overdue'))}</span>`;
  if (tk.supervised_by) s += ` <span class="badge orange" title="${esc(tk.supervised_by)}">${esc(t('supervised'))}</span>`;
  if (tk.returns > 0) s += ` <span class="badge grey">${esc(t('returnedTimes', tk.returns))}</span>`;
  return s;
}

async function loadTickets(v, live) {
  const data = await get(url('/api/tickets', { target: v.division, state: v.tstate, overdue: v.overdue ? 'true' : '', inventory: v.inv, limit: TICKET_LIMIT }));
  if (!live()) return;
  const list = data.tickets || [];
  $('#tickets-note').textContent = list.length < data.total ? t('ticketsShown', data.total, list.length) : t('ticketsCount', data.total ?? list.length);
  const cols = ['t_id', 't_target', 't_category', 't_source', 't_severity', 't_deadline', 't_state', 't_inventory'];
  const head = `<thead><tr>${cols.map((c) => `<th>${esc(t(c))}</th>`).join('')}</tr></thead>`;
  if (!list.length) { $('#tickets').innerHTML = `${head}<tbody><tr><td class="empty" colspan="${cols.length}">${esc(t('noTickets'))}</td></tr></tbody>`; return; }
  const body = list.map((tk) => `<tr data-key="${esc(tk.key)}" class="${tk.overdue ? 'overdue' : ''}${tk.key === v.ticket ? ' selected' : ''}" tabindex="0">
    <td class="nowrap"><a href="${esc(linkTo({ ticket: tk.key }))}">${esc(tk.id)}</a> <span class="muted small" title="${esc(t('t_issuer'))}">${esc(tk.issuer)}</span></td>
    <td>${esc(tk.target_name || tk.target)}</td><td>${esc(tk.category)}</td><td>${esc(word('src', tk.source))}</td>
    <td>${esc(word('sev', tk.severity))}</td><td class="nowrap">${esc(fmtDate(tk.deadline))}</td>
    <td>${ticketBadges(tk)}</td><td>${esc(tk.inventory || '')}</td></tr>`).join('');
  $('#tickets').innerHTML = `${head}<tbody>${body}</tbody>`;
}

function onTicketsClick(e) {
  const tr = e.target.closest('tr[data-key]');
  if (!tr || e.target.closest('a')) return;
  navigate(linkTo({ ticket: tr.dataset.key }));
}

function onTicketFilter(e) {
  e.preventDefault();
  go({ tstate: $('#ticket-state').value, overdue: $('#ticket-overdue').checked ? '1' : null, inv: $('#ticket-inventory').value.trim(), ticket: null });
}

function progressRow(r, isTotal) {
  const issued = r.issued || 0;
  const pct = (n) => (issued ? Math.min(100, (n / issued) * 100) : 0);
  const waiting = Math.max(0, Math.min(r.rectified || 0, r.open || 0));
  const share = issued ? `${nf(1).format(pct(r.closed))}%` : '—';
  const name = isTotal ? `<strong>${esc(t('total'))}</strong>` : esc(r.name);
  const badges = [
    r.cleared_to_zero ? `<span class="badge green">${esc(t('cleared'))}</span>` : '',
    r.overdue ? `<span class="badge red">${esc(t('overdue'))} ${esc(nf(0).format(r.overdue))}</span>` : '',
  ].join(' ');
  const title = `${t('issued')} ${r.issued} · ${t('closed')} ${r.closed} · ${t('waiting')} ${waiting} · ${t('open')} ${r.open} · ${t('overdue')} ${r.overdue}`;
  return `<div class="prog-row${isTotal ? ' total' : ''}${r.cleared_to_zero ? ' cleared' : ''}" data-division="${esc(r.division)}" title="${esc(title)}">
    <div class="prog-name">${name}</div>
    <div class="bar"><span class="seg closed" style="width:${pct(r.closed)}%"></span><span class="seg waiting" style="width:${pct(waiting)}%"></span></div>
    <div class="prog-num">${esc(t('progressNum', nf(0).format(r.closed || 0), nf(0).format(issued)))} <b>${esc(share)}</b></div>
    <div class="prog-badges">${badges}</div></div>`;
}

async function loadProgress(v, live) {
  const data = await get(url('/api/progress', { division: v.division, inventory: v.inv }));
  if (!live()) return;
  $('#progress-note').textContent = data.inventory ? `${t('inventory')}: ${data.inventory}` : '';
  const legend = `<div class="legend"><span class="sw closed"></span>${esc(t('closed'))}<span class="sw waiting"></span>${esc(t('waiting'))}<span class="sw open"></span>${esc(t('open'))}</div>`;
  if (!data.total || !data.total.issued) {
    $('#progress').innerHTML = `<div class="empty-note">${esc(t('noTicketsHere'))}</div>`;
    return;
  }
  const regions = (data.regions || []).map((r) => progressRow(r, false)).join('');
  $('#progress').innerHTML = legend + progressRow(data.total, true) + regions;
}

// ---------------------------------------------------------------- ticket detail and actions

function closeDrawer() {
  const d = $('#ticket-detail');
  d.hidden = true;
  d.innerHTML = '';
}

async function loadTicketDetail(v, live) {
  if (!v.ticket) { closeDrawer(); return; }
  const drawer = $('#ticket-detail');
  if (drawer.hidden || drawer.dataset.key !== v.ticket) {
    drawer.dataset.key = v.ticket;
    drawer.innerHTML = `<div class="drawer-head"><h2>${esc(t('detail'))} <code>${esc(v.ticket)}</code></h2>
      <button type="button" class="icon-btn close" id="detail-close" title="${esc(t('close'))}">×</button></div><div class="drawer-body"></div>`;
    drawer.hidden = false;
  }
  const tk = await get(url('/api/ticket', { key: v.ticket }), true);
  if (!live()) return;
  renderTicketDetail(tk);
}

/** What the person may do with the ticket, before they try. */
function actHint(tk) {
  let hint = '';
  if (tk.state !== 'rectified') hint = t('notActionable');
  else if (!state.me.user) hint = t('loginToAct');
  else if (state.me.user.role !== 'operator') hint = t('viewerNoAct');
  return hint ? `<div class="muted small">${esc(hint)}</div>` : '';
}

function renderTicketDetail(tk) {
  const drawer = $('#ticket-detail');
  const field = (k, val) => (val ? `<dt>${esc(t(k))}</dt><dd>${val}</dd>` : '');
  const dl = [
    field('t_target', `${esc(tk.target_name || '')} <span class="code">${esc(tk.target)}</span>`),
    field('t_issuer', `<span class="code">${esc(tk.issuer)}</span>`),
    field('t_category', esc(tk.category)), field('t_source', esc(word('src', tk.source))),
    field('t_severity', esc(word('sev', tk.severity))), field('t_inventory', esc(tk.inventory)),
    field('t_deadline', `${esc(fmtDate(tk.deadline))}${tk.overdue ? ` <span class="badge red">${esc(t('overdue'))}</span>` : ''}`),
    field('t_issued_on', esc(tk.issued_on && fmtDate(tk.issued_on))), field('t_delivered_on', esc(tk.delivered_on && fmtDate(tk.delivered_on))),
    field('t_rectified_on', esc(tk.rectified_on && fmtDate(tk.rectified_on))), field('t_closed_on', esc(tk.closed_on && fmtDate(tk.closed_on))),
    field('t_supervised_by', esc(tk.supervised_by)), field('t_returns', tk.returns ? esc(tk.returns) : ''),
    field('t_description', `<div class="text">${esc(tk.description)}</div>`), field('t_note', tk.note && `<div class="text">${esc(tk.note)}</div>`),
    field('t_return_reason', tk.return_reason && `<div class="text">${esc(tk.return_reason)}</div>`),
  ].join('');
  const msg = state.actMessage && state.actMessage.key === tk.key ? state.actMessage.text : '';
  const open = tk.state === 'rectified'; // only a rectified ticket is verified or returned
  state.actMessage = null;
  const history = (tk.history || []).map((h) => `<li class="${h.applied === false ? 'not-applied' : ''}">
      <div class="tl-head"><b>${esc(word('act', h.action))}</b> <span class="muted">${esc(fmtDateTime(h.at_unix_ms))}</span>
      <span class="muted">· ${esc(t('actor'))} <span class="code">${esc(h.actor)}</span></span>
      ${h.applied === false ? `<span class="badge grey">${esc(t('ignored'))}${h.ignored_reason ? `: ${esc(h.ignored_reason)}` : ''}</span>` : ''}</div>
      ${h.detail ? `<div class="text">${esc(h.detail)}</div>` : ''}
      ${h.signed_by ? `<div class="muted small">${esc(t('signedBy'))}: ${esc(h.signed_by)}</div>` : ''}</li>`).join('');
  $('.drawer-body', drawer).innerHTML = `<div class="badges">${ticketBadges(tk)}</div><dl class="kv">${dl}</dl>
    <div class="act-panel">
      ${actHint(tk)}
      <textarea id="return-reason" rows="2" placeholder="${esc(t('returnReason'))}"${open ? '' : ' hidden'}></textarea>
      <input id="act-note" type="text" placeholder="${esc(t('actNote'))}"${open ? '' : ' hidden'}>
      <div class="act-buttons"><button type="button" id="act-verify" class="primary"${open ? '' : ' disabled'}>${esc(t('verify'))}</button>
      <button type="button" id="act-return" class="danger"${open ? '' : ' disabled'}>${esc(t('return'))}</button></div>
      <div id="act-error" class="error" role="alert" hidden></div>
      <div id="act-result" class="ok"${msg ? '' : ' hidden'}>${esc(msg)}</div>
    </div>
    <h3>${esc(t('history'))}</h3>
    ${history ? `<ol class="timeline">${history}</ol>` : `<div class="muted">${esc(t('noHistory'))}</div>`}`;
  $('#act-verify').addEventListener('click', () => act('verify'));
  $('#act-return').addEventListener('click', () => act('return'));
}

function showActError(msg) {
  const el = $('#act-error');
  if (!el) return;
  el.textContent = msg;
  el.hidden = !msg;
  if (msg && $('#act-result')) $('#act-result').hidden = true;
}

async function act(action) {
  const key = state.v.ticket;
  const reason = $('#return-reason').value.trim();
  const note = $('#act-note').value.trim();
  showActError('');
  if (action === 'return' && !reason) {
    showActError(t('needReason'));
    $('#return-reason').focus();
    return;
  }
  const buttons = [$('#act-verify'), $('#act-return')];
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const res = await api('/api/tickets/act', { method: 'POST', body: { keys: [key], action, reason: action === 'return' ? reason : '', note } });
    const tk = (res.tickets || [])[0];
    state.actMessage = { key, text: t('actDone', tk ? word('st', tk.state) : '') };
    invalidate('/api/tickets', '/api/ticket?', '/api/progress', '/api/report');
    state.sigs = {};
    await renderView();
  } catch (err) {
    buttons.forEach((b) => { b.disabled = false; });
    showActError(explain(err));
  }
}

