#!/usr/bin/env python3
"""Scheduler configs exactly as diffusers saves them (tests/data/sampling/saved_configs/).

Users switch a pipeline's scheduler and save the folder; diffusers then
writes scheduler/scheduler_config.json with Python's json module, which
spells -inf as the bare token -Infinity (DPMSolverMultistepScheduler's
lambda_min_clipped) and adds every key of the new class. For each scheduler
class hsd maps to a sampler (and LCMScheduler, whose sampler comes later),
built with from_config on three published configs (SD 1.5's PNDM file,
SD 2's v-prediction DDIM file and SDXL-base's Euler file), this writes:

  <Class>.<base>.json   save_config's file, unchanged
  manifest.json         per file: the hsd sampler it maps to (or null) and
                        diffusers' timesteps after set_timesteps(N) for N in
                        STEPS, which hsd must reproduce from the saved file

Usage:  python make_scheduler_configs.py [--out tests/data/sampling/saved_configs]
Deterministic: running it twice gives byte-identical files (regen.sh).
"""

import argparse
import json
import os
import tempfile

import torch

BASES = {
    # runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json
    "sd15": {"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "beta_start": 0.00085, "num_train_timesteps": 1000, "set_alpha_to_one": False,
             "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
             "clip_sample": False},
    # stabilityai/stable-diffusion-2 scheduler/scheduler_config.json
    "sd2v": {"_class_name": "DDIMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "beta_start": 0.00085, "clip_sample": False, "num_train_timesteps": 1000,
             "prediction_type": "v_prediction", "set_alpha_to_one": False, "skip_prk_steps": True,
             "steps_offset": 1, "trained_betas": None},
    # stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json
    "sdxl": {"_class_name": "EulerDiscreteScheduler", "beta_end": 0.012,
             "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
             "interpolation_type": "linear", "num_train_timesteps": 1000,
             "prediction_type": "epsilon", "sample_max_value": 1.0, "set_alpha_to_one": False,
             "skip_prk_steps": True, "steps_offset": 1, "timestep_spacing": "leading",
             "trained_betas": None, "use_karras_sigmas": False},
}
STEPS = [4, 25]


def check_sdxl_is_sd15_leading(cls):
    """SDXL's schedule is SD 1.5's betas with "leading" spacing: diffusers
    gives it the same timesteps and sigmas as tests/data/sampling's
    sd15_leading config (make_sampler_cases.py), whose sigmas
    test_samplers checks bit for bit; test_config_json then requires hsd's
    SDXL sigmas to equal its sd15_leading ones."""
    leading = dict(BASES["sd15"], timestep_spacing="leading")
    for n in STEPS + [1, 10, 50]:
        a, b = cls.from_config(BASES["sdxl"]), cls.from_config(leading)
        a.set_timesteps(n)
        b.set_timesteps(n)
        assert torch.equal(a.timesteps, b.timesteps), (cls, n)
        if hasattr(a, "sigmas"):
            assert torch.equal(a.sigmas, b.sigmas), (cls, n)


def classes():
    from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                           EulerDiscreteScheduler, LCMScheduler, PNDMScheduler)
    return [("DDIMScheduler", DDIMScheduler, "ddim"),
            ("PNDMScheduler", PNDMScheduler, "pndm"),
            ("EulerDiscreteScheduler", EulerDiscreteScheduler, "euler"),
            ("EulerAncestralDiscreteScheduler", EulerAncestralDiscreteScheduler, "euler-a"),
            ("DPMSolverMultistepScheduler", DPMSolverMultistepScheduler, "dpmpp-2m"),
            ("LCMScheduler", LCMScheduler, None)]


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "data", "sampling", "saved_configs"))
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)
    manifest = []
    for base_name, base in BASES.items():
        for cls_name, cls, sampler in classes():
            sched = cls.from_config(base)
            with tempfile.TemporaryDirectory() as tmp:
                sched.save_config(tmp)
                with open(os.path.join(tmp, "scheduler_config.json"), encoding="utf-8") as f:
                    text = f.read()
            name = f"{cls_name}.{base_name}.json"
            with open(os.path.join(out, name), "w", encoding="utf-8") as f:
                f.write(text)
            entry = {"file": name, "class": cls_name, "sampler": sampler, "timesteps": {}}
            for n in STEPS:
                s = cls.from_config(base)
                s.set_timesteps(n)
                entry["timesteps"][str(n)] = [float(t) for t in s.timesteps]
            manifest.append(entry)
            if base_name == "sdxl":
                check_sdxl_is_sd15_leading(cls)
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
