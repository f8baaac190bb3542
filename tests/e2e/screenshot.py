"""Screenshot the review pages in headless Chromium for the docs.

    python -m tests.e2e.screenshot [--out docs/review-listing.png] [--all DIR]

Starts a real server on a temp SQLite database (a small text model is trained into a temp
directory, ~10 s), seeds a brand, a reference photo and flagged listings, signs in through the
form and captures the listing page (``--all`` also captures the queue and the stats pages).
Needs Debian's ``chromium`` (/usr/bin/chromium) and the ``playwright`` Python package.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tests.e2e.live import Live, Seeded, live_server, seed, wait_until

CHROMIUM = "/usr/bin/chromium"
IMAGES_LOADED = "() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"


def sign_in(page: Page, live: Live, key: str) -> None:
    page.goto(f"{live.url}/review/sign-in")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url("**/review/queue")


def capture(out: Path, all_dir: Path | None) -> None:
    from training.train_text import ensure_default_model

    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        ensure_default_model(models, n=3000, log=lambda *_: None, progress=False)
        with live_server(Path(tmp), models) as live:
            seeded: Seeded = seed(live, extra=True)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = browser.new_page(viewport={"width": 1440, "height": 940})
                sign_in(page, live, seeded.reviewer_key)
                if all_dir is not None:
                    all_dir.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(all_dir / "queue.png"), full_page=True)
                page.goto(f"{live.url}/review/items/{seeded.item_id}")
                page.wait_for_selector("#claim-status.mine")
                wait_until(lambda: bool(page.evaluate(IMAGES_LOADED)), what="the images to load")
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=True)
                if all_dir is not None:
                    page.keyboard.press("c")
                    page.wait_for_load_state()
                    page.goto(f"{live.url}/review/stats")
                    page.screenshot(path=str(all_dir / "stats.png"), full_page=True)
                browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/review-listing.png"))
    parser.add_argument("--all", type=Path, default=None, help="also queue.png and stats.png")
    args = parser.parse_args()
    capture(args.out, args.all)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
