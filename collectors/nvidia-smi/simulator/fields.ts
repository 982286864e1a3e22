/**
 * How `--query-gpu` fields relate to `nvidia-smi -q -x` elements, and how their cells look.
 * One table serves both directions: deriving CSV cells from an XML capture, and writing an
 * XML document from CSV cells. Element paths are relative to `<gpu>`; alternatives cover the
 * renames across schemas v9–v13 (power_readings → gpu_power_readings, throttle → event).
 */

/** A `--query-gpu` / `--query-compute-apps` field a source answers. */
export interface QueryField {
  /** Canonical name, printed in the header whatever alias was asked for. */
  readonly name: string;
  readonly aliases: readonly string[];
  /** Header unit (`memory.used [MiB]`); also the suffix `nounits` strips from cells. */
  readonly unit: string | undefined;
}

/** How an XML element's text turns into a CSV cell. */
export type XmlConversion =
  /** Same text (`Enabled`, `65 %`, `139.62 W`). */
  | 'text'
  /** `27 C` → `27`. */
  | 'celsius'
  /** `16x` → `16`. */
  | 'width'
  /** `0C` → `0x0C`, `221610DE` → `0x221610DE`. */
  | 'hex'
  /** `192 bank(s)` → `192`. */
  | 'banks';

/** One field ↔ element binding. */
export interface XmlBinding {
  readonly field: string;
  /** Alternative element paths under `<gpu>`; the first present one is used. */
  readonly paths: readonly string[];
  readonly conversion: XmlConversion;
  readonly unit?: string;
  /** Aliases nvidia-smi accepts for the field (from `--help-query-gpu`). */
  readonly aliases?: readonly string[];
  /** When no path is present: alternative sets of elements whose values add up to the cell. */
  readonly sum?: readonly (readonly string[])[];
}

// These print a bare N/A where every other field prints [N/A]: seen in all real all-fields CSVs.
const BARE_NA_FIELDS = new Set([
  'temperature.memory',
  'fabric.state',
  'fabric.status',
  'fabric.cliqueId',
  'fabric.clusterUuid',
  'fabric.health.summary',
  'fabric.health.bandwidth',
  'fabric.health.route_recovery_in_progress',
  'fabric.health.route_unhealthy',
  'fabric.health.access_timeout_recovery',
  'fabric.health.incorrect_configuration',
  'fabric.health.partition_assigned',
]);

/** Texts nvidia-smi prints instead of a value; the CSV wraps them in brackets. */
const NOT_A_VALUE = new Set([
  'N/A',
  'Not Supported',
  'Requested functionality has been deprecated',
  'Unknown Error',
  'Insufficient Permissions',
  'GPU requires reset',
  'Not Found',
]);

/** The CSV cell for "no value" text of an element (`N/A` → `[N/A]`, or bare for some fields). */
export function notAvailableCell(field: string, text: string): string {
  return BARE_NA_FIELDS.has(field) && text === 'N/A' ? 'N/A' : `[${text}]`;
}

/** True for element texts that are a status rather than a value. */
export function isNotAValue(text: string): boolean {
  return NOT_A_VALUE.has(text);
}

const p = 'pci/pci_gpu_link_info';
const ev = (reason: string): XmlBinding[] => [
  {
    field: `clocks_event_reasons.${reason}`,
    paths: [`clocks_event_reasons/clocks_event_reason_${reason}`],
    conversion: 'text',
    aliases: [`clocks_throttle_reasons.${reason}`],
  },
  {
    field: `clocks_throttle_reasons.${reason}`,
    paths: [`clocks_throttle_reasons/clocks_throttle_reason_${reason}`],
    conversion: 'text',
  },
];
const counter = (field: string, element: string): XmlBinding => ({
  field: `clocks_event_reasons_counters.${field}`,
  paths: [`clocks_event_reasons_counters/clocks_event_reasons_counters_${element}`],
  conversion: 'text',
  unit: 'us',
});
const power = (
  field: string,
  v13: string,
  old: readonly string[],
  aliases: string[] = [],
): XmlBinding => ({
  field,
  paths: [`gpu_power_readings/${v13}`, ...old],
  conversion: 'text',
  unit: 'W',
  aliases,
});
const ecc = (field: string, paths: string[], sum?: string[][]): XmlBinding => ({
  field: `ecc.errors.${field}`,
  paths,
  conversion: 'text',
  ...(sum ? { sum } : {}),
});

/**
 * Field ↔ element table, in `--help-query-gpu` order. `timestamp`, `count`, `index` and
 * `clocks_event_reasons.active` are document-level or derived and handled by the XML module.
 */
export const XML_BINDINGS: readonly XmlBinding[] = [
  { field: 'driver_version', paths: ['../driver_version'], conversion: 'text' },
  { field: 'name', paths: ['product_name'], conversion: 'text', aliases: ['gpu_name'] },
  { field: 'serial', paths: ['serial'], conversion: 'text', aliases: ['gpu_serial'] },
  { field: 'uuid', paths: ['uuid'], conversion: 'text', aliases: ['gpu_uuid'] },
  { field: 'pci.bus_id', paths: ['pci/pci_bus_id'], conversion: 'text', aliases: ['gpu_bus_id'] },
  { field: 'pci.domain', paths: ['pci/pci_domain'], conversion: 'hex' },
  { field: 'pci.bus', paths: ['pci/pci_bus'], conversion: 'hex' },
  { field: 'pci.device', paths: ['pci/pci_device'], conversion: 'hex' },
  { field: 'pci.baseClass', paths: ['pci/pci_base_class'], conversion: 'hex' },
  { field: 'pci.subClass', paths: ['pci/pci_sub_class'], conversion: 'hex' },
  { field: 'pci.device_id', paths: ['pci/pci_device_id'], conversion: 'hex' },
  { field: 'pci.sub_device_id', paths: ['pci/pci_sub_system_id'], conversion: 'hex' },
  { field: 'pcie.link.gen.current', paths: [`${p}/pcie_gen/current_link_gen`], conversion: 'text' },
  {
    field: 'pcie.link.gen.gpucurrent',
    paths: [`${p}/pcie_gen/device_current_link_gen`],
    conversion: 'text',
  },
  { field: 'pcie.link.gen.max', paths: [`${p}/pcie_gen/max_link_gen`], conversion: 'text' },
  {
    field: 'pcie.link.gen.gpumax',
    paths: [`${p}/pcie_gen/max_device_link_gen`],
    conversion: 'text',
  },
  {
    field: 'pcie.link.gen.hostmax',
    paths: [`${p}/pcie_gen/max_host_link_gen`],
    conversion: 'text',
  },
  {
    field: 'pcie.link.width.current',
    paths: [`${p}/link_widths/current_link_width`],
    conversion: 'width',
  },
  { field: 'pcie.link.width.max', paths: [`${p}/link_widths/max_link_width`], conversion: 'width' },
  { field: 'display_mode', paths: ['display_mode'], conversion: 'text' },
  { field: 'display_attached', paths: ['display_attached'], conversion: 'text' },
  { field: 'display_active', paths: ['display_active'], conversion: 'text' },
  { field: 'persistence_mode', paths: ['persistence_mode'], conversion: 'text' },
  { field: 'addressing_mode', paths: ['addressing_mode'], conversion: 'text' },
  { field: 'accounting.mode', paths: ['accounting_mode'], conversion: 'text' },
  { field: 'accounting.buffer_size', paths: ['accounting_mode_buffer_size'], conversion: 'text' },
  { field: 'driver_model.current', paths: ['driver_model/current_dm'], conversion: 'text' },
  { field: 'driver_model.pending', paths: ['driver_model/pending_dm'], conversion: 'text' },
  { field: 'vbios_version', paths: ['vbios_version'], conversion: 'text' },
  {
    field: 'inforom.img',
    paths: ['inforom_version/img_version'],
    conversion: 'text',
    aliases: ['inforom.image'],
  },
  { field: 'inforom.oem', paths: ['inforom_version/oem_object'], conversion: 'text' },
  { field: 'inforom.ecc', paths: ['inforom_version/ecc_object'], conversion: 'text' },
  {
    field: 'inforom.pwr',
    paths: ['inforom_version/pwr_object'],
    conversion: 'text',
    aliases: ['inforom.power'],
  },
  { field: 'gpu_recovery_action', paths: ['gpu_recovery_action'], conversion: 'text' },
  {
    field: 'gom.current',
    paths: ['gpu_operation_mode/current_gom'],
    conversion: 'text',
    aliases: ['gpu_operation_mode.current'],
  },
  {
    field: 'gom.pending',
    paths: ['gpu_operation_mode/pending_gom'],
    conversion: 'text',
    aliases: ['gpu_operation_mode.pending'],
  },
  { field: 'fan.speed', paths: ['fan_speed'], conversion: 'text', unit: '%' },
  { field: 'pstate', paths: ['performance_state'], conversion: 'text' },
  ...ev('gpu_idle'),
  ...ev('applications_clocks_setting'),
  ...ev('sw_power_cap'),
  ...ev('hw_slowdown'),
  ...ev('hw_thermal_slowdown'),
  ...ev('hw_power_brake_slowdown'),
  ...ev('sw_thermal_slowdown'),
  ...ev('sync_boost'),
  counter('sw_power_cap', 'sw_power_cap'),
  counter('sync_boost', 'sync_boost'),
  counter('sw_thermal_slowdown', 'sw_therm_slowdown'),
  counter('hw_thermal_slowdown', 'hw_therm_slowdown'),
  counter('hw_power_brake_slowdown', 'hw_power_brake'),
  { field: 'memory.total', paths: ['fb_memory_usage/total'], conversion: 'text', unit: 'MiB' },
  {
    field: 'memory.reserved',
    paths: ['fb_memory_usage/reserved'],
    conversion: 'text',
    unit: 'MiB',
  },
  { field: 'memory.used', paths: ['fb_memory_usage/used'], conversion: 'text', unit: 'MiB' },
  { field: 'memory.free', paths: ['fb_memory_usage/free'], conversion: 'text', unit: 'MiB' },
  { field: 'compute_mode', paths: ['compute_mode'], conversion: 'text' },
  { field: 'utilization.gpu', paths: ['utilization/gpu_util'], conversion: 'text', unit: '%' },
  {
    field: 'utilization.memory',
    paths: ['utilization/memory_util'],
    conversion: 'text',
    unit: '%',
  },
  {
    field: 'utilization.encoder',
    paths: ['utilization/encoder_util'],
    conversion: 'text',
    unit: '%',
  },
  {
    field: 'utilization.decoder',
    paths: ['utilization/decoder_util'],
    conversion: 'text',
    unit: '%',
  },
  { field: 'utilization.jpeg', paths: ['utilization/jpeg_util'], conversion: 'text', unit: '%' },
  { field: 'utilization.ofa', paths: ['utilization/ofa_util'], conversion: 'text', unit: '%' },
  {
    field: 'encoder.stats.sessionCount',
    paths: ['encoder_stats/session_count'],
    conversion: 'text',
  },
  { field: 'encoder.stats.averageFps', paths: ['encoder_stats/average_fps'], conversion: 'text' },
  {
    field: 'encoder.stats.averageLatency',
    paths: ['encoder_stats/average_latency'],
    conversion: 'text',
  },
  {
    field: 'dramEncryption.mode.current',
    paths: ['dram_encryption_mode/current_dram_encryption'],
    conversion: 'text',
  },
  {
    field: 'dramEncryption.mode.pending',
    paths: ['dram_encryption_mode/pending_dram_encryption'],
    conversion: 'text',
  },
  { field: 'ecc.mode.current', paths: ['ecc_mode/current_ecc'], conversion: 'text' },
  { field: 'ecc.mode.pending', paths: ['ecc_mode/pending_ecc'], conversion: 'text' },
  // Before v11 ECC counts were per memory location (single_bit/double_bit); v11+ has
  // sram/dram only, and the CSV's device_memory is the DRAM count, total their sum.
  ...(['volatile', 'aggregate'] as const).flatMap((scope) =>
    (
      [
        ['corrected', 'single_bit', 'correctable'],
        ['uncorrected', 'double_bit', 'uncorrectable'],
      ] as const
    ).flatMap(([kind, bit, able]) => [
      ecc(`${kind}.${scope}.device_memory`, [
        `ecc_errors/${scope}/dram_${able}`,
        `ecc_errors/${scope}/${bit}/device_memory`,
      ]),
      ecc(`${kind}.${scope}.dram`, [`ecc_errors/${scope}/dram_${able}`]),
      ...(['register_file', 'l1_cache', 'l2_cache', 'texture_memory', 'cbu'] as const).map(
        (location) =>
          ecc(`${kind}.${scope}.${location}`, [`ecc_errors/${scope}/${bit}/${location}`]),
      ),
      // The uncorrected one is not the sum of v13's parity and SEC-DED counts: GeForce boards
      // print [N/A] here while both of those say 0 (RTX 4080 SUPER capture), so v13 documents
      // cannot answer it.
      ecc(`${kind}.${scope}.sram`, [`ecc_errors/${scope}/sram_${able}`]),
      // v13 splits uncorrected SRAM counts into parity and SEC-DED: its total sums those.
      ecc(
        `${kind}.${scope}.total`,
        [`ecc_errors/${scope}/${bit}/total`],
        [
          [`ecc_errors/${scope}/sram_${able}`, `ecc_errors/${scope}/dram_${able}`],
          ...(kind === 'uncorrected'
            ? [
                [
                  `ecc_errors/${scope}/sram_uncorrectable_parity`,
                  `ecc_errors/${scope}/sram_uncorrectable_secded`,
                  `ecc_errors/${scope}/dram_uncorrectable`,
                ],
              ]
            : []),
        ],
      ),
    ]),
  ),
  ecc('uncorrected.volatile.sram.parity', ['ecc_errors/volatile/sram_uncorrectable_parity']),
  ecc('uncorrected.volatile.sram.secded', ['ecc_errors/volatile/sram_uncorrectable_secded']),
  ecc('uncorrected.aggregate.sram.parity', ['ecc_errors/aggregate/sram_uncorrectable_parity']),
  ecc('uncorrected.aggregate.sram.secded', ['ecc_errors/aggregate/sram_uncorrectable_secded']),
  ecc('uncorrected.aggregate.sram.thresholdExceeded', [
    'ecc_errors/aggregate/sram_threshold_exceeded',
  ]),
  ecc('uncorrected.aggregate.sram.l2', ['ecc_errors/aggregate_uncorrectable_sram_sources/sram_l2']),
  ecc('uncorrected.aggregate.sram.sm', ['ecc_errors/aggregate_uncorrectable_sram_sources/sram_sm']),
  ecc('uncorrected.aggregate.sram.mcu', [
    'ecc_errors/aggregate_uncorrectable_sram_sources/sram_microcontroller',
  ]),
  ecc('uncorrected.aggregate.sram.pcie', [
    'ecc_errors/aggregate_uncorrectable_sram_sources/sram_pcie',
  ]),
  ecc('uncorrected.aggregate.sram.other', [
    'ecc_errors/aggregate_uncorrectable_sram_sources/sram_other',
  ]),
  {
    field: 'retired_pages.single_bit_ecc.count',
    paths: ['retired_pages/multiple_single_bit_retirement/retired_count'],
    conversion: 'text',
    aliases: ['retired_pages.sbe'],
  },
  {
    field: 'retired_pages.double_bit.count',
    paths: ['retired_pages/double_bit_retirement/retired_count'],
    conversion: 'text',
    aliases: ['retired_pages.dbe'],
  },
  {
    field: 'retired_pages.pending',
    // Drivers before 450 only printed the blacklist flag.
    paths: ['retired_pages/pending_retirement', 'retired_pages/pending_blacklist'],
    conversion: 'text',
  },
  {
    field: 'remapped_rows.correctable',
    paths: ['remapped_rows/remapped_row_corr'],
    conversion: 'text',
    aliases: ['remapped_rows.sbe'],
  },
  {
    field: 'remapped_rows.uncorrectable',
    paths: ['remapped_rows/remapped_row_unc'],
    conversion: 'text',
    aliases: ['remapped_rows.dbe'],
  },
  {
    field: 'remapped_rows.pending',
    paths: ['remapped_rows/remapped_row_pending'],
    conversion: 'text',
  },
  {
    field: 'remapped_rows.failure',
    paths: ['remapped_rows/remapped_row_failure'],
    conversion: 'text',
  },
  ...(['max', 'high', 'partial', 'low', 'none'] as const).map((level): XmlBinding => ({
    field: `remapped_rows.histogram.${level}`,
    paths: [`remapped_rows/row_remapper_histogram/row_remapper_histogram_${level}`],
    conversion: 'banks',
  })),
  { field: 'temperature.gpu', paths: ['temperature/gpu_temp'], conversion: 'celsius' },
  {
    field: 'temperature.gpu.tlimit',
    paths: ['temperature/gpu_temp_tlimit'],
    conversion: 'celsius',
  },
  { field: 'temperature.memory', paths: ['temperature/memory_temp'], conversion: 'celsius' },
  { field: 'power.management', paths: ['power_readings/power_management'], conversion: 'text' },
  // 550+ report an averaged and an instantaneous draw; power.draw is the averaged one (the
  // 590 captures print the same number for both).
  power('power.draw', 'average_power_draw', [
    'gpu_power_readings/instant_power_draw',
    'gpu_power_readings/power_draw',
    'power_readings/power_draw',
  ]),
  power('power.draw.average', 'average_power_draw', [], ['gpu.power.draw.average']),
  power('power.draw.instant', 'instant_power_draw', [], ['gpu.power.draw.instant']),
  power(
    'power.limit',
    'requested_power_limit',
    ['power_readings/power_limit'],
    ['gpu.power.requested_limit'],
  ),
  power(
    'enforced.power.limit',
    'current_power_limit',
    ['power_readings/enforced_power_limit'],
    ['gpu.power.current_limit'],
  ),
  power(
    'power.default_limit',
    'default_power_limit',
    ['power_readings/default_power_limit'],
    ['gpu.power.default_limit'],
  ),
  power(
    'power.min_limit',
    'min_power_limit',
    ['power_readings/min_power_limit'],
    ['gpu.power.min_limit'],
  ),
  power(
    'power.max_limit',
    'max_power_limit',
    ['power_readings/max_power_limit'],
    ['gpu.power.max_limit'],
  ),
  ...(
    [
      ['module.power.draw.average', 'average_power_draw', []],
      ['module.power.draw.instant', 'instant_power_draw', []],
      ['module.power.limit', 'requested_power_limit', ['module.power.requested_limit']],
      ['module.enforced.power.limit', 'current_power_limit', ['module.power.current_limit']],
      ['module.power.default_limit', 'default_power_limit', []],
      ['module.power.min_limit', 'min_power_limit', []],
      ['module.power.max_limit', 'max_power_limit', []],
    ] as const
  ).map(([field, element, aliases]): XmlBinding => ({
    field,
    paths: [`module_power_readings/${element}`],
    conversion: 'text',
    unit: 'W',
    aliases,
  })),
  ...(
    [
      ['current.graphics', 'clocks/graphics_clock', ['clocks.gr']],
      ['current.sm', 'clocks/sm_clock', ['clocks.sm']],
      ['current.memory', 'clocks/mem_clock', ['clocks.mem']],
      ['current.video', 'clocks/video_clock', ['clocks.video']],
      ['applications.graphics', 'applications_clocks/graphics_clock', ['clocks.applications.gr']],
      ['applications.memory', 'applications_clocks/mem_clock', ['clocks.applications.mem']],
      [
        'default_applications.graphics',
        'default_applications_clocks/graphics_clock',
        ['clocks.default_applications.gr'],
      ],
      [
        'default_applications.memory',
        'default_applications_clocks/mem_clock',
        ['clocks.default_applications.mem'],
      ],
      ['max.graphics', 'max_clocks/graphics_clock', ['clocks.max.gr']],
      ['max.sm', 'max_clocks/sm_clock', []],
      ['max.memory', 'max_clocks/mem_clock', ['clocks.max.mem']],
    ] as const
  ).map(([field, path, aliases]): XmlBinding => ({
    field: `clocks.${field}`,
    paths: [path],
    conversion: 'text',
    unit: 'MHz',
    aliases,
  })),
  { field: 'mig.mode.current', paths: ['mig_mode/current_mig'], conversion: 'text' },
  { field: 'mig.mode.pending', paths: ['mig_mode/pending_mig'], conversion: 'text' },
  { field: 'c2c.mode', paths: ['c2c_mode'], conversion: 'text' },
  {
    field: 'protected_memory.total',
    paths: ['cc_protected_memory_usage/total'],
    conversion: 'text',
    unit: 'MiB',
  },
  {
    field: 'protected_memory.used',
    paths: ['cc_protected_memory_usage/used'],
    conversion: 'text',
    unit: 'MiB',
  },
  {
    field: 'protected_memory.free',
    paths: ['cc_protected_memory_usage/free'],
    conversion: 'text',
    unit: 'MiB',
  },
  { field: 'fabric.state', paths: ['fabric/state'], conversion: 'text' },
  { field: 'fabric.status', paths: ['fabric/status'], conversion: 'text' },
  { field: 'fabric.cliqueId', paths: ['fabric/cliqueId'], conversion: 'text' },
  { field: 'fabric.clusterUuid', paths: ['fabric/clusterUuid'], conversion: 'text' },
  ...(
    [
      'summary',
      'bandwidth',
      'route_recovery_in_progress',
      'route_unhealthy',
      'access_timeout_recovery',
      'incorrect_configuration',
    ] as const
  ).map((h): XmlBinding => ({
    field: `fabric.health.${h}`,
    paths: [`fabric/health/${h}`],
    conversion: 'text',
  })),
];

/** The `--query-compute-apps` fields every driver since 2013 knows, with aliases. */
export const COMPUTE_APP_FIELDS: readonly QueryField[] = [
  { name: 'timestamp', aliases: [], unit: undefined },
  { name: 'gpu_name', aliases: [], unit: undefined },
  { name: 'gpu_bus_id', aliases: [], unit: undefined },
  { name: 'gpu_serial', aliases: [], unit: undefined },
  { name: 'gpu_uuid', aliases: [], unit: undefined },
  { name: 'pid', aliases: [], unit: undefined },
  { name: 'process_name', aliases: ['name'], unit: undefined },
  { name: 'used_gpu_memory', aliases: ['used_memory'], unit: 'MiB' },
];

/** Looks a requested name up among the fields, by canonical name or alias. */
export function resolveField(
  fields: readonly QueryField[],
  requested: string,
): QueryField | undefined {
  return (
    fields.find((f) => f.name === requested) ?? fields.find((f) => f.aliases.includes(requested))
  );
}

/** Header text of a field (`memory.used [MiB]`). */
export function headerText(field: QueryField): string {
  return field.unit === undefined ? field.name : `${field.name} [${field.unit}]`;
}
