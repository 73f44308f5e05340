  // ================================================================ main.js
  // The test and scripting API (window.datacarto) and main(): decode, draw, then the table.
  // ---------------------------------------------------------------- test and scripting API
  Object.assign(api, {
    rowIdAt: function (i) { return rowId(i); },
    indexOfRowId: function (id) { for (var i = 0; i < N; i++) if (A.row_id[i] === id) return i; return -1; },
    record: record,
    pointPixel: pointPixel,
    showTooltip: function (i) { var q = pointPixel(i) || { x: 20, y: 20 }; return showTooltip(i, q.x, q.y); },
    hideTooltip: hideTooltip,
    setColorBy: setColorBy,
    colorBy: function () { return mode; },
    setLabelFilter: setLabelFilter,
    visibleCount: function () { return nShown; },
    traceCount: function () { return groups.length; },
    mapIndices: function () {                  // the points the map draws, ascending
      var out = [];
      for (var i = 0; i < N; i++) if (traceOf[i] >= 0) out.push(i);
      return out;
    },
    select: function (indices) { return setSelection(indices, true); },
    selected: function () { return Array.from(selection); },
    clearSelection: clearSelection,
    selectionJSONL: selectionJSONL,
    exportSelection: exportSelection
  });

  function main() {
    performance.mark('dc-start');
    $('dc-title').textContent = meta.title;
    status('decoding ' + N.toLocaleString() + ' points\u2026');
    var data = window.__datacartoData;
    return data.numeric.then(function (bytes) {
      performance.mark('dc-decoded');
      A = arraysOf(bytes, meta);
      legend();
      labelFilter();
      return makePlot();
    }).then(function () {
      performance.mark('dc-plotted');
      return data.text;
    }).then(function (words) {
      if (words) text = new TextStore(words, N);
      performance.mark('dc-text');
      levelsInit();
      wire();
      explorerInit();
      serverInit();
      // ready only once the first frame is on screen, so "ready" means the page responds
      return new Promise(function (resolve) { requestAnimationFrame(function () { requestAnimationFrame(resolve); }); });
    }).then(function () {
      var seconds = (performance.now() / 1000).toFixed(1);  // since the page started loading
      status(levelStatus() + ' \u00b7 ready in ' + seconds + ' s');
      performance.mark('dc-ready');
      window.datacartoReady = true;
      if (altMeta) nextFrame().then(function () { levelData(altMeta.level); });   // the switch's level, in the background
    });
  }
  try { main().catch(fail); } catch (err) { fail(err); }

