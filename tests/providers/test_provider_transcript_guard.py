"""The guard that ends a base model's answer where its turn ends."""

from __future__ import annotations

from headwater.providers.transcript_guard import TranscriptGuard


def _run(question: str, pieces: list[str]) -> tuple[str, bool]:
    guard = TranscriptGuard(question)
    shown = [guard.feed(piece) for piece in pieces]
    stopped = guard.stopped
    shown.append(guard.finish())
    return "".join(shown), stopped


def test_a_plain_answer_streams_unchanged():
    text, stopped = _run("What is the capital of France?", ["The capital", " of France", " is Paris."])
    assert text == "The capital of France is Paris." and not stopped


def test_first_line_streams_before_it_is_complete():
    guard = TranscriptGuard("Tell me about cats")
    assert guard.feed("Cats are") == "Cats are"
    assert guard.feed(" small") == " small"


def test_a_new_speaker_line_ends_the_answer():
    text, stopped = _run("Hi", ["Hello there.", "\nStu", "dent: what", " now?\n"])
    assert text == "Hello there." and stopped


def test_repeated_lines_end_the_answer():
    text, stopped = _run("Sing", ["La la.\n", "Second line.\n", "La la.\n", "La la.\n"])
    assert text == "La la.\nSecond line." and stopped


def test_echo_of_the_question_is_not_shown():
    text, stopped = _run("Write three sentences about the sea.", ["Write three", " sentences about the sea.", "\nStudent: x"])
    assert text == "" and stopped


def test_text_that_starts_like_the_question_is_released_when_it_diverges():
    text, _ = _run("Tell me a story", ["Tell me", " more later, friend."])
    assert text == "Tell me more later, friend."


def test_multi_line_answers_keep_their_lines():
    text, stopped = _run("List two colours", ["Red\n", "Blue\n", "- and green"])
    assert text == "Red\nBlue\n- and green" and not stopped


def test_an_answer_never_ends_in_a_newline():
    text, _ = _run("Name a colour.", ["Red.", "\n"])
    assert text == "Red."


def test_colon_inside_a_sentence_is_not_a_label():
    text, _ = _run("Time?", ["It is late.\n", "Note that the time is 10:30 now."])
    assert text == "It is late.\nNote that the time is 10:30 now."
