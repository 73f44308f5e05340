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

  // ---- sorting: one ascending order of all rows per column, computed once; a view is sorted by
  // walking that order and keeping the rows it holds (linear in N).
  var PACK = 2097152;          // 2**21: key * PACK + index stays an exact float64 below 2**53
  function packedOrder(keyOf) {   // keyOf(i): a non-negative integer below 2**32
    var out = new Uint32Array(N), i;
    if (N < PACK) {
      var packed = new Float64Array(N);
      for (i = 0; i < N; i++) packed[i] = keyOf(i) * PACK + i;
      packed.sort();
      for (i = 0; i < N; i++) out[i] = packed[i] % PACK;
      return out;
    }
    var keys = new Float64Array(N);
    for (i = 0; i < N; i++) { keys[i] = keyOf(i); out[i] = i; }
    return out.sort(function (a, b) { return keys[a] - keys[b] || a - b; });
  }
  var f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
  function floatKey(x) {          // float32 bits made order-preserving as uint32; NaN sorts last
    if (x !== x) return 4294967295;
    f32[0] = x;
    var u = u32[0];
    return u >= 2147483648 ? 4294967295 - u : u + 2147483648;
  }
  function nameRanks(names) {     // code -> rank of its name (missing codes last)
    var sorted = names.map(function (n, k) { return k; }).sort(function (a, b) { return names[a] < names[b] ? -1 : names[a] > names[b] ? 1 : a - b; });
    var rank = new Uint32Array(65536).fill(65535);
    sorted.forEach(function (code, r) { rank[code] = r; });
    return rank;
  }
  var vocabRank = null;
  function wordRanks() {          // vocabulary id -> rank of the word in string order
    if (vocabRank) return vocabRank;
    var vocab = text.vocab, order = vocab.map(function (w, k) { return k; });
    order.sort(function (a, b) { return vocab[a] < vocab[b] ? -1 : vocab[a] > vocab[b] ? 1 : 0; });
    vocabRank = new Uint32Array(vocab.length + 2);
    order.forEach(function (k, r) { vocabRank[k + 2] = r + 1; });   // 0: end of value (sorts first)
    return vocabRank;
  }
  function textOrder(col) {       // word by word: by the first word's rank, ties broken by the rest
    var ids = text.ids, starts = text.starts, rank = wordRanks(), missing = rank.length + 1;
    function first(i) { var a = starts[col * N + i]; return ids[a] === 1 && ids[a + 1] === 0 ? missing : rank[ids[a]]; }
    var order = packedOrder(first);
    function cmp(x, y) {
      var a = starts[col * N + x], b = starts[col * N + y];
      for (;;) {
        var p = ids[a] ? rank[ids[a]] : 0, q = ids[b] ? rank[ids[b]] : 0;
        if (p !== q) return p - q;
        if (p === 0) return x - y;
        a++; b++;
      }
    }
    for (var s = 0; s < N;) {      // runs of equal first words
      var f = first(order[s]), e = s + 1;
      while (e < N && first(order[e]) === f) e++;
      if (e - s > 1 && f !== missing) order.subarray(s, e).sort(cmp);
      s = e;
    }
    return order;
  }
  function orderOf(c) {
    if (orders[c.name]) return orders[c.name];
    var o;
    if (c.key) o = packedOrder(function (i) { return floatKey(rowId(i)); });
    else if (c.values) { var w = c.values(); o = packedOrder(function (i) { return floatKey(w[i]); }); }
    else if (c.kind === 'text') o = textOrder(c.col);
    else if (c.kind === 'label') {
      var codes = c.codes(), rank = nameRanks(c.names);
      o = packedOrder(function (i) { return rank[codes[i]]; });
    } else if (scoreSpec(c.name)) {
      var q = A['score:' + c.name];
      o = packedOrder(function (i) { return q[i]; });
    } else {
      var v = A[c.name];
      o = packedOrder(function (i) { return floatKey(v[i]); });
    }
    orders[c.name] = o;
    return o;
  }

  // ---- search: a word (no space) is in a value iff some vocabulary word holds it, so the
  // search marks vocabulary words, then scans the word ids once. A query with spaces is checked
  // on the text of the rows that hold its longest word.
  var lowerVocab = null;
  function searchRows(q) {
    q = String(q || '').trim().toLowerCase();
    if (!q || !text) return null;
    if (!lowerVocab) lowerVocab = text.vocab.map(function (w) { return w.toLowerCase(); });
    var parts = q.split(' ').filter(Boolean), longest = parts.reduce(function (a, b) { return b.length > a.length ? b : a; }, '');
    var flag = new Uint8Array(lowerVocab.length + 2);
    for (var w = 0; w < lowerVocab.length; w++) if (lowerVocab[w].indexOf(longest) >= 0) flag[w + 2] = 1;
    var out = new Uint8Array(N), ids = text.ids, r = 0, T = ids.length;
    for (var t = 0; t < T; t++) {
      var id = ids[t];
      if (id === 0) { if (++r === N) r = 0; } else if (flag[id]) out[r] = 1;
    }
    if (parts.length > 1 || q.indexOf(' ') >= 0) {
      for (var i = 0; i < N; i++) {
        if (!out[i]) continue;
        var found = false;
        for (var k = 0; k < text.columns.length && !found; k++) {
          var v = text.value(k, i);
          found = v !== null && v.toLowerCase().indexOf(q) >= 0;
        }
        out[i] = found ? 1 : 0;
      }
    }
    return out;
  }

  // ---- filters
  function codeSet(values, names, what) {       // names or codes -> Uint8Array of allowed codes
    var ok = new Uint8Array(65536);
    values.forEach(function (v) {
      var k = typeof v === 'number' ? v : names.indexOf(v);
      if (k < 0 || k >= names.length) throw new Error('unknown ' + what + ' ' + v + '; one of ' + names.join(', '));
      ok[k] = 1;
    });
    return ok;
  }
  function computeKeep() {        // one tight loop per active test, over the rows still kept
    var s = filterSpec, out = null, i;
    function narrow(test) {
      if (out === null) { out = new Uint8Array(N); for (i = 0; i < N; i++) out[i] = test(i) ? 1 : 0; return; }
      for (i = 0; i < N; i++) if (out[i] && !test(i)) out[i] = 0;
    }
    if (s.region && s.region.length !== undefined) {
      var rs = codeSet(s.region, meta.regions, 'region'), reg = A.region;
      narrow(function (j) { return rs[reg[j]] === 1; });
    }
    if (s.pred && meta.has_pred) {
      var ps = codeSet(s.pred, meta.label_names, 'label'), pred = A.last_pred;
      narrow(function (j) { return ps[pred[j]] === 1; });
    }
    Object.keys(s.ranges || {}).forEach(function (name) {
      if (scoreNames().indexOf(name) < 0) throw new Error('no score ' + name + '; scores: ' + scoreNames().join(', '));
      var lo = s.ranges[name][0], hi = s.ranges[name][1];
      lo = (lo === null || lo === undefined || lo === '') ? -Infinity : +lo;
      hi = (hi === null || hi === undefined || hi === '') ? Infinity : +hi;
      narrow(function (j) { var v = scoreAt(name, j); return v >= lo && v <= hi; });
    });
    if (s.suspects && meta.review) { var sus = A.suspect; narrow(function (j) { return sus[j] > 0; }); }
    if (hits) narrow(function (j) { return hits[j] === 1; });
    return out;
  }
  var timing = {};             // the last filter or search: ms until the table, then the map, were updated
  function applyTableFilter(t0) {
    t0 = t0 || performance.now();
    keep = computeKeep();
    if (focused >= 0 && !shown(focused)) { focused = -1; plotLayout.shapes = guideShapes; hideTooltip(); }
    timing = {};
    var done = redraw(true);                   // the table is updated synchronously, the map a frame later
    timing.table_ms = performance.now() - t0;
    return done.then(function () { timing.map_ms = performance.now() - t0; });
  }
  function setFilter(spec) {
    var t0 = performance.now();
    spec = spec || {};
    var next = { region: spec.region, pred: spec.pred, ranges: spec.ranges || {}, suspects: !!spec.suspects };
    var saved = filterSpec;
    filterSpec = next;
    try { computeKeep(); if (spec.gold) codeSet(spec.gold, meta.label_names, 'label'); }
    catch (err) { filterSpec = saved; throw err; }   // a bad spec changes nothing
    if (spec.gold) labelOn = meta.label_names.map(function (name, k) { return spec.gold.indexOf(k) >= 0 || spec.gold.indexOf(name) >= 0; });
    else labelOn = meta.label_names.map(function () { return true; });
    if (spec.search !== undefined) { query = String(spec.search); hits = searchRows(query); $('dc-search').value = query; }
    syncFilterInputs();
    return applyTableFilter(t0).then(function () { return view.length; });
  }
  function setSearch(q) {
    var t0 = performance.now();
    query = String(q === undefined || q === null ? '' : q);
    hits = searchRows(query);
    $('dc-search').value = query;
    return applyTableFilter(t0).then(function () { return view.length; });
  }

  // ---- the view: the selection if there is one, else every row the filters pass
  function computeView() {
    var member = new Uint8Array(N), n = 0, i;
    if (selection.length) { selection.forEach(function (j) { if (!member[j]) { member[j] = 1; n++; } }); }
    else { for (i = 0; i < N; i++) if (shown(i)) { member[i] = 1; n++; } }
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

  // ---- filter controls in the side panel
  function checkboxes(box, names, colors, counts, onChange) {
    $(box).replaceChildren();
    names.forEach(function (name, k) {
      if (!counts[k]) return;
      var row = el('label', 'dc-row'), cb = document.createElement('input');
      cb.type = 'checkbox'; cb.checked = true; cb.dataset.code = String(k);
      cb.addEventListener('change', onChange);
      var sw = el('span', 'dc-swatch');
      sw.style.background = colors[k];
      row.appendChild(cb); row.appendChild(sw); row.appendChild(el('span', null, name));
      row.appendChild(el('span', 'dc-count', counts[k].toLocaleString()));
      $(box).appendChild(row);
    });
  }
  function checked(box) {
    var all = $(box).querySelectorAll('input'), on = [];
    Array.prototype.forEach.call(all, function (cb) { if (cb.checked) on.push(+cb.dataset.code); });
    return on.length === all.length ? undefined : on;
  }
  function fromInputs() {
    var ranges = {};
    Array.prototype.forEach.call($('dc-ranges').querySelectorAll('.dc-range'), function (r) {
      var lo = r.querySelector('[data-end=lo]').value, hi = r.querySelector('[data-end=hi]').value;
      if (lo !== '' || hi !== '') ranges[r.dataset.score] = [lo === '' ? null : +lo, hi === '' ? null : +hi];
    });
    filterSpec = { region: checked('dc-regions'), pred: checked('dc-preds'), ranges: ranges,
                   suspects: !!meta.review && $('dc-suspects-only').checked };
    return applyTableFilter();
  }
  function syncFilterInputs() {
    function sync(box, values, names) {
      Array.prototype.forEach.call($(box).querySelectorAll('input'), function (cb) {
        var k = +cb.dataset.code;
        cb.checked = !values || values.indexOf(k) >= 0 || values.indexOf(names[k]) >= 0;
      });
    }
    sync('dc-regions', filterSpec.region, meta.regions);
    sync('dc-preds', filterSpec.pred, meta.label_names);
    $('dc-suspects-only').checked = !!filterSpec.suspects;
    Array.prototype.forEach.call($('dc-labels').querySelectorAll('input'), function (cb) { cb.checked = labelOn[+cb.dataset.label]; });
    Array.prototype.forEach.call($('dc-ranges').querySelectorAll('.dc-range'), function (r) {
      var range = (filterSpec.ranges || {})[r.dataset.score] || [null, null];
      r.querySelector('[data-end=lo]').value = range[0] === null || range[0] === undefined ? '' : range[0];
      r.querySelector('[data-end=hi]').value = range[1] === null || range[1] === undefined ? '' : range[1];
    });
  }
  function filterControls() {
    function counts(codes, K) { var c = new Array(K).fill(0); for (var i = 0; i < N; i++) if (codes[i] < K) c[codes[i]]++; return c; }
    if (meta.has_region) checkboxes('dc-regions', meta.regions, meta.region_colors, counts(A.region, 3), fromInputs);
    else $('dc-regions').textContent = 'no region column';
    if (meta.has_pred) checkboxes('dc-preds', meta.label_names, meta.label_colors, counts(A.last_pred, meta.label_names.length), fromInputs);
    else $('dc-preds').textContent = 'no predictions';
    scoreNames().forEach(function (name) {
      var row = el('div', 'dc-range');
      row.dataset.score = name;
      row.appendChild(el('span', null, name));
      ['lo', 'hi'].forEach(function (end) {
        var input = document.createElement('input');
        input.type = 'number'; input.step = 'any'; input.dataset.end = end; input.placeholder = end === 'lo' ? 'min' : 'max';
        input.addEventListener('change', fromInputs);
        row.appendChild(input);
      });
      $('dc-ranges').appendChild(row);
    });
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
