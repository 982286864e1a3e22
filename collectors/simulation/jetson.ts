/**
 * The simulated Jetson boards, shared by the simulated `tegrastats` (its line format and load
 * points), the simulated `nvidia-smi` (whether the board has one, and what it answers) and
 * `gpulse simulate --profile`, so the three agree on one device.
 */

/** Values of one steady state of a board, as tegrastats prints them (units as printed). */
export interface JetsonPoint {
  /** GR3D_FREQ load (%) and clock (MHz). */
  readonly gpuPercent: number;
  readonly gpuMHz: number;
  readonly emcPercent: number;
  /** Load (%) of each online core, in order (offline cores are skipped). */
  readonly cpuPercent: readonly number[];
  readonly cpuMHz: number;
  /** RAM used, MB. */
  readonly ramUsedMB: number;
  /** GPU thermal zone, °C. */
  readonly gpuC: number;
  /** Rail name → instantaneous mW. */
  readonly railsMw: Readonly<Record<string, number>>;
}

/** One simulated Jetson board. */
export interface JetsonDevice {
  readonly profile: string;
  /** What /proc/device-tree/model says on this board. */
  readonly model: string;
  /** Real tegrastats capture (collectors/tegrastats/fixtures/...) whose first line is the format. */
  readonly tegrastatsCapture: string;
  /**
   * Real `nvidia-smi` capture (collectors/nvidia-smi/fixtures/...) of this board's JetPack;
   * undefined where the JetPack ships no nvidia-smi (JetPack 4 and 5).
   */
  readonly nvidiaSmiCapture?: string;
  /** The rail that is the GPU's own power (drives the world's power draw), if the board has one. */
  readonly gpuRail?: string;
  readonly idle: JetsonPoint;
  readonly load: JetsonPoint;
  /** Where each point's numbers come from (README table). */
  readonly provenance: string;
}

const NANO = 'nano-4gb__l4t-32-jetpack4__pom-5v-rails__iram__nvdec-vic__jetson-inference-1206.log';
const TX2 = 'tx2__l4t-32-jetpack4__denver-off__vdd-sys-rails__onnxruntime-3240.log';
const ORIN =
  'agx-orin-64gb__jetpack5-6__timestamp-prefix__gpc-array__sensor-minus-256C__jetson-exporter-14.log';

/** Every simulated Jetson, by `--profile` name. */
export const JETSON_DEVICES: Readonly<Record<string, JetsonDevice>> = {
  'jetson-orin': {
    profile: 'jetson-orin',
    model: 'NVIDIA Jetson AGX Orin Developer Kit',
    tegrastatsCapture: ORIN,
    nvidiaSmiCapture:
      'jetson/nvidia-smi__agx-orin-64gb__jp6.2.1__540.4.0__gpu-table-only__jetson-containers-1403.txt',
    idle: {
      gpuPercent: 0,
      gpuMHz: 0,
      emcPercent: 0,
      cpuPercent: Array.from({ length: 12 }, () => 0),
      cpuMHz: 729,
      ramUsedMB: 4321,
      gpuC: 40,
      railsMw: { VDD_GPU_SOC: 2340, VDD_CPU_CV: 390, VIN_SYS_5V0: 4025, VDDQ_VDD2_1V8AO: 301 },
    },
    load: {
      gpuPercent: 99,
      gpuMHz: 1301,
      emcPercent: 45,
      cpuPercent: [38, 22, 17, 12, 9, 8, 6, 5, 4, 4, 3, 3],
      cpuMHz: 2201,
      ramUsedMB: 12870,
      gpuC: 58,
      railsMw: { VDD_GPU_SOC: 17850, VDD_CPU_CV: 2410, VIN_SYS_5V0: 6120, VDDQ_VDD2_1V8AO: 1640 },
    },
    provenance:
      'idle: the captured line (GPU sensor offline there; 40 °C assumed once it powers up); ' +
      'load: synthetic (AGX Orin 64GB maximum clocks: GPU 1301 MHz, CPU 2201 MHz)',
  },
  'jetson-nano': {
    profile: 'jetson-nano',
    model: 'NVIDIA Jetson Nano Developer Kit',
    tegrastatsCapture: NANO,
    gpuRail: 'POM_5V_GPU',
    idle: {
      gpuPercent: 0,
      gpuMHz: 76,
      emcPercent: 4,
      cpuPercent: [16, 13, 10, 4],
      cpuMHz: 1479,
      ramUsedMB: 1501,
      gpuC: 41.5,
      railsMw: { POM_5V_IN: 4122, POM_5V_GPU: 109, POM_5V_CPU: 1167 },
    },
    load: {
      gpuPercent: 99,
      gpuMHz: 921,
      emcPercent: 10,
      cpuPercent: [29, 36, 18, 11],
      cpuMHz: 1479,
      ramUsedMB: 1504,
      gpuC: 43,
      railsMw: { POM_5V_IN: 4531, POM_5V_GPU: 1256, POM_5V_CPU: 466 },
    },
    provenance: 'idle: captured line 1 with GR3D at 0 %; load: captured line 4 (GR3D 99 %@921)',
  },
  'jetson-tx2': {
    profile: 'jetson-tx2',
    model: 'NVIDIA Jetson TX2 Developer Kit',
    tegrastatsCapture: TX2,
    gpuRail: 'VDD_SYS_GPU',
    idle: {
      gpuPercent: 0,
      gpuMHz: 114,
      emcPercent: 2,
      cpuPercent: [1, 0, 3, 1],
      cpuMHz: 345,
      ramUsedMB: 309,
      gpuC: 38.5,
      railsMw: {
        VDD_SYS_GPU: 229,
        VDD_SYS_SOC: 765,
        VDD_4V0_WIFI: 0,
        VDD_IN: 3024,
        VDD_SYS_CPU: 153,
        VDD_SYS_DDR: 537,
      },
    },
    load: {
      gpuPercent: 99,
      gpuMHz: 1300,
      emcPercent: 38,
      cpuPercent: [41, 35, 28, 30],
      cpuMHz: 2035,
      ramUsedMB: 3650,
      gpuC: 54.5,
      railsMw: {
        VDD_SYS_GPU: 5210,
        VDD_SYS_SOC: 1530,
        VDD_4V0_WIFI: 0,
        VDD_IN: 11240,
        VDD_SYS_CPU: 1380,
        VDD_SYS_DDR: 1610,
      },
    },
    provenance:
      'idle: captured line 1; load: synthetic (TX2 maximum clocks: GPU 1300 MHz, ARM cores 2035 MHz)',
  },
};

/** The Jetson of a profile name, or undefined for a discrete-GPU profile. */
export function jetsonDevice(profile: string | undefined): JetsonDevice | undefined {
  return profile === undefined ? undefined : JETSON_DEVICES[profile];
}
