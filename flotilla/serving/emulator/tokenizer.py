"""A deterministic approximate tokenizer and the synthetic text the emulator "generates".

Tokens: the text is split into pieces (a word with its leading space, a digit, a run of
punctuation, a run of whitespace, or a chat-template marker like `<|im_start|>`), and each piece into
chunks of at most 4 characters (about 4 characters per token, like BPE on English). A chunk's id is
crc32(chunk) mod (vocab - 512) + 256, stable across processes; markers take ids at the top of the
vocabulary. Splitting is left to right and local, so two prompts that share a prefix share their
token ids up to the piece where they differ: prefix caching sees what it would see with BPE.

Output: the k-th generated token of a request is the ((seed + k) mod n)-th chunk of a lorem-ipsum
paragraph, so text reads as lorem ipsum and streams deterministically.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

CHUNK = 4
_MARKER = r"<\|[a-z_]+\|>"
_PIECE = re.compile(_MARKER + r"| ?[A-Za-z]+| ?\d| ?[^\sA-Za-z\d]+|\s+")
_IS_MARKER = re.compile(_MARKER)
LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
    "dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip "
    "ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu "
    "fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt "
    "mollit anim id est laborum. "
)


def _chunks(text: str) -> Iterable[str]:
    for match in _PIECE.finditer(text):
        piece = match.group()
        if _IS_MARKER.fullmatch(piece):
            yield piece
        else:
            for i in range(0, len(piece), CHUNK):
                yield piece[i : i + CHUNK]


class Tokenizer:
    """Text to token ids for a model with `vocab_size` ids (ids are cached per chunk)."""

    def __init__(self, vocab_size: int) -> None:
        if vocab_size < 1024:
            raise ValueError(f"vocab_size must be >= 1024, got {vocab_size}")
        self.vocab_size = vocab_size
        self._ids: dict[str, int] = {}
        self._markers: dict[str, int] = {}
        self.lorem_chunks: tuple[str, ...] = tuple(_chunks(LOREM))
        self.lorem_ids: tuple[int, ...] = tuple(self.chunk_id(c) for c in self.lorem_chunks)
        self._text_of = dict(zip(self.lorem_ids, self.lorem_chunks, strict=True))

    def chunk_id(self, chunk: str) -> int:
        token = self._ids.get(chunk)
        if token is None:
            if _IS_MARKER.fullmatch(chunk):
                token = self._markers.setdefault(chunk, self.vocab_size - 1 - len(self._markers) % 256)
            else:
                token = zlib.crc32(chunk.encode()) % (self.vocab_size - 512) + 256
            if len(self._ids) > 1_000_000:
                self._ids.clear()
            self._ids[chunk] = token
        return token

    def encode(self, text: str) -> list[int]:
        get = self._ids.get
        out: list[int] = []
        for chunk in _chunks(text):
            token = get(chunk)
            out.append(token if token is not None else self.chunk_id(chunk))
        return out

    def output_token(self, seed: int, index: int) -> int:
        """The `index`-th generated token of a request whose output starts at lorem chunk `seed`."""
        ids = self.lorem_ids
        return ids[(seed + index) % len(ids)]

    def decode_output(self, token_ids: Sequence[int]) -> str:
        """Text of generated tokens (ids outside the lorem table decode to nothing)."""
        text_of = self._text_of
        return "".join(text_of.get(t, "") for t in token_ids)


def message_text(content: Any) -> str:
    """An OpenAI message's content: a string, or a list of parts whose `text` parts are joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
    return "".join(parts)


def chat_prompt(messages: Sequence[dict[str, Any]]) -> str:
    """The ChatML template Qwen3 uses: `<|im_start|>{role}\\n{content}<|im_end|>\\n` per message, then the
    assistant's turn opened (add_generation_prompt)."""
    turns = [f"<|im_start|>{m.get('role', 'user')}\n{message_text(m.get('content'))}<|im_end|>\n" for m in messages]
    return "".join(turns) + "<|im_start|>assistant\n"
