'use strict';
/* Bottomline dashboard: the charts (trend, comparison, ranking), drawn with the vendored ECharts.
 * Loaded after app.js, whose helpers and state it uses. */

// ---------------------------------------------------------------- charts

function chart(id) {
  const el = document.getElementById(id);
  let c = state.charts[id];
  if (c && !c.isDisposed() && c.getDom() === el && el.firstElementChild && !el.querySelector('.placeholder')) return c;
  if (c && !c.isDisposed()) c.dispose();
  el.innerHTML = '';
  el.classList.remove('compact');
  c = echarts.init(el, null, { locale: isZh() ? 'ZH' : 'EN' });
  state.charts[id] = c;
  return c;
}

/** A message where a chart goes; `compact` shrinks the box (a note that stays for the view, such as
 * "no children", rather than a passing error or an empty period). */
function chartMessage(id, msg, isError = false, compact = false) {
  const c = state.charts[id];
  if (c && !c.isDisposed()) c.dispose();
  delete state.charts[id];
  const el = document.getElementById(id);
  el.classList.toggle('compact', compact);
  el.innerHTML = `<div class="placeholder${isError ? ' error' : ''}">${esc(msg)}</div>`;
}

function disposeCharts() {
  for (const c of Object.values(state.charts)) if (!c.isDisposed()) c.dispose();
  state.charts = {};
}

/** A value axis' range by unit: ratios 0–100%, counts in whole steps. */
const axisRange = (unit) => ({ ratio: { min: 0, max: 1 }, count: { minInterval: 1 }, fen: { minInterval: 100 } }[unit] || {});

const baseTextStyle = { fontFamily: '"PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "WenQuanYi Micro Hei", sans-serif' };

function renderIndicatorSelect(columns, v) {
  $('#indicator').innerHTML = HEADLINE.map((ind) => {
    const i = colIndex(columns, ind);
    return i < 0 ? '' : `<option value="${ind}"${ind === v.ind ? ' selected' : ''}>${esc(indName(columns[i]))}</option>`;
  }).join('');
}

async function loadTrend(v, live) {
  const year = String(parsePeriod(v.period).year);
  const rep = await getReport(url('/api/report', { division: v.division, scope: 'division', period: year, each: v.each }));
  if (!live()) return;
  renderIndicatorSelect(rep.columns, v);
  if (typeof echarts === 'undefined') { chartMessage('chart-trend', t('chartsUnavailable'), true); return; }
  const i = colIndex(rep.columns, v.ind);
  if (i < 0 || !rep.rows.length) { chartMessage('chart-trend', t('noData')); return; }
  const col = rep.columns[i];
  const t0 = today();
  const todayIso = `${t0.y}-${pad2(t0.m)}-${pad2(t0.d)}`;
  const labels = rep.rows.map((r) => {
    const p = parsePeriod(r.period);
    return p ? t(`ax_${p.kind}`, p.n, t('months')[p.n - 1]) : r.period;
  });
  const data = rep.rows.map((r) => (r.first_day > todayIso || isNull(r.values[i]) ? null : r.values[i]));
  const selected = rep.rows.findIndex((r) => r.period === v.period);
  chart('chart-trend').setOption({
    color: COLORS, textStyle: baseTextStyle, animationDuration: 300,
    grid: { left: 8, right: 24, top: 36, bottom: 8, containLabel: true },
    title: { text: `${indName(col)} · ${fmtPeriod(year)}`, left: 0, top: 0, textStyle: { fontSize: 13, fontWeight: 'normal', color: '#333' } },
    tooltip: { trigger: 'axis', valueFormatter: (x) => fmtWithUnit(x, col) },
    xAxis: {
      type: 'category', data: labels, boundaryGap: v.each === 'month',
      // Weeks: every fourth label, so W1, W5 … W53 of a 53-week year (2026, 2020) all show.
      axisLabel: { hideOverlap: true, interval: v.each === 'week' ? (i) => i % 4 === 0 || i === labels.length - 1 : 0 },
    },
    yAxis: { type: 'value', axisLabel: { formatter: (x) => fmtAxis(x, col.unit) }, ...axisRange(col.unit) },
    series: [{
      name: indName(col), type: v.each === 'month' ? 'bar' : 'line', data, connectNulls: false,
      symbolSize: 5, areaStyle: v.each === 'week' ? { opacity: 0.08 } : undefined, barMaxWidth: 28,
      markLine: selected >= 0 ? {
        symbol: 'none', silent: true, lineStyle: { color: COLORS[3], type: 'dashed' },
        label: { formatter: t('thisPeriod'), color: COLORS[3] }, data: [{ xAxis: selected }],
      } : undefined,
    }],
  }, true);
}

async function loadCompare(v, live) {
  const tree = await get(treeUrl(v));
  if (!live()) return;
  const levels = hasChildData(tree) && tree.children.length
    ? LEVELS.filter((l) => levelIndex(l) > levelIndex(tree.level) + 1 && levelIndex(l) <= lowestHeld()) : [];
  const cmp = levels.includes(v.cmp) ? v.cmp : 'children';
  $('#compare-level').innerHTML = [`<option value="children">${esc(t('cmp_children'))}</option>`]
    .concat(levels.map((l) => `<option value="${l}"${l === cmp ? ' selected' : ''}>${esc(t(`all_${l}`))}</option>`)).join('');
  $('#compare-level').disabled = !levels.length;
  // Nothing to compare (a village, or a county whose towns are held at the county node): one
  // card across the row with the reason, no ranking.
  const noCompare = !tree.children.length || !hasChildData(tree);
  $('#compare-level').hidden = noCompare;
  $('#sec-ranking').hidden = noCompare;
  $('#sec-compare').classList.toggle('span-all', noCompare);
  if (noCompare) {
    chartMessage('chart-compare', noChildDataNote(tree), false, true);
    chartMessage('chart-ranking', noChildDataNote(tree), false, true);
    $('#ranking-title').textContent = t('ranking');
    $('#ranking-note').textContent = '';
    return;
  }
  const rep = await getReport(cmp === 'children' ? reportUrl(v, 'children') : reportUrl(v, 'level', { level: cmp }));
  if (!live()) return;
  if (typeof echarts === 'undefined') { chartMessage('chart-compare', t('chartsUnavailable'), true); chartMessage('chart-ranking', t('chartsUnavailable'), true); return; }
  if (!rep.rows.length) { chartMessage('chart-compare', t('noData')); chartMessage('chart-ranking', t('noData')); return; }
  renderCompareChart(rep);
  renderRankingChart(rep, v);
}

function zoom(count, shown, vertical) {
  if (count <= shown) return [];
  const end = (shown / count) * 100;
  return vertical
    ? [{ type: 'slider', yAxisIndex: 0, start: 0, end, right: 2, width: 12, showDetail: false }, { type: 'inside', yAxisIndex: 0, start: 0, end, zoomOnMouseWheel: false, moveOnMouseWheel: true }]
    : [{ type: 'slider', xAxisIndex: 0, start: 0, end, bottom: 2, height: 14, showDetail: false }, { type: 'inside', xAxisIndex: 0, start: 0, end }];
}

function renderCompareChart(rep) {
  const names = rep.rows.map((r) => r.name);
  const series = COMPARE_BARS.map((ind) => ({ ind, i: colIndex(rep.columns, ind) })).filter((s) => s.i >= 0).map((s) => {
    const col = rep.columns[s.i];
    return { name: indName(col), type: 'bar', barMaxWidth: 18, data: rep.rows.map((r) => r.values[s.i]), tooltip: { valueFormatter: (x) => fmtWithUnit(x, col) } };
  });
  const li = colIndex(rep.columns, COMPARE_LINE);
  if (li >= 0) {
    const col = rep.columns[li];
    series.push({ name: indName(col), type: 'line', yAxisIndex: 1, symbolSize: 6, data: rep.rows.map((r) => r.values[li]), tooltip: { valueFormatter: (x) => fmtWithUnit(x, col) } });
  }
  const many = names.length > 14;
  chart('chart-compare').setOption({
    color: COLORS, textStyle: baseTextStyle, animationDuration: 300,
    legend: { top: 0, type: 'scroll', itemWidth: 14, itemHeight: 10, textStyle: { fontSize: 12 } },
    grid: { left: 8, right: 8, top: 34, bottom: many ? 22 : 8, containLabel: true },
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
    xAxis: { type: 'category', data: names, axisLabel: { interval: 0, rotate: names.length > 7 ? 30 : 0, fontSize: 11 } },
    yAxis: [
      { type: 'value', minInterval: 1, axisLabel: { formatter: (x) => fmtAxis(x, 'count') } },
      { type: 'value', min: 0, max: 1, splitLine: { show: false }, axisLabel: { formatter: (x) => fmtAxis(x, 'ratio') } },
    ],
    dataZoom: zoom(names.length, 14, false),
    series,
  }, true);
}

function renderRankingChart(rep, v) {
  const i = colIndex(rep.columns, v.ind);
  if (i < 0) { chartMessage('chart-ranking', t('noData')); return; }
  const col = rep.columns[i];
  const ranked = rep.rows.filter((r) => !isNull(r.values[i])).sort((a, b) => b.values[i] - a.values[i]);
  const excluded = rep.rows.length - ranked.length;
  $('#ranking-title').textContent = t('rankingOf', indName(col));
  $('#ranking-note').textContent = excluded ? t('nullExcluded', excluded) : '';
  if (!ranked.length) { chartMessage('chart-ranking', t('noData')); return; }
  chart('chart-ranking').setOption({
    color: COLORS, textStyle: baseTextStyle, animationDuration: 300,
    grid: { left: 8, right: 64, top: 8, bottom: 8, containLabel: true },
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, valueFormatter: (x) => fmtWithUnit(x, col) },
    xAxis: { type: 'value', axisLabel: { formatter: (x) => fmtAxis(x, col.unit) }, ...axisRange(col.unit) },
    yAxis: { type: 'category', inverse: true, data: ranked.map((r, n) => `${n + 1}. ${r.name}`), axisLabel: { fontSize: 11 } },
    dataZoom: zoom(ranked.length, 12, true),
    series: [{
      name: indName(col), type: 'bar', barMaxWidth: 16,
      data: ranked.map((r, n) => ({ value: r.values[i], itemStyle: { color: n < 3 ? COLORS[0] : COLORS[1] } })),
      label: { show: true, position: 'right', fontSize: 11, formatter: (p) => fmtValue(p.value, col.unit) },
    }],
  }, true);
}

