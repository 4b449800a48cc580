function lstmprobeProfile(root, D, api) {
  "use strict";
  // the unit card's profile by input char (D.profiles, from `lstmprobe profile`'s computation);
  // every string from the file goes in as text: createElement + textContent, never markup
  var P = D.profiles || null;
  function el(tag, text, cls) { var e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
  function num(x) { return x === null || x === undefined || isNaN(x) ? "\u2013" : (x >= 0 ? "+" : "\u2212") + Math.abs(+x).toFixed(2); }
  function card(u, box) {
    if (!P || !box) return;
    var L = Object.prototype.hasOwnProperty.call(P, u.key.layer_name) ? P[u.key.layer_name] : null; if (!L) return;
    var j = L.indices.indexOf(u.index); if (j < 0) return;
    var wrap = el("div", undefined, "lpr-profile");
    wrap.appendChild(el("h4", "Profile of unit " + u.index + " by the char just read"));
    var scroll = el("div", undefined, "lpr-profile-scroll"), table = el("table"), head = el("tr");
    head.appendChild(el("th", ""));
    L.groups.forEach(function (g) { head.appendChild(el("th", api.glyph(String(g)))); });
    table.appendChild(head);
    var counts = el("tr"); counts.appendChild(el("td", "count"));
    L.counts.forEach(function (c) { counts.appendChild(el("td", (+c || 0).toLocaleString())); });
    table.appendChild(counts);
    L.quantities.forEach(function (q, qi) {
      var tr = el("tr"), name = el("td", q.replace("_gate", ""));
      name.title = (L.meanings || {})[q] || q; tr.appendChild(name);
      L.groups.forEach(function (g, gi) {
        var td = el("td", num(L.mean[qi][gi][j])), sd = L.sd[qi][gi][j];
        td.appendChild(el("small", " \u00b1" + (sd === null || sd === undefined ? "\u2013" : (+sd).toFixed(2))));
        tr.appendChild(td);
      });
      table.appendChild(tr);
    });
    scroll.appendChild(table); wrap.appendChild(scroll);
    wrap.appendChild(el("p", "Mean \u00b1 sd over the whole recording after reading each char (the most frequent shown); forgotten = (f\u22121)\u00b7c(t\u22121), written = i\u00b7g, delta = forgotten + written. Hover a row name for its meaning.", "lpr-note"));
    box.appendChild(wrap);
  }
  return {card: card};
}
