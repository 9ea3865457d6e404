"""Rule-based answer extraction on realistic replies (PVQ, MFQ and donation-style options)."""

from __future__ import annotations

import math

import pytest

from valuescope.backends.extraction import judge_request, letter_scores_from_text, parse_choice

L6 = ("A", "B", "C", "D", "E", "F")
PVQ = ("Very much like me", "Like me", "Somewhat like me", "A little like me", "Not like me",
       "Not like me at all")
MFQ2 = ("Strongly disagree", "Moderately disagree", "Slightly disagree", "Slightly agree",
        "Moderately agree", "Strongly agree")
MFQ1 = ("Not at all relevant", "Not very relevant", "Slightly relevant", "Somewhat relevant",
        "Very relevant", "Extremely relevant")
# a permuted option order: the letters show the PVQ labels in another order
PVQ_PERM = (PVQ[3], PVQ[0], PVQ[5], PVQ[1], PVQ[4], PVQ[2])
COINS = tuple(f"{n} coins" for n in range(11))
L11 = tuple("ABCDEFGHIJK")

# (reply, letters, labels, expected option index or None)
CASES = [
    # lone letters and formatted letters
    ("C", L6, PVQ, 2),
    ("c", L6, PVQ, 2),
    ("(C)", L6, PVQ, 2),
    ("C.", L6, PVQ, 2),
    ("C)", L6, PVQ, 2),
    ("**C**", L6, PVQ, 2),
    ("  (E)\n", L6, PVQ, 4),
    ("B) Like me", L6, PVQ, 1),
    ("D. A little like me", L6, PVQ, 3),
    ("(A) Very much like me", L6, PVQ, 0),
    ("**(F) Not like me at all**", L6, PVQ, 5),
    ("`B`", L6, PVQ, 1),
    # declared answers
    ("Answer: C", L6, PVQ, 2),
    ("Answer: (D) A little like me", L6, PVQ, 3),
    ("answer: e", L6, PVQ, 4),
    ("My answer is B.", L6, PVQ, 1),
    ("I'd say B because family always comes first for me.", L6, PVQ, 1),
    ("I would choose option E, since I rarely think about that.", L6, PVQ, 4),
    ("As Gandalf, I choose (A). Wisdom matters above all.", L6, PVQ, 0),
    ("After thinking about it, my choice is **F**.", L6, MFQ2, 5),
    ("The best option is option D - slightly agree.", L6, MFQ2, 3),
    ("Hmm, that's a hard one. I'll go with C.", L6, PVQ, 2),
    ("Answer: (B", L6, PVQ, 1),  # the answer prefix plus a one-token continuation
    ("Response: A", L6, MFQ1, 0),
    # label text alone
    ("Very much like me", L6, PVQ, 0),
    ("This person is somewhat like me.", L6, PVQ, 2),
    ("Not like me at all.", L6, PVQ, 5),
    ("not like me", L6, PVQ, 4),
    ("I strongly agree with this statement.", L6, MFQ2, 5),
    ("It is extremely relevant to my thinking.", L6, MFQ1, 5),
    ("Slightly disagree", L6, MFQ2, 2),
    ("Like me.", L6, PVQ_PERM, 3),  # permuted order: "Like me" shows under D
    ("A little like me", L6, PVQ_PERM, 0),  # the article "A" is not the letter A
    ("I would donate 7 coins.", L11, COINS, 7),
    # unreadable or ambiguous: never a guess
    ("I cannot answer that question.", L6, PVQ, None),
    ("As an AI, I don't have personal values or preferences.", L6, PVQ, None),
    ("A or B, it depends on the situation.", L6, PVQ, None),
    ("(A) and (C) both describe me well.", L6, PVQ, None),
    ("Answer: B. Actually, my answer is D.", L6, PVQ, None),
    ("This is not at all like me.", L6, PVQ, None),  # a negated label does not pick "Like me"
    ("", L6, PVQ, None),
    ("   ", L6, PVQ, None),
    ("The answer is a tough one to give.", L6, PVQ, None),
    ("I agree.", L6, MFQ2, None),  # agree, but how strongly?
    ("Somewhat like me, or maybe very much like me.", L6, PVQ, None),
    ("Answer: G", L6, PVQ, None),  # not an option
]


@pytest.mark.parametrize(("reply", "letters", "labels", "expected"), CASES)
def test_parse_choice(reply, letters, labels, expected):
    assert parse_choice(reply, letters, labels) == expected


def test_table_is_large_enough():
    assert len(CASES) >= 30
    assert sum(c[3] is None for c in CASES) >= 8


def test_letter_scores_from_text_one_hot_and_invalid():
    ok = letter_scores_from_text("I'd say (B)", L6, PVQ)
    assert ok.valid and ok.method == "generate"
    assert ok.probs == (0.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    assert ok.raw == "I'd say (B)"
    bad = letter_scores_from_text("I cannot answer", L6, PVQ)
    assert not bad.valid and bad.raw == "I cannot answer" and bad.error == "unreadable answer"
    assert len(bad.probs) == 6 and all(math.isnan(p) for p in bad.probs)
    empty = letter_scores_from_text(None, L6, PVQ)
    assert not empty.valid and empty.error == "empty answer"


def test_judge_request_adds_a_none_letter():
    req, none_letter = judge_request("Probably B", L6, PVQ)
    assert none_letter == "G"
    assert req.letters == (*L6, "G")
    user = req.messages[-1].content
    assert "(A) Very much like me" in user and "(G) None of these" in user and "Probably B" in user
    assert req.answer_prefix == "Answer: ("
