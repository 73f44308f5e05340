  // ================================================================ panel.js
  // The side panel: colourings, legend, the gold-label filter, the map's selection, mouse modes.
  // ---------------------------------------------------------------- side panel
  function pressed(container, attr, value) {
    Array.prototype.forEach.call($(container).querySelectorAll('button'), function (b) {
      b.setAttribute('aria-pressed', String(b.getAttribute(attr) === value));
    });
  }
  function legend() {
    var s = spec(mode), K = s.names.length, counts = shownCounts(s, shownMask());
    var box = $('dc-legend');
    box.replaceChildren();
    s.names.concat(['none']).forEach(function (name, k) {
      if (k === K && counts[k] === 0) return;
      var row = el('div', 'dc-row'), sw = el('span', 'dc-swatch');
      sw.style.background = k < K ? s.colors[k] : meta.none_color;
      row.appendChild(sw);
      row.appendChild(el('span', null, name));
      row.appendChild(el('span', 'dc-count', counts[k].toLocaleString()));
      box.appendChild(row);
    });
    pressed('dc-color-by', 'data-mode', mode);
  }
  function setColorBy(m) {
    if (modes().indexOf(m) < 0) throw new Error('unknown colour mode ' + m);
    mode = m;
    return redraw();
  }
  function labelFilter() {
    var counts = new Array(meta.label_names.length).fill(0);
    for (var i = 0; i < N; i++) counts[A.gold[i]]++;
    var box = $('dc-labels');
    box.replaceChildren();
    if (!labelled()) { box.textContent = 'no classes (a causal LM)'; return; }
    meta.label_names.forEach(function (name, k) {
      if (!counts[k]) return;
      var row = el('label', 'dc-row'), cb = document.createElement('input');
      cb.type = 'checkbox'; cb.checked = labelOn[k]; cb.dataset.label = String(k);
      cb.addEventListener('change', function () { labelOn[k] = cb.checked; applyFilter(); });
      var sw = el('span', 'dc-swatch');
      sw.style.background = meta.label_colors[k];
      row.appendChild(cb); row.appendChild(sw); row.appendChild(el('span', null, name));
      row.appendChild(el('span', 'dc-count', counts[k].toLocaleString()));
      box.appendChild(row);
    });
  }
  function applyFilter() { return meta.server ? serverRefresh() : redraw(); }
  function setLabelFilter(labels) {
    labelOn = meta.label_names.map(function (_, k) { return labels.indexOf(k) >= 0 || labels.indexOf(meta.label_names[k]) >= 0; });
    Array.prototype.forEach.call($('dc-labels').querySelectorAll('input'), function (cb) { cb.checked = labelOn[+cb.dataset.label]; });
    return applyFilter();
  }
  function setSelection(indices, draw, quiet) {
    var sorted = Uint32Array.from(indices).sort(), n = 0;   // ascending, without repeats
    for (var k = 0; k < sorted.length; k++) if (k === 0 || sorted[k] !== sorted[k - 1]) sorted[n++] = sorted[k];
    selection = sorted.slice(0, n);
    $('dc-selcount').textContent = n ? n.toLocaleString() + ' selected' : 'nothing selected';
    $('dc-export').disabled = n === 0;
    if (A && !quiet) tableChanged();
    if (draw) {
      var per = groups.map(function () { return n ? [] : null; });
      selection.forEach(function (i) { if (traceOf[i] >= 0) per[traceOf[i]].push(pointOf[i]); });
      return Plotly.restyle(gd, { selectedpoints: per }, groups.map(function (_, t) { return t; }));
    }
    return Promise.resolve();
  }
  function clearSelection() {
    return setSelection(new Uint32Array(0), true).then(function () { return Plotly.relayout(gd, { selections: [] }); });
  }
  function selectionJSONL() {
    var lines = [];
    selection.forEach(function (i) { lines.push(JSON.stringify(record(i))); });
    return lines.length ? lines.join('\n') + '\n' : '';
  }
  function exportSelection() {
    var body = selectionJSONL();
    if (!body) { status('nothing selected: use box select or lasso first'); return ''; }
    var url = URL.createObjectURL(new Blob([body], { type: 'application/x-ndjson' }));
    var a = document.createElement('a');
    a.href = url; a.download = 'datacarto-selection.jsonl';
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
    return body;
  }
  function modeButtons() {                     // the colourings this level has
    Array.prototype.forEach.call($('dc-color-by').querySelectorAll('button'), function (b) {
      var m = b.getAttribute('data-mode'), off = modes().indexOf(m) < 0;
      b.disabled = off;
      b.title = !off ? '' : m === 'transition' ? 'needs datacarto map --compare (examples)'
        : m === 'label' ? 'no classes (a causal LM)' : 'no region column in the metrics';
    });
  }
  function wire() {
    Array.prototype.forEach.call($('dc-color-by').querySelectorAll('button'), function (b) {
      b.addEventListener('click', function () { setColorBy(b.getAttribute('data-mode')); });
    });
    modeButtons();
    Array.prototype.forEach.call($('dc-drag').querySelectorAll('button'), function (b) {
      b.addEventListener('click', function () { var d = b.getAttribute('data-drag'); pressed('dc-drag', 'data-drag', d); Plotly.relayout(gd, { dragmode: d }); });
    });
    pressed('dc-drag', 'data-drag', 'zoom');
    $('dc-export').addEventListener('click', exportSelection);
    $('dc-clear').addEventListener('click', clearSelection);
    gd.on('plotly_hover', function (ev) {
      if (!ev || !ev.points || !ev.points.length) return;
      var i = globalIndex(ev.points[0]);
      var e = ev.event || {}, px = e.clientX, py = e.clientY;
      if (px === undefined) { var q = pointPixel(i); px = q.x; py = q.y; }
      showTooltip(i, px, py);
    });
    gd.on('plotly_unhover', hideTooltip);
    gd.on('plotly_click', function (ev) { if (ev && ev.points && ev.points.length) focusIndex(globalIndex(ev.points[0])); });
    gd.on('plotly_selected', function (ev) {
      var pts = (ev && ev.points) || [], out = new Uint32Array(pts.length);
      for (var k = 0; k < pts.length; k++) out[k] = globalIndex(pts[k]);
      setSelection(out, false);
    });
    gd.on('plotly_deselect', function () { setSelection(new Uint32Array(0), false); });
  }

