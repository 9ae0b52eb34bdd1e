import { create, globals } from 'webgpu';
process.env.VK_ICD_FILENAMES ??= '/usr/share/vulkan/icd.d/lvp_icd.json';
Object.assign(globalThis, globals);
const gpu = create([]);
globalThis.navigator = { gpu };
const tf = await import('@tensorflow/tfjs-core');
await import('@tensorflow/tfjs-backend-webgpu');
console.log(await tf.setBackend('webgpu'));
const a = tf.randomNormal([64,64]);
const c = tf.matMul(a,a); await c.data();
const info = tf.backend().adapterInfo;
console.log(info);
const d = tf.backend().device;
console.log(d.adapterInfo, d.limits.maxStorageBufferBindingSize);
const ai = d.adapterInfo; for (const k of ['vendor','architecture','device','description','subgroupMinSize','subgroupMaxSize','isFallbackAdapter']) console.log(k, ai[k]);
console.log('mode', process.argv[2]);
if (process.argv[2]==='nav') delete globalThis.navigator;
if (process.argv[2]==='rm') { tf.removeBackend('webgpu'); }
if (process.argv[2]==='destroy') { d.destroy(); }
if (process.argv[2]==='all') { tf.removeBackend('webgpu'); d.destroy(); delete globalThis.navigator; }
setTimeout(()=>console.log('timer done'), 100);
