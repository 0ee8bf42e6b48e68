{
  "targets": [
    {
      "target_name": "faasnap_native",
      "sources": [
        "src/addon.cc",
        "src/errors.cc",
        "src/fd.cc",
        "src/kvm.cc",
        "src/kvm_abi.c",
        "src/layouts.cc",
        "src/memory.cc",
        "src/seccomp.cc",
        "src/uffd.cc",
        "src/uffd_server.cc",
        "src/vcpu_runner.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-fexceptions"],
      "libraries": ["-lpthread"]
    }
  ]
}
