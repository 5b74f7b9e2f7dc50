"""Prompt/output token counts of the datasets `vllm bench serve` reads from a file.

`sharegpt` (the ShareGPT JSON: a list of ``{"conversations": [{"from", "value"}, ...]}``) and
`custom` (JSONL, one ``{"prompt": ...}`` object a line) are sampled as vLLM's client samples them
(vllm/benchmarks/datasets.py: ShareGPTDataset, CustomDataset): the entries are shuffled with
Python's ``random`` seeded with --seed (unless ``disable_shuffle``), taken in order, ShareGPT
pairs outside vLLM's validity limits are skipped, and a short dataset is oversampled (random
choices) up to ``num_prompts`` unless ``no_oversample``.

Token counts come from the file when it has them, else from a tokenizer:
- ShareGPT: a turn's ``num_tokens`` (or an entry's ``prompt_tokens`` / ``output_tokens``);
- custom: ``prompt_tokens`` (or ``prompt_len``) per line, ``output_tokens`` for
  ``custom_output_len = -1``;
- otherwise the text is tokenized with ``transformers.AutoTokenizer`` loaded from the local cache
  only (``local_files_only=True``: never a download). Without transformers or a cached tokenizer
  the dataset is a SpecError saying so.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from servesim.specs.common import SpecError

# vLLM's is_valid_sequence limits for ShareGPT pairs (vllm/benchmarks/datasets.py)
MIN_LEN, MAX_PROMPT_LEN, MAX_TOTAL_LEN = 4, 1024, 2048
FILE_DATASETS = ("sharegpt", "custom")


def dataset_lengths(
    name: str,
    path: str | Path,
    *,
    num_prompts: int,
    seed: int = 0,
    output_len: int | None = None,
    tokenizer: str | None = None,
    disable_shuffle: bool = False,
    no_oversample: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(prompt_tokens, output_tokens) of the ``num_prompts`` requests vLLM's client would send.

    ``output_len``: sharegpt's --sharegpt-output-len (None: the completion's length) or custom's
    --custom-output-len (-1: the file's ``output_tokens``; vLLM's default is 256).
    """
    if name not in FILE_DATASETS:
        raise SpecError("bench", "dataset_name", name, "must be one of " + ", ".join(FILE_DATASETS))
    p = Path(path).expanduser()
    if not p.is_file():
        raise SpecError("bench", "dataset_path", str(path), "file not found")
    rows = _read_sharegpt(p) if name == "sharegpt" else _read_custom(p)
    order = list(range(len(rows)))
    rng = random.Random(seed)
    if not disable_shuffle:
        rng.shuffle(order)
    count = _Counter(tokenizer, p)
    pairs: list[tuple[int, int]] = []
    for i in order:
        if len(pairs) >= num_prompts:
            break
        pair = _sharegpt_pair(rows[i], output_len, count) if name == "sharegpt" else None
        if name == "custom":
            pair = _custom_pair(rows[i], output_len, count, p, i)
        if pair is not None:
            pairs.append(pair)
    if not pairs:
        raise SpecError("bench", "dataset_path", str(p), "no usable request in the dataset")
    if len(pairs) < num_prompts and not no_oversample:
        pairs += rng.choices(pairs, k=num_prompts - len(pairs))  # vLLM's oversampling
    prompt = np.array([a for a, _ in pairs], dtype=np.int64)
    output = np.array([b for _, b in pairs], dtype=np.int64)
    return prompt, output


class _Counter:
    """Tokens of a text, from a locally cached tokenizer; loaded on the first text only."""

    def __init__(self, tokenizer: str | None, path: Path):
        self.name = tokenizer
        self.path = path
        self._fn: Callable[[str], int] | None = None

    def __call__(self, text: Any) -> int:
        if self._fn is None:
            self._fn = _load_tokenizer(self.name, self.path)
        return self._fn(str(text))


def _load_tokenizer(name: str | None, path: Path) -> Callable[[str], int]:
    why = f"{path} has no token counts (num_tokens / prompt_tokens)"
    if not name:
        raise SpecError("bench", "tokenizer", None, f"{why}; give --tokenizer (or --model)")
    try:
        from transformers import AutoTokenizer  # optional: only for text datasets
    except ImportError:
        raise SpecError(
            "bench", "tokenizer", name, f"{why} and transformers is not installed to count them"
        ) from None
    try:
        tok = AutoTokenizer.from_pretrained(name, local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError, ... for a missing one
        reason = " ".join(str(exc).split())[:100]
        raise SpecError(
            "bench",
            "tokenizer",
            name,
            f"{why} and the tokenizer is not in the local cache: {reason}",
        ) from None
    return lambda text: len(tok(text).input_ids)


def _read_sharegpt(p: Path) -> list[Any]:
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SpecError(
            str(p), "", p.name, f"not a ShareGPT JSON file ({exc.__class__.__name__})"
        ) from None
    if not isinstance(data, list):
        raise SpecError(str(p), "", type(data).__name__, "ShareGPT JSON must be a list of entries")
    # vLLM keeps entries with at least two turns
    return [
        e
        for e in data
        if isinstance(e, dict)
        and isinstance(e.get("conversations"), list)
        and len(e["conversations"]) >= 2
    ]


def _turn_tokens(turn: Any, count: _Counter) -> int:
    if isinstance(turn, dict) and isinstance(turn.get("num_tokens"), int):
        return int(turn["num_tokens"])
    return count(turn.get("value", "") if isinstance(turn, dict) else turn)


def _sharegpt_pair(entry: dict, output_len: int | None, count: _Counter) -> tuple[int, int] | None:
    conv = entry["conversations"]
    if isinstance(entry.get("prompt_tokens"), int):
        prompt = int(entry["prompt_tokens"])
    else:
        prompt = _turn_tokens(conv[0], count)
    if output_len is not None:
        out = int(output_len)
    elif isinstance(entry.get("output_tokens"), int):
        out = int(entry["output_tokens"])
    else:
        out = _turn_tokens(conv[1], count)
    # vLLM's is_valid_sequence; a fixed output length skips the minimum-output check
    if prompt < MIN_LEN or (output_len is None and out < MIN_LEN):
        return None
    if prompt > MAX_PROMPT_LEN or prompt + out > MAX_TOTAL_LEN:
        return None
    return prompt, out


def _read_custom(p: Path) -> list[dict]:
    rows = []
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(p), "", p.name, f"cannot be read ({exc.__class__.__name__})") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise SpecError(str(p), f"line {i}", line[:40], "not a JSON object") from None
        if not isinstance(row, dict) or not (
            "prompt" in row or "prompt_tokens" in row or "prompt_len" in row
        ):
            raise SpecError(str(p), f"line {i}", line[:40], "needs a prompt (or prompt_tokens)")
        rows.append(row)
    return rows


def _custom_pair(
    row: dict, output_len: int | None, count: _Counter, p: Path, i: int
) -> tuple[int, int]:
    given = row.get("prompt_tokens", row.get("prompt_len"))
    prompt = int(given) if isinstance(given, int) else count(row.get("prompt", ""))
    out_len = 256 if output_len is None else int(output_len)  # vLLM's --custom-output-len default
    if out_len == -1:
        out = row.get("output_tokens")
        if not isinstance(out, int) or out < 1:
            raise SpecError(
                str(p), f"entry {i}", out, "--custom-output-len -1 needs output_tokens >= 1"
            )
        return max(prompt, 1), out
    return max(prompt, 1), out_len
