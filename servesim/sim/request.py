"""Request: one inference request inside the engine (a plain slotted object, never a process)."""

from __future__ import annotations

# Lifecycle states.
WAITING, PREFILL, DECODE, DONE = 0, 1, 2, 3


class Request:
    """A request and its lifecycle timestamps.

    Token accounting follows vLLM V1: ``target`` is the number of tokens the next prefill must
    put into the KV cache (the prompt, or after a preemption by recompute, the prompt plus the
    tokens generated so far), ``computed`` how many of them are in the cache. While decoding, the
    instance tracks the request in aggregate (see Instance); ``generated`` and ``blocks`` are
    brought up to date whenever the request leaves the decode set.
    """

    __slots__ = (
        "id",
        "arrival_s",
        "prompt",
        "output",
        "session_id",
        "prefix_hashes",
        "state",
        "target",
        "computed",
        "generated",
        "blocks",
        "cached_hashes",
        "keys",
        "cached_tokens",
        "reserved",
        "seq",
        "join",
        "ctx0",
        "scheduled_s",
        "first_token_s",
        "finish_s",
        "preemptions",
        "instance",
        "prefill_instance",
        "kv_transfer_s",
        "client",
        "priority",
        "ttft_slo_ms",
    )

    def __init__(
        self,
        rid: int,
        arrival_s: float,
        prompt: int,
        output: int,
        session_id: int = -1,
        prefix_hashes: tuple[int, ...] = (),
        priority: int = 0,
        ttft_slo_ms: float | None = None,
    ):
        self.id = rid
        self.arrival_s = arrival_s
        self.prompt = prompt
        self.output = output
        self.session_id = session_id
        self.prefix_hashes = prefix_hashes
        self.state = WAITING
        self.target = prompt  # tokens the (next) prefill must hold in KV
        self.computed = 0  # tokens of `target` already in KV
        self.generated = 0  # output tokens emitted
        self.blocks = 0  # private KV blocks held (shared prefix blocks are in cached_hashes)
        self.cached_hashes: tuple = ()  # prefix-cache blocks this request references
        self.keys: list | None = None  # prefix-cache keys of the prompt's full blocks (lazily)
        self.cached_tokens = 0  # prompt tokens served from the prefix cache (first admission)
        self.reserved = False  # KV for the whole output reserved at admission
        self.seq = -1  # admission order on its instance (preemption picks the newest)
        self.join = 0  # instance decode clock when the request joined the decode set
        self.ctx0 = 0  # tokens in KV when it joined the decode set
        self.scheduled_s = -1.0
        self.first_token_s = -1.0
        self.finish_s = -1.0
        self.preemptions = 0
        self.instance = -1
        self.prefill_instance = -1
        self.kv_transfer_s = 0.0
        self.client = -1  # closed-loop client that sent it
        self.priority = priority  # queue order "priority": lower values are served first
        self.ttft_slo_ms = ttft_slo_ms  # queue order "slo": its own TTFT target (None: config's)

    def __repr__(self) -> str:
        return f"Request(id={self.id}, state={self.state}, prompt={self.prompt}, output={self.output}, generated={self.generated})"
