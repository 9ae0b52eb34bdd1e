// Running our own WGSL on tfjs-backend-webgpu: a program object in the form the backend compiles (it adds the
// bindings: `result` for the output, one read-only array per input, and a `uniforms` struct), recorded into the
// backend's own command stream, so ordering with tfjs's kernels and buffer lifetimes are the backend's.
//
// Two dispatch shapes cover every fused kernel:
// - elementwise: one invocation per output element (`fn main(index : i32)` gets the element's flat index);
// - rows: one workgroup of ROW_THREADS invocations per row of work; the body reads `row` (uniform across the
//   workgroup, so loops bounded by it may hold barriers) and `lane` (0 .. ROW_THREADS - 1).

import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import type { DataType, TensorInfo } from '@tensorflow/tfjs-core';

/** Invocations per workgroup of a row program. A power of two (the tree reductions halve it). */
export const ROW_THREADS = 64;
const ELEMENT_THREADS = 256;

/** Largest head size the attention kernels hold in workgroup memory and per-thread accumulators. */
export const MAX_HEAD_DIM = 256;

export interface Uniform {
  name: string;
  type: 'i32' | 'u32' | 'f32';
  value: number;
}

const UNIFORM_TYPES = { i32: 'int32', u32: 'uint32', f32: 'float32' } as const;

interface ProgramSpec {
  /** Identifies the WGSL source: every compile-time choice the body makes must be in it. */
  key: string;
  inputs: string[];
  outputShape: number[];
  uniforms: Uniform[];
  body: string;
}

class FusedProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  uniforms: string;
  size = true;
  private source: string;

  constructor(spec: ProgramSpec, workgroups: number, threads: number, source: string) {
    this.variableNames = spec.inputs;
    this.outputShape = spec.outputShape;
    this.shaderKey = `adapterStudio_${spec.key}`;
    // Flat over the output, so that the backend calls main(globalIndex) and splits a dispatch wider than
    // maxComputeWorkgroupsPerDimension over y and z for us.
    this.dispatchLayout = { x: spec.outputShape.map((_, i) => i) };
    this.dispatch = [workgroups, 1, 1];
    this.workgroupSize = [threads, 1, 1];
    this.uniforms = spec.uniforms.map((u) => `${u.name} : ${u.type},`).join(' ');
    this.source = source;
  }

  getUserCode(): string {
    return this.source;
  }
}

/**
 * A never-taken statement reading every input: the shader compiler drops bindings the code does not use, and tfjs
 * binds every input, so a kernel variant that ignores an input would fail to bind without it.
 */
const keepBindings = (inputs: string[]) =>
  inputs.length ? `if (uniforms.size < 0) { result[0] = ${inputs.map((n) => `f32(${n}[0])`).join(' + ')}; }` : '';

function run(backend: WebGPUBackend, program: FusedProgram, spec: ProgramSpec, inputs: TensorInfo[], dtype: DataType): TensorInfo {
  if (inputs.length !== spec.inputs.length) throw new Error(`${spec.key}: ${inputs.length} inputs for ${spec.inputs.length} names`);
  const uniforms = spec.uniforms.map((u) => ({ type: UNIFORM_TYPES[u.type], data: [u.value] }));
  return backend.runWebGPUProgram(program, inputs, dtype, uniforms);
}

/**
 * One invocation per output element, or per `invocations` items when given (a body that writes several outputs);
 * `body` is the inside of `fn main(index : i32)`, run for index < that count.
 */
export function runElementwise(backend: WebGPUBackend, spec: ProgramSpec & { invocations?: number }, inputs: TensorInfo[], dtype: DataType = 'float32'): TensorInfo {
  const n = spec.invocations ?? spec.outputShape.reduce((a, b) => a * b, 1);
  const counted = { ...spec, uniforms: [...spec.uniforms, { name: 'invocations', type: 'i32' as const, value: n }] };
  const source = `
    fn main(index : i32) {
      ${keepBindings(spec.inputs)}
      if (index >= uniforms.invocations) { return; }
      ${spec.body}
    }`;
  return run(backend, new FusedProgram(counted, Math.ceil(n / ELEMENT_THREADS), ELEMENT_THREADS, source), counted, inputs, dtype);
}

/**
 * One workgroup per row of work, `rows` of them, of `threads` invocations (a power of two; default ROW_THREADS,
 * which WGSL sees as ROW_THREADS either way). `body` sees `row : i32` (uniform) and `lane : i32`, may call
 * `workgroupSum(v)` / `workgroupMax(v)` (every lane must call them together), and declares nothing at module scope:
 * module-scope declarations go in `declarations`.
 */
export function runRows(
  backend: WebGPUBackend,
  spec: ProgramSpec & { rows: number; declarations?: string; threads?: number },
  inputs: TensorInfo[],
  dtype: DataType = 'float32',
): TensorInfo {
  const threads = spec.threads ?? ROW_THREADS;
  const source = `
    const ROW_THREADS : i32 = ${threads};
    var<workgroup> rowIndex : i32;
    var<workgroup> reduction : array<f32, ${threads}>;

    // Tree reductions over the workgroup; the result is read back through workgroupUniformLoad, so that it may
    // bound loops that hold barriers.
    var<workgroup> reduced : f32;
    fn workgroupSum(v : f32) -> f32 {
      let l = i32(localIndex);
      reduction[l] = v;
      workgroupBarrier();
      for (var s = ROW_THREADS / 2; s > 0; s = s / 2) {
        if (l < s) { reduction[l] = reduction[l] + reduction[l + s]; }
        workgroupBarrier();
      }
      if (l == 0) { reduced = reduction[0]; }
      return workgroupUniformLoad(&reduced);
    }
    fn workgroupMax(v : f32) -> f32 {
      let l = i32(localIndex);
      reduction[l] = v;
      workgroupBarrier();
      for (var s = ROW_THREADS / 2; s > 0; s = s / 2) {
        if (l < s) { reduction[l] = max(reduction[l], reduction[l + s]); }
        workgroupBarrier();
      }
      if (l == 0) { reduced = reduction[0]; }
      return workgroupUniformLoad(&reduced);
    }

    ${spec.declarations ?? ''}

    fn main(index : i32) {
      // Every lane computes the same workgroup number; the workgroup variable makes it provably uniform.
      if (localIndex == 0u) { rowIndex = index / ROW_THREADS; }
      let row = workgroupUniformLoad(&rowIndex);
      let lane = i32(localIndex);
      ${keepBindings(spec.inputs)}
      if (row >= uniforms.rows) { return; }
      ${spec.body}
    }`;
  const withRows = { ...spec, key: `${spec.key}_t${threads}`, uniforms: [...spec.uniforms, { name: 'rows', type: 'i32' as const, value: spec.rows }] };
  return run(backend, new FusedProgram(withRows, spec.rows, threads, source), withRows, inputs, dtype);
}
