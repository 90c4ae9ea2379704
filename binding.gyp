{
  # The native tensor kernels. Sources are every .cc under native/ (kernels register themselves, see
  # native/core/registry.h), so adding a kernel file needs no edit here.
  # BLAS: OpenBLAS's cblas when its headers and library are present, else the portable built-in GEMM
  # (scripts/detect-blas.cjs prints which, and the build log says it). MACLM_SANITIZE=1 builds with
  # AddressSanitizer + UBSan for `npm run test:sanitize`.
  "variables": {
    "maclm_blas%": "<!(node scripts/detect-blas.cjs)",
    "maclm_sanitize%": "<!(node -p \"process.env.MACLM_SANITIZE === '1' ? 1 : 0\")",
    "maclm_march%": "<!(node -p \"process.env.MACLM_MARCH || 'native'\")"
  },
  "targets": [
    {
      "target_name": "mac_lm",
      "sources": ["<!@(node scripts/list-native-sources.cjs)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions", "-O2"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-O2"],
      "cflags": ["-O3", "-march=<(maclm_march)", "-fno-math-errno", "-pthread"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-march=<(maclm_march)", "-fno-math-errno", "-pthread"],
      "ldflags": ["-pthread"],
      "conditions": [
        ["maclm_blas=='openblas'", {
          "defines": ["MACLM_USE_CBLAS=1"],
          "libraries": ["-lopenblas"]
        }],
        ["maclm_sanitize==1", {
          "cflags": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"],
          "cflags_cc": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"],
          "ldflags": ["-fsanitize=address,undefined"]
        }]
      ]
    }
  ]
}
