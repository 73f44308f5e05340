  // ---------------------------------------------------------------- the table's search and filters (filters.js)
  // What the map draws and the table lists: keep[i] (filters.js), shown(i) (page.js), or for every
  // row at once shownMask().
  // ---- search: a word (no space) is in a value iff some vocabulary word holds it, so the search
  // marks vocabulary words, then finds the values holding a marked word: for a few words by the
  // native indexOf over the word ids (word ids run from the most frequent word: a rare word is
  // found in a few milliseconds), else in one pass over the ids. A query with spaces is checked on
  // the text of the rows that hold its longest word.
  var lowerVocab = null, FEW_WORDS = 4;
  function searchRows(q) {
    q = String(q || '').trim().toLowerCase();
    if (!q || !text) return null;
    if (!lowerVocab) lowerVocab = text.vocab.map(function (w) { return w.toLowerCase(); });
    var parts = q.split(' ').filter(Boolean), longest = parts.reduce(function (a, b) { return b.length > a.length ? b : a; }, '');
    var flag = new Uint8Array(lowerVocab.length + 2), marked = [];
    for (var w = 0; w < lowerVocab.length; w++) if (lowerVocab[w].indexOf(longest) >= 0) { flag[w + 2] = 1; marked.push(w + 2); }
    var out = (marked.length <= FEW_WORDS && rowsHolding(marked)) || rowsFlagged(flag);
    if (parts.length > 1) {
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
  function rowsFlagged(flag) {    // rows with a value holding a flagged word id: one pass over the ids
    var out = new Uint8Array(N), ids = text.ids, r = 0, T = ids.length;
    for (var t = 0; t < T; t++) {
      var id = ids[t];
      if (id === 0) { if (++r === N) r = 0; } else if (flag[id]) out[r] = 1;
    }
    return out;
  }
  function rowsHolding(words) {   // the same for a few word ids, or null past `limit` hits (the pass is then faster)
    var ids = text.ids, starts = text.starts, last = starts.length - 1, out = new Uint8Array(N);
    var limit = Math.max(64, N >> 3), found = 0;
    for (var k = 0; k < words.length; k++) {
      var v = 0;                                 // the value holding token p: starts[v] <= p < starts[v + 1]
      for (var p = ids.indexOf(words[k]); p >= 0; p = ids.indexOf(words[k], p + 1)) {
        if (++found > limit) return null;
        var hi = last;
        while (hi - v > 1) { var m = (v + hi) >>> 1; if (starts[m] <= p) v = m; else hi = m; }
        out[v % N] = 1;                          // value v is column floor(v / N) of row v % N
      }
    }
    return out;
  }
  function shownMask() {          // shown(i) of every row, in one pass
    var on = new Uint8Array(65536), gold = A.gold, out = new Uint8Array(N), i;
    labelOn.forEach(function (v, k) { on[k] = v ? 1 : 0; });
    if (keep === null) for (i = 0; i < N; i++) out[i] = on[gold[i]];
    else for (i = 0; i < N; i++) out[i] = on[gold[i]] & keep[i];
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
  function computeKeep() {        // one tight loop per active test, over typed arrays
    var s = filterSpec, out = null, i;
    function narrow(test) {
      if (out === null) { out = new Uint8Array(N); for (i = 0; i < N; i++) out[i] = test(i) ? 1 : 0; return; }
      for (i = 0; i < N; i++) if (out[i] && !test(i)) out[i] = 0;
    }
    function narrowCodes(codes, ok) {   // ok: Uint8Array of 0/1 by code (a 0/1 mask with `codes` null)
      if (!codes) { if (out === null) out = ok.slice(); else for (i = 0; i < N; i++) out[i] &= ok[i]; return; }
      if (out === null) { out = new Uint8Array(N); for (i = 0; i < N; i++) out[i] = ok[codes[i]]; return; }
      for (i = 0; i < N; i++) out[i] &= ok[codes[i]];
    }
    if (s.region && s.region.length !== undefined) narrowCodes(A.region, codeSet(s.region, meta.regions, 'region'));
    if (s.pred && meta.has_pred) narrowCodes(A.last_pred, codeSet(s.pred, meta.label_names, 'label'));
    Object.keys(s.ranges || {}).forEach(function (name) {
      if (scoreNames().indexOf(name) < 0) throw new Error('no score ' + name + '; scores: ' + scoreNames().join(', '));
      var lo = s.ranges[name][0], hi = s.ranges[name][1];
      lo = (lo === null || lo === undefined || lo === '') ? -Infinity : +lo;
      hi = (hi === null || hi === undefined || hi === '') ? Infinity : +hi;
      var sp = scoreSpec(name), q = sp ? A['score:' + name] : A[name];   // as scoreAt(name, j) reads it
      if (sp) narrow(function (j) { var c = q[j], v = c === 65535 ? NaN : sp.lo + c * sp.step; return v >= lo && v <= hi; });
      else narrow(function (j) { var v = q[j]; return v >= lo && v <= hi; });
    });
    if (s.suspects && meta.review) { var sus = A.suspect; narrow(function (j) { return sus[j] > 0; }); }
    if (hits) narrowCodes(null, hits);
    return out;
  }
  var timing = {};             // the last filter or search: ms until the table, then the map, were updated
  function applyTableFilter(t0, computed) {   // computed: keep, if the caller has it already
    if (meta.server) return serverRefresh(t0);   // a served page: the server filters all rows (serve.js)
    t0 = t0 || performance.now();
    keep = computed !== undefined ? computed : computeKeep();
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
    var saved = [filterSpec, hits], computed;
    filterSpec = next;
    if (spec.search !== undefined) hits = searchRows(String(spec.search));
    try { computed = computeKeep(); if (spec.gold) codeSet(spec.gold, meta.label_names, 'label'); }
    catch (err) { filterSpec = saved[0]; hits = saved[1]; throw err; }   // a bad spec changes nothing
    if (spec.gold) labelOn = meta.label_names.map(function (name, k) { return spec.gold.indexOf(k) >= 0 || spec.gold.indexOf(name) >= 0; });
    else labelOn = meta.label_names.map(function () { return true; });
    if (spec.search !== undefined) { query = String(spec.search); $('dc-search').value = query; }
    syncFilterInputs();
    return applyTableFilter(t0, computed).then(function () { return view.length; });
  }
  function setSearch(q) {
    var t0 = performance.now();
    query = String(q === undefined || q === null ? '' : q);
    hits = searchRows(query);
    $('dc-search').value = query;
    return applyTableFilter(t0).then(function () { return view.length; });
  }

  // ---- filter controls in the side panel
  function checkboxes(box, names, colors, counts, onChange) {
    $(box).replaceChildren();
    names.forEach(function (name, k) {
      if (!counts[k] && !meta.server) return;   // a served page: a class its first rows lack is still filtered
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

