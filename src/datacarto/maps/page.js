  // ================================================================ page.js
  // The page's state and its data: meta, the decoded arrays (A) and text, the records. The
  // app function inlines every script of interactive.SCRIPTS in order (one scope, one offline page);
  // main.js, last, starts it.
  // Record text goes into the page only through textContent: never innerHTML.
  var $ = function (id) { return document.getElementById(id); };
  var meta = JSON.parse($('dc-meta').textContent);
  var altText = $('dc-alt-meta').textContent.trim();
  var altMeta = altText ? JSON.parse(altText) : null;   // the page's other level (examples or units), if any
  var N = meta.n;
  var api = { n: N, meta: meta };
  window.datacarto = api;
  window.datacartoReady = false;

  var A = null;            // numeric arrays by name
  var text = null;         // word-coded record text
  var gd = $('dc-plot');
  var mode = meta.color_by;
  // Points are drawn as one single-colour scattergl trace per colour class, split in chunks below
  // plotly's 1e5-point threshold (above it plotly builds a slow spatial index; per-point colours
  // are slower still). groups[t] holds the global index of each point of trace t.
  var MAX_TRACE = 90000;
  var groups = [];
  var traceOf = null;      // Int32Array: trace of each global index (-1 = hidden)
  var pointOf = null;      // Uint32Array: point index of each global index inside its trace
  var nShown = 0;
  var useGL = true;
  var selection = new Uint32Array(0);
  var labelOn = meta.label_names.map(function () { return true; });
  var keep = null;         // Uint8Array: 1 = passes the table's filters and search (null = every row)
  function shown(i) { return labelOn[A.gold[i]] && (keep === null || keep[i] === 1); }

  function status(msg) { $('dc-status').textContent = msg; }
  function fail(err) {
    window.datacartoError = String((err && err.stack) || err);
    status('error: ' + ((err && err.message) || err));
    if (window.console) console.error(err);
  }
  function el(tag, cls, content) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (content !== undefined && content !== null) e.textContent = String(content);
    return e;
  }
  function fmt(x, digits) { return (x === null || x === undefined || isNaN(x)) ? 'n/a' : Number(x).toFixed(digits); }
  function round6(x) { return isNaN(x) ? null : Math.round(x * 1e6) / 1e6; }

  // ---------------------------------------------------------------- decoded data
  var CTORS = { u1: Uint8Array, u2: Uint16Array, i4: Int32Array, u4: Uint32Array, f4: Float32Array, f8: Float64Array };
  function arraysOf(bytes, m) {               // the numeric arrays of one level (meta m)
    var out = {}, n = m.n;
    m.arrays.forEach(function (s) { out[s.name] = new CTORS[s.dtype](bytes.buffer, bytes.byteOffset + s.offset, s.length); });
    if (m.correctness_from_level) {            // correctness is k/E: the levels carry it
      out.correctness = new Float32Array(n);
      for (var j = 0; j < n; j++) out.correctness[j] = out.level[j] === 255 ? NaN : out.level[j] / Math.max(m.n_epochs, 1);
    }
    [['row_id', m.row_id_delta], ['unit_row', m.unit_row_delta]].forEach(function (d) {
      if (!d[1]) return;                       // ids travel as steps from the previous id
      var ids = new Float64Array(n), sum = 0, steps = out[d[0]];
      for (var i = 0; i < n; i++) { sum += steps[i]; ids[i] = sum; }
      out[d[0]] = ids;
    });
    return out;
  }
  function TextStore(w, n) {                   // record text, built lazily per value from word ids
    var ids = w.ids, starts = w.starts, vocab = w.head.vocab;
    this.columns = w.head.columns;
    this.ids = ids; this.starts = starts; this.vocab = vocab;   // for the table's search and sort
    this.value = function (col, i) {           // text of column `col` (index) for row i, or null
      var k = col * n + i, a = starts[k], z = starts[k + 1] - 1;
      if (z - a === 1 && ids[a] === 1) return null;
      var parts = new Array(z - a);
      for (var q = a; q < z; q++) parts[q - a] = vocab[ids[q] - 2];
      return parts.join(' ');
    };
  }

  // ---------------------------------------------------------------- records
  function rowId(i) { return A.row_id[i]; }
  function labelName(k) { return k < meta.label_names.length ? meta.label_names[k] : null; }
  function labelled() { return meta.has_labels !== false; }   // a causal LM's units have no classes
  function probs(i) {
    var E = meta.prob_epochs, out = [];
    for (var e = 0; e < E; e++) { var q = A.gold_probs[i * E + e]; out.push(q === 255 ? null : q / 100); }
    return out;
  }
  function record(i) {                         // what the tooltip shows and the export writes
    var o = meta.level === 'unit' ? { unit_id: rowId(i), row_id: A.unit_row[i], sub_id: A.unit_sub[i] } : { row_id: rowId(i) };
    if (text) text.columns.forEach(function (c, k) { o[c] = text.value(k, i); });
    function put(key, value) { o[key in o ? 'map_' + key : key] = value; }
    if (labelled()) {                            // `label`: the gold id, as `datacarto select` writes it
      put('label', A.gold[i]);
      put('gold_label', labelName(A.gold[i]));
    }
    if (meta.has_pred) put('last_pred_label', labelName(A.last_pred[i]));
    put('confidence', round6(A.confidence[i]));
    put('variability', round6(A.variability[i]));
    put('correctness', round6(A.correctness[i]));
    if (meta.has_region) put('region', A.region[i] < 3 ? meta.regions[A.region[i]] : null);
    if (meta.review) {                           // review.js: a flagged row's rank and suggestion
      put('suspect', A.suspect[i] || null);
      put('suggested_label', suggestedLabel(i));
      put('suggested_probability', suggestedProb(i));
    }
    meta.scores.forEach(function (s) { put(s.name, round6(scoreAt(s.name, i))); });
    if (meta.compare) meta.compare.runs.forEach(function (r, k) { put('region:' + r, regionName(A['compare:' + k][i])); });
    if (meta.prob_epochs) put('gold_probs', probs(i));
    return o;
  }

