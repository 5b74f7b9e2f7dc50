"""`servesim bench` datasets from files (ShareGPT, custom JSONL), sampled as vLLM's client
samples them, and the steady-state window that reproduces the NIM check from the command line."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from servesim.specs import SpecError
from servesim.studies.bench import bench, bench_config
from servesim.workload.datasets import dataset_lengths


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVESIM_CACHE", str(tmp_path / "cache"))


def _sharegpt(path: Path, pairs: list[tuple[int, int]]) -> Path:
    data = [
        {"id": f"c{i}", "conversations": [
            {"from": "human", "value": "q", "num_tokens": p},
            {"from": "gpt", "value": "a", "num_tokens": o},
        ]}
        for i, (p, o) in enumerate(pairs)
    ]  # fmt: skip
    data.append({"id": "short", "conversations": [{"from": "human", "value": "x"}]})
    path.write_text(json.dumps(data))
    return path


def test_sharegpt_counts_shuffle_filters_and_oversamples_like_vllm(tmp_path):
    # (3, 50): prompt < 4; (900, 1200): total > 2048; (2000, 10): prompt > 1024 -> skipped
    pairs = [(10, 20), (3, 50), (30, 40), (900, 1200), (2000, 10), (50, 60)]
    f = _sharegpt(tmp_path / "sg.json", pairs)
    p, o = dataset_lengths("sharegpt", f, num_prompts=3, seed=0, disable_shuffle=True)
    assert p.tolist() == [10, 30, 50] and o.tolist() == [20, 40, 60]
    # shuffled as vLLM: random.seed(seed); random.shuffle(entries) over the kept entries
    order = list(range(6))
    random.Random(5).shuffle(order)
    want = [pairs[i] for i in order if pairs[i] in ((10, 20), (30, 40), (50, 60))]
    p, o = dataset_lengths("sharegpt", f, num_prompts=3, seed=5)
    assert list(zip(p.tolist(), o.tolist())) == want
    # more prompts than usable entries: oversampled from them (random.choices)
    p, _ = dataset_lengths("sharegpt", f, num_prompts=7, seed=0)
    assert len(p) == 7 and set(p.tolist()) <= {10, 30, 50}
    p, _ = dataset_lengths("sharegpt", f, num_prompts=7, seed=0, no_oversample=True)
    assert len(p) == 3
    # --sharegpt-output-len fixes every output
    _, o = dataset_lengths("sharegpt", f, num_prompts=3, seed=0, output_len=7)
    assert o.tolist() == [7, 7, 7]


def test_custom_jsonl_prompt_tokens_and_output_len(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text("\n".join(json.dumps({"prompt_tokens": n, "output_tokens": n // 2})
                           for n in (100, 200, 300)))  # fmt: skip
    p, o = dataset_lengths("custom", f, num_prompts=3, disable_shuffle=True)
    assert p.tolist() == [100, 200, 300] and o.tolist() == [256, 256, 256]  # vLLM default 256
    _, o = dataset_lengths("custom", f, num_prompts=3, disable_shuffle=True, output_len=-1)
    assert o.tolist() == [50, 100, 150]


def test_bench_sharegpt_run_uses_the_file_lengths(tmp_path):
    f = _sharegpt(tmp_path / "sg.json", [(100, 20), (200, 10), (300, 30)])
    res = bench(model="llama-3.1-8b", dataset_name="sharegpt", dataset_path=str(f),
                num_prompts=3, request_rate=10.0, seed=1)  # fmt: skip
    assert res["completed"] == 3
    assert res["total_input_tokens"] == 600 and res["total_output_tokens"] == 60


def test_text_without_counts_needs_transformers_or_a_cached_tokenizer(tmp_path, monkeypatch):
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps({"prompt": "hello there"}) + "\n")
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    with pytest.raises(SpecError, match="transformers is not installed"):
        dataset_lengths("custom", f, num_prompts=1, tokenizer="meta-llama/Llama-3.1-8B")
    with pytest.raises(SpecError, match="needs a file"):
        bench_config(dataset_name="sharegpt")
    with pytest.raises(SpecError, match="not used by --dataset-name random"):
        bench_config(dataset_path=str(f))


def test_prefix_repetition_shares_prefixes_within_groups(tmp_path):
    from servesim.workload.traces import load_trace

    cfg = bench_config(dataset_name="prefix_repetition", num_prompts=8, request_rate=4.0,
                       prefix_repetition_prefix_len=64, prefix_repetition_suffix_len=32,
                       prefix_repetition_num_prefixes=2, prefix_repetition_output_len=8)  # fmt: skip
    df = load_trace(cfg["workload"]["trace"]["path"], "jsonl")
    assert (df["prompt_tokens"] == 96).all() and (df["output_tokens"] == 8).all()
    hashes = df["prefix_hashes"].tolist()
    assert len({tuple(h) for h in hashes}) == 2 and all(len(h) == 4 for h in hashes)


def test_steady_state_reproduces_the_nim_experiment_from_the_cli_arguments():
    """`bench --steady-state` and experiments/nim_validation compute the same window and give
    the same figures for the same point (here a small one: 4 clients, 3 requests each)."""
    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root / "experiments" / "nim_validation"))
    try:
        import run_validation as nim
    finally:
        sys.path.pop(0)
    import servesim

    conc, n = 4, 12
    want = nim.steady_metrics(servesim.simulate(nim.point_config(conc, n)), conc)
    got = bench(model="llama-3.3-70b", dtype="fp8", hw="h100-sxm", tp=2, engine="trtllm@0.17",
                input_len=5000, output_len=500, max_concurrency=conc, num_prompts=n,
                steady_state=True)  # fmt: skip
    assert got["output_throughput"] == pytest.approx(want["output_tok_s"], rel=1e-12)
    assert got["mean_ttft_ms"] == pytest.approx(want["ttft_ms"], rel=1e-12)
    assert got["mean_tpot_ms"] == pytest.approx(want["itl_ms"], rel=1e-12)
    assert got["servesim"]["steady_state"]["steady_window"] == want["window"]
