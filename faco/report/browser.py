"""The report as a reader sees it: headless Chromium renders the page at 1280 px and a script in the page
reports what a reader would hit, so a table that runs off the page, an image that did not load, an
in-page link to nowhere or a script error fails a check instead of landing unseen.

    faco report --browser                  # rebuild every run's report, check each, screenshot beside it

It drives Debian's `chromium` through its own flags (`--dump-dom` after the page's load event, then
`--screenshot` at the page's full height): no browser is downloaded and no driver is needed. The page is
checked as a copy with the check script first in <head> (so it sees every error), never edited in place.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

WIDTH = 1280  # px: a laptop window; the page must fit it without sideways scrolling
TIMEOUT_S = 120.0
MAX_HEIGHT = 16384  # px: Chromium's screenshot limit; longer pages are cut there
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--hide-scrollbars",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=20000")  # the closed network refuses Chromium's own connections: none are made
CHECK = """<script>
window.__facoErrors = [];
window.addEventListener("error", e => window.__facoErrors.push("error: " + (e.message || e.target.outerHTML || e)), true);
const __facoConsole = console.error;
console.error = (...parts) => { window.__facoErrors.push("console.error: " + parts.join(" ")); __facoConsole(...parts); };
window.addEventListener("load", () => {
  const where = e => e.tagName.toLowerCase() + (e.className ? "." + e.className : "") +
    (e.closest("section") ? " in #" + e.closest("section").id : "");
  const result = {
    width: window.innerWidth, scrollWidth: document.documentElement.scrollWidth,
    height: document.documentElement.scrollHeight,
    images: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt || i.src.slice(0, 80)),
    links: [...document.querySelectorAll('a[href^="#"]')].map(a => a.getAttribute("href").slice(1))
      .filter(id => id && !document.getElementById(id)),
    wide: [...document.body.querySelectorAll("*")].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
      .filter(e => !e.parentElement || e.parentElement.getBoundingClientRect().right <= window.innerWidth + 1)
      .map(where),
    errors: window.__facoErrors,
  };
  const out = document.createElement("pre");
  out.id = "faco-browser-check";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>"""
RESULT = re.compile(r'<pre id="faco-browser-check">(.*?)</pre>', re.S)


class BrowserError(RuntimeError):
    """No browser to render with, or one that did not render the page: the message says which."""


@dataclass(frozen=True)
class Rendered:
    """What a reader's browser found on the page (problems: what a check fails on)."""

    page: Path
    width: int
    scroll_width: int
    height: int
    broken_images: list[str]
    broken_links: list[str]
    wide: list[str]  # the outermost elements that reach past the window's right edge
    errors: list[str]
    screenshot: Path | None = None

    @property
    def problems(self) -> list[str]:
        found = []
        if self.scroll_width > self.width:
            found.append(f"the page is {self.scroll_width} px wide in a {self.width} px window "
                         f"(sideways scrolling; too wide: {', '.join(self.wide) or 'unknown'})")
        found += [f"image did not load: {name}" for name in self.broken_images]
        found += [f"in-page link to nowhere: #{anchor}" for anchor in self.broken_links]
        found += self.errors
        return found


def browser() -> str:
    """The installed Chromium's command; BrowserError naming what to install when there is none."""
    found = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if found is None:
        raise BrowserError(f"no Chromium found (looked for {', '.join(BROWSERS)}); on Debian: apt-get install chromium")
    return found


def render(page: Path, screenshot: Path | None = None, width: int = WIDTH) -> Rendered:
    """Render `page` headless at `width` px; with `screenshot`, save the full page there as PNG."""
    command = browser()
    with tempfile.TemporaryDirectory(prefix="faco-browser-") as tmp:
        checked = Path(tmp) / page.name
        text = page.read_text(encoding="utf-8")
        checked.write_text(text.replace("<head>", "<head>" + CHECK, 1) if "<head>" in text else CHECK + text,
                           encoding="utf-8")
        dom = _run([command, *FLAGS, f"--user-data-dir={tmp}/profile", f"--window-size={width},900", "--dump-dom",
                    checked.as_uri()], page)
        found = RESULT.search(dom)
        if found is None:
            raise BrowserError(f"{page}: Chromium rendered the page but its load event never ran the check "
                               "(a script stalled, or the page did not finish loading)")
        result = json.loads(html.unescape(found.group(1)))
        if screenshot is not None:
            height = min(MAX_HEIGHT, max(900, int(result["height"])))
            _run([command, *FLAGS, f"--user-data-dir={tmp}/profile", f"--window-size={width},{height}",
                  f"--screenshot={screenshot.resolve()}", page.resolve().as_uri()], page)
    return Rendered(page, result["width"], result["scrollWidth"], result["height"], result["images"],
                    result["links"], result["wide"], result["errors"], screenshot)


def _run(command: list[str], page: Path) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BrowserError(f"{page}: Chromium did not finish in {TIMEOUT_S:.0f} s") from None
    if out.returncode != 0:
        raise BrowserError(f"{page}: Chromium exited {out.returncode}: {out.stderr.strip()[-500:]}")
    return out.stdout


def check(report_dir: Path) -> Rendered:
    """Render reports/<run>/index.html and save screenshot.png beside it."""
    return render(report_dir / "index.html", screenshot=report_dir / "screenshot.png")
