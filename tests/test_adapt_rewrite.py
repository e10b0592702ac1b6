"""--rewrite through the real openai client against the loopback OpenAI-compatible server."""

from __future__ import annotations

import json

import pytest
from adapt_helpers import vqav2_pair

from instructkit.adapt import run_adapt
from instructkit.adapt.rewrite import answer_kept, parse_reply
from instructkit.llm import LLMConfig, ParseRejected
from instructkit.records import Record
from instructkit.testing.server import LoopbackServer, last_user_text

GOOD = {"instruction": "Please look at the picture and tell me which animal you see.",
        "response": "The animal in the picture is a cat."}
DROPS = {"instruction": "How many birds are sitting on the wire?", "response": "Several birds are on the wire."}
CONTRADICTS = {"instruction": "Is the door open?", "response": "No, the door is closed."}


def reply(body: dict) -> str:
    text = last_user_text(body)
    if "What animal is this?" in text:
        return json.dumps(GOOD)
    if "How many birds?" in text:
        return json.dumps(DROPS)
    if "Is the door open?" in text:
        return json.dumps(CONTRADICTS)
    return "Sure! Here you go: not json at all"


def _config(srv: LoopbackServer, tmp_path) -> LLMConfig:
    return LLMConfig(model="loopback", base_urls=[srv.base_url], api_key="sk-test", cache_mode="off",
                     progress=False, max_retries=0, concurrency=4, timeout=10)


def test_rewrite_keeps_good_replies_and_falls_back_on_dropped_answers(tmp_path):
    qs = [(1, 1, "What animal is this?"), (2, 1, "How many birds?"), (3, 2, "Is the door open?"),
          (4, 2, "What color is the door?")]
    q, a, root = vqav2_pair(tmp_path, qs, {1: ["cat"] * 10, 2: ["3"] * 10, 3: ["yes"] * 10, 4: ["red"] * 10})
    out = tmp_path / "rw.jsonl"
    with LoopbackServer(script=reply) as srv:
        funnel = run_adapt(q, out, annotations=a, image_root=root, rewrite=True, llm_config=_config(srv, tmp_path),
                           seed=7, progress=False, log=lambda m: None)
        logged = [r["json"] for r in srv.requests]
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["meta"]["question_id"] for r in rows] == [1, 2, 3, 4]          # input order kept
    assert funnel["rewrite"] == {"kept": 1, "fallback": {"answer-changed": 1, "answer-dropped": 1,
                                                         "llm-parse:not-json": 1}}
    # an unparseable reply is asked again (2 retries), a reply that loses the answer is not
    asked = [last_user_text(b) for b in logged]
    assert sum("What color is the door?" in t for t in asked) == 3
    assert sum("How many birds?" in t for t in asked) == 1
    kept = rows[0]
    assert kept["messages"][0]["content"] == "<image>\n" + GOOD["instruction"]
    assert kept["messages"][1]["content"] == GOOD["response"]
    assert kept["meta"]["rewrite"]["kept"] is True
    assert json.loads(kept["meta"]["rewrite"]["raw"]) == GOOD                # raw LLM output kept
    assert kept["meta"]["rewrite"]["template_answer"] == "cat"
    dropped = rows[1]
    assert dropped["messages"][1]["content"] == "3"                          # the template row
    assert dropped["meta"]["rewrite"]["kept"] is False
    assert dropped["meta"]["rewrite"]["reason"] == "answer-dropped"
    assert json.loads(dropped["meta"]["rewrite"]["raw"]) == DROPS
    assert rows[2]["meta"]["rewrite"]["reason"] == "answer-changed"
    assert rows[3]["meta"]["rewrite"]["kept"] is False                       # unparseable even after retries
    for r in rows:
        Record.model_validate(r)
    # the prompt: system, 4 few-shot pairs, then the pair to rewrite (question and short answer)
    first = next(b for b in logged if "What animal is this?" in b["messages"][-1]["content"])
    assert first["messages"][0]["role"] == "system" and len(first["messages"]) == 1 + 2 * 4 + 1
    assert first["messages"][-1]["content"] == "Question: What animal is this?\nShort answer: cat"
    assert first["seed"] == 7


@pytest.mark.parametrize("answer, response, expected", [
    ("2", "There are two dogs.", None),
    ("2", "There are 2 dogs and 1 cat.", "answer-changed"),
    ("2", "There are some dogs.", "answer-dropped"),
    ("yes", "Yes, it is raining.", None),
    ("yes", "No.", "answer-changed"),
    ("yes", "It might be.", "answer-dropped"),
    ("no", "No, although yes-men would disagree.", "answer-changed"),
    ("tripod", "The camera stands on a tripod.", None),
    ("red car", "It is a red sports car.", "answer-dropped"),
    ("red car", "It is a red car.", None),
])
def test_answer_check(answer, response, expected):
    assert answer_kept(answer, "question", response) == expected


def test_answer_check_multiple_choice():
    options = [("A", "apple"), ("B", "pear")]
    inst = "Which fruit is it: (A) apple or (B) pear?"
    assert answer_kept("B", inst, "It is a pear, so the answer is (B).", letter="B", options=options) is None
    assert answer_kept("B", inst, "A pear.", letter="B", options=options) == "answer-dropped"
    assert answer_kept("B", inst, "(A) or (B)? I pick (B).", letter="B", options=options) == "answer-changed"
    assert answer_kept("B", "Which fruit is it?", "(B).", letter="B", options=options) == "options-dropped"


def test_parse_reply():
    assert parse_reply('```json\n{"instruction": "<image> Q?", "response": "R."}\n```', "stop") == {
        "instruction": "Q?", "response": "R."}
    for bad in ("nope", '{"instruction": "Q?"}', "[1, 2]"):
        with pytest.raises(ParseRejected):
            parse_reply(bad, "stop")
    with pytest.raises(ParseRejected, match="truncated"):
        parse_reply('{"instruction": "Q?", "response": "R."}', "length")


def test_shipped_few_shot_examples_pass_the_answer_check():
    from instructkit.adapt.rewrite import default_examples, load_examples

    examples = load_examples(default_examples())
    assert len(examples) >= 4 and any(ex["options"] for ex in examples)
    for ex in examples:
        options = [tuple(o) for o in ex["options"]]
        letter = ex["answer"] if options else None      # multiple choice: the short answer is the letter
        assert answer_kept(ex["answer"], ex["instruction"], ex["response"], letter=letter,
                           options=options or None) is None, ex
