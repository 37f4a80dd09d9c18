"""Traffic for tenant_scale.py's serving window: new messages and API calls for random tenants.

    python bench/tenant_traffic.py --url sqlite:///tenants.db --tenants 10000 --rate 100

Writes `rate` messages and as many API calls per second, in batches every 100 ms, until it is
stopped, so that the per-tenant usage families (messages and API calls today and in all) change
between two rounds of the business queries, as they do for a SaaS in use, while the limits,
agents and channels stay as they are.
"""
import argparse
import random
import time
from datetime import datetime, timezone

from sqlalchemy import create_engine, insert

from vigil_exporter import dbschema

BATCH_EVERY = 0.1  # seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="rows of each kind per second")
    args = parser.parse_args()
    engine = create_engine(dbschema.sync_url(args.url),
                           connect_args={"timeout": 30})  # SQLite: wait for the readers
    rng = random.Random(args.tenants)
    per_batch = max(1, round(args.rate * BATCH_EVERY))
    while True:
        started = time.monotonic()
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        tenants = [rng.randrange(1, args.tenants + 1) for _ in range(per_batch)]
        with engine.begin() as conn:
            conn.execute(insert(dbschema.messages), [
                {"tenant_id": t, "channel_id": t, "agent_id": t, "direction": rng.choice(
                    ("in", "out")), "size_bytes": rng.randrange(100, 2000), "created_at": now}
                for t in tenants])
            conn.execute(insert(dbschema.api_calls), [
                {"tenant_id": t, "endpoint": "/v1/chat", "status_code": 200, "created_at": now}
                for t in tenants])
        time.sleep(max(0.0, BATCH_EVERY - (time.monotonic() - started)))


if __name__ == "__main__":
    main()
