"""Paged KV cache of one instance: free-block accounting and a prefix cache.

Blocks are counted, not materialised: an instance holds ``total`` blocks of ``block_size`` tokens.
Every block is in exactly one of three states:

- free: holds nothing;
- used: referenced by at least one request, either privately (counted in ``private``) or as a
  shared prefix block (a key in ``refs`` with its reference count);
- evictable: a cached prefix block no request references (``lru``, oldest first). It still
  serves prefix hits, and allocation reuses it (least recently used first, a freed prefix's
  tail before its head) once no free block is left, as vLLM's and SGLang's caches do.

So ``free + len(lru) + private + len(refs) == total`` always (tests check it at every step).
``allocate`` checks before acting: when it cannot give every block asked for it returns False and
changes nothing.
"""

from __future__ import annotations

from collections import OrderedDict

# Tokens per prefix hash id of a RequestSpec (workload normalises every source to 16-token blocks).
HASH_BLOCK_TOKENS = 16


class KVCache:
    __slots__ = ("total", "block_size", "free", "private", "refs", "lru", "prefix", "hits_tokens")

    def __init__(self, total_blocks: int, block_size: int = 16, prefix_caching: bool = False):
        self.total = int(total_blocks)
        self.block_size = int(block_size)
        self.free = self.total  # blocks holding nothing
        self.private = 0  # blocks held by exactly one request, not shareable
        self.refs: dict = {}  # prefix key -> requests referencing that cached block
        self.lru: OrderedDict = (
            OrderedDict()
        )  # unreferenced cached blocks, least recently used first
        self.prefix = bool(prefix_caching)
        self.hits_tokens = 0

    # -- accounting -------------------------------------------------------------------------
    @property
    def used(self) -> int:
        return self.private + len(self.refs)

    @property
    def available(self) -> int:
        """Blocks an allocation may take: free ones, then evictable cached ones."""
        return self.free + len(self.lru)

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def allocate(self, n: int) -> bool:
        """Take ``n`` private blocks; False (and nothing changed) when fewer are available."""
        if n <= self.free:
            self.free -= n
            self.private += n
            return True
        if n > self.free + len(self.lru):
            return False
        evict = n - self.free
        self.free = 0
        lru = self.lru
        for _ in range(evict):
            lru.popitem(last=False)
        self.private += n
        return True

    def release(self, n: int) -> None:
        """Give back ``n`` private blocks."""
        self.private -= n
        self.free += n

    def check(self) -> bool:
        return (
            self.free + len(self.lru) + self.private + len(self.refs) == self.total
            and min(self.free, self.private) >= 0
        )

    # -- prefix cache -----------------------------------------------------------------------
    def keys(self, hashes: tuple, tokens: int) -> list:
        """Prefix keys of the full KV blocks among the first ``tokens`` tokens that the hash ids cover."""
        bs = self.block_size
        n = min(tokens, len(hashes) * HASH_BLOCK_TOKENS) // bs
        if bs == HASH_BLOCK_TOKENS:
            return list(hashes[:n])
        out = []
        for i in range(n):
            j0, j1 = i * bs // HASH_BLOCK_TOKENS, ((i + 1) * bs - 1) // HASH_BLOCK_TOKENS
            out.append((hashes[j0 : j1 + 1], (i * bs) % HASH_BLOCK_TOKENS))
        return out

    def match(self, keys: list) -> int:
        """How many leading keys are cached (referenced or evictable)."""
        refs, lru = self.refs, self.lru
        n = 0
        for k in keys:
            if k in refs or k in lru:
                n += 1
            else:
                break
        return n

    def acquire(self, keys: list) -> None:
        """Reference cached blocks (a prefix hit); evictable ones become used."""
        refs, lru = self.refs, self.lru
        for k in keys:
            if k in refs:
                refs[k] += 1
            else:
                del lru[k]
                refs[k] = 1

    def publish(self, keys: list) -> list:
        """Turn a request's private blocks with these keys into shared cached blocks.

        Returns the keys the request now references (keys already cached by another request stay
        private to this one: two copies of the same content, as in vLLM before dedup).
        """
        refs, lru = self.refs, self.lru
        out = []
        for k in keys:
            if k in refs or k in lru:
                continue
            refs[k] = 1
            self.private -= 1
            out.append(k)
        return out

    def unref(self, keys) -> None:
        """Drop one reference to each key; blocks nobody references become evictable (MRU end).

        ``keys`` are a prompt's blocks in prompt order; they are freed tail first, as vLLM's KV
        cache manager does, so eviction takes a prefix's tail before its head (a head block
        evicted first would leave the rest of the prefix cached but unreachable: hits stop at the
        first miss).
        """
        refs, lru = self.refs, self.lru
        for k in reversed(keys):
            c = refs[k] - 1
            if c:
                refs[k] = c
            else:
                del refs[k]
                lru[k] = None
