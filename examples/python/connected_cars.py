#!/usr/bin/python3
"""A connected-cars enrichment function on zerohop, with asyncio.

Each event is a car's telemetry ({"car": "c7", "driver": "d3", "speed": 93.5, ...}).
The handler, as a serverless platform would call it once per event:
  1. fetches the car and its driver (two items) concurrently;
  2. updates the driver's counters with one update expression (atomic on the item: many
     functions may count the same driver at once);
  3. writes the enriched event to a stream, partitioned by car.

Run against a zerohopd (tools/run.sh starts one; it reads ZEROHOP_SOCKET and
ZEROHOP_ACCESS_KEY):

    /usr/bin/python3 examples/python/connected_cars.py --events 2000 --concurrency 32

It loads a small fleet, runs the events through the handler with that many in flight,
reads the stream back and checks the counters: every event counted once, every enriched
record in the stream once.
"""

import argparse
import asyncio
import json
import random
import statistics
import sys
import time

import zerohop

ROOT = "/demo/cars-example"


async def handler(z, event):
    """Enriches one event: the function body a platform calls."""
    car, driver = await asyncio.gather(
        z.get_item(f"{ROOT}/cars/{event['car']}", ["model", "owner", "max_speed"]),
        z.get_item(f"{ROOT}/drivers/{event['driver']}", ["name", "license"]),
    )
    speeding = event["speed"] > car["max_speed"]
    # Numbers go into the expression as literals; one statement list, applied atomically.
    await z.update_item(
        f"{ROOT}/drivers/{event['driver']}",
        f"trips = if_not_exists(trips, 0) + 1; "
        f"speeding = if_not_exists(speeding, 0) + {int(speeding)}; "
        f"top_speed = max(if_not_exists(top_speed, 0.0), {float(event['speed'])!r})",
    )
    enriched = dict(event, model=car["model"], owner=car["owner"], driver_name=driver["name"],
                    license=driver["license"], speeding=speeding)
    [result] = await z.put_records(f"{ROOT}/enriched",
                                   [{"data": json.dumps(enriched).encode(), "partition_key": event["car"]}])
    if result["error"]:
        raise zerohop.Error(f"the enriched event was not written: {result['error']}")
    return enriched


async def load_fleet(z, cars, drivers):
    """The reference data the function enriches with, and the stream it writes."""
    await asyncio.gather(*(z.put_item(f"{ROOT}/cars/c{i}", {"model": random.choice(["e-208", "Model 3", "Zoe"]),
                                                            "owner": f"fleet-{i % 3}", "max_speed": 90.0})
                           for i in range(cars)))
    await asyncio.gather(*(z.put_item(f"{ROOT}/drivers/d{i}", {"name": f"driver {i}", "license": f"L-{1000 + i}"})
                           for i in range(drivers)))
    await z.create_stream(f"{ROOT}/enriched", shards=4, retention_secs=3600)


async def _exists(z, path):
    try:
        await z.stat(path)
        return True
    except zerohop.NotFound:
        return False


async def reset(z):
    """Removes what an earlier run left."""
    if not await _exists(z, ROOT):
        await z.mkdir(ROOT)
        return
    for table in ("cars", "drivers"):
        if await _exists(z, f"{ROOT}/{table}"):
            names = [e["name"] async for e in z.list(f"{ROOT}/{table}")]
            await asyncio.gather(*(z.delete(f"{ROOT}/{table}/{n}") for n in names))
            await z.rmdir(f"{ROOT}/{table}")
    if await _exists(z, f"{ROOT}/enriched"):
        await z.delete_stream(f"{ROOT}/enriched")


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--cars", type=int, default=50)
    ap.add_argument("--drivers", type=int, default=20)
    args = ap.parse_args()

    async with zerohop.AsyncClient() as z:
        await reset(z)
        await z.mkdir(f"{ROOT}/cars")
        await z.mkdir(f"{ROOT}/drivers")
        await load_fleet(z, args.cars, args.drivers)

        rng = random.Random(7)
        events = [{"car": f"c{rng.randrange(args.cars)}", "driver": f"d{rng.randrange(args.drivers)}",
                   "speed": round(rng.uniform(30, 130), 1), "lat": 48.85, "lon": 2.35, "seq": i}
                  for i in range(args.events)]
        latencies = []
        gate = asyncio.Semaphore(args.concurrency)

        async def one(event):
            async with gate:
                start = time.perf_counter()
                await handler(z, event)
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(one(e) for e in events))
        elapsed = time.perf_counter() - start

        # The proof: counters and stream agree with the events, once each.
        trips = {f"d{i}": 0 for i in range(args.drivers)}
        for e in events:
            trips[e["driver"]] += 1
        for driver, n in trips.items():
            got = await z.get_item(f"{ROOT}/drivers/{driver}", ["trips"]) if n else {"trips": 0}
            if got.get("trips", 0) != n:
                sys.exit(f"{driver}: {got.get('trips')} trips counted, {n} events")
        seen = []
        for shard in range(4):
            start_at = await z.seek(f"{ROOT}/enriched", shard=shard)
            seen += [json.loads(r["data"])["seq"] async for r in z.get_records(f"{ROOT}/enriched", start_at)]
        if sorted(seen) != list(range(args.events)):
            sys.exit(f"the stream holds {len(seen)} records for {args.events} events")

        lat = sorted(latencies)
        print(f"{args.events} events, {args.concurrency} in flight: {args.events / elapsed:,.0f} events/s; "
              f"handler p50 {statistics.median(lat) * 1e6:.0f} us, p99 {lat[int(len(lat) * 0.99)] * 1e6:.0f} us")
        print(f"every event counted once ({sum(trips.values())} trips) and in the stream once ({len(seen)} records)")


if __name__ == "__main__":
    asyncio.run(main())
