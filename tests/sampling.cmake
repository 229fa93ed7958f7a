# Samplers and the torch-compatible RNG (host/sampling/). Goldens: tests/data/
# sampling/ from tests/oracle/make_sampler_cases.py (regen.sh).
hsd_add_test(test_torch_rng LABELS oracle TIMEOUT 60 SOURCES unit/test_torch_rng.c)
hsd_add_test(test_samplers LABELS oracle TIMEOUT 120 SOURCES unit/test_samplers.c)
hsd_add_test(test_noise_schedule LABELS unit TIMEOUT 30 SOURCES unit/test_noise_schedule.c)
