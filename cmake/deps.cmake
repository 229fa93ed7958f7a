# Third-party libraries (all from Debian packages; scripts/setup.sh installs
# them): OpenBLAS for GEMM, OpenMP for the thread pool, jansson for JSON.
find_package(PkgConfig REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS C)
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
find_library(MATH_LIB m)
