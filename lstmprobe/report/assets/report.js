function lstmprobeReport(root, D, page) {
  "use strict";
  var $ = function (sel) { return root.querySelector(sel); };
  var GLYPH = {" ": "\u00b7", "\t": "\u2192", "\n": "\u21b5", "\r": "\u240d"}, TAB = 4;
  var PAL = D.palettes;
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]; }); }
  function fmt(x, d) { if (x === null || x === undefined || isNaN(x)) return "–"; return String(+Number(x).toPrecision(d || 3)); }
  function decode(b64) { var s = atob(b64), a = new Uint8Array(s.length); for (var i = 0; i < s.length; i++) a[i] = s.charCodeAt(i); return a; }
  function rgb(kind, q) { var c = PAL[kind][q]; return "rgb(" + c[0] + "," + c[1] + "," + c[2] + ")"; }
  function ink(kind, q) { var c = PAL[kind][q]; return (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255 < 0.45 ? "#fff" : "#000"; }
  function glyph(ch) { if (GLYPH[ch]) return GLYPH[ch]; var c = ch.charCodeAt(0); return c < 32 ? String.fromCharCode(0x2400 + c) : ch; }

  // datasets and units
  var keys = D.keys, byKey = {};
  keys.forEach(function (k, i) {
    k.pos = i; byKey[k.key] = k; k.q = decode(k.values); k.L = k.q.length / Math.max(1, k.units.length);
    k.index = {}; k.units.forEach(function (u, j) { k.index[u] = j; });
  });
  var layers = []; keys.forEach(function (k) { if (layers.indexOf(k.layer) < 0) layers.push(k.layer); });
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
  function unitInfo(name) {
    var m = /^(layer\d+(?:_reverse)?)\/([a-z_]+)\/(\d+)$/.exec(String(name).trim());
    if (!m) return {error: "a unit looks like layer0/cell/17"};
    var k = byKey[m[1] + "/" + m[2]];
    if (!k) return {error: m[1] + "/" + m[2] + " is not in this report; datasets: " + keys.map(function (k) { return k.key; }).join(", ")};
    var idx = +m[3];
    if (!(idx in k.index)) return {error: k.key + " has units 0.." + (k.n - 1) + (k.units.length < k.n ? " (this report embeds " + k.units.length + " of them)" : "")};
    return {key: k, index: idx, j: k.index[idx], name: k.key + "/" + idx};
  }

  // coloured text: one span per char, whitespace visible, layout kept
  function makeText(pre, text, start, labels) {
    var frag = document.createDocumentFragment(), spans = [], col = 0;
    for (var i = 0; i < text.length; i++) {
      var ch = text[i], s = document.createElement("span");
      if (ch === "\n") { s.textContent = glyph(ch) + "\n"; col = 0; }
      else if (ch === "\t") { var w = TAB - col % TAB; s.textContent = glyph(ch) + " ".repeat(w - 1); col += w; }  // to the next tab stop, as the text has it
      else { s.textContent = glyph(ch); col += 1; }
      if (/\s/.test(ch) || ch.charCodeAt(0) < 32) s.className = "w";
      if (labels && labels[i] !== null && labels[i] > 0.5 && labels.binary) s.className += " on";
      s.dataset.i = i; frag.appendChild(s); spans.push(s);
    }
    pre.textContent = ""; pre.appendChild(frag);
    pre._spans = spans; pre._text = text; pre._start = start; pre._labels = labels || null;
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
      var i = +t.dataset.i, ch = pre._text[i], sc = pre._sc;
      var lines = "char " + JSON.stringify(ch) + " (U+" + ch.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0") + ")\nposition " + (pre._start + i) +
        "\n" + pre._unit + " = " + valueText(sc, pre._q[i]);
      if (pre._labels && pre._labels[i] !== undefined) lines += "\n" + pre._labels.name + " = " + fmt(pre._labels[i], 4);
      tip.textContent = lines; tip.hidden = false;
      tip.style.left = Math.min(e.clientX + 14, window.innerWidth - 260) + "px"; tip.style.top = (e.clientY + 16) + "px";
    });
    pre.addEventListener("mouseleave", function () { tip.hidden = true; });
  }
  function scaleBar(sc) {
    var stops = [];
    for (var i = 0; i <= 8; i++) stops.push(rgb(sc.kind, 1 + Math.round(i * 252 / 8)));
    return '<span>' + fmt(sc.vmin) + '</span><span class="lpr-bar" style="background:linear-gradient(to right,' + stops.join(",") + ')"></span><span>' + fmt(sc.vmax) + '</span><span>' + esc(describe(sc)) + '</span>';
  }

  // header
  var M = D.meta || {};
  var meta = root.querySelector(".lpr-meta");
  if (meta) meta.textContent = [M.store, M.model, (M.positions || 0).toLocaleString() + " positions", M.sequences !== undefined ? M.sequences + " sequences" : "", M.created ? "recorded " + M.created : "",
    M.rankings ? "" : (D.mode === "text" ? "" : "no ranking found: run `lstmprobe find-neurons -f FEATURE` to add ranked units")].filter(Boolean).join(" \u00b7 ");

  // explorer
  var win = $(".lpr-window");
  makeText(win, D.window.text, D.window.start, null); hover(win);
  if (D.width) win.style.maxWidth = (D.width + 2) + "ch";  // plot text --html --width
  var selLayer = $(".lpr-layer"), selQ = $(".lpr-quantity"), inIdx = $(".lpr-index"), goto = $(".lpr-goto"), msg = $(".lpr-msg");
  layers.forEach(function (l) { var o = document.createElement("option"); o.value = o.textContent = l; selLayer.appendChild(o); });
  var cur = null;
  function fillQuantities(layer) {
    selQ.textContent = ""; selQ.dataset.layer = layer;
    keys.forEach(function (k) { if (k.layer === layer) { var o = document.createElement("option"); o.value = o.textContent = k.quantity; selQ.appendChild(o); } });
  }
  function show(name) {
    var u = unitInfo(name);
    if (u.error) { msg.textContent = u.error; return false; }
    msg.textContent = ""; cur = u;
    if (selLayer.value !== u.key.layer || selQ.dataset.layer !== u.key.layer) { selLayer.value = u.key.layer; fillQuantities(u.key.layer); }
    selQ.value = u.key.quantity; inIdx.value = u.index; inIdx.max = u.key.n - 1;
    var k = u.key, sc = scaleOf(k, u.j);
    paint(win, k.q.subarray(u.j * k.L, (u.j + 1) * k.L), sc, u.name);
    $(".lpr-scale").innerHTML = "<b>" + esc(u.name) + "</b> " + scaleBar(sc);
    card(u); heat(k, u.j);
    return true;
  }
  function step(d) {
    if (!cur) return; var k = cur.key, j = cur.j + d;
    if (j < 0 || j >= k.units.length) { var nk = keys[(k.pos + (d > 0 ? 1 : keys.length - 1)) % keys.length]; show(nk.key + "/" + nk.units[d > 0 ? 0 : nk.units.length - 1]); }
    else show(k.key + "/" + k.units[j]);
  }
  function stepKey(d) { if (!cur) return; var nk = keys[(cur.key.pos + d + keys.length) % keys.length]; var j = Math.min(cur.j, nk.units.length - 1); show(nk.key + "/" + nk.units[j]); }
  selLayer.addEventListener("change", function () { fillQuantities(selLayer.value); show(selLayer.value + "/" + selQ.value + "/" + inIdx.value) || show(selLayer.value + "/" + selQ.value + "/0"); });
  selQ.addEventListener("change", function () { show(selLayer.value + "/" + selQ.value + "/" + inIdx.value) || show(selLayer.value + "/" + selQ.value + "/0"); });
  inIdx.addEventListener("change", function () { show(selLayer.value + "/" + selQ.value + "/" + inIdx.value); });
  goto.addEventListener("keydown", function (e) { if (e.key === "Enter") { if (show(goto.value)) goto.blur(); } });
  $(".lpr-prev").addEventListener("click", function () { step(-1); });
  $(".lpr-next").addEventListener("click", function () { step(1); });

  // unit card: summaries, gate saturation, ranks
  function card(u) {
    var k = u.key, j = u.j, st = k.stats || {}, h = "<b>" + esc(u.name) + "</b>";
    if (st.mean) h += "<table><tr><td>mean \u00b1 std</td><td>" + fmt(st.mean[j]) + " \u00b1 " + fmt(st.std[j]) + "</td></tr><tr><td>min, max</td><td>" + fmt(st.min[j]) + ", " + fmt(st.max[j]) + "</td></tr></table>";
    var gates = keys.filter(function (g) { return g.layer === k.layer && g.stats && g.stats.low && (u.index in g.index); });
    if (gates.length) {
      h += "<h4>Gate saturation of unit " + u.index + "</h4><table><tr><td></td><td>&lt; 0.1</td><td>&gt; 0.9</td></tr>";
      gates.forEach(function (g) { var gj = g.index[u.index]; h += "<tr><td>" + (g.key === k.key ? "<b>" + g.quantity + "</b>" : g.quantity) + "</td><td>" + fmt(100 * g.stats.low[gj], 3) + "%</td><td>" + fmt(100 * g.stats.high[gj], 3) + "%</td></tr>"; });
      h += "</table>";
    }
    var r = (D.ranks || {})[u.name];
    if (r && r.length) {
      h += "<h4>Scores per feature</h4><table><tr><td>feature</td><td>rank</td><td>score</td><td>sign</td></tr>";
      r.forEach(function (x) { h += "<tr><td>" + esc(x[0]) + "</td><td>" + x[1] + "</td><td>" + fmt(x[2]) + " " + esc(x[4] || "") + "</td><td>" + (x[3] > 0 ? "+" : "\u2212") + "</td></tr>"; });
      h += "</table>";
    } else if (D.meta && D.meta.rankings) h += "<p>Not in the ranking.</p>";
    var t = (D.thresholds || {})[u.name];
    if (t) Object.keys(t).forEach(function (f) { var x = t[f]; h += "<p>" + esc(f) + ": on when " + (x.sign > 0 ? "\u2265 " : "\u2264 ") + fmt(x.threshold) + " (ROC: TPR " + fmt(x.tpr, 2) + ", FPR " + fmt(x.fpr, 2) + ")</p>"; });
    if (causal) h += causal.card(u);
    root.querySelector(".lpr-card").innerHTML = h;
    if (profiles) profiles.card(u, root.querySelector(".lpr-card"));
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
    var r = Math.floor((e.clientY - rect.top) / rect.height * k.units.length); show(k.key + "/" + k.units[Math.max(0, Math.min(k.units.length - 1, r))]);
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
    var box = $(".lpr-span"), n = b - a, L = D.window.text.length;
    if (n < 1) return;
    if (n >= L) { box.innerHTML = "<p>Select part of the text, not all of it: the units are compared inside vs outside.</p>"; return; }
    var res = [];
    windowMoments().forEach(function (mo) {
      if (!(mo.sd > 0)) return;
      var k = mo.k, sc = scaleOf(k, mo.j), base = mo.j * k.L, s = 0;
      for (var i = a; i < b; i++) s += valueOf(sc, k.q[base + i]);
      var inside = s / n, outside = (mo.sum - s) / (L - n);
      res.push({name: k.key + "/" + k.units[mo.j], d: (inside - outside) / mo.sd, inside: inside, outside: outside});
    });
    res.sort(function (x, y) { return y.d - x.d; });
    var h = "<h3>Units most active in positions " + (D.window.start + a) + ".." + (D.window.start + b) + " (" + n + " chars)</h3>" +
      "<p class='lpr-note'>d = (mean inside \u2212 mean outside) / sd over the embedded text; highest first. " +
      "Most negative: " + res.slice(-3).reverse().map(function (x) { return "<a class='lpr-unit' data-unit='" + x.name + "'>" + x.name + "</a> (" + fmt(x.d) + ")"; }).join(", ") + ".</p>" +
      "<table><tr><th>unit</th><th>d</th><th>mean inside</th><th>mean outside</th></tr>";
    res.slice(0, 12).forEach(function (x) { h += "<tr><td><a class='lpr-unit' data-unit='" + x.name + "'>" + x.name + "</a></td><td>" + fmt(x.d) + "</td><td>" + fmt(x.inside) + "</td><td>" + fmt(x.outside) + "</td></tr>"; });
    box.innerHTML = h + "</table>";
  }
  win.addEventListener("mouseup", function () {
    var sel = window.getSelection(); if (!sel || sel.isCollapsed || !sel.rangeCount) return;
    function idx(node) { var el = node.nodeType === 1 ? node : node.parentElement; el = el && el.closest("[data-i]"); return el && win.contains(el) ? +el.dataset.i : null; }
    var r = sel.getRangeAt(0), a = idx(r.startContainer), b = idx(r.endContainer);
    if (a === null || b === null) return;
    if (a > b) { var t = a; a = b; b = t; }
    spanQuery(a, b + 1);
  });
  root.addEventListener("click", function (e) { var t = e.target.closest && e.target.closest("a.lpr-unit"); if (t) { e.preventDefault(); if (show(t.dataset.unit)) $(".lpr-explorer").scrollIntoView(); } });

  // ranking sections
  var fs = $(".lpr-features");
  if (D.features && D.features.length) {
    var h = "<h2>Ranked units per feature</h2>";
    D.features.forEach(function (f, fi) {
      h += "<h3>" + esc(f.name) + "</h3><p class='lpr-note'>" + esc(f.definition) + "</p><p class='lpr-note'>" + esc(f.summary) + "</p>";
      if (f.curve) h += "<img alt='top-k probe curve of " + esc(f.name) + "' src='" + f.curve + "' style='float:right;max-width:340px'>";
      h += "<table class='lpr-rank'><tr><th>rank</th><th>unit</th><th>score</th><th>sign</th><th>interval</th><th>held-out</th><th>control</th><th>selectivity</th><th>ROC threshold</th></tr>";
      f.rows.forEach(function (r) {
        var th = r.threshold ? (r.threshold.sign > 0 ? "\u2265 " : "\u2264 ") + fmt(r.threshold.value) + " (TPR " + fmt(r.threshold.tpr, 2) + ", FPR " + fmt(r.threshold.fpr, 2) + ")" : (f.kind === "binary" ? "\u2013" : "n/a (continuous)");
        h += "<tr><td>" + r.rank + "</td><td><a class='lpr-unit' data-unit='" + esc(r.unit) + "'>" + esc(r.unit) + "</a></td><td>" + fmt(r.score) + " " + esc(r.score_name || "") + "</td><td>" + (r.sign > 0 ? "+" : "\u2212") +
          "</td><td>" + (r.interval_low !== null && r.interval_low !== undefined ? "[" + fmt(r.interval_low) + ", " + fmt(r.interval_high) + "]" : "\u2013") + "</td><td>" + fmt(r.test_metric) + "</td><td>" + fmt(r.control_metric) + "</td><td>" + fmt(r.selectivity) + "</td><td>" + th + "</td></tr>";
      });
      h += "</table><div style='clear:both'></div>";
      f.rows.forEach(function (r, ri) {
        h += "<h4>" + esc(r.unit) + " (rank " + r.rank + ")</h4><div class='lpr-passages' data-f='" + fi + "' data-u='" + esc(r.unit) + "'></div>";
      });
    });
    fs.innerHTML = h;
    D.features.forEach(function (f, fi) {
      f.rows.forEach(function (r) {
        var box = fs.querySelector(".lpr-passages[data-f='" + fi + "'][data-u='" + r.unit.replace(/'/g, "\\'") + "']"), u = unitInfo(r.unit);
        if (!box || u.error) return;
        var sc = scaleOf(u.key, u.j);
        f.passages.forEach(function (p) {
          if (!p.values[r.unit]) return;
          var div = document.createElement("div"), cap = document.createElement("div"), pre = document.createElement("pre");
          cap.className = "lpr-pcap"; pre.className = "lpr-text";
          cap.textContent = (p.kind === "change" ? f.name + " changes at " + p.at : "most active (peak at " + p.at + ")") + " \u00b7 positions " + p.start + ".." + (p.start + p.text.length) + (p.labels && f.kind === "binary" ? " \u00b7 underlined: " + f.name + " = 1" : "");
          var labels = p.labels ? p.labels.slice() : null; if (labels) { labels.name = f.name; labels.binary = f.kind === "binary"; }
          makeText(pre, p.text, p.start, labels); paint(pre, decode(p.values[r.unit]), sc, r.unit); hover(pre);
          div.appendChild(cap); div.appendChild(pre); box.appendChild(div);
        });
        var sb = document.createElement("div"); sb.className = "lpr-scale"; sb.innerHTML = scaleBar(sc); box.parentNode.insertBefore(sb, box);
      });
    });
  }
  // figures
  var fg = $(".lpr-figures");
  if (D.figures && D.figures.length) {
    var g = "<h2>All units at a glance</h2>";
    D.figures.forEach(function (f) { g += "<div class='lpr-fig' id='" + esc(f.id) + "'><h3>" + esc(f.title) + "</h3><img alt='" + esc(f.title) + "' src='" + f.src + "'><p class='lpr-note'>" + esc(f.caption) + "</p></div>"; });
    fg.innerHTML = g;
  }
  if (D.mode === "text") {
    ["lpr-controls", "lpr-card", "lpr-heat", "lpr-about", "lpr-keys-help"].forEach(function (c) { var e = root.querySelector("." + c); if (e) e.style.display = "none"; });
    root.querySelectorAll(".lpr-explorer h3, .lpr-explorer .lpr-note, .lpr-explorer h2").forEach(function (e) { e.style.display = "none"; });
    root.querySelector("h1").textContent = D.initial;
  }

  // ablations and dynamics (acts.ablations.h5, acts.dynamics.json), drawn when present
  var causal = typeof lstmprobeCausal === "function" ? lstmprobeCausal(root, D, {esc: esc, fmt: fmt, rgb: rgb, ink: ink, makeText: makeText}) : null;
  // the unit card's profile by input char (profile.js), built from DOM nodes
  var profiles = typeof lstmprobeProfile === "function" ? lstmprobeProfile(root, D, {glyph: glyph}) : null;

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
  show(D.initial) || show(keys[0].key + "/" + keys[0].units[0]);
}
