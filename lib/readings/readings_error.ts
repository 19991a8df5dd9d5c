/**
 * A request for readings that names something that does not exist or is ambiguous (an unknown
 * device, sensor, location or metric). The message lists the valid choices so an assistant can
 * retry; tools turn it into an `isError` result.
 */
export class ReadingsError extends Error {
  /** The valid values the caller may pick from instead (may be empty). */
  readonly choices: string[];

  constructor(message: string, choices: string[] = [], options?: ErrorOptions) {
    super(message, options);
    this.name = "ReadingsError";
    this.choices = choices;
  }
}
