"""Key counts per configured pattern, through SCAN with a time budget per round (never KEYS,
which blocks the server for the whole keyspace).

Each pattern keeps its cursor across rounds: a round spends at most `scan_budget` on SCAN calls
(one per pattern in turn), and a pattern's count is published when its pass over the keyspace
completes, so a large keyspace takes several rounds per count and never a long pause. SCAN may
return a key twice while the server rehashes, so a count can be slightly high.

Each step runs SCAN inside a tiny Lua script that returns the cursor and the number of keys
matched instead of the keys: the server does the same work, and the exporter neither receives
nor decodes key names (that was most of its CPU time). Where scripts are not allowed (an ACL
without EVALSHA, scripting disabled) the steps fall back to plain SCAN."""
from __future__ import annotations

import time
from dataclasses import dataclass

from vigil_exporter.collectors.families import Sample, Spec
from vigil_exporter.collectors.redis_stats.source import RedisFeature, RedisSource
from vigil_exporter.validation import Duration, Int, List, Str

PATTERN = ("pattern",)
COUNT_SCRIPT = ("local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3]) "
                "return {r[1], #r[2]}")


@dataclass
class Pass:
    """One pattern's walk over the keyspace: the pass in progress and the last complete one."""

    pattern: str
    cursor: int = 0
    counted: int = 0
    started: float = 0.0
    keys: int | None = None  # of the last complete pass
    seconds: float = 0.0
    finished_at: float = 0.0


class KeyPatterns(RedisFeature):
    key = "key_patterns"
    help = "key counts per pattern through SCAN"
    fields = {
        "patterns": List(Str(help="A glob pattern, as SCAN MATCH takes it."), [],
                         "Patterns whose matching keys are counted, e.g. \"session:*\".",
                         max_items=20),
        "scan_budget": Duration("20ms", "Time SCAN may take per round, over all patterns."),
        "scan_count": Int(1000, "COUNT hint of each SCAN call.", minimum=10),
    }
    metrics = {
        "vigil_redis_pattern_keys": Spec(
            "gauge", "Keys matching a configured pattern, from the last complete SCAN pass.",
            PATTERN),
        "vigil_redis_pattern_scan_duration_seconds": Spec(
            "gauge", "Wall time of the last complete SCAN pass of a pattern (it may span "
                     "rounds).", PATTERN),
        "vigil_redis_pattern_scan_timestamp_seconds": Spec(
            "gauge", "Unix time the last SCAN pass of a pattern completed.", PATTERN),
    }

    @classmethod
    def wanted(cls, config: dict) -> bool:
        return config["enabled"] and bool(config["patterns"])

    def __init__(self, config: dict):
        super().__init__(config)
        self.passes = [Pass(pattern) for pattern in dict.fromkeys(config["patterns"])]
        self.script = None  # the registered COUNT_SCRIPT; False once it was refused

    async def read(self, source: RedisSource) -> list[Sample]:
        deadline = time.perf_counter() + self.config["scan_budget"]
        pending = list(self.passes)
        while pending and time.perf_counter() < deadline:
            for walk in list(pending):
                if await self._step(source.client, walk):
                    pending.remove(walk)  # at most one pass per pattern and round
                if time.perf_counter() >= deadline:
                    break
        samples = []
        for walk in self.passes:
            if walk.keys is not None:
                labels = (walk.pattern,)
                samples += [Sample("vigil_redis_pattern_keys", walk.keys, labels),
                            Sample("vigil_redis_pattern_scan_duration_seconds", walk.seconds,
                                   labels),
                            Sample("vigil_redis_pattern_scan_timestamp_seconds",
                                   walk.finished_at, labels)]
        return samples

    async def _step(self, client, walk: Pass) -> bool:
        """One SCAN call; True when it completed the pass."""
        if walk.cursor == 0:
            walk.counted, walk.started = 0, time.perf_counter()
        cursor, matched = await self._scan(client, walk)
        walk.cursor = int(cursor)
        walk.counted += matched
        if walk.cursor != 0:
            return False
        walk.keys, walk.seconds = walk.counted, time.perf_counter() - walk.started
        walk.finished_at = time.time()
        return True

    async def _scan(self, client, walk: Pass) -> tuple[int, int]:
        """The next cursor and how many keys this SCAN call matched."""
        from redis.exceptions import ResponseError

        args = [walk.cursor, walk.pattern, self.config["scan_count"]]
        if self.script is not False:
            if self.script is None:
                self.script = client.register_script(COUNT_SCRIPT)
            try:
                cursor, matched = await self.script(args=args)
                return int(cursor), int(matched)
            except ResponseError:  # scripting refused: count on our side from now on
                self.script = False
        cursor, keys = await client.scan(walk.cursor, match=walk.pattern,
                                         count=self.config["scan_count"])
        return cursor, len(keys)
