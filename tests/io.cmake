# I/O and element types: safetensors reader/writer, fp16/bf16 conversion.
hsd_add_test(test_safetensors LABELS unit TIMEOUT 60 SOURCES unit/test_safetensors.c)
hsd_add_test(test_dtype LABELS unit TIMEOUT 60 SOURCES unit/test_dtype.c)
# Configs as diffusers writes them: Python's JSON dialect, and the scheduler
# configs diffusers saves (tests/oracle/make_scheduler_configs.py).
hsd_add_test(test_config_json LABELS oracle TIMEOUT 60 SOURCES unit/test_config_json.c)
# Sharded checkpoints: the *.safetensors.index.json parser and index/shard
# disagreements (the sharded U-Net of tests/data/pipeline_sdxl).
hsd_add_test(test_weights_index LABELS unit TIMEOUT 30 SOURCES unit/test_weights_index.c)
