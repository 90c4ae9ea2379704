/**
 * The kernel dispatch table: ops never call native code directly, they call `kernels(device).<name>(...)` with
 * tensors. Each op module declares the kernels it needs by augmenting the `Kernels` interface and registers the
 * CPU implementation (which passes typed-array views to the native addon). A CUDA backend would register its own
 * implementations under its device name; model code does not change.
 *
 *   declare module "../backend.js" { interface Kernels { layerNormForward(...): void } }
 *   registerKernels("cpu", { layerNormForward: (...) => native.layernormForward(...) });
 */
import { MacLmError } from "../errors.js";
import type { Device } from "./tensor.js";

// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled by declaration merging in ops/*.ts
export interface Kernels {}

const table = new Map<Device, Partial<Kernels>>();
const views = new Map<Device, Kernels>();

export function registerKernels(device: Device, impls: Partial<Kernels>): void {
  const impl = table.get(device) ?? {};
  Object.assign(impl, impls);
  table.set(device, impl);
}

/** The kernels registered for `device`; a missing kernel throws a clear error naming device and kernel. */
export function kernels(device: Device): Kernels {
  const cached = views.get(device);
  if (cached) return cached;
  const impl = table.get(device);
  if (!impl) throw new MacLmError("MACLM_NO_KERNEL", `no kernels registered for device "${device}"`);
  const view = new Proxy(impl, {
    get(target, name: string) {
      const k = (target as Record<string, unknown>)[name];
      if (k === undefined) throw new MacLmError("MACLM_NO_KERNEL", `device "${device}" has no kernel "${name}"`);
      return k;
    },
  }) as Kernels;
  views.set(device, view);
  return view;
}
