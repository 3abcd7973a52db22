"""Keeps a base (not instruction-tuned) model inside its turn of a plain transcript.

A base model prompted with "User: ...\nAssistant:" answers, then often carries
on writing the transcript: a new speaker line ("Student: ..."), the question
again, or the same line over and over. Fixed stop strings catch only the
labels we used, so the guard reads the stream and ends the answer at:
- a line that opens with a speaker label ("Name:"),
- a line repeating an earlier line of the answer,
- text that merely echoes the user's question.
Lines after the first are held until complete (a label or a repeat is only
known then); the first line streams as soon as it stops echoing the question.
"""

from __future__ import annotations

import re

SPEAKER_LABEL = re.compile(r"^[ \t]*[A-Za-z][\w .'\-]{0,24}:(\s|$)")


class TranscriptGuard:
    def __init__(self, question: str):
        self._question = " ".join(question.split()).lower()
        self._first_line_open = True
        self._held = ""
        self._seen_lines: set[str] = set()
        self.stopped = False

    def feed(self, text: str) -> str:
        """Returns the text that may be shown now; sets `stopped` when the answer is over."""
        if self.stopped:
            return ""
        self._held += text
        released: list[str] = []
        while not self.stopped:
            if self._first_line_open:
                piece = self._release_first_line()
            else:
                piece = self._release_complete_line()
            if piece is None:
                break
            released.append(piece)
        return "".join(released)

    def finish(self) -> str:
        """The held tail at the end of generation, unless it is a label or a repeat."""
        tail, self._held = self._held, ""
        if self.stopped or not tail.strip():
            return ""
        if self._first_line_open:
            return "" if self._echoes_question(tail, complete=True) else tail
        return "" if self._ends_answer(tail) else "\n" + tail

    def _release_first_line(self) -> str | None:
        if not self._held:
            return None
        line, newline, rest = self._held.partition("\n")
        if not newline:
            if self._echoes_question(line, complete=False):
                return None  # may still turn out to be the question repeated: wait
            self._held = ""
            return line
        self._first_line_open = False
        self._held = rest
        if self._echoes_question(line, complete=True):
            self.stopped = True
            return ""
        self._seen_lines.add(line.strip())
        return line  # its newline goes out with the next line, so an answer never ends in one

    def _release_complete_line(self) -> str | None:
        line, newline, rest = self._held.partition("\n")
        if not newline:
            return None
        self._held = rest
        if self._ends_answer(line):
            self.stopped = True
            return ""
        if line.strip():
            self._seen_lines.add(line.strip())
        return "\n" + line

    def _ends_answer(self, line: str) -> bool:
        stripped = line.strip()
        return bool(SPEAKER_LABEL.match(line)) or stripped in self._seen_lines or self._echoes_question(line, True)

    def _echoes_question(self, text: str, complete: bool) -> bool:
        said = " ".join(text.split()).lower()
        if not said or not self._question:
            return False
        return said == self._question if complete else self._question.startswith(said)
