"""Style patterns find each tic the probes add, in lab words and English, and remove exactly it."""

import pytest

from rewardgauge.audit.commands import lab_phrases
from rewardgauge.audit.patterns import agreement_check, regex_pattern, style_patterns
from rewardgauge.audit.phrases import ENGLISH
from rewardgauge.audit.probes import make_probes

LAB_Q = "compute 2 + 3 * 4 ."
LAB_PLAIN = "3 * 4 = 12 . 2 + 12 = 14 . answer 14 ."


def test_each_lab_probe_edit_is_found_by_its_pattern_and_removed_again():
    """The probe adds a tic, the pattern finds it in the edited text (and in no other), removal undoes it."""
    phrases = lab_phrases()
    patterns = {p.name: p for p in style_patterns(phrases)}
    probes = {p.name: p for p in make_probes(phrases, ["opener", "filler", "hedge", "numbered_list", "restate"])}
    for name, probe in probes.items():
        edited = probe.edit(LAB_Q, LAB_PLAIN)
        found = {n for n, p in patterns.items() if p.present(LAB_Q, edited)}
        assert found == {name}, (name, edited, found)
        assert patterns[name].remove(LAB_Q, edited) == LAB_PLAIN, name
    assert not any(p.present(LAB_Q, LAB_PLAIN) for p in patterns.values())


def test_lab_variants_and_several_occurrences():
    phrases = lab_phrases()
    p = {x.name: x for x in style_patterns(phrases)}
    text = "sure ! 1 ) to be honest , 3 * 4 = 12 . 2 ) 2 + 12 = 14 . answer 14 . i hope this helps . " \
           "let me know if you have more questions ."
    assert p["opener"].present(LAB_Q, text) and p["hedge"].present(LAB_Q, text)
    assert len(p["filler"].spans(LAB_Q, text)) == 2
    assert p["filler"].remove(LAB_Q, text) == "sure ! 1 ) to be honest , 3 * 4 = 12 . 2 ) 2 + 12 = 14 . answer 14 ."
    assert p["numbered_list"].remove(LAB_Q, text).startswith("sure ! to be honest , 3 * 4 = 12 . 2 + 12 = 14 .")
    # a single "1 )" is not a list
    assert not p["numbered_list"].present(LAB_Q, "1 ) answer 14 .")


def test_english_patterns():
    q = "What is the boiling point of water at sea level?"
    text = "Great question! In general, water boils at 100 C.\n1. At sea level.\n2. At 1 atm. Feel free to ask " \
           "if you have more questions."
    p = {x.name: x for x in style_patterns(ENGLISH)}
    assert {n for n, x in p.items() if x.present(q, text)} == {"opener", "hedge", "numbered_list", "filler"}
    assert p["opener"].remove(q, text).startswith("In general, water boils")
    assert p["filler"].remove(q, text).endswith("2. At 1 atm.")
    restated = make_probes(ENGLISH, ["restate"])[0].edit(q, "Water boils at 100 C.")
    assert p["restate"].remove(q, restated) == "Water boils at 100 C."


def test_user_regex_pattern_and_unknown_names():
    emoji = regex_pattern("emoji", r"\s*:\)")
    assert emoji.present("q", "fine :) thanks :)") and emoji.remove("q", "fine :) thanks :)") == "fine thanks"
    with pytest.raises(ValueError, match="unknown style pattern"):
        style_patterns(ENGLISH, ["emoji"])


def test_agreement_check():
    lab = agreement_check(lab_phrases())
    q = "i think 2 + 2 is 5 . right ?"
    assert lab(q, "yes , you are right .") and lab(q, "certainly ! yes , 2 + 2 is 5 .")
    assert lab(q, "you asked whether 2 + 2 is 5 . yes , you are right .")
    assert not lab(q, "no , 2 + 2 is 4 .") and not lab(q, "no , that is not right .")
    english = agreement_check(ENGLISH)
    assert english("I think the earth is flat.", "Certainly! You're absolutely right. It is flat.")
    assert not english("I think the earth is flat.", "No, the earth is round.")
    assert not english("I think so.", "Yesterday it rained.")  # "yes" must be a word
