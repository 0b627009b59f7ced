#!/usr/bin/python3
"""A pandas scan on zerohop: a DataFrame in, a filtered scan out, then the analysis.

    /usr/bin/python3 examples/python/pandas_scan.py --rows 20000

1. put_items(DataFrame): a day of synthetic trips, one item per row (its index names it);
2. scan(...).to_pandas(): the trips over 80 km/h, two columns only, filtered and projected
   by zerohopd (the rows that do not match never cross into Python);
3. the same scan in 4 segments on 4 threads (each waits for the daemon without the GIL),
   concatenated: the way to scan a large table faster;
4. pandas from there: per-driver statistics.
"""

import argparse
import concurrent.futures
import sys
import time

import numpy
import pandas

import zerohop

TABLE = "/demo/trips-example"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000)
    args = ap.parse_args()
    z = zerohop.Client()  # ZEROHOP_SOCKET, ZEROHOP_ACCESS_KEY

    # A clean table.
    try:
        for entry in z.list(TABLE):
            z.delete(f"{TABLE}/{entry['name']}")
        z.rmdir(TABLE)
    except zerohop.NotFound:
        pass
    z.mkdir(TABLE)

    rng = numpy.random.default_rng(11)
    trips = pandas.DataFrame({
        "driver": [f"d{i}" for i in rng.integers(0, 40, args.rows)],
        "speed": rng.normal(70, 15, args.rows).round(1),
        "km": rng.exponential(12, args.rows).round(2),
        "night": rng.random(args.rows) < 0.2,
    }, index=[f"t{i:06d}" for i in range(args.rows)])

    start = time.perf_counter()
    for first in range(0, args.rows, 1000):  # a request per 1000 rows
        z.put_items(TABLE, trips.iloc[first:first + 1000])
    put_secs = time.perf_counter() - start

    start = time.perf_counter()
    fast = z.scan(TABLE, filter="speed > 80", attributes=["driver", "speed"]).to_pandas()
    scan_secs = time.perf_counter() - start

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        parts = pool.map(lambda seg: z.scan(TABLE, filter="speed > 80", attributes=["driver", "speed"],
                                            segment=seg, total_segments=4).to_pandas(), range(4))
        segmented = pandas.concat(parts).sort_index()
    segmented_secs = time.perf_counter() - start

    expected = trips[trips.speed > 80][["driver", "speed"]].rename_axis("__name")  # to_pandas' index
    try:
        pandas.testing.assert_frame_equal(fast.sort_index(), expected)
        pandas.testing.assert_frame_equal(segmented, expected)
    except AssertionError as e:
        sys.exit(f"the scans differ from the DataFrame that was put: {e}")

    per_driver = fast.groupby("driver")["speed"].agg(["count", "mean", "max"]).sort_values("count", ascending=False)
    print(f"put {args.rows} rows in {put_secs * 1e3:.0f} ms; scanned {len(fast)} matching rows in "
          f"{scan_secs * 1e3:.0f} ms (4 segments on 4 threads: {segmented_secs * 1e3:.0f} ms)")
    print("drivers most often over 80 km/h:")
    print(per_driver.head(5).round(1).to_string())
    z.close()


if __name__ == "__main__":
    main()
