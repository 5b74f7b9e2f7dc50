"""Paged KV accounting and the prefix cache."""

from __future__ import annotations

from servesim.sim.kvcache import KVCache


def test_kvcache_allocate_beyond_capacity_returns_false_without_side_effects():
    kv = KVCache(10)
    assert kv.allocate(7)
    before = (kv.free, kv.private, dict(kv.refs), list(kv.lru))
    assert not kv.allocate(4)
    assert (kv.free, kv.private, dict(kv.refs), list(kv.lru)) == before
    assert kv.check()


def test_kvcache_release_returns_blocks():
    kv = KVCache(10)
    kv.allocate(6)
    kv.release(6)
    assert kv.free == 10 and kv.used == 0 and kv.check()


def test_kvcache_blocks_for_rounds_up():
    kv = KVCache(10, block_size=16)
    assert [kv.blocks_for(t) for t in (0, 1, 16, 17, 32)] == [0, 1, 1, 2, 2]


def test_kvcache_prefix_publish_match_and_share():
    kv = KVCache(10)
    kv.allocate(3)
    mine = kv.publish(["a", "b"])
    assert mine == ["a", "b"] and kv.private == 1 and kv.used == 3
    assert kv.match(["a", "b", "c"]) == 2
    kv.acquire(["a", "b"])  # a second request shares them: no new blocks
    assert kv.used == 3 and kv.refs == {"a": 2, "b": 2}
    assert kv.check()


def test_kvcache_unreferenced_blocks_are_evictable_lru_first():
    kv = KVCache(4)
    kv.allocate(2)
    kv.publish(["a", "b"])
    kv.unref(["a", "b"])
    assert kv.used == 0 and list(kv.lru) == ["b", "a"] and kv.available == 4
    assert kv.match(["a", "b"]) == 2  # still serves hits
    assert kv.allocate(3)  # takes the 2 free blocks, then evicts the least recently used
    assert list(kv.lru) == ["a"]
    assert kv.check()


def test_kvcache_eviction_takes_prefix_tail_first_head_still_hits():
    # vLLM frees a request's blocks in reverse order so the tail is evicted first: after one
    # eviction the prefix's first blocks must still serve hits
    kv = KVCache(3)
    kv.allocate(3)
    kv.publish(["a", "b", "c"])
    kv.unref(["a", "b", "c"])
    assert kv.allocate(1)
    assert kv.match(["a", "b", "c"]) == 2 and "c" not in kv.lru
    assert kv.check()


def test_kvcache_acquire_revives_evictable_block():
    kv = KVCache(4)
    kv.allocate(1)
    kv.publish(["a"])
    kv.unref(["a"])
    kv.acquire(["a"])
    assert kv.refs == {"a": 1} and not kv.lru and kv.check()


def test_kvcache_keys_cover_full_blocks_only():
    kv = KVCache(10, block_size=16, prefix_caching=True)
    assert kv.keys((1, 2, 3), 40) == [1, 2]
    big = KVCache(10, block_size=32, prefix_caching=True)
    assert big.keys((1, 2, 3, 4), 64) == [((1, 2), 0), ((3, 4), 0)]
