#!/usr/bin/env python
"""Open every page of the built book in headless Chromium; check math and images; screenshot.

For each page of ``_toc.yml`` (the intro, every chapter, the API reference and the references) it
asserts that every math element was typeset by MathJax and that every image loaded (natural
width > 0), and saves a screenshot to ``<build>/screenshots/<page>.png`` (``api-theory.png`` for
``api/theory``). The intro and the chapters must show math; the appendix pages need not.
Debian's ``chromium`` is installed (apt-get, as root) when missing.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rnn_mft.book import pages as book_pages

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--allow-file-access-from-files",
         "--hide-scrollbars"]

PROBE = """
<script>
window.addEventListener('load', function () {
  function report() {
    var maths = Array.from(document.querySelectorAll('.math'));
    var typeset = maths.filter(function (m) { return m.querySelector('mjx-container'); }).length;
    var imgs = Array.from(document.images);
    var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                     .map(function (i) { return i.getAttribute('src'); });
    var pre = document.createElement('pre');
    pre.id = 'rnn-mft-browser-check';
    pre.textContent = JSON.stringify({math: maths.length, typeset: typeset, images: imgs.length,
                                      broken: broken, mathjax: !!(window.MathJax && MathJax.version)});
    document.body.appendChild(pre);
  }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(report, report);
  } else { setTimeout(report, 5000); }
});
</script>
"""


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.geteuid() != 0:
        sys.exit("browser check: chromium is not installed (apt-get install chromium, as root)")
    print("browser check: installing Debian's chromium ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, stdout=subprocess.DEVNULL)
    return shutil.which("chromium") or sys.exit("browser check: chromium still missing after apt-get")


def run_chromium(chrome: str, profile_dir: str, *args: str, timeout: int = 120) -> str:
    cmd = [chrome, *FLAGS, f"--user-data-dir={profile_dir}", "--virtual-time-budget=30000", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return proc.stdout


def check_page(chrome: str, page: Path, shot: Path) -> dict:
    probe = page.with_name(f".browser-check-{page.name}")
    text = page.read_text()
    probe.write_text(text.replace("</body>", PROBE + "</body>", 1))
    try:
        with tempfile.TemporaryDirectory() as prof:
            dom = run_chromium(chrome, prof, "--dump-dom", probe.as_uri())
        m = re.search(r'<pre id="rnn-mft-browser-check"[^>]*>(.*?)</pre>', dom, re.S)
        result = json.loads(html.unescape(m.group(1))) if m else None
        with tempfile.TemporaryDirectory() as prof:
            run_chromium(chrome, prof, f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri())
    finally:
        probe.unlink(missing_ok=True)
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="_build", type=Path)
    a = ap.parse_args(argv)
    site = a.build / "book" / "_build" / "html"
    rel = book_pages()
    pages = [site / f"{p}.html" for p in rel]
    needs_math = {site / f"{p}.html" for p in rel if not p.startswith("api/") and p != "references"}
    chrome = find_chromium()
    shots = a.build / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    failed = 0
    for page in pages:
        if not page.exists():
            print(f"browser check: FAIL {page}: page missing")
            failed += 1
            continue
        shot = shots / (("api-" if page.parent.name == "api" else "") + f"{page.stem}.png")
        r = check_page(chrome, page.resolve(), shot.resolve())
        problems = []
        if r is None:
            problems.append("the page did not finish loading")
        else:
            if not r["mathjax"] and (r["math"] or page in needs_math):
                problems.append("MathJax did not load")
            if r["math"] == 0 and page in needs_math:
                problems.append("no math on the page")
            if r["typeset"] < r["math"]:
                problems.append(f"{r['math'] - r['typeset']} of {r['math']} math elements not typeset")
            if r["broken"]:
                problems.append(f"images not loaded: {r['broken']}")
        if not shot.exists() or shot.stat().st_size == 0:
            problems.append("no screenshot")
        if problems:
            failed += 1
            print(f"browser check: FAIL {page.relative_to(site)}: {'; '.join(problems)}")
        else:
            print(f"browser check: ok   {page.relative_to(site)}: {r['typeset']} math elements typeset, "
                  f"{r['images']} images loaded, screenshot {shot}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
