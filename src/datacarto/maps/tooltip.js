  // ================================================================ tooltip.js
  // The hover tooltip: the record, its scores and p(gold) by epoch; placed beside the point.
  // ---------------------------------------------------------------- tooltip
  var SVG = 'http://www.w3.org/2000/svg';
  function sparkline(values) {
    var w = 130, h = 34, pad = 3, E = values.length, svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('width', w); svg.setAttribute('height', h); svg.setAttribute('class', 'dc-spark');
    var frame = document.createElementNS(SVG, 'rect');
    frame.setAttribute('x', 0.5); frame.setAttribute('y', 0.5); frame.setAttribute('width', w - 1); frame.setAttribute('height', h - 1);
    frame.setAttribute('fill', '#f6f8fa'); frame.setAttribute('stroke', '#d9dee5');
    svg.appendChild(frame);
    var mid = document.createElementNS(SVG, 'line');
    mid.setAttribute('x1', 1); mid.setAttribute('x2', w - 1); mid.setAttribute('y1', h / 2); mid.setAttribute('y2', h / 2);
    mid.setAttribute('stroke', '#d9dee5'); mid.setAttribute('stroke-dasharray', '2,2');
    svg.appendChild(mid);
    var pts = [];
    values.forEach(function (v, e) {
      if (v === null) return;
      var x = E > 1 ? pad + (w - 2 * pad) * e / (E - 1) : w / 2, y = pad + (h - 2 * pad) * (1 - v);
      pts.push(x.toFixed(1) + ',' + y.toFixed(1));
      var dot = document.createElementNS(SVG, 'circle');
      dot.setAttribute('cx', x.toFixed(1)); dot.setAttribute('cy', y.toFixed(1)); dot.setAttribute('r', 2.2);
      dot.setAttribute('fill', '#2f6fde');
      svg.appendChild(dot);
    });
    var line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('points', pts.join(' ')); line.setAttribute('fill', 'none');
    line.setAttribute('stroke', '#2f6fde'); line.setAttribute('stroke-width', 1.5);
    svg.insertBefore(line, svg.children[2] || null);
    return svg;
  }
  function fillTooltip(i) {
    var tip = $('dc-tooltip'), r = record(i);
    tip.replaceChildren();
    var head = el('div', 'dc-tip-head');
    head.appendChild(el('span', null, pointName(i)));
    if (meta.has_region && A.region[i] < 3) {
      var badge = el('span', 'dc-badge', meta.regions[A.region[i]]);
      badge.style.background = meta.region_colors[A.region[i]];
      head.appendChild(badge);
    }
    tip.appendChild(head);
    if (text) {
      var folded = false;
      text.columns.forEach(function (c, k) {
        var f = el('div', 'dc-field'), v = text.value(k, i);
        f.appendChild(el('span', 'dc-key', c));
        if (v === null) f.appendChild(el('span', 'dc-missing', '(missing)'));
        else { var s = foldedSpan(v, TIP_CHARS, 'dc-val'); folded = folded || s.childNodes.length > 1; f.appendChild(s); }
        tip.appendChild(f);
      });
      if (folded) tip.appendChild(el('div', 'dc-note', 'click the point (or its table row) for the full text'));
    } else {
      tip.appendChild(el('div', 'dc-missing', 'no records loaded: row id only'));
    }
    var grid = el('div', 'dc-metrics');
    function row(k, v, cls) { grid.appendChild(el('span', null, k)); grid.appendChild(el('span', cls || null, v)); }
    if (labelled()) row('gold label', labelName(A.gold[i]));
    if (meta.has_pred) {
      var pred = labelName(A.last_pred[i]);
      row('last prediction', pred === null ? 'n/a' : pred + (A.last_pred[i] === A.gold[i] ? ' \u2713' : ' \u2717'),
          pred === null ? null : (A.last_pred[i] === A.gold[i] ? 'dc-right' : 'dc-wrong'));
    }
    row('confidence', fmt(A.confidence[i], 3));
    row('variability', fmt(A.variability[i], 3));
    var lv = A.level[i];
    row('correctness', fmt(A.correctness[i], 2) + (lv === 255 ? '' : ' (' + lv + '/' + meta.n_epochs + ' epochs)'));
    if (meta.has_region) row('region', A.region[i] < 3 ? meta.regions[A.region[i]] : 'none');
    meta.scores.forEach(function (s) { row(s.name, fmt(scoreAt(s.name, i), scoreDigits(s.name))); });
    if (meta.compare) meta.compare.runs.forEach(function (r, k) { row('region in ' + r, regionName(A['compare:' + k][i]) || 'none'); });
    tip.appendChild(grid);
    if (meta.prob_epochs) {
      var vals = probs(i), trend = el('div', 'dc-trend');
      trend.appendChild(sparkline(vals));
      trend.appendChild(el('span', 'dc-trend-values', 'p(gold) by epoch: ' + vals.map(function (v) { return fmt(v, 2); }).join(' \u2192 ')));
      tip.appendChild(trend);
    }
    return tip;
  }
  // The tooltip sits beside the point (below right, else flipped), inside the window, and never on
  // the details view: where no spot beside the point is free, it goes above or left of the view.
  function placeTooltip(tip, x, y) {
    tip.hidden = false;
    tip.style.maxHeight = '';
    var d = $('dc-details'), avoid = d.hidden ? null : d.getBoundingClientRect();
    var w = tip.offsetWidth, h = tip.offsetHeight, vw = window.innerWidth, vh = window.innerHeight;
    function spot(left, top) {
      return { left: Math.max(4, Math.min(left, vw - w - 4)), top: Math.max(4, Math.min(top, vh - h - 4)) };
    }
    function free(s) {
      return !avoid || s.left + w <= avoid.left || s.left >= avoid.right || s.top + h <= avoid.top || s.top >= avoid.bottom;
    }
    var first = { left: x + 16 + w > vw - 4 ? x - w - 16 : x + 16, top: y + 16 + h > vh - 4 ? y - h - 16 : y + 16 };
    var spots = [spot(first.left, first.top), spot(x - w - 16, y + 16), spot(x + 16, y - h - 16), spot(x - w - 16, y - h - 16)];
    var s = spots.filter(free)[0];
    if (!s && avoid.left - 8 >= w) s = { left: avoid.left - w - 4, top: spots[0].top };
    if (!s) {                                  // above the details view, as high as fits there
      tip.style.maxHeight = Math.max(40, avoid.top - 8) + 'px';
      h = tip.offsetHeight;
      s = { left: spots[0].left, top: Math.max(4, Math.min(y - h - 16, avoid.top - h - 4)) };
    }
    tip.style.left = s.left + 'px'; tip.style.top = s.top + 'px';
  }
  function showTooltip(i, x, y) {
    var tip = fillTooltip(i);
    tip.dataset.index = String(i);
    placeTooltip(tip, x, y);
    return tip.textContent;
  }
  function hideTooltip() { $('dc-tooltip').hidden = true; }

