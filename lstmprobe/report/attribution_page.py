"""The standalone page of one attribution (``lstmprobe attribute -o attr.html``): the window's
text coloured by each char's attribution, the value on hover, the top chars and units.

Self-contained like the report (:func:`lstmprobe.report.html.render`): no network, only its own
script and style (by their hashes in the page's content security policy,
:data:`~lstmprobe.report.html.CSP`), the data as JSON text that ``assets/depth.js`` shows as text.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from typing import Any

from lstmprobe.report.colors import lut
from lstmprobe.report.html import CSP
from lstmprobe.report.output import asset, compact


def _hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def attribution_page(attribution: dict[str, Any], note: str = "") -> str:
    """The page of one attribution (:meth:`lstmprobe.causal.Attribution.to_dict`)."""
    payload = {
        "palettes": {"diverging": lut("diverging").tolist()},
        "attribution": attribution,
        "note": note,
    }
    data = json.dumps(compact(payload), ensure_ascii=False, separators=(",", ":"))
    data = data.replace("<", "\\u003c")  # no </script> or <!-- inside the script element
    script = (
        asset("depth.js") + "\nlstmprobeAttributionPage(document.getElementById('lpr-attr'), "
        "JSON.parse(document.getElementById('lpr-attr-data').textContent));"
    )
    style = asset("report.css") + asset("depth.css")
    policy = CSP.format(style=_hash(style), script=_hash(script))
    title = html.escape(f"lstmprobe attribution: {attribution.get('target', '')}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{title}</title>\n<style>{style}</style></head>\n<body>\n"
        '<div class="lpr" id="lpr-attr"></div>\n'
        f'<script type="application/json" id="lpr-attr-data">{data}</script>\n'
        f"<script>{script}</script>\n</body></html>\n"
    )
