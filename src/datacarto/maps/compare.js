  // ---------------------------------------------------------------- compared runs (compare.js)
  // With `datacarto map RUN_A --compare RUN_B ...` the page carries each run's region per example
  // (A['compare:k'], k = 0 for the mapped run). The matrix counts the shown examples by region in
  // run 0 (rows) and in the chosen run (columns); a click on a cell selects those examples.
  var cmpOther = 1;
  var TRANSITION_COLORS = ['#d62728', '#9467bd', '#8c564b', '#e377c2', '#bcbd22', '#17becf'];
  function transitionCodes() {
    var a = A['compare:0'], b = A['compare:' + cmpOther], out = new Uint8Array(N);
    for (var i = 0; i < N; i++) out[i] = a[i] < 3 && b[i] < 3 ? a[i] * 3 + b[i] : 9;
    return out;
  }
  function transitionSpec() {
    var names = [], colors = [], off = 0, runs = meta.compare.runs;
    for (var r = 0; r < 3; r++) for (var c = 0; c < 3; c++) {
      names.push(r === c ? 'kept ' + meta.regions[r] : meta.regions[r] + ' \u2192 ' + meta.regions[c]);
      colors.push(r === c ? meta.region_colors[r] : TRANSITION_COLORS[off++]);
    }
    return { codes: transitionCodes(), names: names, colors: colors, title: runs[0] + ' \u2192 ' + runs[cmpOther] };
  }
  function transitionCounts() {
    var a = A['compare:0'], b = A['compare:' + cmpOther], m = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
    for (var i = 0; i < N; i++) if (a[i] < 3 && b[i] < 3 && shown(i)) m[a[i]][b[i]]++;
    return m;
  }
  function selectTransition(r, c) {
    var a = A['compare:0'], b = A['compare:' + cmpOther], out = [];
    if (typeof r === 'string') r = meta.regions.indexOf(r);
    if (typeof c === 'string') c = meta.regions.indexOf(c);
    for (var i = 0; i < N; i++) if (a[i] === r && b[i] === c && shown(i)) out.push(i);
    return setSelection(out, true).then(function () { return out.length; });
  }
  function stableShare() {
    var K = meta.compare.runs.length, same = 0;
    for (var i = 0; i < N; i++) {
      var c0 = A['compare:0'][i], ok = c0 < 3;
      for (var k = 1; k < K && ok; k++) ok = A['compare:' + k][i] === c0;
      if (ok) same++;
    }
    return { stable: same, n: N, share: N ? same / N : NaN };
  }
  function compareRefresh() {
    var m = transitionCounts(), box = $('dc-matrix'), table = document.createElement('table');
    var head = document.createElement('tr');
    var corner = el('th', null, 'rows \\ cols');   // the runs are named above the matrix
    corner.title = meta.compare.runs[0] + ' (rows) \u2192 ' + meta.compare.runs[cmpOther] + ' (columns)';
    head.appendChild(corner);
    meta.regions.forEach(function (name) { head.appendChild(el('th', null, name)); });
    table.appendChild(head);
    m.forEach(function (row, r) {
      var tr = document.createElement('tr');
      tr.appendChild(el('th', null, meta.regions[r]));
      row.forEach(function (count, c) {
        var td = document.createElement('td'), b = el('button', null, count.toLocaleString());
        b.type = 'button'; b.dataset.from = meta.regions[r]; b.dataset.to = meta.regions[c];
        b.title = 'select the ' + count + ' examples ' + meta.regions[r] + ' in ' + meta.compare.runs[0] + ' and ' +
                  meta.regions[c] + ' in ' + meta.compare.runs[cmpOther];
        b.addEventListener('click', function () { selectTransition(r, c); });
        td.appendChild(b);
        tr.appendChild(td);
      });
      table.appendChild(tr);
    });
    box.replaceChildren(table);
  }
  function compareInit() {
    $('dc-compare').hidden = false;
    $('dc-compare-base').textContent = meta.compare.runs[0];
    var sel = $('dc-compare-other');
    meta.compare.runs.forEach(function (name, k) {
      if (k === 0) return;
      var o = document.createElement('option');
      o.value = String(k); o.textContent = name;
      sel.appendChild(o);
    });
    sel.addEventListener('change', function () { setCompareRun(+sel.value); });
    var s = stableShare();
    $('dc-stable').textContent = 'Kept their region in all ' + meta.compare.runs.length + ' runs: ' +
      (100 * s.share).toFixed(1) + '% (' + s.stable.toLocaleString() + ' of ' + s.n.toLocaleString() + ' examples).';
  }
  function setCompareRun(k) {
    if (!(k >= 1 && k < meta.compare.runs.length)) throw new Error('no compared run ' + k);
    cmpOther = k;
    $('dc-compare-other').value = String(k);
    return mode === 'transition' ? redraw() : tableChanged();
  }
  if (meta.compare || (altMeta && altMeta.compare)) Object.assign(api, {
    compareMatrix: function () { return { runs: [meta.compare.runs[0], meta.compare.runs[cmpOther]], counts: transitionCounts() }; },
    selectTransition: selectTransition,
    setCompareRun: setCompareRun,
    stableShare: stableShare
  });
