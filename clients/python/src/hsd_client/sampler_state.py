"""The sampler state a RESULT carries (opaque on the wire, §5.2), decoded.

Layout, version 1 (host/sampling/sampler.c "serialization"; all
little-endian):

    "HSDSMPL\\0"  u32 version  u32 kind  u64 total length (bytes, CRC included)
    schedule:  u32 num_train_timesteps  f64 beta_start  f64 beta_end
               u32 beta_schedule  i32 steps_offset  i32 set_alpha_to_one
               i32 clip_sample  f32 clip_sample_range  u32 prediction_type
               u32 timestep_spacing  i32 skip_prk_steps
    progress:  u32 n_steps  u32 step  u64 n_latent  u32 n_timesteps
               i32 lower_order_nums  i32 counter  i32 n_ets
    tables:    f32 timesteps[n_timesteps]  f64 sigmas[n_timesteps + 1]
               f32 alpha_prod[n_timesteps]  f32 alpha_prod_prev[n_timesteps]
    rng:       u32 mt[624]  u32 index  u32 has_next_double  f64 next_double
               u32 has_next_float  f32 next_float  u32 flavor
    history:   u32 live slots  f32 [slots * n_latent]
    u32 CRC-32 (zlib) of every byte before it.

Version 2 (lcm states only): the schedule ends with u32
original_inference_steps and f32 timestep_scaling.

This decoder checks the structure (magic, version, lengths, CRC); the C
edge (hsd_sampler_deserialize) also recomputes the tables from the
schedule, which needs the scheduler maths this client does not carry.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import VerificationError
from .wire import Sampler

MAGIC = b"HSDSMPL\0"
FORMAT_VERSION = 1
FORMAT_VERSION_LCM = 2  # lcm states: LCMScheduler's two keys after the schedule
_HEAD = struct.Struct("<8sIIQ")
_SCHED = struct.Struct("<IddIiiifIIi")
_SCHED_LCM = struct.Struct("<If")
_PROGRESS = struct.Struct("<IIQIiii")
_RNG_TAIL = struct.Struct("<IIdIfI")
MAX_CALLS = 1002  # HSD_SAMPLER_MAX_STEPS + 2
MAX_LATENT = 1 << 22  # HSD_SAMPLER_MAX_LATENT


@dataclass
class SamplerState:
    kind: Sampler
    num_train_timesteps: int
    beta_start: float
    beta_end: float
    beta_schedule: int
    steps_offset: int
    set_alpha_to_one: int
    clip_sample: int
    clip_sample_range: float
    prediction_type: int
    timestep_spacing: int
    skip_prk_steps: int
    n_steps: int  # N
    step: int  # U-Net calls made (= RESULT's k_used)
    n_latent: int  # c*h*w
    lower_order_nums: int
    counter: int
    n_ets: int
    timesteps: np.ndarray  # float32 [n_timesteps]: the U-Net timestep of each call
    sigmas: np.ndarray  # float64 [n_timesteps + 1]
    alpha_prod: np.ndarray  # float32 [n_timesteps]
    alpha_prod_prev: np.ndarray  # float32 [n_timesteps]
    rng_mt: np.ndarray  # uint32 [624]: torch's CPU generator (mt19937) state
    rng_index: int
    rng_next_double: float  # valid when rng_has_next_double
    rng_has_next_double: bool
    rng_next_float: float
    rng_has_next_float: bool
    rng_flavor: int
    history: np.ndarray  # float32 [slots, n_latent]: DPM++ previous x0, PNDM ets...
    original_inference_steps: int = 50  # LCMScheduler (version 2 states)
    timestep_scaling: float = 10.0


def _fail(msg: str) -> VerificationError:
    return VerificationError(f"sampler state rejected: {msg}")


def decode_sampler_state(b: bytes) -> SamplerState:
    b = bytes(b)
    if len(b) < _HEAD.size + 4:
        raise _fail(f"{len(b)} bytes is too short")
    magic, version, kind, total = _HEAD.unpack_from(b)
    if magic != MAGIC:
        raise _fail("bad magic (not an hsd sampler state)")
    if version not in (FORMAT_VERSION, FORMAT_VERSION_LCM):
        raise _fail(f"format version {version}; this client reads {FORMAT_VERSION} and "
                    f"{FORMAT_VERSION_LCM}")
    if total != len(b):
        raise _fail(f"says {total} bytes, has {len(b)}")
    (crc,) = struct.unpack_from("<I", b, len(b) - 4)
    if zlib.crc32(b[:-4]) != crc:
        raise _fail("CRC-32 mismatch (corrupted)")
    if kind >= len(Sampler):
        raise _fail(f"sampler kind {kind} unknown")
    lcm = kind == Sampler.LCM
    if (version == FORMAT_VERSION_LCM) != lcm:
        raise _fail("lcm states are version 2, every other kind version 1")
    off = _HEAD.size
    need = _HEAD.size + _SCHED.size + (_SCHED_LCM.size if lcm else 0) + _PROGRESS.size
    if len(b) < need:
        raise _fail("truncated before its tables")
    sched = _SCHED.unpack_from(b, off)
    off += _SCHED.size
    lcm_keys = (50, 10.0)
    if lcm:
        lcm_keys = _SCHED_LCM.unpack_from(b, off)
        off += _SCHED_LCM.size
    n_steps, step, n_latent, n_ts, lower, counter, n_ets = _PROGRESS.unpack_from(b, off)
    off += _PROGRESS.size
    if not 1 <= n_ts <= MAX_CALLS or step > n_ts or not 1 <= n_latent <= MAX_LATENT:
        raise _fail(f"{n_ts} calls, at call {step}, latent of {n_latent}: out of range")

    def take(dtype: str, n: int) -> np.ndarray:
        nonlocal off
        size = np.dtype(dtype).itemsize * n
        if off + size > len(b) - 4:
            raise _fail("truncated")
        a = np.frombuffer(b, dtype=dtype, count=n, offset=off).copy()
        off += size
        return a

    timesteps = take("<f4", n_ts)
    sigmas = take("<f8", n_ts + 1)
    alpha_prod = take("<f4", n_ts)
    alpha_prod_prev = take("<f4", n_ts)
    mt = take("<u4", 624)
    if off + _RNG_TAIL.size + 4 > len(b) - 4:
        raise _fail("truncated")
    index, has_d, next_d, has_f, next_f, flavor = _RNG_TAIL.unpack_from(b, off)
    off += _RNG_TAIL.size
    (slots,) = struct.unpack_from("<I", b, off)
    off += 4
    if slots > 8 or off + 4 * slots * n_latent != len(b) - 4:
        raise _fail(f"history of {slots} slots x {n_latent} does not fill the rest "
                    f"({len(b) - 4 - off} bytes)")
    history = take("<f4", slots * n_latent).reshape(slots, n_latent)
    return SamplerState(Sampler(kind), *sched, n_steps, step, n_latent, lower, counter, n_ets,
                        timesteps.astype(np.float32), sigmas.astype(np.float64),
                        alpha_prod.astype(np.float32), alpha_prod_prev.astype(np.float32),
                        mt.astype(np.uint32), index, next_d, bool(has_d), next_f, bool(has_f),
                        flavor, history.astype(np.float32), *lcm_keys)
