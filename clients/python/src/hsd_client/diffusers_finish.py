"""Optional: finish a cloud handover on the edge with diffusers (needs torch
and diffusers; `pip install ./clients/python[diffusers]`).

The remaining steps k..N-1 run the way diffusers' StableDiffusionPipeline
runs them after a U-Net swap at step k (tests/oracle/make_pipeline_cases.py
does that swap to make the goldens): the RESULT's latent, its text
embeddings as prompt_embeds / negative_prompt_embeds, and a scheduler of
the same kind whose state is set from the RESULT's sampler state.

Samplers: dpmpp-2m (DPMSolverMultistepScheduler: step index, the previous
x0 prediction and lower_order_nums are carried over), ddim and euler
(stateless beyond the step index). euler-a and pndm are refused: their
state (torch's generator state, PNDM's ets) is not mapped here; finish
those with `hsd edge`.
"""

from __future__ import annotations

import numpy as np

from .client import verify_result
from .errors import InvalidRequest, VerificationError
from .replies import Result
from .wire import GenerateRequest, Sampler


def finish_with_diffusers(res: Result, req: GenerateRequest, unet, vae,
                          scheduler_config) -> np.ndarray:
    """Steps k..N-1 with `unet` (a diffusers UNet2DConditionModel), decoded
    with `vae` (AutoencoderKL or AutoencoderTiny); `scheduler_config`: the
    edge model's scheduler config (a dict or a diffusers FrozenDict).
    Returns the image as uint8 [height, width, 3]."""
    return decode_with_diffusers(denoise_with_diffusers(res, req, unet, scheduler_config), vae)


def denoise_with_diffusers(res: Result, req: GenerateRequest, unet,
                           scheduler_config) -> np.ndarray:
    """The final latent, float32 [c, h, w], after steps k..N-1 on `unet`."""
    import torch
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    classes = {Sampler.DPMPP_2M: DPMSolverMultistepScheduler, Sampler.DDIM: DDIMScheduler,
               Sampler.EULER: EulerDiscreteScheduler}
    st = verify_result(res, req)
    if res.sampler not in classes:
        raise InvalidRequest(f"finish_with_diffusers: sampler {res.sampler.cli_name} is not "
                             "supported (dpmpp-2m, ddim, euler); finish it with hsd edge")
    if res.embeddings is None:
        raise InvalidRequest("finish_with_diffusers needs the text embeddings "
                             "(return_embeddings=True)")
    if res.pooled is not None:  # the U-Net call below passes no added_cond_kwargs
        raise InvalidRequest("finish_with_diffusers: SDXL handovers (pooled embeddings, time "
                             "ids) are not supported yet; finish them with hsd edge")
    sched = classes[res.sampler].from_config(scheduler_config)
    sched.set_timesteps(req.steps)
    # The same schedule on both sides, or the handover means nothing.
    if not np.array_equal(sched.timesteps.numpy().astype(np.float32), st.timesteps):
        raise VerificationError(f"the cloud's timesteps {st.timesteps.tolist()} differ from "
                                f"diffusers' {sched.timesteps.tolist()} for this scheduler config")
    k = res.k_used
    c, h, w = res.latent.shape
    if res.sampler in (Sampler.DPMPP_2M, Sampler.EULER):
        sched._step_index = k  # diffusers keeps it private; set_begin_index is for k = 0 only
    if res.sampler == Sampler.DPMPP_2M:
        # hsd's history slot 0 is the previous step's x0 prediction, which
        # diffusers keeps as model_outputs[-1] between steps.
        sched.lower_order_nums = st.lower_order_nums
        if st.history.shape[0]:
            sched.model_outputs[-1] = torch.from_numpy(st.history[0].reshape(1, c, h, w).copy())

    cfg = req.cfg_scale > 1.0  # diffusers' do_classifier_free_guidance
    g = float(np.float32(req.cfg_scale))  # the f32 the cloud and hsd use
    emb = torch.from_numpy(res.embeddings.copy())
    ctx = torch.cat([emb[1:2], emb[0:1]]) if cfg else emb[0:1]  # diffusers: [uncond, cond]
    latents = torch.from_numpy(res.latent.copy())[None]
    with torch.no_grad():
        for t in sched.timesteps[k:]:
            x = torch.cat([latents] * 2) if cfg else latents
            x = sched.scale_model_input(x, t)
            out = unet(x, t, encoder_hidden_states=ctx).sample
            if cfg:
                uncond, cond = out.chunk(2)
                out = uncond + g * (cond - uncond)
            latents = sched.step(out, t, latents).prev_sample
    return latents[0].numpy()


def decode_with_diffusers(latent: np.ndarray, vae) -> np.ndarray:
    """uint8 [height, width, 3] from a latent [c, h, w], as diffusers'
    pipeline converts it (postprocess, then * 255 rounded)."""
    import torch
    from diffusers.image_processor import VaeImageProcessor

    with torch.no_grad():
        image = vae.decode(torch.from_numpy(latent)[None] / vae.config.scaling_factor).sample
    rgb = VaeImageProcessor().postprocess(image, output_type="np")[0]
    return (rgb * 255).round().astype(np.uint8)
