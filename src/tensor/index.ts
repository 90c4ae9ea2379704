// The tensor engine's public surface. Importing it registers the CPU kernels of every op module.
export { Tensor, liveNativeMemory, numel, type Device, type Shape } from "./tensor.js";
export { type DType, type FloatDType } from "./dtype.js";
export { scope, scopeAsync, keep } from "./scope.js";
export { grad, noGrad, noGradAsync, detach, record, isGradEnabled, type GradNode } from "./autograd.js";
export { kernels, registerKernels, type Kernels } from "./backend.js";
export { native } from "./native.js";
export * from "./ops/elementwise.js";
export * from "./ops/matmul.js";
