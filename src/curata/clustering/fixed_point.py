"""Fixed-point totals: sums that come out the same bit for bit whatever order their terms are added in.

A float sum rounds after every addition, so its last bits follow the order of the terms: per-cluster sums added per
worker, per chunk and per rank gave centroids that differed with the number of processes, near-tie rows changed
cluster, and fits parted (issue 30). Here each float32 term is rounded once, on its own, to a multiple of 2^-bits
(``to_fixed``: exact scaling by a power of two, then one rounding half to even, as C's rint), and the int64 multiples
are added: integer addition is associative, so the total does not depend on how the terms were split over
chunks, workers, threads or ranks, in C, numpy or torch, on a CPU or a GPU (atomic adds included).

``fraction_bits`` picks ``bits`` from a bound on |term| and the number of terms so that no total can overflow; the
bound and the count must be the same on every rank (a global maximum, the global row count), so that every rank
rounds every term alike. The resolution 2^-bits is then about 2^-61 of the largest possible total: far below
float32's own rounding of any term that is not 2^30 times smaller than the bound.
"""

from __future__ import annotations

import math

import torch

__all__ = ["fraction_bits", "to_fixed", "from_fixed"]

# totals stay below 2^62, so that adding two of them (a rank's to another's) cannot overflow int64 either
_TOTAL_BITS = 61


def fraction_bits(bound: float, terms: int) -> int:
    """The ``bits`` for which ``terms`` values of magnitude at most ``bound``, each rounded to a multiple of
    2^-bits, add up below 2^62 in int64.

    Each rounded term is below 2^(e + bits) + 1/2 for bound < 2^e, and ``terms`` < 2^t of them stay below
    2^(t + e + bits) + 2^(t - 1): with bits = 61 - t - e that is under 2^62.

    Example:
        >>> fraction_bits(1.0, 6000)  # 6000 < 2^13, 1 < 2^1
        47
    """
    if not math.isfinite(bound) or bound < 0:
        raise ValueError(f"the bound of a fixed-point sum must be finite and >= 0, got {bound}")
    _, exponent = math.frexp(bound)  # bound < 2^exponent (frexp(0) gives 0)
    return _TOTAL_BITS - max(int(terms), 1).bit_length() - exponent


def to_fixed(values: torch.Tensor, bits: int) -> torch.Tensor:
    """round(values * 2^bits) as int64, half to even (the compiled pass's rounding), on the values' device.

    float64 holds every float32 times a power of two exactly, so the only rounding is the one to an integer.

    Example:
        >>> to_fixed(torch.tensor([0.5, 1.5, -2.25]), 1).tolist()
        [1, 3, -4]
    """
    return torch.round(values.to(torch.float64) * math.ldexp(1.0, bits)).to(torch.int64)


def from_fixed(totals: torch.Tensor, bits: int) -> torch.Tensor:
    """The float64 values of int64 multiples of 2^-bits (rounded to float64's 53 bits where they hold more).

    Example:
        >>> from_fixed(torch.tensor([3, -4]), 1).tolist()
        [1.5, -2.0]
    """
    return totals.to(torch.float64) * math.ldexp(1.0, -bits)
