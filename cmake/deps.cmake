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
pkg_check_modules(PNG REQUIRED IMPORTED_TARGET libpng)
