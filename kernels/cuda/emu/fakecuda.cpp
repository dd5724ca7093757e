// fakecuda.cpp — a stand-in for the NVIDIA driver library (libcuda.so.1) that
// runs roentgo's kernels on the CPU emulator of emu.h, so that the cuda-tagged
// Go code (gorgonia.org/cu, kernels/cuda's device, allocator and launchers, the
// tensor package's CUDA device, the pipeline on "cuda") runs end to end on a
// machine without a GPU. Built and used by scripts/emu-cuda.sh:
//
//   g++ -std=c++20 -O1 -shared -fPIC -DROENTGO_EMU -o libcuda.so.1 fakecuda.cpp
//   LD_LIBRARY_PATH=<that folder> ./tensor.test -test.run '^TestCUDA'
//
// It implements the driver calls kernels/cuda makes (device queries, primary
// context, one stream, module load, kernel lookup and launch, memory
// allocation, copies and memset) with host memory standing in for device
// memory; launches run synchronously on the calling thread. Kernels are found
// by name in kernel_table.inc (generated from the PTX entry points), whose
// entries unpack the driver's parameter array into the kernel's C++ signature.
// ROENTGO_EMU_TRACE=1 prints every launch. What it cannot check: timing, true concurrency between warps and blocks, and
// PTX itself (the kernels are compiled from the .cu sources by g++).
#include "emu.h"

#define ROENTGO_EMU 1
inline float __fadd_rn(float a, float b) { return a + b; }
#include "../attention.cu"
#include "../attention_backward.cu"
#include "../conv.cu"
#include "../conv_backward.cu"
#include "../elementwise.cu"
#include "../gemm.cu"
#include "../norm.cu"
#include "../normact_backward.cu"

#include <cstddef>
#include <cstring>
#include <map>
#include <string>
#include <utility>

namespace {

template <class... A, std::size_t... I>
void call_with(void (*f)(A...), void** p, std::index_sequence<I...>) {
  f(*reinterpret_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(p[I])...);
}

// invoke calls kernel f with the values the driver's parameter array points to.
template <class... A>
void invoke(void (*f)(A...), void** p) {
  call_with(f, p, std::index_sequence_for<A...>{});
}

struct Kernel {
  const char* name;
  void (*call)(void** params);
};

#define K(name) {#name, [](void** p) { invoke(name, p); }},
const Kernel kernels[] = {
#include "kernel_table.inc"
};
#undef K

const Kernel* find(const char* name) {
  for (const Kernel& k : kernels)
    if (std::strcmp(k.name, name) == 0) return &k;
  return nullptr;
}

std::map<unsigned long long, std::size_t> live;  // allocations and their sizes
std::size_t in_use = 0;
const std::size_t total_mem = 8ull << 30;
int module_token, stream_token, ctx_token;

}  // namespace

extern "C" {

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
enum { OK = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, NOT_FOUND = 500 };

CUresult cuInit(unsigned) { return OK; }
CUresult cuDriverGetVersion(int* v) { *v = 13000; return OK; }
CUresult cuDeviceGetCount(int* n) { *n = 1; return OK; }
CUresult cuDeviceGet(int* d, int ordinal) { *d = ordinal; return ordinal == 0 ? OK : INVALID_VALUE; }
CUresult cuDeviceGetName(char* name, int len, int) {
  std::snprintf(name, len, "roentgo CPU emulator (fake libcuda)");
  return OK;
}
CUresult cuDeviceGetAttribute(int* v, int attr, int) {
  switch (attr) {
    case 16: *v = 4; break;   // multiprocessor count
    case 75: *v = 9; break;   // compute capability major
    case 76: *v = 0; break;   // minor
    default: *v = 0;
  }
  return OK;
}
CUresult cuDeviceTotalMem_v2(std::size_t* b, int) { *b = total_mem; return OK; }
CUresult cuDevicePrimaryCtxRetain(void** c, int) { *c = &ctx_token; return OK; }
CUresult cuDevicePrimaryCtxRelease_v2(int) { return OK; }
CUresult cuCtxSetCurrent(void*) { return OK; }
CUresult cuStreamCreate(void** s, unsigned) { *s = &stream_token; return OK; }
CUresult cuStreamSynchronize(void*) { return OK; }
CUresult cuStreamDestroy_v2(void*) { return OK; }
CUresult cuCtxSynchronize() { return OK; }
CUresult cuModuleLoadData(void** m, const void*) { *m = &module_token; return OK; }
CUresult cuModuleUnload(void*) { return OK; }
CUresult cuModuleGetFunction(void** f, void*, const char* name) {
  const Kernel* k = find(name);
  if (!k) return NOT_FOUND;
  *f = const_cast<Kernel*>(k);
  return OK;
}
CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned, void*, void** params, void**) {
  if (!f || by != 1 || bz != 1 || bx == 0 || bx > 1024) return INVALID_VALUE;
  const Kernel* k = static_cast<const Kernel*>(f);
  static const bool trace = std::getenv("ROENTGO_EMU_TRACE") != nullptr;
  if (trace) std::fprintf(stderr, "emu: %s grid %u,%u,%u block %u\n", k->name, gx, gy, gz, bx);
  emu::launch(dim3e{gx, gy, gz}, (int)bx, [&] { k->call(params); });
  return OK;
}
CUresult cuMemAlloc_v2(CUdeviceptr* p, std::size_t n) {
  if (in_use + n > total_mem) return OUT_OF_MEMORY;
  void* m = std::aligned_alloc(256, (n + 255) / 256 * 256);
  if (!m) return OUT_OF_MEMORY;
  std::memset(m, 0xff, n);  // NaN in every float dtype: unwritten memory shows
  *p = (CUdeviceptr)m;
  live[*p] = n;
  in_use += n;
  return OK;
}
CUresult cuMemFree_v2(CUdeviceptr p) {
  auto it = live.find(p);
  if (it == live.end()) return INVALID_VALUE;
  in_use -= it->second;
  live.erase(it);
  std::free((void*)p);
  return OK;
}
CUresult cuMemGetInfo_v2(std::size_t* free, std::size_t* total) {
  *free = total_mem - in_use;
  *total = total_mem;
  return OK;
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void* s, std::size_t n, void*) {
  std::memcpy((void*)d, s, n);
  return OK;
}
CUresult cuMemcpyDtoHAsync_v2(void* d, CUdeviceptr s, std::size_t n, void*) {
  std::memcpy(d, (const void*)s, n);
  return OK;
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr s, std::size_t n, void*) {
  std::memmove((void*)d, (const void*)s, n);
  return OK;
}
CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, std::size_t n, void*) {
  std::memset((void*)d, v, n);
  return OK;
}

}  // extern "C"
