  // ---------------------------------------------------------------- a served page (serve.js)
  // A page from `datacarto serve` (meta.server, datacarto/maps/serve.py) holds a window of a large
  // run: the rows of the plot's view that pass the search and filters, all of them up to the
  // server's cap, else a random sample. Zooming, the search, the filters ("show the suspects only"
  // too) and the gold-label boxes ask the server (POST api/rows, over all rows) for the new window,
  // which is swapped in as a level is (meta, A, text); a grey density layer under the points counts
  // every matching row of the view. Rows without a point (a NaN coordinate) are in every view, as the
  // written page's table lists them whatever the zoom. Review decisions are kept by row (review.js),
  // so they outlive the window. A page written by `datacarto map` has no meta.server and none of this runs.
  var serverAsked = 0, serverAnswered = 0, zoomTimer = null;

  function serverSpec() {                      // what the page shows: the view, the search, the filters
    var fl = gd._fullLayout, s = filterSpec, gold = [];
    labelOn.forEach(function (on, k) { if (on) gold.push(k); });
    return { box: fl && fl.xaxis ? fl.xaxis.range.concat(fl.yaxis.range) : null, search: query,
             region: s.region || null, pred: s.pred || null, ranges: s.ranges || {}, suspects: !!s.suspects,
             gold: gold.length === labelOn.length ? null : gold };
  }
  function serverFetch(spec) {
    return fetch('api/rows', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(spec) })
      .then(function (r) {
        if (r.ok) return r.arrayBuffer().then(window.__datacartoData.unpack);
        return r.json().then(function (e) { throw new Error(e.error || 'the server answered ' + r.status); });
      });
  }
  function serverSwap(P) {                     // the answer's rows become the page's rows
    hideTooltip();
    hideDetails();
    meta = P.meta; A = arraysOf(P.numeric, meta); text = P.words ? new TextStore(P.words, meta.n) : null; N = meta.n;
    api.n = N; api.meta = meta;
    orders = {}; vocabRank = null; lowerVocab = null; focused = -1;    // what the table kept of the old rows
    keep = null; hits = null;                  // the server applied the search and filters
    plotLayout.shapes = guideShapes;
    reviewNote();                              // decisions are kept by row (review.js): only the note changes
  }
  function serverRefresh(t0) {                 // ask for the current view; a later question overrides
    t0 = t0 || performance.now();
    var asked = ++serverAsked;
    status('asking the server\u2026');
    return serverFetch(serverSpec()).then(function (P) {
      if (asked !== serverAsked) return view.length;
      serverSwap(P);
      timing = {};
      var done = redraw(true);                 // the table first, the map a frame later
      timing.table_ms = performance.now() - t0;
      return done.then(function () {
        timing.map_ms = performance.now() - t0;
        serverAnswered = asked;
        status(levelStatus());
        return view.length;
      });
    }, function (err) { status('error: ' + err.message); throw err; });
  }
  function densityTraces() {                   // every matching row of the view, binned, under the points
    if (!meta.server) return [];
    var d = meta.server.density, dx = (d.x1 - d.x0) / d.nx, dy = (d.y1 - d.y0) / d.ny, x = [], y = [], z = [];
    for (var i = 0; i < d.nx; i++) x.push(d.x0 + (i + 0.5) * dx);
    for (var j = 0; j < d.ny; j++) {
      var row = new Array(d.nx);
      for (i = 0; i < d.nx; i++) { var c = d.counts[j * d.nx + i]; row[i] = c ? Math.log10(1 + c) : null; }
      y.push(d.y0 + (j + 0.5) * dy);
      z.push(row);
    }
    return [{ type: 'heatmap', x: x, y: y, z: z, zsmooth: false, showscale: false, hoverinfo: 'skip', name: 'density',
              colorscale: [[0, '#eceff3'], [1, '#7d8794']] }];
  }
  function serverStatus() {
    var s = meta.server, sample = s.shown < s.in_view ? ' (a random ' + s.shown.toLocaleString() + ')' : '';
    var unplaced = s.unplaced ? ', ' + s.unplaced.toLocaleString() + ' of them without a point' : '';
    return N.toLocaleString() + ' of ' + s.in_view.toLocaleString() + ' examples in view' + unplaced + sample + ' \u00b7 ' +
      s.matched.toLocaleString() + ' of ' + s.n_total.toLocaleString() + ' match \u00b7 ' + meta.n_epochs + ' epochs';
  }
  function serverInit() {
    if (!meta.server) return;
    gd.on('plotly_relayout', function (ev) {   // zoom, pan, scroll, reset: ask for the new view
      if (!ev || !Object.keys(ev).some(function (k) { return /^[xy]axis\.(range|autorange)/.test(k); })) return;
      clearTimeout(zoomTimer);
      zoomTimer = setTimeout(function () { serverRefresh().catch(fail); }, 150);
    });
  }
  Object.assign(api, {
    server: function () { return meta.server || null; },
    serverAnswers: function () { return serverAnswered; },
    refresh: function () { return serverRefresh(); },
    zoom: function (x0, x1, y0, y1) { return Plotly.relayout(gd, { 'xaxis.range': [x0, x1], 'yaxis.range': [y0, y1] }); }
  });
