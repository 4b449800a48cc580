// Causal depth in the report: the Patching section (flip rates against random sets, the
// units x positions heatmap) and attributions in the unit card; and the standalone page of
// `lstmprobe attribute -o attr.html`. Every value from the data goes into the page as text
// (textContent, createElement), never as markup.
function lstmprobeDepthTools(D) {
  "use strict";
  var GLYPH = {" ": "\u00b7", "\t": "\u2192", "\n": "\u21b5", "\r": "\u240d"};
  var PAL = (D.palettes || {}).diverging || [];
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function num(x, d) { if (x === null || x === undefined || isNaN(x)) return "\u2013"; return String(+Number(x).toPrecision(d || 3)); }
  function pct(x) { return x === null || x === undefined || isNaN(x) ? "\u2013" : (100 * x).toFixed(1) + "%"; }
  function sgn(x, d) { return x === null || x === undefined || isNaN(x) ? "\u2013" : (x >= 0 ? "+" : "\u2212") + num(Math.abs(x), d); }
  function glyph(ch) { if (GLYPH[ch]) return GLYPH[ch]; var c = ch.charCodeAt(0); return c < 32 ? String.fromCharCode(0x2400 + c) : ch; }
  function colour(v, m) {  // symmetric diverging scale: -m red, 0 white, +m blue
    if (!PAL.length || v === null || v === undefined || !isFinite(v)) return null;
    var q = Math.max(0, Math.min(255, Math.round((v / (m || 1) + 1) / 2 * 255)));
    var c = PAL[q]; var dark = (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255 < 0.45;
    return {bg: "rgb(" + (+c[0]) + "," + (+c[1]) + "," + (+c[2]) + ")", ink: dark ? "#fff" : "#000"};
  }
  function row(cells, head) {
    var tr = el("tr");
    cells.forEach(function (c) { var td = el(head ? "th" : "td"); if (c instanceof Node) td.appendChild(c); else td.textContent = String(c); tr.appendChild(td); });
    return tr;
  }
  // a unit: its parts from Python ({name, layer, direction, quantity, index}); the click is
  // handled on the report's root
  function unitLink(u) { var name = u && typeof u === "object" ? u.name : u; var a = el("a", "lpr-unit", name); a.dataset.unit = String(name); if (u && typeof u === "object") a._unit = u; return a; }
  function unitName(u) { return String(u && typeof u === "object" ? u.name : u); }
  // the window's text, each char coloured by its attribution, the value in its tooltip
  function attributedText(a) {
    var pre = el("pre", "lpr-text lpr-attr-text"), vals = a.inputs || [], m = 0;
    vals.forEach(function (v) { if (isFinite(v)) m = Math.max(m, Math.abs(v)); });
    var text = String(a.text || "");
    for (var i = 0; i < text.length; i++) {
      var ch = text[i], s = el("span", /\s/.test(ch) || ch.charCodeAt(0) < 32 ? "w" : "", ch === "\n" ? glyph(ch) + "\n" : glyph(ch));
      var c = colour(vals[i], m);
      if (c) { s.style.background = c.bg; s.style.color = c.ink; }
      s.title = "position " + (a.start + i) + " " + JSON.stringify(ch) + ": attribution " + sgn(vals[i], 4);
      pre.appendChild(s);
    }
    var scale = el("p", "lpr-note", "diverging red<0<blue, range [" + sgn(-m) + ", " + sgn(m) + "] = \u00b1max|attribution| over these chars; whitespace shown as \u00b7 \u2192 \u21b5");
    return [pre, scale];
  }
  function attributionBlock(a, withLinks) {
    var box = el("div", "lpr-attr");
    box.appendChild(el("h4", "lpr-card-attr", "Attribution (" + a.method + (a.method === "ig" ? ", " + a.steps + " steps" : "") + ") of " + a.target));
    var v = "f = " + num(a.value, 4) + (a.baseline_value !== null && a.baseline_value !== undefined ? ", f(zero input) = " + num(a.baseline_value, 4) + ", completeness gap " + pct(a.input_gap) : "");
    box.appendChild(el("p", "lpr-note", v));
    attributedText(a).forEach(function (n) { box.appendChild(n); });
    if (a.top_units && a.top_units.length) {
      var t = el("table", "lpr-attr-units");
      t.appendChild(row(["earlier unit", "after position", "attribution"], true));
      a.top_units.forEach(function (u) { t.appendChild(row([withLinks ? unitLink(u.unit) : unitName(u.unit), String(u.position), sgn(u.attribution)])); });
      box.appendChild(t);
    }
    return box;
  }
  return {el: el, num: num, pct: pct, sgn: sgn, row: row, unitLink: unitLink, unitName: unitName, attributionBlock: attributionBlock};
}

function lstmprobeDepth(root, D) {
  "use strict";
  var T = lstmprobeDepthTools(D), el = T.el, P = D.patching, A = D.attributions;
  var box = root.querySelector(".lpr-patching");
  if (box && P && ((P.conditions && P.conditions.length) || (P.sweeps && P.sweeps.length) || (P.pairs && P.pairs.length))) {
    box.textContent = "";
    box.appendChild(el("h2", null, "Patching"));
    box.appendChild(el("p", "lpr-note", "From acts.patching.h5 (`lstmprobe patch`): the units' values from a source run set into a target run (an interchange intervention). " +
      "A pair flips when the patched target's most likely next char becomes the source's answer; random sets are units of the same layer and quantity, of the same size."));
    if (P.conditions && P.conditions.length) {
      var t = el("table", "lpr-patch-table");
      t.appendChild(T.row(["units patched", "flip rate", "without a patch", "random sets (mean \u00b1 sd)", "p (floor)"], true));
      P.conditions.forEach(function (c) {
        var r = c.random || {}, units = el("span");
        (c.units || []).forEach(function (u, i) { if (i) units.appendChild(document.createTextNode(", ")); units.appendChild(T.unitLink(u)); });
        var p = r.p_value === null || r.p_value === undefined ? "\u2013" : T.num(r.p_value) + " (" + T.num(r.p_floor) + ")";
        t.appendChild(T.row([units, T.pct(c.flip_rate), T.pct(c.base_rate), r.n ? T.pct(r.flip_rate_mean) + " \u00b1 " + T.pct(r.flip_rate_sd) + " (n = " + (+r.n) + ")" : "\u2013", p]));
      });
      box.appendChild(t);
      P.conditions.forEach(function (c) { box.appendChild(el("p", "lpr-note", c.verdict || "")); });
    }
    (P.pairs || []).forEach(function (r) {
      box.appendChild(el("p", "lpr-note", "patched " + (r.units || []).map(T.unitName).join(", ") + " from " + JSON.stringify(r.source) + " into " + JSON.stringify(r.target) +
        ": KL(before || after) = " + T.num(r.kl_bits, 4) + " bits; top after: " + (r.top_after || []).map(function (x) { return JSON.stringify(x[0]) + " " + T.num(x[1]); }).join(", ")));
    });
    (P.sweeps || []).forEach(function (f) {
      var fig = el("div", "lpr-fig lpr-patch-fig");
      fig.appendChild(el("h3", null, f.title));
      if (typeof f.src === "string" && f.src.indexOf(["data", "image/png;base64,"].join(":")) === 0) { var img = el("img"); img.alt = String(f.title); img.src = f.src; fig.appendChild(img); }
      fig.appendChild(el("p", "lpr-note", f.caption));
      box.appendChild(fig);
    });
  }
  function card(u, container) {
    if (!container) return;
    var name = u.name, found = false, part = el("div", "lpr-depth-card");
    if (P && P.by_unit && P.by_unit[name]) {
      part.appendChild(el("h4", "lpr-card-patch", "Patching"));
      var t = el("table");
      P.by_unit[name].forEach(function (ci) {
        var c = P.conditions[ci], r = c.random || {};
        t.appendChild(T.row([(c.units.length === 1 ? "alone" : "with " + (c.units.length - 1) + " more"), "flips " + T.pct(c.flip_rate) + (r.n ? "; random " + T.pct(r.flip_rate_mean) + ", p " + T.num(r.p_value) : "")]));
      });
      part.appendChild(t); found = true;
    }
    ((A && A.by_unit && A.by_unit[name]) || []).forEach(function (i) { part.appendChild(T.attributionBlock(A.entries[i], true)); found = true; });
    if (found) container.appendChild(part);
  }
  return {card: card};
}

function lstmprobeAttributionPage(root, D) {
  "use strict";
  var T = lstmprobeDepthTools(D);
  root.textContent = "";
  root.appendChild(T.el("h1", null, "Attribution: " + D.attribution.target));
  root.appendChild(T.el("p", "lpr-note", D.note || ""));
  root.appendChild(T.attributionBlock(D.attribution, false));
  if (D.attribution.top_chars && D.attribution.top_chars.length) {
    var t = T.el("table");
    t.appendChild(T.row(["char", "position", "attribution"], true));
    D.attribution.top_chars.forEach(function (c) { t.appendChild(T.row([JSON.stringify(c.char), String(c.position), T.sgn(c.attribution)])); });
    root.appendChild(T.el("h4", null, "Chars of largest |attribution|"));
    root.appendChild(t);
  }
}
