"""numba helpers shared by descriptor, baseline and prediction kernels: GAP's cosine cutoff
and an exponential of non-positive arguments that vectorises.

The cosine cutoff (``cutoff_transition_width`` in gap_fit) is 1 up to cutoff - width, then
½(1 + cos(π (r - cutoff + width) / width)) down to 0 at the cutoff, 0 beyond; every term,
descriptor weight and kernel that tapers this way calls these functions.
"""
import numpy as np
from numba import njit

_LN2_HIGH = 6.93147180369123816490e-01
_LN2_LOW = 1.90821492927058770002e-10
_LOG2_E = 1.4426950408889634
# Adding 1.5 * 2^52 rounds to an integer held in the low mantissa bits.
_ROUNDING_SHIFT = 6755399441055744.0
_ROUNDING_SHIFT_BITS = 0x4338000000000000
_SMALLEST_ARGUMENT = -708.0

# fastmath flags of kernel loops that sum: reassociation lets the sums vectorise, and
# multiply-adds are fused (results change at round-off only)
REASSOCIATE = {"reassoc", "contract"}


@njit(cache=True, fastmath={"contract"})  # fused multiply-adds; no reassociation (the shift trick)
def exp_of_nonpositive(arguments, out, scratch, count):
    """out[:count] = exp(arguments[:count]) for arguments <= 0, to within 1 ulp.

    A branch-free Cody-Waite reduction (x = k ln2 + r, |r| <= ln2 / 2), a degree-13 Taylor
    polynomial and 2^k built from its exponent bits, so that the loops vectorise (libm's
    exp does not). Arguments below -708 are clamped: exp(-708) ~ 3e-308 stands for them.
    ``scratch`` is a float64 work array of length >= count.
    """
    bits = scratch.view(np.int64)
    for i in range(count):
        x = arguments[i]
        x = x if x > _SMALLEST_ARGUMENT else _SMALLEST_ARGUMENT
        shifted = x * _LOG2_E + _ROUNDING_SHIFT
        k = shifted - _ROUNDING_SHIFT
        r = (x - k * _LN2_HIGH) - k * _LN2_LOW
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        out[i] = p * r + 1.0
        scratch[i] = shifted
    for i in range(count):
        bits[i] = (bits[i] - _ROUNDING_SHIFT_BITS + 1023) << 52
    for i in range(count):
        out[i] *= scratch[i]




@njit(cache=True)
def cosine_cutoff_scalar(distance, cutoff, width):
    """GAP's cosine cutoff f(r) and df/dr (Å^-1) at one distance r (Å)."""
    if distance >= cutoff:
        return 0.0, 0.0
    start = cutoff - width
    if distance <= start:
        return 1.0, 0.0
    phase = np.pi * (distance - start) / width
    return 0.5 * (1.0 + np.cos(phase)), -0.5 * np.pi / width * np.sin(phase)


@njit(cache=True)
def _cosine_cutoff_into(distances, cutoff, width, values, slopes):
    for i in range(distances.shape[0]):
        values[i], slopes[i] = cosine_cutoff_scalar(distances[i], cutoff, width)


def cosine_cutoff(distances, cutoff, width):
    """GAP's cosine cutoff f(r) and df/dr (Å^-1) for distances (Å) of any shape."""
    distances = np.asarray(distances, dtype=np.float64)
    flat = np.ascontiguousarray(distances.reshape(-1))
    values, slopes = np.empty_like(flat), np.empty_like(flat)
    _cosine_cutoff_into(flat, float(cutoff), float(width), values, slopes)
    return values.reshape(distances.shape), slopes.reshape(distances.shape)
