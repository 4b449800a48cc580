function lstmprobeCausal(root, D, api) {
  "use strict";
  // As report.js: nodes built with api.el (textContent), units as parts from Python.
  var el = api.el, row = api.row, table = api.table, fill = api.fill, fmt = api.fmt, count = api.count;
  var rgb = api.rgb, ink = api.ink, tip = root.querySelector(".lpr-tip");
  function sgn(x, d) { return x === null || x === undefined ? "\u2013" : (x >= 0 ? "+" : "\u2212") + fmt(Math.abs(x), d || 3); }
  function code(d, m) { return Math.max(0, Math.min(255, Math.round((1 - d / m) / 2 * 255))); }  // +m (worse) = red end
  function bar(m) {
    return [el("span", {text: "\u2212" + fmt(m) + " bits (better)"}), api.gradient("diverging", true), el("span", {text: "+" + fmt(m) + " bits (worse)"}),
      el("span", {text: "diverging, symmetric, range \u00b1" + fmt(m) + " bits = max |\u0394| over these passages; red: the intervention made predicting that char worse"})];
  }
  function has(obj, key) { return obj && Object.prototype.hasOwnProperty.call(obj, key); }
  var A = D.ablations, Y = D.dynamics;
  function condName(c) { var u = c.units.length === 1 ? c.units[0].name : c.units.length + " units"; return (c.mode === "clamp" ? "clamp to " + fmt(c.value, 4) : String(c.mode)) + ": " + u; }
  var box = root.querySelector(".lpr-ablations");
  if (box && A && A.conditions && A.conditions.length) {
    var parts = [el("h2", {text: "Ablations"}), el("p", {cls: "lpr-note", text: "From acts.ablations.h5 (`lstmprobe ablate`" + (A.feature ? ", feature " + A.feature : "") + "): the change of the next-char loss in bits when the units are intervened on, against random same-size sets of units of the same layer and quantity. " +
      "Each char is coloured by the change of the loss of predicting it; grey: nothing predicts it (a sequence's first char)."})];
    A.conditions.forEach(function (c, ci) {
      var r = c.random || {}, links = el("p", {cls: "lpr-note"});
      c.units.forEach(function (u, i) { if (i) links.appendChild(document.createTextNode(", ")); links.appendChild(api.unitLink(u)); });
      var rows = [row(["", "\u0394 bits/char", "chars", "random sets (n = " + count(r.n) + ")"], true)];
      if (c.feature) {
        rows.push(row([c.on ? String(c.on) : c.feature + " on", sgn(c.delta_on), count(c.positions_on), r.n ? sgn(r.delta_on_mean) + " \u00b1 " + fmt(r.delta_on_sd) : "\u2013"]));
        rows.push(row(["elsewhere", sgn(c.delta_off), count(c.positions_off), r.n ? sgn(r.delta_off_mean) + " \u00b1 " + fmt(r.delta_off_sd) : "\u2013"]));
      } else {
        rows.push(row(["all chars", sgn(c.delta), count(c.positions), r.n ? sgn(r.delta_mean) + " \u00b1 " + fmt(r.delta_sd) : "\u2013"]));
      }
      var holder = el("div", {cls: "lpr-passages lpr-abl-passages"});
      var figure = api.image(c.figure) ? el("img", {cls: "lpr-abl-fig", alt: "the random units behind the p-value", src: c.figure}) : null;  // the random units behind p
      var floor = r.p_floor === null || r.p_floor === undefined ? "" : "; its floor with " + count(r.n) + " random sets is " + fmt(r.p_floor);
      var cond = el("div", {cls: "lpr-abl-cond", data: {c: ci}}, [el("h3", {text: condName(c)}), links, table("lpr-abl-table", rows),
        el("p", {cls: "lpr-note lpr-abl-p", text: "p = " + (r.p_value === null || r.p_value === undefined ? "\u2013 (no random sets)" : fmt(r.p_value) + " (of " + (r.p_value_of ? String(r.p_value_of) : "") + ": the share of random sets at least as costly, counting the chosen one" + floor + ")")}),
        el("p", {cls: "lpr-note", text: c.verdict || ""}), figure, el("div", {cls: "lpr-scale"}, bar(c.range)), holder]);
      parts.push(cond);
      var onWhere = A.feature_at === "state" ? " on where the model predicted that char (read at the char before)" : " on at that char";
      c.passages.forEach(function (p) {
        var pre = el("pre", {cls: "lpr-text lpr-abl-text"}), n = api.chars(p.text).length;
        var cap = el("div", {cls: "lpr-pcap", text: (p.kind === "effect" ? "largest loss increase" : (c.feature || "feature") + " changes") + " \u00b7 positions " + p.start + ".." + (p.start + n) + (p.on ? " \u00b7 underlined: " + (c.feature || "feature") + onWhere : "")});
        var labels = p.on ? p.on.slice() : null; if (labels) labels.binary = true;
        var spans = api.makeText(pre, p.text, p.start, labels);
        for (var i = 0; i < spans.length; i++) {
          var d = p.delta[i];
          if (d === null || d === undefined) { spans[i].className += " na"; continue; }
          var q = code(d, c.range); spans[i].style.background = rgb("diverging", q); spans[i].style.color = ink("diverging", q);
          spans[i].dataset.delta = d;
        }
        pre.addEventListener("mousemove", function (e) {
          var t = e.target; if (!t.dataset || t.dataset.i === undefined) { tip.hidden = true; return; }
          var i = +t.dataset.i, ch = pre._chars[i], d = p.delta[i], rr = p.random ? p.random[i] : null;
          tip.textContent = "char " + JSON.stringify(ch) + " (" + api.codepoint(ch) + ")\nposition " + (p.start + i) + "\n\u0394 loss predicting it = " + (d === null || d === undefined ? "n/a" : sgn(d, 4) + " bits") +
            (rr !== null && rr !== undefined ? "\nrandom sets, mean \u0394 = " + sgn(rr, 4) + " bits" : "") + (p.on && p.on[i] !== null && p.on[i] !== undefined ? "\n" + (c.feature || "feature") + " = " + fmt(p.on[i]) : "");
          tip.hidden = false; tip.style.left = Math.min(e.clientX + 14, window.innerWidth - 260) + "px"; tip.style.top = (e.clientY + 16) + "px";
        });
        pre.addEventListener("mouseleave", function () { tip.hidden = true; });
        holder.appendChild(el("div", null, [cap, pre]));
      });
    });
    fill(box, parts);
  }
  var dbox = root.querySelector(".lpr-dynamics");
  if (dbox && Y) {
    var note = "From acts.dynamics.json (`lstmprobe dynamics`): when each unit's state is kept, written or reset. ";
    Object.keys(Y.layers || {}).forEach(function (l) { var t = (Y.layers[l] || {}).timescales || {}; note += l + ": timescale median " + fmt(t.median) + " steps [q25 " + fmt(t.q25) + ", q75 " + fmt(t.q75) + ", max " + fmt(t.max) + "], " + count(t.infinite) + " infinite. "; });
    fill(dbox, [el("h2", {text: "Dynamics"}), el("p", {cls: "lpr-note", text: note})].concat((Y.figures || []).map(function (f) {
      var head = el("h3", {text: f.title}, f.unit ? [" ", api.unitLink(f.unit)] : []);
      if (f.unit) head.lastChild.textContent = "(explore)";
      var fig = el("div", {cls: "lpr-fig lpr-dyn-fig"}, [head, api.image(f.src) ? el("img", {alt: f.title, src: f.src}) : null, el("p", {cls: "lpr-note", text: f.caption})]);
      fig.dataset.figure = String(f.id); return fig;
    })));
  }
  function stateOf(u) {  // the state unit of u's layer and index, spelled as Python spells it
    if (!Y || !Y.units) return null;
    var l = u.key.layer_name, c = l + "/cell/" + u.index, hd = l + "/hidden/" + u.index;
    return has(Y.units, c) ? [c, Y.units[c]] : has(Y.units, hd) ? [hd, Y.units[hd]] : null;
  }
  function pct(x) { return x === null || x === undefined ? "\u2013" : fmt(100 * x, 3) + "%"; }
  function card(u) {
    var parts = [];
    var idx = A && has(A.by_unit, u.name) ? A.by_unit[u.name] : null;
    if (idx && idx.length) {
      parts.push(el("h4", {cls: "lpr-card-abl", text: "Ablation effect"}));
      parts.push(table(null, idx.map(function (ci) {
        var c = A.conditions[ci], r = c.random || {};
        var what = (c.units.length === 1 ? "alone" : "with " + (c.units.length - 1) + " more") + " (" + c.mode + ")";
        var main = c.feature ? "on " + sgn(c.delta_on) + ", off " + sgn(c.delta_off) : sgn(c.delta);
        var rand = r.n ? (c.feature ? sgn(r.delta_on_mean) + " \u00b1 " + fmt(r.delta_on_sd) : sgn(r.delta_mean) + " \u00b1 " + fmt(r.delta_sd)) + ", p " + fmt(r.p_value) : "no random sets";
        return row([what, main + " bits/char; random " + rand]);
      })));
    }
    var s = stateOf(u);
    if (s) {
      var d = s[1], rows = [
        row(["timescale", (d.timescale === null || d.timescale === undefined ? "\u221e" : fmt(d.timescale)) + " steps (mean keep gate " + fmt(d.mean_keep_gate, 4) + ")"]),
        row(["keep vs write", "write share " + fmt(d.write_share) + " (mean |keep| " + fmt(d.mean_abs_keep) + ", |write| " + fmt(d.mean_abs_write) + ")"]),
        row(["held, reset", pct(d.held) + ", " + pct(d.reset)])];
      if (d.writes_at && d.writes_at.length) rows.push(row(["written at", d.writes_at.map(function (w) { return String(w.char) + " (" + sgn(w.mean_write, 2) + ")"; }).join(" ")]));
      if (d.resets_at && d.resets_at.length) rows.push(row(["reset at", d.resets_at.map(function (w) { return String(w.char) + " (" + fmt(w.mean_keep_gate, 2) + ")"; }).join(" ")]));
      parts.push(el("h4", {cls: "lpr-card-dyn", text: "Dynamics of " + s[0]}), table(null, rows));
      if (d.drivers && d.drivers.length) {
        parts.push(el("h4", {text: "Strongest recurrent drivers"}));
        parts.push(table("lpr-drivers", [row(["from", "into", "weight"])].concat(d.drivers.map(function (x) {
          return row([x.from && typeof x.from === "object" ? api.unitLink(x.from, "lpr-driver") : String(x.from), String(x.gate), sgn(x.weight)]);
        }))));
      }
    }
    return parts;
  }
  return {card: card};
}
