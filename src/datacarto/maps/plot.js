  // ================================================================ plot.js
  // The map: one single-colour scattergl trace per colour class, the layout, redraws.
  // ---------------------------------------------------------------- colours
  function modes() {
    return ['correctness'].concat(labelled() ? ['label'] : [], meta.has_region ? ['region'] : [],
                                  meta.compare ? ['transition'] : []);
  }
  function spec(m) {
    if (m === 'transition') return transitionSpec();
    if (m === 'label') return { codes: A.gold, names: meta.label_names, colors: meta.label_colors, title: 'gold label' };
    if (m === 'region') return { codes: A.region, names: meta.regions, colors: meta.region_colors, title: 'region' };
    var names = [];
    for (var k = 0; k <= meta.n_epochs; k++) names.push(k + '/' + meta.n_epochs);
    return { codes: A.level, names: names, colors: meta.correctness_colors, title: 'correctness' };
  }
  function shownCounts(sp, vis) {              // points shown of each colour class (K: none), vis = shownMask()
    var K = sp.names.length, codes = sp.codes, counts = new Array(K + 1).fill(0);
    for (var i = 0; i < N; i++) if (vis[i]) { var c = codes[i]; counts[c < K ? c : K]++; }
    return counts;
  }
  function buildTraces() {                      // traces for the current colour mode and label filter
    var sp = spec(mode), K = sp.names.length, vis = shownMask(), counts = shownCounts(sp, vis), codes = sp.codes, i, c;
    var buckets = counts.map(function (n) { return new Uint32Array(n); }), fill = new Array(K + 1).fill(0);
    for (i = 0; i < N; i++) if (vis[i]) { c = codes[i]; c = c < K ? c : K; buckets[c][fill[c]++] = i; }
    // the biggest class is drawn first (below), so small classes stay visible on top of it
    var order = [];
    for (c = 0; c <= K; c++) if (counts[c]) order.push(c);
    order.sort(function (a, b) { return counts[b] - counts[a] || a - b; });
    var colors = sp.colors.concat([meta.none_color]), names = sp.names.concat(['none']);
    var size = N > 200000 ? 2 : N > 50000 ? 3 : N > 5000 ? 4 : 7, opacity = N > 50000 ? 0.6 : 0.85;
    groups = []; traceOf = new Int32Array(N).fill(-1); pointOf = new Uint32Array(N); nShown = 0;
    var traces = [];
    order.forEach(function (c) {
      for (var a = 0; a < counts[c]; a += MAX_TRACE) {
        var idx = buckets[c].subarray(a, Math.min(counts[c], a + MAX_TRACE)), t = traces.length;
        var x = new Float32Array(idx.length), y = new Float32Array(idx.length);
        for (var q = 0; q < idx.length; q++) {
          x[q] = A.variability[idx[q]]; y[q] = A.confidence[idx[q]]; traceOf[idx[q]] = t; pointOf[idx[q]] = q;
        }
        groups.push(idx);
        nShown += idx.length;
        traces.push({ type: useGL ? 'scattergl' : 'scatter', mode: 'markers', x: x, y: y, name: names[c], hoverinfo: 'none',
                      marker: { size: size, opacity: opacity, color: colors[c] }, unselected: { marker: { opacity: 0.08 } } });
      }
    });
    return traces.concat(densityTraces());   // a served page's density layer (serve.js)
  }

  // ---------------------------------------------------------------- plot
  function pointPixel(i) {                     // client pixel position of point i, or null if hidden
    if (!traceOf || traceOf[i] < 0) return null;
    var fl = gd._fullLayout, xa = fl.xaxis, ya = fl.yaxis, box = gd.getBoundingClientRect();
    return { x: box.left + xa._offset + xa.l2p(A.variability[i]), y: box.top + ya._offset + ya.l2p(A.confidence[i]) };
  }
  function globalIndex(p) {                    // a plotly event point -> global index
    return groups[p.curveNumber][p.pointIndex !== undefined ? p.pointIndex : p.pointNumber];
  }
  function hasWebGL() {
    try { var c = document.createElement('canvas'); return !!(c.getContext('webgl2') || c.getContext('webgl')); }
    catch (e) { return false; }
  }
  function shapes() {
    var out = [], notes = [];
    meta.guides.forEach(function (g) {
      var line = { type: 'line', layer: 'above', line: { color: '#333', width: 1.5, dash: 'dash' } };
      if (g.axis === 'x') {
        Object.assign(line, { xref: 'x', x0: g.value, x1: g.value, yref: 'paper', y0: 0, y1: 1 });
      } else if (g.end !== null) {
        Object.assign(line, { yref: 'y', y0: g.value, y1: g.value, xref: 'x', x0: g.start === null ? 0 : g.start, x1: g.end });
      } else {
        Object.assign(line, { yref: 'y', y0: g.value, y1: g.value, xref: 'paper', x0: 0, x1: 1 });
      }
      out.push(line);
      notes.push(g.label);
    });
    $('dc-guide-note').textContent = 'Dashed lines: ' + meta.guide_kind + (notes.length ? ' (' + notes.join('; ') + ').' : '.');
    return out;
  }
  function annotations() {
    var boxes = [['easy-to-learn', 0.01, 0.99, 'left', 'top'], ['ambiguous', 0.99, 0.5, 'right', 'middle'],
                 ['hard-to-learn', 0.01, 0.01, 'left', 'bottom']];
    return boxes.map(function (b) {
      return { text: b[0], xref: 'paper', yref: 'paper', x: b[1], y: b[2], xanchor: b[3], yanchor: b[4], showarrow: false,
               bgcolor: 'rgba(255,255,255,0.9)', bordercolor: meta.region_colors[meta.regions.indexOf(b[0])], borderwidth: 2,
               borderpad: 4, font: { size: 13 } };
    });
  }
  function xRange() {
    var hi = 0;
    for (var i = 0; i < N; i++) if (A.variability[i] > hi) hi = A.variability[i];
    meta.guides.forEach(function (g) { if (g.axis === 'x' && g.value > hi) hi = g.value; });
    hi = hi > 0 ? hi : 0.5;
    return [-0.02 * hi, 1.04 * hi];
  }
  function layout() {
    return {
      margin: { l: 60, r: 20, t: 16, b: 50 }, hovermode: 'closest', dragmode: 'zoom', showlegend: false,
      xaxis: { title: { text: 'variability' }, zeroline: false, range: xRange() },
      yaxis: { title: { text: 'confidence' }, zeroline: false, range: [-0.03, 1.03] },
      shapes: shapes(), annotations: annotations(), uirevision: 'datacarto:' + meta.level
    };
  }
  // plotly asks for multisampled (antialias) WebGL canvases; for point sprites that already smooth
  // their own edges it only costs time: about half the first frame with software WebGL at 550k.
  function noMultisampling() {
    var getContext = HTMLCanvasElement.prototype.getContext;
    HTMLCanvasElement.prototype.getContext = function (type, attrs) {
      if (/webgl/.test(type) && gd.contains(this)) {
        var ctx = getContext.call(this, type, Object.assign({}, attrs || {}, { antialias: false }));
        if (ctx) return ctx;
      }
      return getContext.apply(this, arguments);
    };
  }
  // plotly draws its WebGL canvases at twice the screen's pixels by default: four times the pixels to
  // fill and read back, for nothing on a screen of one pixel per CSS pixel (a third less time per redraw)
  function glPixelRatio() { return Math.min(4, Math.max(1, window.devicePixelRatio || 1)); }
  var plotLayout = null, guideShapes = [], selectionRevision = 0;
  function makePlot() {
    noMultisampling();
    useGL = hasWebGL();
    if (!useGL) status('WebGL is not available: drawing with SVG (slow for many points)');
    plotLayout = layout();
    guideShapes = plotLayout.shapes;
    var config = { responsive: true, displaylogo: false, scrollZoom: true, doubleClick: 'reset', plotGlPixelRatio: glPixelRatio() };
    return Plotly.newPlot(gd, buildTraces(), plotLayout, config);
  }
  function nextFrame() { return new Promise(function (resolve) { requestAnimationFrame(function () { setTimeout(resolve, 0); }); }); }
  function redraw(tableFirst) {                // after a colour or filter change: new traces, same view
    setSelection(new Uint32Array(0), false, true);
    var before = Promise.resolve();
    if (tableFirst) {                          // a filter: the table is painted before the map is redrawn
      tableChanged();
      before = nextFrame();
    }
    return before.then(function () {
      plotLayout.dragmode = gd._fullLayout.dragmode;
      plotLayout.selections = [];              // the old box or lasso outline no longer applies, and
      plotLayout.selectionrevision = ++selectionRevision;   // plotly must not keep it (nor its dimming)
      return Plotly.react(gd, buildTraces(), plotLayout);
    }).then(legend).then(tableFirst ? null : tableChanged);
  }

