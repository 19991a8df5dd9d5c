/** The message of an error (or its name when the message is empty), for logs and rejections. */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
