"""Seeded randomness: one root seed, independent named streams.

Theory of operation. A run has exactly one input of randomness, the root seed. Every component draws
from its own stream, obtained with ``fork(name)``; the stream's seed is derived from the parent's seed
and the name by SHA-256, never by Python's ``hash()`` (which PYTHONHASHSEED changes). Because streams
are independent, adding a random draw in one component never shifts the draws of another.

``Rng`` wraps ``random.Random`` (the Mersenne Twister, whose output for a given integer seed is fixed
across CPython versions and platforms) and exposes the handful of draws the framework needs.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

__all__ = ["Rng", "derive_seed"]


def derive_seed(seed: int, name: str) -> int:
    """A 64-bit seed derived from ``seed`` and ``name``, stable across processes and machines."""
    material = f"{seed}/{name}".encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "big")


class Rng:
    """A named, seeded random stream. ``fork`` gives children; draws never touch global state."""

    __slots__ = ("seed", "name", "_random", "random", "getrandbits")

    def __init__(self, seed: int, name: str = "root") -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {seed!r}")
        if seed < 0:  # random.Random ignores the sign: seeds n and -n would give the same stream
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = seed
        self.name = name
        self._random = random.Random(seed)
        # Bound once: these are the hot draws (the network draws a delay for every message).
        self.random = self._random.random
        self.getrandbits = self._random.getrandbits

    def fork(self, name: str) -> Rng:
        """An independent child stream; the same (seed, name) always gives the same stream."""
        return Rng(derive_seed(self.seed, name), f"{self.name}/{name}")

    def uniform(self, low: float, high: float) -> float:
        return self._random.uniform(low, high)

    def randint(self, low: int, high: int) -> int:
        """An integer in [low, high], both ends included."""
        return self._random.randint(low, high)

    def randrange(self, stop: int) -> int:
        """An integer in [0, stop): the same draw as ``random.Random.randrange(stop)``.

        Hot (a node picks a peer per message), so the draw is made here in one call instead of
        ``randrange``'s three: ``Random._randbelow_with_getrandbits``, the same in every CPython
        since 3.2 (``test_rng`` checks the two agree).
        """
        if type(stop) is not int:
            raise TypeError(f"randrange needs an int, got {stop!r}")
        if stop <= 0:
            raise ValueError(f"empty range for randrange({stop})")
        bits = stop.bit_length()
        getrandbits = self.getrandbits  # a local: CPython 3.11 calls it faster than an attribute
        value = getrandbits(bits)
        while value >= stop:
            value = getrandbits(bits)
        return value

    def chance(self, probability: float) -> bool:
        """True with the given probability; a probability of 0 never draws (keeps streams stable)."""
        if probability <= 0.0:
            return False
        if probability >= 1.0:
            return True
        return self._random.random() < probability

    def choice(self, options: Sequence[T]) -> T:
        return options[self._random.randrange(len(options))]

    def sample(self, options: Sequence[T], count: int) -> list[T]:
        return self._random.sample(list(options), count)

    def shuffle(self, items: list[T]) -> None:
        self._random.shuffle(items)

    def expovariate(self, rate: float) -> float:
        return self._random.expovariate(rate)

    def lognormvariate(self, mu: float, sigma: float) -> float:
        return self._random.lognormvariate(mu, sigma)

    def random_instance(self) -> random.Random:
        """The underlying generator, for code that needs the full ``random.Random`` API."""
        return self._random

    def __repr__(self) -> str:
        return f"Rng(seed={self.seed}, name={self.name!r})"
