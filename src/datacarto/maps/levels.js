  // ---------------------------------------------------------------- examples / units (levels.js)
  // A multi-label or token-classification run's page holds two levels: one point per example and
  // one per unit (label or word). Each level is its own payload (meta, arrays, text), decoded the
  // same way; the switch swaps meta, N, A and text, resets the selection, filters and table state
  // (the search text is kept and run again), and redraws. Only one level's traces exist at a time.
  var levels = {};             // level name -> Promise of { meta, A, text }
  var switchMs = null;         // the last switch: ms until the map and the table showed the new level

  function unitWord(m, plural) {
    var kind = m.unit_kind || 'unit';
    return m.level === 'unit' ? kind + (plural ? 's' : '') : (plural ? 'examples' : 'example');
  }
  function pointName(i) {       // the tooltip's and the details' heading: the example, or the unit in it
    if (meta.level !== 'unit') return 'row ' + rowId(i);
    return 'row ' + A.unit_row[i] + ' \u00b7 ' + unitWord(meta, false) + ' ' + A.unit_sub[i] + ' (unit ' + rowId(i) + ')';
  }
  function levelStatus() {
    if (meta.server) return serverStatus();
    var sub = meta.n < meta.n_total ? ' (a random ' + meta.n.toLocaleString() + ' of ' + meta.n_total.toLocaleString() + ')' : '';
    return N.toLocaleString() + ' ' + unitWord(meta, true) + sub + ' \u00b7 ' + meta.n_epochs + ' epochs';
  }
  function levelData(name) {
    if (levels[name]) return levels[name];
    if (!altMeta || altMeta.level !== name) return Promise.reject(new Error('this page has no ' + name + ' level'));
    var parts = window.__datacartoData.alt();
    levels[name] = parts.numeric.then(function (bytes) {
      var L = { meta: altMeta, A: arraysOf(bytes, altMeta), text: null };
      return parts.text.then(function (words) { if (words) L.text = new TextStore(words, altMeta.n); return L; });
    });
    return levels[name];
  }
  function readingNote() {
    $('dc-reading').textContent = meta.level === 'unit'
      ? 'Each point is one ' + unitWord(meta, false) + ' of a training example, with its own scores (the table and search list ' +
        unitWord(meta, true) + ').'
      : 'Each point is a training example' + (altMeta ? ' (its scores: the mean over its ' + unitWord(altMeta, true) + ').' : '.');
  }
  function levelButtons() {
    Array.prototype.forEach.call($('dc-level').querySelectorAll('button'), function (b) {
      var name = b.getAttribute('data-level'), m = name === meta.level ? meta : altMeta;
      b.textContent = unitWord(m, true);
      b.setAttribute('aria-pressed', String(name === meta.level));
    });
  }
  function levelsInit() {
    levels[meta.level] = Promise.resolve({ meta: meta, A: A, text: text });
    readingNote();
    if (!altMeta) return;
    $('dc-level').hidden = false;
    levelButtons();
    Array.prototype.forEach.call($('dc-level').querySelectorAll('button'), function (b) {
      b.addEventListener('click', function () { setLevel(b.getAttribute('data-level')).catch(fail); });
    });
  }
  function setLevel(name) {
    if (name === meta.level) return Promise.resolve(N);
    var t0 = performance.now(), q = query;
    status('switching to ' + unitWord(altMeta, true) + '\u2026');
    return levelData(name).then(function (L) {
      hideTooltip();
      hideDetails();
      var other = { meta: meta, A: A, text: text };
      meta = L.meta; A = L.A; text = L.text; N = meta.n;
      altMeta = other.meta;
      api.n = N; api.meta = meta;
      labelOn = meta.label_names.map(function () { return true; });
      selection = new Uint32Array(0);
      $('dc-selcount').textContent = 'nothing selected';
      $('dc-export').disabled = true;
      if (modes().indexOf(mode) < 0) mode = 'correctness';
      labelFilter();
      modeButtons();
      levelButtons();
      readingNote();
      explorerLevel(q);                        // the table, its filters and the search, for this level
      plotLayout = layout();
      guideShapes = plotLayout.shapes;
      plotLayout.dragmode = gd._fullLayout.dragmode;
      tableChanged();
      return Plotly.react(gd, buildTraces(), plotLayout);
    }).then(function () {
      legend();
      switchMs = performance.now() - t0;
      status(levelStatus());
      return N;
    });
  }
  Object.assign(api, {
    level: function () { return meta.level; },
    levels: function () { return altMeta ? [meta.level, altMeta.level].sort() : [meta.level]; },
    setLevel: setLevel,
    switchMs: function () { return switchMs; }
  });
