// Prints "openblas" when OpenBLAS's cblas header and library are installed (Debian: libopenblas-dev), else
// "builtin". Used by binding.gyp; MACLM_BLAS=builtin forces the portable GEMM (to test the fallback).
const fs = require("node:fs");
const { execSync } = require("node:child_process");

function hasOpenBlas() {
  if (process.env.MACLM_BLAS === "builtin") return false;
  const headers = [
    "/usr/include/cblas.h",
    "/usr/include/x86_64-linux-gnu/cblas.h",
    "/usr/include/aarch64-linux-gnu/cblas.h",
    "/usr/include/openblas/cblas.h",
  ];
  if (!headers.some((h) => fs.existsSync(h))) return false;
  try {
    return /libopenblas\.so/.test(execSync("ldconfig -p", { encoding: "utf8" }));
  } catch {
    return false;
  }
}

const blas = hasOpenBlas() ? "openblas" : "builtin";
process.stderr.write(
  blas === "openblas"
    ? "mac-lm native: GEMM through OpenBLAS cblas_sgemm\n"
    : "mac-lm native: OpenBLAS not found (apt-get install libopenblas-dev); using the portable built-in GEMM, which is much slower\n",
);
process.stdout.write(blas);
