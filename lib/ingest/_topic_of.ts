import type { Decoded } from "./types.ts";

/** The MQTT topic a decoded message came from (rebuilt from its device and kind). */
export function topicOf(msg: Decoded): string {
  switch (msg.kind) {
    case "rejected":
      return msg.topic;
    case "reading":
      return `devices/${msg.device}/sensors/${msg.sensorType}/data`;
    default:
      return `devices/${msg.device}/${msg.kind}`;
  }
}
