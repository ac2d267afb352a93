"""Routing: rendezvous order, the bounded-load choice, least outstanding, and Endpoints.pick."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from gateway.errors import ServiceUnavailableError
from gateway.triton.endpoints import Endpoint, Endpoints
from gateway.triton.routing import (
    DEFAULT_LOAD_FACTOR,
    DEFAULT_PREFIX_CHARS,
    Router,
    affinity_key,
    capacity,
    choose_affinity,
    rendezvous_order,
)

NAMES = ["10.0.0.1:8001", "10.0.0.2:8001", "10.0.0.3:8001"]
A, B, C = NAMES


def test_defaults() -> None:
    assert (DEFAULT_PREFIX_CHARS, DEFAULT_LOAD_FACTOR) == (256, 1.25)


def test_key_is_a_digest_of_the_first_characters_only() -> None:
    assert affinity_key("hello", 256).hex() == "46fb7408d4f285228f4af516ea25851b"
    assert affinity_key("hello", 3) == hashlib.blake2b(b"hel", digest_size=16).digest()
    system = "s" * 256
    assert affinity_key(system + "turn 1", 256) == affinity_key(system + "turn 1 ... turn 2", 256)
    assert affinity_key(system + "x", 257) != affinity_key(system + "y", 257)


def test_rendezvous_order_is_fixed_per_key() -> None:
    assert rendezvous_order(affinity_key("conversation A", 256), NAMES) == [2, 0, 1]
    assert rendezvous_order(affinity_key("conversation B", 256), NAMES) == [1, 2, 0]
    assert rendezvous_order(affinity_key("conversation C", 256), NAMES) == [0, 1, 2]


def test_removing_an_endpoint_keeps_the_others_in_order() -> None:
    for convo in ("conversation A", "conversation B", "conversation C", "conversation D"):
        key = affinity_key(convo, 256)
        full = [NAMES[i] for i in rendezvous_order(key, NAMES)]
        for gone in NAMES:
            rest = [n for n in NAMES if n != gone]
            assert [rest[i] for i in rendezvous_order(key, rest)] == [n for n in full if n != gone]
    # Only the key that ranked the removed endpoint first moves.
    key = affinity_key("conversation A", 256)  # order C, A, B
    assert [[A, B][i] for i in rendezvous_order(key, [A, B])] == [A, B]


@pytest.mark.parametrize(("total", "n", "factor", "expected"), [
    (0, 2, 1.25, 1), (1, 2, 1.25, 2), (2, 2, 1.25, 2), (3, 2, 1.25, 3), (4, 2, 1.25, 4),
    (0, 3, 1.25, 1), (5, 3, 1.25, 3), (3, 2, 1.0, 2), (3, 2, 2.0, 4), (0, 1, 1.0, 1),
])
def test_capacity(total: int, n: int, factor: float, expected: int) -> None:
    assert capacity(total, n, factor) == expected


def test_affinity_takes_the_first_in_hash_order_while_under_the_bound() -> None:
    key = affinity_key("conversation A", 256)  # order C, A, B
    assert choose_affinity(key, NAMES, [0, 0, 0], 1.25) == 2  # cap ceil(1.25*1/3)=1
    assert choose_affinity(key, NAMES, [1, 1, 1], 1.25) == 2  # cap ceil(1.25*4/3)=2
    assert choose_affinity(key, NAMES, [0, 0, 1], 1.25) == 0  # cap ceil(1.25*2/3)=1: C full
    assert choose_affinity(key, NAMES, [0, 0, 2], 1.25) == 0  # cap ceil(1.25*3/3)=2: C full
    assert choose_affinity(key, NAMES, [2, 0, 2], 1.25) == 2  # cap ceil(1.25*5/3)=3
    assert choose_affinity(key, NAMES, [3, 0, 3], 1.25) == 1  # cap ceil(1.25*7/3)=3: C, A full


def test_affinity_with_a_looser_bound_stays_longer() -> None:
    key = affinity_key("conversation A", 256)
    assert choose_affinity(key, NAMES, [0, 0, 3], 1.25) == 0  # cap ceil(1.25*4/3)=2
    assert choose_affinity(key, NAMES, [0, 0, 3], 2.0) == 0  # cap ceil(2*4/3)=3
    assert choose_affinity(key, NAMES, [0, 0, 3], 3.0) == 2  # cap 4


def test_router_affinity_follows_the_prompt_prefix() -> None:
    router = Router("affinity", prefix_chars=14)
    for suffix in ("", " turn 2", " turn 2 turn 3"):
        assert router.choose(NAMES, [0, 0, 0], "conversation A" + suffix) == 2
        assert router.choose(NAMES, [0, 0, 0], "conversation B" + suffix) == 1
        assert router.choose(NAMES, [0, 0, 0], "conversation C" + suffix) == 0


def test_without_a_prompt_affinity_is_least_outstanding() -> None:
    router = Router("affinity")
    assert router.choose(NAMES, [2, 1, 3]) == 1


def test_least_outstanding_rotates_among_ties() -> None:
    router = Router("least_outstanding")
    assert [router.choose(NAMES[:2], [0, 0], "same prompt") for _ in range(4)] == [0, 1, 0, 1]
    router = Router("least_outstanding")
    assert [router.choose(NAMES, [2, 1, 1]) for _ in range(3)] == [1, 1, 2]
    assert router.choose(NAMES, [0, 5, 5]) == 0


@pytest.mark.parametrize("kwargs", [{"policy": "random"}, {"prefix_chars": 0},
                                    {"load_factor": 0.99}])
def test_router_rejects_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Router(**kwargs)


def _endpoints(router: Router, ready: dict[str, set[str]]) -> Endpoints:
    eps = Endpoints([], router=router)
    eps.all = [Endpoint(url, client=None, ready_models=models, healthy=True)  # type: ignore[arg-type]
               for url, models in ready.items()]
    return eps


async def test_pick_counts_outstanding_per_model() -> None:
    eps = _endpoints(Router("least_outstanding"), {A: {"chat", "embed"}, B: {"chat", "embed"}})
    ep_a, ep_b = eps.all
    for _ in range(3):
        ep_a.begin("embed")  # busy with another model: chat still counts A as idle
    ep_b.begin("chat")
    assert await eps.pick("chat", "hi") is ep_a
    assert await eps.pick("embed") is ep_b
    assert (ep_a.outstanding, ep_a.in_flight) == ({"embed": 3}, 3)
    ep_b.end("chat")
    assert ep_b.outstanding == {} and ep_b.in_flight == 0


async def test_pick_only_among_ready_endpoints() -> None:
    eps = _endpoints(Router("affinity", prefix_chars=14), {A: {"chat"}, B: set(), C: {"chat"}})
    # conversation B ranks B first, but B does not have the model: then C (order B, C, A)
    assert (await eps.pick("chat", "conversation B")).url == C


async def test_pick_applies_the_bound_with_per_model_loads() -> None:
    eps = _endpoints(Router("affinity", prefix_chars=14), {A: {"chat"}, B: {"chat"}, C: {"chat"}})
    ep_c = eps.all[2]
    ep_c.begin("chat")
    ep_c.begin("chat")
    for _ in range(5):
        ep_c.begin("other")  # other models do not count against the chat bound
    # conversation A: C first; loads [0, 0, 2], cap ceil(1.25*3/3)=2: C is full, A next
    assert (await eps.pick("chat", "conversation A")).url == A
    ep_c.end("chat")  # loads [0, 0, 1], cap ceil(1.25*2/3)=1: still full
    assert (await eps.pick("chat", "conversation A")).url == A
    ep_c.end("chat")
    assert (await eps.pick("chat", "conversation A")).url == C


async def test_no_ready_endpoint_is_503() -> None:
    eps = _endpoints(Router(), {})
    with pytest.raises(ServiceUnavailableError):
        await eps.pick("chat", "hi")
