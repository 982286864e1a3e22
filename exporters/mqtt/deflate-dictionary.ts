/**
 * Preset deflate dictionaries (RFC 1950 FDICT): the key names every telemetry message repeats.
 * A single-GPU device's snapshot has nothing to back-reference within itself, so without one its
 * keys cost ~1 KB per message; with one, ~0.2 KB. A zlib stream names its dictionary by Adler-32
 * in its header, so receivers pick the right one even on MQTT 3.1.1 (no content type).
 *
 * FROZEN: a dictionary's bytes never change once released (receivers key on its checksum); add
 * a new version instead and keep the old ones in DICTIONARIES.
 */
import { adler32Of } from './adler32.js';

const HOST_AND_AGENT = [
  'host_cpu_utilization_ratio',
  'host_cpus',
  'host_load_average',
  'host_memory_total_bytes',
  'host_memory_available_bytes',
  'host_memory_used_bytes',
  'host_swap_total_bytes',
  'host_swap_used_bytes',
  'host_filesystem_size_bytes',
  'host_filesystem_available_bytes',
  'host_network_receive_bytes_total',
  'host_network_transmit_bytes_total',
  'host_temperature_celsius',
  'build_info',
  'collector_up',
  'collector_status',
  'collector_last_success_timestamp_seconds',
  'collector_duration_seconds',
  'collector_errors_total',
  'mqtt_connected',
  'mqtt_reconnects_total',
  'mqtt_published_total',
  'mqtt_spool_bytes',
  'mqtt_spool_oldest_age_seconds',
  'mqtt_spool_dropped_total',
];

const LABELS = [
  '{"collector":"nvidia-smi"}',
  '{"collector":"host","reason":"","status":"ok"}',
  '{"result":"sent","stream":"telemetry"}',
  '{"result":"replayed","stream":"events"}',
  '{"result":"spooled","stream":"status"}',
  '{"result":"refused","stream":"telemetry"}',
  '{"reason":"size"}',
  '{"reason":"age"}',
  '{"reason":"corrupt"}',
  '{"reason":"write_error"}',
  '{"mountpoint":"/","fstype":"ext4","device":"/dev/"}',
  '{"interface":"eth0"}',
  '{"window":"1m"}',
  '{"cpu":"all"}',
  '{"node_version":"20","version":"0.1.0"}',
];

const GPU_PER_REASON = ['gpu_throttle_active', 'gpu_throttle_seconds_total'];
const THROTTLE_REASONS = [
  'display_clock_setting',
  'hw_power_brake_slowdown',
  'hw_thermal_slowdown',
  'sw_thermal_slowdown',
  'sync_boost',
  'hw_slowdown',
  'sw_power_cap',
  'applications_clocks_setting',
  'gpu_idle',
];
const CLOCKS = ['video', 'memory', 'sm', 'graphics'];
const GPU = [
  'gpu_info',
  'gpu_utilization_ratio',
  'gpu_memory_utilization_ratio',
  'gpu_encoder_utilization_ratio',
  'gpu_decoder_utilization_ratio',
  'gpu_memory_total_bytes',
  'gpu_memory_used_bytes',
  'gpu_memory_free_bytes',
  'gpu_memory_reserved_bytes',
  'gpu_temperature_celsius',
  'gpu_memory_temperature_celsius',
  'gpu_power_draw_watts',
  'gpu_power_limit_watts',
  'gpu_enforced_power_limit_watts',
  'gpu_energy_joules_total',
  'gpu_fan_speed_ratio',
  'gpu_pstate',
  'gpu_pcie_link_generation',
  'gpu_pcie_link_width',
  'gpu_persistence_mode',
  'gpu_mig_enabled',
  'gpu_ecc_enabled',
  'gpu_retired_pages_pending',
  'gpu_remapped_rows_pending',
  'gpu_remapped_rows_failure',
];

function v1(): Buffer {
  const metrics = (keys: readonly string[]) => keys.map((k) => `"${k}":0`).join(',');
  const gpuLabels = '"gpu":"0","uuid":"GPU-00000000-0000-0000-0000-000000000000"';
  const text = [
    HOST_AND_AGENT.map((k) => `"${k}":1`).join(','),
    LABELS.map((l) => `{"labels":${l},"metrics":{`).join('}},'),
    '{"labels":{"compute_capability":"9.0","cuda_version":"12.',
    '","driver_version":"5',
    `","name":"NVIDIA ","pci_bus_id":"00000000:00:00.0",${gpuLabels},"vbios_version":"9`,
    '"},"metrics":{"gpu_info":1}},',
    '{"labels":{"counter":"aggregate","error_type":"corrected",',
    '{"labels":{"counter":"volatile","error_type":"uncorrected",',
    `"metrics":{"gpu_ecc_errors_total":0}},{"labels":{"cause":"double_bit_ecc",`,
    `"metrics":{"gpu_retired_pages_total":0}},{"labels":{"cause":"single_bit_ecc",`,
    `"metrics":{"gpu_remapped_rows_total":0}},{"labels":{${gpuLabels},"kind":"correctable"`,
    ...THROTTLE_REASONS.map(
      (r) => `{"labels":{${gpuLabels},"reason":"${r}"},"metrics":{${metrics(GPU_PER_REASON)}}},`,
    ),
    ...CLOCKS.map(
      (c) =>
        `{"labels":{"clock":"${c}",${gpuLabels}},"metrics":{"gpu_clock_hz":0,"gpu_max_clock_hz":0}},`,
    ),
    `{"labels":{${gpuLabels}},"metrics":{${metrics(GPU)}}},`,
    '{"replay":true,"v":1,"seq":0,"ts":1700000000000,"part":1,"parts":2,"series":[',
    '{"v":1,"seq":',
  ].join('');
  return Buffer.from(text, 'utf8');
}

/** The dictionary new payloads are deflated with. */
export const DICTIONARY = v1();

/** Every dictionary a receiver knows, by Adler-32 (as a zlib header names it). */
export const DICTIONARIES: ReadonlyMap<number, Buffer> = new Map([
  [adler32Of(DICTIONARY), DICTIONARY],
]);
