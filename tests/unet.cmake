hsd_add_test(test_unet_oracle LABELS oracle TIMEOUT 300 SOURCES unit/test_unet_oracle.c)
hsd_add_test(test_unet_load LABELS unit TIMEOUT 120 SOURCES unit/test_unet_load.c)
hsd_add_test(test_ldm_names LABELS unit TIMEOUT 30 SOURCES unit/test_ldm_names.c)
