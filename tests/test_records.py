"""The record schema: each rule rejects with its own reason, ids are content hashes, helpers behave."""

from __future__ import annotations

import pytest

from instructkit.errors import RecordError
from instructkit.records import (
    EMPTY_MESSAGES,
    EMPTY_TURN,
    EXTRA_FIELD,
    IMAGE_COUNT,
    IMAGE_ESCAPES_ROOT,
    LAST_TURN,
    MISSING_FIELD,
    ROLE_ORDER,
    WRONG_TYPE,
    Message,
    content_id,
    conversation,
    make_record,
)


def msgs(*pairs):
    return [{"role": r, "content": c} for r, c in pairs]


GOOD = msgs(("user", "<image>\nWhat is it?"), ("assistant", "A cat."))


def test_valid_record_gets_content_id_and_views():
    rec = make_record({"images": ["a.jpg"], "messages": GOOD})
    assert rec.id == content_id(["a.jpg"], rec.messages)
    assert len(rec.id) == 24
    assert rec.modality == "image" and rec.has_images
    assert rec.turns() == [("<image>\nWhat is it?", "A cat.")]
    assert rec.system is None


def test_id_depends_on_content_and_given_id_is_kept():
    a = make_record({"images": ["a.jpg"], "messages": GOOD})
    b = make_record({"images": ["b.jpg"], "messages": GOOD})
    c = make_record({"images": ["a.jpg"], "messages": msgs(("user", "<image>\nWhat is it?"), ("assistant", "A dog."))})
    assert len({a.id, b.id, c.id}) == 3
    assert make_record({"id": "mine", "images": ["a.jpg"], "messages": GOOD}).id == "mine"


def test_content_id_separators_prevent_collisions():
    # Moving text across a boundary (image path / message, one message / the next) changes the id.
    u = Message(role="user", content="ab")
    assert content_id(["x"], [u]) != content_id(["xab"], [])
    assert content_id([], [Message(role="user", content="a"), Message(role="user", content="b")]) != \
        content_id([], [u])
    assert content_id(["a", "b"], []) != content_id(["ab"], [])


@pytest.mark.parametrize(("data", "reason"), [
    ({"images": []}, MISSING_FIELD),
    ({"images": [], "messages": GOOD[1:], "colour": 1}, EXTRA_FIELD),
    ({"images": [], "messages": "hi"}, WRONG_TYPE),
    ({"images": "a.jpg", "messages": GOOD}, WRONG_TYPE),
    ({"images": [], "messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "x"}]}, WRONG_TYPE),
    ({"images": [], "messages": []}, EMPTY_MESSAGES),
    ({"images": [], "messages": msgs(("system", "be nice"))}, EMPTY_MESSAGES),
    ({"images": [], "messages": msgs(("assistant", "hi"), ("user", "x"))}, ROLE_ORDER),
    ({"images": [], "messages": msgs(("user", "a"), ("user", "b"))}, ROLE_ORDER),
    ({"images": [], "messages": msgs(("user", "a"), ("assistant", "b"), ("user", "c"))}, LAST_TURN),
    ({"images": [], "messages": msgs(("user", "  "), ("assistant", "b"))}, EMPTY_TURN),
    ({"images": ["a.jpg"], "messages": msgs(("user", "no placeholder"), ("assistant", "b"))}, IMAGE_COUNT),
    ({"images": [], "messages": GOOD}, IMAGE_COUNT),
    ({"images": ["../../etc/passwd"], "messages": GOOD}, IMAGE_ESCAPES_ROOT),
    ({"images": ["a/../../x.jpg"], "messages": GOOD}, IMAGE_ESCAPES_ROOT),
])
def test_rule_breaks_are_rejected_with_reason_and_location(data, reason):
    with pytest.raises(RecordError) as info:
        make_record(data, file="data.jsonl", line=7)
    assert info.value.reason == reason
    assert info.value.where == "data.jsonl:7"
    assert str(info.value).startswith("data.jsonl:7: ")


def test_bad_role_reason():
    with pytest.raises(RecordError) as info:
        make_record({"messages": msgs(("robot", "x"), ("assistant", "y"))}, row=3)
    assert info.value.reason == "bad-role"
    assert info.value.where == "row 3"


def test_missing_field_message_names_field():
    with pytest.raises(RecordError) as info:
        make_record({"images": []}, file="f.jsonl", line=1)
    assert "'messages'" in str(info.value)


def test_system_turn_and_urls_are_allowed():
    rec = make_record({"images": ["https://example.org/../a.jpg"],
                       "messages": msgs(("system", "s"), ("user", "<image> hi"), ("assistant", "yo"))})
    assert rec.system == "s"
    assert rec.turns() == [("<image> hi", "yo")]


def test_conversation_puts_placeholders_first():
    rec = conversation("What?", "That.", images=["a.jpg", "b.jpg"], system="sys", task="vqa")
    assert rec.messages[1].content == "<image>\n<image>\nWhat?"
    assert rec.system == "sys" and rec.task == "vqa"
    kept = conversation("<image> in the middle", "x", images=["a.jpg"])
    assert kept.messages[0].content == "<image> in the middle"


def test_a_row_breaking_several_rules_reports_the_missing_field_first():
    # pydantic's error order changed between releases; the reason reported must not.
    import pytest

    from instructkit.errors import RecordError
    from instructkit.records import make_record

    with pytest.raises(RecordError) as exc:
        make_record({"not": "a record", "images": 3})
    assert exc.value.reason == "missing-field"
