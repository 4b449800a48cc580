function lstmprobeReport(root, D, page) {
  "use strict";
  // Data never becomes markup: every node is built with createElement and filled with
  // textContent (el() below); no string of the payload is parsed as HTML or set as an attribute that
  // loads or runs anything. Units arrive parsed (layer, direction, quantity, index) from Python.
  var $ = function (sel) { return root.querySelector(sel); };
  var GLYPH = {" ": "\u00b7", "\t": "\u2192", "\n": "\u21b5", "\r": "\u240d"}, TAB = 4;
  var PAL = D.palettes;
  var MARK = /^\p{M}$/u, FORMAT = /^[\p{Cf}\p{Zl}\p{Zp}]$/u;
  function fmt(x, d) { if (x === null || x === undefined || isNaN(x)) return "–"; return String(+Number(x).toPrecision(d || 3)); }
  function count(x) { return (+x || 0).toLocaleString(); }  // a number from the file, never its text
  function decode(b64) { var s = atob(b64), a = new Uint8Array(s.length); for (var i = 0; i < s.length; i++) a[i] = s.charCodeAt(i); return a; }
  function rgb(kind, q) { var c = PAL[kind][q]; return "rgb(" + c[0] + "," + c[1] + "," + c[2] + ")"; }
  function ink(kind, q) { var c = PAL[kind][q]; return (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255 < 0.45 ? "#fff" : "#000"; }
  function chars(text) { return Array.from(String(text)); }  // code points: one per recorded position
  function glyph(ch) {
    if (GLYPH[ch]) return GLYPH[ch];
    var c = ch.codePointAt(0);
    if (c < 32) return String.fromCharCode(0x2400 + c);
    if (MARK.test(ch)) return "\u25cc" + ch;  // a combining mark on a dotted circle: its own cell
    if (FORMAT.test(ch)) return "\u2b1a";  // invisible or reordering (ZWJ, RTL override): a box
    return ch;
  }
  function codepoint(ch) { return "U+" + ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0"); }
  function image(src) { return typeof src === "string" && /^data:image\/png;base64,[A-Za-z0-9+\/=]*$/.test(src) ? src : ""; }
  // one element: opts {cls, text, title, alt, src, data: {k: v}, style: {k: v}}; kids: nodes or text
  function el(tag, opts, kids) {
    var e = document.createElement(tag), o = opts || {};
    if (o.cls) e.className = o.cls;
    if (o.text !== undefined && o.text !== null) e.textContent = String(o.text);
    if (o.title) e.title = String(o.title);
    if (o.alt) e.alt = String(o.alt);
    if (o.src) e.src = image(o.src);
    if (o.data) Object.keys(o.data).forEach(function (k) { e.dataset[k] = String(o.data[k]); });
    if (o.style) Object.keys(o.style).forEach(function (k) { e.style[k] = o.style[k]; });
    (kids || []).forEach(function (c) { if (c !== null && c !== undefined && c !== "") e.appendChild(typeof c === "object" ? c : document.createTextNode(String(c))); });
    return e;
  }
  function row(cells, head) { return el("tr", null, cells.map(function (c) { return el(head ? "th" : "td", null, [c]); })); }
  function table(cls, rows) { return el("table", {cls: cls}, rows); }
  function fill(box, kids) { box.textContent = ""; kids.forEach(function (k) { if (k) box.appendChild(k); }); }

  // datasets and units: parts from Python, names only looked up, never split
  var keys = D.keys, byParts = {}, byName = {};
  function partsOf(u) { return u.layer + "|" + u.direction + "|" + u.quantity; }
  keys.forEach(function (k, i) {
    k.pos = i; byParts[partsOf(k)] = k; k.q = decode(k.values); k.L = k.q.length / Math.max(1, k.units.length);
    k.index = {}; k.units.forEach(function (u, j) { k.index[u] = j; byName[k.key + "/" + u] = {k: k, j: j}; });
  });
  var layers = []; keys.forEach(function (k) { if (layers.indexOf(k.layer_name) < 0) layers.push(k.layer_name); });
  function scaleOf(k, j) { return {kind: k.kind, vmin: k.vmin[j], vmax: k.vmax[j], rule: k.rules[k.rule[j]]}; }
  // codes 1..253 lie inside the range (0 white at the middle of a centred diverging one); 0 and
  // 255 are beyond it (Scale.quantize)
  function centred(sc) { return sc.kind === "diverging" && sc.vmin < 0 && sc.vmax > 0; }
  function valueOf(sc, q) {
    if (q === 0) return sc.vmin; if (q >= 254) return sc.vmax;
    var u = (q - 1) / 252;
    if (centred(sc)) return u >= 0.5 ? (2 * u - 1) * sc.vmax : (1 - 2 * u) * sc.vmin;
    return sc.vmin + u * (sc.vmax - sc.vmin);
  }
  function valueText(sc, q) {
    if (q === 0) return "\u2264 " + fmt(sc.vmin, 4) + " (beyond the colour range)";
    if (q === 255) return "\u2265 " + fmt(sc.vmax, 4) + " (beyond the colour range)";
    var v = valueOf(sc, q), half = centred(sc) ? (v >= 0 ? sc.vmax : -sc.vmin) / 252 : (sc.vmax - sc.vmin) / 504;
    return fmt(v, 4) + " \u00b1" + fmt(half, 2);
  }
  function describe(sc) { return (sc.kind === "diverging" ? "diverging red<0<blue" : "sequential white\u2192green") + ", range [" + fmt(sc.vmin) + ", " + fmt(sc.vmax) + "] = " + sc.rule; }
  function resolve(k, j) { return {key: k, j: j, index: k.units[j], name: k.key + "/" + k.units[j]}; }
  // a unit: parts from Python ({layer, direction, quantity, index}) or a name typed by the reader
  function unitInfo(u) {
    if (u && typeof u === "object") {
      var k = byParts[partsOf(u)];
      if (!k) return {error: "this report holds no " + u.name};
      if (!(u.index in k.index)) return {error: k.key + " has units 0.." + (k.n - 1) + (k.units.length < k.n ? " (this report embeds " + k.units.length + " of them)" : "")};
      return resolve(k, k.index[u.index]);
    }
    var name = String(u).trim(), found = byName[name];
    if (found && Object.prototype.hasOwnProperty.call(byName, name)) return resolve(found.k, found.j);
    var within = keys.filter(function (k) { return name.indexOf(k.key + "/") === 0; })[0];
    if (within) return {error: within.key + " has units 0.." + (within.n - 1) + (within.units.length < within.n ? " (this report embeds " + within.units.length + " of them)" : "")};
    return {error: "type a unit such as " + keys[0].key + "/0; datasets here: " + keys.map(function (k) { return k.key; }).join(", ")};
  }
  function unitLink(u, extra) {  // u: parts from Python; the click is handled on root
    var a = el("a", {cls: "lpr-unit" + (extra ? " " + extra : ""), text: u.name, data: {unit: u.name}});
    a._unit = u; return a;
  }

  // coloured text: one span per code point (what a position is), whitespace visible, layout kept
  function makeText(pre, text, start, labels) {
    var frag = document.createDocumentFragment(), spans = [], col = 0, cs = chars(text);
    for (var i = 0; i < cs.length; i++) {
      var ch = cs[i], s = document.createElement("span");
      if (ch === "\n") { s.textContent = glyph(ch) + "\n"; col = 0; }
      else if (ch === "\t") { var w = TAB - col % TAB; s.textContent = glyph(ch) + " ".repeat(w - 1); col += w; }  // to the next tab stop, as the text has it
      else { s.textContent = glyph(ch); col += 1; }
      if (/\s/.test(ch) || ch.codePointAt(0) < 32) s.className = "w";
      if (labels && labels[i] !== null && labels[i] > 0.5 && labels.binary) s.className += " on";
      s.dataset.i = i; frag.appendChild(s); spans.push(s);
    }
    pre.textContent = ""; pre.appendChild(frag);
    pre._spans = spans; pre._chars = cs; pre._start = start; pre._labels = labels || null;
    return spans;
  }
  function paint(pre, q, sc, name) {
    var spans = pre._spans;
    for (var i = 0; i < spans.length; i++) { spans[i].style.background = rgb(sc.kind, q[i]); spans[i].style.color = ink(sc.kind, q[i]); spans[i].classList.toggle("lpr-out", q[i] === 0 || q[i] === 255); }
    pre._q = q; pre._sc = sc; pre._unit = name;
  }
  var tip = $(".lpr-tip");
  function hover(pre) {
    pre.addEventListener("mousemove", function (e) {
      var t = e.target; if (!t.dataset || t.dataset.i === undefined || !pre._q) { tip.hidden = true; return; }
      var i = +t.dataset.i, ch = pre._chars[i], sc = pre._sc;
      var lines = "char " + JSON.stringify(ch) + " (" + codepoint(ch) + ")\nposition " + (pre._start + i) +
        "\n" + pre._unit + " = " + valueText(sc, pre._q[i]);
      if (pre._labels && pre._labels[i] !== undefined) lines += "\n" + pre._labels.name + " = " + fmt(pre._labels[i], 4);
      tip.textContent = lines; tip.hidden = false;
      tip.style.left = Math.min(e.clientX + 14, window.innerWidth - 260) + "px"; tip.style.top = (e.clientY + 16) + "px";
    });
    pre.addEventListener("mouseleave", function () { tip.hidden = true; });
  }
  function gradient(kind, flip) {
    var stops = [];
    // codes 1..253 span the range (0 and 255 are beyond it: Scale.quantize)
    for (var i = 0; i <= 8; i++) stops.push(rgb(kind, flip ? 253 - Math.round(i * 252 / 8) : 1 + Math.round(i * 252 / 8)));
    return el("span", {cls: "lpr-bar", style: {background: "linear-gradient(to right," + stops.join(",") + ")"}});
  }
  function scaleBar(sc) { return [el("span", {text: fmt(sc.vmin)}), gradient(sc.kind), el("span", {text: fmt(sc.vmax)}), el("span", {text: describe(sc)})]; }

  // header
  var M = D.meta || {};
  var meta = $(".lpr-meta");
  if (meta) meta.textContent = [M.store, M.model, count(M.positions) + " positions", M.sequences !== undefined ? count(M.sequences) + " sequences" : "", M.created ? "recorded " + M.created : "",
    M.rankings ? "" : (D.mode === "text" ? "" : "no ranking found: run `lstmprobe find-neurons -f FEATURE` to add ranked units")].filter(Boolean).join(" \u00b7 ");

  // explorer
  var win = $(".lpr-window");
  makeText(win, D.window.text, D.window.start, null); hover(win);
  if (D.width) win.style.maxWidth = (D.width + 2) + "ch";  // plot text --html --width
  var selLayer = $(".lpr-layer"), selQ = $(".lpr-quantity"), inIdx = $(".lpr-index"), goto = $(".lpr-goto"), msg = $(".lpr-msg");
  layers.forEach(function (l) { selLayer.appendChild(el("option", {text: l})); });
  var cur = null;
  function keyIn(layer, quantity) { return keys.filter(function (k) { return k.layer_name === layer && k.quantity === quantity; })[0]; }
  function fillQuantities(layer) {
    selQ.textContent = ""; selQ.dataset.layer = layer;
    keys.forEach(function (k) { if (k.layer_name === layer) selQ.appendChild(el("option", {text: k.quantity})); });
  }
  function pick(layer, quantity, index) {  // what the selects and the number field say
    var k = keyIn(layer, quantity);
    if (!k) return false;
    var j = k.index[+index];
    return j === undefined || String(index).trim() === "" ? false : show(resolve(k, j));
  }
  function show(u) {
    if (!(u && u.key && u.j !== undefined)) u = unitInfo(u);
    if (u.error) { msg.textContent = u.error; return false; }
    msg.textContent = ""; cur = u;
    var k = u.key;
    if (selLayer.value !== k.layer_name || selQ.dataset.layer !== k.layer_name) { selLayer.value = k.layer_name; fillQuantities(k.layer_name); }
    selQ.value = k.quantity; inIdx.value = u.index; inIdx.max = k.n - 1;
    var sc = scaleOf(k, u.j);
    paint(win, k.q.subarray(u.j * k.L, (u.j + 1) * k.L), sc, u.name);
    fill($(".lpr-scale"), [el("b", {text: u.name})].concat(scaleBar(sc)));
    card(u); heat(k, u.j);
    return true;
  }
  function step(d) {
    if (!cur) return; var k = cur.key, j = cur.j + d;
    if (j < 0 || j >= k.units.length) { var nk = keys[(k.pos + (d > 0 ? 1 : keys.length - 1)) % keys.length]; show(resolve(nk, d > 0 ? 0 : nk.units.length - 1)); }
    else show(resolve(k, j));
  }
  function stepKey(d) { if (!cur) return; var nk = keys[(cur.key.pos + d + keys.length) % keys.length]; show(resolve(nk, Math.min(cur.j, nk.units.length - 1))); }
  selLayer.addEventListener("change", function () { fillQuantities(selLayer.value); pick(selLayer.value, selQ.value, inIdx.value) || pick(selLayer.value, selQ.value, keyIn(selLayer.value, selQ.value).units[0]); });
  selQ.addEventListener("change", function () { pick(selLayer.value, selQ.value, inIdx.value) || pick(selLayer.value, selQ.value, keyIn(selLayer.value, selQ.value).units[0]); });
  inIdx.addEventListener("change", function () { if (!pick(selLayer.value, selQ.value, inIdx.value)) { var k = keyIn(selLayer.value, selQ.value); msg.textContent = k.key + " has units 0.." + (k.n - 1) + (k.units.length < k.n ? " (this report embeds " + k.units.length + " of them)" : ""); } });
  goto.addEventListener("keydown", function (e) { if (e.key === "Enter") { if (show(goto.value)) goto.blur(); } });
  $(".lpr-prev").addEventListener("click", function () { step(-1); });
  $(".lpr-next").addEventListener("click", function () { step(1); });

  // unit card: summaries, values that are not finite, gate saturation, ranks
  function card(u) {
    var k = u.key, j = u.j, st = k.stats || {}, parts = [el("b", {text: u.name})];
    if (st.mean) parts.push(table(null, [
      row(["mean \u00b1 std", fmt(st.mean[j]) + " \u00b1 " + fmt(st.std[j])]),
      row(["min, max", fmt(st.min[j]) + ", " + fmt(st.max[j])])]));
    if (st.posinf || st.neginf || st.nan) {
      var pos = st.posinf ? +st.posinf[j] : 0, neg = st.neginf ? +st.neginf[j] : 0, nan = st.nan ? +st.nan[j] : 0;
      if (pos || neg || nan) parts.push(el("p", {cls: "lpr-nonfinite", text: "Not finite at " + count(pos + neg + nan) + " positions: " +
        [pos ? count(pos) + " +inf" : "", neg ? count(neg) + " \u2212inf" : "", nan ? count(nan) + " NaN" : ""].filter(Boolean).join(", ") +
        " (a float16 overflow stores \u00b1inf). Left out of mean, std, min, max; \u00b1inf drawn at the ends of the scale, NaN as 0."}));
    }
    var gates = keys.filter(function (g) { return g.layer_name === k.layer_name && g.stats && g.stats.low && (u.index in g.index); });
    if (gates.length) {
      parts.push(el("h4", {text: "Gate saturation of unit " + u.index}));
      parts.push(table(null, [row(["", "< 0.1", "> 0.9"])].concat(gates.map(function (g) {
        var gj = g.index[u.index];
        return row([g.key === k.key ? el("b", {text: g.quantity}) : g.quantity, fmt(100 * g.stats.low[gj], 3) + "%", fmt(100 * g.stats.high[gj], 3) + "%"]);
      }))));
    }
    var r = Object.prototype.hasOwnProperty.call(D.ranks || {}, u.name) ? D.ranks[u.name] : null;
    if (r && r.length) {
      parts.push(el("h4", {text: "Scores per feature"}));
      parts.push(table(null, [row(["feature", "rank", "score", "sign"])].concat(r.map(function (x) {
        return row([String(x[0]), count(x[1]), fmt(x[2]) + " " + (x[4] ? String(x[4]) : ""), x[3] > 0 ? "+" : "\u2212"]);
      }))));
    } else if (D.meta && D.meta.rankings) parts.push(el("p", {text: "Not in the ranking."}));
    var t = Object.prototype.hasOwnProperty.call(D.thresholds || {}, u.name) ? D.thresholds[u.name] : null;
    if (t) Object.keys(t).forEach(function (f) { var x = t[f]; parts.push(el("p", {text: f + ": on when " + (x.sign > 0 ? "\u2265 " : "\u2264 ") + fmt(x.threshold) + " (ROC: TPR " + fmt(x.tpr, 2) + ", FPR " + fmt(x.fpr, 2) + ")"})); });
    if (causal) parts = parts.concat(causal.card(u));
    fill($(".lpr-card"), parts);
    if (profiles) profiles.card(u, $(".lpr-card"));
    if (depth) depth.card(u, $(".lpr-card"));  // patching and attribution (depth.js)
  }

  // all units of the dataset as a heatmap
  var canvas = $(".lpr-heat");
  function heat(k, j) {
    if (!canvas || !k.units.length || !k.L) return;
    var W = k.L, H = k.units.length, ctx = canvas.getContext("2d");
    canvas.width = W; canvas.height = H;
    canvas.style.width = Math.min(1200, Math.max(W, 600)) + "px"; canvas.style.height = Math.max(H * 3, 60) + "px";
    var img = ctx.createImageData(W, H), p = PAL[k.kind];
    for (var r = 0; r < H; r++) for (var c = 0; c < W; c++) { var q = k.q[r * W + c], o = 4 * (r * W + c); img.data[o] = p[q][0]; img.data[o + 1] = p[q][1]; img.data[o + 2] = p[q][2]; img.data[o + 3] = 255; }
    ctx.putImageData(img, 0, 0); ctx.fillStyle = "rgba(0,0,0,0.8)"; ctx.fillRect(0, j, 3, 1); ctx.fillRect(W - 3, j, 3, 1);
    canvas._key = k;
  }
  if (canvas) canvas.addEventListener("click", function (e) {
    var k = canvas._key; if (!k) return; var rect = canvas.getBoundingClientRect();
    var r = Math.floor((e.clientY - rect.top) / rect.height * k.units.length); show(resolve(k, Math.max(0, Math.min(k.units.length - 1, r))));
  });

  // select a span -> units most active there relative to the rest of the text
  var moments = null;
  function windowMoments() {
    if (moments) return moments; moments = [];
    keys.forEach(function (k) {
      for (var j = 0; j < k.units.length; j++) {
        var s = 0, ss = 0, base = j * k.L, sc = scaleOf(k, j);
        for (var i = 0; i < k.L; i++) { var v = valueOf(sc, k.q[base + i]); s += v; ss += v * v; }
        var m = s / k.L; moments.push({k: k, j: j, sum: s, sd: Math.sqrt(Math.max(ss / k.L - m * m, 0))});
      }
    });
    return moments;
  }
  function spanQuery(a, b) {
    var box = $(".lpr-span"), n = b - a, L = win._chars.length;
    if (n < 1) return;
    if (n >= L) { fill(box, [el("p", {text: "Select part of the text, not all of it: the units are compared inside vs outside."})]); return; }
    var res = [];
    windowMoments().forEach(function (mo) {
      if (!(mo.sd > 0)) return;
      var k = mo.k, sc = scaleOf(k, mo.j), base = mo.j * k.L, s = 0;
      for (var i = a; i < b; i++) s += valueOf(sc, k.q[base + i]);
      var inside = s / n, outside = (mo.sum - s) / (L - n);
      res.push({u: resolve(k, mo.j), d: (inside - outside) / mo.sd, inside: inside, outside: outside});
    });
    res.sort(function (x, y) { return y.d - x.d; });
    function link(x) { var a = el("a", {cls: "lpr-unit", text: x.u.name, data: {unit: x.u.name}}); a._unit = x.u; return a; }
    var note = el("p", {cls: "lpr-note"}, ["d = (mean inside \u2212 mean outside) / sd over the embedded text; highest first. Most negative: "]);
    res.slice(-3).reverse().forEach(function (x, i) { if (i) note.appendChild(document.createTextNode(", ")); note.appendChild(link(x)); note.appendChild(document.createTextNode(" (" + fmt(x.d) + ")")); });
    note.appendChild(document.createTextNode("."));
    fill(box, [el("h3", {text: "Units most active in positions " + (D.window.start + a) + ".." + (D.window.start + b) + " (" + n + " chars)"}), note,
      table(null, [row(["unit", "d", "mean inside", "mean outside"], true)].concat(res.slice(0, 12).map(function (x) { return row([link(x), fmt(x.d), fmt(x.inside), fmt(x.outside)]); })))]);
  }
  win.addEventListener("mouseup", function () {
    var sel = window.getSelection(); if (!sel || sel.isCollapsed || !sel.rangeCount) return;
    function idx(node) { var e = node.nodeType === 1 ? node : node.parentElement; e = e && e.closest("[data-i]"); return e && win.contains(e) ? +e.dataset.i : null; }
    var r = sel.getRangeAt(0), a = idx(r.startContainer), b = idx(r.endContainer);
    if (a === null || b === null) return;
    if (a > b) { var t = a; a = b; b = t; }
    spanQuery(a, b + 1);
  });
  root.addEventListener("click", function (e) {
    var t = e.target.closest && e.target.closest("a.lpr-unit");
    if (!t || !root.contains(t)) return;
    e.preventDefault();
    if (show(t._unit || t.dataset.unit)) $(".lpr-explorer").scrollIntoView();
  });

  // ranking sections
  var fs = $(".lpr-features");
  if (D.features && D.features.length) {
    var parts = [el("h2", {text: "Ranked units per feature"})];
    D.features.forEach(function (f, fi) {
      parts.push(el("h3", {text: f.name}), el("p", {cls: "lpr-note", text: f.definition}), el("p", {cls: "lpr-note", text: f.summary}));
      if (f.curve && image(f.curve)) parts.push(el("img", {cls: "lpr-curve", alt: "top-k probe curve of " + f.name, src: f.curve}));
      parts.push(table("lpr-rank", [row(["rank", "unit", "score", "sign", "interval", "held-out", "control", "selectivity", "ROC threshold"], true)].concat(f.rows.map(function (r) {
        var th = r.threshold ? (r.threshold.sign > 0 ? "\u2265 " : "\u2264 ") + fmt(r.threshold.value) + " (TPR " + fmt(r.threshold.tpr, 2) + ", FPR " + fmt(r.threshold.fpr, 2) + ")" : (f.kind === "binary" ? "\u2013" : "n/a (continuous)");
        return row([count(r.rank), unitLink(r.unit), fmt(r.score) + " " + (r.score_name ? String(r.score_name) : ""), r.sign > 0 ? "+" : "\u2212",
          r.interval_low !== null && r.interval_low !== undefined ? "[" + fmt(r.interval_low) + ", " + fmt(r.interval_high) + "]" : "\u2013", fmt(r.test_metric), fmt(r.control_metric), fmt(r.selectivity), th]);
      }))));
      parts.push(el("div", {cls: "lpr-clear"}));
      f.rows.forEach(function (r) {
        parts.push(el("h4", {text: r.unit.name + " (rank " + count(r.rank) + ")"}));
        var u = unitInfo(r.unit), box = el("div", {cls: "lpr-passages", data: {f: fi, u: r.unit.name}});
        if (!u.error) {
          var sc = scaleOf(u.key, u.j);
          parts.push(el("div", {cls: "lpr-scale"}, scaleBar(sc)));
          f.passages.forEach(function (p) {
            var values = Object.prototype.hasOwnProperty.call(p.values, u.name) ? p.values[u.name] : null;
            if (!values) return;
            var pre = el("pre", {cls: "lpr-text"}), n = chars(p.text).length;
            var cap = el("div", {cls: "lpr-pcap", text: (p.kind === "change" ? f.name + " changes at " + p.at : "most active (peak at " + p.at + ")") + " \u00b7 positions " + p.start + ".." + (p.start + n) + (p.labels && f.kind === "binary" ? " \u00b7 underlined: " + f.name + " = 1" : "")});
            var labels = p.labels ? p.labels.slice() : null; if (labels) { labels.name = f.name; labels.binary = f.kind === "binary"; }
            makeText(pre, p.text, p.start, labels); paint(pre, decode(values), sc, u.name); hover(pre);
            box.appendChild(el("div", null, [cap, pre]));
          });
        }
        parts.push(box);
      });
    });
    fill(fs, parts);
  }
  // figures
  var fg = $(".lpr-figures");
  if (D.figures && D.figures.length) {
    fill(fg, [el("h2", {text: "All units at a glance"})].concat(D.figures.map(function (f) {
      var box = el("div", {cls: "lpr-fig"}, [el("h3", {text: f.title}), image(f.src) ? el("img", {alt: f.title, src: f.src}) : null, el("p", {cls: "lpr-note", text: f.caption})]);
      box.dataset.figure = String(f.id); return box;
    })));
  }
  if (D.mode === "text") {
    ["lpr-controls", "lpr-card", "lpr-heat", "lpr-about", "lpr-keys-help"].forEach(function (c) { var e = root.querySelector("." + c); if (e) e.style.display = "none"; });
    root.querySelectorAll(".lpr-explorer h3, .lpr-explorer .lpr-note, .lpr-explorer h2").forEach(function (e) { e.style.display = "none"; });
    root.querySelector("h1").textContent = D.initial.name;
  }

  // ablations and dynamics (acts.ablations.h5, acts.dynamics.json), drawn when present
  var causal = typeof lstmprobeCausal === "function" ? lstmprobeCausal(root, D, {el: el, row: row, table: table, fill: fill, fmt: fmt, count: count, rgb: rgb, ink: ink, chars: chars, codepoint: codepoint, image: image, gradient: gradient, unitLink: unitLink, makeText: makeText}) : null;
  // the unit card's profile by input char (profile.js), built from DOM nodes
  var profiles = typeof lstmprobeProfile === "function" ? lstmprobeProfile(root, D, {glyph: glyph}) : null;
  var depth = typeof lstmprobeDepth === "function" ? lstmprobeDepth(root, D) : null;

  // keyboard
  var help = $(".lpr-help");
  // a page takes the keys everywhere; inline in a notebook, only while the report has the focus
  var keyTarget = page ? document : root;
  if (!page) root.tabIndex = 0;
  keyTarget.addEventListener("keydown", function (e) {
    var tag = (e.target && e.target.tagName) || "";
    if (e.key === "Escape") { help.hidden = true; if (tag === "INPUT") e.target.blur(); return; }
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "j") step(1); else if (e.key === "k") step(-1);
    else if (e.key === "J") stepKey(1); else if (e.key === "K") stepKey(-1);
    else if (e.key === "?") help.hidden = !help.hidden;
    else if (e.key === "/") { e.preventDefault(); goto.focus(); }
    else return;
  });
  help.addEventListener("click", function () { help.hidden = true; });
  show(D.initial) || show(resolve(keys[0], 0));
}
