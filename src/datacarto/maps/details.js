  // ---------------------------------------------------------------- folded text and the details view (details.js)
  // A causal-LM run's prompt and response can be thousands of characters. The tooltip and the table
  // show the first characters of a long value (at most FOLD_LINES lines) and say what is left,
  // "... (+K chars)"; the details view beside the table (a click on a point or a row) shows the whole
  // record. Text goes in through textContent only, as everywhere on the page.
  var TIP_CHARS = 300, CELL_CHARS = 160, TITLE_CHARS = 600, FOLD_LINES = 6;

  function fold(v, limit) {      // { text: the shown start of v, rest: characters left out }
    var cut = Math.min(v.length, limit), nl = -1;
    for (var k = 0; k < FOLD_LINES; k++) {
      nl = v.indexOf('\n', nl + 1);
      if (nl < 0 || nl >= cut) break;
    }
    if (nl >= 0 && nl < cut) cut = nl;
    var code = v.charCodeAt(cut - 1);
    if (cut < v.length && code >= 0xD800 && code <= 0xDBFF) cut--;   // never split a surrogate pair
    var left = v.slice(cut), pairs = left.match(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g);
    return { text: v.slice(0, cut), rest: left.length - (pairs ? pairs.length : 0) };
  }
  function foldMarker(rest) { return '\u2026 (+' + rest + ' chars)'; }
  function foldedSpan(v, limit, cls) {         // a span: the value's start, then the marker if folded
    var f = fold(v, limit), s = el('span', cls);
    s.appendChild(document.createTextNode(f.text));
    if (f.rest > 0) s.appendChild(el('span', 'dc-fold', ' ' + foldMarker(f.rest)));
    return s;
  }
  function fillCell(cell, v) {   // a text cell of the table: short values as they are, long ones folded
    if (v.length <= CELL_CHARS && v.indexOf('\n') < 0) {
      cell.classList.remove('dc-folded');
      cell.textContent = v;
      cell.title = v;
      return;
    }
    var f = fold(v, CELL_CHARS), t = fold(v, TITLE_CHARS);   // nowrap: the newlines show as spaces
    cell.classList.add('dc-folded');
    cell.replaceChildren(el('span', 'dc-cell-text', f.text));
    if (f.rest > 0) cell.appendChild(el('span', 'dc-fold', foldMarker(f.rest)));
    cell.title = t.text + (t.rest > 0 ? ' ' + foldMarker(t.rest) + ' \u2014 click the row for the full text' : '');
  }

  function showDetails(i) {
    var box = $('dc-details'), r = record(i), head = el('div', 'dc-details-head');
    head.appendChild(el('span', null, pointName(i)));
    var close = el('button', null, 'close');
    close.type = 'button';
    close.addEventListener('click', hideDetails);
    head.appendChild(close);
    box.replaceChildren(head);
    if (text) text.columns.forEach(function (c, k) {
      var f = el('div', 'dc-field'), v = text.value(k, i);
      f.appendChild(el('span', 'dc-key', c + (v === null ? '' : ' (' + v.length + ' chars)')));
      f.appendChild(v === null ? el('span', 'dc-missing', '(missing)') : el('span', 'dc-val', v));   // in full
      box.appendChild(f);
    });
    var grid = el('div', 'dc-metrics');
    Object.keys(r).forEach(function (key) {
      if (text && text.columns.indexOf(key) >= 0) return;
      var v = r[key];
      grid.appendChild(el('span', null, key));
      grid.appendChild(el('span', null, Array.isArray(v) ? v.map(function (x) { return fmt(x, 2); }).join(' \u2192 ')
        : typeof v === 'number' ? String(round6(v)) : v === null ? 'n/a' : v));
    });
    box.appendChild(grid);
    box.dataset.index = String(i);
    box.hidden = false;
    box.scrollTop = 0;
  }
  function hideDetails() { $('dc-details').hidden = true; }
  Object.assign(api, {
    details: function () { var box = $('dc-details'); return box.hidden ? null : box.textContent; },
    fold: function (v, limit) { return fold(String(v), limit || TIP_CHARS); }
  });
