"""Every flag of `vllm bench serve` and what `servesim bench` does with it.

The flag list is that of vllm/benchmarks/serve.py (``add_cli_args``) and
vllm/benchmarks/datasets.py (``add_dataset_parser``, ``add_random_dataset_base_args``) on vLLM's
main branch at commit 009e6d4a1cd6 (the `vllm bench serve` of the v0.11+ releases, with the
later --probe-request-rate, --self-timed and --plot-* flags). Each one is either
- ``KEY``: a `servesim bench` argument of the same name (bench.BENCH_DEFAULTS), simulated;
- ``NO_EFFECT``: accepted and ignored, with the reason (connection, sampling, tokenizer and
  server-side switches change nothing the simulator models; servesim outputs always reach their
  length and there is no server to connect to);
- ``REFUSED``: the dataset names that need the network or modalities servesim does not model
  exit 2 with their reason (DATASET_REASONS).

``NARGS`` flags take several values after one flag, as argparse's nargs="+"/"*" do in vLLM.
"""

from __future__ import annotations

VLLM_SOURCE = "vllm-project/vllm vllm/benchmarks/{serve,datasets}.py @ 009e6d4a1cd6"

# flag -> bench argument it sets (same name with underscores unless noted)
KEY_FLAGS = (
    "--seed", "--num-prompts", "--dataset-name", "--dataset-path", "--disable-shuffle",
    "--no-oversample", "--custom-output-len", "--sharegpt-output-len",
    "--random-input-len", "--random-output-len", "--random-range-ratio", "--random-prefix-len",
    "--prefix-repetition-prefix-len", "--prefix-repetition-suffix-len",
    "--prefix-repetition-num-prefixes", "--prefix-repetition-output-len",
    "--label", "--max-concurrency", "--model", "--input-len", "--output-len",
    "--tokenizer", "--request-rate", "--burstiness", "--num-warmups", "--save-result",
    "--save-detailed", "--append-result", "--metadata", "--result-dir", "--result-filename",
    "--ignore-eos", "--percentile-metrics", "--metric-percentiles", "--goodput",
    "--ramp-up-strategy", "--ramp-up-start-rps", "--ramp-up-end-rps", "--disable-tqdm",
)  # fmt: skip

_CLIENT = "client connection setting; there is no server to connect to"
_SAMPLING = "sampling parameter; step times do not depend on it and outputs reach their length"
_SERVER = "server-side or tokenizer switch the simulator does not model"
_PLOT = "client-side plot; use `servesim report` or --timeline-out"
# flag -> (takes a value, reason it has no effect)
NO_EFFECT: dict[str, tuple[bool, str]] = {
    "--backend": (True, "the result records backend servesim (it marks the file simulated)"),
    "--base-url": (True, _CLIENT), "--host": (True, _CLIENT), "--port": (True, _CLIENT),
    "--endpoint": (True, _CLIENT), "--header": (True, _CLIENT), "--insecure": (False, _CLIENT),
    "--ready-check-timeout-sec": (True, _CLIENT), "--request-id-prefix": (True, _CLIENT),
    "--served-model-name": (True, _CLIENT), "--extra-body": (True, _CLIENT),
    "--tokenizer-mode": (True, _SERVER), "--trust-remote-code": (False, _SERVER),
    "--skip-tokenizer-init": (False, _SERVER), "--chat-template-kwargs": (True, _SERVER),
    "--skip-chat-template": (False, _SERVER), "--use-beam-search": (False, _SERVER),
    "--logprobs": (True, _SERVER), "--profile": (False, _SERVER),
    "--lora-modules": (True, _SERVER), "--lora-assignment": (True, _SERVER),
    "--no-stream": (False, _SERVER), "--enable-multimodal-chat": (False, _SERVER),
    "--self-timed": (False, "only for --dataset-name timed_trace (use --config with a trace)"),
    "--no-self-timed": (False, "only for --dataset-name timed_trace"),
    "--probe-request-rate": (True, "probe requests are not simulated"),
    "--temperature": (True, _SAMPLING), "--top-p": (True, _SAMPLING), "--top-k": (True, _SAMPLING),
    "--min-p": (True, _SAMPLING), "--frequency-penalty": (True, _SAMPLING),
    "--presence-penalty": (True, _SAMPLING), "--repetition-penalty": (True, _SAMPLING),
    "--plot-timeline": (False, _PLOT), "--timeline-itl-thresholds": (True, _PLOT),
    "--plot-dataset-stats": (False, _PLOT),
    # options of datasets that are refused anyway (their own reason is in DATASET_REASONS)
    "--spec-bench-output-len": (True, "spec_bench dataset only"),
    "--spec-bench-category": (True, "spec_bench dataset only"),
    "--sonnet-input-len": (True, "sonnet dataset only"),
    "--sonnet-output-len": (True, "sonnet dataset only"),
    "--sonnet-prefix-len": (True, "sonnet dataset only"),
    "--blazedit-min-distance": (True, "hf dataset only"),
    "--blazedit-max-distance": (True, "hf dataset only"),
    "--asr-max-audio-len-sec": (True, "audio datasets only"),
    "--asr-min-audio-len-sec": (True, "audio datasets only"),
    "--hf-subset": (True, "hf dataset only"), "--hf-split": (True, "hf dataset only"),
    "--hf-name": (True, "hf dataset only"), "--hf-output-len": (True, "hf dataset only"),
    "--random-batch-size": (True, "embedding benchmarks only"),
    "--no-reranker": (False, "rerank benchmarks only"),
    "--random-mm-base-items-per-request": (True, "random-mm dataset only"),
    "--random-mm-num-mm-items-range-ratio": (True, "random-mm dataset only"),
    "--random-mm-limit-mm-per-prompt": (True, "random-mm dataset only"),
    "--random-mm-bucket-config": (True, "random-mm dataset only"),
}  # fmt: skip

NARGS = ("--goodput", "--metadata", "--header", "--lora-modules")

DATASETS = ("random", "sharegpt", "custom", "prefix_repetition")
DATASET_REASONS = {
    "hf": "downloads a Hugging Face dataset (network); save it as JSONL and use "
    "--dataset-name custom --dataset-path FILE",
    "spec_bench": "downloads the Spec-Bench questions (network); use --dataset-name custom",
    "sonnet": "needs the sonnet text rendered by the model's chat template; use custom",
    "burstgpt": "is a timed trace: use `servesim run --trace FILE --trace-format burstgpt`",
    "random-mm": "multimodal inputs are not modelled",
    "custom_mm": "multimodal inputs are not modelled",
    "random-rerank": "reranking (pooling) models are not modelled",
    "timed_trace": "is a timed trace: use `servesim run --trace FILE`",
}


def flag_table() -> list[tuple[str, str, str]]:
    """(flag, kind, meaning) for every vLLM flag: kind KEY, NO_EFFECT (reason) or dataset."""
    rows = [(f, "KEY", f[2:].replace("-", "_")) for f in KEY_FLAGS]
    rows += [(f, "NO_EFFECT", why) for f, (_, why) in NO_EFFECT.items()]
    return sorted(rows)


def expand_nargs(argv: list[str]) -> list[str]:
    """``--goodput ttft:500 tpot:50`` -> ``--goodput ttft:500 --goodput tpot:50`` (vLLM's nargs),
    for click, which takes one value per flag; values run to the next ``-`` argument."""
    out: list[str] = []
    flag = None
    for arg in argv:
        if arg.startswith("-") and not _is_number(arg):
            name, eq, value = arg.partition("=")
            flag = name if name in NARGS else None
            if flag and eq:
                out += [flag, value]
                continue
            out.append(arg)
            if flag:
                out.append("\0")  # placeholder: the first value follows
            continue
        if flag is not None:
            if out and out[-1] == "\0":
                out[-1] = arg
            else:
                out += [flag, arg]
        else:
            out.append(arg)
    # a NARGS flag given without any value (vLLM's nargs="*" allows it): dropped with its hole
    clean: list[str] = []
    for a in out:
        if a == "\0":
            clean.pop()
        else:
            clean.append(a)
    return clean


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
