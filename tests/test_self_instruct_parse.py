"""Reply parsers: well-formed, sloppy and garbage replies; guardrails on planted problems."""

from collections import Counter

import pytest

from instructkit.llm import ParseRejected
from instructkit.self_instruct import guardrails as g
from instructkit.self_instruct.parse import EMPTY_TURN, ONE_SIDED, parse_qa, parse_single
from instructkit.self_instruct.recipes import parse_hook
from instructkit.self_instruct.text import parse_instance, parse_task_list

WELL = """Question:
What is the man doing?
===
Answer:
He is filming with a camera on a tripod.
===
Question:
Is it taken outdoors?
===
Answer:
Yes. He stands in an open field,
with buildings far behind him.
==="""

SLOPPY = """Sure! Here is a conversation about the photo.

**Question 1:**   What is the man doing?

**Answer 1:** He is filming with a camera on a tripod.

====

2. Question: Is it taken outdoors?
Answer:    Yes, in an open field.
---
Q: What is he wearing?
A: A dark coat and gloves.
"""


def test_well_formed():
    p = parse_qa(WELL)
    assert p.turns == [("What is the man doing?", "He is filming with a camera on a tripod."),
                       ("Is it taken outdoors?", "Yes. He stands in an open field,\nwith buildings far behind him.")]
    assert p.problems == []


def test_sloppy():
    p = parse_qa(SLOPPY)
    assert p.turns == [("What is the man doing?", "He is filming with a camera on a tripod."),
                       ("Is it taken outdoors?", "Yes, in an open field."),
                       ("What is he wearing?", "A dark coat and gloves.")]
    assert p.problems == []


def test_one_sided_and_empty():
    p = parse_qa("Question: What is it?\n===\nQuestion: Where?\n===\nAnswer: Here.")
    assert p.turns == [("Where?", "Here.")] and p.problems == [ONE_SIDED]
    assert parse_qa("Question: What?\n===\nAnswer: Yes.\n===\nQuestion: Why?").problems == [ONE_SIDED]
    assert parse_qa("Answer: orphan").problems == [ONE_SIDED]
    assert parse_qa("Question: What?\nAnswer:\n===").problems == [EMPTY_TURN]
    # "A" starting a sentence is not a label.
    assert parse_qa("Question: What?\nAnswer: A cat.\nA dog sits too.").turns == [("What?", "A cat.\nA dog sits too.")]


def test_garbage_is_rejected_and_truncation_is_marked():
    hook = parse_hook("conversation")
    with pytest.raises(ParseRejected) as exc:
        hook("I think the image is nice.", "stop")
    assert exc.value.reason == "no-qa-blocks"
    with pytest.raises(ParseRejected):
        hook("   ", "stop")
    assert hook(WELL, "length").truncated
    assert len(hook(WELL, "stop").parsed.turns) == 2
    detail = parse_hook("detail")
    assert detail("**Answer:** A man films a field.", "stop").parsed.turns == [("", "A man films a field.")]
    assert parse_single("Description: text") == "text"


def test_task_list_and_instances():
    assert parse_task_list(" Name a colour.\nTask 10: Sort a list of numbers.\n11. Write a haiku.", "stop") == \
        ["Name a colour.", "Sort a list of numbers.", "Write a haiku."]
    assert parse_task_list("Name a colour.\nTask 10: Sort a li", "length") == ["Name a colour."]
    with pytest.raises(ParseRejected):
        parse_task_list("", "stop")
    inst = parse_instance("Input: <noinput>\nOutput: Blue.", "stop")
    assert (inst.input, inst.output) == ("", "Blue.")
    inst = parse_instance("**Input:** 3, 1, 2\n**Output:** 1, 2, 3", "stop")
    assert (inst.input, inst.output) == ("3, 1, 2", "1, 2, 3")
    assert parse_instance("Input: x\nOutput: y", "length") is None
    with pytest.raises(ParseRejected):
        parse_instance("Just an answer with no labels", "stop")


COUNTS = Counter({"tower": 4, "rocket": 1, "person": 1})


@pytest.mark.parametrize("turns,reason", [
    ([("What is in the captions?", "A rocket.")], g.LEAK),
    ([("What stands there?", "According to the description, a rocket.")], g.LEAK),
    ([("Where is the rocket?", "At [0.480, 0.295, 0.529, 0.953] in the picture.")], g.LEAK),
    ([("Where is it?", "Its bounding box is in the middle.")], g.LEAK),
    ([("What are the coordinates?", "The middle.")], g.LEAK),
    ([("How many towers are there?", "There are three towers.")], g.COUNT),
    ([("How many towers can you see?", "I can see 5.")], None),            # no label next to the number
    ([("What is around?", "Six towers surround the rocket.")], g.COUNT),
    ([("Who is there?", "Two people watch.")], g.COUNT),
    ([("What is shown?", "I'm sorry, but I cannot see the image.")], g.REFUSAL),
    ([("What is shown?", "As an AI, I can't view pictures.")], g.REFUSAL),
    ([("What is shown?", "A rocket."), ("What is shown?", "A rocket again.")], g.REPEATED),
    ([("What is shown?", "word " * 500)], g.TOO_LONG),
    ([("why " * 100, "A rocket.")], g.QUESTION_TOO_LONG),
])
def test_guardrails_drop_planted_problems(turns, reason):
    assert g.check_turns(turns, counts=COUNTS) == reason


def test_guardrails_keep_clean_replies():
    clean = [("How many towers are there?", "There are four towers around the rocket."),
             ("What flanks the rocket?", "Two thin towers flank it, one on each side."),
             ("What time is it?", "It looks like dusk, the sky is deep blue."),
             ("Is there a person?", "No, one rocket stands alone on the pad.")]
    assert g.check_turns(clean, counts=COUNTS) is None
    assert g.check_turns([("Describe it.", "short")], limits=g.Limits(min_answer_words=5)) == g.TOO_SHORT
    assert g.check_turns([], [ONE_SIDED]) == ONE_SIDED
    assert g.check_turns([]) == g.NO_TURNS
    assert g.check_turns([("q?", "a.")], [ONE_SIDED]) == ONE_SIDED


def test_plural_forms():
    assert "people" in g.plural_forms("person")
    assert "dining tables" in g.plural_forms("dining table")
    assert "boxes" in g.plural_forms("box") and "cherries" in g.plural_forms("cherry")
