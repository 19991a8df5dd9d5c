/**
 * Returns a clock of receive times, in milliseconds since the epoch, that never repeats itself.
 *
 * Receive times stand in for missing device timestamps, and a burst (the backlog a broker
 * delivers after a reconnect) brings many messages in one millisecond: each message gets a time
 * of its own, a microsecond past the previous one, so none collapses onto another's key.
 */
export function receiveClock(): () => number {
  let lastReceivedUs = 0; // whole microseconds: repeated float steps of 0.001 ms would round together
  return () => {
    const nowUs = Date.now() * 1000;
    // A clock stepped back by more than a second is followed rather than waited out.
    lastReceivedUs = nowUs > lastReceivedUs || lastReceivedUs - nowUs > 1_000_000
      ? nowUs
      : lastReceivedUs + 1;
    return lastReceivedUs / 1000;
  };
}
