// Types of dockerd-daemon.mjs (plain JavaScript so that bench scripts share it without a build).
import type Docker from 'dockerode';

/** Tag of the image built from Debian's static busybox. */
export declare const BUSYBOX: string;

/** A private container engine started by a test or a bench. */
export interface TestEngine {
  readonly socket: string;
  readonly dir: string;
  readonly docker: Docker;
  /** Stops the engine (SIGTERM by pid file, SIGKILL after a grace time); the data stays for `start()`. */
  stop(): Promise<void>;
  /** Starts it again on the same socket and data. */
  start(): Promise<void>;
  /** Stops it for good and removes its files. */
  destroy(): Promise<void>;
}

/** How to start a private dockerd. */
export interface DockerdOptions {
  /** Path of the dockerd program. */
  readonly dockerd: string;
  /** Path of a static busybox to build busybox:test from; no image when undefined. */
  readonly busybox?: string | undefined;
  /** Folder for the socket, pid file, data and log; a new temp dir when undefined. */
  readonly dir?: string | undefined;
  /** More dockerd arguments (e.g. `--add-runtime`). */
  readonly args?: readonly string[] | undefined;
}

/** Whether a process with this pid exists. */
export declare function pidAlive(pid: number): boolean;
/** Resolves once `ok()` holds, checked every 100 ms; rejects naming `what` after `ms`. */
export declare function pollUntil(
  what: string,
  ms: number,
  ok: () => boolean | Promise<boolean>,
): Promise<void>;
/** Whether the engine behind `docker` answers /_ping. */
export declare function pings(docker: Docker): Promise<boolean>;
/** A tar (path returned) of a root filesystem with the static busybox and a few applet links. */
export declare function busyboxTar(dir: string, busybox: string): string;
/** Stops a process by its pid file: SIGTERM, then SIGKILL when it has not exited in `graceMs`. */
export declare function stopByPidFile(pidFile: string, graceMs: number): Promise<void>;
/** Removes every container of the engine, 16 at a time. */
export declare function removeAllContainers(docker: Docker): Promise<void>;
/** The stop/start/destroy handle of an engine run by pid file (`afterStop`: cleanup once down). */
export declare function engineHandle(parts: {
  readonly socket: string;
  readonly dir: string;
  readonly docker: Docker;
  readonly pidFile: string;
  readonly graceMs: number;
  readonly launch: () => Promise<void>;
  readonly afterStop?: () => unknown;
}): TestEngine;
/** Starts a private dockerd on a socket of its own, without networking; stopped by pid file. */
export declare function startDockerd(options: DockerdOptions): Promise<TestEngine>;
