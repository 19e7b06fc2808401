"""The pure parts of bench/kube_ipam.py (ours beside whereabouts): its percentiles, its duplicate and
leftover counts, and the target's verdict, on made-up batches."""

from __future__ import annotations

import math

import pytest

from bench.kube_ipam import (
    Batch,
    addresses_of,
    costs,
    duplicates,
    ours_held,
    percentile,
    recorded,
    request_counts,
    requests_delta,
    summarize,
    verdict,
    wall_ratio,
    whereabouts_held,
)


def test_percentile_is_the_nearest_rank_a_measured_value() -> None:
    samples = [float(x) for x in range(100, 0, -1)]  # 1..100, unsorted
    assert percentile(samples, 50) == 50
    assert percentile(samples, 99) == 99
    assert percentile(samples, 100) == 100
    assert percentile([7.0], 50) == percentile([7.0], 99) == 7
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 99) == 10
    assert percentile([3.0, 1.0], 50) == 1
    assert math.isnan(percentile([], 50))


def test_addresses_and_duplicates() -> None:
    result = {"cniVersion": "1.0.0", "ips": [{"address": "10.76.0.2/22"}, {"address": "fd00::2/64"}]}
    assert addresses_of(result) == ["10.76.0.2", "fd00::2"]
    assert addresses_of({"cniVersion": "1.0.0"}) == []
    assert duplicates(["10.0.0.1", "10.0.0.2", "10.0.0.3"]) == 0
    # one address to three ADDs, another to two: three ADDs got an address someone else got too
    assert duplicates(["10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2", "10.0.0.3"]) == 3
    assert duplicates([]) == 0


def test_what_each_store_holds() -> None:
    pools: list[dict] = [
        {"spec": {"range": "10.76.0.0/22", "allocations": {"1": {"id": "a"}, "2": {"id": "b"}}}},
        {"spec": {"range": "10.77.0.0/22", "allocations": {}}},
        {"spec": {"range": "10.78.0.0/22"}},  # no allocations key at all
    ]
    reservations = [{"metadata": {"name": "10.76.0.1"}, "spec": {"podref": "default/p"}}]
    assert whereabouts_held(pools, reservations) == {"IPPool allocations": 2, "OverlappingRangeIPReservations": 1}
    assert whereabouts_held([], []) == {"IPPool allocations": 0, "OverlappingRangeIPReservations": 0}
    assert recorded(whereabouts_held(pools, reservations)) == 2, "the pool's allocations: who has which address"
    assert ours_held([{"spec": {"address": "10.76.0.2"}}, {"spec": {"address": "10.76.0.3"}}]) == {"IPLeases": 2}


def batch(impl: str, size: int, round_: int, wall: float, **kw: object) -> Batch:
    fields: dict = {
        "add_ms": [wall / 2] * size,
        "add_failures": [],
        "duplicates": 0,
        "held_after_add": {"records": size, "others": size},
        "del_wall_ms": wall,
        "del_failures": [],
        "left_after_del": {"records": 0, "others": 0},
    }
    fields.update(kw)
    return Batch(impl=impl, size=size, round=round_, add_wall_ms=wall, **fields)


def test_summary_pools_the_rounds() -> None:
    batches = [
        batch("ours", 2, 0, 100.0, add_ms=[10.0, 90.0]),
        batch("ours", 2, 1, 300.0, add_ms=[20.0, 30.0], duplicates=1, left_after_del={"records": 1, "others": 1}),
        batch("ours", 2, 2, 200.0, add_ms=[40.0, 50.0], add_failures=["exit 11"], held_after_add={"records": 0}),
    ]
    s = summarize(batches)["ours"][2]
    assert (s["rounds"], s["wall_median"], s["wall_min"], s["wall_max"]) == (3, 200.0, 100.0, 300.0)
    assert (s["p50"], s["p99"]) == (30.0, 90.0)
    assert (s["failed"], s["duplicates"], s["leaks"]) == (1, 1, 2)
    assert s["unrecorded"] == 1, "a successful ADD whose address the store does not hold"


def test_the_verdict_pairs_rounds_and_needs_every_count_at_zero() -> None:
    good = [batch("ours", 100, r, w) for r, w in enumerate([100.0, 900.0, 300.0])]
    theirs = [batch("wb", 100, r, w) for r, w in enumerate([1000.0, 1000.0, 10000.0])]
    assert wall_ratio(good + theirs, "ours", "wb", 100) == pytest.approx(0.1)  # median of 0.1, 0.9, 0.03
    v = verdict(good + theirs, "ours", "wb")
    assert v is not None and v["met"] and v["ratio"] == pytest.approx(0.1)
    leaky = [*good[:2], batch("ours", 100, 2, 300.0, left_after_del={"others": 1})]
    assert not verdict(leaky + theirs, "ours", "wb")["met"]  # type: ignore[index]
    failing = [*good[:2], batch("ours", 100, 2, 300.0, add_failures=["exit 11: try again later"])]
    assert not verdict(failing + theirs, "ours", "wb")["met"]  # type: ignore[index]
    slow = [batch("ours", 100, r, 500.0) for r in range(3)]
    v = verdict(slow + theirs, "ours", "wb")
    assert v is not None and not v["met"] and v["ratio"] == pytest.approx(0.5)
    assert verdict(good, "ours", "wb") is None, "no round of theirs to pair with"
    assert verdict(good + theirs, "ours", "wb", size=20) is None


METRICS = """# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="cni-macvlan.io",resource="ipleases",scope="resource",subresource="",verb="POST",version="v1"} 7
apiserver_request_total{code="409",component="apiserver",dry_run="",group="cni-macvlan.io",resource="ipleases",scope="resource",subresource="",verb="POST",version="v1"} 2
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="serviceaccounts",scope="resource",subresource="token",verb="POST",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 1e+03
apiserver_request_duration_seconds_bucket{verb="POST",le="0.1"} 9
"""


def test_request_counts_read_the_api_servers_counters() -> None:
    counts = request_counts(METRICS)
    assert counts == {
        "POST ipleases 201": 7,
        "POST ipleases 409": 2,
        "POST serviceaccounts/token 201": 1,
        "PUT leases 200": 1000,
    }
    later = {**counts, "POST ipleases 201": 10, "LIST ipleases 200": 3}
    assert requests_delta(counts, later) == {"LIST ipleases 200": 3, "POST ipleases 201": 3}


def test_costs_are_per_add_over_all_rounds() -> None:
    bs = [
        batch("ours", 10, r, 1000.0, add_cpu_s={"plugins": p, "etcd": 0.1}, add_requests={"POST ipleases 201": 10})
        for r, p in enumerate([1.0, 3.0, 2.0])
    ]
    bs.append(
        batch("ours", 10, 3, 1000.0, add_cpu_s={"plugins": 2.0, "etcd": 0.1}, add_requests={"POST ipleases 409": 4})
    )
    c = costs(bs, 10)["ours"]
    assert c["cpu_s"] == {"plugins": 2.0, "etcd": 0.1}
    assert c["requests_per_add"] == {"POST ipleases 201": 0.75, "POST ipleases 409": 0.1}
    assert c["wall_s"] == 1.0
    assert costs(bs, 20) == {}
