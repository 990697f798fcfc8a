"""Surface style in a policy's samples, counted with the lab language's phrase lists."""

from rewardgauge.lab.style import rates_by_step, style_counts, style_rates


def test_style_counts_each_feature_by_sentence():
    text = ("certainly ! 1 ) you asked to compute 2 + 3 . 2 ) in general , 2 + 3 = 5 . answer 5 . "
            "i hope this helps . let me know if you have more questions .")
    assert style_counts(text) == {"opener": 1, "filler": 2, "hedge": 1, "restate": 1, "numbered_list": 2}
    # a phrase inside a sentence is not the feature; text outside the language is read, not rejected
    assert style_counts("i think certainly ! is fine . ### ??") == dict.fromkeys(
        ("opener", "filler", "hedge", "restate", "numbered_list"), 0)


def test_rates_are_shares_of_responses_per_step():
    plain, padded, opened = "answer 5 .", "answer 5 . i hope this helps . i hope this helps .", "sure ! answer 5 ."
    rates = style_rates([plain, padded, opened, plain])
    assert rates["filler_rate"] == 0.25 and rates["opener_rate"] == 0.25 and rates["filler_per_response"] == 0.5
    rows = [{"step": 2, "response": padded}, {"step": 1, "response": plain}, {"step": 2, "response": plain},
            {"step": 1, "response": opened}, {"step": 3}]  # a row without a response is skipped
    by_step = rates_by_step(rows)
    assert [(r["step"], r["samples"], r["filler_rate"], r["opener_rate"]) for r in by_step] == [
        (1, 2, 0.0, 0.5), (2, 2, 0.5, 0.0)]
