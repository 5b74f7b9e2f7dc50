"""Published speculative-decoding measurements the simulator is checked against (sources inline).

Each entry: the deployment, the measured baseline and speculative numbers, and the acceptance
length measured with them (the simulator is given that acceptance, so the check is of the cost
model and engine: drafting, verification and their batch dependence, not of acceptance).
"""

# vLLM issue #20780 (github.com/vllm-project/vllm/issues/20780): Llama-3.1-8B-Instruct, MT-bench,
# batch 1, vLLM V1, TPOT in ms; the same author's H100 BS1 runs in vLLM PR #16937 (vanilla 133
# tok/s ~ 7.5 ms) put these on one H100 (estimate: the issue itself does not name the GPU).
LLAMA8B_BS1 = {
    "model": "llama-3.1-8b",
    "hardware": "h100-sxm",
    "tp": 1,
    "vanilla_tpot_ms": 7.07,
    # method -> {k: (acceptance length, TPOT ms)}
    "eagle": {2: (2.10, 4.37), 3: (2.29, 4.29), 4: (2.39, 4.48), 5: (2.43, 4.71), 6: (2.45, 4.94),
              7: (2.47, 5.20)},
    "eagle3": {2: (2.36, 4.32), 3: (2.79, 4.09), 4: (3.08, 4.05), 5: (3.32, 4.13), 6: (3.46, 4.20),
               7: (3.54, 4.29)},
    "best_k": {"eagle": 3, "eagle3": 4},
}  # fmt: skip

# EAGLE-3 paper (arXiv:2503.01840, abstract): "In the SGLang framework, EAGLE-3 achieves a 1.38x
# throughput improvement at a batch size of 64" (LLaMA-3.1-8B on H100 in the paper's SGLang
# section). The acceptance length of that run is not given: estimate: the vLLM k=3 length above.
EAGLE3_BS64 = {"model": "llama-3.1-8b", "hardware": "h100-sxm", "batch": 64, "speedup": 1.38,
               "method": "eagle3", "k": 3, "acceptance_length": 2.79}  # fmt: skip

# DeepSeek-V3 technical report (arXiv:2412.19437) 5.4.3: MTP with one extra token, second-token
# acceptance 85-90%, "1.8 times TPS". Serving setup (H800, EP decode with large batches) differs
# from ours: estimate: H200 x8 in FP8 (the released weights' dtype), EP8, 64 concurrent
# requests stands in for it.
DSV3_MTP = {"model": "deepseek-v3", "hardware": "h200-sxm", "tp": 8, "ep": 8, "batch": 64,
            "speedup": 1.8, "method": "mtp", "k": 1, "acceptance_length": 1.875}  # fmt: skip
