  // ---------------------------------------------------------------- reviewing suspected labels (review.js)
  // With meta.review (a run that supports a label-error estimate: datacarto/maps/review.py) the table
  // of that level has `suspect` (the rank of a flagged row, most suspect first), `suggested_label`
  // (with its probability) and `decision`: a menu per row to accept the suggestion, relabel to another
  // class, drop the row or keep its label. Decisions are kept per level, by row (row_id, and sub_id
  // for a unit) with what the export writes of it, so a served page (serve.js), whose rows change with
  // the view, keeps a decision while its row is out of view, and exports every decided row. They are
  // exported as the corrections file `datacarto apply-corrections` reads (row_id, sub_id for units,
  // given_label, decision, new_label, dataset_fingerprint). Names go into the page through textContent only.
  var decisionsByLevel = {};   // level -> { row key: { decision, label, row } } (row: what the export writes of it)
  var DECISION_KEYS = ['accept', 'relabel', 'drop', 'keep'];

  function decisions() { return decisionsByLevel[meta.level] || (decisionsByLevel[meta.level] = {}); }
  function rowKey(i) { return meta.level === 'unit' ? A.unit_row[i] + ':' + A.unit_sub[i] : String(rowId(i)); }
  function decisionOf(i) { return decisions()[rowKey(i)]; }
  function suggestedLabel(i) { return meta.review ? labelName(A.suggested[i]) : null; }
  function suggestedProb(i) { var p = A.suggested_p[i]; return p === 255 ? null : p / 100; }
  function reviewColumns() {             // the table's review columns, for tableColumns()
    if (!meta.review) return [];
    function keys() {                    // a suspect's rank; NaN (sorted last) for the rest, of the rows held now
      var out = new Float32Array(N);
      for (var i = 0; i < N; i++) out[i] = A.suspect[i] ? A.suspect[i] : NaN;
      return out;
    }
    return [
      { name: 'suspect', kind: 'score', width: 70, values: keys,
        get: function (i) { return A.suspect[i] ? String(A.suspect[i]) : ''; } },
      { name: 'suggested_label', kind: 'label', width: 130, codes: function () { return A.suggested; }, names: meta.label_names,
        get: function (i) { var s = suggestedLabel(i); return s === null ? '' : s + ' (' + fmt(suggestedProb(i), 2) + ')'; } },
      { name: 'decision', kind: 'control', width: 160, nosort: true, make: decisionMenu, fill: fillDecision,
        get: function (i) { var d = decisionOf(i); return d ? decisionText(d) : ''; } }
    ];
  }
  function decisionText(d) {
    return d.decision === 'accept' ? 'accept: ' + d.row.suggested_label : d.decision === 'relabel' ? 'relabel: ' + labelName(d.label) : d.decision;
  }
  function decisionMenu(cell) {          // one <select> per pooled row, filled per row by fillDecision
    var sel = document.createElement('select');
    sel.setAttribute('aria-label', 'decision');
    [['', '\u2014'], ['accept', 'accept']].concat(meta.label_names.map(function (name, k) { return ['relabel:' + k, 'relabel: ' + name]; }),
      [['drop', 'drop the row'], ['keep', 'keep the label']]).forEach(function (o) {
      var opt = el('option', null, o[1]);
      opt.value = o[0];
      sel.appendChild(opt);
    });
    ['click', 'mousedown'].forEach(function (t) { sel.addEventListener(t, function (e) { e.stopPropagation(); }); });
    sel.addEventListener('change', function () {
      var v = sel.value, k = v.indexOf('relabel:') === 0 ? +v.slice(8) : null;
      setDecision(+sel.dataset.index, v === '' ? null : k === null ? v : 'relabel', k);
    });
    cell.appendChild(sel);
  }
  function fillDecision(cell, i) {
    var sel = cell.firstChild, d = decisionOf(i), s = suggestedLabel(i);
    sel.dataset.index = String(i);
    sel.options[1].textContent = s === null ? 'accept (no suggestion)' : 'accept: ' + s;
    sel.options[1].disabled = s === null;
    for (var k = 0; k < meta.label_names.length; k++) sel.options[2 + k].hidden = sel.options[2 + k].disabled = k === A.gold[i];
    sel.value = !d ? '' : d.decision === 'relabel' ? 'relabel:' + d.label : d.decision;
  }
  function setDecision(i, decision, label) {
    if (!meta.review) throw new Error('this level has no label-error review');
    if (!(i >= 0 && i < N)) throw new Error('no row ' + i);
    if (decision !== null && DECISION_KEYS.indexOf(decision) < 0) throw new Error('unknown decision ' + decision + '; one of ' + DECISION_KEYS.join(', '));
    if (decision === 'accept' && suggestedLabel(i) === null) throw new Error('row ' + rowId(i) + ' has no suggested label to accept');
    if (decision === 'relabel') {
      label = typeof label === 'number' ? label : meta.label_names.indexOf(label);
      if (!(label >= 0 && label < meta.label_names.length)) throw new Error('relabel needs one of ' + meta.label_names.join(', '));
    }
    if (decision === null) delete decisions()[rowKey(i)];
    else decisions()[rowKey(i)] = { decision: decision, label: decision === 'relabel' ? label : null, row: decidedRow(i) };
    reviewCount();
    scheduleRender();
    return Object.keys(decisions()).length;
  }
  function decidedRow(i) {               // what the export writes of row i besides the decision
    var o = meta.level === 'unit' ? { row_id: A.unit_row[i], sub_id: A.unit_sub[i] } : { row_id: rowId(i) };
    o.given_label = labelName(A.gold[i]);
    o.suggested_label = suggestedLabel(i);
    return o;
  }
  function decisionRows() {              // the corrections of every decided row, in row order (row_id, sub_id)
    var d = decisions();
    return Object.keys(d).map(function (k) { return d[k]; }).sort(function (a, b) {
      return a.row.row_id - b.row.row_id || (a.row.sub_id || 0) - (b.row.sub_id || 0);
    }).map(function (x) {
      var o = Object.assign({}, x.row);
      o.decision = x.decision === 'accept' ? 'relabel' : x.decision;   // accepting is relabelling to the suggestion
      o.new_label = x.decision === 'accept' ? x.row.suggested_label : x.decision === 'relabel' ? labelName(x.label) : '';
      o.dataset_fingerprint = meta.review.fingerprint;
      return o;
    });
  }
  function decisionsJSONL() {
    return decisionRows().map(function (o) { return JSON.stringify(o); }).join('\n') + (Object.keys(decisions()).length ? '\n' : '');
  }
  function decisionsCSV() {
    var rows = decisionRows();
    if (!rows.length) return '';
    var keys = Object.keys(rows[0]);
    return [keys.join(',')].concat(rows.map(function (o) { return keys.map(function (k) { return csvField(o[k]); }).join(','); }))
      .join('\r\n') + '\r\n';
  }
  function exportDecisions(format) {
    if (!meta.review || !Object.keys(decisions()).length) { status('no decisions to export: choose one in the decision column'); return ''; }
    return format === 'jsonl' ? download(decisionsJSONL(), 'datacarto-corrections.jsonl', 'application/x-ndjson')
      : download(decisionsCSV(), 'datacarto-corrections.csv', 'text/csv');
  }
  function reviewCount() {
    var n = Object.keys(decisions()).length;
    $('dc-decided').textContent = n ? n.toLocaleString() + ' decision' + (n === 1 ? '' : 's') : 'no decisions yet';
    $('dc-export-decisions').disabled = $('dc-export-decisions-jsonl').disabled = n === 0;
  }
  function reviewLevel() {                // the side panel's review section, for the level shown
    var r = meta.review;
    $('dc-review').hidden = !r;
    $('dc-suspects-only').checked = false;
    reviewNote();
  }
  function reviewNote() {                 // the estimate, and how many flagged rows the page holds (a served page: per view)
    var r = meta.review, where = meta.server ? ' of them in the rows held' : ' of them on this page';
    if (!r) return;
    $('dc-review-note').textContent = 'Estimated ' + r.estimate.toLocaleString() + ' wrong labels (' + r.note + '); ' +
      r.flagged.toLocaleString() + ' flagged' + (r.shown < r.flagged ? ', ' + r.shown.toLocaleString() + where : '') +
      '. The suspect column ranks them (most suspect first); decide per row in the decision column.';
    reviewCount();
  }
  var reviewWired = false;
  function reviewInit() {
    if (reviewWired) return;
    reviewWired = true;
    $('dc-export-decisions').addEventListener('click', function () { exportDecisions('csv'); });
    $('dc-export-decisions-jsonl').addEventListener('click', function () { exportDecisions('jsonl'); });
    $('dc-suspects-only').addEventListener('change', fromInputs);
  }
  Object.assign(api, {
    decide: function (i, decision, label) { return setDecision(i, decision === undefined ? null : decision, label); },
    decisions: decisionRows,
    decisionsJSONL: decisionsJSONL,
    decisionsCSV: decisionsCSV,
    exportDecisions: exportDecisions
  });
