# Text: the CLIP BPE tokenizer against transformers' goldens (tests/data/
# tokenizer, made by tests/oracle/make_tokenizer_cases.py). The real vocab is
# OpenAI's bpe_simple_vocab_16e6.txt.gz, vendored with CLIP's MIT licence in
# host/text/data; point HSD_CLIP_BPE_GZ elsewhere if needed.
set(HSD_CLIP_BPE_GZ "${CMAKE_SOURCE_DIR}/host/text/data/clip_bpe_simple_vocab_16e6.txt.gz"
    CACHE FILEPATH "OpenAI's bpe_simple_vocab_16e6.txt.gz (tokenizer test and fuzzer)")
hsd_add_test(test_tokenizer LABELS oracle TIMEOUT 120 SOURCES unit/test_tokenizer.c)
target_compile_definitions(test_tokenizer PRIVATE HSD_CLIP_BPE_GZ="${HSD_CLIP_BPE_GZ}")
# A1111 long prompts and emphasis (--prompt-style a1111) against
# tests/data/prompt (tests/oracle/make_prompt_cases.py).
hsd_add_test(test_prompt_a1111 LABELS oracle TIMEOUT 120 SOURCES unit/test_prompt_a1111.c)
