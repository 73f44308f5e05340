// Decode the embedded data in a worker while the main thread parses plotly.js (below): the numbers
// first (the plot needs them), then the text (only tooltips and exports need it).
(function () {
  'use strict';
  // the decoders run in the worker, or on the page when a worker cannot start
  function bytesOf(s) {
    if (typeof Uint8Array.fromBase64 === 'function') return Uint8Array.fromBase64(s);
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function gunzip(bytes) {
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Response(stream).arrayBuffer().then(function (buf) { return new Uint8Array(buf); });
  }
  function words(bytes) {                      // word ids of every value, and where each value starts
    var hlen = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
    var head = JSON.parse(new TextDecoder('utf-8').decode(bytes.subarray(4, 4 + hlen)));
    var p = bytes.byteOffset + 4 + hlen;
    var first = new Uint8Array(bytes.buffer, p, head.n_first);
    var rest = new Uint8Array(bytes.buffer, p + head.n_first, head.n_rest);
    var ids = new Uint32Array(head.n_tokens), starts = new Uint32Array(head.n_values + 1);
    var r = 0, v = 0;
    for (var t = 0; t < head.n_first; t++) {
      var b = first[t], id = b & 127;
      if (b & 128) {
        var mul = 128, c;
        do { c = rest[r++]; id += (c & 127) * mul; mul *= 128; } while (c & 128);
      }
      ids[t] = id;
      if (id === 0) starts[++v] = t + 1;
    }
    return { head: head, ids: ids, starts: starts };
  }
  function unpack(buf) {                       // a served payload (encoding.frame_payload): meta, numbers, words
    var bytes = new Uint8Array(buf), n = new DataView(buf, 0, 4).getUint32(0, true), at = 4 + n;
    var head = JSON.parse(new TextDecoder('utf-8').decode(bytes.subarray(4, at)));
    var text = head.text ? words(bytes.subarray(at + head.numeric, at + head.numeric + head.text)) : null;
    return { meta: head.meta, numeric: bytes.subarray(at, at + head.numeric), words: text };
  }
  function numericPart(b64) { return gunzip(bytesOf(b64)); }
  function textPart(b64) { return b64 ? gunzip(bytesOf(b64)).then(words) : Promise.resolve(null); }

  function take(id) { var node = document.getElementById(id), s = node.textContent; node.textContent = ''; return s.trim(); }
  performance.mark('dc-parsed');               // the data blocks are in: timing marks for benchmarks
  // each level's blocks (the page's own, and with a unit/example switch the other one), decoded on request
  var blocks = { main: [take('dc-numeric'), take('dc-text')], alt: [take('dc-alt-numeric'), take('dc-alt-text')] };
  var settle = {}, running = {}, worker = null, left = 0;
  function parts(tag) {
    var out = {};
    ['numeric', 'text'].forEach(function (p) { out[p] = new Promise(function (res, rej) { settle[tag + ':' + p] = [res, rej]; }); });
    return out;
  }
  function onPage(tag) {                       // decode on the page what the worker has not delivered
    var b = running[tag], n = settle[tag + ':numeric'], t = settle[tag + ':text'];
    if (n) numericPart(b[0]).then(n[0], n[1]);
    if (t) textPart(b[1]).then(t[0], t[1]);
  }
  function request(tag) {
    var b = blocks[tag], out = parts(tag);
    blocks[tag] = null;
    running[tag] = b;
    left += 2;
    if (worker) worker.postMessage([tag, b[0], b[1]]); else onPage(tag);
    return out;
  }
  try {
    var src = [bytesOf, gunzip, words, numericPart, textPart].map(String).join('\n') + '\n' +
      'onmessage = function (e) {\n' +
      '  var tag = e.data[0];\n' +
      '  postMessage({ part: "started" });\n' +
      '  function fail(part) { return function (err) { postMessage({ part: tag + ":" + part, error: String(err) }); }; }\n' +
      '  numericPart(e.data[1]).then(function (b) { postMessage({ part: tag + ":numeric", value: b }, [b.buffer]); }, fail("numeric"));\n' +
      '  textPart(e.data[2]).then(function (t) {\n' +
      '    postMessage({ part: tag + ":text", value: t }, t ? [t.ids.buffer, t.starts.buffer] : []); }, fail("text"));\n' +
      '};';
    worker = new Worker(URL.createObjectURL(new Blob([src], { type: 'text/javascript' })));
  } catch (e) { worker = null; }
  var started = null;
  var workerStarted = new Promise(function (resolve) { started = resolve; setTimeout(resolve, 300); });
  if (!blocks.alt[0]) blocks.alt = null;
  if (worker) {
    worker.onmessage = function (e) {
      if (e.data.part === 'started') { started(); return; }
      var s = settle[e.data.part], tag = e.data.part.split(':')[0];
      delete settle[e.data.part];
      if (e.data.error) s[1](new Error(e.data.error)); else s[0](e.data.value);
      if (!settle[tag + ':numeric'] && !settle[tag + ':text']) delete running[tag];
      if (--left === 0 && !blocks.alt && worker) { worker.terminate(); worker = null; }
    };
    worker.onerror = function (e) {            // no worker after all: decode what is under way on the page
      if (e.preventDefault) e.preventDefault();
      if (worker) worker.terminate();
      worker = null;
      started();
      Object.keys(running).forEach(onPage);
    };
  }
  var main = request('main');
  if (!worker) started();
  window.__datacartoData = {
    numeric: main.numeric, text: main.text, unpack: unpack,
    alt: function () { return blocks.alt ? request('alt') : null; }   // once: the app keeps what it decoded
  };
  // Run plotly.js only once the worker has begun: a long script on the page can hold up the
  // worker's start, and the two should overlap.
  workerStarted.then(function () {
    var code = take('dc-plotlyjs'), script = document.createElement('script');
    script.textContent = code;
    document.body.appendChild(script);        // runs it, synchronously
    window.__datacartoApp();
  });
})();
