# Builds the N-API addon behind the `native` engine backend (see src-main/engine/backends/native.ts).
# Linux links OpenBLAS (Debian/Ubuntu: libopenblas-dev; Fedora: openblas-devel); macOS links Accelerate.
# Any other platform has no BLAS target here: tools/build-native.mjs reports that and the engine uses plain wasm.
{
  "targets": [
    {
      "target_name": "adapter_native",
      "sources": [
        "src/addon.c", "src/args.c", "src/gemm.c", "src/epilogue.c", "src/pool.c",
        "src/norm.c", "src/rope.c", "src/swiglu.c", "src/xent.c", "src/attention.c"
      ],
      "defines": ["NAPI_VERSION=8"],
      # -fopenmp-simd: only the `omp simd` loop hints (vectorised reductions); no OpenMP runtime is linked.
      # -fno-trapping-math / -fno-math-errno: floorf and sqrtf inline, so the exp and norm loops vectorise; results
      # for finite inputs are unchanged (no reassociation, unlike -ffast-math).
      "cflags_c": [
        "-std=c11", "-O3", "-fopenmp-simd", "-fno-trapping-math", "-fno-math-errno",
        "-Wall", "-Wextra", "-Wno-unused-parameter"
      ],
      "libraries": ["-lpthread"],
      "conditions": [
        ["OS=='linux'", {
          "defines": ["ADAPTER_BLAS_OPENBLAS"],
          # Debian keeps cblas.h under the multiarch folder, Fedora under /usr/include/openblas.
          "include_dirs": [
            "/usr/include/x86_64-linux-gnu/openblas-pthread",
            "/usr/include/aarch64-linux-gnu/openblas-pthread",
            "/usr/include/openblas"
          ],
          "libraries": ["-lopenblas"],
          # The machine that installs is the machine that runs: use its vector units (AVX2/FMA, NEON).
          "cflags_c": ["-march=native"]
        }],
        ["OS=='mac'", {
          "defines": ["ADAPTER_BLAS_ACCELERATE"],
          "libraries": ["-framework Accelerate"],
          "xcode_settings": {
            "GCC_OPTIMIZATION_LEVEL": "3",
            "OTHER_CFLAGS": ["-std=c11", "-fopenmp-simd", "-fno-trapping-math", "-fno-math-errno"],
            "MACOSX_DEPLOYMENT_TARGET": "11.0"
          }
        }]
      ]
    }
  ]
}
