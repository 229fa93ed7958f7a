#!/usr/bin/env python3
"""Make the committed sampler and torch-RNG goldens in tests/data/sampling/.

  torch_rng.json      torch.Generator("cpu").manual_seed(s) + torch.randn(n)
                      float32 bit patterns (uint32) for seeds x sizes, both
                      of torch's CPU normal kernels ("avx2": what torch runs
                      on any x86-64 CPU with AVX2, forced with
                      ATEN_CPU_CAPABILITY=avx2; "libm": ATEN_CPU_CAPABILITY=
                      default, the portable kernel that calls logf/cosf/sinf),
                      large tensors as FNV-1a-64 of all bits + first/last 64,
                      and sequences of draws from one generator (the scalar
                      path's cached second normal, re-seeding).
  samplers.json       per scheduler config: alphas_cumprod; per sampler,
                      config and N: timesteps, sigmas, init_noise_sigma; and
                      the index of the trajectories.
  samplers.safetensors  trajectories: "<sampler>.<config>.N<n>" [calls+1, 256]
                      F32, row 0 the initial latent (torch.randn(1,4,8,8) with
                      TRAJ_SEED times init_noise_sigma), row k+1 the latent
                      after model call k.

The "model" of a trajectory is a fixed function the C test recomputes:
    model_out = 0.9 * scale_model_input(x, t) + 0.1 * randn((1,4,8,8),
                generator=torch.Generator().manual_seed(NOISE_SEED + call))
and the loop is StableDiffusionPipeline's: one generator draws the initial
latent and is passed to scheduler.step (Euler ancestral draws from it).

Usage:  python make_sampler_cases.py [--out tests/data/sampling]
Deterministic: running it twice gives byte-identical files (regen.sh).
"""

import argparse
import json
import os
import subprocess
import sys

# Pin the CPU code paths torch takes, so the goldens do not depend on the
# machine that makes them; set before torch is imported.
# - ATEN_CPU_CAPABILITY=avx2: torch.randn's AVX2 normal kernel (what any
#   x86-64 with AVX2 runs; the RNG goldens also record the portable one).
# - MKL_ENABLE_INSTRUCTIONS=AVX2: torch.sqrt on float32 CPU tensors is MKL's
#   vsSqrt, whose AVX-512 code path is 1 ulp off IEEE sqrt for ~0.6% of
#   inputs (6 of SD1.5's 1000 sigmas); its AVX2 path is IEEE-exact, as C's
#   sqrtf. Measured with torch 2.15.0 on a Xeon with AVX-512.
if "--rng-flavor" not in sys.argv:
    os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
os.environ["MKL_ENABLE_INSTRUCTIONS"] = "AVX2"

import numpy as np  # noqa: E402
import torch  # noqa: E402

SEEDS = [0, 1, 42, 2**32 + 7, 2**64 - 1]  # 2**64 - 1: the largest manual_seed accepts
SIZES = [1, 2, 7, 15, 16, 17, 31, 33, 100, 4 * 8 * 8]
BIG = 4 * 64 * 64
TRAJ_SEED = 42
NOISE_SEED = 1000
LATENT = (1, 4, 8, 8)
STEPS = [1, 2, 3, 7, 10, 25, 50, 100]

SD15 = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}
CONFIGS = {
    "sd15": SD15,
    "sd15_linspace": dict(SD15, timestep_spacing="linspace"),
    "sd15_leading": dict(SD15, timestep_spacing="leading"),
    "sd15_trailing": dict(SD15, timestep_spacing="trailing"),
    # SD 2.x 768-v: the same schedule with v-prediction.
    "sd2v": dict(SD15, prediction_type="v_prediction"),
    "linear": {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02,
               "num_train_timesteps": 1000, "skip_prk_steps": True},
    "cosine": {"beta_schedule": "squaredcos_cap_v2", "num_train_timesteps": 1000,
               "skip_prk_steps": True, "steps_offset": 1},
}
SAMPLERS = ["dpmpp-2m", "ddim", "euler", "euler-a", "pndm"]
TRAJECTORIES = (
    [(s, "sd15", n) for s in SAMPLERS for n in (10, 25)]
    + [(s, "sd2v", 10) for s in SAMPLERS]
    + [(s, "sd15", n) for s in SAMPLERS for n in (1, 2)]
    + [("euler", "sd15_leading", 10), ("euler-a", "sd15_trailing", 10),
       ("ddim", "sd15_trailing", 10), ("dpmpp-2m", "sd15_leading", 10),
       ("pndm", "sd15_linspace", 10), ("ddim", "cosine", 10), ("dpmpp-2m", "linear", 10)]
)


def bits(t):
    return [int(v) for v in t.contiguous().numpy().view(np.uint32)]


def fnv1a64(words):
    # Over the little-endian bytes of the float32 values.
    h = 0xCBF29CE484222325
    for b in np.asarray(words, dtype="<u4").tobytes():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def rng_cases(flavor):
    """Run in a child process whose ATEN_CPU_CAPABILITY selects the kernel."""
    torch.set_num_threads(1)
    cap = torch.backends.cpu.get_cpu_capability()
    out = {"flavor": flavor, "cpu_capability": cap, "cases": [], "big": [], "sequences": []}
    for seed in SEEDS:
        for n in SIZES:
            if flavor == "libm" and n < 16:
                continue  # the scalar path is the same kernel for both
            g = torch.Generator().manual_seed(seed)
            out["cases"].append({"seed": str(seed), "n": n, "bits": bits(torch.randn(n, generator=g))})
        g = torch.Generator().manual_seed(seed)
        b = bits(torch.randn(BIG, generator=g))
        out["big"].append({"seed": str(seed), "n": BIG, "fnv1a64": fnv1a64(b),
                           "first": b[:64], "last": b[-64:]})
    # One generator, successive calls: vector path, scalar path with the
    # cached second value, vector path (cache untouched), re-seed (cache
    # dropped), and a latent-shaped draw as randn_tensor makes it.
    g = torch.Generator().manual_seed(42)
    ops = []
    for n in [17, 16, 5, 1, 1, 3, 16, 1, 2]:
        ops.append({"op": "randn", "n": n, "bits": bits(torch.randn(n, generator=g))})
    ops.append({"op": "randn", "n": 1, "bits": bits(torch.randn(1, generator=g))})
    g.manual_seed(7)
    ops.append({"op": "seed", "seed": "7"})
    for n in [1, 1, 256]:
        ops.append({"op": "randn", "n": n, "bits": bits(torch.randn(n, generator=g))})
    out["sequences"].append({"seed": "42", "ops": ops})
    return out


def make_scheduler(name, config):
    from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                           EulerDiscreteScheduler, PNDMScheduler)
    cls = {"dpmpp-2m": DPMSolverMultistepScheduler, "ddim": DDIMScheduler, "euler": EulerDiscreteScheduler,
           "euler-a": EulerAncestralDiscreteScheduler, "pndm": PNDMScheduler}[name]
    return cls.from_config(config)


def as_float(x):
    return float(x.item() if torch.is_tensor(x) else x)


def schedule_case(name, cfg_name, n):
    sched = make_scheduler(name, CONFIGS[cfg_name])
    sched.set_timesteps(n)
    case = {"sampler": name, "config": cfg_name, "n": n,
            "timesteps": [float(t) for t in sched.timesteps.tolist()],
            "init_noise_sigma": as_float(sched.init_noise_sigma)}
    if name in ("dpmpp-2m", "euler", "euler-a"):
        case["sigmas"] = [float(s) for s in sched.sigmas.tolist()]
    return case


def trajectory(name, cfg_name, n):
    sched = make_scheduler(name, CONFIGS[cfg_name])
    sched.set_timesteps(n)
    g = torch.Generator().manual_seed(TRAJ_SEED)
    # StableDiffusionPipeline.prepare_latents: randn_tensor * init_noise_sigma
    x = torch.randn(LATENT, generator=g, dtype=torch.float32) * sched.init_noise_sigma
    rows = [x.flatten().clone()]
    extra = {"generator": g} if name == "euler-a" else {}
    for i, t in enumerate(sched.timesteps):
        inp = sched.scale_model_input(x, t)
        noise = torch.randn(LATENT, generator=torch.Generator().manual_seed(NOISE_SEED + i))
        model_out = 0.9 * inp + 0.1 * noise
        x = sched.step(model_out, t, x, **extra).prev_sample
        rows.append(x.flatten().clone())
    return torch.stack(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "data", "sampling"))
    ap.add_argument("--rng-flavor", help=argparse.SUPPRESS)  # child mode
    args = ap.parse_args()
    if args.rng_flavor:
        json.dump(rng_cases(args.rng_flavor), sys.stdout)
        return

    import diffusers
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)

    flavors = []
    for flavor, cap in (("avx2", "avx2"), ("libm", "default")):
        env = dict(os.environ, ATEN_CPU_CAPABILITY=cap)
        res = subprocess.run([sys.executable, os.path.abspath(__file__), "--rng-flavor", flavor],
                             env=env, check=True, capture_output=True, text=True)
        flavors.append(json.loads(res.stdout))
    rng = {"torch": torch.__version__, "flavors": flavors}
    with open(os.path.join(args.out, "torch_rng.json"), "w") as f:
        json.dump(rng, f, separators=(",", ":"))
        f.write("\n")

    doc = {"torch": torch.__version__, "diffusers": diffusers.__version__,
           "traj_seed": TRAJ_SEED, "noise_seed": NOISE_SEED, "latent": list(LATENT),
           "configs": CONFIGS, "alphas_cumprod": {}, "schedules": [], "trajectories": []}
    for cfg_name in ("sd15", "linear", "cosine"):
        ac = make_scheduler("ddim", CONFIGS[cfg_name]).alphas_cumprod
        doc["alphas_cumprod"][cfg_name] = [float(v) for v in ac.tolist()]
    for cfg_name in CONFIGS:
        for name in SAMPLERS:
            for n in STEPS:
                doc["schedules"].append(schedule_case(name, cfg_name, n))
    tensors = {}
    for name, cfg_name, n in TRAJECTORIES:
        key = "%s.%s.N%d" % (name, cfg_name, n)
        tensors[key] = trajectory(name, cfg_name, n).contiguous()
        doc["trajectories"].append({"sampler": name, "config": cfg_name, "n": n, "tensor": key})
    with open(os.path.join(args.out, "samplers.json"), "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
        f.write("\n")
    save_file(tensors, os.path.join(args.out, "samplers.safetensors"),
              metadata={"torch": torch.__version__, "diffusers": diffusers.__version__})
    os.chmod(os.path.join(args.out, "samplers.safetensors"), 0o644)  # save_file makes it 0600


if __name__ == "__main__":
    main()
