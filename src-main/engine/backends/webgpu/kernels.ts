// Fused WGSL kernels for the webgpu backend (filled in below).

export function registerFusedWebgpuKernels(): void {}
