// The tensor engine's public surface. Importing it registers the CPU kernels of every op module.
export { Tensor, liveNativeMemory, numel, type Device, type Shape } from "./tensor.js";
export { type DType, type FloatDType } from "./dtype.js";
export { scope, scopeAsync, keep, untrack, nextTurn } from "./scope.js";
export { grad, noGrad, noGradAsync, detach, record, isGradEnabled, type GradNode } from "./autograd.js";
export { kernels, registerKernels, type Kernels } from "./backend.js";
export { native } from "./native.js";
export * from "./ops/elementwise.js";
export * from "./ops/matmul.js";
export * from "./ops/norm.js";
export * from "./ops/activation.js";
export * from "./ops/dropout.js";
export * from "./ops/embedding.js";
export * from "./ops/loss.js";
export * from "./ops/reduce.js";
export * from "./ops/layout.js";
export * from "./optim.js";
export * from "./ops/attention.js";
export * from "./ops/rope.js";
