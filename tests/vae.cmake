# VAEs (host/models/vae*.c): AutoencoderKL and AutoencoderTiny against the
# diffusers goldens in tests/data/vae (tests/oracle/make_vae_cases.py), and
# the loader's failure modes.
hsd_add_test(test_vae LABELS oracle TIMEOUT 120 SOURCES unit/test_vae.c)
