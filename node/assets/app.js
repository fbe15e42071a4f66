'use strict';
/* Bottomline dashboard (防返贫动态监测和帮扶). Plain ES2020, no build step, no framework.
 *
 * One view per division, addressed by the URL hash:
 *   #/d/CODE?period=2026-11&ind=…&each=week|month&cmp=children|LEVEL&tstate=&overdue=1&inv=&ticket=ISSUER/ID
 * Each section (regions, indicators, charts, tickets, progress, ticket detail) loads on its own;
 * <body data-ready> is "0" while a view loads and "1" once its first full render finished.
 * GET answers are cached for a minute (and shared between sections), so switching the language or
 * a chart option re-renders without new requests; ⟳ drops the cache. */

// ---------------------------------------------------------------- constants

const HEADLINE = [
  'monitored_households', 'newly_identified', 'eliminated', 'elimination_rate',
  'declarations_received', 'identified_within_15_days', 'within_deadline_rate',
  'measures_per_household', 'tickets_rectified', 'ticket_clearance_rate',
];
const REGION_COLS = [
  'monitored_households', 'newly_identified', 'eliminated', 'elimination_rate',
  'within_deadline_rate', 'tickets_overdue', 'ticket_clearance_rate',
];
const COMPARE_BARS = ['newly_identified', 'eliminated', 'declarations_received'];
const COMPARE_LINE = 'elimination_rate';
/** Names and units of the indicators, for where no report fetched so far has their column (the
 * server's own labels, node/src/stats/labels.rs, win whenever a report brought them):
 * [Chinese, English, unit in Chinese, unit]. */
const LABELS = {
  monitored_households: ['监测户数', 'monitored households', '户', 'count'],
  monitored_persons: ['监测人数', 'monitored persons', '人', 'count'],
  newly_identified: ['新识别纳入户数', 'newly identified households', '户', 'count'],
  eliminated: ['风险消除户数', 'households with risk eliminated', '户', 'count'],
  elimination_rate: ['风险消除率', 'risk elimination rate', '%', 'ratio'],
  declarations_received: ['申报受理数', 'declarations received', '件', 'count'],
  identified_within_15_days: ['15日内识别认定数', 'identified within 15 days', '件', 'count'],
  within_deadline_rate: ['15日内认定率', 'identified within 15 days (rate)', '%', 'ratio'],
  measures_per_household: ['户均帮扶措施数', 'measures per household', '项/户', 'average'],
  tickets_rectified: ['已整改问题数', 'tickets rectified', '件', 'count'],
  tickets_overdue: ['超期问题数', 'tickets overdue', '件', 'count'],
  ticket_clearance_rate: ['清零率', 'ticket clearance rate', '%', 'ratio'],
  spot_checks_done: ['抽查村数', 'spot checks done', '村', 'count'],
};
const LEVELS = ['nation', 'province', 'city', 'county', 'town', 'village'];
const KINDS = ['week', 'month', 'quarter', 'half', 'year'];
const STATES = ['issued', 'delivered', 'accepted', 'rectifying', 'rectified', 'closed'];
const COLORS = ['#1f5fbf', '#3ba0d8', '#f0a030', '#d9534f', '#4cae4c', '#8e6cc4', '#6b7a90'];
const CACHE_MS = 60000;
const HEALTH_MS = 10000;
const TICKET_LIMIT = 200;

// ---------------------------------------------------------------- dictionary

const I18N = {
  zh: {
    title: '防返贫动态监测和帮扶', nodeLabel: '{0} · {1}节点',
    lvl_nation: '国家级', lvl_province: '省级', lvl_city: '市级', lvl_county: '县级', lvl_town: '乡镇级', lvl_village: '村级',
    all_province: '全部省份', all_city: '全部地市', all_county: '全部县（区）', all_town: '全部乡镇', all_village: '全部村',
    period: '统计期', prevPeriod: '上一期', nextPeriod: '下一期', refresh: '刷新数据',
    kind_week: '周', kind_month: '月', kind_quarter: '季', kind_half: '半年', kind_year: '年',
    yearOpt: '{0}年', weekOpt: '第{0}周', quarterOpt: '第{0}季度', half1: '上半年', half2: '下半年',
    months: ['1月', '2月', '3月', '4月', '5月', '6月', '7月', '8月', '9月', '10月', '11月', '12月'],
    p_year: '{0}年', p_half1: '{0}年上半年', p_half2: '{0}年下半年', p_quarter: '{0}年第{1}季度',
    p_month: '{0}年{1}月', p_week: '{0}年第{1}周', ax_week: '第{0}周', ax_month: '{0}月',
    date: '{0}年{1}月{2}日', dateRange: '{0} 至 {1}',
    login: '登录', logout: '退出', userName: '用户名', password: '密码',
    role_viewer: '只读', role_operator: '操作员',
    loginTitle: '请登录', loginRequired: '本节点需要登录后才能查看数据。',
    loginRetry: '请 {0} 秒后重试。',
    indicators: '主要指标', charts: '图表', allIndicators: '全部指标（含分项）',
    indicator: '指标', dimension: '分项', value: '数值', clickCard: '点击指标卡切换图表指标',
    regions: '下级区域', region: '区域', code: '区划代码', noChildren: '没有下级区域',
    villageLowest: '村是最低一级区域，没有下级区域',
    heldAtCounty: '乡镇、村的数据由县级节点保存，请在县级节点查看',
    noDrill: '本节点不掌握该区域的下级数据',
    childCount: '{0} 个', total: '合计',
    trend: '年度趋势', each_week: '按周', each_month: '按月', thisPeriod: '本期',
    compare: '下级对比', cmp_children: '直属下级', ranking: '排名', rankingOf: '{0}排名',
    noData: '暂无数据', nullExcluded: '{0} 个区域无法计算，未参与排名', chartsUnavailable: '图表组件未能加载',
    tickets: '整改工单', overdueOnly: '仅看逾期', inventory: '清单', filter: '筛选', allStates: '全部状态',
    ticketsCount: '共 {0} 条', ticketsShown: '共 {0} 条，显示前 {1} 条', noTickets: '没有符合条件的工单',
    t_id: '编号', t_issuer: '下发单位', t_target: '整改对象', t_category: '问题类别', t_source: '来源',
    t_severity: '程度', t_deadline: '整改期限', t_state: '状态', t_inventory: '清单',
    t_description: '问题描述', t_issued_on: '下发日期', t_delivered_on: '送达日期',
    t_rectified_on: '整改日期', t_closed_on: '销号日期', t_note: '整改说明',
    t_return_reason: '退回原因', t_returns: '退回次数', t_supervised_by: '督办单位',
    overdue: '逾期', supervised: '督办', returnedTimes: '退回{0}次',
    st_issued: '已下发', st_delivered: '已送达', st_accepted: '已接收', st_rectifying: '整改中',
    st_in_progress: '整改中', st_rectified: '已整改待核验', st_closed: '已销号', st_returned: '已退回',
    sev_low: '一般', sev_medium: '较重', sev_high: '严重',
    src_inspection: '督查巡查', src_spot_check: '抽查', src_assessment: '考核评估',
    src_department_feedback: '部门反馈', src_self_found: '自查发现',
    act_issue: '下发', act_deliver: '送达', act_accept: '接收', act_start: '开始整改',
    act_rectify: '整改完成', act_verify: '核验销号', act_return: '退回重改', act_supervise: '督办',
    act_split: '拆分下发',
    progress: '清零进度', noTicketsHere: '没有下发到本区域的整改工单', cleared: '已清零', issued: '下发', open: '未销号', waiting: '待核验',
    closed: '已销号', progressNum: '{0}/{1} 已销号',
    detail: '工单详情', close: '关闭', history: '处理记录', noHistory: '暂无记录',
    ignored: '未生效', signedBy: '签名', actor: '操作方',
    verify: '核验通过', return: '退回', returnReason: '退回原因（退回时必填）', actNote: '备注（可选）',
    needReason: '请填写退回原因', actDone: '操作成功，工单状态：{0}',
    loginToAct: '核验与退回需要登录，只有操作员可以执行。', viewerNoAct: '只读账户可以查看，不能核验或退回。',
    notActionable: '只有“已整改待核验”的工单可以核验销号或退回。',
    health: '同步状态', healthOf: '本节点（{0}）与下级节点的同步', healthOfAlone: '本节点（{0}）', updatedAt: '每 10 秒刷新 · 更新于 {0}',
    h_child: '下级节点', h_connected: '连接', h_last: '最后联系', h_lag: '滞后', h_acked: '已确认/最新',
    h_backlog: '待同步', h_tickets: '工单待同步（上行/下行）', h_relay: '经中继', h_status: '状态',
    connected: '已连接', disconnected: '未连接', never: '从未联系', silent: '静默', stalled: '停滞',
    ok: '正常', yes: '是', no: '否', noChildNodes: '没有下级节点连接到本节点',
    noChildNodesCounty: '县级节点没有下级节点：乡镇、村的数据由本节点直接保存和汇总',
    uplink: '上级链路', noUplink: '无上级（本节点为顶层）', lastError: '最近错误', ackedBacklog: '已确认 {0}，待同步 {1}',
    ticketAckedBacklog: '工单已确认 {0}，待同步 {1}',
    selfCheck: '自检', selfCheckNone: '尚未自检', selfCheckOk: '一致（{0}，{1} 个数据格）',
    selfCheckBad: '{0} 个数据格不一致（{1}）', nodeHead: '本节点序号 {0} · 工单序号 {1}',
    thresholds: '静默阈值 {0} · 停滞阈值 {1}',
    ago_s: '{0}秒前', ago_m: '{0}分钟前', ago_h: '{0}小时前', ago_d: '{0}天前',
    dur_s: '{0}秒', dur_m: '{0}分钟', dur_h: '{0}小时', dur_d: '{0}天',
    networkError: '无法连接服务器', yuan: '元', unitSep: '',
    loginWrong: '用户名或密码错误', err400: '请求有误', err401: '请先登录', err403: '没有权限执行此操作',
    err404: '未找到', err409: '工单当前状态不允许此操作', err429: '尝试次数过多', err500: '服务器出错',
  },
  en: {
    title: 'Preventing Return to Poverty: Monitoring & Assistance', nodeLabel: '{0} · {1} node',
    lvl_nation: 'national', lvl_province: 'province', lvl_city: 'city', lvl_county: 'county', lvl_town: 'town', lvl_village: 'village',
    all_province: 'all provinces', all_city: 'all cities', all_county: 'all counties', all_town: 'all towns', all_village: 'all villages',
    period: 'Period', prevPeriod: 'previous period', nextPeriod: 'next period', refresh: 'reload data',
    kind_week: 'week', kind_month: 'month', kind_quarter: 'quarter', kind_half: 'half-year', kind_year: 'year',
    yearOpt: '{0}', weekOpt: 'W{0}', quarterOpt: 'Q{0}', half1: 'H1', half2: 'H2',
    months: ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'],
    p_year: '{0}', p_half1: 'H1 {0}', p_half2: 'H2 {0}', p_quarter: 'Q{1} {0}',
    p_month: '{2} {0}', p_week: '{0}-W{3}', ax_week: 'W{0}', ax_month: '{1}',
    date: '{3} {2}, {0}', dateRange: '{0} – {1}',
    login: 'Log in', logout: 'Log out', userName: 'user name', password: 'password',
    role_viewer: 'viewer', role_operator: 'operator',
    loginTitle: 'Please log in', loginRequired: 'This node requires logging in to read its data.',
    loginRetry: 'Try again in {0} s.',
    indicators: 'Key indicators', charts: 'Charts', allIndicators: 'All indicators (with breakdowns)',
    indicator: 'Indicator', dimension: 'Breakdown', value: 'Value', clickCard: 'click a card to chart it',
    regions: 'Sub-regions', region: 'Region', code: 'Code', noChildren: 'No sub-regions',
    villageLowest: 'A village is the lowest level: it has no sub-regions',
    heldAtCounty: 'Town and village figures are held at the county node: see them in the county node\'s dashboard',
    noDrill: 'This node holds no data below this region',
    childCount: '{0}', total: 'Total',
    trend: 'Trend over the year', each_week: 'by week', each_month: 'by month', thisPeriod: 'selected',
    compare: 'Sub-regions compared', cmp_children: 'direct sub-regions', ranking: 'Ranking',
    rankingOf: 'Ranking: {0}',
    noData: 'No data', nullExcluded: '{0} regions without a value are not ranked',
    chartsUnavailable: 'The chart library did not load',
    tickets: 'Rectification tickets', overdueOnly: 'overdue only', inventory: 'inventory', filter: 'Filter',
    allStates: 'all states', ticketsCount: '{0} tickets', ticketsShown: '{0} tickets, first {1} shown',
    noTickets: 'No tickets match',
    t_id: 'ID', t_issuer: 'Issuer', t_target: 'Target', t_category: 'Category', t_source: 'Source',
    t_severity: 'Severity', t_deadline: 'Deadline', t_state: 'State', t_inventory: 'Inventory',
    t_description: 'Description', t_issued_on: 'Issued on', t_delivered_on: 'Delivered on',
    t_rectified_on: 'Rectified on', t_closed_on: 'Closed on', t_note: 'Rectification note',
    t_return_reason: 'Return reason', t_returns: 'Returns', t_supervised_by: 'Supervised by',
    overdue: 'overdue', supervised: 'supervised', returnedTimes: 'returned {0}×',
    st_issued: 'issued', st_delivered: 'delivered', st_accepted: 'accepted', st_rectifying: 'rectifying',
    st_in_progress: 'in progress', st_rectified: 'rectified, awaiting verification', st_closed: 'closed',
    st_returned: 'returned',
    sev_low: 'low', sev_medium: 'medium', sev_high: 'high',
    src_inspection: 'inspection', src_spot_check: 'spot check', src_assessment: 'assessment',
    src_department_feedback: 'department feedback', src_self_found: 'self-found',
    act_issue: 'issued', act_deliver: 'delivered', act_accept: 'accepted', act_start: 'started rectifying',
    act_rectify: 'rectified', act_verify: 'verified and closed', act_return: 'returned for rework',
    act_supervise: 'supervision', act_split: 'split',
    progress: 'Progress to zero open tickets', noTicketsHere: 'No ticket was issued to this region', cleared: 'cleared', issued: 'issued', open: 'open',
    waiting: 'awaiting verification', closed: 'closed', progressNum: '{0}/{1} closed',
    detail: 'Ticket', close: 'Close', history: 'History', noHistory: 'No events',
    ignored: 'ignored', signedBy: 'signed', actor: 'by',
    verify: 'Verify', return: 'Return', returnReason: 'reason for returning (required to return)',
    actNote: 'note (optional)', needReason: 'Please give a reason for returning the ticket',
    actDone: 'Done; the ticket is now: {0}', loginToAct: 'Verifying and returning need an operator\'s login.',
    viewerNoAct: 'A viewer may read but not verify or return tickets.',
    notActionable: 'Only a rectified ticket (awaiting verification) can be verified or returned.',
    health: 'Sync health', healthOf: 'This node ({0}) and its child nodes', healthOfAlone: 'This node ({0})', updatedAt: 'refreshed every 10 s · last at {0}',
    h_child: 'Child node', h_connected: 'Link', h_last: 'Last contact', h_lag: 'Lag', h_acked: 'Acked / head',
    h_backlog: 'Backlog', h_tickets: 'Ticket backlog (up / down)', h_relay: 'Via relay', h_status: 'Status',
    connected: 'connected', disconnected: 'disconnected', never: 'never', silent: 'SILENT', stalled: 'STALLED',
    ok: 'OK', yes: 'yes', no: 'no', noChildNodes: 'No child node has connected to this node',
    noChildNodesCounty: 'A county node has no child nodes: it holds and sums its towns\' and villages\' figures itself',
    uplink: 'Uplink', noUplink: 'none (this node is the top)', lastError: 'last error',
    ackedBacklog: 'acked {0}, backlog {1}', ticketAckedBacklog: 'tickets acked {0}, backlog {1}',
    selfCheck: 'Self-check', selfCheckNone: 'not run yet', selfCheckOk: 'consistent ({0}, {1} cells)',
    selfCheckBad: '{0} cells differ ({1})', nodeHead: 'head {0} · ticket head {1}',
    thresholds: 'silent after {0} · stalled after {1}',
    ago_s: '{0} s ago', ago_m: '{0} min ago', ago_h: '{0} h ago', ago_d: '{0} d ago',
    dur_s: '{0} s', dur_m: '{0} min', dur_h: '{0} h', dur_d: '{0} d',
    networkError: 'Cannot reach the server', yuan: 'yuan', unitSep: ' ', loginWrong: 'wrong name or password',
  },
};

// ---------------------------------------------------------------- state and small helpers

const state = {
  lang: 'zh', me: null, route: null, v: null, viewToken: 0,
  cache: new Map(), columns: new Map(), charts: {}, healthTimer: null, nf: new Map(),
  sigs: {}, regionSort: { key: null, desc: true }, actMessage: null, loginLockUntil: 0,
};

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const isZh = () => state.lang === 'zh';

function t(key, ...args) {
  const s = I18N[state.lang][key] ?? I18N.zh[key] ?? key;
  return typeof s === 'string' ? s.replace(/\{(\d)\}/g, (_, i) => String(args[+i] ?? '')) : s;
}

function esc(v) {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

/** Translate a vocabulary word (state, severity, …): known words by the dictionary, others as they are. */
function word(prefix, value) {
  const key = `${prefix}_${value}`;
  return key in I18N[state.lang] ? t(key) : (value || '—');
}

// ---------------------------------------------------------------- numbers, dates, periods

function nf(digits) {
  const key = `${state.lang}/${digits}`;
  if (!state.nf.has(key)) {
    state.nf.set(key, new Intl.NumberFormat(isZh() ? 'zh-CN' : 'en', { minimumFractionDigits: digits, maximumFractionDigits: digits }));
  }
  return state.nf.get(key);
}

const isNull = (v) => v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v));

/** A value by its column's unit: count → integer, fen → yuan with 2 decimals, ratio → percent, average → 2 decimals. */
function fmtValue(v, unit) {
  if (isNull(v)) return '—';
  switch (unit) {
    case 'fen': return nf(2).format(v / 100);
    case 'ratio': return `${nf(1).format(v * 100)}%`;
    case 'average': return nf(2).format(v);
    default: return nf(0).format(v);
  }
}

function unitText(col) {
  if (!col || col.unit === 'ratio') return '';
  if (col.unit === 'fen') return t('yuan');
  return isZh() ? (col.unit_zh || '') : '';
}

function fmtWithUnit(v, col) {
  const s = fmtValue(v, col && col.unit);
  const u = unitText(col);
  return s === '—' || !u ? s : `${s}${t('unitSep')}${u}`;
}

/** Axis labels: percent for ratios, 万 / compact notation for large numbers. */
function fmtAxis(v, unit) {
  if (unit === 'ratio') return `${Math.round(v * 1000) / 10}%`;
  const x = unit === 'fen' ? v / 100 : v;
  if (Math.abs(x) >= 10000) {
    if (isZh()) return `${nf(1).format(x / 10000).replace(/\.0$/, '')}万`;
    return new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 }).format(x);
  }
  return nf(unit === 'average' ? 1 : 0).format(x);
}

function fmtDate(iso) {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(iso || '');
  if (!m) return iso || '—';
  return t('date', +m[1], +m[2], +m[3], t('months')[+m[2] - 1]);
}

/** A Unix time in ms as China time (UTC+8, no daylight saving), date and clock. */
function fmtDateTime(ms) {
  if (!ms) return '—';
  const iso = new Date(ms + 8 * 3600e3).toISOString();
  return `${fmtDate(iso.slice(0, 10))} ${iso.slice(11, 19)}`;
}

function fmtDuration(ms, prefix = 'dur') {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return t(`${prefix}_s`, s);
  if (s < 3600) return t(`${prefix}_m`, Math.floor(s / 60));
  if (s < 86400) return t(`${prefix}_h`, Math.floor(s / 3600));
  return t(`${prefix}_d`, Math.floor(s / 86400));
}

const utc = (y, m, d) => new Date(Date.UTC(y, m - 1, d));
const ymd = (dt) => ({ y: dt.getUTCFullYear(), m: dt.getUTCMonth() + 1, d: dt.getUTCDate() });

function isoWeek(dt) {
  const th = new Date(dt.getTime());
  th.setUTCDate(th.getUTCDate() - ((th.getUTCDay() + 6) % 7) + 3);
  const year = th.getUTCFullYear();
  return { year, week: Math.ceil(((th - Date.UTC(year, 0, 1)) / 864e5 + 1) / 7) };
}

function periodCount(kind, year) {
  return { week: isoWeek(utc(year, 12, 28)).week, month: 12, quarter: 4, half: 2, year: 1 }[kind];
}

function parsePeriod(s) {
  let m;
  if ((m = /^(\d{4})$/.exec(s))) return { kind: 'year', year: +m[1], n: 1 };
  if ((m = /^(\d{4})-H([12])$/.exec(s))) return { kind: 'half', year: +m[1], n: +m[2] };
  if ((m = /^(\d{4})-Q([1-4])$/.exec(s))) return { kind: 'quarter', year: +m[1], n: +m[2] };
  if ((m = /^(\d{4})-W(\d{2})$/.exec(s)) && +m[2] >= 1 && +m[2] <= periodCount('week', +m[1])) return { kind: 'week', year: +m[1], n: +m[2] };
  if ((m = /^(\d{4})-(\d{2})$/.exec(s)) && +m[2] >= 1 && +m[2] <= 12) return { kind: 'month', year: +m[1], n: +m[2] };
  return null;
}

const pad2 = (n) => String(n).padStart(2, '0');

function periodString({ kind, year, n }) {
  return { year: `${year}`, half: `${year}-H${n}`, quarter: `${year}-Q${n}`, month: `${year}-${pad2(n)}`, week: `${year}-W${pad2(n)}` }[kind];
}

function fmtPeriod(s) {
  const p = parsePeriod(s);
  if (!p) return s || '—';
  if (p.kind === 'half') return t(`p_half${p.n}`, p.year);
  return t(`p_${p.kind}`, p.year, p.n, t('months')[p.n - 1], pad2(p.n));
}

/** The period of `kind` that contains date {y,m,d}. */
function periodOfDate(kind, { y, m, d }) {
  if (kind === 'week') { const w = isoWeek(utc(y, m, d)); return { kind, year: w.year, n: w.week }; }
  const n = { year: 1, half: m <= 6 ? 1 : 2, quarter: Math.ceil(m / 3), month: m }[kind];
  return { kind, year: y, n };
}

function periodLastDay({ kind, year, n }) {
  if (kind === 'week') {
    const jan4 = utc(year, 1, 4);
    const monday1 = Date.UTC(year, 0, 4 - ((jan4.getUTCDay() + 6) % 7));
    return ymd(new Date(monday1 + ((n - 1) * 7 + 6) * 864e5));
  }
  const lastMonth = { year: 12, half: n * 6, quarter: n * 3, month: n }[kind];
  return ymd(new Date(Date.UTC(year, lastMonth, 0)));
}

const cmpPeriod = (a, b) => (a.year - b.year) || (a.n - b.n);

function stepPeriod({ kind, year, n }, delta) {
  n += delta;
  if (n < 1) { year -= 1; n = periodCount(kind, year); } else if (n > periodCount(kind, year)) { year += 1; n = 1; }
  return { kind, year, n };
}

function today() {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec((state.me && state.me.today) || '');
  return m ? { y: +m[1], m: +m[2], d: +m[3] } : ymd(new Date(Date.now() + 8 * 3600e3));
}

const defaultPeriod = () => periodString(periodOfDate('month', today()));

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, message, body) { super(message); this.status = status; this.body = body; }
}

async function api(path, { method = 'GET', body } = {}) {
  let res;
  try {
    res = await fetch(path, {
      method, credentials: 'same-origin', cache: 'no-store',
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, t('networkError'));
  }
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) throw new ApiError(res.status, (data && data.error) || `HTTP ${res.status} ${res.statusText}`, data);
  return data;
}

/** A refusal or failure as the person reads it. The server speaks English; in Chinese a short
 * reason by the HTTP status comes first and the server's own words follow in brackets. */
function explain(err) {
  const why = { 401: 'err401', 403: 'err403', 404: 'err404', 409: 'err409', 429: 'err429' }[err.status]
    || (err.status >= 500 ? 'err500' : err.status ? 'err400' : '');
  return isZh() && why ? `${t(why)}（${err.message}）` : err.message;
}

/** A cached GET (one minute; in-flight requests are shared). */
function get(path, fresh = false) {
  const hit = state.cache.get(path);
  if (!fresh && hit && Date.now() - hit.at < CACHE_MS) return hit.promise;
  const promise = api(path);
  state.cache.set(path, { at: Date.now(), promise });
  promise.catch(() => { if (state.cache.get(path)?.promise === promise) state.cache.delete(path); });
  return promise;
}

function url(path, params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '' && v !== false) u.set(k, v);
  return `${path}?${u}`;
}

function invalidate(...prefixes) {
  for (const k of [...state.cache.keys()]) if (prefixes.some((p) => k.startsWith(p))) state.cache.delete(k);
}

const treeUrl = (v) => url('/api/tree', { division: v.division });
const reportUrl = (v, scope, extra = {}) => url('/api/report', { division: v.division, scope, period: v.period, ...extra });

/** A report (a cached GET). Its columns are remembered: their labels serve views whose own report
 * failed or does not exist (a division whose children's figures this node does not hold). */
async function getReport(path) {
  const rep = await get(path);
  for (const c of rep.columns || []) if (c.dimension === 'total') state.columns.set(c.indicator, c);
  return rep;
}

/** The total column of indicator `ind`, from a report fetched so far, else from LABELS. */
function totalColumn(ind) {
  if (state.columns.has(ind)) return state.columns.get(ind);
  const l = LABELS[ind];
  return l ? { indicator: ind, dimension: 'total', indicator_zh: l[0], indicator_en: l[1], unit_zh: l[2], unit: l[3] } : null;
}

// ---------------------------------------------------------------- routing

function parseRoute() {
  const raw = location.hash.replace(/^#/, '');
  const qi = raw.indexOf('?');
  const m = /^\/d\/([^/?]*)$/.exec(qi < 0 ? raw : raw.slice(0, qi));
  return { matched: !!m, division: m ? decodeURIComponent(m[1]) : '', params: new URLSearchParams(qi < 0 ? '' : raw.slice(qi + 1)) };
}

function routeHash(division, params) {
  const s = params.toString();
  return `#/d/${encodeURIComponent(division)}${s ? `?${s}` : ''}`;
}

/** The current route with `changes` (null/'' removes a parameter), optionally at another division. */
function linkTo(changes = {}, division = null) {
  const p = new URLSearchParams(state.route.params);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === '' || v === false) p.delete(k); else p.set(k, v);
  }
  return routeHash(division ?? state.route.division, p);
}

/** Go to a view; <body data-ready> turns "0" at once, before the hashchange event arrives. */
function navigate(hash) {
  if (new URL(hash, location.href).hash === location.hash) return;
  document.body.dataset.ready = '0';
  location.hash = hash;
}

const go = (changes, division) => navigate(linkTo(changes, division));
const divisionLink = (code) => linkTo({ ticket: null, cmp: null }, code);

/** The view's parameters with their defaults. */
function currentView() {
  const p = state.route.params;
  const period = parsePeriod(p.get('period') || '') ? p.get('period') : defaultPeriod();
  const kind = parsePeriod(period).kind;
  return {
    division: state.route.matched ? state.route.division : state.me.node.division,
    period,
    ind: HEADLINE.includes(p.get('ind')) ? p.get('ind') : HEADLINE[0],
    each: ['week', 'month'].includes(p.get('each')) ? p.get('each') : (kind === 'week' ? 'week' : 'month'),
    cmp: p.get('cmp') || 'children',
    tstate: p.get('tstate') || '',
    overdue: p.get('overdue') === '1',
    inv: p.get('inv') || '',
    ticket: p.get('ticket') || '',
  };
}

// ---------------------------------------------------------------- language

function initialLang() {
  const fromUrl = new URLSearchParams(location.search).get('lang') || state.route?.params.get('lang');
  if (fromUrl) return fromUrl.startsWith('en') ? 'en' : 'zh';
  try { return localStorage.getItem('bottomline.lang') === 'en' ? 'en' : 'zh'; } catch (e) { return 'zh'; }
}

function setLang(lang) {
  state.lang = lang;
  try { localStorage.setItem('bottomline.lang', lang); } catch (e) { /* private mode */ }
  const search = new URLSearchParams(location.search);
  if (search.has('lang')) {
    search.delete('lang');
    history.replaceState(null, '', `${location.pathname}${search.toString() ? `?${search}` : ''}${location.hash}`);
  }
  disposeCharts();
  applyStaticText();
  if (state.me) startApp();
}

function applyStaticText() {
  document.documentElement.lang = isZh() ? 'zh-CN' : 'en';
  for (const el of $$('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of $$('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  for (const el of $$('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  $('#lang-zh').classList.toggle('active', isZh());
  $('#lang-en').classList.toggle('active', !isZh());
  $('#lang-zh').setAttribute('aria-pressed', String(isZh()));
  $('#lang-en').setAttribute('aria-pressed', String(!isZh()));
  document.title = t('title');
}

// ---------------------------------------------------------------- header: node, user, login, period picker

function renderNodeLabel() {
  const n = state.me.node;
  $('#node-label').textContent = t('nodeLabel', n.name, word('lvl', n.level));
}

function loginFormHtml(compact) {
  return `<form id="login-form" class="login-form${compact ? ' compact' : ''}" autocomplete="on">
    <input id="login-name" name="username" autocomplete="username" placeholder="${esc(t('userName'))}" aria-label="${esc(t('userName'))}" required>
    <input id="login-password" name="password" type="password" autocomplete="current-password" placeholder="${esc(t('password'))}" aria-label="${esc(t('password'))}" required>
    <button id="login-submit" type="submit">${esc(t('login'))}</button>
    <div id="login-error" class="error" role="alert" hidden></div>
  </form>`;
}

/** The user label and logout, or the login form (in the header, or alone on the login screen). */
function renderUserArea(loginOnly) {
  const old = { name: $('#login-name')?.value || '', password: $('#login-password')?.value || '' };
  const area = $('#user-area');
  const slot = $('#login-slot');
  const user = state.me.user;
  area.innerHTML = '';
  slot.innerHTML = '';
  if (user) {
    area.innerHTML = `<span class="user-label"><span id="user-name">${esc(user.name)}</span>
      <span id="user-role" class="role">${esc(word('role', user.role))}</span></span>
      <button type="button" id="logout">${esc(t('logout'))}</button>`;
    $('#logout').addEventListener('click', onLogout);
    return;
  }
  (loginOnly ? slot : area).innerHTML = loginFormHtml(!loginOnly);
  $('#login-name').value = old.name;
  $('#login-password').value = old.password;
  $('#login-form').addEventListener('submit', onLogin);
  if (state.loginLockUntil > Date.now()) lockLogin();
}

function showLoginError(msg) {
  const el = $('#login-error');
  if (!el) return;
  el.textContent = msg;
  el.hidden = !msg;
}

function lockLogin() {
  const tick = () => {
    const left = Math.ceil((state.loginLockUntil - Date.now()) / 1000);
    const btn = $('#login-submit');
    if (!btn) return;
    btn.disabled = left > 0;
    btn.textContent = left > 0 ? `${t('login')} (${left})` : t('login');
    if (left > 0) setTimeout(tick, 1000);
  };
  tick();
}

async function onLogin(e) {
  e.preventDefault();
  const name = $('#login-name').value.trim();
  const password = $('#login-password').value;
  showLoginError('');
  $('#login-submit').disabled = true;
  try {
    await api('/api/login', { method: 'POST', body: { name, password } });
    state.cache.clear();
    state.me = await api('/api/me');
    startApp();
  } catch (err) {
    let msg = err.status === 401 ? t('loginWrong') : explain(err);
    const retry = err.body && err.body.retry_after_secs;
    if (err.status === 429 && retry) {
      msg = `${msg} ${t('loginRetry', retry)}`;
      state.loginLockUntil = Date.now() + retry * 1000;
    }
    if ($('#login-submit')) $('#login-submit').disabled = false;
    showLoginError(msg);
    if (state.loginLockUntil > Date.now()) lockLogin();
  }
}

async function onLogout() {
  try { await api('/api/logout', { method: 'POST', body: {} }); } catch (e) { /* the session is gone either way */ }
  state.cache.clear();
  try { state.me = await api('/api/me'); } catch (e) { showFatal(e.message); return; }
  startApp();
}

function renderPicker(v) {
  const p = parsePeriod(v.period);
  const now = periodOfDate(p.kind, today());
  const nowYear = now.year;
  $('#period-kind').innerHTML = KINDS.map((k) => `<option value="${k}"${k === p.kind ? ' selected' : ''}>${esc(t(`kind_${k}`))}</option>`).join('');
  const years = [];
  for (let y = Math.max(nowYear, p.year); y >= Math.min(nowYear - 5, p.year); y -= 1) years.push(y);
  $('#period-year').innerHTML = years.map((y) => `<option value="${y}"${y === p.year ? ' selected' : ''}>${esc(t('yearOpt', y))}</option>`).join('');
  const sub = $('#period-sub');
  sub.hidden = p.kind === 'year';
  const count = p.kind === 'year' ? 0 : (p.year === nowYear ? Math.max(now.n, p.n) : periodCount(p.kind, p.year));
  const label = (n) => ({ week: t('weekOpt', n), month: t('months')[n - 1], quarter: t('quarterOpt', n), half: t(`half${n}`) }[p.kind]);
  let opts = '';
  for (let n = 1; n <= count; n += 1) opts += `<option value="${n}"${n === p.n ? ' selected' : ''}>${esc(label(n))}</option>`;
  sub.innerHTML = opts;
  $('#period-next').disabled = cmpPeriod(p, now) >= 0;
}

function changePeriod(how) {
  const p = parsePeriod(state.v.period);
  const now = periodOfDate(p.kind, today());
  let next;
  if (how === 'kind') {
    const kind = $('#period-kind').value;
    const last = periodLastDay(p);
    const t0 = today();
    const ref = (last.y * 1e4 + last.m * 100 + last.d) < (t0.y * 1e4 + t0.m * 100 + t0.d) ? last : t0;
    next = periodOfDate(kind, ref);
  } else if (how === 'year') {
    const year = +$('#period-year').value;
    if (!year) return;
    next = { kind: p.kind, year, n: Math.min(p.n, periodCount(p.kind, year)) };
    if (cmpPeriod(next, now) > 0) next = now;
  } else if (how === 'sub') {
    next = { ...p, n: +$('#period-sub').value };
  } else {
    next = stepPeriod(p, how);
    if (cmpPeriod(next, now) > 0) return;
  }
  go({ period: periodString(next), each: null, ticket: null });
}

// ---------------------------------------------------------------- app start and view rendering

function showFatal(msg) {
  const el = $('#fatal');
  el.textContent = msg;
  el.hidden = !msg;
  if (msg) document.body.dataset.ready = '1';
}

/** (Re)start after /api/me: the login screen alone, or the dashboard. */
function startApp() {
  const me = state.me;
  const loginOnly = !me.anonymous && !me.user;
  state.sigs = {};
  renderNodeLabel();
  renderUserArea(loginOnly);
  showFatal('');
  $('#login-screen').hidden = !loginOnly;
  $('#app').hidden = loginOnly;
  $('#period-picker').hidden = loginOnly;
  if (loginOnly) {
    stopHealth();
    closeDrawer();
    $('#login-name')?.focus();
    document.body.dataset.ready = '1';
    return;
  }
  if (!parseRoute().matched) {
    history.replaceState(null, '', `${location.pathname}${location.search}${routeHash(me.node.division, new URLSearchParams({ period: defaultPeriod() }))}`);
  }
  startHealth();
  onRoute();
}

function onRoute() {
  state.route = parseRoute();
  if (!state.me || (!state.me.anonymous && !state.me.user)) return;
  if (!state.route.matched) { startApp(); return; }
  renderView();
}

async function renderView() {
  const token = ++state.viewToken;
  const live = () => token === state.viewToken;
  document.body.dataset.ready = '0';
  const v = currentView();
  if (!state.v || state.v.division !== v.division) {
    $('#division-name').textContent = v.division;
    $('#breadcrumbs').innerHTML = '';
    $('#regions-note').textContent = '';
    $('#sec-regions').hidden = false;
    $('#sec-charts').classList.remove('span-all');
  }
  if (!state.v || state.v.period !== v.period) $('#division-period').textContent = fmtPeriod(v.period);
  state.v = v;
  renderPicker(v);
  $('#trend-each').innerHTML = ['week', 'month'].map((e) => `<option value="${e}"${e === v.each ? ' selected' : ''}>${esc(t(`each_${e}`))}</option>`).join('');
  $('#ticket-state').innerHTML = [''].concat(STATES).map((s) => `<option value="${s}"${s === v.tstate ? ' selected' : ''}>${esc(s ? word('st', s) : t('allStates'))}</option>`).join('');
  $('#ticket-overdue').checked = v.overdue;
  $('#ticket-inventory').value = v.inv;
  const year = parsePeriod(v.period).year;
  const detailTarget = () => $('#ticket-detail .drawer-body') || $('#ticket-detail');
  await Promise.allSettled([
    section('regions', [v.division, v.period], () => loadRegions(v, live), live, $('#children')),
    section('indicators', [v.division, v.period, v.ind], () => loadIndicators(v, live), live, $('#headline')),
    section('trend', [v.division, year, v.each, v.ind], () => loadTrend(v, live), live, 'chart-trend'),
    section('compare', [v.division, v.period, v.cmp, v.ind], () => loadCompare(v, live), live, 'chart-compare', 'chart-ranking'),
    section('tickets', [v.division, v.tstate, v.overdue, v.inv, v.ticket], () => loadTickets(v, live), live, $('#tickets')),
    section('progress', [v.division, v.inv], () => loadProgress(v, live), live, $('#progress')),
    section('health', [Date.now()], () => loadHealth(true), live, $('#health')),
    section('detail', [Date.now()], () => loadTicketDetail(v, live), live, detailTarget),
  ]);
  if (live()) document.body.dataset.ready = '1';
}

/** Load and render one section unless its inputs (`parts`, and the language) are those it last
 * rendered; on failure show the server's message where the section goes. */
async function section(name, parts, load, live, ...targets) {
  const sig = JSON.stringify([state.lang, ...parts]);
  if (state.sigs[name] === sig) return;
  delete state.sigs[name];
  try {
    await load();
    if (live()) state.sigs[name] = sig;
  } catch (err) {
    if (!live()) return;
    for (let target of targets) {
      if (typeof target === 'function') target = target();
      if (typeof target === 'string') chartMessage(target, explain(err), true);
      else if (target) target.innerHTML = `<div class="error" role="alert">${esc(explain(err))}</div>`;
    }
    if (err.status === 401 && state.me && !state.me.anonymous) {
      state.me = await api('/api/me').catch(() => state.me);
      if (!state.me.user) startApp();
    }
  }
}

// ---------------------------------------------------------------- regions: breadcrumbs, title, children

const colIndex = (columns, indicator, dimension = 'total') => columns.findIndex((c) => c.indicator === indicator && c.dimension === dimension);
const indName = (col) => (col ? (isZh() ? col.indicator_zh : col.indicator_en) || col.indicator : '');
const dimName = (col) => (isZh() ? col.dimension_zh : col.dimension_en) || col.dimension;
const levelIndex = (level) => LEVELS.indexOf(level);
const lowestHeld = () => Math.max(...(state.me.holds_levels || LEVELS).map(levelIndex));
const hasChildData = (tree) => levelIndex(tree.level) < lowestHeld();

async function loadRegions(v, live) {
  const tree = await get(treeUrl(v));
  if (!live()) return;
  renderTitle(tree);
  let rep = null;
  let own = null;
  let repError = '';
  if (tree.children.length && hasChildData(tree)) {
    const [r, d] = await Promise.allSettled([getReport(reportUrl(v, 'children')), getReport(reportUrl(v, 'division'))]);
    if (r.status === 'fulfilled') rep = r.value; else repError = explain(r.reason);
    if (d.status === 'fulfilled') own = d.value;
  }
  if (!live()) return;
  state.lastRegions = { tree, rep, own, repError };
  renderChildren();
}

function renderTitle(tree) {
  const crumbs = tree.path.length ? tree.path : [tree];
  $('#breadcrumbs').innerHTML = crumbs.map((p, i) => (i === crumbs.length - 1
    ? `<li aria-current="page">${esc(p.name)}</li>`
    : `<li><a href="${esc(divisionLink(p.division))}">${esc(p.name)}</a></li>`)).join('');
  $('#division-name').innerHTML = `${esc(tree.name)} <span class="badge level">${esc(word('lvl', tree.level))}</span> <span class="code">${esc(tree.division)}</span>`;
  document.title = `${tree.name} · ${t('title')}`;
}

/** Why a division shows no figures of its children: it has none (a village), or they are held
 * at the county node (a county seen from a city or the province). */
function noChildDataNote(tree) {
  if (!tree.children.length) return tree.level === 'village' ? t('villageLowest') : t('noChildren');
  return tree.level === 'county' ? t('heldAtCounty') : t('noDrill');
}

function renderChildren() {
  const { tree, rep, own, repError } = state.lastRegions;
  const table = $('#children');
  const count = tree.children.length;
  table.classList.toggle('names-only', count > 0 && !hasChildData(tree));
  // A division without children (a village): no regions card, the trend takes the whole row.
  $('#sec-regions').hidden = !count;
  $('#sec-charts').classList.toggle('span-all', !count);
  if (!count) {
    $('#regions-note').textContent = '';
    table.innerHTML = `<tbody><tr><td class="empty">${esc(noChildDataNote(tree))}</td></tr></tbody>`;
    return;
  }
  if (!hasChildData(tree)) {
    // The children's figures are not here: their names only, and where the figures are.
    $('#regions-note').textContent = t('childCount', count);
    const rows = tree.children.map((c, n) => `<tr data-division="${esc(c.division)}"><td class="num muted">${n + 1}</td>
      <td><span class="nodrill">${esc(c.name)}</span></td><td class="code muted">${esc(c.division)}</td></tr>`).join('');
    table.innerHTML = `<caption class="held-note">${esc(noChildDataNote(tree))}</caption>
      <thead><tr><th class="num">#</th><th>${esc(t('region'))}</th><th>${esc(t('code'))}</th></tr></thead><tbody>${rows}</tbody>`;
    return;
  }
  $('#regions-note').textContent = `${t('childCount', count)}${repError ? ` · ${repError}` : ''}`;
  const cols = REGION_COLS.map((ind) => {
    const i = rep ? colIndex(rep.columns, ind) : -1;
    const col = i >= 0 ? rep.columns[i] : totalColumn(ind);
    return { ind, i, col, own: own ? colIndex(own.columns, ind) : -1 };
  });
  const byCode = new Map((rep ? rep.rows : []).map((r) => [r.division, r]));
  const value = (code, c) => { const r = byCode.get(code); return r && c.i >= 0 ? r.values[c.i] : null; };
  const rows = tree.children.slice();
  const { key, desc } = state.regionSort;
  const sortCol = cols.find((x) => x.ind === key);
  if (sortCol) {
    rows.sort((a, b) => {
      const va = value(a.division, sortCol); const vb = value(b.division, sortCol);
      if (isNull(va) || isNull(vb)) return isNull(va) - isNull(vb);
      return desc ? vb - va : va - vb;
    });
  }
  const arrow = (ind) => (key === ind ? (desc ? ' ▼' : ' ▲') : '');
  const head = `<thead><tr><th class="num">#</th><th>${esc(t('region'))}</th>${
    cols.map((c) => `<th class="num sortable" data-sort="${c.ind}" title="${esc(unitText(c.col))}">${esc(indName(c.col))}${arrow(c.ind)}</th>`).join('')}</tr></thead>`;
  const body = rows.map((c, n) => {
    const drill = c.drill;
    const name = drill
      ? `<a href="${esc(divisionLink(c.division))}" title="${esc(c.division)}">${esc(c.name)}</a> <span class="drill-arrow">›</span>`
      : `<span class="nodrill" title="${esc(`${c.division} · ${t('noDrill')}`)}">${esc(c.name)}</span>`;
    return `<tr data-division="${esc(c.division)}" class="${drill ? 'drill' : ''}"><td class="num muted">${n + 1}</td><td>${name}</td>${cols.map((col) => `<td class="num">${esc(fmtValue(value(c.division, col), col.col?.unit))}</td>`).join('')}</tr>`;
  }).join('');
  const total = own && own.rows[0];
  const foot = total && rep
    ? `<tfoot><tr><td></td><td>${esc(t('total'))}</td>${cols.map((c) => `<td class="num">${esc(fmtValue(c.own >= 0 ? total.values[c.own] : null, c.col?.unit))}</td>`).join('')}</tr></tfoot>`
    : '';
  table.innerHTML = head + `<tbody>${body}</tbody>` + foot;
}

function onChildrenClick(e) {
  const th = e.target.closest('th[data-sort]');
  if (th) {
    const s = state.regionSort;
    state.regionSort = { key: th.dataset.sort, desc: s.key === th.dataset.sort ? !s.desc : true };
    renderChildren();
    return;
  }
  const tr = e.target.closest('tr[data-division].drill');
  if (tr && !e.target.closest('a')) navigate(divisionLink(tr.dataset.division));
}

// ---------------------------------------------------------------- indicators

async function loadIndicators(v, live) {
  const rep = await getReport(reportUrl(v, 'division'));
  if (!live()) return;
  const row = rep.rows[0];
  $('#division-period').textContent = row
    ? `${fmtPeriod(row.period)} · ${t('dateRange', fmtDate(row.first_day), fmtDate(row.last_day))}`
    : fmtPeriod(v.period);
  $('#indicators-note').textContent = t('clickCard');
  $('#headline').innerHTML = HEADLINE.map((ind) => {
    const i = colIndex(rep.columns, ind);
    if (i < 0) return '';
    const col = rep.columns[i];
    const val = row ? row.values[i] : null;
    const unit = isNull(val) ? '' : unitText(col);
    return `<button type="button" class="kpi${ind === v.ind ? ' selected' : ''}" data-indicator="${ind}">
      <span class="kpi-label">${esc(indName(col))}</span>
      <span class="kpi-value">${esc(fmtValue(val, col.unit))}${unit ? `<small>${esc(unit)}</small>` : ''}</span></button>`;
  }).join('');
  // One group per indicator (a report interleaves some, e.g. households and persons by category),
  // its total first.
  const groups = new Map();
  rep.columns.forEach((col, i) => {
    if (!groups.has(col.indicator)) groups.set(col.indicator, []);
    groups.get(col.indicator)[col.dimension === 'total' ? 'unshift' : 'push']({ col, i });
  });
  const body = [...groups.values()].flat().map(({ col, i }, n, all) => {
    const first = n === 0 || all[n - 1].col.indicator !== col.indicator;
    return `<tr class="${col.dimension === 'total' ? 'total' : ''}${first ? ' group' : ''}" data-indicator="${esc(col.indicator)}" data-dimension="${esc(col.dimension)}">
      <td>${first ? esc(indName(col)) : ''}</td><td>${esc(dimName(col))}</td>
      <td class="num">${esc(fmtWithUnit(row ? row.values[i] : null, col))}</td></tr>`;
  }).join('');
  $('#all-indicators-body').innerHTML = `<table id="indicator-table" class="data"><thead><tr><th>${esc(t('indicator'))}</th>
    <th>${esc(t('dimension'))}</th><th class="num">${esc(t('value'))}</th></tr></thead><tbody>${body}</tbody></table>`;
}

// ---------------------------------------------------------------- sync health

function startHealth() {
  stopHealth();
  state.healthTimer = setInterval(() => { loadHealth(true).catch((e) => { $('#health-note').textContent = e.message; }); }, HEALTH_MS);
}

function stopHealth() {
  if (state.healthTimer) clearInterval(state.healthTimer);
  state.healthTimer = null;
}

async function loadHealth(fresh) {
  const h = await get('/api/health', fresh);
  renderHealth(h);
}

function renderHealth(h) {
  const now = h.now_unix_ms || Date.now();
  $('#health-note').textContent = t('updatedAt', fmtDateTime(now).split(' ').pop());
  const up = h.uplink;
  const uplink = up && up.parent
    ? `<span class="badge ${up.connected ? 'green' : 'red'}">${esc(up.connected ? t('connected') : t('disconnected'))}</span>
       <span class="code">${esc(up.parent)}</span> · ${esc(t('ackedBacklog', up.acked, up.backlog))} · ${esc(t('ticketAckedBacklog', up.ticket_acked, up.ticket_backlog))}
       ${up.last_error ? `<span class="error-inline">${esc(t('lastError'))}: ${esc(up.last_error)}</span>` : ''}`
    : esc(t('noUplink'));
  const sc = h.self_check;
  const self = !sc ? esc(t('selfCheckNone'))
    : `${sc.ok ? `<span class="badge green">${esc(t('ok'))}</span> ${esc(t('selfCheckOk', sc.what, sc.cells))}`
      : `<span class="badge red">${esc(t('selfCheckBad', sc.differing, sc.what))}</span> ${esc((sc.first || []).map(String).join('; '))}`}
      <span class="muted">${esc(fmtDateTime(sc.at_unix_ms))}</span>`;
  const children = h.children || [];
  const who = `${h.name} ${h.division}`;
  const thresholds = children.length
    ? ` · <span class="muted">${esc(t('thresholds', fmtDuration((h.silent_child_secs || 0) * 1000), fmtDuration((h.stalled_child_secs || 0) * 1000)))}</span>` : '';
  $('#health-summary').innerHTML = `<div><b>${esc(children.length ? t('healthOf', who) : t('healthOfAlone', who))}</b> · ${esc(t('nodeHead', h.head, h.ticket_head))}${thresholds}</div>
    <div><b>${esc(t('uplink'))}:</b> ${uplink}</div><div><b>${esc(t('selfCheck'))}:</b> ${self}</div>`;
  const cols = ['h_child', 'h_connected', 'h_last', 'h_lag#', 'h_acked#', 'h_backlog#', 'h_tickets#', 'h_relay', 'h_status'];
  const head = `<thead><tr>${cols.map((c) => `<th${c.endsWith('#') ? ' class="num"' : ''}>${esc(t(c.replace('#', '')))}</th>`).join('')}</tr></thead>`;
  if (!children.length) {
    // A county node has no child nodes by design (it holds its towns and villages itself).
    const county = state.me.node.level === 'county';
    $('#health').innerHTML = `<tbody><tr><td class="empty">${esc(t(county ? 'noChildNodesCounty' : 'noChildNodes'))}</td></tr></tbody>`;
    return;
  }
  const body = children.map((c) => {
    const last = c.last_contact_unix_ms;
    const status = [
      c.silent ? `<span class="badge red">${esc(t('silent'))}</span>` : '',
      c.stalled ? `<span class="badge red">${esc(t('stalled'))}</span>` : '',
    ].join(' ').trim() || `<span class="badge green">${esc(t('ok'))}</span>`;
    return `<tr data-division="${esc(c.division)}" class="${c.silent ? 'silent' : ''}${c.stalled ? ' stalled' : ''}">
      <td>${esc(c.name)} <span class="code muted">${esc(c.division)}</span></td>
      <td><span class="dot ${c.connected ? 'on' : 'off'}"></span>${esc(c.connected ? t('connected') : t('disconnected'))}</td>
      <td>${last ? `${esc(fmtDuration(now - last, 'ago'))} <span class="muted small">${esc(fmtDateTime(last))}</span>` : esc(t('never'))}</td>
      <td class="num">${last ? esc(fmtDuration(now - last)) : '—'}</td>
      <td class="num">${esc(nf(0).format(c.acked ?? 0))} / ${esc(nf(0).format(c.head ?? 0))}</td>
      <td class="num${c.backlog ? ' warn' : ''}">${esc(nf(0).format(c.backlog ?? 0))}</td>
      <td class="num">${esc(nf(0).format(c.ticket_backlog_up ?? 0))} / ${c.ticket_backlog_down_at_least ? '≥' : ''}${esc(nf(0).format(c.ticket_backlog_down ?? 0))}</td>
      <td>${esc(c.via_relay ? (typeof c.via_relay === 'string' ? c.via_relay : t('yes')) : t('no'))}</td>
      <td>${status}</td></tr>`;
  }).join('');
  $('#health').innerHTML = `${head}<tbody>${body}</tbody>`;
}

// ---------------------------------------------------------------- wiring

function bindStatic() {
  $('#lang-zh').addEventListener('click', () => setLang('zh'));
  $('#lang-en').addEventListener('click', () => setLang('en'));
  $('#period-kind').addEventListener('change', () => changePeriod('kind'));
  $('#period-year').addEventListener('change', () => changePeriod('year'));
  $('#period-sub').addEventListener('change', () => changePeriod('sub'));
  $('#period-prev').addEventListener('click', () => changePeriod(-1));
  $('#period-next').addEventListener('click', () => changePeriod(1));
  $('#refresh').addEventListener('click', () => { state.cache.clear(); state.sigs = {}; renderView(); });
  $('#indicator').addEventListener('change', (e) => go({ ind: e.target.value }));
  $('#trend-each').addEventListener('change', (e) => go({ each: e.target.value }));
  $('#compare-level').addEventListener('change', (e) => go({ cmp: e.target.value === 'children' ? null : e.target.value }));
  $('#headline').addEventListener('click', (e) => { const k = e.target.closest('.kpi'); if (k) go({ ind: k.dataset.indicator }); });
  $('#children').addEventListener('click', onChildrenClick);
  $('#tickets').addEventListener('click', onTicketsClick);
  $('#tickets').addEventListener('keydown', (e) => { if (e.key === 'Enter') onTicketsClick(e); });
  $('#ticket-filter').addEventListener('submit', onTicketFilter);
  $('#ticket-state').addEventListener('change', onTicketFilter);
  $('#ticket-overdue').addEventListener('change', onTicketFilter);
  $('#ticket-detail').addEventListener('click', (e) => { if (e.target.closest('#detail-close')) go({ ticket: null }); });
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && state.v && state.v.ticket) go({ ticket: null }); });
  for (const b of $$('[data-jump]')) b.addEventListener('click', () => document.getElementById(b.dataset.jump).scrollIntoView({ behavior: 'smooth' }));
  const fit = () => document.documentElement.style.setProperty('--topbar-h', `${$('#topbar').offsetHeight}px`);
  fit();
  window.addEventListener('resize', fit);
  // A chart follows its box: the window's width, and cards that span the row or not by view.
  const ro = new ResizeObserver((entries) => {
    for (const e of entries) { const c = state.charts[e.target.id]; if (c && !c.isDisposed()) c.resize(); }
  });
  for (const el of $$('.chart')) ro.observe(el);
  window.addEventListener('hashchange', onRoute);
  document.addEventListener('click', (e) => {
    const a = e.target.closest('a[href^="#/"]');
    if (a && e.button === 0 && !e.ctrlKey && !e.metaKey && !e.shiftKey && a.hash !== location.hash) document.body.dataset.ready = '0';
  });
}

async function boot() {
  state.route = parseRoute();
  state.lang = initialLang();
  applyStaticText();
  bindStatic();
  try {
    state.me = await api('/api/me');
  } catch (err) {
    showFatal(err.message);
    return;
  }
  startApp();
}

// charts.js and tickets.js load after this file (all deferred): start once every one has run.
document.addEventListener('DOMContentLoaded', boot);
