from __future__ import annotations

from runner.sandbox.output import CappedOutput


def test_short_output_is_kept_whole() -> None:
    out = CappedOutput(100)
    out.feed(b"hello ")
    out.feed(b"world")
    assert out.text() == "hello world"
    assert not out.truncated


def test_long_output_keeps_head_and_tail_around_a_marker() -> None:
    out = CappedOutput(20)
    out.feed(b"HEAD-" + b"x" * 1000 + b"-TAIL")
    text = out.text()
    assert text.startswith("HEAD-")
    assert text.endswith("-TAIL")
    assert "bytes of output omitted" in text
    assert out.truncated
    assert out.total == 1010


def test_tail_is_the_last_bytes_across_many_small_chunks() -> None:
    out = CappedOutput(10)
    for i in range(1000):
        out.feed(str(i % 10).encode())
    assert out.text().endswith("56789")
    assert "990 bytes" in out.text()


def test_invalid_utf8_is_replaced_not_raised() -> None:
    out = CappedOutput(100)
    out.feed(b"\xff\xfeok")
    assert out.text().endswith("ok")
