// Host emulation of the CUDA execution model, so that the kernels of cuda/
// run on machines without a GPU (CI, and every session without a device).
// tests/cuda.cmake compiles each kernel file a second time as plain C++
// with -DHSD_CUDA_EMULATE and this header force-included (-include), into
// hsd_cuda_emu, and links the same test programs against it as
// test_cuda_*_emulated (label unit): the launchers, the kernels' index
// math, tiling, masking, padding, pipelining order and the fragment layouts
// of ldmatrix / mma.sync all run for real, on small cases.
//
// Model:
// - A launch runs its blocks one after another; a block runs as blockDim
//   fibers (one OS thread) that switch at __syncthreads, warp
//   shuffles and the warp-collective ldmatrix / mma, in a shuffled order
//   each round. A barrier no one else reaches aborts ("deadlock"); a
//   missing barrier shows only if the order exposes it.
// - __shared__ variables become function-local statics: one copy, shared
//   by the block's threads; blocks never overlap, so that is per block.
// - ldmatrix / mma.sync m16n8k16 follow the PTX ISA's fragment figures
//   ("Warp-level matrix load instruction: ldmatrix", "Matrix Fragments for
//   mma.m16n8k16 with floating point type"), written here from the text,
//   independently of the kernels' derivations in common.cuh. fp32
//   accumulation in k order (the hardware's order is unspecified).
// - cp.async reads its source when issued and lands in shared memory at
//   the latest moment the PTX ISA allows: when the issuing thread's
//   cp.async.wait_group retires its group (groups of one thread, in commit
//   order). A read of the destination before the matching wait sees what
//   was there before (the 0xA5 garbage of a fresh block, or the previous
//   tile), so a missing or too-early wait shows as wrong results. Copies
//   still pending when a thread exits are dropped.
// - Launch limits the hardware enforces fail the launch the way the
//   runtime does (the launcher's cudaGetLastError() then reports
//   cudaErrorInvalidValue): more than 1024 threads per block, a grid y/z
//   over 65535, dynamic shared memory over 48 KB without a prior
//   cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
//   >= bytes), or an opt-in over sm_80's 163 KB (the smaller of A100/H100).
// - Device memory is host memory (malloc), filled with 0xFF bytes on
//   allocation (fp16 and fp32 NaN), so a kernel that reads memory nobody
//   wrote produces NaN instead of a lucky zero; the runtime calls the
//   kernel files and memory.cu/device.cu make are mapped to host
//   equivalents below.
// - Dry run (hsd_cuda_emu_set_dry_run, memory.h): launchers validate and
//   launches check their limits, but no block runs: the shape query of
//   tests/unit/test_cuda_model_shapes.c asks the registry about every op
//   of the real models at full size this way.
// Not modelled: timing, occupancy, registers, static shared memory, the
// hardware rounding of mma, the memory model. It checks what the code
// computes, not how fast or how the hardware schedules it: the device
// check remains the proof.
#ifndef HSD_CUDA_EMULATE_CUH
#define HSD_CUDA_EMULATE_CUH
#ifndef HSD_CUDA_EMULATE
#error "emulate.cuh is for -DHSD_CUDA_EMULATE builds only"
#endif
#ifdef __CUDACC__
#error "emulate.cuh is compiled by the host C++ compiler, not nvcc"
#endif

#define __shared__ static
#define __launch_bounds__(...)
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include <deque>
#include <map>
#include <memory>
#include <utility>
#include <vector>

namespace hsd_emu {

// One cp.async in flight: its 16 bytes, read at issue, and where they land.
struct async_copy {
    void *dst;
    unsigned char bytes[16];
};

// One emulated CUDA thread: a fiber with its own stack. All the fibers of
// a block run on the calling OS thread and switch only at barriers and warp
// collectives, with a 12-instruction stack switch (x86-64 System V: the
// callee-saved registers and rsp): std::thread blocks spent minutes in
// futex wake-ups, ucontext in its sigprocmask system call per switch.
// Order: a pseudo-random permutation per scheduling round, so no thread
// order is favoured.
struct fiber {
    void *sp = nullptr;  // saved stack pointer while switched out
    std::vector<async_copy> open_group;               // issued, not yet committed
    std::deque<std::vector<async_copy>> groups;       // committed, oldest first
    std::unique_ptr<unsigned char[]> stack;  // uninitialised: pages are touched only as used
    size_t stack_size = 0;
    dim3 tid;
    int lane = 0;
    struct warp_ctx *warp = nullptr;
    bool done = false;
};

inline fiber *g_cur;            // the running fiber
inline void *g_sched_sp;        // the scheduler's saved stack pointer
inline unsigned long g_events;  // barrier arrivals, releases and exits: progress

}  // namespace hsd_emu

// hsd_emu_switch(from, to): pushes the callee-saved registers, stores rsp
// in *from, loads rsp = to, pops and returns into the other stack.
// hsd_emu_fiber_start: where a new fiber's first switch returns to; calls
// r13(r12) (entry(fiber)), which never returns. Weak: every emulated
// translation unit carries a copy, the linker keeps one.
#if !defined(__x86_64__)
#error "cuda/emulate.cuh: the fiber switch is written for x86-64"
#endif
extern "C" void hsd_emu_switch(void **from, void *to);
extern "C" void hsd_emu_fiber_start(void);
asm(R"(
    .text
    .weak hsd_emu_switch
    .type hsd_emu_switch, @function
hsd_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size hsd_emu_switch, .-hsd_emu_switch
    .weak hsd_emu_fiber_start
    .type hsd_emu_fiber_start, @function
hsd_emu_fiber_start:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size hsd_emu_fiber_start, .-hsd_emu_fiber_start
)");

namespace hsd_emu {

inline void yield() { hsd_emu_switch(&g_cur->sp, g_sched_sp); }

// A reusable barrier for `count` fibers; a fiber that exits leaves it
// (drop), as exited threads stop counting in a CUDA barrier.
class barrier {
  public:
    void init(int count) { n_ = count; }
    void wait() {
        const unsigned g = gen_;
        g_events++;
        if (++waiting_ >= n_) {
            waiting_ = 0;
            gen_++;
            return;
        }
        while (gen_ == g) yield();
    }
    void drop() {
        n_--;
        g_events++;
        if (waiting_ > 0 && waiting_ >= n_) {
            waiting_ = 0;
            gen_++;
        }
    }

  private:
    int n_ = 0, waiting_ = 0;
    unsigned gen_ = 0;
};

struct warp_ctx {
    barrier bar;
    uint64_t slot[32][8];
};

struct block_ctx {
    barrier bar;
    std::vector<warp_ctx> warps;
    std::vector<unsigned char> smem;
};

inline dim3 g_grid, g_block, g_bid;
inline block_ctx *g_blk;

inline void syncthreads() { g_blk->bar.wait(); }
inline void syncwarp() { g_cur->warp->bar.wait(); }
#define t_warp (hsd_emu::g_cur->warp)
#define t_lane (hsd_emu::g_cur->lane)

// Every lane publishes up to 8 words, waits for the warp, reads, waits again
// (so the slots can be reused by the next collective).
template <typename T>
T shfl(T v, int src) {
    static_assert(sizeof(T) <= 8, "shuffles move up to 8 bytes");
    uint64_t u = 0;
    memcpy(&u, &v, sizeof v);
    t_warp->slot[t_lane][0] = u;
    t_warp->bar.wait();
    const uint64_t r = t_warp->slot[src & 31][0];
    t_warp->bar.wait();
    T out;
    memcpy(&out, &r, sizeof out);
    return out;
}
template <typename T>
T shfl_xor(T v, int mask) {
    return shfl(v, t_lane ^ mask);
}

inline uint16_t bits(__half h) { return __half_raw(h).x; }
inline float f16(uint16_t b) {
    __half_raw r;
    r.x = b;
    return __half2float(__half(r));
}

// ldmatrix.sync.aligned.m8n8.x4(.trans).shared.b16: lanes 8i..8i+7 hold the
// addresses of rows 0..7 of matrix i. Without .trans lane l receives, in
// register i, elements (row l/4, cols 2(l%4), 2(l%4)+1) of matrix i; with
// .trans, (rows 2(l%4), 2(l%4)+1, col l/4). Lower column/row in the low half.
inline void ldmatrix_x4(uint32_t (&r)[4], const void *smem, bool trans) {
    t_warp->slot[t_lane][0] = (uint64_t)(uintptr_t)smem;
    t_warp->bar.wait();
    const int l = t_lane;
    for (int i = 0; i < 4; i++) {
        uint16_t lo, hi;
        if (!trans) {
            const __half *row = (const __half *)(uintptr_t)t_warp->slot[8 * i + l / 4][0];
            lo = bits(row[2 * (l % 4)]);
            hi = bits(row[2 * (l % 4) + 1]);
        } else {
            const __half *r0 = (const __half *)(uintptr_t)t_warp->slot[8 * i + 2 * (l % 4)][0];
            const __half *r1 = (const __half *)(uintptr_t)t_warp->slot[8 * i + 2 * (l % 4) + 1][0];
            lo = bits(r0[l / 4]);
            hi = bits(r1[l / 4]);
        }
        r[i] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
    t_warp->bar.wait();
}

// mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32, from the PTX figures
// (g = lane/4, t = lane%4):
//   A element a_i (i = 0..7, two per register, low half first):
//     row g for i in {0,1,4,5}, g+8 otherwise; col 2t + (i&1), +8 for i >= 4
//   B element b_i (i = 0..3): row (k) 2t + (i&1), +8 for i >= 2; col g
//   C element c_i (i = 0..3): row g for i < 2, g+8 otherwise; col 2t + (i&1)
inline void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    uint64_t *my = t_warp->slot[t_lane];
    for (int i = 0; i < 4; i++) my[i] = a[i];
    my[4] = b0;
    my[5] = b1;
    t_warp->bar.wait();
    // A[row][k]: which lane and which half of which register holds it.
    auto A = [&](int row, int k) {
        const int lane = (row % 8) * 4 + (k % 8) / 2;
        const int i = (row >= 8 ? 2 : 0) + (k >= 8 ? 4 : 0) + (k & 1);  // element index a_i
        const uint32_t reg = (uint32_t)t_warp->slot[lane][i / 2];
        return f16((uint16_t)(i & 1 ? reg >> 16 : reg & 0xffff));
    };
    auto B = [&](int k, int n) {
        const int lane = n * 4 + (k % 8) / 2;
        const int i = (k >= 8 ? 2 : 0) + (k & 1);  // element index b_i
        const uint32_t reg = (uint32_t)t_warp->slot[lane][4 + i / 2];
        return f16((uint16_t)(i & 1 ? reg >> 16 : reg & 0xffff));
    };
    const int g = t_lane / 4, t = t_lane % 4;
    float out[4];
    for (int e = 0; e < 4; e++) {
        const int row = g + (e >= 2 ? 8 : 0), col = 2 * t + (e & 1);
        float acc = c[e];
        for (int k = 0; k < 16; k++) acc += A(row, k) * B(k, col);
        out[e] = acc;
    }
    t_warp->bar.wait();
    for (int e = 0; e < 4; e++) c[e] = out[e];
}

// Runs body() as every thread of every block of the grid.
inline void *g_body;              // the launch's body (type-erased)
inline void (*g_body_call)(void *);

[[noreturn]] inline void fiber_main(fiber *f) {
    g_body_call(g_body);
    f->warp->bar.drop();
    g_blk->bar.drop();
    f->done = true;
    g_events++;
    for (;;) hsd_emu_switch(&f->sp, g_sched_sp);  // never resumed
}

// A fresh fiber's stack: what hsd_emu_switch pops (r15, r14, r13 = entry,
// r12 = fiber, rbx, rbp) then the return address hsd_emu_fiber_start, in
// the top 8 bytes of a 16-aligned stack: after that `ret`, rsp is 16-aligned
// and the `call` into the entry leaves rsp = 8 mod 16, as the ABI wants.
inline void fiber_init(fiber &f) {
    uintptr_t top = ((uintptr_t)f.stack.get() + f.stack_size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)top;
    *--sp = (uint64_t)(uintptr_t)&hsd_emu_fiber_start;
    *--sp = 0;                                   // rbp
    *--sp = 0;                                   // rbx
    *--sp = (uint64_t)(uintptr_t)&f;             // r12
    *--sp = (uint64_t)(uintptr_t)&fiber_main;    // r13
    *--sp = 0;                                   // r14
    *--sp = 0;                                   // r15
    f.sp = sp;
}

inline bool g_dry;                              // launches check limits, run nothing
inline cudaError_t g_last_error = cudaSuccess;  // sticky until cudaGetLastError()
inline std::map<const void *, int> g_smem_optin;  // kernel -> max dynamic smem attribute
constexpr int kMaxOptinSmem = 163 * 1024;       // sm_80's opt-in ceiling (sm_90: 227 KB)

inline cudaError_t get_last_error() {
    cudaError_t e = g_last_error;
    g_last_error = cudaSuccess;
    return e;
}

// cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, v).
inline cudaError_t func_set_attribute(const void *kernel, cudaFuncAttribute attr, int v) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
    if (v < 0 || v > kMaxOptinSmem) return cudaErrorInvalidValue;
    g_smem_optin[kernel] = v;
    return cudaSuccess;
}

// What the runtime refuses at launch (cudaErrorInvalidValue /
// cudaErrorInvalidConfiguration): reported through cudaGetLastError().
inline bool launch_refused(const void *kernel, dim3 grid, dim3 block, size_t smem) {
    const unsigned long threads = (unsigned long)block.x * block.y * block.z;
    const char *why = nullptr;
    if (threads == 0 || threads > 1024 || block.z > 64) why = "block size";
    else if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535)
        why = "grid size";
    else if (smem > 48 * 1024) {
        auto it = g_smem_optin.find(kernel);
        if (it == g_smem_optin.end() || (size_t)it->second < smem)
            why = "dynamic shared memory over 48 KB without the opt-in attribute";
    }
    if (!why) return false;
    fprintf(stderr, "hsd_emu: launch refused: %s (grid %u,%u,%u block %u,%u,%u smem %zu)\n", why,
            grid.x, grid.y, grid.z, block.x, block.y, block.z, smem);
    g_last_error = threads > 1024 || grid.y > 65535 ? cudaErrorInvalidConfiguration
                                                    : cudaErrorInvalidValue;
    return true;
}

template <typename F>
void launch(const void *kernel, dim3 grid, dim3 block, size_t smem, F body) {
    constexpr size_t kStack = 128 * 1024;
    if (launch_refused(kernel, grid, block, smem) || g_dry) return;
    g_grid = grid;
    g_block = block;
    g_body = &body;
    g_body_call = [](void *b) { (*(F *)b)(); };
    const int nthreads = (int)(block.x * block.y * block.z);
    std::vector<fiber> fibers((size_t)nthreads);
    for (auto &f : fibers) {
        f.stack.reset(new unsigned char[kStack]);
        f.stack_size = kStack;
    }
    std::vector<int> order((size_t)nthreads);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                block_ctx ctx;
                ctx.bar.init(nthreads);
                ctx.warps = std::vector<warp_ctx>((size_t)(nthreads + 31) / 32);
                for (size_t w = 0; w < ctx.warps.size(); w++) {
                    const int in_warp = nthreads - (int)w * 32 < 32 ? nthreads - (int)w * 32 : 32;
                    ctx.warps[w].bar.init(in_warp);
                }
                ctx.smem.assign(smem + 16, 0xA5);  // garbage, not zeros
                g_blk = &ctx;
                g_bid = dim3(bx, by, bz);
                for (int t = 0; t < nthreads; t++) {
                    fiber &f = fibers[(size_t)t];
                    f.tid = dim3((unsigned)t % block.x, (unsigned)t / block.x % block.y,
                                 (unsigned)t / (block.x * block.y));
                    f.lane = t % 32;
                    f.warp = &ctx.warps[(size_t)t / 32];
                    f.done = false;
                    f.open_group.clear();
                    f.groups.clear();
                    fiber_init(f);
                    order[(size_t)t] = t;
                }
                for (int left = nthreads; left > 0;) {
                    // A new permutation per round (xorshift Fisher-Yates).
                    for (int i = nthreads - 1; i > 0; i--) {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        std::swap(order[(size_t)i], order[(size_t)(rng % (uint64_t)(i + 1))]);
                    }
                    const unsigned long before = g_events;
                    for (int i : order) {
                        fiber &f = fibers[(size_t)i];
                        if (f.done) continue;
                        g_cur = &f;
                        hsd_emu_switch(&g_sched_sp, f.sp);
                        if (f.done) left--;
                    }
                    if (g_events == before) {
                        fprintf(stderr, "hsd_emu: deadlock in block (%u,%u,%u): %d threads wait "
                                        "at barriers no one else reaches\n", bx, by, bz, left);
                        abort();
                    }
                }
                g_cur = nullptr;
            }
}

inline unsigned char *dynamic_smem() {
    // 16-byte aligned start inside the block's buffer.
    uintptr_t p = (uintptr_t)g_blk->smem.data();
    return (unsigned char *)((p + 15) & ~(uintptr_t)15);
}

// ---- runtime API stand-ins -------------------------------------------------------
// 0xFF bytes: fp16 0xFFFF and fp32 0xFFFFFFFF are NaNs (see the header).
inline cudaError_t malloc_(void **p, size_t bytes) {
    const size_t rounded = (bytes + 255) & ~(size_t)255;
    *p = aligned_alloc(256, rounded ? rounded : 256);
    if (*p) memset(*p, 0xFF, rounded);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t device_properties(cudaDeviceProp *p, int dev) {
    if (dev != 0) return cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    strcpy(p->name, "CPU emulation (cuda/emulate.cuh)");
    p->major = 8;
    p->minor = 0;
    p->multiProcessorCount = 1;
    p->totalGlobalMem = (size_t)1 << 32;
    p->l2CacheSize = 1 << 20;
    return cudaSuccess;
}
inline cudaError_t device_attribute(int *v, cudaDeviceAttr a, int dev) {
    cudaDeviceProp p;
    cudaError_t e = device_properties(&p, dev);
    if (e != cudaSuccess) return e;
    *v = a == cudaDevAttrComputeCapabilityMajor ? p.major
         : a == cudaDevAttrComputeCapabilityMinor ? p.minor
                                                  : 0;
    return cudaSuccess;
}

}  // namespace hsd_emu

#define threadIdx (hsd_emu::g_cur->tid)
#define blockIdx (hsd_emu::g_bid)
#define blockDim (hsd_emu::g_block)
#define gridDim (hsd_emu::g_grid)
#define __syncthreads() hsd_emu::syncthreads()
#define __syncwarp(...) hsd_emu::syncwarp()
#define __shfl_xor_sync(mask, v, m) hsd_emu::shfl_xor((v), (m))
#define __shfl_sync(mask, v, src) hsd_emu::shfl((v), (src))

// The common.cuh primitives.
#define HSD_LAUNCH(kernel, grid, block, smem, stream, ...)                                 \
    hsd_emu::launch(reinterpret_cast<const void *>(kernel), dim3(grid), dim3(block),        \
                    (size_t)(smem), [&] { kernel(__VA_ARGS__); })
#define HSD_DYNAMIC_SMEM(name) unsigned char *name = hsd_emu::dynamic_smem()
// cp.async: the source is read now, the destination written at the wait
// that retires the group (see the header).
inline void hsd_cp_async16(void *smem, const void *src, bool pred) {
    hsd_emu::async_copy c;
    c.dst = smem;
    if (pred) memcpy(c.bytes, src, 16);
    else memset(c.bytes, 0, 16);
    hsd_emu::g_cur->open_group.push_back(c);
}
inline void hsd_cp_async_commit() {
    hsd_emu::fiber *f = hsd_emu::g_cur;
    f->groups.push_back(std::move(f->open_group));
    f->open_group.clear();
}
// cp.async.wait_group N: every group but the newest N has landed.
template <int N>
inline void hsd_cp_async_wait() {
    hsd_emu::fiber *f = hsd_emu::g_cur;
    while (f->groups.size() > (size_t)N) {
        for (const hsd_emu::async_copy &c : f->groups.front()) memcpy(c.dst, c.bytes, 16);
        f->groups.pop_front();
    }
}
inline void hsd_ldmatrix_x4(uint32_t (&r)[4], const void *smem) { hsd_emu::ldmatrix_x4(r, smem, false); }
inline void hsd_ldmatrix_x4_trans(uint32_t (&r)[4], const void *smem) {
    hsd_emu::ldmatrix_x4(r, smem, true);
}
inline void hsd_mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    hsd_emu::mma_16816(c, a, b0, b1);
}
// CUDA's integer min/max and normcdff (not in the C library).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline float normcdff(float x) { return 0.5f * erfcf(-x * (float)M_SQRT1_2); }

// Runtime calls made by the kernel files, memory.cu and device.cu.
namespace hsd_emu {
inline cudaError_t ok() { return cudaSuccess; }
inline cudaError_t free_(void *p) {
    free(p);
    return cudaSuccess;
}
inline cudaError_t memcpy_(void *dst, const void *src, size_t bytes) {
    memcpy(dst, src, bytes);
    return cudaSuccess;
}
inline cudaError_t memset_(void *dst, int v, size_t bytes) {
    memset(dst, v, bytes);
    return cudaSuccess;
}
inline cudaError_t set_int(int *p, int v) {
    *p = v;
    return cudaSuccess;
}
}  // namespace hsd_emu
#define cudaGetLastError() hsd_emu::get_last_error()
#define cudaGetErrorString(e) ((e) == cudaSuccess ? "no error" : "emulated runtime error")
#define cudaFuncSetAttribute(kernel, attr, v) \
    hsd_emu::func_set_attribute(reinterpret_cast<const void *>(kernel), (attr), (v))
#define cudaThreadExchangeStreamCaptureMode(mode) ((void)(mode), hsd_emu::ok())
#define cudaMallocAsync(pp, bytes, stream) hsd_emu::malloc_((void **)(pp), (bytes))
#define cudaFreeAsync(p, stream) hsd_emu::free_(p)
#define cudaMalloc(pp, bytes) hsd_emu::malloc_((void **)(pp), (bytes))
#define cudaFree(p) hsd_emu::free_(p)
#define cudaMemcpy(dst, src, bytes, kind) hsd_emu::memcpy_((dst), (src), (bytes))
#define cudaMemset(dst, v, bytes) hsd_emu::memset_((dst), (v), (bytes))
#define cudaDeviceSynchronize() hsd_emu::ok()
#define cudaGetDeviceCount(n) hsd_emu::set_int((n), 1)
#define cudaDriverGetVersion(v) hsd_emu::set_int((v), CUDART_VERSION)
#define cudaRuntimeGetVersion(v) hsd_emu::set_int((v), CUDART_VERSION)
#define cudaGetDevice(d) hsd_emu::set_int((d), 0)
#define cudaGetDeviceProperties(p, d) hsd_emu::device_properties((p), (d))
#define cudaDeviceGetAttribute(v, a, d) hsd_emu::device_attribute((v), (a), (d))

#endif
