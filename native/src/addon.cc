// Module entry point: each file registers its own functions.
#include "common.h"

namespace faasnap {

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitFd(env, exports);
  InitKvm(env, exports);
  InitLayouts(env, exports);
  InitMemory(env, exports);
  InitSeccomp(env, exports);
  InitUffd(env, exports);
  InitVcpuRunner(env, exports);
  return exports;
}

}  // namespace faasnap

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return faasnap::Init(env, exports); }

NODE_API_MODULE(faasnap_native, InitModule)
