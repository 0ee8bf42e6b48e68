// Exposes the C-computed struct table (kvm_abi.c) to TypeScript. vmm/kvm/structs.ts holds the
// same numbers as constants so the hot path never asks the addon; a test compares the two.
#include "common.h"
#include "kvm_abi.h"

namespace faasnap {

static Napi::Value Layouts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object root = Napi::Object::New(env);
  for (size_t i = 0; i < faasnap_struct_sizes_count; i++) {
    Napi::Object s = Napi::Object::New(env);
    s.Set("size", Napi::Number::New(env, static_cast<double>(faasnap_struct_sizes[i].size)));
    s.Set("fields", Napi::Object::New(env));
    root.Set(faasnap_struct_sizes[i].name, s);
  }
  for (size_t i = 0; i < faasnap_field_offsets_count; i++) {
    const auto& f = faasnap_field_offsets[i];
    root.Get(f.strct).As<Napi::Object>().Get("fields").As<Napi::Object>().Set(f.field, Napi::Number::New(env, static_cast<double>(f.offset)));
  }
  return root;
}

void InitLayouts(Napi::Env env, Napi::Object exports) { exports.Set("layouts", Napi::Function::New(env, Layouts)); }

}  // namespace faasnap
