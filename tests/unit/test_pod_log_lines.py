"""How the node tests read a followed pod log (tests/node/pods.first_line): whole lines, whatever the chunks."""

from __future__ import annotations

import re

from tests.node import pods

NEEDLE = re.compile(r"epoch 1/2: .*published")


def test_a_line_cut_between_two_chunks_is_matched_once_its_end_arrives() -> None:
    chunks = [b"step 9\nepoch 1/2: loss 2.1, ", b"published epoch-0001\nnext\n"]

    assert pods.first_line(chunks, NEEDLE) == "epoch 1/2: loss 2.1, published epoch-0001"


def test_a_character_cut_between_two_chunks_is_decoded_whole() -> None:
    text = "epoch 1/2: \u00e9t\u00e9 published\n".encode()
    cut = text.index(b"\xa9")  # inside the two bytes of the first \u00e9

    assert pods.first_line([text[:cut], text[cut:]], "\u00e9t\u00e9 published") == "epoch 1/2: \u00e9t\u00e9 published"


def test_the_last_line_of_a_stream_without_a_newline_is_matched() -> None:
    assert pods.first_line([b"a\nepoch 1/2: x published"], NEEDLE) == "epoch 1/2: x published"


def test_a_stream_without_the_line_gives_none() -> None:
    assert pods.first_line([b"epoch 1/2: x ", b"\npublished\n"], NEEDLE) is None
