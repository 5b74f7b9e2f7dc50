"""Writes measurements.csv: the public end-to-end measurements, transcribed by hand from the
sources named in each row (kept as code so the transcription is reviewable in one place).

    python experiments/e2e_validation/make_table.py
"""

from __future__ import annotations

import csv
from pathlib import Path

TRT_V10 = (
    "https://github.com/NVIDIA/TensorRT-LLM/blob/00f37686aa854010d68bcbd0f4ab000221541ca6/"
    "docs/source/performance/perf-overview.md"
)
TRT_NEW = (
    "https://github.com/NVIDIA/TensorRT-LLM/blob/03e27c7d5ff0c6e89f8328838c0a8e64f1b34f9d/"
    "docs/source/developer-guide/perf-overview.md"
)
NIM = "https://docs.nvidia.com/nim/benchmarking/llm/1.0.0/performance"
TRT_V05 = (
    "https://github.com/NVIDIA/TensorRT-LLM/blob/138f96d45f90b9667426f7c47297d8c06bafac73/"
    "docs/source/performance.md"
)
# SGLang's DeepSeek-V3 PD deployment with large-scale EP on 12 x 8 H100 (InfiniBand), blog
# markdown at the commit read: "Profile Results" tables (prefill 16,384 tokens per device,
# 4,096-token prompts, 4 nodes EP32; decode 256 sequences per device at KV length 2,000,
# 9 nodes EP72) and the EPLB section (256 + 32 redundant experts = 288)
LMSYS_EP = (
    "https://github.com/lm-sys/lm-sys.github.io/blob/2db4e4042b31f3c3c9f4f93068ae80946d25a115/"
    "blog/2025-05-05-large-scale-ep.md"
)
OCI = (
    "https://blogs.oracle.com/cloud-infrastructure/serving-llama-31-405b-model-with-amd-mi300x-gpus"
)

COLS = (
    "row", "source", "url", "model", "kind", "hardware", "generation", "gpus", "layout", "tp",
    "ep", "dp_attn", "weights", "kv_cache", "engine", "scenario", "isl", "osl", "concurrency",
    "num_requests", "metric", "value", "unit", "note", "redundant_experts",
)  # fmt: skip

GEN = {
    "a100-sxm": "ampere",
    "h100-sxm": "hopper",
    "h200-sxm": "hopper",
    "b200": "blackwell",
    "mi300x": "cdna3",
}
MOE = {"qwen3-235b-a22b", "qwen3-30b-a3b", "llama-4-scout", "llama-4-maverick", "gpt-oss-20b",
       "gpt-oss-120b", "deepseek-v3"}  # fmt: skip
# trtllm-bench request counts per ISL/OSL (perf-overview "Preparing a Dataset" tables)
NREQ = {(128, 128): 30000, (128, 2048): 3000, (128, 4096): 1500, (1000, 2000): 1500,
        (2048, 128): 3000, (2048, 2048): 1500, (5000, 500): 1500, (1000, 1000): 3000,
        (500, 2000): 3000, (20000, 2000): 1000, (8192, 1024): 1500, (1024, 1024): 3000}  # fmt: skip


def trt(src, url, model, hw, layout, gpus, wt, pts, per_gpu, kv="auto", note=""):
    """trtllm-bench offline rows: (isl, osl, value); value per GPU or for the whole deployment."""
    rows = []
    for isl, osl, v in pts:
        rows.append(dict(
            source=src, url=url, model=model, hardware=hw, layout=layout, gpus=gpus,
            weights=wt, kv_cache=kv, engine="trtllm", scenario="offline", isl=isl, osl=osl,
            concurrency="", num_requests=NREQ[(isl, osl)], metric="output_tok_s_per_gpu",
            value=round(v if per_gpu else v / gpus, 2), unit="tok/s/GPU",
            note=note or ("published per GPU" if per_gpu else f"published total {v} tok/s / {gpus} GPUs"),
        ))  # fmt: skip
    return rows


def layout_fields(layout: str) -> dict:
    """TPn: tensor parallel n; DEPn: attention data-parallel n with experts EP n (TRT-LLM's
    'DEP' label: enable_attention_dp with moe_ep_size n)."""
    if layout.startswith("DEP"):
        n = int(layout[3:])
        return dict(tp=1, ep=n, dp_attn=n)
    n = int(layout[2:])
    return dict(tp=n, ep="", dp_attn=1)


def rows() -> list[dict]:
    out = []
    v10, new = "trtllm_perf_overview_v1.0", "trtllm_perf_overview_2026"
    out += trt(v10, TRT_V10, "llama-3.1-8b", "h100-sxm", "TP1", 1, "fp8",
               [(128, 128, 28312), (128, 2048, 22714), (1000, 1000, 15220), (2048, 128, 3450),
                (5000, 500, 3459), (2048, 2048, 9305)], False)  # fmt: skip
    out += trt(
        v10,
        TRT_V10,
        "llama-3.1-8b",
        "h200-sxm",
        "TP1",
        1,
        "fp8",
        [(128, 2048, 26221), (1000, 1000, 17744), (2048, 128, 3538)],
        False,
    )
    out += trt(
        v10,
        TRT_V10,
        "llama-3.3-70b",
        "h200-sxm",
        "TP1",
        1,
        "fp8",
        [(1000, 1000, 2909), (2048, 128, 442), (5000, 500, 566)],
        False,
    )
    out += trt(
        v10,
        TRT_V10,
        "llama-3.3-70b",
        "h100-sxm",
        "TP2",
        2,
        "fp8",
        [(1000, 1000, 4205), (2048, 128, 762), (128, 2048, 6651)],
        False,
    )
    out += trt(
        v10,
        TRT_V10,
        "llama-3.3-70b",
        "b200",
        "TP1",
        1,
        "fp4",
        [(1000, 1000, 7007), (2048, 128, 1339)],
        False,
    )
    out += trt(
        v10,
        TRT_V10,
        "llama-3.1-405b",
        "h100-sxm",
        "TP8",
        8,
        "fp8",
        [(1000, 1000, 2919), (2048, 128, 453)],
        False,
    )
    out += trt(
        v10,
        TRT_V10,
        "llama-3.1-405b",
        "h200-sxm",
        "TP8",
        8,
        "fp8",
        [(1000, 1000, 3330), (5000, 500, 650)],
        False,
    )
    out += trt(
        v10,
        TRT_V10,
        "llama-3.1-405b",
        "b200",
        "TP4",
        4,
        "fp4",
        [(1000, 1000, 5209), (2048, 128, 749)],
        False,
    )
    # v1.0 MoE rows: the table heads say TPn (trtllm-bench --tp n), but the page's MoE command
    # passes --ep $ep_size and its MoE options file sets enable_attention_dp: true. That key is
    # printed inside cuda_graph_config, where TensorRT-LLM's CudaGraphConfig (a StrictBaseModel,
    # extra fields forbidden) would reject it, so the runs set it at the top level, as the 2026
    # page prints it for the same models (Qwen3 MoE, Llama 4 Maverick) and labels DEPn. Scored
    # as DEPn (attention DP n, experts EP n) since the second fidelity round; the first round
    # scored them as TPn (experts tensor-parallel), 29% too slow as a group.
    out += trt(
        v10,
        TRT_V10,
        "llama-4-scout",
        "h100-sxm",
        "DEP4",
        4,
        "fp8",
        [(1000, 1000, 12129), (2048, 128, 3253)],
        False,
    )
    out += trt(
        v10, TRT_V10, "llama-4-scout", "h200-sxm", "DEP4", 4, "fp8", [(1000, 1000, 21636)], False
    )
    out += trt(
        v10,
        TRT_V10,
        "qwen3-235b-a22b",
        "h100-sxm",
        "DEP8",
        8,
        "fp8",
        [(1000, 1000, 14898), (5000, 500, 3225)],
        False,
    )
    out += trt(
        v10,
        TRT_V10,
        "qwen3-235b-a22b",
        "h200-sxm",
        "DEP8",
        8,
        "fp8",
        [(1000, 1000, 23789), (2048, 128, 3331)],
        False,
    )
    out += trt(
        v10, TRT_V10, "qwen3-235b-a22b", "b200", "DEP8", 8, "fp4", [(1000, 1000, 42391)], False
    )
    out += trt(
        v10, TRT_V10, "llama-4-maverick", "h100-sxm", "DEP8", 8, "fp8", [(1000, 1000, 9677)], False
    )
    out += trt(
        v10, TRT_V10, "llama-4-maverick", "h200-sxm", "DEP8", 8, "fp8", [(1000, 1000, 31782)], False
    )
    out += trt(
        v10,
        TRT_V10,
        "qwen3-30b-a3b",
        "b200",
        "TP1",
        1,
        "fp4",
        [(1000, 1000, 25828), (2048, 128, 6251)],
        False,
    )
    # 2026 table: per GPU; GPT-OSS/DeepSeek runs set kv_cache dtype fp8 (Blackwell) per its options
    out += trt(
        new,
        TRT_NEW,
        "gpt-oss-20b",
        "h100-sxm",
        "TP1",
        1,
        "fp4",
        [(1000, 1000, 11557), (8192, 1024, 3366)],
        True,
        note="MXFP4 experts (the model's release format), Triton MoE on Hopper",
    )
    out += trt(
        new,
        TRT_NEW,
        "gpt-oss-20b",
        "h200-sxm",
        "TP1",
        1,
        "fp4",
        [(1000, 1000, 13858)],
        True,
        note="MXFP4 experts, Triton MoE on Hopper",
    )
    out += trt(
        new,
        TRT_NEW,
        "gpt-oss-20b",
        "b200",
        "TP1",
        1,
        "fp4",
        [(1000, 1000, 53812), (8192, 1024, 11904)],
        True,
        kv="fp8",
    )
    out += trt(
        new,
        TRT_NEW,
        "gpt-oss-120b",
        "h200-sxm",
        "TP1",
        1,
        "fp4",
        [(1000, 1000, 6868), (8192, 1024, 1828)],
        True,
        note="MXFP4 experts",
    )
    out += trt(
        new,
        TRT_NEW,
        "gpt-oss-120b",
        "h100-sxm",
        "DEP4",
        4,
        "fp4",
        [(1000, 1000, 4685)],
        True,
        note="MXFP4 experts",
    )
    out += trt(
        new, TRT_NEW, "llama-3.3-70b", "h100-sxm", "TP2", 2, "fp8", [(8192, 1024, 398)], True
    )
    out += trt(
        new, TRT_NEW, "llama-3.3-70b", "h200-sxm", "TP2", 2, "fp8", [(1000, 1000, 2587)], True
    )
    out += trt(new, TRT_NEW, "llama-3.3-70b", "b200", "TP1", 1, "fp4", [(8192, 1024, 1362)], True)
    out += trt(
        new,
        TRT_NEW,
        "deepseek-v3",
        "h200-sxm",
        "DEP8",
        8,
        "fp8",
        [(1000, 1000, 1627)],
        True,
        kv="fp8",
        note="DeepSeek-R1-0528 (V3 architecture)",
    )
    out += trt(
        new,
        TRT_NEW,
        "deepseek-v3",
        "b200",
        "DEP4",
        4,
        "fp4",
        [(1000, 1000, 6463)],
        True,
        kv="fp8",
        note="DeepSeek-R1-0528 NVFP4 (V3 architecture)",
    )
    out += trt(
        new, TRT_NEW, "qwen3-235b-a22b", "h200-sxm", "DEP4", 4, "fp8", [(1000, 1000, 3288)], True
    )
    out += trt(
        new, TRT_NEW, "qwen3-235b-a22b", "h100-sxm", "DEP8", 8, "fp8", [(1000, 1000, 1932)], True
    )
    # NIM (TensorRT-LLM based), closed loop at fixed concurrency, three metrics per point
    nim = [(1, 51.67, 406.77, 18.58), (5, 218.48, 546.7, 21.83), (25, 623.4, 688.69, 38.75),
           (50, 814.37, 834.51, 59.73), (100, 916.72, 7996.0, 92.9),
           (250, 920.0, 88605.0, 93.2)]  # fmt: skip
    for c, tput, ttft, itl in nim:
        for metric, v, unit in (("output_tok_s", tput, "tok/s"), ("ttft_mean_ms", ttft, "ms"),
                                ("tpot_mean_ms", itl, "ms")):  # fmt: skip
            out.append(dict(
                source="nim_benchmarking_1.0", url=NIM, model="llama-3.3-70b",
                hardware="h100-sxm", layout="TP2", gpus=2, weights="fp8", kv_cache="fp8",
                engine="trtllm", scenario="closed_loop", isl=5000, osl=500, concurrency=c,
                num_requests="", metric=metric, value=v, unit=unit,
                note="NIM 1.8.0, genai-perf; also ../shared/data/measured/e2e_nim_h100_tp2.csv",
            ))  # fmt: skip
    # OCI MI300X, vLLM benchmark_latency (static batch 128 in / 128 out): mean batch latency
    for b, lat in ((1, 3.530), (8, 3.974), (32, 5.130), (64, 6.919), (128, 10.340), (256, 17.750)):
        out.append(dict(
            source="oci_mi300x_blog", url=OCI, model="llama-3.1-405b", hardware="mi300x",
            layout="TP8", gpus=8, weights="fp8", kv_cache="auto", engine="vllm",
            scenario="static_batch", isl=128, osl=128, concurrency=b, num_requests=b,
            metric="batch_latency_s", value=lat, unit="s",
            note="vLLM benchmark_latency.py (ROCm build, 2024-10)",
        ))  # fmt: skip
    for osl, v in ((128, 1993), (2048, 2794)):
        out.append(dict(
            source="oci_mi300x_blog", url=OCI, model="llama-3.1-405b", hardware="mi300x",
            layout="TP8", gpus=8, weights="fp8", kv_cache="auto", engine="vllm",
            scenario="offline", isl=128, osl=osl, concurrency="", num_requests=1000,
            metric="output_tok_s_per_gpu", value=round(v / 8, 2), unit="tok/s/GPU",
            note=f"vLLM benchmark_throughput.py, published total {v} tok/s / 8 GPUs; "
            "request count not published (vLLM's default 1000)",
        ))  # fmt: skip
    # Added after the first model changes of this round (never used to tune anything): first-token
    # latency at batch 1 (TensorRT-LLM v0.5, gptSessionBenchmark, FP8 + FP8 KV on H100, FP16 on
    # A100): the only Ampere rows
    for hw, wt, kv, pts in (
        ("h100-sxm", "fp8", "fp8", [("llama-2-7b", "TP1", 128, 7), ("llama-2-7b", "TP1", 2048, 36),
                                    ("llama-2-70b", "TP4", 128, 26), ("llama-2-70b", "TP4", 2048, 109)]),
        ("a100-sxm", "fp16", "fp16", [("llama-2-7b", "TP1", 128, 16), ("llama-2-7b", "TP1", 2048, 133),
                                      ("llama-2-70b", "TP4", 128, 47), ("llama-2-70b", "TP4", 2048, 377)]),
    ):  # fmt: skip
        for model, layout, isl, ms in pts:
            out.append(dict(
                source="trtllm_perf_v0.5_low_latency", url=TRT_V05, model=model, hardware=hw,
                layout=layout, gpus=int(layout[2:]), weights=wt, kv_cache=kv, engine="trtllm",
                scenario="static_batch", isl=isl, osl=1, concurrency=1, num_requests=1,
                metric="ttft_ms", value=ms, unit="ms",
                note="TensorRT-LLM v0.5 gptSessionBenchmark, batch 1, 1 output token",
            ))  # fmt: skip
    # Appended as a new source after the MoE changes of the second fidelity round (not used to
    # tune anything): wide-EP step throughput per node, DeepEP + DeepGEMM + two-batch overlap,
    # DP attention (SGLang's --enable-dp-attention with --moe-a2a-backend deepep), 32 EPLB
    # replicas. Prefill measured twice: with the default expert distribution and with
    # "simulated perfect EPLB" (uniform random routing, what servesim assumes by default).
    for layout, isl, osl, batch, metric, v, note in (
        ("DEP32", 4096, 0, 16384, "input_tok_s_per_node", 59337,
         "prefill, simulated perfect EPLB (uniform routing)"),
        ("DEP32", 4096, 0, 16384, "input_tok_s_per_node", 50302,
         "prefill, default expert distribution (real routing skew)"),
        ("DEP72", 2000, 1, 256, "output_tok_s_per_node", 22282,
         "decode, 256 sequences per device at KV length 2,000"),
    ):  # fmt: skip
        n = int(layout[3:])
        out.append(dict(
            source="lmsys_large_scale_ep_2025", url=LMSYS_EP, model="deepseek-v3",
            hardware="h100-sxm", layout=layout, gpus=n, weights="fp8", kv_cache="auto",
            engine="sglang+deepep+tbo", scenario="ep_step", isl=isl, osl=osl, concurrency=batch,
            num_requests="", metric=metric, value=v, unit="tok/s/node", note=note,
            redundant_experts=32,
        ))  # fmt: skip
    for i, r in enumerate(out, 1):
        r["row"] = i
        r["kind"] = "moe" if r["model"] in MOE else "dense"
        r["generation"] = GEN[r["hardware"]]
        r.update(layout_fields(r["layout"]))
    return out


def main() -> None:
    path = Path(__file__).with_name("measurements.csv")
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
