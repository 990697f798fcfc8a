"""verl's custom reward function over a reward server: one dict per response with score, members,
uncertainty and aspects; the prompt from extra_info."""

import pytest
from helpers import FullRM

from rewardgauge.integrations import verl


def test_compute_score_batch_and_single(serve):
    rm = FullRM()
    url = serve(rm)
    prompts = ["compute 2 + 3 .", [{"role": "user", "content": "hi"}]]
    responses = ["2 + 3 = 5 . answer 5 .", "hello there"]
    rows = verl.compute_score_batch(["lab", "lab"], responses, ["5", "x"], [{"prompt": p} for p in prompts], url=url)
    want = rm.score(prompts, responses)
    assert [r["score"] for r in rows] == want.reward.tolist()
    assert [r["member_1"] for r in rows] == want.members[1].tolist()
    assert [r["uncertainty"] for r in rows] == want.uncertainty.tolist()
    assert [r["aspect_length"] for r in rows] == want.aspects["length"].tolist()
    one = verl.compute_score("lab", responses[0], "5", {"question": prompts[0]}, url=url, prompt_key="question")
    assert one == rows[0]
    with pytest.raises(KeyError, match="extra_info has no 'prompt'"):
        verl.compute_score("lab", "r", "5", {"question": "q"}, url=url)
