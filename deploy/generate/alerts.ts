// Source of deploy/prometheus/alerts.yaml. Every threshold, window and selector lives in
// `alertConfig` below (node-mixin keeps them in config.libsonnet for the same reason): change a
// number here, run `npm run docs`, and the rules file, the Kubernetes PrometheusRule and the
// README's alert table follow. `deploy/prometheus/alerts.test.yaml` pins each rule's behaviour.

/** Every tunable of the alert rules. Durations are Prometheus durations. */
export const alertConfig = {
  /** `up` series of the gpulse scrape jobs (compose: gpulse, gpulse-gateway; Kubernetes: gpulse). */
  agentJobs: 'job=~"gpulse.*"',
  agentDown: { for: '2m' },
  /** A collector in error or timeout (not `no_data`: a host without a GPU or Docker is a state). */
  collectorFailing: { for: '10m' },
  /** nvidia-smi streams restarted more than `count` times within `window`. */
  nvidiaSmiRestarts: { count: 3, window: '15m' },
  /** GPU count below its maximum of the last `window` (a GPU vanished while others answer). */
  gpuMissing: { window: '1h', for: '5m' },
  /**
   * Sustained kernel activity: queueing, time to add capacity (inference) or expected (training).
   * The median over `window` ignores the short checkpoint/evaluation dips of training loops.
   */
  gpuUtilization: { ratio: 0.9, window: '15m', for: '15m' },
  /**
   * Device memory used / (used + free): the driver's reserved memory is never allocatable, so
   * used / total tops out below 1. Warning leaves headroom, critical predicts a CUDA OOM.
   */
  gpuMemory: { warning: 0.95, warningFor: '5m', critical: 0.99, criticalFor: '2m' },
  /** GPU core temperature, below the usual slowdown points (83–90 °C on datacenter boards). */
  gpuTemperature: { celsius: 85, for: '5m' },
  /** Hardware slowdowns (≥ 2x clock cut) active at any sample of `window`. */
  hwSlowdown: { window: '5m', for: '1m' },
  /** Software thermal slowdown active more than `share` of `window`. */
  swThermal: { share: 0.5, window: '10m', for: '5m' },
  /** Xid errors by gpulse's severity (critical: drain/reset; warning: look at it). */
  xid: { window: '10m', warningWindow: '30m', appBurst: 3 },
  /** Uncorrectable ECC errors page; corrected ones above `correctedPerHour` open a ticket. */
  ecc: { window: '10m', correctedPerHour: 100 },
  /**
   * A whole GPU the kubelet allocated to a container, idle (under the pod-resources collector's
   * `idleBelow`, 5 % by default) more than `share` of each `window`, for `for`: reserved, unused.
   */
  allocatedIdle: { share: 0.9, window: '5m', for: '30m' },
  /** Host-memory OOM kills and GPU OOM failures found in container logs. */
  oom: { window: '10m' },
  /** Model drift judged for `for` (gpulse already applies hysteresis per feature). */
  drift: { for: '15m', featureFor: '30m' },
  /** Edge devices silent or offline at the gateway; the gateway's own broker link. */
  edge: { deviceFor: '5m', brokerFor: '5m', agentMqttFor: '15m' },
  /** Spool backlog: oldest message waiting longer than `oldestSeconds`, or messages dropped. */
  spool: { oldestSeconds: 3600, for: '15m', dropWindow: '1h' },
  /** Model updates rolled back or failing within `window`. */
  modelUpdates: { window: '30m', failureWindow: '1h' },
} as const;

/** One alerting rule as Prometheus loads it. */
export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  /** Prometheus duration; `0m` for events (a counter rose), which fire at once. */
  readonly for: string;
  readonly labels: { readonly severity: 'critical' | 'warning' | 'info' };
  readonly annotations: { readonly summary: string; readonly description: string };
}

/** A rule group. */
export interface RuleGroup {
  readonly name: string;
  readonly rules: readonly AlertRule[];
}

const c = alertConfig;

/** Events (a counter rose) fire at their first evaluation and resolve when the window passes. */
const EVENT = '0m';

/**
 * A counter that went up within `window`, including a series' first appearance: gpulse creates
 * some counters (rollbacks, Xid, GPU OOM) only when the first event happens, and `increase()`
 * alone never sees that first step.
 */
export function counterRose(selector: string, window: string): string {
  return `increase(${selector}[${window}]) > 0 or (${selector} > 0 unless ${selector} offset ${window})`;
}

const pct = (ratio: number): string => `${Math.round(ratio * 100)} %`;

/** Share of a GPU's memory in use (0-1). */
const GPU_MEMORY_USED_SHARE =
  'gpulse_gpu_memory_used_bytes / (gpulse_gpu_memory_used_bytes + gpulse_gpu_memory_free_bytes)';

/** The rule groups, in the order alerts.yaml lists them. */
export const ruleGroups: readonly RuleGroup[] = [
  {
    name: 'gpulse-agent',
    rules: [
      {
        alert: 'GpulseAgentDown',
        expr: `up{${c.agentJobs}} == 0`,
        for: c.agentDown.for,
        labels: { severity: 'critical' },
        annotations: {
          summary: 'gpulse on {{ $labels.instance }} is not answering scrapes',
          description:
            'Prometheus cannot scrape {{ $labels.instance }} (job {{ $labels.job }}) for ' +
            `${c.agentDown.for}: the GPUs of this host are unobserved. Check the service ` +
            '(`systemctl status gpulse`, `kubectl -n gpulse get pods -o wide`) and run `gpulse doctor` on the host.',
        },
      },
      {
        alert: 'GpulseCollectorFailing',
        expr: 'gpulse_collector_status{status=~"error|timeout"} == 1',
        for: c.collectorFailing.for,
        labels: { severity: 'warning' },
        annotations: {
          summary: 'gpulse collector {{ $labels.collector }} on {{ $labels.instance }} is failing',
          description:
            'Collector {{ $labels.collector }} has been in state {{ $labels.status }} (reason ' +
            `{{ $labels.reason }}) for ${c.collectorFailing.for}; its series are missing. The agent log ` +
            'says why; `gpulse doctor` checks the usual causes.',
        },
      },
      {
        alert: 'GpulseNvidiaSmiRestarting',
        expr: `increase(gpulse_nvidia_smi_restarts_total[${c.nvidiaSmiRestarts.window}]) > ${c.nvidiaSmiRestarts.count}`,
        for: EVENT,
        labels: { severity: 'warning' },
        annotations: {
          summary: 'nvidia-smi keeps restarting on {{ $labels.instance }}',
          description:
            'The {{ $labels.stream }} stream of nvidia-smi was restarted {{ $value | printf "%.0f" }} times in ' +
            `${c.nvidiaSmiRestarts.window} (exits or hangs). Repeated hangs point at the driver: look for Xid ` +
            'errors in `dmesg` and at `gpulse_collector_status{collector="nvidia-smi"}`.',
        },
      },
    ],
  },
  {
    name: 'gpulse-gpu-availability',
    rules: [
      {
        alert: 'GpulseGpuFallenOffBus',
        // gpulse_gpu_up is 0 while the driver lists the GPU but cannot open it; DCGM's blank
        // row and Xid 79 say the same on the other surfaces (/api/v1/gpus, events, compat).
        expr: 'gpulse_gpu_up == 0',
        for: '1m',
        labels: { severity: 'critical' },
        annotations: {
          summary: 'GPU {{ $labels.gpu }} of {{ $labels.instance }} has fallen off the bus',
          description:
            'GPU {{ $labels.gpu }} ({{ $labels.uuid }}) is attached but no longer answers its driver ' +
            '(Xid 79, "GPU has fallen off the bus"): every job on it has failed, the other GPUs still ' +
            'report. Drain the node and reboot it; if it recurs, check power and seating, then RMA.',
        },
      },
      {
        alert: 'GpulseGpuDriverUnavailable',
        expr: 'gpulse_collector_status{collector="nvidia-smi",reason=~"driver_not_loaded|library_not_found"} == 1',
        for: c.collectorFailing.for,
        labels: { severity: 'critical' },
        annotations: {
          summary: 'The NVIDIA driver is not usable on {{ $labels.instance }}',
          description:
            'nvidia-smi is installed but reports {{ $labels.reason }}: the kernel module is not loaded ' +
            '(after a kernel update?) or libnvidia-ml.so is missing. `modprobe nvidia` or reinstall the ' +
            'driver; `gpulse doctor` shows the details.',
        },
      },
      {
        alert: 'GpulseGpuMissing',
        expr:
          'count by (instance) (gpulse_gpu_info) < ' +
          `max_over_time(count by (instance) (gpulse_gpu_info)[${c.gpuMissing.window}:1m])`,
        for: c.gpuMissing.for,
        labels: { severity: 'critical' },
        annotations: {
          summary: '{{ $labels.instance }} sees fewer GPUs than before',
          description:
            `{{ $value }} GPUs answer on {{ $labels.instance }}, fewer than in the last ${c.gpuMissing.window}. ` +
            'A GPU fell off the bus or the driver lost it: check `nvidia-smi -L` and `dmesg` for Xid 79.',
        },
      },
    ],
  },
  {
    name: 'gpulse-gpu-saturation',
    rules: [
      {
        alert: 'GpulseGpuUtilizationSaturated',
        // `and` the current sample: a GPU that no longer reports (lost, hung tool) is not
        // "saturated" for the rest of the window on its history.
        expr: `quantile_over_time(0.5, gpulse_gpu_utilization_ratio[${c.gpuUtilization.window}]) > ${c.gpuUtilization.ratio} and gpulse_gpu_utilization_ratio`,
        for: c.gpuUtilization.for,
        labels: { severity: 'warning' },
        annotations: {
          summary: 'GPU {{ $labels.gpu }} of {{ $labels.instance }} is saturated',
          description:
            `GPU {{ $labels.gpu }} ran kernels more than ${pct(c.gpuUtilization.ratio)} of the time in most ` +
            `samples of ${c.gpuUtilization.window}. Expected for training; for inference, requests queue: add replicas ` +
            '(see deploy/kubernetes/examples/hpa) or GPUs.',
        },
      },
      {
        alert: 'GpulseGpuMemoryNearlyFull',
        expr: `${GPU_MEMORY_USED_SHARE} > ${c.gpuMemory.warning}`,
        for: c.gpuMemory.warningFor,
        labels: { severity: 'warning' },
        annotations: {
          summary:
            'GPU {{ $labels.gpu }} of {{ $labels.instance }} memory is {{ $value | humanizePercentage }} full',
          description:
            `Device memory above ${pct(c.gpuMemory.warning)} for ${c.gpuMemory.warningFor}; the next allocation may ` +
            'fail with CUDA out of memory. See which processes hold it on the GPU detail dashboard.',
        },
      },
      {
        alert: 'GpulseGpuMemoryFull',
        expr: `${GPU_MEMORY_USED_SHARE} > ${c.gpuMemory.critical}`,
        for: c.gpuMemory.criticalFor,
        labels: { severity: 'critical' },
        annotations: {
          summary: 'GPU {{ $labels.gpu }} of {{ $labels.instance }} memory is full',
          description:
            `Device memory above ${pct(c.gpuMemory.critical)} for ${c.gpuMemory.criticalFor}: allocations are failing ` +
            'or about to (CUDA out of memory). Reduce batch size, stop a process, or move work to another GPU.',
        },
      },
      {
        alert: 'GpulseMigMemoryNearlyFull',
        expr: `gpulse_mig_memory_used_bytes / gpulse_mig_memory_total_bytes > ${c.gpuMemory.warning}`,
        for: c.gpuMemory.warningFor,
        labels: { severity: 'warning' },
        annotations: {
          summary:
            'MIG device {{ $labels.gpu_instance_id }}/{{ $labels.compute_instance_id }} of GPU {{ $labels.gpu }} on {{ $labels.instance }} is nearly full',
          description:
            `MIG device memory above ${pct(c.gpuMemory.warning)} for ${c.gpuMemory.warningFor}; the next allocation in ` +
            'that instance may fail with CUDA out of memory.',
        },
      },
    ],
  },
  {
    name: 'gpulse-gpu-thermal-power',
    rules: [
      {
        alert: 'GpulseGpuThermalSlowdown',
        expr:
          `max_over_time(gpulse_gpu_throttle_active{reason="hw_thermal_slowdown"}[${c.hwSlowdown.window}]) == 1 ` +
          `or rate(gpulse_gpu_throttle_seconds_total{reason="hw_thermal_slowdown"}[${c.hwSlowdown.window}]) > 0`,
        for: c.hwSlowdown.for,
        labels: { severity: 'critical' },
        annotations: {
          summary: 'GPU {{ $labels.gpu }} of {{ $labels.instance }} is cutting its clocks: too hot',
          description:
            'HW thermal slowdown: the GPU halves its clocks or more because it is over its slowdown ' +
            'temperature. Check airflow, fans and inlet temperature; jobs run far slower meanwhile.',
        },
      },
      {
        alert: 'GpulseGpuPowerBrakeSlowdown',
        expr:
          `max_over_time(gpulse_gpu_throttle_active{reason="hw_power_brake_slowdown"}[${c.hwSlowdown.window}]) == 1 ` +
          `or rate(gpulse_gpu_throttle_seconds_total{reason="hw_power_brake_slowdown"}[${c.hwSlowdown.window}]) > 0`,
        for: c.hwSlowdown.for,
        labels: { severity: 'critical' },
        annotations: {
          summary: 'GPU {{ $labels.gpu }} of {{ $labels.instance }} is power-braked',
          description:
            'HW power brake slowdown: an external signal (power supply, chassis) asserted the power ' +
            'brake and the GPU cut its clocks by half or more. Check the PSUs and the chassis power budget.',
        },
      },
      {
        alert: 'GpulseGpuHardwareSlowdown',
        expr:
          `max_over_time(gpulse_gpu_throttle_active{reason="hw_slowdown"}[${c.hwSlowdown.window}]) == 1 ` +
          `unless on (instance, gpu) max_over_time(gpulse_gpu_throttle_active{reason=~"hw_thermal_slowdown|hw_power_brake_slowdown"}[${c.hwSlowdown.window}]) == 1`,
        for: c.hwSlowdown.for,
        labels: { severity: 'warning' },
        annotations: {
          summary: 'GPU {{ $labels.gpu }} of {{ $labels.instance }} has a hardware slowdown',
          description:
            'HW slowdown without a thermal or power-brake reason beside it: the GPU cut its clocks ' +
            'by half or more (power too high, fast trigger). Look at power draw against the limit.',
        },
      },
      {
        alert: 'GpulseGpuSoftwareThermalThrottling',
        expr: `avg_over_time(gpulse_gpu_throttle_active{reason="sw_thermal_slowdown"}[${c.swThermal.window}]) > ${c.swThermal.share}`,
        for: c.swThermal.for,
        labels: { severity: 'warning' },
        annotations: {
          summary: 'GPU {{ $labels.gpu }} of {{ $labels.instance }} is throttling to stay cool',
          description:
            `The driver lowered clocks to hold the temperature more than ${pct(c.swThermal.share)} of ` +
            `${c.swThermal.window}. Cooling is marginal; a hardware slowdown may follow.`,
        },
      },
      {
        alert: 'GpulseGpuTemperatureHigh',
        expr: `gpulse_gpu_temperature_celsius > ${c.gpuTemperature.celsius}`,
        for: c.gpuTemperature.for,
        labels: { severity: 'warning' },
        annotations: {
          summary: 'GPU {{ $labels.gpu }} of {{ $labels.instance }} is at {{ $value }} °C',
          description: `Above ${c.gpuTemperature.celsius} °C for ${c.gpuTemperature.for}, close to the slowdown point.`,
        },
      },
    ],
  },
  {
    name: 'gpulse-gpu-errors',
    rules: [
      {
        alert: 'GpulseGpuXidCritical',
        expr: counterRose('gpulse_gpu_xid_errors_total{severity="critical"}', c.xid.window),
        for: EVENT,
        labels: { severity: 'critical' },
        annotations: {
          summary:
            'Critical Xid {{ $labels.xid }} on GPU {{ $labels.gpu }} of {{ $labels.instance }}',
          description:
            'The driver logged Xid {{ $labels.xid }} (double-bit ECC, GPU halt, row-remap failure, NVLink, ' +
            'fallen off the bus, uncontained error). Drain the GPU and reset it; a repeat means RMA.',
        },
      },
      {
        alert: 'GpulseGpuXidWarning',
        expr: counterRose('gpulse_gpu_xid_errors_total{severity="warning"}', c.xid.warningWindow),
        for: EVENT,
        labels: { severity: 'warning' },
        annotations: {
          summary: 'Xid {{ $labels.xid }} on GPU {{ $labels.gpu }} of {{ $labels.instance }}',
          description:
            'The driver logged Xid {{ $labels.xid }} (row remap pending, micro-controller warning, high ' +
            'single-bit ECC rate, contained ECC error). Schedule a GPU reset; watch for critical Xids.',
        },
      },
      {
        alert: 'GpulseGpuApplicationXidBurst',
        expr: `increase(gpulse_gpu_xid_errors_total{severity="info"}[${c.xid.window}]) > ${c.xid.appBurst}`,
        for: EVENT,
        labels: { severity: 'info' },
        annotations: {
          summary: 'Application Xids on GPU {{ $labels.gpu }} of {{ $labels.instance }}',
          description:
            `More than ${c.xid.appBurst} application Xids ({{ $labels.xid }}: illegal address, page fault, ` +
            `engine exception) in ${c.xid.window}: a job is crashing on this GPU; rarely the hardware.`,
        },
      },
      {
        alert: 'GpulseGpuEccUncorrectableErrors',
        expr: `increase(gpulse_gpu_ecc_errors_total{error_type="uncorrected",counter="volatile"}[${c.ecc.window}]) > 0`,
        for: EVENT,
        labels: { severity: 'critical' },
        annotations: {
          summary: 'Uncorrectable ECC errors on GPU {{ $labels.gpu }} of {{ $labels.instance }}',
          description:
            'Device memory returned data it could not correct; the processes that read it got wrong ' +
            'data or were killed. Drain the GPU and reset it (pending row remaps apply at reset).',
        },
      },
      {
        alert: 'GpulseGpuEccCorrectedErrorsHigh',
        expr: `increase(gpulse_gpu_ecc_errors_total{error_type="corrected",counter="volatile"}[1h]) > ${c.ecc.correctedPerHour}`,
        for: EVENT,
        labels: { severity: 'warning' },
        annotations: {
          summary: 'Many corrected ECC errors on GPU {{ $labels.gpu }} of {{ $labels.instance }}',
          description: `More than ${c.ecc.correctedPerHour} corrected ECC errors in an hour: memory is degrading. Watch for uncorrectable errors and row-remap failures.`,
        },
      },
      {
        alert: 'GpulseGpuRowRemapFailure',
        expr: 'gpulse_gpu_remapped_rows_failure == 1',
        for: EVENT,
        labels: { severity: 'critical' },
        annotations: {
          summary: 'Row remapping failed on GPU {{ $labels.gpu }} of {{ $labels.instance }}',
          description:
            'The GPU could not remap a failing memory row (Xid 64): it has no spare rows left for that ' +
            'bank. Take it out of service and RMA it.',
        },
      },
      {
        alert: 'GpulseGpuResetPending',
        expr: 'gpulse_gpu_remapped_rows_pending == 1 or gpulse_gpu_retired_pages_pending == 1',
        for: '1h',
        labels: { severity: 'warning' },
        annotations: {
          summary: 'GPU {{ $labels.gpu }} of {{ $labels.instance }} needs a reset',
          description:
            'A row remap or page retirement waits for the next GPU reset to take effect. Drain the ' +
            'GPU and reset it (`nvidia-smi -r -i {{ $labels.gpu }}`) or reboot.',
        },
      },
    ],
  },
  {
    name: 'gpulse-oom',
    rules: [
      {
        alert: 'GpulseContainerGpuOutOfMemory',
        expr: counterRose('gpulse_container_gpu_oom_total', c.oom.window),
        for: EVENT,
        labels: { severity: 'warning' },
        annotations: {
          summary:
            'GPU out of memory in container {{ $labels.container_name }} on {{ $labels.instance }}',
          description:
            'The container logged a CUDA out-of-memory error (a GPU OOM never sets OOMKilled). Lower its ' +
            'batch size or memory fraction, or give it a GPU to itself.',
        },
      },
      {
        alert: 'GpulseContainerOomKilled',
        expr: counterRose('gpulse_container_oom_kills_total', c.oom.window),
        for: EVENT,
        labels: { severity: 'warning' },
        annotations: {
          summary:
            'Container {{ $labels.container_name }} on {{ $labels.instance }} was OOM-killed',
          description:
            'The kernel OOM killer killed a process of the container (host memory, not GPU memory): it ' +
            'reached its memory limit. Raise the limit or find the leak.',
        },
      },
    ],
  },
  {
    name: 'gpulse-kubernetes',
    rules: [
      {
        alert: 'GpulseGpuAllocatedIdle',
        // The counter, not the 0/1 gauge: a short busy spell does not restart the `for:`, and
        // the window is the alert's own, whatever idleAfter the agent runs with.
        expr: `rate(gpulse_gpu_allocated_idle_seconds_total[${c.allocatedIdle.window}]) > ${c.allocatedIdle.share}`,
        for: c.allocatedIdle.for,
        labels: { severity: 'warning' },
        annotations: {
          summary:
            'GPU {{ $labels.gpu }} allocated to {{ $labels.namespace }}/{{ $labels.pod }} on {{ $labels.instance }} is idle',
          description:
            'Container {{ $labels.container }} of pod {{ $labels.namespace }}/{{ $labels.pod }} holds GPU ' +
            `{{ $labels.gpu }} ({{ $labels.uuid }}) but kept it under the idle threshold more than ${pct(c.allocatedIdle.share)} ` +
            `of the time for ${c.allocatedIdle.for}: the GPU is reserved and unused, and other pods wait for it. ` +
            'Check the workload (a notebook left open, a finished or stuck job, a replica without traffic); ' +
            'scale it down, or release the GPU.',
        },
      },
    ],
  },
  {
    name: 'gpulse-models',
    rules: [
      {
        alert: 'GpulseModelDrift',
        expr: 'gpulse_drift_dataset_detected == 1',
        for: c.drift.for,
        labels: { severity: 'warning' },
        annotations: {
          summary: 'Input drift on model {{ $labels.model }} at {{ $labels.instance }}',
          description:
            'The share of drifting features of {{ $labels.model }} reached its dataset threshold ' +
            `for ${c.drift.for}: the model sees data unlike its reference. Check the drift dashboard; retrain ` +
            'or refresh the reference.',
        },
      },
      {
        alert: 'GpulseModelFeatureDrift',
        expr: 'gpulse_drift_detected == 1',
        for: c.drift.featureFor,
        labels: { severity: 'info' },
        annotations: {
          summary: 'Feature {{ $labels.feature }} of model {{ $labels.model }} drifts',
          description: `Feature {{ $labels.feature }} has drifted for ${c.drift.featureFor}.`,
        },
      },
      {
        alert: 'GpulseModelUpdateRolledBack',
        expr: counterRose('gpulse_model_rollbacks_total', c.modelUpdates.window),
        for: EVENT,
        labels: { severity: 'warning' },
        annotations: {
          summary: 'Model {{ $labels.model }} update rolled back on {{ $labels.instance }}',
          description:
            'The new version failed its checks ({{ $labels.reason }}) and the device went back to the ' +
            'previous one; that release is quarantined. `gpulse model status` on the device shows why.',
        },
      },
      {
        alert: 'GpulseModelUpdateFailing',
        expr: counterRose('gpulse_model_update_failures_total', c.modelUpdates.failureWindow),
        for: EVENT,
        labels: { severity: 'info' },
        annotations: {
          summary: 'Model {{ $labels.model }} updates fail on {{ $labels.instance }}',
          description:
            'An update of {{ $labels.model }} failed before activation or a manifest was refused ' +
            '({{ $labels.reason }}); the device keeps its version.',
        },
      },
    ],
  },
  {
    name: 'gpulse-edge',
    rules: [
      {
        alert: 'GpulseEdgeDeviceOffline',
        expr: 'gpulse_fleet_device_up == 0',
        for: c.edge.deviceFor,
        labels: { severity: 'warning' },
        annotations: {
          summary: 'Edge device {{ $labels.site }}/{{ $labels.node }} is offline',
          description:
            `The gateway has not heard from {{ $labels.node }} for ${c.edge.deviceFor} (or it sent its last ` +
            'will). It spools telemetry while offline and replays it when back.',
        },
      },
      {
        alert: 'GpulseGatewayBrokerDisconnected',
        expr: 'gpulse_fleet_broker_connected == 0',
        for: c.edge.brokerFor,
        labels: { severity: 'critical' },
        annotations: {
          summary: 'Fleet gateway {{ $labels.instance }} lost its MQTT broker',
          description:
            'The gateway is not connected to the broker: every edge device looks silent. Check the ' +
            "gateway's log (credentials, TLS, ACL) and the broker.",
        },
      },
      {
        alert: 'GpulseMqttDisconnected',
        expr: 'gpulse_mqtt_connected == 0',
        for: c.edge.agentMqttFor,
        labels: { severity: 'warning' },
        annotations: {
          summary: 'gpulse on {{ $labels.instance }} cannot reach its MQTT broker',
          description: `Not connected for ${c.edge.agentMqttFor}; telemetry goes to the spool.`,
        },
      },
      {
        alert: 'GpulseSpoolBacklog',
        expr: `gpulse_mqtt_spool_oldest_age_seconds > ${c.spool.oldestSeconds}`,
        for: c.spool.for,
        labels: { severity: 'warning' },
        annotations: {
          summary:
            'Telemetry spool of {{ with $labels.node }}{{ . }}{{ else }}{{ $labels.instance }}{{ end }} is filling',
          description:
            'The oldest spooled message waits for {{ $value | humanizeDuration }}: the link is down or ' +
            'too slow to drain. At its byte or age bound the spool drops the oldest telemetry.',
        },
      },
      {
        alert: 'GpulseSpoolDropping',
        expr: counterRose('gpulse_mqtt_spool_dropped_total', c.spool.dropWindow),
        for: EVENT,
        labels: { severity: 'warning' },
        annotations: {
          summary:
            'Telemetry spool of {{ with $labels.node }}{{ . }}{{ else }}{{ $labels.instance }}{{ end }} drops messages',
          description:
            'The spool gave up messages ({{ $labels.reason }}): full, too old, damaged or not writable. ' +
            'That telemetry is lost; raise mqtt.spool.maxBytes or fix the link.',
        },
      },
    ],
  },
];
