import { join } from 'node:path';

// One layout for the publisher (writing a directory) and the device (reading URLs), so any static
// HTTP server, S3 or MinIO bucket can serve a store:
//   <model>/manifest.json              latest signed manifest
//   <model>/manifests/<release>.json   every published manifest
//   <model>/chunks/<h[0:2]>/<h>        content-addressed chunks (shared by all versions)
//   <model>/blobs/<h[0:2]>/<h>         whole files by SHA-256, for HTTP range requests

/** Relative path of the latest manifest. */
export const LATEST_MANIFEST = 'manifest.json';

/** Relative path of a chunk object. */
export function chunkKey(sha256: string): string {
  return `chunks/${sha256.slice(0, 2)}/${sha256}`;
}

/** Relative path of a whole-file blob. */
export function blobKey(sha256: string): string {
  return `blobs/${sha256.slice(0, 2)}/${sha256}`;
}

/** Relative path of a release's manifest. */
export function releaseManifestKey(release: number): string {
  return `manifests/${release}.json`;
}

/** Directory of a model inside a store directory. */
export function storeModelDir(store: string, model: string): string {
  return join(store, model);
}

/**
 * Base URL and manifest URL from a `--source`: either the model's folder in the store
 * (`https://host/store/detector/`) or a manifest URL ending in `.json`.
 */
export function sourceUrls(source: string): { base: URL; manifest: URL } {
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    throw new Error(
      `source ${JSON.stringify(source)} is not a URL (expected e.g. https://host/models/NAME/)`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new Error(`source ${source} must be http:// or https://`);
  if (url.pathname.endsWith('.json')) return { base: new URL('.', url), manifest: url };
  const base = new URL(url.href.endsWith('/') ? url.href : `${url.href}/`);
  return { base, manifest: new URL(LATEST_MANIFEST, base) };
}
