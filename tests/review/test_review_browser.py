"""The review page end to end in headless Chromium: keyboard review, a reload mid-item and mid-queue that
loses nothing, two annotators sharing the queue, and what lands on disk."""

import json
import os
import shutil
import threading
import time

import pytest

from rewardgauge.data.steps import StepRecord, load_step_records
from rewardgauge.review.queue import ReviewQueue

pytest.importorskip("fastapi", reason="the review page needs the 'serve' extra (fastapi, uvicorn)")
pytest.importorskip("uvicorn", reason="the review page needs the 'serve' extra (fastapi, uvicorn)")
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) drives the browser")

CHROMIUM = os.environ.get("REWARDGAUGE_CHROMIUM") or next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

ITEMS = [
    StepRecord("compute 2 + 3 * 4 .", ["3 * 4 = 12 .", "2 + 12 = 15 .", "answer 15 ."], [True, True, 0.2],
               ["proposed"] * 3, id="slip"),
    StepRecord("compute 1 + 1 .", ["1 + 1 = 2 .", "answer 2 ."], [True, True], ["proposed"] * 2, id="easy"),
    StepRecord("compute 3 * 3 .", ["3 * 3 = 6 .", "answer 9 ."], [True, True], ["proposed"] * 2, id="lucky"),
]


@pytest.fixture
def server(tmp_path):
    from rewardgauge.review.app import make_server

    queue = ReviewQueue(ITEMS, tmp_path / "queue", per_item=2)
    srv = make_server(queue, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "the review server did not start"
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", queue, tmp_path / "queue"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser(tmp_path):
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def labels_shown(page):
    return page.eval_on_selector_all("li.step", "els => els.map(e => e.dataset.label)")


def settle(page):
    page.wait_for_function("document.body.dataset.pending === '0'")


def test_review_by_keyboard_with_reloads_and_two_annotators(server, browser, tmp_path):
    url, queue, folder = server
    ann = browser.new_context().new_page()
    ann.goto(f"{url}/?annotator=ann")
    ann.wait_for_selector("li.step")
    assert ann.text_content("#problem") == "compute 2 + 3 * 4 ."
    assert labels_shown(ann) == ["correct", "correct", "incorrect"]  # the soft proposal 0.2 reads as incorrect
    assert ann.eval_on_selector_all("li.step .proposal", "els => els.map(e => e.textContent)") == [
        "proposed ✓", "proposed ✓", "proposed 0.20"]
    ann.keyboard.press("Enter")  # step 1 accepted, on to step 2
    ann.keyboard.press("f")  # step 2 flipped: 2 + 12 = 15 is wrong
    settle(ann)
    assert labels_shown(ann) == ["correct", "incorrect", "incorrect"]

    ann.reload()  # mid-item: the flip and the position come back from the saved draft
    ann.wait_for_selector("li.step")
    assert ann.get_attribute("body", "data-item") == "0"
    assert labels_shown(ann) == ["correct", "incorrect", "incorrect"]
    assert ann.eval_on_selector_all("li.step", "els => els.map(e => e.className)")[1].split() == [
        "step", "current", "reviewed", "changed"]

    # a second annotator meanwhile gets another item, never the one ann holds
    bob = browser.new_context().new_page()
    bob.goto(f"{url}/?annotator=bob")
    bob.wait_for_selector("li.step")
    assert bob.get_attribute("body", "data-item") == "1"

    ann.keyboard.press("Enter")  # step 2 accepted as flipped
    ann.keyboard.press("Enter")  # step 3 accepted, last step: submit
    ann.wait_for_function("document.body.dataset.item === '2'")
    settle(ann)
    saved = [json.loads(line) for line in (folder / "annotations.jsonl").read_text().splitlines()]
    assert [(a["index"], a["annotator"], a["labels"]) for a in saved] == [(0, "ann", [True, False, False])]
    assert saved[0]["proposed"] == [True, True, False]

    ann.reload()  # mid-queue: the submitted item stays done, the next one is still ann's
    ann.wait_for_selector("li.step")
    assert ann.get_attribute("body", "data-item") == "2"
    assert "0 of 3 items complete" in ann.text_content("#progress")
    assert "you have labelled 1" in ann.text_content("#progress")

    for key in ("x", "Enter", "Enter"):  # ann: step 1 (3 * 3 = 6) is wrong; accept the answer; submit
        ann.keyboard.press(key)
    ann.wait_for_function("document.body.dataset.item !== '2'")
    # ann has item 1 left (bob holds it) -> nothing for ann now
    assert ann.get_attribute("body", "data-item") == "none" and ann.is_visible("#done")

    for key in ("Enter", "Enter"):  # bob accepts item 1 as proposed, then gets item 0 (needs 2 annotators)
        bob.keyboard.press(key)
    bob.wait_for_function("document.body.dataset.item === '0'")
    for key in ("Enter", "Enter", "c", "Enter"):  # bob keeps step 2 as proposed (correct), marks 3 correct
        bob.keyboard.press(key)
    bob.wait_for_function("document.body.dataset.item !== '0'")
    settle(bob)

    stats = json.loads(ann.evaluate("fetch('/api/stats').then(r => r.text())"))
    assert stats["annotations"] == 4 and stats["annotators"] == {"ann": 2, "bob": 2}
    # item 0 by both: steps agree, disagree, disagree -> 1 of 3 step pairs agree
    assert stats["items_with_several_annotators"] == 1 and stats["step_agreement"] == pytest.approx(1 / 3)
    # changed proposals: ann flipped item0/step2 and item2/step1; bob changed item0/step3 (0.2 -> correct)
    assert stats["proposals_changed"] == 3 and stats["proposal_steps"] == 10
    verified = {r.id: r for r in load_step_records(folder / "verified.jsonl")}
    assert verified["lucky"].labels == [False, True] and verified["lucky"].sources == ["verified"] * 2
    # item 0: ann [T, F, F] and bob [T, T, T]: ties keep the proposal [T, T, F(0.2)]
    assert verified["slip"].labels == [True, True, False] and verified["slip"].meta["annotators"] == 2
