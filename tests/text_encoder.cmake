# CLIP text encoder (host/models/clip_text.c) against transformers goldens in
# tests/data/text (tests/oracle/make_text_cases.py), plus its strict-loading
# and bad-input errors.
hsd_add_test(test_clip_text LABELS oracle TIMEOUT 60 SOURCES unit/test_clip_text.c)
