"""A LoRA holding only the U-Net layers a given U-Net has (text-encoder
layers kept): how a user trims a LoRA so that it fits a pruned edge U-Net.
PEFT names (unet.<module>.lora_A/lora_B.weight) only: their <module> is the
diffusers path, so "the U-Net has it" is "<module>.weight is in its file".

  lora_subset.py IN_LORA UNET_SAFETENSORS OUT_LORA
"""
import sys

from safetensors.numpy import load_file, save_file


def main(src, unet, dst):
    have = set(load_file(unet))
    kept = {}
    for k, v in load_file(src).items():
        if not k.startswith("unet."):
            kept[k] = v
            continue
        module = k[len("unet."):].rsplit(".lora_", 1)[0]
        if module + ".weight" in have:
            kept[k] = v
    dropped = len(load_file(src)) - len(kept)
    if not dropped or not any(k.startswith("unet.") for k in kept):
        sys.exit(f"{src}: {dropped} tensors dropped; expected some U-Net layers kept and some dropped")
    save_file(kept, dst)
    print(f"{dst}: {len(kept)} tensors ({dropped} for layers {unet} lacks dropped)")


if __name__ == "__main__":
    main(*sys.argv[1:4])
