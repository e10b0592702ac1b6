"""VQA answer normalisation and the answer policies, on hand-computed annotator lists."""

from __future__ import annotations

import pytest

from instructkit.adapt.answers import choose, normalize


@pytest.mark.parametrize("raw, expected", [
    ("Two", "2"),
    ("a tripod", "tripod"),
    ("The Red Car.", "red car"),
    ("Yes!", "yes"),
    ("dont", "don't"),
    ("isnt it", "isn't it"),
    ("1,000", "1000"),           # a comma between digits: punctuation is removed, not spaced
    ("3.5", "3.5"),              # a period between digits stays
    ("black/white", "black white"),
    ("  none ", "0"),
    ("an apple", "apple"),
    ("ten", "10"),
    ("left-hand side", "left hand side"),
    ("hot - dog", "hot dog"),    # punctuation with a space next to it is dropped, not turned into a space
])
def test_normalize_matches_the_official_rules(raw, expected):
    assert normalize(raw) == expected


def test_majority_pools_spellings_and_keeps_the_most_frequent_raw_one():
    c = choose(["two", "2", "2", "two", "Two", "yes", "3"])
    assert c.counts == {"2": 5, "yes": 1, "3": 1}
    # raw spellings in the 2-group: two x2, 2 x2, Two x1 -> tie between "two" and "2"; "2" equals the
    # normalised form, so it wins.
    assert c.texts == ["2"]


def test_majority_tie_goes_to_the_alphabetically_first_normalised_answer_whatever_the_order():
    answers = ["green"] * 5 + ["yellow"] * 5
    assert choose(answers).texts == ["green"]
    assert choose(list(reversed(answers))).texts == ["green"]
    assert choose(["yellow", "green", "yellow", "green"]).texts == ["green"]


def test_majority_tie_between_groups_of_pooled_spellings():
    # 2-group: "two" x2 + "2" x1 = 3; 3-group: "3" x3 = 3 -> tie; "2" < "3"; inside the group "two" wins 2:1.
    c = choose(["3", "two", "3", "2", "two", "3"])
    assert c.counts == {"3": 3, "2": 3}
    assert c.texts == ["two"]


def test_majority_of_four_in_ten():
    answers = ["red", "brown", "red", "dark red", "brown", "red", "maroon", "brown", "dark red", "red"]
    c = choose(answers)
    assert c.counts == {"red": 4, "brown": 3, "dark red": 2, "maroon": 1}
    assert c.texts == ["red"]


def test_articles_pool_and_the_surface_keeps_an_annotator_spelling():
    assert choose(["a tripod", "a tripod", "tripod"]).texts == ["a tripod"]
    assert choose(["a tripod", "tripod"]).texts == ["tripod"]      # tie: the already-normalised spelling


def test_first_all_and_confident():
    answers = ["yes", "no", "no", "yes", "no"]
    assert choose(answers, "first").texts == ["yes"]
    assert choose(answers, "majority").texts == ["no"]
    assert choose(answers, "all").texts == ["no", "yes"]
    # confident: yes = 1 + 1 = 2.0; no = 0.25 + 0.5 + 0.25 = 1.0 -> yes, although no has more votes.
    confidences = ["yes", "no", "maybe", "yes", "no"]
    assert choose(answers, "confident", confidences).texts == ["yes"]
    # tie in weight (1.0 each) -> more votes wins (no: 2 votes vs yes: 1)
    assert choose(["yes", "no", "no"], "confident", ["yes", "maybe", "maybe"]).texts == ["no"]


def test_all_orders_by_count_then_alphabet():
    assert choose(["y", "x", "z", "z", "y"], "all").texts == ["y", "z", "x"]
    assert choose(["a"]).texts == []     # "a" is an article: nothing is left of it


def test_blank_and_missing_answers_are_not_votes():
    assert choose(["", "  ", None]).texts == []
    assert choose(["", "cat", None]).texts == ["cat"]
    assert choose([], "first").texts == []


def test_unknown_policy():
    with pytest.raises(ValueError, match="unknown answer policy"):
        choose(["a", "b"], "loudest")
