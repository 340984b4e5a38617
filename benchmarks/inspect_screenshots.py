"""Screenshots of an `lstmkit inspect` page in headless chromium, for docs/inspect.md.

    python benchmarks/inspect_screenshots.py PAGE.html OUT.png [--view 'q=c&layer=1&cell=17&feature=in_comment']
        [--part text|heatmap|table] [--size 1100x760]

Needs Debian's chromium and chromium-driver (as tests/test_inspect_browser.py) and selenium.
The PNG is reduced to a 128-colour palette so that it stays small in the repository.
"""
from __future__ import annotations

import argparse
import io
import shutil
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page")
    ap.add_argument("out")
    ap.add_argument("--view", default="", help="the page's #hash: q=, layer=, cell=, feature=, heatmap=")
    ap.add_argument("--part", default="text", choices=("text", "heatmap", "table"),
                    help="scroll to this part of the page before the screenshot")
    ap.add_argument("--size", default="1100x760", help="window size WxH")
    ap.add_argument("--colours", type=int, default=128, help="palette size of the saved PNG")
    args = ap.parse_args()

    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={args.size.replace('x', ',')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(Path(args.page).resolve().as_uri() + ("#" + args.view if args.view else ""))
        assert driver.execute_script("return document.body.dataset.ready") == "1", "the page did not render"
        if args.part != "text":  # the text view is the top of the page
            target = {"heatmap": "hmwrap", "table": "matches"}[args.part]
            driver.execute_script(f"document.getElementById('{target}').scrollIntoView(true); window.scrollBy(0, -60);")
        png = driver.get_screenshot_as_png()
    finally:
        driver.quit()
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(args.colours)
    image.save(args.out, optimize=True)
    print(f"{args.out}: {Path(args.out).stat().st_size / 1e3:.0f} KB")


if __name__ == "__main__":
    main()
