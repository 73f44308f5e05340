  // ---------------------------------------------------------------- the table's sort orders (sort.js)
  // ---- sorting: one ascending order of all rows per column, computed once; a view is sorted by
  // walking that order and keeping the rows it holds (linear in N).
  var PACK = 2097152;          // 2**21: key * PACK + index stays an exact float64 below 2**53
  function packedOrder(keyOf) {   // keyOf(i): a non-negative integer below 2**32
    var out = new Uint32Array(N), i;
    if (N < PACK) {
      var packed = new Float64Array(N);
      for (i = 0; i < N; i++) packed[i] = keyOf(i) * PACK + i;
      packed.sort();
      for (i = 0; i < N; i++) out[i] = packed[i] % PACK;
      return out;
    }
    var keys = new Float64Array(N);
    for (i = 0; i < N; i++) { keys[i] = keyOf(i); out[i] = i; }
    return out.sort(function (a, b) { return keys[a] - keys[b] || a - b; });
  }
  var f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
  function floatKey(x) {          // float32 bits made order-preserving as uint32; NaN sorts last
    if (x !== x) return 4294967295;
    f32[0] = x;
    var u = u32[0];
    return u >= 2147483648 ? 4294967295 - u : u + 2147483648;
  }
  function nameRanks(names) {     // code -> rank of its name (missing codes last)
    var sorted = names.map(function (n, k) { return k; }).sort(function (a, b) { return names[a] < names[b] ? -1 : names[a] > names[b] ? 1 : a - b; });
    var rank = new Uint32Array(65536).fill(65535);
    sorted.forEach(function (code, r) { rank[code] = r; });
    return rank;
  }
  var vocabRank = null;
  function wordRanks() {          // vocabulary id -> rank of the word in string order
    if (vocabRank) return vocabRank;
    var vocab = text.vocab, order = vocab.map(function (w, k) { return k; });
    order.sort(function (a, b) { return vocab[a] < vocab[b] ? -1 : vocab[a] > vocab[b] ? 1 : 0; });
    vocabRank = new Uint32Array(vocab.length + 2);
    order.forEach(function (k, r) { vocabRank[k + 2] = r + 1; });   // 0: end of value (sorts first)
    return vocabRank;
  }
  function textOrder(col) {       // word by word: by the first word's rank, ties broken by the rest
    var ids = text.ids, starts = text.starts, rank = wordRanks(), missing = rank.length + 1;
    function first(i) { var a = starts[col * N + i]; return ids[a] === 1 && ids[a + 1] === 0 ? missing : rank[ids[a]]; }
    var order = packedOrder(first);
    function cmp(x, y) {
      var a = starts[col * N + x], b = starts[col * N + y];
      for (;;) {
        var p = ids[a] ? rank[ids[a]] : 0, q = ids[b] ? rank[ids[b]] : 0;
        if (p !== q) return p - q;
        if (p === 0) return x - y;
        a++; b++;
      }
    }
    for (var s = 0; s < N;) {      // runs of equal first words
      var f = first(order[s]), e = s + 1;
      while (e < N && first(order[e]) === f) e++;
      if (e - s > 1 && f !== missing) order.subarray(s, e).sort(cmp);
      s = e;
    }
    return order;
  }
  function orderOf(c) {
    if (orders[c.name]) return orders[c.name];
    var o;
    if (c.key) o = packedOrder(function (i) { return floatKey(rowId(i)); });
    else if (c.values) { var w = c.values(); o = packedOrder(function (i) { return floatKey(w[i]); }); }
    else if (c.kind === 'text') o = textOrder(c.col);
    else if (c.kind === 'label') {
      var codes = c.codes(), rank = nameRanks(c.names);
      o = packedOrder(function (i) { return rank[codes[i]]; });
    } else if (scoreSpec(c.name)) {
      var q = A['score:' + c.name];
      o = packedOrder(function (i) { return q[i]; });
    } else {
      var v = A[c.name];
      o = packedOrder(function (i) { return floatKey(v[i]); });
    }
    orders[c.name] = o;
    return o;
  }

