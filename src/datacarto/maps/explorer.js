  // ---------------------------------------------------------------- the linked table (explorer.js)
  // Inlined into the page's app function: it shares A, text, meta, N, shown(), selection and the
  // tooltip. The table holds `view`: global indices of the rows it lists, in display order. It is
  // virtualised: only the rows in (and just around) the scrolled window exist as elements, and
  // their cells are filled with textContent only.
  var ROW_H = 24, HEAD_H = 26, BUFFER = 8;
  var view = new Uint32Array(0);
  var sortState = { column: null, desc: false };
  var orders = {};             // column name -> Uint32Array of all N indices in ascending order
  var filterSpec = {};         // what filter(spec) last set
  var query = '';              // what search(text) last set
  var hits = null;             // Uint8Array of rows matching the query (null = no query)
  var focused = -1;            // global index of the focused row (-1 = none)
  var pool = [], headRow = null, columns = [], rafPending = false;

  function regionName(c) { return c < 3 ? meta.regions[c] : null; }
  function scoreAt(name, i) {
    var s = scoreSpec(name);
    if (!s) return A[name][i];
    var c = A['score:' + name][i];
    return c === 65535 ? NaN : s.lo + c * s.step;
  }
  function scoreSpec(name) {
    for (var k = 0; k < meta.scores.length; k++) if (meta.scores[k].name === name) return meta.scores[k];
    return null;
  }
  function scoreDigits(name) { var s = scoreSpec(name); return s && s.lo === 0 && s.step === 1 ? 0 : 3; }  // integer scores
  function scoreNames() { return ['confidence', 'variability', 'correctness'].concat(meta.scores.map(function (s) { return s.name; })); }

  // ---- columns: {name, kind: text|label|score, get(i) -> shown value, key}
  function tableColumns() {
    var out = [{ name: meta.id_name || 'row_id', kind: 'score', width: 76, key: true, get: function (i) { return String(rowId(i)); } }];
    if (meta.level === 'unit') [['row_id', 'unit_row', 70], ['sub_id', 'unit_sub', 56]].forEach(function (u) {
      out.push({ name: u[0], kind: 'score', width: u[2], values: function () { return A[u[1]]; },
                 get: function (i) { return String(A[u[1]][i]); } });
    });
    if (text) text.columns.forEach(function (c, k) {
      out.push({ name: c, kind: 'text', col: k, width: 260, get: function (i) { var v = text.value(k, i); return v === null ? '' : v; } });
    });
    if (labelled()) out.push({ name: 'gold_label', kind: 'label', width: 110, codes: function () { return A.gold; },
                               names: meta.label_names, get: function (i) { return labelName(A.gold[i]) || ''; } });
    if (meta.has_pred) out.push({ name: 'last_pred_label', kind: 'label', width: 110, codes: function () { return A.last_pred; },
                                  names: meta.label_names, get: function (i) { return labelName(A.last_pred[i]) || ''; } });
    reviewColumns().forEach(function (c) { out.push(c); });   // suspect, suggested_label, decision (review.js)
    if (meta.has_region) out.push({ name: 'region', kind: 'label', width: 110, codes: function () { return A.region; },
                                    names: meta.regions, get: function (i) { return regionName(A.region[i]) || ''; } });
    if (meta.compare) meta.compare.runs.forEach(function (r, k) {
      out.push({ name: 'region:' + r, kind: 'label', width: 120, codes: function () { return A['compare:' + k]; },
                 names: meta.regions, get: function (i) { return regionName(A['compare:' + k][i]) || ''; } });
    });
    scoreNames().forEach(function (s) {
      out.push({ name: s, kind: 'score', width: 84, get: function (i) { return fmt(scoreAt(s, i), scoreDigits(s)); } });
    });
    return out;
  }
  function columnNamed(name) {
    for (var k = 0; k < columns.length; k++) if (columns[k].name === name) return columns[k];
    throw new Error('no table column ' + name + '; columns: ' + columns.map(function (c) { return c.name; }).join(', '));
  }

  // ---- the view: the selection if there is one, else every row the filters pass
  function computeView() {
    var member, n = 0, i;
    if (selection.length) { member = new Uint8Array(N); selection.forEach(function (j) { if (!member[j]) { member[j] = 1; n++; } }); }
    else { member = shownMask(); for (i = 0; i < N; i++) n += member[i]; }
    var out = new Uint32Array(n), k = 0;
    if (sortState.column === null) { for (i = 0; i < N; i++) if (member[i]) out[k++] = i; }
    else {
      var o = orderOf(columnNamed(sortState.column));
      if (sortState.desc) { for (i = N - 1; i >= 0; i--) if (member[o[i]]) out[k++] = o[i]; }
      else { for (i = 0; i < N; i++) if (member[o[i]]) out[k++] = o[i]; }
    }
    return out;
  }
  function tableChanged() {
    if (!headRow) return Promise.resolve();
    view = computeView();
    var what = selection.length ? ' selected on the map' : (keep || labelOn.indexOf(false) >= 0 ? ' passing the filters' : '');
    $('dc-rowcount').textContent = view.length.toLocaleString() + ' of ' + N.toLocaleString() + ' rows' + what;
    $('dc-table-spacer').style.height = (HEAD_H + view.length * ROW_H) + 'px';
    $('dc-table').scrollTop = 0;               // a new view starts at its first row
    renderRows();
    if (meta.compare) compareRefresh();
    return Promise.resolve();
  }
  function setSort(name, desc) {
    columnNamed(name);
    sortState = { column: name, desc: !!desc };
    Array.prototype.forEach.call(headRow.querySelectorAll('button'), function (b) {
      var on = b.dataset.column === name;
      b.setAttribute('aria-sort', on ? (desc ? 'descending' : 'ascending') : 'none');
      headText(b, on ? (desc ? ' \u25bc' : ' \u25b2') : '');
    });
    return tableChanged().then(function () { return view.length; });
  }

  // ---- rendering (virtualised)
  // A column is as wide as its header (with a sort arrow) up to MAX_COL px; a longer header loses
  // characters in the middle, not at the end: two runs' "region:<run>" columns keep the ends that
  // tell them apart.
  var MAX_COL = 240;
  function headText(b, suffix) {
    var name = b.dataset.column;
    b.textContent = name + suffix;
    if (b.scrollWidth <= b.clientWidth) return;
    var lo = 1, hi = name.length - 1;
    function cut(k) { var end = Math.ceil(k * 0.6); return name.slice(0, k - end) + '\u2026' + name.slice(name.length - end); }
    while (lo < hi) {                          // the most characters that fit
      var mid = Math.ceil((lo + hi) / 2);
      b.textContent = cut(mid) + suffix;
      if (b.scrollWidth <= b.clientWidth) lo = mid; else hi = mid - 1;
    }
    b.textContent = cut(lo) + suffix;
  }
  function gridTemplate() { return columns.map(function (c) { return c.width + 'px'; }).join(' '); }
  function buildHead() {
    headRow = el('div', 'dc-tr dc-th');
    headRow.style.gridTemplateColumns = gridTemplate();
    headRow.style.top = '0px';
    columns.forEach(function (c) {
      var cell = el('div', 'dc-td' + (c.kind === 'score' ? ' dc-num' : '')), b = el('button', null, c.name);
      b.type = 'button'; b.dataset.column = c.name; b.title = c.nosort ? c.name : 'sort by ' + c.name;
      if (!c.nosort) b.addEventListener('click', function () {
        setSort(c.name, sortState.column === c.name ? !sortState.desc : c.kind === 'score' && !c.key && !c.values);
      });
      cell.appendChild(b);
      headRow.appendChild(cell);
    });
    $('dc-table-spacer').appendChild(headRow);
    var buttons = headRow.querySelectorAll('button');
    columns.forEach(function (c, k) {          // widen a column to its header's text and sort arrow
      buttons[k].textContent = c.name + ' \u25bc';
      c.width = Math.max(c.width, Math.min(MAX_COL, buttons[k].scrollWidth + 16));
    });
    headRow.style.gridTemplateColumns = gridTemplate();
    Array.prototype.forEach.call(buttons, function (b) { headText(b, ''); });
  }
  function rowElement() {
    var r = el('div', 'dc-tr');
    r.style.gridTemplateColumns = gridTemplate();
    columns.forEach(function (c) {
      var cell = el('div', 'dc-td' + (c.kind === 'score' ? ' dc-num' : ''));
      if (c.make) c.make(cell);              // a control (review.js: the decision menu)
      r.appendChild(cell);
    });
    r.addEventListener('click', function () { focusIndex(+r.dataset.index); });
    $('dc-table-spacer').appendChild(r);
    return r;
  }
  function renderRows() {
    var box = $('dc-table'), top = Math.max(0, box.scrollTop - HEAD_H);
    var first = Math.max(0, Math.floor(top / ROW_H) - BUFFER);
    var count = Math.min(view.length - first, Math.ceil((box.clientHeight || 400) / ROW_H) + 2 * BUFFER);
    count = Math.max(0, count);
    while (pool.length < count) pool.push(rowElement());
    pool.forEach(function (r, k) {
      if (k >= count) { r.hidden = true; return; }
      var i = view[first + k];
      r.hidden = false;
      r.style.top = (HEAD_H + (first + k) * ROW_H) + 'px';
      r.dataset.index = String(i);
      r.dataset.rowId = String(rowId(i));
      r.classList.toggle('dc-focus', i === focused);
      var cells = r.children;
      for (var c = 0; c < columns.length; c++) {
        var v = columns[c].get(i);
        if (columns[c].fill) columns[c].fill(cells[c], i);
        else if (columns[c].kind === 'text') fillCell(cells[c], v);   // long values folded (details.js)
        else cells[c].textContent = v;     // data only ever as text
      }
    });
  }
  function scheduleRender() {
    if (rafPending) return;
    rafPending = true;
    requestAnimationFrame(function () { rafPending = false; renderRows(); });
  }

  // ---- focus: a row's point ringed on the map, its tooltip shown, the row scrolled into view
  function focusIndex(i) {
    focused = i;
    showDetails(i);
    var k = view.indexOf(i);
    if (k >= 0) {
      var box = $('dc-table'), y = HEAD_H + k * ROW_H;
      if (y < box.scrollTop + HEAD_H || y + ROW_H > box.scrollTop + box.clientHeight) box.scrollTop = Math.max(0, y - HEAD_H - 2 * ROW_H);
    }
    renderRows();
    var ring = { type: 'circle', xref: 'x', yref: 'y', xsizemode: 'pixel', ysizemode: 'pixel',
                 xanchor: A.variability[i], yanchor: A.confidence[i], x0: -9, x1: 9, y0: -9, y1: 9,
                 line: { color: '#d62728', width: 2.5 }, name: 'dc-focus' };
    plotLayout.shapes = guideShapes.concat([ring]);
    return Plotly.relayout(gd, { shapes: plotLayout.shapes }).then(function () {
      var q = pointPixel(i);
      if (!q) {
        var row = $('dc-table').querySelector('.dc-tr[data-index="' + i + '"]'), b = row ? row.getBoundingClientRect() : { left: 20, top: 20 };
        q = { x: b.left + 40, y: b.top };
      }
      return showTooltip(i, q.x, q.y);
    });
  }
  function focusRow(id) {
    var i = api.indexOfRowId(Number(id));
    if (i < 0) return Promise.reject(new Error('no row with id ' + id));
    return focusIndex(i);
  }

  // ---- export of the table's rows (in table order), exactly as record(i) gives them
  function tableJSONL() {
    var lines = [];
    view.forEach(function (i) { lines.push(JSON.stringify(record(i))); });
    return lines.length ? lines.join('\n') + '\n' : '';
  }
  function csvField(v) {
    if (v === null || v === undefined) return '';
    var s = typeof v === 'object' ? JSON.stringify(v) : String(v);
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }
  function tableCSV() {
    if (!view.length) return '';
    var keys = Object.keys(record(view[0])), lines = [keys.map(csvField).join(',')];
    view.forEach(function (i) { var r = record(i); lines.push(keys.map(function (k) { return csvField(r[k]); }).join(',')); });
    return lines.join('\r\n') + '\r\n';
  }
  function download(body, name, type) {
    var url = URL.createObjectURL(new Blob([body], { type: type }));
    var a = document.createElement('a');
    a.href = url; a.download = name;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
    return body;
  }
  function exportTable(format) {
    if (!view.length) { status('no rows to export'); return ''; }
    return format === 'csv' ? download(tableCSV(), 'datacarto-rows.csv', 'text/csv')
      : download(tableJSONL(), 'datacarto-rows.jsonl', 'application/x-ndjson');
  }

  var compareReady = false;
  function explorerLevel(q) {     // the table of the current level: state reset, columns, filters, head, search q
    view = new Uint32Array(0); sortState = { column: null, desc: false }; orders = {}; filterSpec = {};
    focused = -1; vocabRank = null; lowerVocab = null; timing = {};
    query = String(q || ''); hits = searchRows(query); keep = computeKeep();
    $('dc-search').value = query;
    columns = tableColumns();
    ['dc-regions', 'dc-preds', 'dc-ranges'].forEach(function (id) { $(id).replaceChildren(); });
    filterControls();
    pool = []; headRow = null;
    $('dc-table-spacer').replaceChildren();
    buildHead();
    if (meta.compare && !compareReady) { compareInit(); compareReady = true; }
    $('dc-compare').hidden = !meta.compare;
    reviewLevel();
  }
  function explorerInit() {
    explorerLevel('');
    $('dc-table').addEventListener('scroll', scheduleRender, { passive: true });
    window.addEventListener('resize', scheduleRender);
    var timer = null;
    $('dc-search').addEventListener('input', function () {
      clearTimeout(timer);
      var q = $('dc-search').value;
      timer = setTimeout(function () { setSearch(q); }, 200);
    });
    $('dc-clear-filters').addEventListener('click', function () { setFilter({ search: '' }); });
    $('dc-export-jsonl').addEventListener('click', function () { exportTable('jsonl'); });
    $('dc-export-csv').addEventListener('click', function () { exportTable('csv'); });
    reviewInit();
    tableChanged();
  }
  Object.assign(api, {
    search: setSearch,
    filter: setFilter,
    sort: setSort,
    tableRows: function () { return Array.prototype.map.call(view, rowId); },
    tableIndices: function () { return Array.from(view); },
    tableColumns: function () { return columns.map(function (c) { return c.name; }); },
    renderedRows: function () {
      return Array.prototype.filter.call($('dc-table').querySelectorAll('.dc-tr:not(.dc-th)'), function (r) { return !r.hidden; })
        .sort(function (a, b) { return parseFloat(a.style.top) - parseFloat(b.style.top); })
        .map(function (r) { return Array.prototype.map.call(r.children, function (c) { return c.textContent; }); });
    },
    focusRow: focusRow,
    focused: function () { return focused; },
    timing: function () { return Object.assign({}, timing); },
    tableJSONL: tableJSONL,
    tableCSV: tableCSV,
    exportTable: exportTable
  });

