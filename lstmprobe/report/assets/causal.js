function lstmprobeCausal(root, D, api) {
  "use strict";
  var esc = api.esc, fmt = api.fmt, rgb = api.rgb, ink = api.ink, tip = root.querySelector(".lpr-tip");
  function count(x) { return (+x || 0).toLocaleString(); }  // a number from the file, never its text
  function sgn(x, d) { return x === null || x === undefined ? "\u2013" : (x >= 0 ? "+" : "\u2212") + fmt(Math.abs(x), d || 3); }
  function code(d, m) { return Math.max(0, Math.min(255, Math.round((1 - d / m) / 2 * 255))); }  // +m (worse) = red end
  function bar(m) {
    var stops = []; for (var i = 0; i <= 8; i++) stops.push(rgb("diverging", 255 - Math.round(i * 255 / 8)));
    return "<span>\u2212" + fmt(m) + " bits (better)</span><span class='lpr-bar' style='background:linear-gradient(to right," + stops.join(",") + ")'></span><span>+" + fmt(m) + " bits (worse)</span>" +
      "<span>diverging, symmetric, range \u00b1" + fmt(m) + " bits = max |\u0394| over these passages; red: the intervention made predicting that char worse</span>";
  }
  var A = D.ablations, Y = D.dynamics;
  function condName(c) { var u = c.units.length === 1 ? c.units[0] : c.units.length + " units"; return (c.mode === "clamp" ? "clamp to " + c.value : c.mode) + ": " + u; }
  var box = root.querySelector(".lpr-ablations");
  if (box && A && A.conditions && A.conditions.length) {
    var h = "<h2>Ablations</h2><p class='lpr-note'>From acts.ablations.h5 (`lstmprobe ablate`" + (A.feature ? ", feature " + esc(A.feature) : "") + "): the change of the next-char loss in bits when the units are intervened on, against random same-size sets of units of the same layer and quantity. " +
      "Each char is coloured by the change of the loss of predicting it; grey: nothing predicts it (a sequence's first char).</p>";
    A.conditions.forEach(function (c, ci) {
      var r = c.random || {};
      h += "<div class='lpr-abl-cond' data-c='" + ci + "'><h3>" + esc(condName(c)) + "</h3><p class='lpr-note'>" + c.units.map(function (u) { return "<a class='lpr-unit' data-unit='" + esc(u) + "'>" + esc(u) + "</a>"; }).join(", ") + "</p><table class='lpr-abl-table'><tr><th></th><th>\u0394 bits/char</th><th>chars</th><th>random sets (n = " + count(r.n) + ")</th></tr>";
      if (c.feature) {
        h += "<tr><td>" + esc(c.on || c.feature + " on") + "</td><td>" + sgn(c.delta_on) + "</td><td>" + count(c.positions_on) + "</td><td>" + (r.n ? sgn(r.delta_on_mean) + " \u00b1 " + fmt(r.delta_on_sd) : "\u2013") + "</td></tr>";
        h += "<tr><td>elsewhere</td><td>" + sgn(c.delta_off) + "</td><td>" + count(c.positions_off) + "</td><td>" + (r.n ? sgn(r.delta_off_mean) + " \u00b1 " + fmt(r.delta_off_sd) : "\u2013") + "</td></tr>";
      } else {
        h += "<tr><td>all chars</td><td>" + sgn(c.delta) + "</td><td>" + count(c.positions) + "</td><td>" + (r.n ? sgn(r.delta_mean) + " \u00b1 " + fmt(r.delta_sd) : "\u2013") + "</td></tr>";
      }
      h += "</table><p class='lpr-note lpr-abl-p'>p = " + (r.p_value === null || r.p_value === undefined ? "\u2013 (no random sets)" : fmt(r.p_value) + " (of " + esc(r.p_value_of || "") + ": the share of random sets at least as costly, counting the chosen one; its floor with " + count(r.n) + " random sets is " + fmt(r.p_floor) + ")") + "</p>" +
        "<p class='lpr-note'>" + esc(c.verdict || "") + "</p><div class='lpr-scale'>" + bar(c.range) + "</div><div class='lpr-passages lpr-abl-passages'></div></div>";
    });
    box.innerHTML = h;
    A.conditions.forEach(function (c, ci) {
      var holder = box.querySelector(".lpr-abl-cond[data-c='" + ci + "'] .lpr-abl-passages");
      if (c.figure && String(c.figure).indexOf("data:image/png;base64,") === 0) {  // the random units behind p
        var img = document.createElement("img"); img.className = "lpr-abl-fig"; img.alt = "the random units behind the p-value"; img.src = c.figure;
        holder.parentNode.insertBefore(img, holder);
      }
      c.passages.forEach(function (p) {
        var div = document.createElement("div"), cap = document.createElement("div"), pre = document.createElement("pre");
        cap.className = "lpr-pcap"; pre.className = "lpr-text lpr-abl-text";
        var onWhere = A.feature_at === "state" ? " on where the model predicted that char (read at the char before)" : " on at that char";
        cap.textContent = (p.kind === "effect" ? "largest loss increase" : (c.feature || "feature") + " changes") + " \u00b7 positions " + p.start + ".." + (p.start + p.text.length) + (p.on ? " \u00b7 underlined: " + (c.feature || "feature") + onWhere : "");
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
          var i = +t.dataset.i, ch = p.text[i], d = p.delta[i], rr = p.random ? p.random[i] : null;
          tip.textContent = "char " + JSON.stringify(ch) + "\nposition " + (p.start + i) + "\n\u0394 loss predicting it = " + (d === null ? "n/a" : sgn(d, 4) + " bits") +
            (rr !== null && rr !== undefined ? "\nrandom sets, mean \u0394 = " + sgn(rr, 4) + " bits" : "") + (p.on && p.on[i] !== null ? "\n" + (c.feature || "feature") + " = " + p.on[i] : "");
          tip.hidden = false; tip.style.left = Math.min(e.clientX + 14, window.innerWidth - 260) + "px"; tip.style.top = (e.clientY + 16) + "px";
        });
        pre.addEventListener("mouseleave", function () { tip.hidden = true; });
        div.appendChild(cap); div.appendChild(pre); holder.appendChild(div);
      });
    });
  }
  var dbox = root.querySelector(".lpr-dynamics");
  if (dbox && Y) {
    var g = "<h2>Dynamics</h2><p class='lpr-note'>From acts.dynamics.json (`lstmprobe dynamics`): when each unit's state is kept, written or reset. ";
    Object.keys(Y.layers || {}).forEach(function (l) { var t = (Y.layers[l] || {}).timescales || {}; g += esc(l) + ": timescale median " + fmt(t.median) + " steps [q25 " + fmt(t.q25) + ", q75 " + fmt(t.q75) + ", max " + fmt(t.max) + "], " + count(t.infinite) + " infinite. "; });
    g += "</p>";
    (Y.figures || []).forEach(function (f) {
      g += "<div class='lpr-fig lpr-dyn-fig' id='" + esc(f.id) + "'><h3>" + esc(f.title) + (f.unit ? " <a class='lpr-unit' data-unit='" + esc(f.unit) + "'>(explore)</a>" : "") + "</h3><img alt='" + esc(f.title) + "' src='" + f.src + "'><p class='lpr-note'>" + esc(f.caption) + "</p></div>";
    });
    dbox.innerHTML = g;
  }
  function stateOf(u) {
    if (!Y || !Y.units) return null;
    var l = u.key.layer, c = l + "/cell/" + u.index, hd = l + "/hidden/" + u.index;
    return Y.units[c] ? [c, Y.units[c]] : Y.units[hd] ? [hd, Y.units[hd]] : null;
  }
  function pct(x) { return x === null || x === undefined ? "\u2013" : fmt(100 * x, 3) + "%"; }
  function card(u) {
    var h = "";
    var idx = A && A.by_unit ? A.by_unit[u.name] : null;
    if (idx && idx.length) {
      h += "<h4 class='lpr-card-abl'>Ablation effect</h4><table>";
      idx.forEach(function (ci) {
        var c = A.conditions[ci], r = c.random || {};
        var what = (c.units.length === 1 ? "alone" : "with " + (c.units.length - 1) + " more") + " (" + esc(c.mode) + ")";
        var main = c.feature ? "on " + sgn(c.delta_on) + ", off " + sgn(c.delta_off) : sgn(c.delta);
        var rand = r.n ? (c.feature ? sgn(r.delta_on_mean) + " \u00b1 " + fmt(r.delta_on_sd) : sgn(r.delta_mean) + " \u00b1 " + fmt(r.delta_sd)) + ", p " + fmt(r.p_value) : "no random sets";
        h += "<tr><td>" + what + "</td><td>" + main + " bits/char; random " + rand + "</td></tr>";
      });
      h += "</table>";
    }
    var s = stateOf(u);
    if (s) {
      var d = s[1];
      h += "<h4 class='lpr-card-dyn'>Dynamics of " + esc(s[0]) + "</h4><table>" +
        "<tr><td>timescale</td><td>" + (d.timescale === null || d.timescale === undefined ? "\u221e" : fmt(d.timescale)) + " steps (mean keep gate " + fmt(d.mean_keep_gate, 4) + ")</td></tr>" +
        "<tr><td>keep vs write</td><td>write share " + fmt(d.write_share) + " (mean |keep| " + fmt(d.mean_abs_keep) + ", |write| " + fmt(d.mean_abs_write) + ")</td></tr>" +
        "<tr><td>held, reset</td><td>" + pct(d.held) + ", " + pct(d.reset) + "</td></tr>";
      if (d.writes_at && d.writes_at.length) h += "<tr><td>written at</td><td>" + d.writes_at.map(function (w) { return esc(w.char) + " (" + sgn(w.mean_write, 2) + ")"; }).join(" ") + "</td></tr>";
      if (d.resets_at && d.resets_at.length) h += "<tr><td>reset at</td><td>" + d.resets_at.map(function (w) { return esc(w.char) + " (" + fmt(w.mean_keep_gate, 2) + ")"; }).join(" ") + "</td></tr>";
      h += "</table>";
      if (d.drivers && d.drivers.length) {
        h += "<h4>Strongest recurrent drivers</h4><table class='lpr-drivers'><tr><td>from</td><td>into</td><td>weight</td></tr>";
        d.drivers.forEach(function (x) { h += "<tr><td><a class='lpr-unit lpr-driver' data-unit='" + esc(x.from) + "'>" + esc(x.from) + "</a></td><td>" + esc(x.gate) + "</td><td>" + sgn(x.weight) + "</td></tr>"; });
        h += "</table>";
      }
    }
    return h;
  }
  return {card: card};
}
