"""End to end in a real headless Chromium (Debian's ``chromium`` driven by Playwright): a reviewer
signs in through the form, opens a flagged listing whose image matches a brand reference, sees
both images, presses c, and the decision is stored."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.api.conftest import models_dir  # noqa: F401 (the session's trained text model)
from tests.e2e.live import Live, live_server, seed, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Chromium is not installed (apt-get install -y chromium; .ci/run installs it)",
    ),
]


def claimed_ids(live: Live) -> list[str]:
    queue = live.call("GET", "/v1/review/queue", params={"status": "claimed"}).json()
    return [item["id"] for item in queue["items"]]


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
                # the caption the seeded listing added at the bottom is boxed on the image itself
                img = page.locator("img[data-role=listing-image]").bounding_box()
                boxes = [r.bounding_box() for r in page.locator("[data-role=region]").all()]
                assert img and boxes, "no differing region drawn over the listing image"
                for box in boxes:
                    assert box is not None
                    assert (
                        img["x"] - 2 <= box["x"]
                        and box["x"] + box["width"] <= img["x"] + img["width"] + 2
                    )
                    assert (
                        img["y"] - 2 <= box["y"]
                        and box["y"] + box["height"] <= img["y"] + img["height"] + 2
                    )
                assert any(b and b["y"] > img["y"] + 0.6 * img["height"] for b in boxes)

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


def test_a_reviewer_works_through_twenty_listings_with_the_keyboard(
    tmp_path: Path,
    models_dir: Path,  # noqa: F811
) -> None:
    from playwright.sync_api import sync_playwright

    with live_server(tmp_path, models_dir) as live:
        brand = live.call(
            "POST", "/v1/brands", json={"name": "Acme", "review_threshold": 0.0}
        ).json()
        for i in range(20):
            body = {"listing_id": f"K-{i:02d}", "seller_id": f"s{i}", "title": f"Acme bag {i}"}
            assert (
                live.call("POST", "/v1/listings/score", json=body).json()["brand_id"]
                == (brand["id"])
            )
        key = live.call("POST", "/v1/keys", json={"role": "reviewer"}).json()["key"]
        labels = {"c": "counterfeit", "g": "genuine", "u": "unsure"}
        pressed: dict[str, str] = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                page = browser.new_page()
                page.goto(f"{live.url}/review/sign-in")
                page.fill("#key", key)
                page.keyboard.press("Enter")
                page.wait_for_url("**/review/queue")
                # j/k move the queue cursor, Enter opens; on an item j/k go next/previous
                page.keyboard.press("j")
                page.keyboard.press("j")
                page.keyboard.press("k")
                page.keyboard.press("Enter")
                page.wait_for_url("**/review/items/*")
                first = page.url
                page.wait_for_selector("#claim-status.mine")
                page.keyboard.press("j")
                page.wait_for_url(lambda url: url != first)
                page.wait_for_selector("#claim-status.mine")
                # leaving an item without deciding gave its claim up: only the open one is held
                second_id = page.url.split("/review/items/")[1].split("?")[0]
                wait_until(
                    lambda: claimed_ids(live) == [second_id], what="the first item's release"
                )
                page.keyboard.press("k")
                page.wait_for_url(first)
                page.goto(f"{live.url}/review/queue")
                page.keyboard.press("n")  # work the queue: claim the riskiest and open it
                for i in range(20):
                    page.wait_for_selector("#claim-status.mine")
                    item_id = page.url.split("/review/items/")[1].split("?")[0]
                    assert item_id not in pressed
                    letter = "cgu"[i % 3]
                    pressed[item_id] = labels[letter]
                    page.keyboard.press(letter)
                    page.wait_for_url(lambda url, item_id=item_id: item_id not in url)
                assert page.url.endswith("/review/queue?empty=1")
            finally:
                browser.close()
        for item_id, label in pressed.items():
            assert live.call("GET", f"/v1/review/{item_id}").json()["label"] == label
        assert live.call("GET", "/v1/review/queue").json()["total"] == 0
