// The five dashboards of deploy/grafana/dashboards/, one row per concern. Each panel says which
// question it answers; deploy/README.md lists them. test/deploy/prometheus-e2e.test.ts runs every
// query against a real Prometheus scraping `gpulse simulate`.
import type { DashboardSpec, PanelSpec } from './grafana.js';

const I = 'instance=~"$instance"';
const G = `${I}, gpu=~"$gpu"`;
const GPU_LEGEND = '{{instance}} GPU {{gpu}}';

/**
 * ` or` a 0 for every `by` group of `present` that the left side lacks: counters that gpulse
 * creates with their first event (an Xid, a collector error of some reason) then read 0 on a
 * healthy host instead of "No data", and still nothing for a host that is not scraped at all.
 */
const zeroPer = (by: string, present: string): string =>
  ` or on (${by}) (0 * group by (${by}) (${present}))`;

const ts = (
  title: string,
  description: string,
  expr: string,
  unit: string,
  legend = GPU_LEGEND,
  extra: Partial<PanelSpec> = {},
): PanelSpec => ({
  title,
  description,
  kind: 'timeseries',
  unit,
  queries: [{ expr, legend }],
  ...extra,
});

const stat = (title: string, description: string, expr: string, unit = 'short'): PanelSpec => ({
  title,
  description,
  kind: 'stat',
  unit,
  queries: [{ expr, legend: title }],
});

const tableOf = (
  title: string,
  description: string,
  expr: string,
  extra: Partial<PanelSpec> = {},
): PanelSpec => ({
  title,
  description,
  kind: 'table',
  queries: [{ expr, instant: true }],
  ...extra,
});

/** Fleet overview: how many GPUs, how busy, and where something is wrong. */
export const fleetDashboard: DashboardSpec = {
  uid: 'gpulse-fleet',
  file: 'gpulse-fleet.json',
  title: 'gpulse / Fleet overview',
  description: 'Every GPU host at once: capacity, load, power and what is unhealthy.',
  variables: [
    { name: 'instance', label: 'Host', query: 'label_values(gpulse_build_info, instance)' },
  ],
  rows: [
    {
      title: 'Fleet at a glance',
      panels: [
        stat('Agents', 'How many gpulse agents report?', `count(gpulse_build_info{${I}})`),
        stat('GPUs', 'How many GPUs answer?', `sum(gpulse_gpu_up{${I}})`),
        stat(
          'Lost GPUs',
          'How many GPUs are attached but no longer answer (fallen off the bus)?',
          `count(gpulse_gpu_up{${I}} == 0) or vector(0)`,
        ),
        stat(
          'Mean GPU utilization',
          'How busy is the fleet on average?',
          `avg(gpulse_gpu_utilization_ratio{${I}})`,
          'percentunit',
        ),
        stat(
          'GPU memory in use',
          'How much of all device memory is allocated?',
          `sum(gpulse_gpu_memory_used_bytes{${I}}) / sum(gpulse_gpu_memory_total_bytes{${I}})`,
          'percentunit',
        ),
        stat(
          'GPU power',
          'How much power do the GPUs draw?',
          `sum(gpulse_gpu_power_draw_watts{${I}})`,
          'watt',
        ),
        stat(
          'Firing alerts',
          'How many gpulse alerts fire now?',
          // ALERTS is empty while nothing fires: 0 then, not "No data".
          'count(ALERTS{alertstate="firing", alertname=~"Gpulse.*"}) or vector(0)',
        ),
      ],
    },
    {
      title: 'Load',
      panels: [
        ts(
          'GPU utilization by host',
          'Which hosts are busy, which idle?',
          `avg by (instance) (gpulse_gpu_utilization_ratio{${I}})`,
          'percentunit',
          '{{instance}}',
          { min: 0, max: 1 },
        ),
        ts(
          'GPU memory used by host',
          'Which hosts are close to running out of device memory?',
          `sum by (instance) (gpulse_gpu_memory_used_bytes{${I}}) / sum by (instance) (gpulse_gpu_memory_total_bytes{${I}})`,
          'percentunit',
          '{{instance}}',
          { min: 0, max: 1 },
        ),
        ts(
          'GPU power by host',
          'Where does the power go?',
          `sum by (instance) (gpulse_gpu_power_draw_watts{${I}})`,
          'watt',
          '{{instance}}',
          { stack: true },
        ),
        tableOf(
          'GPUs now',
          'Every GPU with its model and utilization, busiest first.',
          `sort_desc(gpulse_gpu_utilization_ratio{${I}} * on (instance, gpu, uuid) group_left (name) gpulse_gpu_info{${I}})`,
          { unit: 'percentunit', width: 24 },
        ),
      ],
    },
    {
      title: 'Health',
      panels: [
        tableOf(
          'Collectors not ok',
          'Which collectors fail, and why (no_data is a state: no GPU, no Docker)?',
          `gpulse_collector_status{${I}, status!="ok"}`,
        ),
        ts(
          'Throttled GPUs by reason',
          'How many GPUs cut their clocks, for which reason?',
          `sum by (reason) (gpulse_gpu_throttle_active{${I}, reason=~"hw_slowdown|hw_thermal_slowdown|hw_power_brake_slowdown|sw_thermal_slowdown|sw_power_cap"})`,
          'short',
          '{{reason}}',
          { stack: true, width: 12 },
        ),
        ts(
          'Xid errors',
          'Which hosts log Xid errors, of which severity?',
          `sum by (instance, severity) (increase(gpulse_gpu_xid_errors_total{${I}}[$__rate_interval]))${zeroPer('instance', `gpulse_gpu_info{${I}}`)}`,
          'short',
          '{{instance}} {{severity}}',
        ),
        ts(
          'Uncorrectable ECC errors',
          'Which hosts see memory errors ECC could not fix?',
          `sum by (instance) (increase(gpulse_gpu_ecc_errors_total{${I}, error_type="uncorrected", counter="volatile"}[$__rate_interval]))`,
          'short',
          '{{instance}}',
        ),
        ts(
          'Collector errors',
          'Which collectors keep failing, by reason?',
          `sum by (instance, collector, reason) (increase(gpulse_collector_errors_total{${I}}[$__rate_interval]))${zeroPer('instance, collector', `gpulse_collector_up{${I}}`)}`,
          'short',
          '{{instance}} {{collector}} {{reason}}',
        ),
      ],
    },
    {
      title: 'Agents',
      panels: [
        ts(
          'Collector duration',
          'How long does each collector take (for streams: time to read one sample)?',
          `gpulse_collector_duration_seconds{${I}}`,
          's',
          '{{instance}} {{collector}}',
        ),
        ts(
          'Collector data age',
          'How old is the latest successful result of each collector?',
          `time() - gpulse_collector_last_success_timestamp_seconds{${I}}`,
          's',
          '{{instance}} {{collector}}',
        ),
        ts(
          'Collectors up',
          'Which collectors deliver (1) and which do not (0)?',
          `gpulse_collector_up{${I}}`,
          'short',
          '{{instance}} {{collector}}',
        ),
        {
          title: 'HTTP refusals',
          description:
            'What did the HTTP server turn away? Connections (cap, slow clients, TLS) and requests (401, 403 writes, 429), per second; a failed web configuration reload shows as a 1 line.',
          kind: 'timeseries',
          unit: 'short',
          queries: [
            {
              expr: `sum by (instance, reason) (rate(gpulse_http_connections_closed_total{${I}}[$__rate_interval]))`,
              legend: '{{instance}} connection {{reason}}',
            },
            {
              expr: `sum by (instance, reason) (rate(gpulse_http_requests_refused_total{${I}}[$__rate_interval]))`,
              legend: '{{instance}} request {{reason}}',
            },
            {
              // 1 while the last reload of the web configuration failed; 0 when it succeeded or
              // no web configuration is in use (the series exists only with one).
              expr: `(1 - gpulse_http_web_config_last_reload_successful{${I}})${zeroPer('instance', `gpulse_collector_up{${I}, collector="http"}`)}`,
              legend: '{{instance}} web config reload failed',
            },
          ],
        },
        ts(
          'GPU tool streams',
          'Are the long-lived nvidia-smi streams running?',
          `gpulse_nvidia_smi_stream_up{${I}}`,
          'short',
          '{{instance}} {{stream}}',
        ),
        ts(
          'GPU tool restarts',
          'How often were the streams restarted after an exit or a hang?',
          `increase(gpulse_nvidia_smi_restarts_total{${I}}[$__rate_interval])`,
          'short',
          '{{instance}} {{stream}}',
        ),
        ts(
          'Rejected output lines',
          'Output the agent could not parse (driver upgrade, garbage).',
          `increase(gpulse_nvidia_smi_rejected_lines_total{${I}}[$__rate_interval])`,
          'short',
          '{{instance}} {{stream}}',
        ),
        {
          title: 'DCGM stream',
          description: 'Is the dcgmi dmon stream running (1), and how often was it restarted?',
          kind: 'timeseries',
          unit: 'short',
          queries: [
            { expr: `gpulse_dcgm_stream_up{${I}}`, legend: '{{instance}} up' },
            {
              expr: `increase(gpulse_dcgm_restarts_total{${I}}[$__rate_interval])`,
              legend: '{{instance}} restarts',
            },
            {
              expr: `increase(gpulse_dcgm_rejected_lines_total{${I}}[$__rate_interval])`,
              legend: '{{instance}} rejected lines',
            },
          ],
        },
        ts(
          'DCGM fields watched',
          'How many DCGM fields are watched, by kind (no profiling fields: not a datacenter GPU)?',
          `gpulse_dcgm_watched_fields{${I}}`,
          'short',
          '{{instance}} {{kind}}',
        ),
        tableOf(
          'Kernel log followed',
          'Which kernel log does each agent read Xid errors from (none: Xids come from DCGM only)?',
          `gpulse_kmsg_following{${I}}`,
        ),
        {
          title: 'Kernel log records',
          description:
            'Records read since start (history: logged before the agent started), records lost to a wrapped ring buffer, and rotations.',
          kind: 'timeseries',
          unit: 'short',
          queries: [
            {
              expr: `increase(gpulse_kmsg_records_total{${I}}[$__rate_interval])`,
              legend: '{{instance}} {{age}}',
            },
            {
              expr: `increase(gpulse_kmsg_records_lost_total{${I}}[$__rate_interval])`,
              legend: '{{instance}} lost',
            },
            {
              expr: `increase(gpulse_kmsg_reopened_total{${I}}[$__rate_interval])`,
              legend: '{{instance}} reopened',
            },
            {
              expr: `increase(gpulse_kmsg_xids_dropped_total{${I}}[$__rate_interval])`,
              legend: '{{instance}} Xids dropped (past maxXidSeries)',
            },
          ],
        },
        tableOf('Versions', 'Which gpulse version runs where?', `gpulse_build_info{${I}}`),
      ],
    },
  ],
};

/** GPU detail: everything about the chosen GPUs of one host. */
export const gpuDashboard: DashboardSpec = {
  uid: 'gpulse-gpu',
  file: 'gpulse-gpu.json',
  title: 'gpulse / GPU detail',
  description: 'One host, its GPUs: load, memory, clocks and throttling, power, errors, MIG.',
  variables: [
    { name: 'instance', label: 'Host', query: 'label_values(gpulse_gpu_info, instance)' },
    {
      name: 'gpu',
      label: 'GPU',
      query: 'label_values(gpulse_gpu_info{instance=~"$instance"}, gpu)',
    },
  ],
  rows: [
    {
      title: 'Identity',
      panels: [
        tableOf(
          'GPUs',
          'Which GPUs, drivers, CUDA versions and PCI addresses?',
          `gpulse_gpu_info{${G}}`,
          { width: 16, height: 6 },
        ),
        {
          title: 'Modes',
          description: 'ECC, persistence and MIG mode per GPU (1 = on).',
          kind: 'table',
          width: 8,
          height: 6,
          queries: [
            { expr: `gpulse_gpu_ecc_enabled{${G}}`, instant: true },
            { expr: `gpulse_gpu_persistence_mode{${G}}`, instant: true },
          ],
        },
      ],
    },
    {
      title: 'Utilization',
      panels: [
        ts(
          'GPU utilization',
          'Share of time a kernel ran.',
          `gpulse_gpu_utilization_ratio{${G}}`,
          'percentunit',
          GPU_LEGEND,
          { min: 0, max: 1 },
        ),
        ts(
          'Memory bandwidth utilization',
          'Share of time device memory was read or written.',
          `gpulse_gpu_memory_utilization_ratio{${G}}`,
          'percentunit',
          GPU_LEGEND,
          { min: 0, max: 1 },
        ),
        {
          title: 'Video encoder and decoder',
          description: 'Are NVENC/NVDEC busy (transcoding, video inference)?',
          kind: 'timeseries',
          unit: 'percentunit',
          min: 0,
          max: 1,
          queries: [
            { expr: `gpulse_gpu_encoder_utilization_ratio{${G}}`, legend: `${GPU_LEGEND} encoder` },
            { expr: `gpulse_gpu_decoder_utilization_ratio{${G}}`, legend: `${GPU_LEGEND} decoder` },
          ],
        },
        ts(
          'Performance state',
          'P0 = maximum performance, P8 and above = idle clocks.',
          `gpulse_gpu_pstate{${G}}`,
          'short',
        ),
      ],
    },
    {
      title: 'Profiling (DCGM)',
      panels: [
        {
          title: 'SM activity',
          description:
            'Are the SMs really busy? "Utilization" counts any kernel running; SM active and occupancy show how much of the chip it uses.',
          kind: 'timeseries',
          unit: 'percentunit',
          min: 0,
          max: 1,
          queries: [
            {
              expr: `gpulse_gpu_graphics_engine_active_ratio{${G}}`,
              legend: `${GPU_LEGEND} engine active`,
            },
            { expr: `gpulse_gpu_sm_active_ratio{${G}}`, legend: `${GPU_LEGEND} SM active` },
            { expr: `gpulse_gpu_sm_occupancy_ratio{${G}}`, legend: `${GPU_LEGEND} SM occupancy` },
          ],
        },
        {
          title: 'Pipes',
          description:
            'Which math units do the kernels use (tensor cores for mixed-precision training and inference)?',
          kind: 'timeseries',
          unit: 'percentunit',
          min: 0,
          max: 1,
          queries: [
            { expr: `gpulse_gpu_tensor_active_ratio{${G}}`, legend: `${GPU_LEGEND} tensor` },
            { expr: `gpulse_gpu_fp16_active_ratio{${G}}`, legend: `${GPU_LEGEND} FP16` },
            { expr: `gpulse_gpu_fp32_active_ratio{${G}}`, legend: `${GPU_LEGEND} FP32` },
            { expr: `gpulse_gpu_fp64_active_ratio{${G}}`, legend: `${GPU_LEGEND} FP64` },
          ],
        },
        ts(
          'Memory interface active',
          'Is the kernel memory-bound (DRAM busy while the pipes idle)?',
          `gpulse_gpu_dram_active_ratio{${G}}`,
          'percentunit',
          GPU_LEGEND,
          { min: 0, max: 1 },
        ),
      ],
    },
    {
      title: 'Memory',
      panels: [
        {
          title: 'Device memory',
          description: 'How full is device memory (used against total)?',
          kind: 'timeseries',
          unit: 'bytes',
          min: 0,
          queries: [
            { expr: `gpulse_gpu_memory_used_bytes{${G}}`, legend: `${GPU_LEGEND} used` },
            { expr: `gpulse_gpu_memory_total_bytes{${G}}`, legend: `${GPU_LEGEND} total` },
            { expr: `gpulse_gpu_memory_reserved_bytes{${G}}`, legend: `${GPU_LEGEND} reserved` },
            { expr: `gpulse_gpu_memory_free_bytes{${G}}`, legend: `${GPU_LEGEND} free` },
          ],
        },
        ts(
          'Memory used share',
          'How close is each GPU to CUDA out of memory (used against used + free; reserved memory is never allocatable)?',
          `gpulse_gpu_memory_used_bytes{${G}} / (gpulse_gpu_memory_used_bytes{${G}} + gpulse_gpu_memory_free_bytes{${G}})`,
          'percentunit',
          GPU_LEGEND,
          { min: 0, max: 1 },
        ),
        ts(
          'Memory by process',
          'Which processes hold device memory (host PIDs)?',
          `gpulse_gpu_process_memory_used_bytes{${G}}`,
          'bytes',
          '{{instance}} GPU {{gpu}} {{process_name}} ({{pid}})',
          { stack: true },
        ),
      ],
    },
    {
      title: 'Clocks and throttling',
      panels: [
        ts(
          'Clocks',
          'Current clock per domain (graphics, SM, memory, video).',
          `gpulse_gpu_clock_hz{${G}}`,
          'hertz',
          '{{instance}} GPU {{gpu}} {{clock}}',
        ),
        ts(
          'Clock headroom',
          'Current SM clock as a share of its maximum: low under load means throttling.',
          `gpulse_gpu_clock_hz{${G}, clock="sm"} / gpulse_gpu_max_clock_hz{${G}, clock="sm"}`,
          'percentunit',
          GPU_LEGEND,
          { min: 0, max: 1 },
        ),
        ts(
          'Time throttled by reason',
          'Share of time each throttle reason held the clocks down (counted by the driver).',
          `rate(gpulse_gpu_throttle_seconds_total{${G}}[$__rate_interval])`,
          'percentunit',
          '{{instance}} GPU {{gpu}} {{reason}}',
        ),
        {
          title: 'Throttle reasons active',
          description: 'Which reason cut the clocks, and when (1 = active)?',
          kind: 'state',
          width: 24,
          queries: [
            {
              expr: `gpulse_gpu_throttle_active{${G}, reason!~"gpu_idle|display_clock_setting|applications_clocks_setting"}`,
              legend: '{{instance}} GPU {{gpu}} {{reason}}',
            },
          ],
        },
      ],
    },
    {
      title: 'Power and temperature',
      panels: [
        {
          title: 'Power',
          description: 'Power drawn against the enforced limit.',
          kind: 'timeseries',
          unit: 'watt',
          min: 0,
          queries: [
            { expr: `gpulse_gpu_power_draw_watts{${G}}`, legend: `${GPU_LEGEND} draw` },
            {
              expr: `gpulse_gpu_enforced_power_limit_watts{${G}}`,
              legend: `${GPU_LEGEND} enforced limit`,
            },
            { expr: `gpulse_gpu_power_limit_watts{${G}}`, legend: `${GPU_LEGEND} limit` },
          ],
        },
        {
          title: 'Temperature',
          description: 'GPU core and memory (HBM) temperature.',
          kind: 'timeseries',
          unit: 'celsius',
          queries: [
            { expr: `gpulse_gpu_temperature_celsius{${G}}`, legend: `${GPU_LEGEND} core` },
            {
              expr: `gpulse_gpu_memory_temperature_celsius{${G}}`,
              legend: `${GPU_LEGEND} memory`,
            },
          ],
        },
        ts(
          'Fan speed',
          'Fans of boards that have them (datacenter GPUs report none).',
          `gpulse_gpu_fan_speed_ratio{${G}}`,
          'percentunit',
          GPU_LEGEND,
          { min: 0, max: 1 },
        ),
        ts(
          'Energy',
          'Average power from the energy counter (catches spikes between samples).',
          `rate(gpulse_gpu_energy_joules_total{${G}}[$__rate_interval])`,
          'watt',
        ),
      ],
    },
    {
      title: 'PCIe and NVLink',
      panels: [
        {
          title: 'PCIe link',
          description: 'Is the GPU running at its full link (a degraded link halves bandwidth)?',
          kind: 'timeseries',
          unit: 'short',
          queries: [
            { expr: `gpulse_gpu_pcie_link_generation{${G}}`, legend: `${GPU_LEGEND} generation` },
            { expr: `gpulse_gpu_pcie_link_width{${G}}`, legend: `${GPU_LEGEND} lanes` },
          ],
        },
        ts(
          'PCIe traffic',
          'Is host-to-device copying the bottleneck (data loading, offloading)?',
          `rate(gpulse_gpu_pcie_bytes_total{${G}}[$__rate_interval])`,
          'Bps',
          '{{instance}} GPU {{gpu}} {{direction}}',
        ),
        ts(
          'NVLink traffic',
          'How much do the GPUs exchange with each other (all-reduce in multi-GPU training)?',
          `rate(gpulse_gpu_nvlink_bytes_total{${G}}[$__rate_interval])`,
          'Bps',
          '{{instance}} GPU {{gpu}} {{direction}}',
        ),
        ts(
          'NVLink errors',
          'Is a link failing? CRC errors are retried (replay); recoveries retrain the link (DCGM).',
          `increase(gpulse_gpu_nvlink_errors_total{${G}}[$__rate_interval])`,
          'short',
          '{{instance}} GPU {{gpu}} {{type}}',
        ),
      ],
    },
    {
      title: 'Reliability',
      panels: [
        ts(
          'ECC errors',
          'Memory errors by type since the driver loaded (volatile).',
          `increase(gpulse_gpu_ecc_errors_total{${G}, counter="volatile"}[$__rate_interval])`,
          'short',
          '{{instance}} GPU {{gpu}} {{error_type}}',
        ),
        ts(
          'Remapped rows',
          'Memory rows replaced by spares, by kind (Ampere and later).',
          `gpulse_gpu_remapped_rows_total{${G}}`,
          'short',
          '{{instance}} GPU {{gpu}} {{kind}}',
        ),
        {
          title: 'Reset pending or remap failed',
          description: 'Does a GPU wait for a reset, or has row remapping failed (RMA)?',
          kind: 'timeseries',
          unit: 'short',
          min: 0,
          max: 1,
          queries: [
            {
              expr: `gpulse_gpu_remapped_rows_pending{${G}}`,
              legend: `${GPU_LEGEND} remap pending`,
            },
            {
              expr: `gpulse_gpu_remapped_rows_failure{${G}}`,
              legend: `${GPU_LEGEND} remap failed`,
            },
            {
              expr: `gpulse_gpu_retired_pages_pending{${G}}`,
              legend: `${GPU_LEGEND} page retirement pending`,
            },
          ],
        },
        ts(
          'Retired pages',
          'Memory pages retired by cause (before Ampere).',
          `gpulse_gpu_retired_pages_total{${G}}`,
          'short',
          '{{instance}} GPU {{gpu}} {{cause}}',
        ),
        ts(
          'Xid errors',
          'Which Xids did the driver log for these GPUs?',
          `increase(gpulse_gpu_xid_errors_total{${G}}[$__rate_interval])${zeroPer('instance, gpu', `gpulse_gpu_info{${G}}`)}`,
          'short',
          '{{instance}} GPU {{gpu}} Xid {{xid}} ({{severity}})',
        ),
      ],
    },
    {
      title: 'MIG',
      panels: [
        tableOf(
          'MIG devices',
          'Which MIG instances exist, with which profile?',
          `gpulse_mig_info{${G}}`,
        ),
        ts(
          'MIG memory used share',
          'How full is each MIG instance?',
          `gpulse_mig_memory_used_bytes{${G}} / gpulse_mig_memory_total_bytes{${G}}`,
          'percentunit',
          '{{instance}} GPU {{gpu}} GI {{gpu_instance_id}} CI {{compute_instance_id}}',
          { min: 0, max: 1 },
        ),
        ts(
          'MIG multiprocessors',
          'Streaming multiprocessors per MIG instance.',
          `gpulse_mig_multiprocessors{${G}}`,
          'short',
          '{{instance}} GPU {{gpu}} GI {{gpu_instance_id}} CI {{compute_instance_id}}',
        ),
        ts(
          'MIG mode',
          'Which GPUs are partitioned (1 = MIG enabled)?',
          `gpulse_gpu_mig_enabled{${G}}`,
          'short',
        ),
      ],
    },
    {
      title: 'Host (input pipeline)',
      panels: [
        ts(
          'Host CPU',
          'Is the CPU the bottleneck (GPU idle while the data loader works)?',
          `gpulse_host_cpu_utilization_ratio{${I}, cpu="all"}`,
          'percentunit',
          '{{instance}}',
          { min: 0, max: 1 },
        ),
        ts(
          'CPU time by mode',
          'Where does CPU time go (iowait: waiting on storage)?',
          `sum by (instance, mode) (rate(gpulse_host_cpu_seconds_total{${I}}[$__rate_interval])) / on (instance) group_left () gpulse_host_cpus{${I}}`,
          'percentunit',
          '{{instance}} {{mode}}',
          { stack: true },
        ),
        ts(
          'Load average',
          'Run queue against the number of CPUs.',
          `gpulse_host_load_average{${I}} / on (instance) group_left () gpulse_host_cpus{${I}}`,
          'short',
          '{{instance}} {{window}}',
        ),
        {
          title: 'Host memory',
          description: 'Is host RAM (pinned buffers, data loader workers) running out?',
          kind: 'timeseries',
          unit: 'bytes',
          queries: [
            { expr: `gpulse_host_memory_used_bytes{${I}}`, legend: '{{instance}} used' },
            { expr: `gpulse_host_memory_available_bytes{${I}}`, legend: '{{instance}} available' },
            { expr: `gpulse_host_memory_total_bytes{${I}}`, legend: '{{instance}} total' },
            { expr: `gpulse_host_swap_used_bytes{${I}}`, legend: '{{instance}} swap used' },
            { expr: `gpulse_host_swap_total_bytes{${I}}`, legend: '{{instance}} swap total' },
          ],
        },
        {
          title: 'Network',
          description: 'Is the data arriving fast enough (dataset streaming, NFS, object stores)?',
          kind: 'timeseries',
          unit: 'Bps',
          queries: [
            {
              expr: `rate(gpulse_host_network_receive_bytes_total{${I}}[$__rate_interval])`,
              legend: '{{instance}} {{interface}} in',
            },
            {
              expr: `rate(gpulse_host_network_transmit_bytes_total{${I}}[$__rate_interval])`,
              legend: '{{instance}} {{interface}} out',
            },
          ],
        },
        ts(
          'Filesystem space used',
          'Are the disks for datasets, checkpoints and the spool filling up?',
          `1 - gpulse_host_filesystem_available_bytes{${I}} / gpulse_host_filesystem_size_bytes{${I}}`,
          'percentunit',
          '{{instance}} {{mountpoint}}',
          { min: 0, max: 1 },
        ),
        ts(
          'Host temperatures',
          'Host sensors (CPU packages, chassis) where the host exposes them.',
          `gpulse_host_temperature_celsius{${I}}`,
          'celsius',
          '{{instance}} {{sensor}}',
        ),
        tableOf('Host', 'Kernel, architecture and OS.', `gpulse_host_info{${I}}`),
      ],
    },
  ],
};

/** Containers on GPUs: who uses which GPU, and who ran out of memory. */
export const containersDashboard: DashboardSpec = {
  uid: 'gpulse-containers',
  file: 'gpulse-containers.json',
  title: 'gpulse / Containers on GPUs',
  description: 'GPU processes attributed to their containers and pods, with their failures.',
  variables: [
    { name: 'instance', label: 'Host', query: 'label_values(gpulse_build_info, instance)' },
    {
      name: 'container',
      label: 'Container',
      query: 'label_values(gpulse_container_info{instance=~"$instance"}, container_name)',
    },
  ],
  rows: [
    {
      title: 'GPU use by container',
      panels: [
        ts(
          'GPU memory by container',
          'Which container holds how much device memory, on which GPU?',
          `sum by (instance, container_name, gpu) (gpulse_container_gpu_memory_used_bytes{${I}, container_name=~"$container"})`,
          'bytes',
          '{{instance}} {{container_name}} GPU {{gpu}}',
          { stack: true, width: 12 },
        ),
        ts(
          'GPU utilization by container',
          'Which container keeps each GPU busy?',
          `gpulse_container_gpu_utilization_ratio{${I}, container_name=~"$container"}`,
          'percentunit',
          '{{instance}} {{container_name}} GPU {{gpu}}',
          { width: 12 },
        ),
        tableOf(
          'GPUs requested',
          'Which GPUs did each container ask for (device requests, NVIDIA_VISIBLE_DEVICES)?',
          `gpulse_container_gpu_request_info{${I}, container_name=~"$container"}`,
        ),
        tableOf(
          'GPU processes',
          'Every GPU process with its container (empty container: a host process).',
          `gpulse_gpu_process_memory_used_bytes{${I}}`,
          { unit: 'bytes' },
        ),
      ],
    },
    {
      title: 'Processes',
      panels: [
        ts(
          'Process GPU utilization',
          'Which process runs kernels (nvidia-smi pmon)?',
          `gpulse_gpu_process_utilization_ratio{${I}, container_name=~"$container"}`,
          'percentunit',
          '{{instance}} GPU {{gpu}} {{container_name}} {{process_name}} ({{pid}})',
          { width: 12 },
        ),
        ts(
          'Process memory bandwidth',
          'Which process reads and writes device memory?',
          `gpulse_gpu_process_memory_utilization_ratio{${I}, container_name=~"$container"}`,
          'percentunit',
          '{{instance}} GPU {{gpu}} {{container_name}} {{process_name}} ({{pid}})',
          { width: 12 },
        ),
      ],
    },
    {
      title: 'Failures',
      panels: [
        ts(
          'GPU out of memory',
          'Which containers logged CUDA out of memory?',
          `sum by (instance, container_name) (increase(gpulse_container_gpu_oom_total{${I}, container_name=~"$container"}[$__rate_interval]))`,
          'short',
          '{{instance}} {{container_name}}',
        ),
        ts(
          'OOM kills (host memory)',
          'Which containers lost a process to the kernel OOM killer?',
          `sum by (instance, container_name) (increase(gpulse_container_oom_kills_total{${I}, container_name=~"$container"}[$__rate_interval]))`,
          'short',
          '{{instance}} {{container_name}}',
        ),
        ts(
          'Restarts',
          'Which containers does the restart policy keep restarting?',
          `sum by (instance, container_name) (increase(gpulse_container_restarts_total{${I}, container_name=~"$container"}[$__rate_interval]))`,
          'short',
          '{{instance}} {{container_name}}',
        ),
        tableOf(
          'Stopped containers',
          'Which containers stopped, with which exit code (137: killed)?',
          `gpulse_container_exit_code{${I}, container_name=~"$container"}`,
          { width: 8 },
        ),
      ],
    },
    {
      title: 'Container resources',
      panels: [
        {
          title: 'CPU',
          description: 'CPU cores used against the limit.',
          kind: 'timeseries',
          unit: 'short',
          queries: [
            {
              expr: `gpulse_container_cpu_cores_used{${I}, container_name=~"$container"}`,
              legend: '{{instance}} {{container_name}} used',
            },
            {
              expr: `gpulse_container_cpu_limit_cores{${I}, container_name=~"$container"}`,
              legend: '{{instance}} {{container_name}} limit',
            },
          ],
        },
        {
          title: 'Memory',
          description: 'Working set (what the OOM killer weighs) against the limit.',
          kind: 'timeseries',
          unit: 'bytes',
          queries: [
            {
              expr: `gpulse_container_memory_working_set_bytes{${I}, container_name=~"$container"}`,
              legend: '{{instance}} {{container_name}} working set',
            },
            {
              expr: `gpulse_container_memory_limit_bytes{${I}, container_name=~"$container"}`,
              legend: '{{instance}} {{container_name}} limit',
            },
            {
              expr: `gpulse_container_memory_usage_bytes{${I}, container_name=~"$container"}`,
              legend: '{{instance}} {{container_name}} usage',
            },
          ],
        },
        {
          title: 'Network and disk',
          description: 'Is the container waiting on data (network in, block reads)?',
          kind: 'timeseries',
          unit: 'Bps',
          queries: [
            {
              expr: `rate(gpulse_container_network_receive_bytes_total{${I}, container_name=~"$container"}[$__rate_interval])`,
              legend: '{{instance}} {{container_name}} net in',
            },
            {
              expr: `rate(gpulse_container_network_transmit_bytes_total{${I}, container_name=~"$container"}[$__rate_interval])`,
              legend: '{{instance}} {{container_name}} net out',
            },
            {
              expr: `rate(gpulse_container_block_read_bytes_total{${I}, container_name=~"$container"}[$__rate_interval])`,
              legend: '{{instance}} {{container_name}} disk read',
            },
            {
              expr: `rate(gpulse_container_block_write_bytes_total{${I}, container_name=~"$container"}[$__rate_interval])`,
              legend: '{{instance}} {{container_name}} disk write',
            },
          ],
        },
        tableOf(
          'Containers',
          'Which containers run, from which image, with which compose project or pod?',
          `gpulse_container_info{${I}, container_name=~"$container"} * on (instance, container_id) group_left () gpulse_container_running{${I}}`,
          { width: 12 },
        ),
        ts(
          'Processes',
          'Processes and threads per container.',
          `gpulse_container_pids{${I}, container_name=~"$container"}`,
          'short',
          '{{instance}} {{container_name}}',
        ),
        ts(
          'Uptime',
          'When did each container start?',
          `time() - gpulse_container_start_time_seconds{${I}, container_name=~"$container"}`,
          's',
          '{{instance}} {{container_name}}',
        ),
        ts(
          'CPU time',
          'CPU seconds per second used by each container.',
          `rate(gpulse_container_cpu_usage_seconds_total{${I}, container_name=~"$container"}[$__rate_interval])`,
          'short',
          '{{instance}} {{container_name}}',
        ),
      ],
    },
    {
      title: 'Kubernetes GPU allocations',
      panels: [
        tableOf(
          'Idle GPU allocations',
          'Which pods hold a GPU they leave idle (under the pod-resources idleBelow for idleAfter)? Value: share of the last hour it was idle.',
          `sort_desc(rate(gpulse_gpu_allocated_idle_seconds_total{${I}}[1h]) and on (instance, namespace, pod, container, uuid) (gpulse_gpu_allocation_idle{${I}} == 1))`,
          { unit: 'percentunit' },
        ),
        ts(
          'Idle share of allocated GPUs',
          'How much of the time did each GPU allocated to a pod run under the idle threshold?',
          `rate(gpulse_gpu_allocated_idle_seconds_total{${I}}[$__rate_interval])`,
          'percentunit',
          '{{instance}} {{namespace}}/{{pod}} GPU {{gpu}}',
          { width: 12, min: 0, max: 1 },
        ),
        tableOf(
          'GPU allocations',
          'Which GPU or MIG device did the kubelet give which container (device: the device plugin id; empty gpu: a device this agent does not see)?',
          `gpulse_gpu_allocation_info{${I}}`,
        ),
        {
          title: 'Allocated and allocatable devices',
          description:
            'How many devices of each resource can the kubelet allocate, how many are taken, and how many match no GPU gpulse sees?',
          kind: 'timeseries',
          unit: 'short',
          width: 12,
          queries: [
            {
              expr: `gpulse_gpu_allocatable_devices{${I}}`,
              legend: '{{instance}} {{resource}} allocatable',
            },
            {
              expr: `gpulse_gpu_allocated_devices{${I}}`,
              legend: '{{instance}} {{resource}} allocated',
            },
            {
              expr: `gpulse_gpu_allocated_unknown_devices{${I}}`,
              legend: '{{instance}} {{resource}} unknown',
            },
          ],
        },
      ],
    },
    {
      title: 'Kubernetes runtime and kubelet',
      panels: [
        tableOf(
          'CRI runtime',
          'Which container runtime names the pods of GPU processes (containerd or CRI-O, its version and CRI API)? Absent until a GPU container needs a name, and on Docker hosts.',
          `gpulse_cri_runtime_info{${I}}`,
        ),
        ts(
          'CRI calls',
          'Calls gpulse made to the runtime, by method and status: a burst when a GPU pod starts, none while nothing changes.',
          `sum by (instance, method, code) (increase(gpulse_cri_requests_total{${I}}[$__rate_interval]))`,
          'short',
          '{{instance}} {{method}} {{code}}',
        ),
        ts(
          'Containers the runtime listed',
          'How many containers the last CRI listing named (the cache GPU processes are joined with)?',
          `gpulse_cri_containers{${I}}`,
          'short',
          '{{instance}}',
        ),
        ts(
          'Kubelet pod-resources calls',
          'Calls to the kubelet pod-resources API by method and status (List every interval; GetAllocatableResources stops on a kubelet too old for it).',
          `sum by (instance, method, code) (increase(gpulse_pod_resources_requests_total{${I}}[$__rate_interval]))`,
          'short',
          '{{instance}} {{method}} {{code}}',
        ),
        {
          title: 'Pods holding GPUs',
          description:
            'How many pods the kubelet gave a GPU, and whether it can say which GPUs it could give (0: Kubernetes before 1.23)?',
          kind: 'timeseries',
          unit: 'short',
          queries: [
            { expr: `gpulse_pod_resources_gpu_pods{${I}}`, legend: '{{instance}} pods with GPUs' },
            {
              expr: `gpulse_pod_resources_allocatable_supported{${I}}`,
              legend: '{{instance}} allocatable known',
            },
          ],
        },
      ],
    },
    {
      title: 'Container engine',
      panels: [
        ts(
          'Event stream',
          'Is gpulse connected to the engine event stream (OOM, die, restart events)?',
          `gpulse_docker_events_connected{${I}}`,
          'short',
          '{{instance}}',
        ),
        ts(
          'Event stream reconnects',
          'How often did the event stream drop?',
          `increase(gpulse_docker_events_reconnects_total{${I}}[$__rate_interval])`,
          'short',
          '{{instance}}',
        ),
        {
          title: 'Log scanning for GPU OOM',
          description: 'Container logs followed, and lines read, looking for CUDA out of memory.',
          kind: 'timeseries',
          unit: 'short',
          queries: [
            { expr: `gpulse_docker_log_followers{${I}}`, legend: '{{instance}} logs followed' },
            {
              expr: `rate(gpulse_docker_log_lines_total{${I}}[$__rate_interval])`,
              legend: '{{instance}} lines/s',
            },
          ],
        },
        ts(
          'GPU requests dropped',
          'GPU requests of containers not reported (past maxGpuRequests per container, or not a GPU name): a container asking for thousands is misconfigured.',
          `gpulse_docker_gpu_requests_dropped{${I}}`,
          'short',
          '{{instance}}',
        ),
      ],
    },
  ],
};

/** Edge fleet: which devices are online, and is their telemetry getting through. */
export const edgeDashboard: DashboardSpec = {
  uid: 'gpulse-edge',
  file: 'gpulse-edge.json',
  title: 'gpulse / Edge fleet',
  description:
    'Devices behind the MQTT fleet gateway: liveness, delivery and spool, and their GPUs.',
  variables: [
    { name: 'site', label: 'Site', query: 'label_values(gpulse_fleet_device_up, site)' },
    {
      name: 'node',
      label: 'Device',
      query: 'label_values(gpulse_fleet_device_up{site=~"$site"}, node)',
    },
  ],
  rows: [
    {
      title: 'Fleet',
      panels: [
        stat(
          'Devices known',
          'How many devices has the gateway heard of?',
          'sum(gpulse_fleet_devices)',
        ),
        stat(
          'Devices online',
          'How many of them are online now?',
          'sum(max without (instance) (gpulse_fleet_device_up{site=~"$site", node=~"$node"}))',
        ),
        stat(
          'Gateways connected',
          'Are the gateways connected to the broker?',
          'sum(gpulse_fleet_broker_connected)',
        ),
        tableOf(
          'Devices',
          'Which devices, which gpulse version, heard how long ago?',
          'time() - max without (instance) (gpulse_fleet_device_last_seen_timestamp_seconds{site=~"$site", node=~"$node"})',
          { unit: 's', width: 12 },
        ),
        tableOf(
          'Versions',
          'Which gpulse version does each device run?',
          'gpulse_fleet_device_info{site=~"$site", node=~"$node"}',
        ),
        {
          title: 'Online',
          description: 'When was each device online (1) or offline (0)?',
          kind: 'state',
          width: 12,
          queries: [
            {
              expr: 'max without (instance) (gpulse_fleet_device_up{site=~"$site", node=~"$node"})',
              legend: '{{site}}/{{node}}',
            },
          ],
        },
      ],
    },
    {
      title: 'Delivery',
      panels: [
        ts(
          'MQTT connected',
          'Is each device connected to the broker?',
          'gpulse_mqtt_connected{site=~"$site", node=~"$node"}',
          'short',
          '{{site}}/{{node}}',
        ),
        ts(
          'Messages by outcome',
          'Are messages sent live, spooled, replayed or refused by the broker ACL?',
          'sum by (node, result) (rate(gpulse_mqtt_published_total{site=~"$site", node=~"$node"}[$__rate_interval]))',
          'short',
          '{{node}} {{result}}',
        ),
        ts(
          'Reconnects',
          'How flaky is each link?',
          'increase(gpulse_mqtt_reconnects_total{site=~"$site", node=~"$node"}[$__rate_interval])',
          'short',
          '{{site}}/{{node}}',
        ),
        ts(
          'Spool size',
          'How much telemetry waits on disk for the link?',
          'gpulse_mqtt_spool_bytes{site=~"$site", node=~"$node"}',
          'bytes',
          '{{site}}/{{node}}',
        ),
        ts(
          'Oldest spooled message',
          'How far behind is each device?',
          'gpulse_mqtt_spool_oldest_age_seconds{site=~"$site", node=~"$node"}',
          's',
          '{{site}}/{{node}}',
        ),
        ts(
          'Spool drops',
          'Which devices lost telemetry (spool full, too old, damaged)?',
          'sum by (node, reason) (increase(gpulse_mqtt_spool_dropped_total{site=~"$site", node=~"$node"}[$__rate_interval]))',
          'short',
          '{{node}} {{reason}}',
        ),
      ],
    },
    {
      title: 'Gateway',
      panels: [
        ts(
          'Fleet messages',
          'Messages the gateways applied, forwarded to the member serving the device, or found stale or rejected.',
          'sum by (stream, result) (rate(gpulse_fleet_messages_total[$__rate_interval]))',
          'short',
          '{{stream}} {{result}}',
        ),
        ts(
          'Rejected messages',
          'Malformed or hostile messages, by reason.',
          'sum by (reason) (increase(gpulse_fleet_rejected_messages_total[$__rate_interval]))',
          'short',
          '{{reason}}',
        ),
        ts(
          'Gateway memory for devices',
          'How much of its byte budget (gateway.maxFleetBytes) does each gateway keep for devices?',
          'gpulse_fleet_kept_bytes',
          'bytes',
          '{{instance}}',
        ),
        ts(
          'Share group members',
          'How many gateways of its share group does each gateway see alive?',
          'gpulse_fleet_group_members',
          'short',
          '{{instance}}',
        ),
        {
          title: 'Series repaired',
          description:
            'Device labels renamed (they clashed with site, node, job or instance) and series sent twice in one batch.',
          kind: 'timeseries',
          unit: 'short',
          queries: [
            {
              expr: 'sum(increase(gpulse_fleet_renamed_labels_total[$__rate_interval]))',
              legend: 'labels renamed',
            },
            {
              expr: 'sum(increase(gpulse_fleet_duplicate_series_total[$__rate_interval]))',
              legend: 'duplicate series',
            },
          ],
        },
        ts(
          'Device events',
          'Which events do the devices report (OOM, throttling, Xid, updates)?',
          'sum by (node, type) (increase(gpulse_fleet_events_total{site=~"$site", node=~"$node"}[$__rate_interval]))',
          'short',
          '{{node}} {{type}}',
        ),
      ],
    },
    {
      title: 'Device GPUs',
      panels: [
        ts(
          'GPU utilization',
          'How busy are the devices’ GPUs?',
          'gpulse_gpu_utilization_ratio{site=~"$site", node=~"$node"}',
          'percentunit',
          '{{node}} GPU {{gpu}}',
          { min: 0, max: 1 },
        ),
        ts(
          'GPU temperature',
          'Are the devices running hot (fanless boxes in cabinets)?',
          'gpulse_gpu_temperature_celsius{site=~"$site", node=~"$node"}',
          'celsius',
          '{{node}} GPU {{gpu}}',
        ),
        ts(
          'GPU memory used',
          'Share of device memory in use.',
          'gpulse_gpu_memory_used_bytes{site=~"$site", node=~"$node"} / gpulse_gpu_memory_total_bytes{site=~"$site", node=~"$node"}',
          'percentunit',
          '{{node}} GPU {{gpu}}',
          { min: 0, max: 1 },
        ),
      ],
    },
  ],
};

/** Model updates and drift: which version runs where, did updates stick, does the input drift. */
export const modelsDashboard: DashboardSpec = {
  uid: 'gpulse-models',
  file: 'gpulse-models.json',
  title: 'gpulse / Model updates and drift',
  description: 'Signed delta model updates with rollback, and input drift of the served models.',
  variables: [
    { name: 'instance', label: 'Host', query: 'label_values(gpulse_build_info, instance)' },
    {
      name: 'model',
      label: 'Model',
      query:
        'label_values({__name__=~"gpulse_model_update_state|gpulse_drift_window_samples", instance=~"$instance"}, model)',
    },
  ],
  rows: [
    {
      title: 'Versions',
      panels: [
        tableOf(
          'Committed versions',
          'Which version and release does each device run?',
          `gpulse_model_info{${I}, model=~"$model"}`,
        ),
        tableOf(
          'Update state',
          'Where is the latest update of each model (committed, rolled back, in trial ...)?',
          `gpulse_model_update_state{${I}, model=~"$model"} == 1`,
        ),
        ts(
          'Update progress',
          'How far is the version being assembled?',
          `gpulse_model_update_progress_ratio{${I}, model=~"$model"}`,
          'percentunit',
          '{{instance}} {{model}}',
          { min: 0, max: 1 },
        ),
        ts(
          'Highest release',
          'Rollback protection: the lowest release a device still accepts.',
          `gpulse_model_highest_release{${I}, model=~"$model"}`,
          'short',
          '{{instance}} {{model}}',
        ),
        ts(
          'Quarantined releases',
          'Releases refused after failing their checks.',
          `gpulse_model_quarantined_releases{${I}, model=~"$model"}`,
          'short',
          '{{instance}} {{model}}',
        ),
        ts(
          'Last check',
          'How long ago did each device check the store?',
          `time() - gpulse_model_last_check_timestamp_seconds{${I}, model=~"$model"}`,
          's',
          '{{instance}} {{model}}',
        ),
      ],
    },
    {
      title: 'Updates',
      panels: [
        {
          title: 'Bytes downloaded and reused',
          description: 'How much did the deltas save (reused bytes never cross the link)?',
          kind: 'timeseries',
          unit: 'bytes',
          queries: [
            {
              expr: `gpulse_model_update_bytes_downloaded_total{${I}, model=~"$model"}`,
              legend: '{{instance}} {{model}} downloaded',
            },
            {
              expr: `gpulse_model_update_bytes_reused_total{${I}, model=~"$model"}`,
              legend: '{{instance}} {{model}} reused',
            },
          ],
        },
        {
          title: 'Chunks downloaded and reused',
          description: 'Content-defined chunks fetched against those already on the device.',
          kind: 'timeseries',
          unit: 'short',
          queries: [
            {
              expr: `gpulse_model_update_chunks_downloaded_total{${I}, model=~"$model"}`,
              legend: '{{instance}} {{model}} downloaded',
            },
            {
              expr: `gpulse_model_update_chunks_reused_total{${I}, model=~"$model"}`,
              legend: '{{instance}} {{model}} reused',
            },
          ],
        },
        {
          title: 'Update size',
          description: 'Size of the latest version against what had to be downloaded.',
          kind: 'timeseries',
          unit: 'bytes',
          queries: [
            {
              expr: `gpulse_model_update_size_bytes{${I}, model=~"$model"}`,
              legend: '{{instance}} {{model}} version size',
            },
            {
              expr: `gpulse_model_update_download_size_bytes{${I}, model=~"$model"}`,
              legend: '{{instance}} {{model}} to download',
            },
          ],
        },
        ts(
          'Commits',
          'Updates committed.',
          `gpulse_model_updates_committed_total{${I}, model=~"$model"}`,
          'short',
          '{{instance}} {{model}}',
        ),
        ts(
          'Rollbacks',
          'Updates rolled back, by reason (health command, probe, container, Xid, trial).',
          `gpulse_model_rollbacks_total{${I}, model=~"$model"}`,
          'short',
          '{{instance}} {{model}} {{reason}}',
        ),
        ts(
          'Failures',
          'Updates that failed before activation or manifests refused, by reason.',
          `gpulse_model_update_failures_total{${I}, model=~"$model"}`,
          'short',
          '{{instance}} {{model}} {{reason}}',
        ),
        ts(
          'Store checks',
          'Checks of the model store by result.',
          `gpulse_model_update_checks_total{${I}, model=~"$model"}`,
          'short',
          '{{instance}} {{model}} {{result}}',
        ),
        ts(
          'Last update',
          'How long ago did the latest update reach its state?',
          `time() - gpulse_model_last_update_timestamp_seconds{${I}, model=~"$model"}`,
          's',
          '{{instance}} {{model}}',
        ),
      ],
    },
    {
      title: 'Drift',
      panels: [
        {
          title: 'Drifting share of features',
          description: 'Share of features that drift, against the dataset threshold.',
          kind: 'timeseries',
          unit: 'percentunit',
          min: 0,
          max: 1,
          queries: [
            {
              expr: `gpulse_drift_dataset_share{${I}, model=~"$model"}`,
              legend: '{{instance}} {{model}}',
            },
          ],
        },
        {
          title: 'Dataset drift',
          description: 'When did each model drift as a whole (1)?',
          kind: 'state',
          queries: [
            {
              expr: `gpulse_drift_dataset_detected{${I}, model=~"$model"}`,
              legend: '{{instance}} {{model}}',
            },
          ],
        },
        {
          title: 'Drifting features',
          description: 'Which features drift (after hysteresis)?',
          kind: 'state',
          queries: [
            {
              expr: `gpulse_drift_detected{${I}, model=~"$model"}`,
              legend: '{{instance}} {{model}} {{feature}}',
            },
          ],
        },
        {
          title: 'Drift score against threshold',
          description:
            'Statistic of the deciding method per feature (p-values drift when low, distances when high) and its threshold.',
          kind: 'timeseries',
          unit: 'short',
          width: 12,
          queries: [
            {
              expr: `gpulse_drift_score{${I}, model=~"$model"} * on (instance, model, feature, method) group_left () gpulse_drift_method_info{${I}, model=~"$model"}`,
              legend: '{{instance}} {{model}} {{feature}} {{method}}',
            },
            {
              expr: `gpulse_drift_threshold{${I}, model=~"$model"}`,
              legend: '{{instance}} {{model}} {{feature}} {{method}} threshold',
            },
          ],
        },
        {
          title: 'Observations',
          description: 'Rows per second reaching the drift detector, and rows or values refused.',
          kind: 'timeseries',
          unit: 'short',
          width: 12,
          queries: [
            {
              expr: `sum by (instance, model, source) (rate(gpulse_drift_observations_total{${I}, model=~"$model"}[$__rate_interval]))`,
              legend: '{{instance}} {{model}} {{source}}',
            },
            {
              expr: `sum by (instance, model, reason) (rate(gpulse_drift_rejected_total{${I}, model=~"$model"}[$__rate_interval]))`,
              legend: '{{instance}} {{model}} rejected {{reason}}',
            },
          ],
        },
        {
          title: 'Window and reference',
          description: 'Rows in the sliding window against the rows of the reference profile.',
          kind: 'timeseries',
          unit: 'short',
          queries: [
            {
              expr: `gpulse_drift_window_samples{${I}, model=~"$model"}`,
              legend: '{{instance}} {{model}} window',
            },
            {
              expr: `gpulse_drift_reference_rows{${I}, model=~"$model"}`,
              legend: '{{instance}} {{model}} reference',
            },
          ],
        },
        ts(
          'Evaluations',
          'How often is drift judged?',
          `rate(gpulse_drift_evaluations_total{${I}, model=~"$model"}[$__rate_interval])`,
          'short',
          '{{instance}} {{model}}',
        ),
        tableOf(
          'Reference profiles',
          'Which reference does each model compare against (source, hash)?',
          `gpulse_drift_reference_info{${I}, model=~"$model"}`,
        ),
      ],
    },
  ],
};

/** Jetson: the SoC of an edge module, read from tegrastats (CPU, EMC, engines, rails, zones). */
export const jetsonDashboard: DashboardSpec = {
  uid: 'gpulse-jetson',
  file: 'gpulse-jetson.json',
  title: 'gpulse / Jetson',
  description:
    'Jetson modules from tegrastats: GPU and CPU load, memory, power rails, thermal zones, engines.',
  variables: [
    { name: 'instance', label: 'Device', query: 'label_values(gpulse_jetson_info, instance)' },
  ],
  rows: [
    {
      title: 'Module',
      panels: [
        tableOf(
          'Modules',
          'Which Jetson modules and L4T releases report?',
          `gpulse_jetson_info{${I}}`,
          { width: 24, height: 5 },
        ),
      ],
    },
    {
      title: 'Load',
      panels: [
        ts(
          'CPU cores',
          'Is one core pegged (a single-threaded pre-processing step) while the GPU waits?',
          `gpulse_jetson_cpu_utilization_ratio{${I}}`,
          'percentunit',
          '{{instance}} CPU {{cpu}}',
          { min: 0, max: 1 },
        ),
        ts(
          'CPU clocks',
          'Are the cores clocked down (power mode, thermal)?',
          `gpulse_jetson_cpu_clock_hz{${I}}`,
          'hertz',
          '{{instance}} CPU {{cpu}}',
        ),
        ts(
          'CPU cores online',
          'Which cores does the power mode (nvpmodel) switch off?',
          `gpulse_jetson_cpu_online{${I}}`,
          'short',
          '{{instance}} CPU {{cpu}}',
          { stack: true },
        ),
        ts(
          'Denver cores (MTS)',
          'Foreground and background load of the Denver cores (TX2 on L4T 28 only).',
          `gpulse_jetson_mts_utilization_ratio{${I}}`,
          'percentunit',
          '{{instance}} {{kind}}',
          { min: 0, max: 1 },
        ),
        ts(
          'GPC clocks',
          'GPU clock per GPC (JetPack 5 and later).',
          `gpulse_jetson_gpc_clock_hz{${I}}`,
          'hertz',
          '{{instance}} GPC {{gpc}}',
        ),
      ],
    },
    {
      title: 'Memory',
      panels: [
        {
          title: 'DRAM controller (EMC)',
          description:
            'Is the shared DRAM the bottleneck (CPU and GPU share it on a Jetson)? Load against its clock.',
          kind: 'timeseries',
          unit: 'percentunit',
          min: 0,
          max: 1,
          queries: [
            { expr: `gpulse_jetson_emc_utilization_ratio{${I}}`, legend: '{{instance}} load' },
          ],
        },
        ts(
          'EMC clock',
          'DRAM clock: a low clock under load means the power mode caps bandwidth.',
          `gpulse_jetson_emc_clock_hz{${I}}`,
          'hertz',
          '{{instance}}',
        ),
        ts(
          'Largest free RAM block',
          'Can a large contiguous allocation (CUDA, camera buffers) still succeed?',
          `gpulse_jetson_ram_largest_free_block_bytes{${I}}`,
          'bytes',
          '{{instance}}',
        ),
        ts(
          'Free blocks of that size',
          'How many free blocks of the largest size remain (few: RAM is fragmented)?',
          `gpulse_jetson_ram_largest_free_blocks{${I}}`,
          'short',
          '{{instance}}',
        ),
        {
          title: 'Swap',
          description: 'Is the module swapping (zram) because models and buffers outgrow RAM?',
          kind: 'timeseries',
          unit: 'bytes',
          queries: [
            { expr: `gpulse_jetson_swap_used_bytes{${I}}`, legend: '{{instance}} used' },
            { expr: `gpulse_jetson_swap_cached_bytes{${I}}`, legend: '{{instance}} cached' },
            { expr: `gpulse_jetson_swap_total_bytes{${I}}`, legend: '{{instance}} total' },
          ],
        },
        {
          title: 'Internal RAM (IRAM)',
          description: 'IRAM use on modules that report it (audio and boot buffers).',
          kind: 'timeseries',
          unit: 'bytes',
          queries: [
            { expr: `gpulse_jetson_iram_used_bytes{${I}}`, legend: '{{instance}} used' },
            { expr: `gpulse_jetson_iram_total_bytes{${I}}`, legend: '{{instance}} total' },
            {
              expr: `gpulse_jetson_iram_largest_free_block_bytes{${I}}`,
              legend: '{{instance}} largest free block',
            },
          ],
        },
      ],
    },
    {
      title: 'Power and temperature',
      panels: [
        ts(
          'Power rails',
          'Which rail draws the power (total input, GPU, CPU, SoC)?',
          `gpulse_power_rail_watts{${I}}`,
          'watt',
          '{{instance}} {{rail}}',
        ),
        ts(
          'Average power per rail',
          'Average since tegrastats started: what the module draws over a duty cycle.',
          `gpulse_power_rail_average_watts{${I}}`,
          'watt',
          '{{instance}} {{rail}}',
        ),
        ts(
          'Thermal zones',
          'Which zone runs hot (the module throttles near its trip points)?',
          `gpulse_jetson_temperature_celsius{${I}}`,
          'celsius',
          '{{instance}} {{sensor}}',
        ),
        ts(
          'Sensors offline',
          'Zones reading -256 C: their block is power-gated (normal for idle engines) or the sensor is off.',
          `gpulse_jetson_temperature_sensor_offline{${I}}`,
          'short',
          '{{instance}} {{sensor}}',
        ),
      ],
    },
    {
      title: 'Engines',
      panels: [
        ts(
          'Engine load',
          'Are the video (VIC), second graphics (GR3D2) and other engines busy?',
          `gpulse_jetson_engine_utilization_ratio{${I}}`,
          'percentunit',
          '{{instance}} {{engine}}',
          { min: 0, max: 1 },
        ),
        ts(
          'Engine clocks',
          'Clock of NVENC, NVDEC, VIC, APE and the other SoC engines.',
          `gpulse_jetson_engine_clock_hz{${I}}`,
          'hertz',
          '{{instance}} {{engine}}',
        ),
        ts(
          'Engines clocked',
          'Which engines are on (1) or power-gated (0)?',
          `gpulse_jetson_engine_active{${I}}`,
          'short',
          '{{instance}} {{engine}}',
        ),
      ],
    },
    {
      title: 'Agent',
      panels: [
        {
          title: 'tegrastats',
          description:
            'Is tegrastats running (1), how often was it restarted, and which output could the agent not read?',
          kind: 'timeseries',
          unit: 'short',
          width: 24,
          queries: [
            { expr: `gpulse_tegrastats_stream_up{${I}}`, legend: '{{instance}} up' },
            {
              expr: `increase(gpulse_tegrastats_restarts_total{${I}}[$__rate_interval])`,
              legend: '{{instance}} restarts',
            },
            {
              expr: `increase(gpulse_tegrastats_rejected_lines_total{${I}}[$__rate_interval])`,
              legend: '{{instance}} rejected lines',
            },
            {
              expr: `increase(gpulse_tegrastats_unknown_fields_total{${I}}[$__rate_interval])`,
              legend: '{{instance}} unknown fields',
            },
          ],
        },
      ],
    },
  ],
};

/** Every dashboard, in the order deploy/README.md presents them. */
export const dashboards: readonly DashboardSpec[] = [
  fleetDashboard,
  gpuDashboard,
  containersDashboard,
  edgeDashboard,
  modelsDashboard,
  jetsonDashboard,
];
