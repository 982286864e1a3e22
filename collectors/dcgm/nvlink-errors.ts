/**
 * DCGM's NVLink error counters (summed over every link of a GPU, since the driver loaded) and
 * the `type` label gpulse gives each in `gpulse_gpu_nvlink_errors_total`.
 */

/** dcgm-exporter's field name → gpulse's `type` label. */
export const NVLINK_ERROR_FIELDS = {
  DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL: 'crc_flit',
  DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL: 'crc_data',
  DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL: 'replay',
  DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL: 'recovery',
} as const;

/** One NVLink error field's name. */
export type NvlinkErrorField = keyof typeof NVLINK_ERROR_FIELDS;
