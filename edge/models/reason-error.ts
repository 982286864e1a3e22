/** A model-update failure with a stable `reason` label value and a `code` naming what failed. */
export abstract class ReasonError extends Error {
  abstract readonly code: string;

  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    // The concrete class's name (FetchError, HealthError ...), as each set its own before.
    this.name = new.target.name;
  }
}
