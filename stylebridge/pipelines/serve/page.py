"""The ``stylebridge serve`` page's own CSS and script, and its text-to-HTML helpers (no web
framework here: :mod:`.app` hands these to Gradio).

:data:`ACCESSIBILITY_JS` runs once the page is built and keeps, whenever Gradio redraws a part
of the page: the status lines as live regions (their inner element only: Gradio's progress
timer beside them is not read out), the two upload zones named apart, the encoder field
marked invalid and described by its note while the note shows an error, and the keyboard
focus on the control a redraw or a disabled button took it from.  :data:`CSS` sets every
colour it uses for Gradio's light and dark mode (``.dark`` on an ancestor), each at least
4.5:1 for text and 3:1 for the parts of a control.
"""

from __future__ import annotations

import json
import re

#: the page's status lines: read out by a screen reader when they change
LIVE_REGIONS = ("status", "result-status", "domain-status", "encoder-note", "download-status",
                "metric-notes")
#: the two upload zones, named apart for a screen reader (their drop areas read alike)
UPLOAD_NAMES = (("photo-upload", "upload a face photo"),
                ("domain-files", "upload domain checkpoints (.safetensors)"))
#: the encoder field and the note that says what is wrong with a typed encoder
ENCODER, ENCODER_NOTE = "encoder", "encoder-note"
#: the button whose first step disables it, and the status line that says how its run ended
RUN, RUN_STATUS = "run", "result-status"
#: the result picture, and its alt text until a run says what it shows (:func:`grid_alt`)
GRID = "result-grid"
GRID_ALT = ("result grid, left to right: the aligned photo, its inversion and each chosen "
            "domain; the run's settings are written under it")
#: the alt text of the photo previews
PHOTO_ALT = "the photo: uploaded, or the preloaded astronaut"
ALIGNED_ALT = "the face in the photo, aligned (cropped, turned and scaled as in FFHQ)"

#: run once the page is built (see the module's docstring); every change is made again when
#: Gradio redraws (a MutationObserver), and only where it is not made yet (no loop)
ACCESSIBILITY_JS = """() => {
  const LIVE = __LIVE__, UPLOADS = __UPLOADS__;
  const set = (el, name, value) => {
    if (el && el.getAttribute(name) !== value) el.setAttribute(name, value);
  };
  const unset = (el, name) => { if (el && el.hasAttribute(name)) el.removeAttribute(name); };
  // the inner element of a gr.HTML: its wrapper also holds Gradio's progress timer
  const inner = id => document.querySelector('#' + id + ' > .html-container')
    || document.querySelector('#' + id + ' .html-container');
  const zones = UPLOADS.map(([id]) => '#' + id).join(',');
  let last = null, lastZone = null, runWaits = false, gridAlt = __GRID_ALT__;
  document.addEventListener('focusin', event => {
    last = event.target;
    const zone = last.closest ? last.closest(zones) : null;
    lastZone = zone ? zone.id : null;
  });
  const apply = () => {
    for (const id of LIVE) {
      const el = inner(id);
      set(el, 'id', id + '-text'); set(el, 'role', 'status'); set(el, 'aria-live', 'polite');
    }
    for (const [id, name] of UPLOADS) {
      for (const el of document.querySelectorAll('#' + id + ' input[type=file], #' + id
                                                 + ' button[aria-dropeffect]')) {
        set(el, 'aria-label', name);
      }
    }
    const field = document.querySelector('#__ENCODER__ input');
    if (document.querySelector('#__NOTE__ .error')) {
      set(field, 'aria-invalid', 'true'); set(field, 'aria-describedby', '__NOTE__-text');
    } else { unset(field, 'aria-invalid'); unset(field, 'aria-describedby'); }
    // the result grid's alt text: what the last result shown draws (its status line says)
    const said = document.querySelector('#__RUN_STATUS__ [data-grid-alt]');
    if (said) gridAlt = said.getAttribute('data-grid-alt');
    for (const img of document.querySelectorAll('#__GRID__ img')) set(img, 'alt', gridAlt);
    // the focus, where a redraw dropped it to the page: back on the upload zone it was on
    const active = document.activeElement;
    const lost = !active || active === document.body;
    if (lost && last && !last.isConnected && lastZone) {
      const zone = document.querySelector('#' + lastZone + ' button[aria-dropeffect]');
      if (zone) zone.focus();
    }
    // run disables itself while it waits and runs: the focus on its status line meanwhile,
    // then on run again (unless it was moved on)
    const run = document.getElementById('__RUN__'), status = inner('__RUN_STATUS__');
    if (run && run.disabled && (active === run || lost && last === run) && status) {
      runWaits = true; set(status, 'tabindex', '-1'); status.focus();
    } else if (run && !run.disabled && runWaits) {
      runWaits = false;
      const now = document.activeElement;
      if (!now || now === document.body || now === status) run.focus();
    }
  };
  apply();
  new MutationObserver(apply).observe(document.body, {
    subtree: true, childList: true, attributes: true,
    attributeFilter: ['disabled', 'src', 'alt', 'aria-label', 'role', 'aria-live']});
}""".replace("__LIVE__", str(list(LIVE_REGIONS))).replace(
    "__UPLOADS__", str([list(pair) for pair in UPLOAD_NAMES])).replace(
    "__ENCODER__", ENCODER).replace("__NOTE__", ENCODER_NOTE).replace(
    "__RUN_STATUS__", RUN_STATUS).replace("__RUN__", RUN).replace("__GRID__", GRID).replace(
    "__GRID_ALT__", json.dumps(GRID_ALT))

#: every colour set here has a dark-mode twin (Gradio puts ``.dark`` on an ancestor); text
#: 4.5:1 at least on its background, a control's parts 3:1 (the QA's measures in the tests)
CSS = """
/* the title, the page's h1: not four lines on a phone */
@media (max-width: 640px) { #title h1 { font-size: var(--text-xl); } }
#random-banner { background: #fff1f0; border: 2px solid #d4380d; border-radius: 6px;
                 padding: 6px 12px; color: #a8071a; font-weight: 600; }
.dark #random-banner { background: #2a1215; border-color: #ff4d4f; color: #ffa39e; }
#random-banner code { color: inherit; background: transparent; border: 1px solid currentColor;
                      padding: 0 3px; }
#status .error, #result-status .error, #domain-status .error, #encoder-note .error,
#download-status .error { color: #a8071a; font-weight: 600; }
/* one selector per dark rule: Gradio scopes only the first of a list below .dark */
.dark #status .error { color: #ffa39e; }
.dark #result-status .error { color: #ffa39e; }
.dark #domain-status .error { color: #ffa39e; }
.dark #encoder-note .error { color: #ffa39e; }
.dark #download-status .error { color: #ffa39e; }
#status, #result-status, #domain-status, #metric-notes { overflow-wrap: anywhere; }
#domains label { max-width: 100%; white-space: normal; overflow-wrap: anywhere; }
/* the upload zones' long labels sit above the drop area, not on its icon (they wrap on a
   phone) */
#photo-upload > label[data-testid=block-label],
#domain-files > label[data-testid=block-label] { position: static; max-width: 100%;
    white-space: normal; overflow-wrap: anywhere; border-radius: 0; }
/* the result grid: its label and icon buttons sit above the picture, not on it.  The picture
   keeps its own width held between min(page, 1040 px) and max(page, 1040 px): a wider grid
   shrinks to the page (its captions are drawn into it: 10 px type under 512 px tiles,
   growing with the tile above); on a phone it stays 1040 px wide and scrolls sideways */
#result-grid .image-container, #photo-preview .image-container,
#aligned-preview .image-container { padding-top: 34px; }
#result-grid .image-container > button { width: 100%; overflow-x: auto; overflow-y: hidden;
                                         justify-content: flex-start; }
#result-grid .image-frame { width: 100%; justify-content: safe center; }
#result-grid .image-frame img { width: auto; height: auto; max-height: none;
                                min-width: min(100%, 1040px); max-width: max(100%, 1040px);
                                object-fit: contain; flex: none; }
/* the metrics table scrolls sideways on a narrow screen: a scroll bar that stays (thumb on
   track 4:1), a fading right edge and a hint in its label while columns are out of sight */
#metrics .table-container { timeline-scope: --metrics-x; }
#metrics .virtual-table-viewport { scroll-timeline: --metrics-x x; scrollbar-width: auto;
                                   scrollbar-color: #737373 #eeeeee; }
.dark #metrics .virtual-table-viewport { scrollbar-color: #a3a3a3 #27272a; }
#metrics .table-wrap::after { content: ""; position: absolute; top: 0; right: 0; bottom: 0;
    width: 32px; pointer-events: none; opacity: 0; z-index: 5;
    background: linear-gradient(to right, transparent, rgba(0, 0, 0, 0.18));
    animation: metrics-more linear both; animation-timeline: --metrics-x; }
.dark #metrics .table-wrap::after {
    background: linear-gradient(to right, transparent, rgba(255, 255, 255, 0.22)); }
#metrics .label p::after { content: " (scroll sideways for more columns \u2192)";
    font-weight: 600; opacity: 0; animation: metrics-more linear both;
    animation-timeline: --metrics-x; }
@keyframes metrics-more { 0%, 92% { opacity: 1; } 100% { opacity: 0; } }
/* a text domain made while this page loaded: its progress as a bar (jobs.py); its edge 3:1
   on the page, the filled part 3:1 on the rest */
#domain-status progress { width: 8em; height: 0.7em; vertical-align: middle; appearance: none;
                          border: 1px solid #6b7280; border-radius: 4px; background: #e5e7eb;
                          box-sizing: border-box; }
#domain-status progress::-webkit-progress-bar { background: #e5e7eb; border-radius: 3px; }
#domain-status progress::-webkit-progress-value { background: #c2410c; border-radius: 3px; }
#domain-status progress::-moz-progress-bar { background: #c2410c; border-radius: 3px; }
.dark #domain-status progress { border-color: #a1a1aa; background: #3f3f46; }
.dark #domain-status progress::-webkit-progress-bar { background: #3f3f46; }
.dark #domain-status progress::-webkit-progress-value { background: #fb923c; }
.dark #domain-status progress::-moz-progress-bar { background: #fb923c; }
#encoder-note { font-size: 0.9em; overflow-wrap: anywhere; }
#encoder-note summary { cursor: pointer; }
#encoder-note ul { margin: 4px 0 0 1.2em; }
/* the dropdowns' arrow does not cover the end of the chosen text */
#encoder input, #skip-layers input { margin-right: 30px; text-overflow: ellipsis; }
"""

_CODE = re.compile(r"`([^`]+)`")


def escape(text: str) -> str:
    """``text`` as HTML text (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def text_html(text: str) -> str:
    """``text`` as HTML, a command in backticks (```stylebridge weights```, as the console
    writes it) as code."""
    return _CODE.sub(r"<code>\1</code>", escape(text))


def attr(text: str) -> str:
    """``text`` as an HTML attribute's value (between double quotes)."""
    return escape(text).replace('"', "&quot;")


def grid_alt(domains: list[str], settings: str) -> str:
    """The result grid's alt text: its pictures left to right, and the settings line drawn
    under it."""
    shown = ["the aligned photo", "its inversion", *(f"domain {name}" for name in domains)]
    return (f"result grid, left to right: {', '.join(shown)}"
            + (f"; written under it: {settings}" if settings else ""))


def alt_marker(alt: str) -> str:
    """An empty element for a status line, carrying the grid's alt text to the page's script
    (:data:`ACCESSIBILITY_JS` puts it on the picture)."""
    return f'<span data-grid-alt="{attr(alt)}" hidden></span>'


__all__ = ["ACCESSIBILITY_JS", "ALIGNED_ALT", "CSS", "GRID_ALT", "LIVE_REGIONS", "PHOTO_ALT",
           "UPLOAD_NAMES", "alt_marker", "attr", "escape", "grid_alt", "text_html"]
