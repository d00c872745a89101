// --device cpu|webgpu|cuda (env FISEDIT_DEVICE) for the commands that run the engine: parsed with the
// other arguments (a bad name is a usage error, exit 2) and checked before the model load (a device that
// cannot run here is exit 3, with what to install).
import { webgpuAttentionSetting } from '../engine/runtime/deviceGraphs';
import { checkDeviceAvailable, DeviceUnavailableError, ENGINE_DEVICES, isEngineDevice, type EngineDevice } from '../engine/runtime/ortSession';
import { CliError, EXIT, usageError } from './exitCodes';

export const DEVICE_OPTION = { device: { type: 'string' } } as const;

export const DEVICE_HELP = `      --device NAME        where the graphs run: cpu (default), webgpu (bundled; Vulkan/Metal/D3D12)
                           or cuda (needs ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci); env FISEDIT_DEVICE
`;

/** --device, else FISEDIT_DEVICE, else 'cpu'; on webgpu FISEDIT_WEBGPU_ATTENTION is checked too. */
export function parseDevice(v: string | boolean | undefined, command: string, env: NodeJS.ProcessEnv = process.env): EngineDevice {
  const raw = typeof v === 'string' ? v : env.FISEDIT_DEVICE;
  if (raw === undefined || raw === '') return 'cpu';
  const name = raw.trim().toLowerCase();
  if (!isEngineDevice(name)) {
    const from = typeof v === 'string' ? '--device' : 'FISEDIT_DEVICE';
    throw usageError(`${command}: ${from} must be one of ${ENGINE_DEVICES.join(', ')} (got ${JSON.stringify(raw)})`);
  }
  if (name === 'webgpu') {
    // Its attention setting is read when the graphs are built; a typo is a usage error now, not a failed load.
    try {
      webgpuAttentionSetting(env);
    } catch (e) {
      throw usageError(`${command}: ${(e as Error).message}`);
    }
  }
  return name;
}

/** Exit 3 when the device cannot run here (CUDA providers not installed, no WebGPU adapter). */
export async function requireDevice(device: EngineDevice, command: string): Promise<void> {
  try {
    await checkDeviceAvailable(device);
  } catch (e) {
    if (e instanceof DeviceUnavailableError) throw new CliError(EXIT.model, `${command}: ${e.message}`);
    throw e;
  }
}
