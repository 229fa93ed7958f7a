hsd_add_test(test_pipeline LABELS oracle TIMEOUT 600 SOURCES unit/test_pipeline.c)
hsd_add_test(test_png LABELS unit TIMEOUT 30 SOURCES unit/test_png.c)
