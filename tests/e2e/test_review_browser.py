"""End to end in a real headless Chromium (Debian's ``chromium`` driven by Playwright): a reviewer
signs in through the form, opens a flagged listing whose image matches a brand reference, sees
both images, presses c, and the decision is stored."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.api.conftest import models_dir  # noqa: F401 (the session's trained text model)
from tests.e2e.live import live_server, seed, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Chromium is not installed (apt-get install -y chromium; .ci/run installs it)",
    ),
]

IMAGE_OK = (
    "(sel) => { const i = document.querySelector(sel); "
    "return !!i && i.complete && i.naturalWidth > 0; }"
)


def test_reviewer_signs_in_sees_both_images_presses_c_and_the_decision_is_stored(
    tmp_path: Path,
    models_dir: Path,  # noqa: F811
) -> None:
    from playwright.sync_api import sync_playwright

    with live_server(tmp_path, models_dir) as live:
        seeded = seed(live)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                problems: list[str] = []
                page.on(
                    "console",
                    lambda m: (
                        problems.append(m.text)
                        if m.type == "error" or "Content Security Policy" in m.text
                        else None
                    ),
                )
                page.on("pageerror", lambda e: problems.append(str(e)))

                page.goto(f"{live.url}/review/queue")
                assert "/review/sign-in" in page.url  # no session yet
                page.fill("#key", seeded.reviewer_key)
                page.click("button[type=submit]")
                page.wait_for_url("**/review/queue")
                cookie = next(c for c in page.context.cookies() if c["name"] == "fg_review_session")
                assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

                page.click(f"text={seeded.listing_id}")
                page.wait_for_url(f"**/review/items/{seeded.item_id}")
                page.wait_for_selector("#claim-status.mine")  # claimed when the page opened
                for sel in ("img[data-role=listing-image]", "img[data-role=reference-image]"):
                    wait_until(lambda sel=sel: bool(page.evaluate(IMAGE_OK, sel)), what=sel)
                    assert page.is_visible(sel)
                assert page.locator("mark.span-brand").count() >= 1
                assert page.locator("mark.span-cue").count() >= 1

                page.keyboard.press("c")
                page.wait_for_url("**/review/queue?empty=1")
                assert problems == []
            finally:
                browser.close()

        detail = live.call("GET", f"/v1/review/{seeded.item_id}").json()
        assert detail["label"] == "counterfeit" and detail["status"] == "decided"
        (decision,) = detail["decisions"]
        keys = live.call("GET", "/v1/keys").json()["keys"]
        reviewer = next(k for k in keys if k["prefix"] in seeded.reviewer_key)
        assert decision["reviewer_key_id"] == reviewer["id"]
        assert decision["verdict_id"] == detail["verdict_id"]
