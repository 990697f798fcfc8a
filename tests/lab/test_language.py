"""The lab language's one home (language.py): templates written and read back, arithmetic, and the lab data
pinned byte for byte, so that a refactor of the lab cannot change the data of a seed unnoticed."""

import hashlib
import sys

import pytest

from rewardgauge.lab import language as L
from rewardgauge.lab.dataset import LabDataConfig, generate
from rewardgauge.lab.world import best_response


def test_every_template_is_read_back():
    for template in L.SAFETY_TEMPLATES:
        info = L.parse_prompt(template.format("make a bomb"))
        assert (info.family, info.request, info.safety_class) == ("safety", "make a bomb", "harmful")
    for attribute, template in L.OPEN_TEMPLATES.items():
        info = L.parse_prompt(template.format("peru"))
        assert (info.family, info.entity, info.attribute) == ("open", "peru", attribute)
    info = L.parse_prompt(L.ARITHMETIC_TEMPLATE.format("2 + 3 * 4"))
    assert info.expr == ["2", "+", "3", "*", "4"]
    info = L.parse_prompt(L.PREMISE_TEMPLATE.format("people in peru speak french"))
    assert (info.subject, info.claimed_value, info.true_value, info.claim_true) == (
        "language of peru", "french", "quechua", False)


@pytest.mark.parametrize("prompt", [
    "tell me about france ?",        # each form has one end mark
    "how do i fly a kite ?",         # not a known request
    "compute 2 + 3 + 4 + 1 .",       # at most two operations
    "what is the capital of mars ?",
    "write me a poem",
])
def test_text_outside_the_templates_is_not_a_prompt(prompt):
    with pytest.raises(L.LanguageError, match="not a lab prompt"):
        L.parse_prompt(prompt)


def test_arithmetic_and_sentences():
    assert L.arithmetic_steps(["7", "+", "5", "*", "3"]) == [(5, "*", 3, 15), (7, "+", 15, 22)]
    assert L.arithmetic_steps(["2", "*", "3", "+", "1"], slip=(0, 7)) == [(2, "*", 3, 7), (7, "+", 1, 8)]
    assert L.split_sentences("certainly ! 2 + 3 = 5 . answer 5".split()) == [
        ["certainly", "!"], ["2", "+", "3", "=", "5", "."], ["answer", "5"]]


def test_restatement_per_family():
    assert L.restatement(L.parse_prompt("compute 2 + 3 .")) == "you asked to compute 2 + 3 ."
    assert L.restatement(L.parse_prompt("i think 2 + 3 is 6 . right ?")) == "you asked whether 2 + 3 is 6 ."
    assert L.restatement(L.parse_prompt("how do i make tea ?")) == "you asked how to make tea ."
    assert L.restatement(L.parse_prompt("where is peru ?")) == "you asked about peru ."
    assert best_response("compute 2 + 3 .") == "2 + 3 = 5 . answer 5 ."


# sha256 of each file of the lab data below, recorded before language.py became the language's one home
# (issue 8). Python keeps random()'s sequence across versions but not every method built on it, so the
# digests are per Python version.
LAB_DIGESTS = {
    (3, 11): {
        "eval_prompts.jsonl": "60667e61e6274f8e191042fb64bf8c02b181ffc69fd244616ef8d5c5b208cf09",
        "heldout.jsonl": "1ab640bcc977b290830df6bdc2870cc633960998d4787cc59602b8d0479673d4",
        "rl_prompts.jsonl": "43e379a35b422863150f0955a7256d552ca0ee4de123d6b6e8a8a2f47de6eb73",
        "sft.jsonl": "0b3aaa188d6bfe2896ee3a8fb5d8fa665f2d29fe8ffd0fc9a6f41e061c0e8ba0",
        "train.jsonl": "df1fd9fe926e76308d734693e2ef397da63ac8fd18bcf935216014fde6bfea2f",
        # re-recorded since: its count of pairs without a difficulty is "unlabelled", not "tie" (lab data's
        # --labels and --label-flip appear in it only when set); every data file above is unchanged
        "world.json": "ff4c43b71f4162c1f87e74d1a10f888c57c8ece41bd6a7e92e02437fd5b92f4e",
    },
}


@pytest.mark.skipif(sys.version_info[:2] not in LAB_DIGESTS, reason="lab digests recorded for CPython 3.11 only")
def test_lab_data_is_pinned_byte_for_byte(tmp_path):
    out = tmp_path / "lab"
    generate(LabDataConfig(out=str(out), seed=0, pairs=300, heldout_pairs=100, demos=100, rl_prompts=50),
             progress=False)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}
    assert digests == LAB_DIGESTS[sys.version_info[:2]]
