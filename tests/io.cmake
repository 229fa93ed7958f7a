# I/O and element types: safetensors reader/writer, fp16/bf16 conversion.
hsd_add_test(test_safetensors LABELS unit TIMEOUT 60 SOURCES unit/test_safetensors.c)
hsd_add_test(test_dtype LABELS unit TIMEOUT 60 SOURCES unit/test_dtype.c)
