# Third-party libraries (all from Debian packages; scripts/setup.sh installs
# them): OpenBLAS for GEMM, OpenMP for the thread pool, jansson for JSON.
find_package(PkgConfig REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS C)
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
find_library(MATH_LIB m)
# Tokenizer: PCRE2 for the CLIP pre-tokenizer regex (Unicode classes),
# zlib for the original bpe_simple_vocab_16e6.txt.gz; libpng for images.
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(ZLIB REQUIRED IMPORTED_TARGET zlib)
# ICU (icu-uc) for the tokenizer's NFC normalization and full lowercase
# mapping (host/text/clip_text_clean.c): PCRE2 has neither.
pkg_check_modules(ICU REQUIRED IMPORTED_TARGET icu-uc)
pkg_check_modules(PNG REQUIRED IMPORTED_TARGET libpng)
# Service transport and request authentication (host/net): nanomsg 1.1.5 for
# REQ/raw-REP messaging, libsodium for HMAC-SHA256, constant-time compares and
# random nonces.
pkg_check_modules(NANOMSG REQUIRED IMPORTED_TARGET nanomsg)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
# Prometheus metrics endpoint of hsd serve.
pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
